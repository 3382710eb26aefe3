package homeserver_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestAccessTokenMatrix presents GET /api/account with tokens that are
// wrong in exactly one way; each must get 401 "unauthenticated". Forged
// tokens are signed with the server's real (generated) secret so that the
// property under test is the only thing wrong, and a control minted by the
// same code shows that such a token is otherwise accepted.
func TestAccessTokenMatrix(t *testing.T) {
	t.Parallel()
	clk := newStepClock()
	ts := startServer(t, testConfig(t), withStepClock(clk))
	secret := generatedJWTSecret(t, ts.cfg)
	alice, bob := ts.register("mxalice"), ts.register("mxbob")
	now := clk.Now()
	iss := string(ts.cfg.ServerName)
	valid := func() jwt.MapClaims { return validAccessClaims(t, iss, now, alice.Access) }
	hs256 := func(c jwt.MapClaims) string { return mintJWT(t, jwt.SigningMethodHS256, secret, c) }

	// The control: minted from scratch for alice's live session.
	control := hs256(valid())
	if r := ts.do("GET", "/api/account", control, nil); r.Status != http.StatusOK || r.json(t)["username"] != alice.Username {
		t.Fatalf("control token minted with the server's secret is refused: %d %s", r.Status, r.Body)
	}

	// A second session of alice, revoked: its token, and a fresh token
	// for alice's live session that reuses the revoked jti.
	revoked := ts.loginAgain(alice)
	expectHTTPStatus(t, ts.do("POST", "/api/revoke", revoked.Access, nil), http.StatusNoContent, "revoke")
	revokedJTI := jwtClaims(t, revoked.Access)["jti"]

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	with := func(edit func(jwt.MapClaims)) string {
		c := valid()
		edit(c)
		return hs256(c)
	}
	bobSub := jwtClaims(t, bob.Access)["sub"]
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, valid()).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	aliceParts := strings.Split(alice.Access, ".")

	cases := []struct {
		name          string
		authorization string // the whole Authorization header
	}{
		{"alg none", "Bearer " + none},
		{"alg none keeping a real signature", "Bearer " + base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + aliceParts[1] + "." + aliceParts[2]},
		{"HS512 with the server's secret", "Bearer " + mintJWT(t, jwt.SigningMethodHS512, secret, valid())},
		{"HS256 with another secret", "Bearer " + mintJWT(t, jwt.SigningMethodHS256, []byte(strings.Repeat("k", 44)), valid())},
		{"RS256", "Bearer " + mintJWT(t, jwt.SigningMethodRS256, rsaKey, valid())},
		{"ES256", "Bearer " + mintJWT(t, jwt.SigningMethodES256, ecKey, valid())},
		{"expired", "Bearer " + with(func(c jwt.MapClaims) {
			c["exp"] = now.Add(-time.Second).Unix()
			c["iat"] = now.Add(-16 * time.Minute).Unix()
		})},
		{"issued in the future", "Bearer " + with(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Hour).Unix() })},
		{"wrong aud", "Bearer " + with(func(c jwt.MapClaims) { c["aud"] = []string{"privateline-admin"} })},
		{"no aud", "Bearer " + with(func(c jwt.MapClaims) { delete(c, "aud") })},
		{"wrong iss", "Bearer " + with(func(c jwt.MapClaims) { c["iss"] = "evil.example" })},
		{"missing exp", "Bearer " + with(func(c jwt.MapClaims) { delete(c, "exp") })},
		{"missing jti", "Bearer " + with(func(c jwt.MapClaims) { delete(c, "jti") })},
		{"missing sub", "Bearer " + with(func(c jwt.MapClaims) { delete(c, "sub") })},
		{"missing sid", "Bearer " + with(func(c jwt.MapClaims) { delete(c, "sid") })},
		{"unknown sid", "Bearer " + with(func(c jwt.MapClaims) { c["sid"] = randomHex(16) })},
		{"sub of another user on the caller's session, re-signed", "Bearer " + with(func(c jwt.MapClaims) { c["sub"] = bobSub })},
		{"tampered payload (sub of another user, old signature)", "Bearer " + replaceJWTPayload(t, alice.Access, func() jwt.MapClaims {
			c := jwtClaims(t, alice.Access)
			c["sub"] = bobSub
			return c
		}())},
		{"tampered signature", "Bearer " + aliceParts[0] + "." + aliceParts[1] + "." + flipBase64Char(aliceParts[2], 10)},
		{"revoked token", "Bearer " + revoked.Access},
		{"revoked jti on a live session", "Bearer " + with(func(c jwt.MapClaims) { c["jti"] = revokedJTI })},
		{"refresh token as access token", "Bearer " + alice.Refresh},
		{"garbage", "Bearer not-a-token"},
		{"three garbage segments", "Bearer a.b.c"},
		{"Bearer with an empty token", "Bearer "},
		{"Bearer alone", "Bearer"},
		{"Basic scheme", "Basic " + base64.StdEncoding.EncodeToString([]byte(alice.Username+":"+alice.AuthKey))},
		{"valid token under the Basic scheme", "Basic " + alice.Access},
		{"token without a scheme", alice.Access},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.do("GET", "/api/account", "", nil, "Authorization", tc.authorization)
			expectUnauthenticated(t, r, tc.name)
		})
	}

	// None of the attempts harmed alice: her token and the control work.
	for _, tok := range []string{alice.Access, control} {
		if !ts.accessWorks(tok) {
			t.Fatal("alice's valid token stopped working after the forged attempts")
		}
	}
}

// TestAccessTokenExpiry moves the fake clock across the 15-minute lifetime
// of an access token.
func TestAccessTokenExpiry(t *testing.T) {
	t.Parallel()
	clk := newStepClock()
	ts := startServer(t, testConfig(t), withStepClock(clk))
	a := ts.register("expiry")
	clk.Advance(15*time.Minute - time.Second)
	if !ts.accessWorks(a.Access) {
		t.Fatal("access token refused one second before its 15-minute expiry")
	}
	clk.Advance(2 * time.Second)
	expectUnauthenticated(t, ts.do("GET", "/api/account", a.Access, nil), "access token after 15 minutes")
	// The session itself is fine: the refresh token gives a new access token.
	access, _ := refreshPair(t, ts.postRefresh(a.Refresh))
	if !ts.accessWorks(access) {
		t.Fatal("access token from a refresh after expiry is refused")
	}
}

// crossUserCases say, for each authenticated route, what bob does with his
// own valid token that could touch alice if the server trusted anything but
// the token, and what bob must get. A route missing here fails
// TestAuthenticatedRoutes, so new routes are not left out.
var crossUserCases = map[string]func(t *testing.T, ts *testServer, alice, bob *account){
	"GET /api/account": func(t *testing.T, ts *testServer, alice, bob *account) {
		r := ts.do("GET", "/api/account", bob.Access, nil)
		if r.Status != http.StatusOK || r.json(t)["username"] != bob.Username {
			t.Fatalf("bob's GET /api/account: %d %s", r.Status, r.Body)
		}
	},
	"PUT /api/account-settings": func(t *testing.T, ts *testServer, alice, bob *account) {
		// Alice's current key with bob's token proves nothing.
		r := ts.do("PUT", "/api/account-settings", bob.Access, map[string]any{
			"email": "mallory@evil.example",
			"password": map[string]any{
				"current_auth_key": alice.AuthKey, "auth_key": randB64(32),
				"encrypted_private_key": randB64(64), "salt": randB64(16), "nonce": randB64(12),
			},
		})
		expectAPIError(t, r, http.StatusForbidden, "wrong_password", "password change with bob's token and alice's key")
		// A plain change with bob's token changes bob.
		r = ts.do("PUT", "/api/account-settings", bob.Access, map[string]any{"email": "bob-new@mail.example", "default_retention_days": 7})
		if r.Status != http.StatusOK || r.json(t)["username"] != bob.Username {
			t.Fatalf("bob's settings change: %d %s", r.Status, r.Body)
		}
		if m := ts.do("GET", "/api/account", bob.Access, nil).json(t); m["email"] != "bob-new@mail.example" {
			t.Fatalf("bob's email not changed: %v", m)
		}
	},
	"DELETE /api/account": func(t *testing.T, ts *testServer, alice, bob *account) {
		r := ts.do("DELETE", "/api/account", bob.Access, map[string]any{"auth_key": alice.AuthKey})
		expectAPIError(t, r, http.StatusForbidden, "wrong_password", "DELETE /api/account with bob's token and alice's key")
		if !ts.accessWorks(bob.Access) {
			t.Fatal("bob's account or session is gone after a refused deletion")
		}
		ts.login(&account{Username: bob.Username, AuthKey: bob.AuthKey})
	},
	"POST /api/revoke": func(t *testing.T, ts *testServer, alice, bob *account) {
		expectHTTPStatus(t, ts.do("POST", "/api/revoke", bob.Access, map[string]any{"all": true}), http.StatusNoContent, "bob revokes all")
		if ts.accessWorks(bob.Access) {
			t.Fatal("bob's token works after he revoked all his sessions")
		}
	},
}

// TestAuthenticatedRoutes checks every route that needs a token: without
// one, with a malformed one, and with another user's valid token, which
// must act on its owner only.
func TestAuthenticatedRoutes(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig(t))
	var routes []string
	for _, rt := range ts.srv.API().Routes() {
		if rt.Auth {
			routes = append(routes, rt.Method+" "+rt.Path)
		}
	}
	if len(routes) == 0 {
		t.Fatal("no authenticated routes listed")
	}
	alice := ts.register("victim")
	for _, route := range routes {
		method, path, _ := strings.Cut(route, " ")
		path = fillRouteParams(path)
		t.Run(route, func(t *testing.T) {
			expectUnauthenticated(t, ts.do(method, path, "", nil), "no token")
			expectUnauthenticated(t, ts.do(method, path, "", map[string]any{}), "no token, with a body")
			expectUnauthenticated(t, ts.do(method, path, "not.a.jwt", map[string]any{}), "malformed token")
			expectUnauthenticated(t, ts.do(method, path, "", nil, "Authorization", "Token "+alice.Access), "unknown scheme")

			cross, ok := crossUserCases[route]
			if !ok {
				t.Fatalf("no cross-user case for %s: add one to crossUserCases", route)
			}
			before := ts.do("GET", "/api/account", alice.Access, nil)
			expectHTTPStatus(t, before, http.StatusOK, "alice before")
			bob := ts.register("attacker")
			cross(t, ts, alice, bob)
			after := ts.do("GET", "/api/account", alice.Access, nil)
			if after.Status != http.StatusOK || string(after.Body) != string(before.Body) {
				t.Fatalf("alice's account changed through %s with bob's token:\nbefore %s\nafter  %d %s", route, before.Body, after.Status, after.Body)
			}
			// Alice can still log in with her key (a new session, so the
			// next case reads a fresh "before").
			ts.login(&account{Username: alice.Username, AuthKey: alice.AuthKey})
		})
	}
}

// fillRouteParams replaces httprouter parameters (:name, *name) with a value.
func fillRouteParams(path string) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, ":") || strings.HasPrefix(s, "*") {
			segs[i] = "x0"
		}
	}
	return strings.Join(segs, "/")
}
