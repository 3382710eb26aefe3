package homeserver_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/e2ee"
	"github.com/privateline/privateline/homeserver"
)

func init() {
	fileOf := func(t *testing.T, ts *testServer, a *account) string {
		r := ts.upload(a, []byte("blob of "+a.Username))
		expectHTTPStatus(t, r, http.StatusCreated, a.Username+" uploads")
		return r.json(t)["id"].(string)
	}
	// aliceFiles are a file of alice's that no message lists and one she
	// sent to carol, with their bytes; bob is neither's uploader nor a
	// recipient.
	type aliceFile struct{ id, blob string }
	aliceFiles := func(t *testing.T, ts *testServer, alice *account) []aliceFile {
		t.Helper()
		unsent := aliceFile{fileOf(t, ts, alice), "blob of " + alice.Username}
		aliceKA := &keyAccount{account: alice, Address: privateline.Address(alice.Username + "@hs.test"),
			Keys: newTestKeys(t, privateline.Address(alice.Username+"@hs.test"), "alice", time.Now())}
		carol := ts.registerWithKeys("xfcarol", "carol")
		att, blob := ts.uploadAttachment(alice, randBytes(1000))
		ts.sendOK(aliceKA, sealFor(t, aliceKA, []*e2ee.KeyBundle{carol.Keys.Bundle}, "for carol", withFiles(att)))
		expectHTTPStatus(t, ts.do("GET", "/api/files/"+att.FileID, carol.Access, nil), http.StatusOK, "carol, a recipient")
		return []aliceFile{unsent, {att.FileID, string(blob)}}
	}
	stillAlices := func(t *testing.T, ts *testServer, alice *account, files []aliceFile) {
		t.Helper()
		for _, f := range files {
			if r := ts.do("GET", "/api/files/"+f.id, alice.Access, nil); r.Status != http.StatusOK || string(r.Body) != f.blob {
				t.Fatalf("alice's file %s after bob's attempts: %d, %d bytes", f.id, r.Status, len(r.Body))
			}
		}
	}
	crossUserCases["POST /api/files"] = func(t *testing.T, ts *testServer, alice, bob *account) {
		id := fileOf(t, ts, bob)
		expectAPIError(t, ts.do("GET", "/api/files/"+id, alice.Access, nil), http.StatusNotFound, "not_found", "alice reads bob's unsent file")
		// Bob cannot make alice's file his by listing it in his message.
		files := aliceFiles(t, ts, alice)
		bobKA := &keyAccount{account: bob, Address: privateline.Address(bob.Username + "@hs.test"),
			Keys: newTestKeys(t, privateline.Address(bob.Username+"@hs.test"), "bob", time.Now())}
		aliceKeys := newTestKeys(t, privateline.Address(alice.Username+"@hs.test"), "alice", time.Now())
		for _, f := range files {
			m := sealFor(t, bobKA, []*e2ee.KeyBundle{aliceKeys.Bundle}, "bob lists alice's file",
				withFiles(e2ee.Attachment{FileID: f.id, Key: make([]byte, 32), SHA256: make([]byte, 32), Size: int64(len(f.blob)), Name: "x", MIME: "text/plain"}))
			expectAPIError(t, ts.send(bobKA, m), http.StatusBadRequest, "unknown_file", "bob's message listing alice's file")
			expectAPIError(t, ts.do("GET", "/api/files/"+f.id, bob.Access, nil), http.StatusNotFound, "not_found", "bob reads alice's file after listing it")
		}
		stillAlices(t, ts, alice, files)
	}
	crossUserCases["GET /api/files/:id"] = func(t *testing.T, ts *testServer, alice, bob *account) {
		files := aliceFiles(t, ts, alice)
		for _, f := range files {
			expectAPIError(t, ts.do("GET", "/api/files/"+f.id, bob.Access, nil), http.StatusNotFound, "not_found", "bob reads alice's file")
			expectAPIError(t, ts.do("GET", "/api/files/"+f.id, bob.Access, nil, "Range", "bytes=0-9"), http.StatusNotFound, "not_found", "bob reads part of alice's file")
		}
		stillAlices(t, ts, alice, files)
	}
	crossUserCases["DELETE /api/files/:id"] = func(t *testing.T, ts *testServer, alice, bob *account) {
		files := aliceFiles(t, ts, alice)
		for _, f := range files {
			expectAPIError(t, ts.do("DELETE", "/api/files/"+f.id, bob.Access, nil), http.StatusNotFound, "not_found", "bob deletes alice's file")
		}
		stillAlices(t, ts, alice, files)
		// The sent one is still in use (its message lives), the other hers to delete.
		expectAPIError(t, ts.do("DELETE", "/api/files/"+files[1].id, alice.Access, nil), http.StatusConflict, "file_in_use", "alice deletes her sent file")
		expectHTTPStatus(t, ts.do("DELETE", "/api/files/"+files[0].id, alice.Access, nil), http.StatusNoContent, "alice deletes her unsent file")
	}
	// Retention settings are the caller's, per peer: alice's settings
	// (for carol and for bob) are what bob aims at, by the same paths.
	retention := func(method string) func(t *testing.T, ts *testServer, alice, bob *account) {
		return func(t *testing.T, ts *testServer, alice, bob *account) {
			aliceAddr, bobAddr, carolAddr := alice.Username+"@hs.test", bob.Username+"@hs.test", uniqueName("xrcarol")+"@hs.test"
			expectHTTPStatus(t, ts.do("PUT", "/api/conversations/"+carolAddr+"/retention", alice.Access, map[string]any{"seconds": 3600}), http.StatusOK, "alice's setting for carol")
			expectHTTPStatus(t, ts.do("PUT", "/api/conversations/"+bobAddr+"/retention", alice.Access, map[string]any{"seconds": 120}), http.StatusOK, "alice's setting for bob")
			for _, peer := range []string{carolAddr, aliceAddr} {
				var body any
				if method == "PUT" {
					body = map[string]any{"seconds": 60}
				}
				r := ts.do(method, "/api/conversations/"+peer+"/retention", bob.Access, body)
				switch method {
				case "GET":
					if m := r.json(t); r.Status != http.StatusOK || m["seconds"] != nil || m["address"] != peer {
						t.Fatalf("bob's GET for %s shows %d %s", peer, r.Status, r.Body)
					}
				case "PUT":
					if m := r.json(t); r.Status != http.StatusOK || m["seconds"] != float64(60) {
						t.Fatalf("bob's PUT for %s: %d %s", peer, r.Status, r.Body)
					}
				default:
					expectHTTPStatus(t, r, http.StatusNoContent, "bob's DELETE for "+peer)
				}
			}
			for peer, want := range map[string]float64{carolAddr: 3600, bobAddr: 120} {
				if m := ts.do("GET", "/api/conversations/"+peer+"/retention", alice.Access, nil).json(t); m["seconds"] != want {
					t.Fatalf("alice's setting for %s after bob's %s: %v", peer, method, m)
				}
				expectHTTPStatus(t, ts.do("DELETE", "/api/conversations/"+peer+"/retention", alice.Access, nil), http.StatusNoContent, "alice clears hers")
			}
		}
	}
	for _, m := range []string{"GET", "PUT", "DELETE"} {
		crossUserCases[m+" /api/conversations/:address/retention"] = retention(m)
	}
	push := func(t *testing.T, ts *testServer, alice, bob *account) {
		tok := strings.Repeat("ab", 32)
		expectHTTPStatus(t, ts.do("POST", "/api/push-token", alice.Access, map[string]any{"token": tok, "platform": "ios"}), http.StatusCreated, "alice registers")
		expectHTTPStatus(t, ts.do("POST", "/api/push-token", bob.Access, map[string]any{"token": tok, "platform": "ios"}), http.StatusCreated, "bob registers the same token, as his own")
		expectHTTPStatus(t, ts.do("DELETE", "/api/push-token", bob.Access, map[string]any{"token": tok}), http.StatusNoContent, "bob removes his")
		expectAPIError(t, ts.do("DELETE", "/api/push-token", bob.Access, map[string]any{"token": tok}), http.StatusNotFound, "not_found", "bob removes alice's")
		if got := pushTokens(t, ts, alice); len(got) != 1 || got[0]["token"] != tok {
			t.Fatalf("alice's tokens after bob's attempts: %v", got)
		}
		if got := pushTokens(t, ts, bob); len(got) != 0 {
			t.Fatalf("bob sees tokens: %v", got)
		}
		expectHTTPStatus(t, ts.do("DELETE", "/api/push-token", alice.Access, map[string]any{"token": tok}), http.StatusNoContent, "alice removes hers")
	}
	for _, m := range []string{"POST", "GET", "DELETE"} {
		crossUserCases[m+" /api/push-token"] = push
	}
}

func pushTokens(t *testing.T, ts *testServer, a *account) []map[string]any {
	t.Helper()
	r := ts.do("GET", "/api/push-token", a.Access, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET /api/push-token: %d %s", r.Status, r.Body)
	}
	var body struct {
		Tokens []map[string]any `json:"tokens"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatal(err)
	}
	return body.Tokens
}

func webSubscription(endpoint string) string {
	p := make([]byte, 65)
	p[0] = 4
	b, _ := json.Marshal(map[string]any{"endpoint": endpoint, "expirationTime": nil, "keys": map[string]string{
		"p256dh": base64.RawURLEncoding.EncodeToString(p), "auth": base64.URLEncoding.EncodeToString(make([]byte, 16)),
	}})
	return string(b)
}

// TestPushTokens: registration per platform with strict formats,
// idempotence, the bound per user, removal, and account deletion.
func TestPushTokens(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig(t))
	alice := ts.register("ptalice")
	post := func(token, platform string) *response {
		return ts.do("POST", "/api/push-token", alice.Access, map[string]any{"token": token, "platform": platform})
	}
	ios := strings.Repeat("A1", 32)
	android := "fcm:" + strings.Repeat("x", 140)
	web := webSubscription("https://push.example.net/send/abc")
	expectHTTPStatus(t, post(ios, "ios"), http.StatusCreated, "ios")
	if r := post(strings.ToLower(ios), "ios"); r.Status != http.StatusOK || r.json(t)["token"] != strings.ToLower(ios) {
		t.Errorf("ios again: %d %s", r.Status, r.Body)
	}
	expectHTTPStatus(t, post(android, "android"), http.StatusCreated, "android")
	r := post(web, "web")
	expectHTTPStatus(t, r, http.StatusCreated, "web")
	canonical := r.json(t)["token"].(string)
	if strings.Contains(canonical, "expirationTime") || !strings.HasPrefix(canonical, `{"endpoint":"https://push.example.net/send/abc","keys":{"auth":`) {
		t.Errorf("web token not canonical: %s", canonical)
	}
	if got := pushTokens(t, ts, alice); len(got) != 3 {
		t.Fatalf("%d tokens, want 3", len(got))
	}
	for _, tc := range []struct{ token, platform string }{
		{ios, "blackberry"},
		{strings.Repeat("a", 63), "ios"},
		{strings.Repeat("g", 64), "ios"},
		{strings.Repeat("a", 202), "ios"},
		{"short", "android"},
		{strings.Repeat("x", 1025), "android"},
		{"fcm token with spaces " + strings.Repeat("x", 40), "android"},
		{"https://push.example.net/send/abc", "web"},
		{webSubscription("http://push.example.net/x"), "web"},
		{webSubscription("https://user:pw@push.example.net/x"), "web"},
		{webSubscription("https://push.example.net/" + strings.Repeat("x", 1100)), "web"},
		{strings.Replace(web, `"keys"`, `"extra":1,"keys"`, 1), "web"},
		{strings.Replace(web, "AAAAAAAAAAAAAAAAAAAAAA", "AAAA", 1), "web"},
		{"", "ios"},
	} {
		expectAPIError(t, post(tc.token, tc.platform), http.StatusBadRequest, "invalid_request", "token "+tc.platform+" "+tc.token)
	}
	// Removal: a web subscription in another serialisation finds the same one.
	expectHTTPStatus(t, ts.do("DELETE", "/api/push-token", alice.Access, map[string]any{"token": web}), http.StatusNoContent, "remove web")
	expectAPIError(t, ts.do("DELETE", "/api/push-token", alice.Access, map[string]any{"token": web}), http.StatusNotFound, "not_found", "remove web twice")
	expectHTTPStatus(t, ts.do("DELETE", "/api/push-token", alice.Access, map[string]any{"token": ios}), http.StatusNoContent, "remove ios (upper-case as registered)")
	// At most ten: the one least recently registered goes. A device
	// registers its token again on every start, so a token in use stays
	// however old it is.
	tokenN := func(i int) string { return strings.Repeat(string(rune('a'+i)), 40) }
	for i := range 9 {
		expectHTTPStatus(t, post(tokenN(i), "android"), http.StatusCreated, "android token")
	}
	if got := pushTokens(t, ts, alice); len(got) != 10 {
		t.Fatalf("%d tokens, want 10", len(got))
	}
	if r := post(android, "android"); r.Status != http.StatusOK || r.json(t)["refreshed_at"] == r.json(t)["created_at"] {
		t.Fatalf("registering again: %d %s (want 200 with a newer refreshed_at)", r.Status, r.Body)
	}
	expectHTTPStatus(t, post(tokenN(9), "android"), http.StatusCreated, "an eleventh token")
	got := pushTokens(t, ts, alice)
	if len(got) != 10 {
		t.Fatalf("%d tokens, want 10", len(got))
	}
	kept := map[string]bool{}
	for _, tk := range got {
		kept[tk["token"].(string)] = true
	}
	if !kept[android] || kept[tokenN(0)] {
		t.Errorf("kept the refreshed token %v and the least recently registered %v; want true, false", kept[android], kept[tokenN(0)])
	}
	// They go with the account, and the store never holds a token in a key.
	err := homeserver.ScanStore(ts.srv, func(k, _ []byte) {
		if strings.Contains(string(k), "aaaaaaaaaa") {
			t.Errorf("a push token in a key: %q", k)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	expectHTTPStatus(t, ts.do("DELETE", "/api/account", alice.Access, map[string]any{"auth_key": alice.AuthKey}), http.StatusNoContent, "delete the account")
	err = homeserver.ScanStore(ts.srv, func(k, _ []byte) {
		if k[0] == 'k' {
			t.Errorf("a push token outlived its account: %q", k)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRetention: per-conversation settings in both directions, the account
// default, the strictest winning, 0 meaning none, with the fake clock.
func TestRetention(t *testing.T) {
	t.Parallel()
	clock := newStepClock()
	ts := startServer(t, testConfig(t), withStepClock(clock))
	alice := ts.registerWithKeys("rtalice", "alice")
	bob := ts.registerWithKeys("rtbob", "bob")
	carol := ts.registerWithKeys("rtcarol", "carol")
	path := func(peer *keyAccount) string {
		return "/api/conversations/" + url.PathEscape(string(peer.Address)) + "/retention"
	}
	set := func(a, peer *keyAccount, secs int) {
		t.Helper()
		r := ts.do("PUT", path(peer), a.Access, map[string]any{"seconds": secs})
		if r.Status != http.StatusOK || r.json(t)["seconds"] != float64(secs) || r.json(t)["effective_seconds"] != float64(secs) {
			t.Fatalf("%s sets %v for %s: %d %s", a.Username, secs, peer.Username, r.Status, r.Body)
		}
	}
	// send posts a message at the clock's now and returns the number of
	// seconds it lives on the server (0: no expiry within 10 minutes).
	lifetime := func(from, to *keyAccount, exp time.Duration) int {
		t.Helper()
		start := clock.Now()
		m := sealFor(t, from, []*e2ee.KeyBundle{to.Keys.Bundle}, "m", func(d *e2ee.Draft) {
			d.SentAt = start
			if exp > 0 {
				d.ExpiresAt = start.Add(exp)
			}
		})
		ts.sendOK(from, m)
		defer clock.Set(start)
		for s := 1; s <= 600; s++ {
			clock.Set(start.Add(time.Duration(s) * time.Second))
			if !has(t, ts.mailbox(to, ""), m.ID()) {
				if has(t, ts.mailbox(from, ""), m.ID()) {
					t.Fatalf("the recipient lost the message before the sender")
				}
				return s
			}
		}
		return 0
	}

	if got := lifetime(alice, bob, 0); got != 0 {
		t.Fatalf("no retention anywhere: the message lived %d s", got)
	}
	// Bob keeps alice's messages 60 s: both directions are bound by it.
	set(bob, alice, 60)
	if got := lifetime(alice, bob, 0); got != 60 {
		t.Errorf("alice → bob with bob's 60 s: %d", got)
	}
	if got := lifetime(bob, alice, 0); got != 60 {
		t.Errorf("bob → alice with bob's 60 s: %d", got)
	}
	// A header expiry that is earlier wins.
	if got := lifetime(alice, bob, 30*time.Second); got != 30 {
		t.Errorf("header 30 s under bob's 60 s: %d", got)
	}
	// Alice's 45 s is stricter.
	set(alice, bob, 45)
	if got := lifetime(bob, alice, 0); got != 45 {
		t.Errorf("strictest of 60 and 45: %d", got)
	}
	// Back to the defaults: none.
	for _, p := range [][2]*keyAccount{{alice, bob}, {bob, alice}} {
		expectHTTPStatus(t, ts.do("DELETE", path(p[1]), p[0].Access, nil), http.StatusNoContent, "back to the default")
	}
	if got := lifetime(alice, bob, 0); got != 0 {
		t.Errorf("after removing the settings: %d", got)
	}
	// Carol's account default applies to conversations without a setting.
	r := ts.do("PUT", "/api/account-settings", carol.Access, map[string]any{"default_retention_seconds": 90})
	if r.Status != http.StatusOK || r.json(t)["default_retention_seconds"] != float64(90) || r.json(t)["default_retention_days"] != float64(1) {
		t.Fatalf("account default: %d %s", r.Status, r.Body)
	}
	if m := ts.do("GET", "/api/account", carol.Access, nil).json(t); m["default_retention_seconds"] != float64(90) {
		t.Errorf("GET /api/account: %v", m)
	}
	if got := lifetime(alice, carol, 0); got != 90 {
		t.Errorf("carol's default 90 s: %d", got)
	}
	if m := ts.do("GET", path(alice), carol.Access, nil).json(t); m["seconds"] != nil || m["effective_seconds"] != float64(90) {
		t.Errorf("GET retention under the default: %v", m)
	}
	// A conversation's 0 wins over the default: keep.
	set(carol, alice, 0)
	if got := lifetime(carol, alice, 0); got != 0 {
		t.Errorf("carol's 0 for alice over her default: %d", got)
	}
	// The older days field still works.
	if r := ts.do("PUT", "/api/account-settings", carol.Access, map[string]any{"default_retention_days": 2}); r.json(t)["default_retention_seconds"] != float64(2*86400) {
		t.Errorf("days: %s", r.Body)
	}

	for _, body := range []any{
		map[string]any{"seconds": -1},
		map[string]any{"seconds": 1.5},
		map[string]any{"seconds": 31536001},
		map[string]any{"seconds": "60"},
		map[string]any{"seconds": nil},
		map[string]any{},
		map[string]any{"seconds": 60, "extra": 1},
	} {
		expectAPIError(t, ts.do("PUT", path(bob), alice.Access, body), http.StatusBadRequest, "invalid_request", "retention body")
	}
	for _, p := range []string{"nobody", "a@b@c", url.PathEscape(string(alice.Address))} {
		expectAPIError(t, ts.do("PUT", "/api/conversations/"+p+"/retention", alice.Access, map[string]any{"seconds": 5}), http.StatusBadRequest, "invalid_request", "retention address "+p)
	}
	for _, body := range []any{
		map[string]any{"default_retention_seconds": -5},
		map[string]any{"default_retention_seconds": 31536001},
		map[string]any{"default_retention_seconds": 5, "default_retention_days": 1},
	} {
		expectAPIError(t, ts.do("PUT", "/api/account-settings", alice.Access, body), http.StatusBadRequest, "invalid_request", "account default")
	}
}

func has(t *testing.T, items []mailItem, id string) bool {
	t.Helper()
	for _, it := range items {
		if it.id(t) == id {
			return true
		}
	}
	return false
}
