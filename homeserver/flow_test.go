package homeserver_test

import (
	"net/http"
	"testing"
)

// TestAccountFlow walks prelogin → register → login → refresh → revoke as a
// client would.
func TestAccountFlow(t *testing.T) {
	ts := startServer(t, testConfig(t))
	unknown := ts.do("POST", "/api/prelogin", "", map[string]any{"username": "nobody"})
	again := ts.do("POST", "/api/prelogin", "", map[string]any{"username": "NoBody"})
	if unknown.Status != 200 || string(unknown.Body) != string(again.Body) {
		t.Fatalf("fake prelogin not deterministic: %s vs %s", unknown.Body, again.Body)
	}
	a := ts.register("flow")
	pre := ts.do("POST", "/api/prelogin", "", map[string]any{"username": a.Username}).json(t)
	if pre["kdf"] != "pbkdf2-sha256" || pre["iterations"] != float64(600000) {
		t.Fatalf("prelogin: %v", pre)
	}
	if r := ts.do("GET", "/api/account", a.Access, nil); r.Status != 200 || r.json(t)["address"] != a.Username+"@hs.test" {
		t.Fatalf("account: %d %s", r.Status, r.Body)
	}
	r := ts.do("POST", "/api/refresh", "", map[string]any{"refresh_token": a.Refresh})
	if r.Status != http.StatusOK {
		t.Fatalf("refresh: %d %s", r.Status, r.Body)
	}
	m := r.json(t)
	access2 := m["access_token"].(string)
	if r := ts.do("POST", "/api/revoke", access2, nil); r.Status != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
	for _, tok := range []string{a.Access, access2} {
		if r := ts.do("GET", "/api/account", tok, nil); r.Status != http.StatusUnauthorized {
			t.Fatalf("token works after revoke: %d", r.Status)
		}
	}
	if r := ts.do("POST", "/api/refresh", "", map[string]any{"refresh_token": m["refresh_token"]}); r.Status != http.StatusUnauthorized {
		t.Fatalf("refresh after revoke: %d", r.Status)
	}
}
