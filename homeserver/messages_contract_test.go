package homeserver_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/e2ee"
)

// messagesContract drives the direct-message routes for
// TestContractResponses with good and bad requests, so that each
// documented status is seen and each answer is checked against
// spec/openapi.yaml.
func messagesContract(t *testing.T, c *contract, ts *testServer) {
	alice := ts.registerWithKeys("mcalice", "alice")
	bob := ts.registerWithKeys("mcbob", "bob")
	eve := ts.registerWithKeys("mceve", "carol")
	auth, bauth := authBearer(alice.Access), authBearer(bob.Access)
	m := sealTo(t, alice, bob, "contract")
	post := func(sh specVerdict, want int, body any, headers ...string) *response {
		t.Helper()
		return c.send(t, ts, sh, want, apiReq("POST", "/api/messages", body, headers...))
	}

	t.Run("send", func(t *testing.T) {
		post(specRejects, 401, m.Raw)
		post(specRejects, 415, m.Raw, append(auth, "Content-Type", "text/plain")...)
		post(specRejects, 413, map[string]any{"pad": strings.Repeat("x", 257<<10)}, auth...)
		var extra map[string]any
		if err := json.Unmarshal(m.Raw, &extra); err != nil {
			t.Fatal(err)
		}
		extra["extra"] = true
		post(specRejects, 400, extra, auth...)
		remote := newTestKeys(t, "someone@elsewhere.test", "carol", time.Now())
		post(specAccepts, 400, sealFor(t, alice, []*e2ee.KeyBundle{remote.Bundle}, "far", nil).Raw, auth...)
		ghost := newTestKeys(t, privateline.Address(uniqueName("ghost")+"@hs.test"), "carol", time.Now())
		post(specAccepts, 404, sealFor(t, alice, []*e2ee.KeyBundle{ghost.Bundle}, "boo", nil).Raw, auth...)
		post(specAccepts, 403, m.Raw, bauth...) // alice's envelope posted by bob
		post(specAccepts, 201, m.Raw, auth...)
		post(specAccepts, 200, m.Raw, auth...)
		post(specAccepts, 409, sealFor(t, alice, []*e2ee.KeyBundle{bob.Keys.Bundle}, "other", func(d *e2ee.Draft) { d.ID = m.ID() }).Raw, auth...)

		cfg := testConfig(t)
		cfg.MessageRatePerMinute, cfg.MessageBurst = 1, 1
		lim := startServer(t, cfg)
		frank := lim.registerWithKeys("mcfrank", "alice")
		grace := lim.registerWithKeys("mcgrace", "bob")
		c.send(t, lim, specAccepts, 201, apiReq("POST", "/api/messages", sealTo(t, frank, grace, "1").Raw, authBearer(frank.Access)...))
		r := c.send(t, lim, specAccepts, 429, apiReq("POST", "/api/messages", sealTo(t, frank, grace, "2").Raw, authBearer(frank.Access)...))
		if r.Header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
	})

	t.Run("mailbox", func(t *testing.T) {
		get := func(sh specVerdict, want int, query string, headers ...string) *response {
			t.Helper()
			return c.send(t, ts, sh, want, apiReq("GET", "/api/messages"+query, nil, headers...))
		}
		get(specAccepts, 200, "", bauth...)
		get(specAccepts, 200, "?limit=10&offset=0", auth...)
		get(specAccepts, 200, "?with="+string(alice.Address), bauth...)
		get(specAccepts, 200, "?after=0&limit=100", bauth...)
		get(specRejects, 400, "?limit=0", bauth...)
		get(specRejects, 400, "?limit=101", bauth...)
		get(specRejects, 400, "?offset=-1", bauth...)
		get(specAccepts, 400, "?with=nobody", bauth...)
		get(specRejects, 401, "")
		c.send(t, ts, specAccepts, 200, apiReq("GET", "/api/unread_count", nil, bauth...))
		c.send(t, ts, specRejects, 401, apiReq("GET", "/api/unread_count", nil))
	})

	t.Run("read and delete", func(t *testing.T) {
		read := "/api/messages/" + m.ID() + "/read"
		c.send(t, ts, specRejects, 401, apiReq("POST", read, nil))
		c.send(t, ts, specAccepts, 404, apiReq("POST", read, nil, authBearer(eve.Access)...))
		c.send(t, ts, specAccepts, 204, apiReq("POST", read, nil, bauth...))
		c.send(t, ts, specAccepts, 204, apiReq("POST", read, nil, bauth...))
		del := "/api/messages/" + m.ID()
		c.send(t, ts, specRejects, 401, apiReq("DELETE", del, nil))
		c.send(t, ts, specAccepts, 404, apiReq("DELETE", del, nil, authBearer(eve.Access)...))
		c.send(t, ts, specAccepts, 204, apiReq("DELETE", del, nil, bauth...))
		c.send(t, ts, specAccepts, 204, apiReq("DELETE", del, nil, auth...))
		c.send(t, ts, specAccepts, 404, apiReq("DELETE", del, nil, auth...))
	})
}
