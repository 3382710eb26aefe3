package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/e2ee"
)

// Unit tests against fake servers; clients/go/client against the real
// homeserver is homeserver/sdk_test.go.

func fakeServer(t *testing.T, h http.HandlerFunc) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := New(Options{BaseURL: srv.URL, ServerName: "example.org"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestErrorKinds(t *testing.T) {
	cases := []struct {
		status int
		body   string
		kind   privateline.Kind
		code   string
	}{
		{400, `{"error":{"code":"invalid_request","message":"field \"username\" is bad"}}`, privateline.Invalid, CodeInvalidRequest},
		{401, `{"error":{"code":"unauthenticated","message":"no"}}`, privateline.Unauthenticated, CodeUnauthenticated},
		{403, `{"error":{"code":"wrong_password","message":"the current password is wrong"}}`, privateline.Forbidden, CodeWrongPassword},
		{404, `{"error":{"code":"not_found","message":"not found"}}`, privateline.NotExist, CodeNotFound},
		{409, `{"error":{"code":"conflict","message":"taken"}}`, privateline.Exist, CodeConflict},
		{412, `{"error":{"code":"precondition_failed","message":"stale"}}`, privateline.Exist, CodePreconditionFailed},
		{428, `{"error":{"code":"precondition_required","message":"If-Match"}}`, privateline.Exist, CodePreconditionRequired},
		{413, `{"error":{"code":"too_large","message":"big"}}`, privateline.TooLarge, CodeTooLarge},
		{415, `{"error":{"code":"unsupported_media_type","message":"json"}}`, privateline.Invalid, CodeUnsupportedMediaType},
		{429, `{"error":{"code":"rate_limited","message":"slow down"}}`, privateline.RateLimited, CodeRateLimited},
		{500, `{"error":{"code":"internal","message":"oops"}}`, privateline.Internal, CodeInternal},
		{503, `{"error":{"code":"unavailable","message":"later"}}`, privateline.Unavailable, CodeUnavailable},
		{502, `<html>bad gateway</html>`, privateline.Unavailable, ""},
	}
	for _, c := range cases {
		cl := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
			if c.status == 429 {
				w.Header().Set("Retry-After", "7")
			}
			w.WriteHeader(c.status)
			io.WriteString(w, c.body)
		})
		_, err := cl.Prelogin(context.Background(), "alice")
		if privateline.KindOf(err) != c.kind || CodeOf(err) != c.code {
			t.Errorf("%d: kind %v code %q, want %v %q (%v)", c.status, privateline.KindOf(err), CodeOf(err), c.kind, c.code, err)
		}
		if privateline.MessageOf(err) == "" {
			t.Errorf("%d: no message", c.status)
		}
		d, ok := RetryAfter(err)
		if (c.status == 429) != (ok && d == 7*time.Second) {
			t.Errorf("%d: RetryAfter %v %v", c.status, d, ok)
		}
		if IsVersionConflict(err) != (c.status == 412) {
			t.Errorf("%d: IsVersionConflict wrong", c.status)
		}
	}
}

func TestResponseCapAndTransport(t *testing.T) {
	cl := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("x"), MaxResponse+10))
	})
	if _, err := cl.Prelogin(context.Background(), "alice"); !privateline.Is(privateline.TooLarge, err) {
		t.Fatalf("an oversized answer: %v", err)
	}
	cl = fakeServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"kdf":`) })
	if _, err := cl.Prelogin(context.Background(), "alice"); !privateline.Is(privateline.Invalid, err) {
		t.Fatalf("a malformed answer: %v", err)
	}
	dead, _ := New(Options{BaseURL: "http://127.0.0.1:1"})
	if _, err := dead.Prelogin(context.Background(), "alice"); !privateline.Is(privateline.Unavailable, err) {
		t.Fatalf("an unreachable server: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := cl.Prelogin(ctx, "alice"); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled context: %v", err)
	}
	if _, err := cl.Prelogin(context.Background(), "a"); !privateline.Is(privateline.Invalid, err) {
		t.Fatalf("an invalid username: %v", err)
	}
}

func TestNewRefusesBadURLs(t *testing.T) {
	for _, u := range []string{"", "chat.example.org", "ftp://x", "https://", "https://x/?q=1", "https://u:p@x"} {
		if _, err := New(Options{BaseURL: u}); !privateline.Is(privateline.Invalid, err) {
			t.Errorf("%q: %v", u, err)
		}
	}
	c, err := New(Options{BaseURL: "https://example.org/prefix/"})
	if err != nil || c.BaseURL() != "https://example.org/prefix" {
		t.Fatalf("a path prefix: %v %v", c, err)
	}
}

// testState is a session state of alice@example.org with the fixed keys
// of spec/vectors/parties.json.
func testState(t *testing.T) SessionState {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "spec", "vectors", "parties.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Cases []struct {
			Bundle string `json:"key_bundle"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return SessionState{
		Address: "alice@example.org",
		Tokens:  Tokens{Access: privateline.Secret("a1"), Refresh: privateline.Secret("r1")},
		Wrapped: WrappedKeys{KDF: e2ee.KDFName, Iterations: e2ee.Iterations, Salt: make([]byte, 16), Nonce: make([]byte, 12), EncryptedPrivateKey: []byte("x")},
		Bundle:  []byte(f.Cases[0].Bundle),
	}
}

// TestRefreshStoresTokensFirst: the new refresh token reaches OnChange
// before the new access token is used; a refused refresh ends the session.
func TestRefreshStoresTokensFirst(t *testing.T) {
	var mu sync.Mutex
	var stored string // the refresh token OnChange saw last
	var log []string
	cl := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		auth := r.Header.Get("Authorization")
		log = append(log, r.Method+" "+r.URL.Path+" "+auth+" stored="+stored)
		switch r.URL.Path {
		case "/api/refresh":
			var req struct {
				RefreshToken string `json:"refresh_token"`
			}
			json.NewDecoder(r.Body).Decode(&req)
			if req.RefreshToken != "r1" {
				w.WriteHeader(401)
				io.WriteString(w, `{"error":{"code":"unauthenticated","message":"no"}}`)
				return
			}
			io.WriteString(w, `{"access_token":"a2","refresh_token":"r2","token_type":"Bearer","expires_in":900,"refresh_expires_in":100}`)
		case "/api/revoke", "/api/account":
			if auth != "Bearer a2" {
				w.WriteHeader(401)
				io.WriteString(w, `{"error":{"code":"unauthenticated","message":"expired"}}`)
				return
			}
			w.WriteHeader(204)
		}
	})
	s, err := cl.Resume(testState(t))
	if err != nil {
		t.Fatal(err)
	}
	s.OnChange(func(st SessionState) {
		mu.Lock()
		defer mu.Unlock()
		stored = string(st.Tokens.Refresh)
	})
	if err := s.RevokeAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"POST /api/revoke Bearer a1 stored=",
		"POST /api/refresh  stored=",
		"POST /api/revoke Bearer a2 stored=r2",
	}
	if fmt.Sprint(log) != fmt.Sprint(want) {
		t.Fatalf("requests:\n%s\nwant\n%s", strings.Join(log, "\n"), strings.Join(want, "\n"))
	}
	if !s.Ended() {
		t.Fatal("the session did not end after revoke-all")
	}

	// A refused refresh ends the session; no further request goes out.
	st := testState(t)
	st.Tokens.Refresh = privateline.Secret("stale")
	s, _ = cl.Resume(st)
	mu.Lock()
	log = nil
	mu.Unlock()
	if _, err := s.Account(context.Background()); !privateline.Is(privateline.Unauthenticated, err) || !s.Ended() {
		t.Fatalf("a refused refresh: %v", err)
	}
	if _, err := s.Account(context.Background()); !privateline.Is(privateline.Unauthenticated, err) {
		t.Fatalf("after the session ended: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(log) != 2 {
		t.Fatalf("requests after the end: %q", log)
	}
}

func TestSessionNeverPrints(t *testing.T) {
	cl := fakeServer(t, func(http.ResponseWriter, *http.Request) {})
	st := testState(t)
	st.Tokens = Tokens{Access: privateline.Secret("secret-access-token"), Refresh: privateline.Secret("secret-refresh-token")}
	s, err := cl.Resume(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []any{s, st, st.Tokens, &Registered{}} {
		for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
			if out := fmt.Sprintf(f, v); strings.Contains(out, "secret-") {
				t.Errorf("%s of %T prints a token: %s", f, v, out)
			}
		}
	}
	if s.Locked() != true {
		t.Fatal("a resumed session is unlocked")
	}
	if _, err := s.Keys(); !privateline.Is(privateline.Unauthenticated, err) {
		t.Fatalf("keys of a locked session: %v", err)
	}
	// The wrapped keys of the state are not alice's: Unlock refuses.
	if err := s.Unlock("password"); !privateline.Is(privateline.Unauthenticated, err) && !privateline.Is(privateline.Invalid, err) {
		t.Fatalf("unlock of garbage: %v", err)
	}
}
