package homeserver_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/privateline/privateline/homeserver"
)

// keysContract drives the key-directory routes for TestContractResponses
// with good and bad requests, so that each documented status is seen and
// each answer is checked against spec/openapi.yaml.
func keysContract(t *testing.T, c *contract, ts *testServer) {
	alice := ts.registerWithKeys("kcalice", "alice")
	bob := ts.registerWithKeys("kcbob", "bob")
	auth := authBearer(alice.Access)

	// Registration refuses a bundle that is not the account's.
	body := registerBody(uniqueName("kcbad"), randB64(32), "")
	body["key_bundle"] = rawBundle(bob.Keys.Bundle)
	c.send(t, ts, specAccepts, 400, apiReq("POST", "/api/register", body))

	t.Run("public_key", func(t *testing.T) {
		c.send(t, ts, specAccepts, 200, apiReq("GET", "/api/public_key/"+bob.Username, nil, auth...))
		c.send(t, ts, specAccepts, 200, apiReq("GET", "/api/public_key/"+strings.ToUpper(bob.Username), nil, auth...))
		c.send(t, ts, specAccepts, 404, apiReq("GET", "/api/public_key/"+uniqueName("ghost"), nil, auth...))
		c.send(t, ts, specAccepts, 400, apiReq("GET", "/api/public_key/a%20b", nil, auth...))
		c.send(t, ts, specAccepts, 400, apiReq("GET", "/api/public_key/"+strings.Repeat("a", 65), nil, auth...))
		c.send(t, ts, specRejects, 401, apiReq("GET", "/api/public_key/"+bob.Username, nil))
	})

	t.Run("head and consistency", func(t *testing.T) {
		m := c.send(t, ts, specAccepts, 200, apiReq("GET", "/api/keys/head", nil)).json(t)
		size := int(m["tree_head"].(map[string]any)["tree_size"].(float64))
		c.send(t, ts, specAccepts, 200, apiReq("GET", fmt.Sprintf("/api/keys/consistency?from=1&to=%d", size), nil))
		c.send(t, ts, specAccepts, 200, apiReq("GET", fmt.Sprintf("/api/keys/consistency?from=%d&to=%d", size, size), nil))
		c.send(t, ts, specAccepts, 400, apiReq("GET", fmt.Sprintf("/api/keys/consistency?from=1&to=%d", size+1), nil))
		c.send(t, ts, specAccepts, 400, apiReq("GET", "/api/keys/consistency?from=2&to=1", nil))
		c.send(t, ts, specRejects, 400, apiReq("GET", "/api/keys/consistency?from=0&to=1", nil))
		c.send(t, ts, specRejects, 400, apiReq("GET", "/api/keys/consistency?from=1", nil))
		c.send(t, ts, specRejects, 400, apiReq("GET", "/api/keys/consistency?from=x&to=1", nil))
	})

	// Witnessing (spec/federation.md §12.6): a server that does not
	// federate has no co-signatures and no fork evidence; the shapes and
	// refusals are the same (homeserver/witness_test.go fills them).
	t.Run("cosignatures and forks", func(t *testing.T) {
		m := c.send(t, ts, specAccepts, 200, apiReq("GET", "/api/keys/cosignatures", nil)).json(t)
		if cs, ok := m["cosignatures"].([]any); !ok || len(cs) != 0 {
			t.Errorf("cosignatures of a server that does not federate: %v", m["cosignatures"])
		}
		c.send(t, ts, specAccepts, 200, apiReq("GET", "/api/keys/cosignatures?size=1", nil))
		c.send(t, ts, specRejects, 400, apiReq("GET", "/api/keys/cosignatures?size=0", nil))
		c.send(t, ts, specRejects, 400, apiReq("GET", "/api/keys/cosignatures?size=x", nil))
		c.send(t, ts, specCannotTell, 400, apiReq("GET", "/api/keys/cosignatures?size=1&size=2", nil))
		c.send(t, ts, specCannotTell, 400, apiReq("GET", "/api/keys/cosignatures?from=1", nil))
		m = c.send(t, ts, specAccepts, 200, apiReq("GET", "/api/keys/forks", nil)).json(t)
		if fs, ok := m["forks"].([]any); !ok || len(fs) != 0 {
			t.Errorf("forks: %v", m["forks"])
		}
		c.send(t, ts, specCannotTell, 400, apiReq("GET", "/api/keys/forks?x=1", nil))
		c.send(t, ts, specAccepts, 404, apiReq("GET", "/api/keys/forks/document?server=a.test", nil))
		c.send(t, ts, specRejects, 400, apiReq("GET", "/api/keys/forks/document", nil))
		c.send(t, ts, specCannotTell, 400, apiReq("GET", "/api/keys/forks/document?server=a%20b", nil))
		c.send(t, ts, specCannotTell, 400, apiReq("GET", "/api/keys/forks/document?server=a.test&x=1", nil))
	})

	t.Run("keys", func(t *testing.T) {
		put := func(sh specVerdict, want int, body any, headers ...string) *response {
			t.Helper()
			return c.send(t, ts, sh, want, apiReq("PUT", "/api/keys", body, headers...))
		}
		next := newTestKeys(t, alice.Address, "carol", alice.Keys.Bundle.CreatedAt.Add(time.Second))
		good := keyChangeBody(t, alice, next, "")

		put(specRejects, 401, good)
		put(specRejects, 415, good, append(auth, "Content-Type", "text/plain")...)
		put(specRejects, 413, map[string]any{"key_bundle": map[string]any{"pad": strings.Repeat("x", 70<<10)}}, auth...)
		without := func(k string) map[string]any {
			b := keyChangeBody(t, alice, next, "")
			delete(b, k)
			return b
		}
		put(specRejects, 400, without("key_bundle"), auth...)
		put(specRejects, 400, without("nonce"), auth...)
		put(specCannotTell, 400, without("old_key_signature"), auth...) // neither proof
		both := keyChangeBody(t, alice, next, "")
		both["auth_key"] = alice.AuthKey
		put(specCannotTell, 400, both, auth...)
		// A valid bundle for another address.
		put(specAccepts, 400, keyChangeBody(t, alice, newTestKeys(t, bob.Address, "carol", time.Now().Add(time.Hour)), alice.AuthKey), auth...)
		// A signature that is not by alice's current key.
		forged := keyChangeBody(t, alice, next, "")
		forged["old_key_signature"] = randB64(64)
		put(specAccepts, 403, forged, auth...)
		put(specAccepts, 403, keyChangeBody(t, alice, next, randB64(32)), auth...)
		// Not newer than the current bundle.
		older := newTestKeys(t, alice.Address, "carol", alice.Keys.Bundle.CreatedAt.Add(-time.Second))
		put(specAccepts, 409, keyChangeBody(t, alice, older, alice.AuthKey), auth...)

		m := put(specAccepts, 200, good, auth...).json(t)
		if m["address"] != string(alice.Address) {
			t.Errorf("PUT /api/keys answered for %v", m["address"])
		}
		put(specAccepts, 409, good, auth...) // the same change again

		// Per-username limit on the auth_key proof.
		cfg := testConfig(t)
		cfg.UsernameRatePerMinute, cfg.UsernameBurst = 1, 1
		lim := startServer(t, cfg)
		frank := lim.registerWithKeys("kcfrank", "alice") // login spends frank's only per-name token
		later := newTestKeys(t, frank.Address, "bob", frank.Keys.Bundle.CreatedAt.Add(time.Second))
		c.send(t, lim, specAccepts, 429, apiReq("PUT", "/api/keys", keyChangeBody(t, frank, later, frank.AuthKey), authBearer(frank.Access)...))
	})

	t.Run("pinned_keys", func(t *testing.T) {
		r := c.send(t, ts, specAccepts, 200, apiReq("GET", "/api/pinned_keys", nil, auth...))
		etag := r.Header.Get("ETag")
		c.send(t, ts, specRejects, 401, apiReq("GET", "/api/pinned_keys", nil))

		blob := func(n int) map[string]any { return map[string]any{"blob": randB64(n)} }
		put := func(sh specVerdict, want int, body any, headers ...string) *response {
			t.Helper()
			return c.send(t, ts, sh, want, apiReq("PUT", "/api/pinned_keys", body, headers...))
		}
		put(specRejects, 401, blob(32), "If-Match", etag)
		put(specAccepts, 428, blob(32), auth...)
		put(specAccepts, 400, blob(32), append(auth, "If-Match", "*")...)
		put(specRejects, 400, map[string]any{"blob": ""}, append(auth, "If-Match", etag)...)
		put(specRejects, 400, map[string]any{"data": randB64(4)}, append(auth, "If-Match", etag)...)
		put(specCannotTell, 400, blob(256<<10+1), append(auth, "If-Match", etag)...)
		put(specRejects, 415, blob(32), append(auth, "If-Match", etag, "Content-Type", "text/plain")...)
		put(specRejects, 413, map[string]any{"blob": strings.Repeat("A", 400<<10)}, append(auth, "If-Match", etag)...)
		r = put(specAccepts, 200, blob(256<<10), append(auth, "If-Match", etag)...)
		put(specAccepts, 412, blob(32), append(auth, "If-Match", etag)...)
		put(specAccepts, 200, blob(32), append(auth, "If-Match", r.Header.Get("ETag"))...)
		c.send(t, ts, specAccepts, 200, apiReq("GET", "/api/pinned_keys", nil, auth...))

		// By cookie, a PUT needs the CSRF token.
		lr := c.send(t, ts, specAccepts, 200, apiReq("POST", "/api/login", map[string]any{"username": alice.Username, "auth_key": alice.AuthKey, "use_cookies": true}))
		csrf := lr.json(t)["csrf_token"].(string)
		var access string
		for _, ck := range (&http.Response{Header: lr.Header}).Cookies() {
			if ck.Name == "pl_access" {
				access = ck.Value
			}
		}
		cur := c.send(t, ts, specAccepts, 200, apiReq("GET", "/api/pinned_keys", nil, "Cookie", "pl_access="+access)).Header.Get("ETag")
		put(specRejects, 403, blob(32), "Cookie", "pl_access="+access, "If-Match", cur)
		put(specAccepts, 200, blob(32), "Cookie", "pl_access="+access, "X-CSRF-Token", csrf, "If-Match", cur)
	})

	// After homeserver rotate-key the answers carry "key_changes"
	// (rotate_test.go checks what clients do with them).
	t.Run("after a key rotation", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.FederationListenAddr = "127.0.0.1:0"
		rs := startServer(t, cfg)
		carol := rs.registerWithKeys("kccarol", "carol")
		rs.stop()
		var out, errb strings.Builder
		if rc := homeserver.RotateKey(rs.cfg, &out, &errb); rc != 0 {
			t.Fatalf("rotate-key: %s", errb.String())
		}
		rs.launch(nil)
		for _, r := range []apiExchange{
			apiReq("GET", "/api/keys/head", nil),
			apiReq("GET", "/api/public_key/"+carol.Username, nil, authBearer(rs.loginAgain(carol.account).Access)...),
			apiReq("GET", "/api/keys/cosignatures", nil),
			apiReq("GET", "/.well-known/privateline/server", nil),
		} {
			m := c.send(t, rs, specAccepts, 200, r).json(t)
			if cs, _ := m["key_changes"].([]any); len(cs) != 1 {
				t.Errorf("%s: key_changes %v", r.path, m["key_changes"])
			}
		}
	})
}
