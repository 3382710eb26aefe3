package homeserver_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/privateline/privateline/homeserver"
)

// testServer is a real homeserver listening on 127.0.0.1 with port 0.
type testServer struct {
	t    testing.TB
	srv  *homeserver.Server
	cfg  homeserver.Config
	URL  string
	logs *syncBuffer // everything the server logged (JSON lines)
}

// syncBuffer is a concurrency-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testConfig is a development configuration in a fresh data directory with
// generous rate limits (tests of the limits lower them).
func testConfig(t testing.TB) homeserver.Config {
	t.Helper()
	cfg := homeserver.Default()
	cfg.DataDir = t.TempDir()
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.MetricsAddr = "127.0.0.1:0"
	cfg.ServerName = "hs.test"
	cfg.AuthRatePerMinute, cfg.AuthBurst = 60000, 100000
	cfg.UsernameRatePerMinute, cfg.UsernameBurst = 60000, 100000
	return cfg
}

// startServer starts a homeserver with cfg and stops it when the test ends.
func startServer(t testing.TB, cfg homeserver.Config, opts ...func(*homeserver.Options)) *testServer {
	t.Helper()
	ts := &testServer{t: t, cfg: cfg}
	ts.launch(opts)
	t.Cleanup(func() {
		if ts.srv != nil {
			ts.stop()
		}
	})
	return ts
}

// launch starts a server for ts.cfg and points ts at it.
func (ts *testServer) launch(opts []func(*homeserver.Options)) {
	ts.t.Helper()
	ts.logs = &syncBuffer{}
	o := homeserver.Options{Log: slog.New(slog.NewJSONHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, f := range opts {
		f(&o)
	}
	srv, err := homeserver.New(ts.cfg, o)
	if err != nil {
		ts.t.Fatalf("homeserver.New: %v", err)
	}
	if err := srv.Start(); err != nil {
		ts.t.Fatalf("Start: %v", err)
	}
	ts.srv, ts.URL = srv, "http://"+srv.Addr()
}

// stop shuts the server down (Cleanup does it for a running server).
func (ts *testServer) stop() {
	ts.t.Helper()
	srv := ts.srv
	ts.srv = nil
	if err := srv.Shutdown(context.Background()); err != nil {
		ts.t.Errorf("Shutdown: %v", err)
	}
}

// restart stops the server and starts a new one on the same data directory
// (and so the same generated secrets), with the given options.
func (ts *testServer) restart(opts ...func(*homeserver.Options)) *testServer {
	ts.t.Helper()
	ts.stop()
	ts.launch(opts)
	return ts
}

// response is a decoded HTTP answer.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r *response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("response is not a JSON object (%d): %q", r.Status, r.Body)
	}
	return m
}

func (r *response) errorCode(t testing.TB) string {
	t.Helper()
	e, _ := r.json(t)["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// do sends a request. body may be nil, a []byte/string sent as is, or a
// value encoded as JSON. Extra headers come in pairs.
func (ts *testServer) do(method, path, token string, body any, headers ...string) *response {
	ts.t.Helper()
	return ts.doWith(http.DefaultClient, method, path, token, body, headers...)
}

// doWith is do through the given client.
func (ts *testServer) doWith(client *http.Client, method, path, token string, body any, headers ...string) *response {
	ts.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			ts.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, ts.URL+path, rd)
	if err != nil {
		ts.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		ts.t.Fatal(err)
	}
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

func randB64(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// account is a registered test user with key material that stands in for
// what a client derives (the E2EE issue replaces it with the Go SDK).
type account struct {
	Username string
	AuthKey  string
	Email    string
	Access   string
	Refresh  string
}

var userSeq struct {
	mu sync.Mutex
	n  int
}

func uniqueName(prefix string) string {
	userSeq.mu.Lock()
	defer userSeq.mu.Unlock()
	userSeq.n++
	return fmt.Sprintf("%s%d", prefix, userSeq.n)
}

func registerBody(name, authKey, email string) map[string]any {
	return map[string]any{
		"username":              name,
		"email":                 email,
		"auth_key":              authKey,
		"encrypted_private_key": randB64(2400),
		"salt":                  randB64(16),
		"nonce":                 randB64(12),
		"key_bundle":            testBundleFor(name), // signed with the SDK (e2ee_helpers_test.go)
	}
}

// register creates a user and logs in.
func (ts *testServer) register(prefix string) *account {
	ts.t.Helper()
	a := &account{Username: uniqueName(prefix), AuthKey: randB64(32)}
	a.Email = a.Username + "@mail.example"
	if r := ts.do("POST", "/api/register", "", registerBody(a.Username, a.AuthKey, a.Email)); r.Status != http.StatusCreated {
		ts.t.Fatalf("register %s: %d %s", a.Username, r.Status, r.Body)
	}
	ts.login(a)
	return a
}

// login logs a in and stores its tokens.
func (ts *testServer) login(a *account) {
	ts.t.Helper()
	r := ts.do("POST", "/api/login", "", map[string]any{"username": a.Username, "auth_key": a.AuthKey})
	if r.Status != http.StatusOK {
		ts.t.Fatalf("login %s: %d %s", a.Username, r.Status, r.Body)
	}
	m := r.json(ts.t)
	a.Access, _ = m["access_token"].(string)
	a.Refresh, _ = m["refresh_token"].(string)
}
