package homeserver_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/privateline/privateline/clients/go/e2ee"
)

// groupsContract drives the group routes for TestContractResponses with
// good and bad requests, so that each documented status is seen and each
// answer is checked against spec/openapi.yaml.
func groupsContract(t *testing.T, c *contract, ts *testServer) {
	alice := ts.registerWithKeys("gcalice", "alice")
	bob := ts.registerWithKeys("gcbob", "bob")
	eve := ts.registerWithKeys("gceve", "carol")
	outsider := ts.registerWithKeys("gcout", "carol")
	auth, bauth, eauth, oauth := authBearer(alice.Access), authBearer(bob.Access), authBearer(eve.Access), authBearer(outsider.Access)
	send := func(sh specVerdict, want int, method, path string, body any, headers ...string) *response {
		t.Helper()
		return c.send(t, ts, sh, want, apiReq(method, path, body, headers...))
	}

	var id, gp string
	t.Run("create and read", func(t *testing.T) {
		send(specRejects, 401, "POST", "/api/groups", map[string]any{})
		send(specRejects, 415, "POST", "/api/groups", map[string]any{}, append(auth, "Content-Type", "text/plain")...)
		send(specRejects, 413, "POST", "/api/groups", map[string]any{"pad": strings.Repeat("x", 70<<10)}, auth...)
		send(specRejects, 400, "POST", "/api/groups", map[string]any{"extra": 1}, auth...)
		send(specAccepts, 400, "POST", "/api/groups", map[string]any{"members": []string{"someone@elsewhere.test"}}, auth...)
		send(specAccepts, 404, "POST", "/api/groups", map[string]any{"members": []string{uniqueName("ghost") + "@hs.test"}}, auth...)
		r := send(specAccepts, 201, "POST", "/api/groups", map[string]any{"members": []string{string(bob.Address)}, "meta": "bWV0YQ=="}, auth...)
		id = r.json(t)["id"].(string)
		gp = "/api/groups/" + url.PathEscape(id)
		send(specAccepts, 200, "GET", "/api/groups", nil, bauth...)
		send(specRejects, 401, "GET", "/api/groups", nil)
		send(specAccepts, 200, "GET", gp, nil, bauth...)
		send(specRejects, 401, "GET", gp, nil)
		send(specAccepts, 404, "GET", gp, nil, eauth...)
	})

	t.Run("meta, roles, retention", func(t *testing.T) {
		send(specAccepts, 200, "PATCH", gp, map[string]any{"meta": "bmV3"}, auth...)
		send(specAccepts, 403, "PATCH", gp, map[string]any{"meta": "bmV3"}, bauth...)
		send(specRejects, 400, "PATCH", gp, map[string]any{}, auth...)
		send(specRejects, 413, "PATCH", gp, map[string]any{"meta": strings.Repeat("A", 4100)}, auth...)
		send(specRejects, 415, "PATCH", gp, map[string]any{"meta": "bmV3"}, append(auth, "Content-Type", "text/plain")...)
		send(specRejects, 401, "PATCH", gp, map[string]any{"meta": "bmV3"})
		send(specAccepts, 404, "PATCH", gp, map[string]any{"meta": "bmV3"}, eauth...)

		mp := gp + "/members/" + url.PathEscape(string(bob.Address))
		send(specAccepts, 403, "PATCH", mp, map[string]any{"role": "admin"}, bauth...)
		send(specRejects, 400, "PATCH", mp, map[string]any{"role": "owner"}, auth...)
		send(specRejects, 415, "PATCH", mp, map[string]any{"role": "admin"}, append(auth, "Content-Type", "text/plain")...)
		send(specRejects, 401, "PATCH", mp, map[string]any{"role": "admin"})
		send(specAccepts, 404, "PATCH", mp, map[string]any{"role": "admin"}, eauth...)
		send(specAccepts, 200, "PATCH", mp, map[string]any{"role": "member"}, auth...)
		send(specRejects, 413, "PATCH", mp, map[string]any{"pad": strings.Repeat("x", 70<<10)}, auth...)

		rp := gp + "/retention"
		send(specAccepts, 200, "PUT", rp, map[string]any{"seconds": 3600}, auth...)
		send(specAccepts, 403, "PUT", rp, map[string]any{"seconds": 0}, bauth...)
		send(specRejects, 400, "PUT", rp, map[string]any{"seconds": -1}, auth...)
		send(specRejects, 415, "PUT", rp, map[string]any{"seconds": 0}, append(auth, "Content-Type", "text/plain")...)
		send(specRejects, 401, "PUT", rp, map[string]any{"seconds": 0})
		send(specAccepts, 404, "PUT", rp, map[string]any{"seconds": 0}, eauth...)
		send(specRejects, 413, "PUT", rp, map[string]any{"pad": strings.Repeat("x", 70<<10)}, auth...)
	})

	var gk *e2ee.GroupKey
	t.Run("key", func(t *testing.T) {
		kp := gp + "/key"
		seal := func(epoch int64) []byte {
			k, doc, err := e2ee.SealGroupKey(nil, alice.Keys.Keys, id, epoch, time.Now(), []*e2ee.KeyBundle{alice.Keys.Bundle, bob.Keys.Bundle})
			if err != nil {
				t.Fatal(err)
			}
			gk = k
			return doc
		}
		send(specAccepts, 404, "GET", kp, nil, auth...) // no key yet
		send(specAccepts, 409, "PUT", kp, seal(2), auth...)
		doc := seal(1)
		send(specAccepts, 403, "PUT", kp, doc, bauth...)
		send(specAccepts, 404, "PUT", kp, doc, eauth...)
		send(specRejects, 401, "PUT", kp, doc)
		send(specRejects, 415, "PUT", kp, doc, append(auth, "Content-Type", "text/plain")...)
		send(specRejects, 413, "PUT", kp, map[string]any{"pad": strings.Repeat("x", 520<<10)}, auth...)
		send(specRejects, 400, "PUT", kp, map[string]any{"v": 1}, auth...)
		send(specAccepts, 201, "PUT", kp, doc, auth...)
		send(specAccepts, 200, "PUT", kp, doc, auth...)
		send(specAccepts, 200, "GET", kp, nil, bauth...)
		send(specAccepts, 200, "GET", kp+"?epoch=1", nil, auth...)
		send(specRejects, 400, "GET", kp+"?epoch=x", nil, auth...)
		send(specRejects, 401, "GET", kp, nil)
		send(specAccepts, 404, "GET", kp, nil, eauth...)
	})

	t.Run("messages", func(t *testing.T) {
		mp := gp + "/messages"
		env, err := e2ee.SealGroup(nil, alice.Keys.Keys, gk, e2ee.Draft{SentAt: time.Now(), Message: &e2ee.Message{Type: "text", Body: "hi"}})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := env.MarshalJSON()
		send(specRejects, 401, "POST", mp, raw)
		send(specAccepts, 404, "POST", mp, raw, eauth...)
		send(specRejects, 415, "POST", mp, raw, append(auth, "Content-Type", "text/plain")...)
		send(specRejects, 413, "POST", mp, map[string]any{"pad": strings.Repeat("x", 257<<10)}, auth...)
		send(specRejects, 400, "POST", mp, map[string]any{"salt": "x"}, auth...)
		send(specAccepts, 403, "POST", mp, raw, bauth...) // alice's envelope posted by bob
		send(specAccepts, 201, "POST", mp, raw, auth...)
		send(specAccepts, 200, "POST", mp, raw, auth...)
		send(specAccepts, 200, "GET", mp, nil, bauth...)
		send(specAccepts, 200, "GET", mp+"?after=0&limit=10", nil, auth...)
		send(specAccepts, 200, "GET", "/api/messages", nil, bauth...) // group items in the mailbox
		send(specRejects, 400, "GET", mp+"?limit=0", nil, auth...)
		send(specRejects, 401, "GET", mp, nil)
		send(specAccepts, 404, "GET", mp, nil, eauth...)

		// Adding eve starts epoch 2; the epoch-1 envelope is stale.
		send(specAccepts, 201, "POST", gp+"/members", map[string]any{"address": string(eve.Address)}, auth...)
		env2, _ := e2ee.SealGroup(nil, alice.Keys.Keys, gk, e2ee.Draft{SentAt: time.Now(), Message: &e2ee.Message{Type: "text", Body: "late"}})
		raw2, _ := env2.MarshalJSON()
		if r := send(specAccepts, 409, "POST", mp, raw2, auth...); r.errorCode(t) != "stale_epoch" {
			t.Errorf("stale epoch answered %s", r.Body)
		}

		cfg := testConfig(t)
		cfg.MessageRatePerMinute, cfg.MessageBurst = 1, 1
		lim := startServer(t, cfg)
		frank := lim.registerWithKeys("gcfrank", "alice")
		r := c.send(t, lim, specAccepts, 201, apiReq("POST", "/api/groups", map[string]any{}, authBearer(frank.Access)...))
		lid := r.json(t)["id"].(string)
		lk, _, err := e2ee.SealGroupKey(nil, frank.Keys.Keys, lid, 1, time.Now(), []*e2ee.KeyBundle{frank.Keys.Bundle})
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range []int{201, 429} {
			e, _ := e2ee.SealGroup(nil, frank.Keys.Keys, lk, e2ee.Draft{SentAt: time.Now(), Message: &e2ee.Message{Type: "text", Body: string(rune('a' + i))}})
			b, _ := e.MarshalJSON()
			c.send(t, lim, specAccepts, want, apiReq("POST", "/api/groups/"+url.PathEscape(lid)+"/messages", b, authBearer(frank.Access)...))
		}
	})

	t.Run("members", func(t *testing.T) {
		mp := gp + "/members"
		body := map[string]any{"address": string(bob.Address)}
		send(specAccepts, 409, "POST", mp, body, auth...)
		send(specAccepts, 403, "POST", mp, body, bauth...)
		send(specAccepts, 400, "POST", mp, map[string]any{"address": "x@elsewhere.test"}, auth...)
		send(specRejects, 415, "POST", mp, body, append(auth, "Content-Type", "text/plain")...)
		send(specRejects, 401, "POST", mp, body)
		send(specAccepts, 404, "POST", mp, map[string]any{"address": uniqueName("ghost") + "@hs.test"}, auth...)
		send(specAccepts, 404, "POST", mp, body, oauth...)
		send(specRejects, 413, "POST", mp, map[string]any{"pad": strings.Repeat("x", 70<<10)}, auth...)
		out := func(a *keyAccount) string { return mp + "/" + url.PathEscape(string(a.Address)) }
		send(specAccepts, 403, "DELETE", out(alice), nil, bauth...)
		send(specRejects, 401, "DELETE", out(bob), nil)
		send(specAccepts, 204, "DELETE", out(eve), nil, auth...)
		send(specAccepts, 404, "DELETE", out(bob), nil, oauth...)
		send(specAccepts, 204, "DELETE", out(bob), nil, bauth...) // bob leaves
		send(specAccepts, 404, "GET", gp, nil, bauth...)
	})

	// A plain member's look-up of the current epoch's key waits for it;
	// the group moving to another epoch meanwhile ends it with
	// stale_epoch (groupkeywait.go in clientapi).
	t.Run("key awaited", func(t *testing.T) {
		r := send(specAccepts, 201, "POST", "/api/groups", map[string]any{"members": []string{string(bob.Address)}}, auth...)
		wp := "/api/groups/" + url.PathEscape(r.json(t)["id"].(string))
		e := apiReq("GET", wp+"/key", nil, bauth...)
		got := make(chan *response, 1)
		go func() {
			resp, err := http.DefaultClient.Do(e.request(ts.URL))
			if err != nil {
				got <- &response{Status: -1, Body: []byte(err.Error())}
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got <- &response{Status: resp.StatusCode, Header: resp.Header, Body: body}
		}()
		waitMetric(t, ts, "privateline_group_key_waiting 1")
		send(specAccepts, 201, "POST", wp+"/members", map[string]any{"address": string(eve.Address)}, auth...)
		w := <-got
		if w.Status != 409 || w.errorCode(t) != "stale_epoch" {
			t.Fatalf("bob's awaited look-up of a superseded epoch: %d %s", w.Status, w.Body)
		}
		c.check(t, specAccepts, e.request(ts.URL), w)
	})

	// A member's client's report of a lost epoch (spec/e2ee.md §8.1): a
	// group of its own moves past it, once per member and era; bad input
	// and non-members change nothing.
	t.Run("seen epoch", func(t *testing.T) {
		r := send(specAccepts, 201, "POST", "/api/groups", map[string]any{"members": []string{string(bob.Address)}}, auth...)
		sp := "/api/groups/" + url.PathEscape(r.json(t)["id"].(string)) + "/seen_epoch"
		epochOf := func(r *response) float64 { return r.json(t)["epoch"].(float64) }
		send(specRejects, 401, "POST", sp, map[string]any{"seen_epoch": 3})
		send(specRejects, 415, "POST", sp, map[string]any{"seen_epoch": 3}, append(bauth, "Content-Type", "text/plain")...)
		send(specRejects, 413, "POST", sp, map[string]any{"pad": strings.Repeat("x", 70<<10)}, bauth...)
		for _, bad := range []map[string]any{{}, {"seen_epoch": 0}, {"seen_epoch": "3"}, {"seen_epoch": 2.5}, {"seen_epoch": 3, "era": 1}} {
			send(specRejects, 400, "POST", sp, bad, bauth...)
		}
		send(specAccepts, 400, "POST", sp, map[string]any{"seen_epoch": 1 << 21}, bauth...) // beyond the bound
		send(specAccepts, 404, "POST", sp, map[string]any{"seen_epoch": 3}, eauth...)
		if r := send(specAccepts, 200, "GET", sp[:len(sp)-len("/seen_epoch")], nil, auth...); epochOf(r) != 1 {
			t.Fatalf("the group moved on refused reports: %s", r.Body)
		}
		if r := send(specAccepts, 200, "POST", sp, map[string]any{"seen_epoch": 3}, bauth...); epochOf(r) != 4 {
			t.Fatalf("bob held epoch 3: %s", r.Body)
		}
		if r := send(specAccepts, 200, "POST", sp, map[string]any{"seen_epoch": 7}, bauth...); epochOf(r) != 4 {
			t.Fatalf("bob's second report in the era: %s", r.Body)
		}
		if r := send(specAccepts, 200, "POST", sp, map[string]any{"seen_epoch": 2}, auth...); epochOf(r) != 4 {
			t.Fatalf("a passed epoch: %s", r.Body)
		}
	})
}
