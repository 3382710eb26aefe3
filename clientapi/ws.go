package clientapi

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/storage"
)

// Real-time delivery: GET /api/ws (spec/openapi.yaml has the frames).
//
// The socket is authenticated at the upgrade, by the access token in the
// Authorization header, the access cookie (an Origin, if sent, must be
// allowed: CORS_ORIGINS or the server's own), or ?ticket= from POST
// /api/ws/ticket. It carries the caller's event log (storage/events.go):
// with ?after=N the logged events after N, then {"type":"ready","seq":M},
// then live events; without after, ready with the current number and
// live events; {"type":"reset","seq":M} instead of ready when the log no
// longer reaches back to N (the client pages GET /api/messages?after=N).
// The client may send {"type":"send","envelope":{...}}, validated and
// stored as POST /api/messages does (sendEnvelope) and answered
// {"type":"ack","id","seq"} after the durable write, or an error frame.
//
// Close codes: 4001 the access token expired (reconnect with a fresh
// one), 4003 the session ended (revoked, password changed elsewhere,
// account deleted), 4008 too slow (resume with after=), 1009 a frame over
// the size limit, 1001 the server is shutting down, 1011 a server fault.

// EventStore is what the WebSocket needs from storage (*storage.DB)
// besides MessageStore: the event log.
type EventStore interface {
	EventsAfter(user storage.ID, after uint64, limit int, now time.Time) ([]storage.Event, error)
}

type noEvents struct{}

func (noEvents) EventsAfter(storage.ID, uint64, int, time.Time) ([]storage.Event, error) {
	return nil, errNoMessages
}

// Errors of the upgrade.
var (
	errOrigin    = &statusError{http.StatusForbidden, "origin_not_allowed", "this Origin may not open a WebSocket (CORS_ORIGINS)"}
	errNoUpgrade = privateline.E("clientapi.ws", privateline.Invalid, "GET /api/ws is a WebSocket: send the upgrade handshake")
)

func (a *API) newUpgrader() websocket.Upgrader {
	return websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   1024, // the hijacked 4 KiB reader is dropped
		WriteBufferSize:  4096,
		WriteBufferPool:  &wsWriteBuffers,
		CheckOrigin:      func(*http.Request) bool { return true }, // checked before (originAllowed)
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			code := "invalid_request"
			switch status {
			case http.StatusMethodNotAllowed:
				code = "method_not_allowed"
			case http.StatusForbidden:
				code = "forbidden"
			case http.StatusInternalServerError:
				code = "internal"
			}
			writeJSON(w, status, errorBody(code, reason.Error()))
		},
	}
}

// wsWriteBuffers are shared by every socket: a socket holds a buffer only
// while it writes.
var wsWriteBuffers sync.Pool

// getWS upgrades to the event socket.
func (a *API) getWS(w http.ResponseWriter, r *http.Request, _ *call) error {
	if !a.originAllowed(r) {
		return errOrigin
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return invalid("malformed query string")
	}
	var after uint64
	var hasAfter bool
	var ticket string
	for k, vs := range q {
		if len(vs) != 1 {
			return invalid("query parameter " + strconv.Quote(k) + " may appear once")
		}
		switch k {
		case "after":
			if after, err = strconv.ParseUint(vs[0], 10, 64); err != nil {
				return invalid(`"after" must be a sequence number`)
			}
			hasAfter = true
		case "ticket":
			if ticket = vs[0]; ticket == "" {
				return errUnauthenticated
			}
		default:
			return invalid("unknown query parameter " + strconv.Quote(k))
		}
	}
	p, err := a.authenticateWS(r, ticket)
	if err != nil {
		return err
	}
	if !websocket.IsWebSocketUpgrade(r) {
		return errNoUpgrade
	}
	ws, err := a.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return nil // answered by the upgrader
	}
	c := newWSConn(a, ws, p)
	if !a.hub.add(c) {
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(closeGoingAway, "the server is shutting down"), time.Now().Add(wsCloseWait))
		ws.Close()
		return nil
	}
	a.metrics.wsOpen.Inc()
	go c.run(after, hasAfter)
	return nil
}

// originAllowed: no Origin (not a browser), one of CORS_ORIGINS, or the
// server's own (the Host the request was sent to).
func (a *API) originAllowed(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" || slices.Contains(a.cfg.CORSOrigins, o) {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// authenticateWS authenticates the upgrade: by ticket if one is given
// (any other credential sent along must be of the ticket's session), else
// as every route does (header or cookie; GET needs no CSRF token).
func (a *API) authenticateWS(r *http.Request, ticket string) (*principal, error) {
	if ticket == "" {
		return a.authenticate(r)
	}
	p, ok := a.tickets.take(ticket, a.now())
	if !ok {
		return nil, errUnauthenticated
	}
	if _, err := r.Cookie(cookieAccess); err == nil || r.Header.Get("Authorization") != "" {
		q, err := a.authenticate(r)
		if err != nil || q.SessionID != p.SessionID {
			return nil, errUnauthenticated
		}
	}
	if !a.now().Before(p.Expires) || !a.sessionLive(p.UserID, p.SessionID, p.TokenID) {
		return nil, errUnauthenticated
	}
	return p, nil
}

// sessionLive reports whether the session still exists for the user and
// the access token is not revoked; a store failure counts as not live.
func (a *API) sessionLive(user, session storage.ID, tokenID string) bool {
	s, err := a.store.SessionByID(session)
	if err != nil || s.UserID != user {
		return false
	}
	denied, err := a.store.TokenDenied(tokenID)
	return err == nil && !denied
}

// postWSTicket issues a single-use ticket for GET /api/ws?ticket=, for
// clients that cannot set a header on the upgrade and do not use the
// cookie.
func (a *API) postWSTicket(w http.ResponseWriter, r *http.Request, c *call) error {
	t, err := a.tickets.issue(c.auth, a.now())
	if err != nil {
		return err
	}
	a.metrics.wsTickets.Inc()
	writeJSON(w, http.StatusOK, map[string]any{"ticket": t, "expires_in": int(wsTicketTTL.Seconds())})
	return nil
}

// Frames the server sends.

type wsReady struct {
	Type string `json:"type"` // "ready" or "reset"
	Seq  uint64 `json:"seq"`
}

type wsAck struct {
	Type string `json:"type"` // "ack"
	ID   string `json:"id"`
	Seq  uint64 `json:"seq"`
}

type wsError struct {
	Type  string            `json:"type"` // "error"
	ID    string            `json:"id,omitempty"`
	Error map[string]string `json:"error"`
}

type wsEvent struct {
	Type    string              `json:"type"`
	Seq     uint64              `json:"seq"`
	Message *mailItem           `json:"message,omitempty"` // message, group_message
	ID      string              `json:"id,omitempty"`      // message id: read, deleted, expired
	By      privateline.Address `json:"by,omitempty"`      // read
	Address privateline.Address `json:"address,omitempty"` // key_changed
	Group   string              `json:"group,omitempty"`   // group_message, group_changed
	// delivered, delivery_failed: the destination server, the refusal
	// code and the last error.
	Server privateline.ServerName `json:"server,omitempty"`
	Error  string                 `json:"error,omitempty"`
	Detail string                 `json:"detail,omitempty"`
}

// eventFrame is the frame of a logged event; addresses are made here.
func (a *API) eventFrame(ev *storage.Event) wsEvent {
	f := wsEvent{Type: ev.Type, Seq: ev.Seq, ID: ev.ID, By: ev.By, Group: ev.Group, Server: ev.Server}
	if ev.Type == storage.EventDeliveryFailed {
		f.Error, f.Detail = ev.Error, ev.Detail
	}
	if ev.Mail != nil {
		m := newMailItem(ev.Mail)
		f.Message = &m
	}
	if ev.Type == storage.EventKeyChanged {
		switch {
		case ev.Remote != "":
			f.Address = ev.Remote
		case ev.Name != "":
			f.Address = privateline.MakeAddress(ev.Name, a.cfg.ServerName)
		}
	}
	return f
}

// Frames the client sends.

type wsIn struct {
	Type     string          `json:"type"`
	Envelope json.RawMessage `json:"envelope"`
}

// handle answers one frame from the client.
func (c *wsConn) handle(mt int, data []byte) {
	if mt != websocket.TextMessage {
		c.replyError("", invalid("frames must be JSON text"))
		return
	}
	var in wsIn
	if err := checkJSONShape(data); err != nil {
		c.replyError("", err)
		return
	}
	if err := json.Unmarshal(data, &in); err != nil {
		c.replyError("", invalid("the frame is not a JSON object of the protocol"))
		return
	}
	switch in.Type {
	case "send":
		if len(in.Envelope) == 0 || string(in.Envelope) == "null" {
			c.replyError("", invalid(`"send" needs an "envelope"`))
			return
		}
		res, err := c.a.sendEnvelope(c.user, in.Envelope)
		if err != nil {
			c.replyError(envelopeID(in.Envelope), err)
			return
		}
		c.reply(wsAck{Type: "ack", ID: res.id, Seq: res.seq})
	default:
		c.replyError("", invalid("unknown frame type "+strconv.Quote(in.Type)+`; the client sends "send"`))
	}
}

func (c *wsConn) replyError(id string, err error) {
	e := c.a.describe(err)
	if e.status >= 500 {
		c.a.log.Error("websocket: frame failed", "err", err)
	}
	body := map[string]string{"code": e.code, "message": e.msg}
	if e.retryAfter > 0 {
		body["retry_after"] = strconv.Itoa(e.retryAfter)
	}
	c.reply(wsError{Type: "error", ID: id, Error: body})
}

// envelopeID is the id in an envelope's header if it looks like one (for
// the error frame of a refused send), else "".
func envelopeID(raw []byte) string {
	var e struct {
		Header struct {
			ID string `json:"id"`
		} `json:"header"`
	}
	if json.Unmarshal(raw, &e) != nil || len(e.Header.ID) != 32 || strings.Trim(e.Header.ID, "0123456789abcdef") != "" {
		return ""
	}
	return e.Header.ID
}
