package homeserver_test

import (
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"slices"
	"testing"
	"time"
)

// TestRefreshRotation: each refresh gives a new pair and both work.
func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig(t))
	a := ts.register("rotate")
	seen := []string{a.Refresh}
	refresh := a.Refresh
	for i := range 3 {
		access, next := refreshPair(t, ts.postRefresh(refresh))
		if slices.Contains(seen, next) {
			t.Fatalf("refresh %d returned an earlier refresh token", i)
		}
		if !ts.accessWorks(access) {
			t.Fatalf("access token from refresh %d is refused", i)
		}
		seen = append(seen, next)
		refresh = next
	}
}

// TestRefreshReuseRevokesFamily: presenting an earlier refresh token ends
// the whole session (its newest refresh token and its access tokens) but
// no other session of the same user.
func TestRefreshReuseRevokesFamily(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig(t))
	a := ts.register("reuse")
	other := ts.loginAgain(a)
	bob := ts.register("bystander")

	access1, refresh1 := refreshPair(t, ts.postRefresh(a.Refresh))
	access2, refresh2 := refreshPair(t, ts.postRefresh(refresh1))

	// The stolen first token comes back.
	expectUnauthenticated(t, ts.postRefresh(a.Refresh), "reused refresh token")

	expectUnauthenticated(t, ts.postRefresh(refresh2), "newest refresh token of a revoked family")
	for i, tok := range []string{a.Access, access1, access2} {
		if ts.accessWorks(tok) {
			t.Fatalf("access token %d of the revoked family still works", i)
		}
	}
	// The user's other session and other users are untouched.
	if !ts.accessWorks(other.Access) || !ts.accessWorks(bob.Access) {
		t.Fatal("reuse in one session ended another session")
	}
	refreshPair(t, ts.postRefresh(other.Refresh))
	refreshPair(t, ts.postRefresh(bob.Refresh))
}

// TestRefreshForgeryDoesNotRevoke: a refresh token that fails its MAC is
// refused and, since it proves nothing, must not end the session (else
// anyone who learns a session id could log its owner out).
func TestRefreshForgeryDoesNotRevoke(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig(t))
	a := ts.register("forgery")
	// Move to generation 1 so an "earlier generation" exists.
	access, current := refreshPair(t, ts.postRefresh(a.Refresh))

	raw, err := base64.RawURLEncoding.DecodeString(current)
	if err != nil || len(raw) != 16+8+32 {
		t.Fatalf("refresh token is not base64url(sid||gen||mac): %v, %d bytes", err, len(raw))
	}
	olderGen := append([]byte(nil), raw...)
	binary.BigEndian.PutUint64(olderGen[16:24], binary.BigEndian.Uint64(raw[16:24])-1)
	cases := []struct{ name, token string }{
		// Character 50 lies in the MAC (bytes 24..55 are characters 32..74).
		{"one character of the MAC flipped", flipBase64Char(current, 50)},
		{"earlier generation with the current MAC", base64.RawURLEncoding.EncodeToString(olderGen)},
		{"truncated", current[:len(current)-4]},
	}
	for _, tc := range cases {
		expectUnauthenticated(t, ts.postRefresh(tc.token), tc.name)
		if !ts.accessWorks(access) {
			t.Fatalf("%s: the session's access token stopped working", tc.name)
		}
	}
	refreshPair(t, ts.postRefresh(current))
}

// TestRefreshExpiry moves the clock across RefreshTokenTTL: a session
// refreshed shortly before gets a new lifetime, one left alone expires.
func TestRefreshExpiry(t *testing.T) {
	t.Parallel()
	clk := newStepClock()
	ts := startServer(t, testConfig(t), withStepClock(clk))
	active := ts.register("active")
	idle := ts.register("idle")
	ttl := ts.cfg.RefreshTokenTTL

	clk.Advance(ttl - time.Minute)
	_, renewed := refreshPair(t, ts.postRefresh(active.Refresh))
	clk.Advance(time.Minute + time.Second)
	expectUnauthenticated(t, ts.postRefresh(idle.Refresh), "refresh token past RefreshTokenTTL")
	access, _ := refreshPair(t, ts.postRefresh(renewed))
	if !ts.accessWorks(access) {
		t.Fatal("access token of the renewed session is refused")
	}
}

// TestRevoke: POST /api/revoke ends the calling session only; with
// {"all": true} every session of the user, and nobody else's.
func TestRevoke(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig(t))
	a1 := ts.register("revoker")
	a2 := ts.loginAgain(a1)
	bob := ts.register("unrelated")

	expectHTTPStatus(t, ts.do("POST", "/api/revoke", a1.Access, nil), http.StatusNoContent, "revoke")
	if ts.accessWorks(a1.Access) {
		t.Fatal("access token works after revoking its session")
	}
	expectUnauthenticated(t, ts.postRefresh(a1.Refresh), "refresh token of a revoked session")
	if !ts.accessWorks(a2.Access) {
		t.Fatal("revoking one session ended another")
	}
	a2.Access, a2.Refresh = refreshPair(t, ts.postRefresh(a2.Refresh))

	a3 := ts.loginAgain(a1)
	expectHTTPStatus(t, ts.do("POST", "/api/revoke", a3.Access, map[string]any{"all": true}), http.StatusNoContent, "revoke all")
	for _, s := range []*account{a2, a3} {
		if ts.accessWorks(s.Access) {
			t.Fatal("an access token of the user works after revoke all")
		}
		expectUnauthenticated(t, ts.postRefresh(s.Refresh), "refresh after revoke all")
	}
	if !ts.accessWorks(bob.Access) {
		t.Fatal("revoke all ended another user's session")
	}
	refreshPair(t, ts.postRefresh(bob.Refresh))
	// The account itself is not locked.
	if !ts.accessWorks(ts.loginAgain(a1).Access) {
		t.Fatal("cannot log in again after revoke all")
	}
}

// TestCookieSessions: browsers get HttpOnly cookies instead of tokens, and
// state-changing cookie requests need the CSRF token when configured.
func TestCookieSessions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		sameSite http.SameSite
		secure   bool
		csrf     bool
	}{
		{"defaults: Strict, not Secure, CSRF", http.SameSiteStrictMode, false, true},
		{"Lax, Secure, CSRF", http.SameSiteLaxMode, true, true},
		{"None, Secure, no CSRF", http.SameSiteNoneMode, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			cfg.CookieSameSite, cfg.CookieSecure, cfg.CookieCSRF = tc.sameSite, tc.secure, tc.csrf
			ts := startServer(t, cfg)
			a := ts.register("cookie")

			r := ts.do("POST", "/api/login", "", map[string]any{"username": a.Username, "auth_key": a.AuthKey, "use_cookies": true})
			expectHTTPStatus(t, r, http.StatusOK, "cookie login")
			body := r.json(t)
			if body["access_token"] != nil || body["refresh_token"] != nil {
				t.Fatalf("cookie login put tokens in the body: %s", r.Body)
			}
			csrf, _ := body["csrf_token"].(string)
			if csrf == "" {
				t.Fatalf("cookie login without csrf_token: %s", r.Body)
			}
			ck := checkSessionCookies(t, r, tc.sameSite, tc.secure)
			if ck["pl_csrf"].Value != csrf {
				t.Fatalf("pl_csrf cookie %q differs from csrf_token %q", ck["pl_csrf"].Value, csrf)
			}
			access := "pl_access=" + ck["pl_access"].Value

			if r := ts.do("GET", "/api/account", "", nil, "Cookie", access); r.Status != http.StatusOK || r.json(t)["username"] != a.Username {
				t.Fatalf("GET /api/account with the cookie: %d %s", r.Status, r.Body)
			}
			change := map[string]any{"default_retention_days": 30}
			r = ts.do("PUT", "/api/account-settings", "", change, "Cookie", access)
			if tc.csrf {
				expectAPIError(t, r, http.StatusForbidden, "csrf_failed", "cookie PUT without X-CSRF-Token")
				// Another session's CSRF token does not fit this session.
				other := ts.do("POST", "/api/login", "", map[string]any{"username": a.Username, "auth_key": a.AuthKey, "use_cookies": true}).json(t)["csrf_token"].(string)
				expectAPIError(t, ts.do("PUT", "/api/account-settings", "", change, "Cookie", access, "X-CSRF-Token", other), http.StatusForbidden, "csrf_failed", "cookie PUT with another session's CSRF token")
				if m := ts.do("GET", "/api/account", a.Access, nil).json(t); m["default_retention_days"] != float64(0) {
					t.Fatalf("refused cookie PUT changed the account: %v", m)
				}
			} else {
				expectHTTPStatus(t, r, http.StatusOK, "cookie PUT without X-CSRF-Token (CSRF protection off)")
			}
			expectHTTPStatus(t, ts.do("PUT", "/api/account-settings", "", change, "Cookie", access, "X-CSRF-Token", csrf), http.StatusOK, "cookie PUT with X-CSRF-Token")

			refreshCookie := "pl_refresh=" + ck["pl_refresh"].Value
			if tc.csrf {
				expectAPIError(t, ts.do("POST", "/api/refresh", "", nil, "Cookie", refreshCookie), http.StatusForbidden, "csrf_failed", "cookie refresh without X-CSRF-Token")
			}
			headers := []string{"Cookie", refreshCookie}
			if tc.csrf {
				headers = append(headers, "X-CSRF-Token", csrf)
			}
			r = ts.do("POST", "/api/refresh", "", nil, headers...)
			expectHTTPStatus(t, r, http.StatusOK, "cookie refresh")
			if m := r.json(t); m["access_token"] != nil || m["refresh_token"] != nil {
				t.Fatalf("cookie refresh put tokens in the body: %s", r.Body)
			}
			next := checkSessionCookies(t, r, tc.sameSite, tc.secure)
			if next["pl_refresh"].Value == ck["pl_refresh"].Value || next["pl_access"].Value == ck["pl_access"].Value {
				t.Fatal("cookie refresh did not rotate the cookies")
			}
			if r := ts.do("GET", "/api/account", "", nil, "Cookie", "pl_access="+next["pl_access"].Value); r.Status != http.StatusOK {
				t.Fatalf("GET /api/account with the refreshed cookie: %d %s", r.Status, r.Body)
			}
		})
	}
}

// checkSessionCookies checks the three session cookies of a response and
// returns them by name.
func checkSessionCookies(t *testing.T, r *response, sameSite http.SameSite, secure bool) map[string]*http.Cookie {
	t.Helper()
	got := map[string]*http.Cookie{}
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		got[c.Name] = c
	}
	for _, want := range []struct {
		name, path string
		httpOnly   bool
	}{
		{"pl_access", "/", true},
		{"pl_refresh", "/api/", true},
		{"pl_csrf", "/", false},
	} {
		c := got[want.name]
		if c == nil || c.Value == "" {
			t.Fatalf("no %s cookie in %q", want.name, r.Header.Values("Set-Cookie"))
		}
		if c.HttpOnly != want.httpOnly || c.Secure != secure || c.SameSite != sameSite || c.Path != want.path || c.MaxAge <= 0 {
			t.Fatalf("%s cookie: HttpOnly=%v Secure=%v SameSite=%v Path=%q MaxAge=%d; want HttpOnly=%v Secure=%v SameSite=%v Path=%q and a lifetime",
				want.name, c.HttpOnly, c.Secure, c.SameSite, c.Path, c.MaxAge, want.httpOnly, secure, sameSite, want.path)
		}
	}
	return got
}

// TestLoginTiming: a wrong username and a wrong key get the same answer and
// take about as long (both run Argon2id). A coarse check: medians of five
// interleaved attempts within a factor of three. Not parallel, so other
// tests do not skew it.
func TestLoginTiming(t *testing.T) {
	ts := startServer(t, testConfig(t))
	a := ts.register("timing")
	attempt := func(name, key string) (*response, time.Duration) {
		start := time.Now()
		r := ts.do("POST", "/api/login", "", map[string]any{"username": name, "auth_key": key})
		return r, time.Since(start)
	}
	// Warm up connections and caches.
	attempt(a.Username, randB64(32))
	attempt("nobody-warm", randB64(32))

	var wrongName, wrongKey []time.Duration
	var nameBody, keyBody []byte
	for i := range 5 {
		r, d := attempt(uniqueName("nosuchuser"), randB64(32))
		expectUnauthenticated(t, r, "unknown username")
		wrongName, nameBody = append(wrongName, d), r.Body
		r, d = attempt(a.Username, randB64(32))
		expectUnauthenticated(t, r, "wrong key")
		wrongKey, keyBody = append(wrongKey, d), r.Body
		if string(nameBody) != string(keyBody) {
			t.Fatalf("attempt %d: wrong username and wrong key answer differently:\n%s\n%s", i, nameBody, keyBody)
		}
	}
	mn, mk := medianDuration(wrongName), medianDuration(wrongKey)
	t.Logf("median login time: unknown username %v, wrong key %v", mn, mk)
	if mn*3 < mk || mk*3 < mn {
		t.Fatalf("login timing differs by more than 3x: unknown username %v, wrong key %v", mn, mk)
	}
}

func medianDuration(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
