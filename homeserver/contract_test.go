package homeserver_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/privateline/privateline/homeserver"
	"github.com/privateline/privateline/spec"
)

// The contract tests hold the server to spec/openapi.yaml: every route is
// described and every described operation is routed, and real requests and
// responses — good and bad — match the document.

// loadSpec parses and validates spec/openapi.yaml.
func loadSpec(t testing.TB) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(spec.OpenAPI)
	if err != nil {
		t.Fatalf("spec/openapi.yaml does not parse: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("spec/openapi.yaml is not a valid OpenAPI document: %v", err)
	}
	return doc
}

// specVerdict says what the spec must think of a request.
type specVerdict int

const (
	specAccepts    specVerdict = iota // the request matches the spec
	specRejects                       // the spec, too, says the request is wrong
	specCannotTell                    // beyond what a schema expresses (duplicate keys, cross-field rules)
)

// contract validates exchanges against the spec and records which
// documented responses were exercised.
type contract struct {
	doc    *openapi3.T
	router routers.Router
	opts   *openapi3filter.Options

	mu   sync.Mutex
	seen map[string]map[int]bool // operationId → statuses observed
}

func newContract(t testing.TB, doc *openapi3.T) *contract {
	t.Helper()
	rt, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatalf("router from spec: %v", err)
	}
	return &contract{
		doc:    doc,
		router: rt,
		opts: &openapi3filter.Options{
			IncludeResponseStatus: true, // an undocumented status fails
			MultiError:            true,
			AuthenticationFunc:    credentialPresent,
			SchemaValidationOptions: []openapi3.SchemaValidationOption{
				openapi3.WithStringFormatValidator("byte", openapi3.NewCallbackValidator(strictBase64)),
				openapi3.WithStringFormatValidator("email", openapi3.NewCallbackValidator(plainEmail)),
			},
		},
		seen: map[string]map[int]bool{},
	}
}

// credentialPresent accepts any credential of the right shape: the test
// checks the document, the server checks the tokens.
func credentialPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	r, s := in.RequestValidationInput.Request, in.SecurityScheme
	switch {
	case s.Type == "http" && strings.EqualFold(s.Scheme, "bearer"):
		scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
			return errors.New("no bearer token")
		}
	case s.Type == "apiKey" && s.In == "cookie":
		if c, err := r.Cookie(s.Name); err != nil || c.Value == "" {
			return fmt.Errorf("no %s cookie", s.Name)
		}
	case s.Type == "apiKey" && s.In == "header":
		if r.Header.Get(s.Name) == "" {
			return fmt.Errorf("no %s header", s.Name)
		}
	case s.Type == "apiKey" && s.In == "query":
		if r.URL.Query().Get(s.Name) == "" {
			return fmt.Errorf("no %s query parameter", s.Name)
		}
	default:
		return fmt.Errorf("security scheme %q: unknown kind", in.SecuritySchemeName)
	}
	return nil
}

// strictBase64 is what the spec means by format: byte.
func strictBase64(s string) error {
	_, err := base64.StdEncoding.Strict().DecodeString(s)
	if err == nil && strings.ContainsAny(s, "\r\n") {
		err = errors.New("line breaks")
	}
	if err != nil {
		return fmt.Errorf("not strict standard base64: %v", err)
	}
	return nil
}

// plainEmail is what the spec means by format: email.
func plainEmail(s string) error {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return errors.New("not a plain e-mail address")
	}
	return nil
}

// apiExchange is one request to send.
type apiExchange struct {
	method, path string
	body         []byte // nil: no body
	header       http.Header
}

// req describes a request: body is nil, a string or []byte sent as is, or
// a value sent as JSON (with Content-Type: application/json unless the
// header pairs set another; an empty value removes a header).
func apiReq(method, path string, body any, headers ...string) apiExchange {
	e := apiExchange{method: method, path: path, header: http.Header{}}
	switch b := body.(type) {
	case nil:
	case string:
		e.body = []byte(b)
	case []byte:
		e.body = b
	default:
		j, err := json.Marshal(b)
		if err != nil {
			panic(err)
		}
		e.body = j
	}
	if e.body != nil {
		e.header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			e.header.Del(headers[i])
		} else {
			e.header.Set(headers[i], headers[i+1])
		}
	}
	return e
}

func authBearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

func (e apiExchange) request(base string) *http.Request {
	var rd io.Reader = http.NoBody
	if e.body != nil {
		rd = bytes.NewReader(e.body)
	}
	r, err := http.NewRequest(e.method, base+e.path, rd)
	if err != nil {
		panic(err)
	}
	r.Header = e.header.Clone()
	return r
}

// send performs e on the real server, checks the status and validates the
// request (as sh says) and the response against the spec.
func (c *contract) send(t *testing.T, ts *testServer, sh specVerdict, want int, e apiExchange) *response {
	t.Helper()
	resp, err := http.DefaultClient.Do(e.request(ts.URL))
	if err != nil {
		t.Fatalf("%s %s: %v", e.method, e.path, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: reading the response: %v", e.method, e.path, err)
	}
	r := &response{Status: resp.StatusCode, Header: resp.Header, Body: body}
	if r.Status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", e.method, e.path, r.Status, want, body)
	}
	c.check(t, sh, e.request(ts.URL), r)
	return r
}

// serve is send through the handler in process, for states a listening
// server cannot be put in (shut down).
func (c *contract) serve(t *testing.T, h http.Handler, sh specVerdict, want int, e apiExchange) *response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, e.request("http://127.0.0.1"))
	r := &response{Status: rec.Code, Header: rec.Result().Header, Body: rec.Body.Bytes()}
	if r.Status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", e.method, e.path, r.Status, want, r.Body)
	}
	c.check(t, sh, e.request("http://127.0.0.1"), r)
	return r
}

func (c *contract) check(t *testing.T, sh specVerdict, hr *http.Request, r *response) {
	t.Helper()
	what := fmt.Sprintf("%s %s → %d", hr.Method, hr.URL.Path, r.Status)
	route, params, err := c.router.FindRoute(hr)
	if err != nil {
		t.Fatalf("%s: no operation in spec/openapi.yaml: %v", what, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: hr, PathParams: params, Route: route, Options: c.opts}
	ctx := context.Background()
	switch err := openapi3filter.ValidateRequest(ctx, in); {
	case sh == specAccepts && err != nil:
		t.Errorf("%s: the server accepted the request's shape but the spec does not:\n%v", what, err)
	case sh == specRejects && err == nil:
		t.Errorf("%s: the server rejected the request but the spec allows it", what)
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 r.Status,
		Header:                 r.Header,
		Options:                c.opts,
	}
	out.SetBodyBytes(r.Body)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		t.Errorf("%s: response does not match the spec:\n%v\nbody: %s", what, err, r.Body)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	id := route.Operation.OperationID
	if c.seen[id] == nil {
		c.seen[id] = map[int]bool{}
	}
	c.seen[id][r.Status] = true
}

// specPath turns an httprouter pattern into an OpenAPI path template.
func specPath(p string) string {
	return regexp.MustCompile(`[:*]([A-Za-z0-9_]+)`).ReplaceAllString(p, "{$1}")
}

func specOperations(doc *openapi3.T) map[string]*openapi3.Operation {
	ops := map[string]*openapi3.Operation{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			ops[method+" "+path] = op
		}
	}
	return ops
}

// TestContractRoutes checks that every route is in the spec and every spec
// operation is routed, with the same authentication.
func TestContractRoutes(t *testing.T) {
	doc := loadSpec(t)
	ts := startServer(t, testConfig(t))
	ops := specOperations(doc)
	routed := map[string]bool{}
	var notInSpec, notRouted []string
	for _, r := range ts.srv.API().Routes() {
		key := r.Method + " " + specPath(r.Path)
		routed[key] = true
		op, ok := ops[key]
		if !ok {
			notInSpec = append(notInSpec, key)
			continue
		}
		secured := op.Security == nil || len(*op.Security) > 0
		if op.Security == nil {
			t.Errorf("%s: the spec must state its security (security: [] for a public route)", key)
		} else if secured != r.Auth {
			t.Errorf("%s: the route needs a token = %v, but the spec's security is %v", key, r.Auth, *op.Security)
		}
	}
	for key := range ops {
		if !routed[key] {
			notRouted = append(notRouted, key)
		}
	}
	slices.Sort(notInSpec)
	slices.Sort(notRouted)
	if len(notInSpec) > 0 {
		t.Errorf("routes missing from spec/openapi.yaml:\n\t%s", strings.Join(notInSpec, "\n\t"))
	}
	if len(notRouted) > 0 {
		t.Errorf("operations in spec/openapi.yaml that no route serves:\n\t%s", strings.Join(notRouted, "\n\t"))
	}
}

// TestContractStatuses checks that each operation documents the statuses
// the shared machinery can give it: 500 everywhere, 401 where a token is
// needed, 400/413/415 where a JSON body is read.
func TestContractStatuses(t *testing.T) {
	doc := loadSpec(t)
	for key, op := range specOperations(doc) {
		var need []int
		need = append(need, 500)
		if op.Security != nil && len(*op.Security) > 0 {
			need = append(need, 401)
		}
		if op.RequestBody != nil {
			need = append(need, 400, 413, 415)
		}
		for _, s := range need {
			if op.Responses.Status(s) == nil {
				t.Errorf("%s does not document status %d", key, s)
			}
		}
		if op.Responses.Default() != nil {
			t.Errorf("%s has a default response; list the statuses", key)
		}
		if op.OperationID == "" || op.Summary == "" || op.Description == "" {
			t.Errorf("%s needs an operationId, a summary and a description", key)
		}
	}
}

// TestContractServesSpec checks that the server publishes exactly the
// embedded document.
func TestContractServesSpec(t *testing.T) {
	c := newContract(t, loadSpec(t))
	ts := startServer(t, testConfig(t))
	r := c.send(t, ts, specAccepts, 200, apiReq("GET", "/api/openapi.yaml", nil))
	if !bytes.Equal(r.Body, spec.OpenAPI) {
		t.Errorf("GET /api/openapi.yaml served %d bytes that differ from spec.OpenAPI (%d bytes)", len(r.Body), len(spec.OpenAPI))
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/yaml" {
		t.Errorf("Content-Type %q, want application/yaml", ct)
	}
}

// TestContractResponses drives every route with good and bad requests and
// validates each apiExchange; at the end every documented status must have
// been seen, except server faults that cannot be provoked from outside.
func TestContractResponses(t *testing.T) {
	c := newContract(t, loadSpec(t))
	ts := startServer(t, testConfig(t))

	t.Run("meta", func(t *testing.T) {
		c.send(t, ts, specAccepts, 200, apiReq("GET", "/healthz", nil))
		c.send(t, ts, specAccepts, 200, apiReq("GET", "/readyz", nil))
		c.send(t, ts, specAccepts, 200, apiReq("GET", "/api/openapi.yaml", nil))
		// The federation server document: only a federating server has one.
		c.send(t, ts, specAccepts, 404, apiReq("GET", "/.well-known/privateline/server", nil))
		fcfg := testConfig(t)
		fcfg.FederationListenAddr = "127.0.0.1:0"
		fed := startServer(t, fcfg)
		r := c.send(t, fed, specAccepts, 200, apiReq("GET", "/.well-known/privateline/server", nil))
		if m := r.json(t); m["server"] != "hs.test" || m["federation"] != fed.srv.FederationAddr() {
			t.Errorf("server document %v", m)
		}
	})

	t.Run("prelogin", func(t *testing.T) {
		c.send(t, ts, specAccepts, 200, apiReq("POST", "/api/prelogin", map[string]any{"username": uniqueName("nobody")}))
		c.send(t, ts, specAccepts, 200, apiReq("POST", "/api/prelogin", map[string]any{"username": uniqueName("NoBody.X_y-")}))
		c.send(t, ts, specAccepts, 200, apiReq("POST", "/api/prelogin", map[string]any{"username": "ab1"}, "Content-Type", "application/json; charset=UTF-8"))
		for _, body := range []any{
			map[string]any{"username": "ab"},
			map[string]any{"username": strings.Repeat("a", 65)},
			map[string]any{"username": "a b c"},
			map[string]any{"username": "bob@hs.test"},
			map[string]any{"username": 7},
			map[string]any{},
			map[string]any{"username": "alice", "extra": 1},
			`{"username": "alice"`,
			`["alice"]`,
		} {
			c.send(t, ts, specRejects, 400, apiReq("POST", "/api/prelogin", body))
		}
		c.send(t, ts, specCannotTell, 400, apiReq("POST", "/api/prelogin", `{"username": "alice"} {}`))
		c.send(t, ts, specRejects, 400, apiReq("POST", "/api/prelogin", nil, "Content-Type", "application/json"))
		c.send(t, ts, specCannotTell, 400, apiReq("POST", "/api/prelogin", `{"username": "alice", "username": "bob"}`))
		c.send(t, ts, specRejects, 415, apiReq("POST", "/api/prelogin", `username=alice`, "Content-Type", "application/x-www-form-urlencoded"))
		c.send(t, ts, specRejects, 415, apiReq("POST", "/api/prelogin", map[string]any{"username": "alice"}, "Content-Type", ""))
		c.send(t, ts, specCannotTell, 415, apiReq("POST", "/api/prelogin", map[string]any{"username": "alice"}, "Content-Type", "application/json; charset=latin1"))
		c.send(t, ts, specRejects, 413, apiReq("POST", "/api/prelogin", map[string]any{"username": strings.Repeat("a", 70<<10)}))
	})

	var alice *account
	t.Run("register", func(t *testing.T) {
		name := uniqueName("Alice")
		alice = &account{Username: strings.ToLower(name), AuthKey: randB64(32), Email: "alice@mail.example"}
		r := c.send(t, ts, specAccepts, 201, apiReq("POST", "/api/register", registerBody(name, alice.AuthKey, alice.Email)))
		if m := r.json(t); m["username"] != alice.Username || m["address"] != alice.Username+"@hs.test" {
			t.Errorf("register answered username %v, address %v; want the folded name %s", m["username"], m["address"], alice.Username)
		}
		// Taken, whatever the case.
		c.send(t, ts, specAccepts, 409, apiReq("POST", "/api/register", registerBody(strings.ToUpper(name), randB64(32), "")))
		// No e-mail: omitted or empty.
		noMail := registerBody(uniqueName("nomail"), randB64(32), "")
		delete(noMail, "email")
		if m := c.send(t, ts, specAccepts, 201, apiReq("POST", "/api/register", noMail)).json(t); m["email"] != nil {
			t.Errorf("register without e-mail answered email %v", m["email"])
		}
		c.send(t, ts, specAccepts, 201, apiReq("POST", "/api/register", registerBody(uniqueName("empty"), randB64(32), "")))

		bad := func(mutate func(map[string]any)) map[string]any {
			b := registerBody(uniqueName("bad"), randB64(32), "")
			mutate(b)
			return b
		}
		for _, body := range []map[string]any{
			bad(func(b map[string]any) { b["auth_key"] = randB64(31) }),
			bad(func(b map[string]any) { b["auth_key"] = randB64(33) }),
			bad(func(b map[string]any) { b["auth_key"] = strings.TrimRight(randB64(32), "=") }),
			bad(func(b map[string]any) { b["salt"] = randB64(15) }),
			bad(func(b map[string]any) { b["nonce"] = "!!!!!!!!!!!!!!!!" }),
			bad(func(b map[string]any) {
				b["nonce"] = base64.URLEncoding.EncodeToString([]byte{0xfb, 0xff, 0xfe, 1, 2, 3, 4, 5, 6, 7, 8, 9})
			}),
			bad(func(b map[string]any) { b["encrypted_private_key"] = "" }),
			bad(func(b map[string]any) { b["key_bundle"] = []any{1, 2} }),
			bad(func(b map[string]any) { b["key_bundle"] = "bundle" }),
			bad(func(b map[string]any) { delete(b, "key_bundle") }),
			bad(func(b map[string]any) { delete(b, "auth_key") }),
			bad(func(b map[string]any) { b["email"] = "Alice <alice@mail.example>" }),
			bad(func(b map[string]any) { b["email"] = "not an address" }),
			bad(func(b map[string]any) { b["username"] = "no/slash" }),
			bad(func(b map[string]any) { b["password"] = "hunter2" }),
		} {
			c.send(t, ts, specRejects, 400, apiReq("POST", "/api/register", body))
		}
		// One byte over 16 KiB still fits the base64 length the spec
		// states; only decoding can tell.
		c.send(t, ts, specCannotTell, 400, apiReq("POST", "/api/register",
			bad(func(b map[string]any) { b["encrypted_private_key"] = randB64(16<<10 + 1) })))
		c.send(t, ts, specCannotTell, 400, apiReq("POST", "/api/register",
			bad(func(b map[string]any) { b["key_bundle"] = map[string]any{"pad": strings.Repeat("x", 16<<10)} })))
		c.send(t, ts, specAccepts, 201, apiReq("POST", "/api/register",
			bad(func(b map[string]any) { b["encrypted_private_key"] = randB64(16 << 10) })))
		c.send(t, ts, specRejects, 413, apiReq("POST", "/api/register",
			bad(func(b map[string]any) { b["encrypted_private_key"] = randB64(60 << 10) })))
		c.send(t, ts, specRejects, 415, apiReq("POST", "/api/register", registerBody(uniqueName("ct"), randB64(32), ""), "Content-Type", "text/plain"))
	})

	var cookieCSRF string
	var cookies []*http.Cookie
	t.Run("login", func(t *testing.T) {
		m := c.send(t, ts, specAccepts, 200, apiReq("POST", "/api/login", map[string]any{"username": strings.ToUpper(alice.Username), "auth_key": alice.AuthKey})).json(t)
		alice.Access, _ = m["access_token"].(string)
		alice.Refresh, _ = m["refresh_token"].(string)
		if alice.Access == "" || alice.Refresh == "" || m["csrf_token"] != nil {
			t.Fatalf("login without cookies: %v", m)
		}
		r := c.send(t, ts, specAccepts, 200, apiReq("POST", "/api/login", map[string]any{"username": alice.Username, "auth_key": alice.AuthKey, "use_cookies": true}))
		m = r.json(t)
		cookieCSRF, _ = m["csrf_token"].(string)
		cookies = (&http.Response{Header: r.Header}).Cookies()
		if cookieCSRF == "" || m["access_token"] != nil || len(cookies) != 3 {
			t.Fatalf("login with cookies: body %v, %d cookies", m, len(cookies))
		}

		c.send(t, ts, specAccepts, 401, apiReq("POST", "/api/login", map[string]any{"username": alice.Username, "auth_key": randB64(32)}))
		c.send(t, ts, specAccepts, 401, apiReq("POST", "/api/login", map[string]any{"username": uniqueName("ghost"), "auth_key": randB64(32)}))
		c.send(t, ts, specRejects, 400, apiReq("POST", "/api/login", map[string]any{"username": alice.Username}))
		c.send(t, ts, specRejects, 400, apiReq("POST", "/api/login", map[string]any{"username": alice.Username, "auth_key": alice.AuthKey, "use_cookies": "yes"}))
		c.send(t, ts, specRejects, 415, apiReq("POST", "/api/login", map[string]any{"username": alice.Username, "auth_key": alice.AuthKey}, "Content-Type", "text/json"))
		c.send(t, ts, specRejects, 413, apiReq("POST", "/api/login", map[string]any{"username": alice.Username, "auth_key": strings.Repeat("A", 70<<10)}))
	})

	cookieHeader := func(names ...string) string {
		var parts []string
		for _, ck := range cookies {
			if slices.Contains(names, ck.Name) {
				parts = append(parts, ck.Name+"="+ck.Value)
			}
		}
		return strings.Join(parts, "; ")
	}

	t.Run("refresh", func(t *testing.T) {
		old := alice.Refresh
		m := c.send(t, ts, specAccepts, 200, apiReq("POST", "/api/refresh", map[string]any{"refresh_token": old})).json(t)
		alice.Access, alice.Refresh = m["access_token"].(string), m["refresh_token"].(string)
		c.send(t, ts, specAccepts, 401, apiReq("POST", "/api/refresh", map[string]any{"refresh_token": "not-a-token"}))
		c.send(t, ts, specRejects, 400, apiReq("POST", "/api/refresh", map[string]any{"refresh_token": 5}))
		c.send(t, ts, specRejects, 400, apiReq("POST", "/api/refresh", map[string]any{"token": alice.Refresh}))
		c.send(t, ts, specCannotTell, 400, apiReq("POST", "/api/refresh", nil))
		c.send(t, ts, specRejects, 415, apiReq("POST", "/api/refresh", map[string]any{"refresh_token": alice.Refresh}, "Content-Type", "text/plain"))
		c.send(t, ts, specRejects, 413, apiReq("POST", "/api/refresh", map[string]any{"refresh_token": strings.Repeat("A", 70<<10)}))

		// By cookie: needs the CSRF token, and answers with cookies.
		c.send(t, ts, specAccepts, 403, apiReq("POST", "/api/refresh", nil, "Cookie", cookieHeader("pl_refresh")))
		r := c.send(t, ts, specAccepts, 200, apiReq("POST", "/api/refresh", nil, "Cookie", cookieHeader("pl_refresh"), "X-CSRF-Token", cookieCSRF))
		if m := r.json(t); m["csrf_token"] != cookieCSRF || m["refresh_token"] != nil {
			t.Errorf("refresh by cookie answered %v", m)
		}
		cookies = (&http.Response{Header: r.Header}).Cookies()

		// A body token may ask for cookies too.
		bob := ts.register("bob")
		r = c.send(t, ts, specAccepts, 200, apiReq("POST", "/api/refresh", map[string]any{"refresh_token": bob.Refresh, "use_cookies": true}))
		if m := r.json(t); m["csrf_token"] == nil || m["access_token"] != nil {
			t.Errorf("refresh with use_cookies answered %v", m)
		}

		// Reuse revokes the session: the old token and the new one are dead.
		carol := ts.register("carol")
		m = c.send(t, ts, specAccepts, 200, apiReq("POST", "/api/refresh", map[string]any{"refresh_token": carol.Refresh})).json(t)
		c.send(t, ts, specAccepts, 401, apiReq("POST", "/api/refresh", map[string]any{"refresh_token": carol.Refresh}))
		c.send(t, ts, specAccepts, 401, apiReq("POST", "/api/refresh", map[string]any{"refresh_token": m["refresh_token"]}))
		c.send(t, ts, specAccepts, 401, apiReq("GET", "/api/account", nil, authBearer(m["access_token"].(string))...))
	})

	t.Run("account", func(t *testing.T) {
		m := c.send(t, ts, specAccepts, 200, apiReq("GET", "/api/account", nil, authBearer(alice.Access)...)).json(t)
		if m["username"] != alice.Username || m["email"] != alice.Email || m["sessions"] != float64(2) {
			t.Errorf("account: %v", m)
		}
		c.send(t, ts, specAccepts, 200, apiReq("GET", "/api/account", nil, "Cookie", cookieHeader("pl_access")))
		c.send(t, ts, specRejects, 401, apiReq("GET", "/api/account", nil))
		c.send(t, ts, specAccepts, 401, apiReq("GET", "/api/account", nil, authBearer("e30.e30.e30")...))
	})

	t.Run("account-settings", func(t *testing.T) {
		put := func(sh specVerdict, want int, body any, headers ...string) *response {
			t.Helper()
			return c.send(t, ts, sh, want, apiReq("PUT", "/api/account-settings", body, headers...))
		}
		auth := authBearer(alice.Access)
		m := put(specAccepts, 200, map[string]any{"default_retention_days": 30}, auth...).json(t)
		if m["default_retention_days"] != float64(30) {
			t.Errorf("retention not changed: %v", m)
		}
		put(specAccepts, 200, map[string]any{"default_retention_days": 0}, auth...)
		put(specAccepts, 200, map[string]any{"email": "alice2@mail.example", "default_retention_days": 365}, auth...)
		if m := put(specAccepts, 200, map[string]any{"email": ""}, auth...).json(t); m["email"] != nil {
			t.Errorf("email not cleared: %v", m)
		}
		for _, body := range []any{
			map[string]any{},
			map[string]any{"default_retention_days": 366},
			map[string]any{"default_retention_days": -1},
			map[string]any{"default_retention_days": 1.5},
			map[string]any{"email": "Alice <a@mail.example>"},
			map[string]any{"email": 5},
			map[string]any{"username": "mallory"},
			map[string]any{"password": map[string]any{"auth_key": randB64(32)}},
			map[string]any{"password": map[string]any{"current_auth_key": alice.AuthKey, "auth_key": randB64(32),
				"encrypted_private_key": randB64(100), "salt": randB64(8), "nonce": randB64(12)}},
		} {
			put(specRejects, 400, body, auth...)
		}
		put(specRejects, 401, map[string]any{"default_retention_days": 1})
		put(specRejects, 415, map[string]any{"default_retention_days": 1}, append(auth, "Content-Type", "text/plain")...)
		put(specRejects, 413, map[string]any{"email": strings.Repeat("a", 70<<10)}, auth...)

		// Cookie authentication needs the CSRF header on a PUT.
		put(specRejects, 403, map[string]any{"default_retention_days": 7}, "Cookie", cookieHeader("pl_access"))
		put(specAccepts, 200, map[string]any{"default_retention_days": 7}, "Cookie", cookieHeader("pl_access"), "X-CSRF-Token", cookieCSRF)

		// Password change: the current auth key is checked; other sessions end.
		change := func(current string) map[string]any {
			return map[string]any{"password": map[string]any{"current_auth_key": current, "auth_key": randB64(32),
				"encrypted_private_key": randB64(2400), "salt": randB64(16), "nonce": randB64(12)}}
		}
		put(specAccepts, 403, change(randB64(32)), auth...)
		body := change(alice.AuthKey)
		m = put(specAccepts, 200, body, auth...).json(t)
		if m["sessions"] != float64(1) {
			t.Errorf("after a password change %v sessions are live, want 1", m["sessions"])
		}
		alice.AuthKey = body["password"].(map[string]any)["auth_key"].(string)
		c.send(t, ts, specAccepts, 401, apiReq("GET", "/api/account", nil, "Cookie", cookieHeader("pl_access")))
		c.send(t, ts, specAccepts, 200, apiReq("GET", "/api/account", nil, auth...))
	})

	t.Run("revoke", func(t *testing.T) {
		dave := ts.register("dave")
		c.send(t, ts, specRejects, 401, apiReq("POST", "/api/revoke", nil))
		c.send(t, ts, specAccepts, 401, apiReq("POST", "/api/revoke", nil, authBearer("nonsense")...))
		c.send(t, ts, specRejects, 400, apiReq("POST", "/api/revoke", map[string]any{"all": "yes"}, authBearer(dave.Access)...))
		c.send(t, ts, specRejects, 400, apiReq("POST", "/api/revoke", `{"all": true`, authBearer(dave.Access)...))
		c.send(t, ts, specRejects, 415, apiReq("POST", "/api/revoke", map[string]any{"all": true}, append(authBearer(dave.Access), "Content-Type", "text/plain")...))
		c.send(t, ts, specRejects, 413, apiReq("POST", "/api/revoke", `{"all": false, "x": "`+strings.Repeat("a", 70<<10)+`"}`, authBearer(dave.Access)...))
		r := c.send(t, ts, specAccepts, 204, apiReq("POST", "/api/revoke", nil, authBearer(dave.Access)...))
		if len(r.Body) != 0 {
			t.Errorf("204 with a body: %q", r.Body)
		}
		c.send(t, ts, specAccepts, 401, apiReq("POST", "/api/revoke", nil, authBearer(dave.Access)...))

		ts.login(dave)
		c.send(t, ts, specAccepts, 204, apiReq("POST", "/api/revoke", map[string]any{"all": true}, authBearer(dave.Access)...))

		// By cookie, with and without the CSRF token.
		lr := c.send(t, ts, specAccepts, 200, apiReq("POST", "/api/login", map[string]any{"username": dave.Username, "auth_key": dave.AuthKey, "use_cookies": true}))
		csrf := lr.json(t)["csrf_token"].(string)
		var access string
		for _, ck := range (&http.Response{Header: lr.Header}).Cookies() {
			if ck.Name == "pl_access" {
				access = ck.Value
			}
		}
		c.send(t, ts, specRejects, 403, apiReq("POST", "/api/revoke", nil, "Cookie", "pl_access="+access))
		c.send(t, ts, specAccepts, 204, apiReq("POST", "/api/revoke", map[string]any{}, "Cookie", "pl_access="+access, "X-CSRF-Token", csrf))
	})

	t.Run("delete-account", func(t *testing.T) {
		erin := ts.register("erin")
		del := func(sh specVerdict, want int, body any, headers ...string) *response {
			t.Helper()
			return c.send(t, ts, sh, want, apiReq("DELETE", "/api/account", body, headers...))
		}
		del(specRejects, 401, map[string]any{"auth_key": erin.AuthKey})
		del(specRejects, 400, map[string]any{}, authBearer(erin.Access)...)
		del(specRejects, 400, nil, authBearer(erin.Access)...)
		del(specRejects, 400, map[string]any{"auth_key": randB64(16)}, authBearer(erin.Access)...)
		del(specRejects, 415, map[string]any{"auth_key": erin.AuthKey}, append(authBearer(erin.Access), "Content-Type", "text/plain")...)
		del(specRejects, 413, map[string]any{"auth_key": strings.Repeat("A", 70<<10)}, authBearer(erin.Access)...)
		del(specAccepts, 403, map[string]any{"auth_key": randB64(32)}, authBearer(erin.Access)...)
		del(specAccepts, 204, map[string]any{"auth_key": erin.AuthKey}, authBearer(erin.Access)...)
		c.send(t, ts, specAccepts, 401, apiReq("GET", "/api/account", nil, authBearer(erin.Access)...))
		c.send(t, ts, specAccepts, 401, apiReq("POST", "/api/login", map[string]any{"username": erin.Username, "auth_key": erin.AuthKey}))
		del(specAccepts, 401, map[string]any{"auth_key": erin.AuthKey}, authBearer(erin.Access)...)
	})

	t.Run("rate-limits", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.AuthRatePerMinute, cfg.AuthBurst = 1, 3
		cfg.UsernameRatePerMinute, cfg.UsernameBurst = 1, 1
		lim := startServer(t, cfg)
		frank := lim.register("frank") // spends 2 per-IP tokens and frank's only per-name token
		c.send(t, lim, specAccepts, 429, apiReq("PUT", "/api/account-settings", map[string]any{"password": map[string]any{
			"current_auth_key": frank.AuthKey, "auth_key": randB64(32), "encrypted_private_key": randB64(100),
			"salt": randB64(16), "nonce": randB64(12)}}, authBearer(frank.Access)...))
		c.send(t, lim, specAccepts, 429, apiReq("DELETE", "/api/account", map[string]any{"auth_key": frank.AuthKey}, authBearer(frank.Access)...))
		c.send(t, lim, specAccepts, 200, apiReq("POST", "/api/prelogin", map[string]any{"username": frank.Username}))
		r := c.send(t, lim, specAccepts, 429, apiReq("POST", "/api/prelogin", map[string]any{"username": frank.Username}))
		if ra := r.Header.Get("Retry-After"); ra == "" || ra == "0" {
			t.Errorf("429 with Retry-After %q", ra)
		}
		c.send(t, lim, specAccepts, 429, apiReq("POST", "/api/register", registerBody(uniqueName("late"), randB64(32), "")))
		c.send(t, lim, specAccepts, 429, apiReq("POST", "/api/login", map[string]any{"username": frank.Username, "auth_key": frank.AuthKey}))
		c.send(t, lim, specAccepts, 429, apiReq("POST", "/api/refresh", map[string]any{"refresh_token": frank.Refresh}))
	})

	t.Run("shut-down", func(t *testing.T) {
		srv, err := homeserver.New(testConfig(t), homeserver.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		r := c.serve(t, srv.Handler(), specAccepts, 503, apiReq("GET", "/readyz", nil))
		if m := r.json(t); m["status"] != "shutting down" {
			t.Errorf("readyz while shut down: %v", m)
		}
		c.send(t, ts, specAccepts, 200, apiReq("GET", "/readyz", nil))
	})

	t.Run("keys", func(t *testing.T) { keysContract(t, c, ts) })            // keydir_contract_test.go
	t.Run("messages", func(t *testing.T) { messagesContract(t, c, ts) })    // messages_contract_test.go
	t.Run("files", func(t *testing.T) { filesContract(t, c, ts) })          // files_contract_test.go
	t.Run("ws", func(t *testing.T) { wsContract(t, c, ts) })                // ws_contract_test.go
	t.Run("groups", func(t *testing.T) { groupsContract(t, c, ts) })        // groups_contract_test.go
	t.Run("remote files", func(t *testing.T) { remoteFilesContract(t, c) }) // federation_files_test.go
	// forkdoc_contract_test.go
	t.Run("fork documents", func(t *testing.T) { forkDocumentContract(t, c) })

	// Every documented response must have been seen, except the server
	// faults (500, and 503 from storage) that a client cannot provoke.
	for key, op := range specOperations(c.doc) {
		seen := c.seen[op.OperationID]
		for code := range op.Responses.Map() {
			var status int
			fmt.Sscan(code, &status)
			if status == 500 || (status == 503 && op.OperationID != "readyz") || seen[status] {
				continue
			}
			t.Errorf("%s: documented status %d was never exercised", key, status)
		}
	}
}

// TestContractCatchesDrift proves the validation can fail: an undocumented
// response field, an undocumented status and an unknown request field are
// each caught.
func TestContractCatchesDrift(t *testing.T) {
	ts := startServer(t, testConfig(t))
	a := ts.register("drift")

	doc := loadSpec(t)
	delete(doc.Components.Schemas["Account"].Value.Properties, "sessions")
	doc.Components.Schemas["Account"].Value.Required = slices.DeleteFunc(doc.Components.Schemas["Account"].Value.Required, func(s string) bool { return s == "sessions" })
	doc.Paths.Value("/api/register").Post.Responses.Delete("409")
	c := newContract(t, doc)

	validate := func(e apiExchange, want int) error {
		t.Helper()
		resp, err := http.DefaultClient.Do(e.request(ts.URL))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s %s: status %d, want %d: %s", e.method, e.path, resp.StatusCode, want, body)
		}
		hr := e.request(ts.URL)
		route, params, err := c.router.FindRoute(hr)
		if err != nil {
			t.Fatal(err)
		}
		in := &openapi3filter.RequestValidationInput{Request: hr, PathParams: params, Route: route, Options: c.opts}
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Options: c.opts}
		out.SetBodyBytes(body)
		return openapi3filter.ValidateResponse(context.Background(), out)
	}
	if err := validate(apiReq("GET", "/api/account", nil, authBearer(a.Access)...), 200); err == nil {
		t.Error("an account with an undocumented field \"sessions\" passed validation")
	}
	if err := validate(apiReq("POST", "/api/register", registerBody(a.Username, randB64(32), "")), 409); err == nil {
		t.Error("an undocumented 409 passed validation")
	}

	hr := apiReq("POST", "/api/login", map[string]any{"username": a.Username, "auth_key": a.AuthKey, "remember": true}).request(ts.URL)
	route, params, err := c.router.FindRoute(hr)
	if err != nil {
		t.Fatal(err)
	}
	if err := openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{Request: hr, PathParams: params, Route: route, Options: c.opts}); err == nil {
		t.Error("a login request with an unknown field passed validation")
	}
}
