package clientapi

import (
	"net/http"

	"github.com/julienschmidt/httprouter"
	"github.com/privateline/privateline"
	"github.com/privateline/privateline/spec"
)

// Route is one method and path of the API.
type Route struct {
	Method, Path string
	// Auth is true when the route needs an access token.
	Auth bool
}

// handler is a route's function; auth is nil on public routes.
type handler func(w http.ResponseWriter, r *http.Request, c *call) error

type call struct {
	params httprouter.Params
	auth   *principal
}

type routeDef struct {
	Route
	h handler
	// selfAuth: the handler authenticates itself (the WebSocket, which
	// also takes a ticket); Auth still says credentials are needed.
	selfAuth bool
}

func (a *API) routeDefs() []routeDef {
	pub := func(m, p string, h handler) routeDef { return routeDef{Route: Route{m, p, false}, h: h} }
	auth := func(m, p string, h handler) routeDef { return routeDef{Route: Route{m, p, true}, h: h} }
	return []routeDef{
		pub("GET", "/healthz", a.healthz),
		pub("GET", "/readyz", a.readyz),
		pub("GET", "/.well-known/privateline/server", a.serverDocument),
		pub("GET", "/api/openapi.yaml", a.openapi),
		pub("POST", "/api/prelogin", a.prelogin),
		pub("POST", "/api/register", a.register),
		pub("POST", "/api/login", a.login),
		pub("POST", "/api/refresh", a.refresh),
		auth("POST", "/api/revoke", a.revoke),
		auth("GET", "/api/account", a.getAccount),
		auth("PUT", "/api/account-settings", a.putAccountSettings),
		auth("DELETE", "/api/account", a.deleteAccount),
		auth("GET", "/api/public_key/:username", a.getPublicKey),
		pub("GET", "/api/keys/head", a.getKeysHead),
		pub("GET", "/api/keys/consistency", a.getKeysConsistency),
		pub("GET", "/api/keys/cosignatures", a.getKeysCosignatures),
		pub("GET", "/api/keys/forks", a.getKeysForks),
		pub("GET", "/api/keys/forks/document", a.getKeysForkDocument),
		auth("PUT", "/api/keys", a.putKeys),
		auth("GET", "/api/pinned_keys", a.getPinnedKeys),
		auth("PUT", "/api/pinned_keys", a.putPinnedKeys),
		auth("POST", "/api/messages", a.postMessage),
		auth("GET", "/api/messages", a.getMessages),
		auth("DELETE", "/api/messages/:id", a.deleteMessage),
		auth("POST", "/api/messages/:id/read", a.readMessage),
		auth("GET", "/api/unread_count", a.getUnreadCount),
		auth("POST", "/api/files", a.postFile),
		auth("GET", "/api/files/:id", a.getFile),
		auth("DELETE", "/api/files/:id", a.deleteFile),
		auth("GET", "/api/conversations/:address/retention", a.getRetention),
		auth("PUT", "/api/conversations/:address/retention", a.putRetention),
		auth("DELETE", "/api/conversations/:address/retention", a.deleteRetention),
		pub("GET", "/api/push/vapid-public-key", a.getVAPIDPublicKey),
		auth("POST", "/api/push-token", a.postPushToken),
		auth("GET", "/api/push-token", a.getPushTokens),
		auth("DELETE", "/api/push-token", a.deletePushToken),
		auth("POST", "/api/ws/ticket", a.postWSTicket),
		{Route: Route{"GET", "/api/ws", true}, h: a.getWS, selfAuth: true},
		auth("POST", "/api/groups", a.createGroup),
		auth("GET", "/api/groups", a.listGroups),
		auth("GET", "/api/groups/:id", a.getGroup),
		auth("PATCH", "/api/groups/:id", a.patchGroup),
		auth("POST", "/api/groups/:id/members", a.addGroupMember),
		auth("PATCH", "/api/groups/:id/members/:address", a.patchGroupMember),
		auth("DELETE", "/api/groups/:id/members/:address", a.removeGroupMember),
		auth("PUT", "/api/groups/:id/key", a.putGroupKey),
		auth("GET", "/api/groups/:id/key", a.getGroupKey),
		auth("POST", "/api/groups/:id/messages", a.postGroupMessage),
		auth("GET", "/api/groups/:id/messages", a.getGroupMessages),
		auth("PUT", "/api/groups/:id/retention", a.putGroupRetention),
		auth("POST", "/api/groups/:id/seen_epoch", a.postSeenEpoch),
	}
}

// Routes lists every route, for the contract test and documentation.
func (a *API) Routes() []Route {
	var rs []Route
	for _, d := range a.routeDefs() {
		rs = append(rs, d.Route)
	}
	return rs
}

func (a *API) newRouter() *httprouter.Router {
	rt := httprouter.New()
	rt.RedirectTrailingSlash = false
	rt.RedirectFixedPath = false
	rt.HandleOPTIONS = false // CORS preflight is answered by the middleware
	for _, d := range a.routeDefs() {
		rt.Handle(d.Method, d.Path, a.wrap(d))
	}
	rt.NotFound = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.serveWebApp(w, r) {
			return
		}
		writeJSON(w, http.StatusNotFound, errorBody("not_found", "no such route"))
	})
	rt.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.writeError(w, r, errMethodNotAllowed)
	})
	return rt
}

// wrap turns a route's handler into an httprouter.Handle: it records the
// route for metrics, authenticates when needed and writes errors.
func (a *API) wrap(d routeDef) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		setRoute(r, d.Path)
		c := &call{params: ps}
		if d.Auth && !d.selfAuth {
			p, err := a.authenticate(r)
			if err != nil {
				a.writeError(w, r, err)
				return
			}
			c.auth = p
		}
		if err := d.h(w, r, c); err != nil {
			a.writeError(w, r, err)
		}
	}
}

func (a *API) healthz(w http.ResponseWriter, r *http.Request, _ *call) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// serverDocument answers the signed server document of
// spec/federation.md §2.1, or 404 when the server does not federate.
func (a *API) serverDocument(w http.ResponseWriter, r *http.Request, _ *call) error {
	if a.serverDoc == nil {
		return privateline.E("clientapi.serverDocument", privateline.NotExist, "this server does not federate")
	}
	doc, err := a.serverDoc()
	if err != nil {
		return err
	}
	writeDocument(w, doc)
	return nil
}

// writeDocument answers 200 with a signed server document, as signed
// (its bytes are what its signature covers), never cached.
func writeDocument(w http.ResponseWriter, doc []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	w.Write(doc)
}

func (a *API) readyz(w http.ResponseWriter, r *http.Request, _ *call) error {
	if !a.ready() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "shutting down"})
		return nil
	}
	if err := a.store.Ping(); err != nil {
		a.log.Error("readiness: storage does not answer", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "storage unavailable"})
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}

func (a *API) openapi(w http.ResponseWriter, r *http.Request, _ *call) error {
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(spec.OpenAPI)
	return nil
}
