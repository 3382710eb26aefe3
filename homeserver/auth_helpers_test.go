package homeserver_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"github.com/privateline/privateline/internal/fakeclock"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/privateline/privateline/homeserver"
)

// Helpers shared by the auth_*, account_* and startup_* tests.

func newStepClock() *fakeclock.Clock {
	// Whole seconds: JWT times are whole seconds, so boundaries are exact.
	return fakeclock.New(time.Now().Truncate(time.Second))
}

// withStepClock is a startServer option: the server's clock is c.
func withStepClock(c *fakeclock.Clock) func(*homeserver.Options) {
	return func(o *homeserver.Options) { o.Now = c.Now }
}

// expectUnauthenticated fails unless r is a 401 with the JSON error body
// {"error": {"code": "unauthenticated", "message": ...}}.
func expectUnauthenticated(t testing.TB, r *response, what string) {
	t.Helper()
	expectAPIError(t, r, http.StatusUnauthorized, "unauthenticated", what)
	if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("%s: 401 without a WWW-Authenticate: Bearer challenge (got %q)", what, r.Header.Get("WWW-Authenticate"))
	}
}

// expectAPIError fails unless r has the status and the JSON error code.
func expectAPIError(t testing.TB, r *response, status int, code, what string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: status %d, want %d; body %s", what, r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s: Content-Type %q, want application/json", what, ct)
	}
	e, ok := r.json(t)["error"].(map[string]any)
	if !ok {
		t.Fatalf("%s: body has no error object: %s", what, r.Body)
	}
	if e["code"] != code {
		t.Fatalf("%s: error code %v, want %q; body %s", what, e["code"], code, r.Body)
	}
	if msg, _ := e["message"].(string); msg == "" {
		t.Fatalf("%s: error without a message: %s", what, r.Body)
	}
}

// expectHTTPStatus fails unless r has the status.
func expectHTTPStatus(t testing.TB, r *response, status int, what string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: status %d, want %d; body %s", what, r.Status, status, r.Body)
	}
}

// accountKeys is the key material a client registers, kept so tests can
// look for it in responses and in the store.
type accountKeys struct {
	AuthKey, Wrapped, Salt, Nonce string // standard base64, as on the wire
}

func newAccountKeys() accountKeys {
	return accountKeys{AuthKey: randB64(32), Wrapped: randB64(1200), Salt: randB64(16), Nonce: randB64(12)}
}

// registerKeys registers a user with known key material and logs in.
func (ts *testServer) registerKeys(prefix string, m accountKeys) *account {
	ts.t.Helper()
	a := &account{Username: uniqueName(prefix), AuthKey: m.AuthKey}
	a.Email = a.Username + "@mail.example"
	body := registerBody(a.Username, m.AuthKey, a.Email)
	body["encrypted_private_key"], body["salt"], body["nonce"] = m.Wrapped, m.Salt, m.Nonce
	if r := ts.do("POST", "/api/register", "", body); r.Status != http.StatusCreated {
		ts.t.Fatalf("register %s: %d %s", a.Username, r.Status, r.Body)
	}
	ts.login(a)
	return a
}

// loginAgain logs a in again and returns the new session's tokens, leaving
// a's own tokens as they were.
func (ts *testServer) loginAgain(a *account) *account {
	ts.t.Helper()
	s := *a
	ts.login(&s)
	return &s
}

// postRefresh presents a refresh token in the body.
func (ts *testServer) postRefresh(tok string) *response {
	ts.t.Helper()
	return ts.do("POST", "/api/refresh", "", map[string]any{"refresh_token": tok})
}

// refreshPair reads the access and refresh tokens of a refresh answer.
func refreshPair(t testing.TB, r *response) (access, refresh string) {
	t.Helper()
	expectHTTPStatus(t, r, http.StatusOK, "refresh")
	m := r.json(t)
	access, _ = m["access_token"].(string)
	refresh, _ = m["refresh_token"].(string)
	if access == "" || refresh == "" {
		t.Fatalf("refresh answer without tokens: %s", r.Body)
	}
	return access, refresh
}

// accessWorks reports whether GET /api/account accepts the access token;
// any answer other than 200 or 401 fails the test.
func (ts *testServer) accessWorks(access string) bool {
	ts.t.Helper()
	r := ts.do("GET", "/api/account", access, nil)
	switch r.Status {
	case http.StatusOK:
		return true
	case http.StatusUnauthorized:
		expectUnauthenticated(ts.t, r, "GET /api/account")
		return false
	}
	ts.t.Fatalf("GET /api/account: unexpected %d %s", r.Status, r.Body)
	return false
}

// generatedJWTSecret is the JWT secret a development server generated into
// its data directory (the secret is the file's text, not its decoding).
func generatedJWTSecret(t testing.TB, cfg homeserver.Config) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cfg.DataDir, "jwt_secret_key"))
	if err != nil {
		t.Fatalf("reading the generated JWT secret: %v", err)
	}
	return bytes.TrimSpace(b)
}

// jwtClaims returns the claims of a token without verifying it.
func jwtClaims(t testing.TB, token string) jwt.MapClaims {
	t.Helper()
	c := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(token, c); err != nil {
		t.Fatalf("parsing %q: %v", token, err)
	}
	return c
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// validAccessClaims are valid access-token claims for the session of a real
// token, at time now, with a fresh jti: the shape of clientapi/tokens.go.
func validAccessClaims(t testing.TB, serverName string, now time.Time, realToken string) jwt.MapClaims {
	t.Helper()
	issued := jwtClaims(t, realToken)
	return jwt.MapClaims{
		"sid": issued["sid"],
		"iss": serverName,
		"sub": issued["sub"],
		"aud": []string{"privateline-client"},
		"exp": now.Add(15 * time.Minute).Unix(),
		"iat": now.Unix(),
		"jti": randomHex(16),
	}
}

// mintJWT signs claims with method and key.
func mintJWT(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatalf("signing a %s token: %v", method.Alg(), err)
	}
	return s
}

// replaceJWTPayload swaps a JWT's payload for claims and keeps its header
// and signature.
func replaceJWTPayload(t testing.TB, token string, claims jwt.MapClaims) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	p, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SigningString()
	if err != nil {
		t.Fatal(err)
	}
	parts[1] = strings.Split(p, ".")[1]
	return strings.Join(parts, ".")
}

// flipBase64Char replaces the character at i with another character of the
// base64url alphabet, so the result still decodes.
func flipBase64Char(s string, i int) string {
	c := byte('A')
	if s[i] == 'A' {
		c = 'B'
	}
	return s[:i] + string(c) + s[i+1:]
}

// unbase64 decodes standard base64 (test key material).
func unbase64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
