package homeserver_test

import (
	"github.com/privateline/privateline/internal/fakeclock"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/privateline/privateline/homeserver"
)

func newManualClock() *fakeclock.Clock {
	return fakeclock.New(time.Now().UTC().Truncate(time.Second))
}

func withClock(c *fakeclock.Clock) func(*homeserver.Options) {
	return func(o *homeserver.Options) { o.Now = c.Now }
}

// doFrom is ts.do from another loopback source address (127.0.0.0/8 is
// all local on Linux), so that tests can be several clients.
func (ts *testServer) doFrom(ip, method, path, token string, body any) *response {
	ts.t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{DisableKeepAlives: true, DialContext: d.DialContext}
	defer tr.CloseIdleConnections()
	return ts.doWith(&http.Client{Transport: tr}, method, path, token, body)
}

// expectLimited checks a 429 answer and returns its Retry-After.
func expectLimited(t *testing.T, r *response, what string) time.Duration {
	t.Helper()
	if r.Status != http.StatusTooManyRequests {
		t.Fatalf("%s: %d %s, want 429", what, r.Status, r.Body)
	}
	if code := r.errorCode(t); code != "rate_limited" {
		t.Errorf("%s: error code %q, want rate_limited", what, code)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", what, ct)
	}
	if r.Header.Get("X-Content-Type-Options") != "nosniff" || r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("%s: security headers missing: %v", what, r.Header)
	}
	ra := r.Header.Get("Retry-After")
	secs, err := strconv.Atoi(ra)
	if err != nil || secs < 1 {
		t.Fatalf("%s: Retry-After %q, want whole seconds ≥ 1", what, ra)
	}
	return time.Duration(secs) * time.Second
}

func expectStatus(t *testing.T, r *response, want int, what string) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("%s: %d %s, want %d", what, r.Status, r.Body, want)
	}
}

// TestAuthRateLimitPerIP: prelogin, register, login and refresh share a
// budget per client IP; over it a client gets 429 with Retry-After, other
// clients are unaffected, and after waiting Retry-After it may go on.
func TestAuthRateLimitPerIP(t *testing.T) {
	const (
		client   = "127.0.0.1"
		other    = "127.0.0.3"
		setupIP  = "127.0.0.2"
		burst    = 3
		interval = 10 * time.Second // 6 a minute
	)
	type route struct {
		path   string
		body   func(ts *testServer, a *account) any
		status int // when not limited
	}
	routes := []route{
		{"/api/prelogin", func(_ *testServer, a *account) any { return map[string]any{"username": a.Username} }, 200},
		{"/api/register", func(_ *testServer, _ *account) any {
			name := uniqueName("rlreg")
			return registerBody(name, randB64(32), "")
		}, 201},
		{"/api/login", func(_ *testServer, a *account) any {
			return map[string]any{"username": a.Username, "auth_key": a.AuthKey}
		}, 200},
		{"/api/refresh", func(_ *testServer, _ *account) any { return map[string]any{"refresh_token": "bm9uZQ"} }, 401},
	}
	for _, rt := range routes {
		t.Run(strings.TrimPrefix(rt.path, "/api/"), func(t *testing.T) {
			cfg := testConfig(t)
			cfg.AuthRatePerMinute, cfg.AuthBurst = 6, burst
			clk := newManualClock()
			ts := startServer(t, cfg, withClock(clk))
			// The user signs up from another address, which has its own budget.
			a := &account{Username: uniqueName("rl"), AuthKey: randB64(32)}
			expectStatus(t, ts.doFrom(setupIP, "POST", "/api/register", "", registerBody(a.Username, a.AuthKey, "")), 201, "register from the setup address")
			r := ts.doFrom(setupIP, "POST", "/api/login", "", map[string]any{"username": a.Username, "auth_key": a.AuthKey})
			expectStatus(t, r, 200, "login from the setup address")
			a.Access, _ = r.json(t)["access_token"].(string)

			for i := range burst {
				expectStatus(t, ts.doFrom(client, "POST", rt.path, "", rt.body(ts, a)), rt.status, "request "+strconv.Itoa(i+1)+" of the burst")
			}
			wait := expectLimited(t, ts.doFrom(client, "POST", rt.path, "", rt.body(ts, a)), "the request after the burst")
			if wait != interval {
				t.Errorf("Retry-After %v, want %v (one request per %v)", wait, interval, interval)
			}
			// The budget is spent before the body is even read.
			expectLimited(t, ts.doFrom(client, "POST", rt.path, "", "{not json"), "a malformed request over the limit")
			// Others are not affected, nor are the limited client's
			// authenticated requests.
			expectStatus(t, ts.doFrom(other, "POST", rt.path, "", rt.body(ts, a)), rt.status, "another client")
			expectStatus(t, ts.doFrom(client, "GET", "/api/account", a.Access, nil), 200, "an authenticated request from the limited client")

			clk.Advance(wait - time.Second)
			expectLimited(t, ts.doFrom(client, "POST", rt.path, "", rt.body(ts, a)), "a second before Retry-After")
			clk.Advance(time.Second)
			expectStatus(t, ts.doFrom(client, "POST", rt.path, "", rt.body(ts, a)), rt.status, "after waiting Retry-After")
			expectLimited(t, ts.doFrom(client, "POST", rt.path, "", rt.body(ts, a)), "right after that")
		})
	}
}

// TestLoginRateLimitPerUsername: wrong logins for one username are limited
// whichever address they come from, without locking out other users.
func TestLoginRateLimitPerUsername(t *testing.T) {
	const burst = 3
	cfg := testConfig(t) // the per-IP limit stays high: all requests come from loopback
	cfg.UsernameRatePerMinute, cfg.UsernameBurst = 1, burst
	clk := newManualClock()
	ts := startServer(t, cfg, withClock(clk))
	alice := &account{Username: uniqueName("alice"), AuthKey: randB64(32)}
	bob := &account{Username: uniqueName("bob"), AuthKey: randB64(32)}
	for _, a := range []*account{alice, bob} {
		expectStatus(t, ts.do("POST", "/api/register", "", registerBody(a.Username, a.AuthKey, "")), 201, "register "+a.Username)
	}
	login := func(ip, name, key string) *response {
		return ts.doFrom(ip, "POST", "/api/login", "", map[string]any{"username": name, "auth_key": key})
	}

	for i := range burst {
		expectStatus(t, login("127.0.0.1", alice.Username, randB64(32)), 401, "wrong login "+strconv.Itoa(i+1))
	}
	wait := expectLimited(t, login("127.0.0.1", alice.Username, randB64(32)), "a wrong login over the limit")
	if wait != time.Minute {
		t.Errorf("Retry-After %v, want 1m (one login a minute)", wait)
	}
	expectLimited(t, login("127.0.0.1", alice.Username, alice.AuthKey), "the right password while limited")
	expectLimited(t, login("127.0.0.4", alice.Username, alice.AuthKey), "the right password from another address")
	expectLimited(t, login("127.0.0.5", strings.ToUpper(alice.Username), alice.AuthKey), "the name in upper case")

	// Bob is not affected, from the same address.
	expectStatus(t, login("127.0.0.1", bob.Username, bob.AuthKey), 200, "another user")
	expectStatus(t, login("127.0.0.1", bob.Username, randB64(32)), 401, "another user's wrong login")

	// Unknown names are limited the same way, so the limit tells nothing.
	for range burst {
		expectStatus(t, login("127.0.0.1", "ghost-user", randB64(32)), 401, "unknown user")
	}
	expectLimited(t, login("127.0.0.1", "ghost-user", randB64(32)), "an unknown user over the limit")

	clk.Advance(wait)
	r := login("127.0.0.1", alice.Username, alice.AuthKey)
	expectStatus(t, r, 200, "the right password after Retry-After")
	alice.Access, _ = r.json(t)["access_token"].(string)
	expectLimited(t, login("127.0.0.1", alice.Username, alice.AuthKey), "the next login at once")

	// Re-entered passwords (account deletion) share the username's budget.
	clk.Advance(burst * time.Minute)
	del := func() *response {
		return ts.do("DELETE", "/api/account", alice.Access, map[string]any{"auth_key": randB64(32)})
	}
	for i := range burst {
		expectStatus(t, del(), 403, "wrong key to delete the account "+strconv.Itoa(i+1))
	}
	expectLimited(t, del(), "a wrong key to delete the account over the limit")
	expectLimited(t, login("127.0.0.1", alice.Username, alice.AuthKey), "login after the deletion attempts")
	expectStatus(t, ts.do("GET", "/api/account", alice.Access, nil), 200, "the account is still there")
}

// TestRetryAfterIsEnoughOverHTTP: a client that waits exactly the
// Retry-After it was given gets through. The wait is rounded to whole
// seconds; it must be rounded up.
func TestRetryAfterIsEnoughOverHTTP(t *testing.T) {
	cfg := testConfig(t)
	cfg.AuthRatePerMinute, cfg.AuthBurst = 30, 1 // a token every 2 s
	clk := newManualClock()
	ts := startServer(t, cfg, withClock(clk))
	body := map[string]any{"username": "someone"}
	expectStatus(t, ts.do("POST", "/api/prelogin", "", body), 200, "the first prelogin")
	// 999.8 ms later the next token is 1.0002 s away.
	clk.Advance(999800 * time.Microsecond)
	wait := expectLimited(t, ts.do("POST", "/api/prelogin", "", body), "the second prelogin")
	clk.Advance(wait)
	r := ts.do("POST", "/api/prelogin", "", body)
	if r.Status != http.StatusOK {
		t.Errorf("after waiting Retry-After %v for a 1.0002 s wait: %d, want 200", wait, r.Status)
	}
}
