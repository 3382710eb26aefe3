package homeserver_test

import (
	"strings"
	"testing"

	"github.com/privateline/privateline/clients/go/e2ee"
)

// filesContract drives the file, retention and push-token routes for
// TestContractResponses, checking each answer against spec/openapi.yaml.
func filesContract(t *testing.T, c *contract, ts *testServer) {
	alice := ts.registerWithKeys("fcalice", "alice")
	bob := ts.registerWithKeys("fcbob", "bob")
	eve := ts.registerWithKeys("fceve", "carol")
	auth, bauth, eauth := authBearer(alice.Access), authBearer(bob.Access), authBearer(eve.Access)
	octet := func(h []string) []string {
		return append(append([]string{}, h...), "Content-Type", "application/octet-stream")
	}

	var att e2ee.Attachment
	t.Run("upload", func(t *testing.T) {
		blob, a, err := e2ee.EncryptAttachment(nil, []byte("a picture"))
		if err != nil {
			t.Fatal(err)
		}
		r := c.send(t, ts, specAccepts, 201, apiReq("POST", "/api/files", blob, octet(auth)...))
		att = a
		att.FileID, att.Name, att.MIME = r.json(t)["id"].(string), "p.jpg", "image/jpeg"
		c.send(t, ts, specRejects, 401, apiReq("POST", "/api/files", blob, "Content-Type", "application/octet-stream"))
		c.send(t, ts, specRejects, 415, apiReq("POST", "/api/files", blob, auth...))
		c.send(t, ts, specCannotTell, 400, apiReq("POST", "/api/files", []byte{}, octet(auth)...))
		c.send(t, ts, specRejects, 403, apiReq("POST", "/api/files", blob, "Content-Type", "application/octet-stream", "Cookie", "pl_access="+alice.Access))

		cfg := testConfig(t)
		cfg.MaxFileSize, cfg.FileQuotaBytes = 1000, 1500
		cfg.FileUploadRatePerMin, cfg.FileUploadBurst = 1, 3
		lim := startServer(t, cfg)
		frank := lim.register("fcfrank")
		fa := authBearer(frank.Access)
		c.send(t, lim, specAccepts, 413, apiReq("POST", "/api/files", make([]byte, 1001), octet(fa)...))
		c.send(t, lim, specAccepts, 201, apiReq("POST", "/api/files", make([]byte, 1000), octet(fa)...))
		r = c.send(t, lim, specAccepts, 413, apiReq("POST", "/api/files", make([]byte, 1000), octet(fa)...))
		if r.errorCode(t) != "quota_exceeded" {
			t.Errorf("quota: %s", r.Body)
		}
		c.send(t, lim, specAccepts, 201, apiReq("POST", "/api/files", make([]byte, 10), octet(fa)...))
		c.send(t, lim, specAccepts, 429, apiReq("POST", "/api/files", make([]byte, 10), octet(fa)...))
	})

	t.Run("send with files", func(t *testing.T) {
		bobs, _ := ts.uploadAttachment(bob.account, []byte("bob's"))
		bad := sealFor(t, alice, []*e2ee.KeyBundle{bob.Keys.Bundle}, "x", withFiles(bobs))
		r := c.send(t, ts, specAccepts, 400, apiReq("POST", "/api/messages", bad.Raw, auth...))
		if r.errorCode(t) != "unknown_file" {
			t.Errorf("foreign file: %s", r.Body)
		}
		m := sealFor(t, alice, []*e2ee.KeyBundle{bob.Keys.Bundle}, "with file", withFiles(att))
		c.send(t, ts, specAccepts, 201, apiReq("POST", "/api/messages", m.Raw, auth...))
	})

	t.Run("download", func(t *testing.T) {
		p := "/api/files/" + att.FileID
		r := c.send(t, ts, specAccepts, 200, apiReq("GET", p, nil, bauth...))
		c.send(t, ts, specAccepts, 206, apiReq("GET", p, nil, append(bauth, "Range", "bytes=0-3")...))
		c.send(t, ts, specAccepts, 416, apiReq("GET", p, nil, append(bauth, "Range", "bytes=100000-")...))
		c.send(t, ts, specAccepts, 304, apiReq("GET", p, nil, append(bauth, "If-None-Match", r.Header.Get("ETag"))...))
		c.send(t, ts, specAccepts, 404, apiReq("GET", p, nil, eauth...))
		c.send(t, ts, specRejects, 401, apiReq("GET", p, nil))
	})

	t.Run("delete", func(t *testing.T) {
		p := "/api/files/" + att.FileID
		c.send(t, ts, specAccepts, 409, apiReq("DELETE", p, nil, auth...))
		c.send(t, ts, specAccepts, 404, apiReq("DELETE", p, nil, eauth...))
		c.send(t, ts, specRejects, 401, apiReq("DELETE", p, nil))
		unused, _ := ts.uploadAttachment(alice.account, []byte("unused"))
		c.send(t, ts, specAccepts, 204, apiReq("DELETE", "/api/files/"+unused.FileID, nil, auth...))
	})

	t.Run("retention", func(t *testing.T) {
		p := "/api/conversations/" + string(bob.Address) + "/retention"
		c.send(t, ts, specAccepts, 200, apiReq("GET", p, nil, auth...))
		c.send(t, ts, specAccepts, 200, apiReq("PUT", p, map[string]any{"seconds": 3600}, auth...))
		c.send(t, ts, specAccepts, 200, apiReq("PUT", p, map[string]any{"seconds": 0}, auth...))
		c.send(t, ts, specRejects, 400, apiReq("PUT", p, map[string]any{"seconds": -1}, auth...))
		c.send(t, ts, specRejects, 400, apiReq("PUT", p, map[string]any{"seconds": 31536001}, auth...))
		c.send(t, ts, specRejects, 400, apiReq("PUT", p, map[string]any{}, auth...))
		c.send(t, ts, specRejects, 415, apiReq("PUT", p, map[string]any{"seconds": 1}, append(auth, "Content-Type", "text/plain")...))
		c.send(t, ts, specRejects, 413, apiReq("PUT", p, `{"seconds": 1, "x": "`+strings.Repeat("a", 70<<10)+`"}`, auth...))
		c.send(t, ts, specRejects, 401, apiReq("PUT", p, map[string]any{"seconds": 1}))
		c.send(t, ts, specRejects, 403, apiReq("PUT", p, map[string]any{"seconds": 1}, "Cookie", "pl_access="+alice.Access))
		c.send(t, ts, specAccepts, 400, apiReq("GET", "/api/conversations/nobody-here/retention", nil, auth...))
		c.send(t, ts, specRejects, 401, apiReq("GET", p, nil))
		c.send(t, ts, specAccepts, 204, apiReq("DELETE", p, nil, auth...))
		c.send(t, ts, specAccepts, 400, apiReq("DELETE", "/api/conversations/nobody-here/retention", nil, auth...))
		c.send(t, ts, specRejects, 401, apiReq("DELETE", p, nil))
		c.send(t, ts, specRejects, 403, apiReq("DELETE", p, nil, "Cookie", "pl_access="+alice.Access))
		m := c.send(t, ts, specAccepts, 200, apiReq("PUT", "/api/account-settings", map[string]any{"default_retention_seconds": 86400}, auth...)).json(t)
		if m["default_retention_seconds"] != float64(86400) || m["default_retention_days"] != float64(1) {
			t.Errorf("account default: %v", m)
		}
		c.send(t, ts, specRejects, 400, apiReq("PUT", "/api/account-settings", map[string]any{"default_retention_seconds": -1}, auth...))
	})

	t.Run("push tokens", func(t *testing.T) {
		tok := map[string]any{"token": strings.Repeat("0f", 32), "platform": "ios"}
		c.send(t, ts, specAccepts, 201, apiReq("POST", "/api/push-token", tok, auth...))
		c.send(t, ts, specAccepts, 200, apiReq("POST", "/api/push-token", tok, auth...))
		c.send(t, ts, specAccepts, 201, apiReq("POST", "/api/push-token", map[string]any{"token": webSubscription("https://push.example.net/x"), "platform": "web"}, auth...))
		c.send(t, ts, specAccepts, 400, apiReq("POST", "/api/push-token", map[string]any{"token": "nothex", "platform": "ios"}, auth...))
		c.send(t, ts, specRejects, 400, apiReq("POST", "/api/push-token", map[string]any{"token": "x", "platform": "pager"}, auth...))
		c.send(t, ts, specRejects, 415, apiReq("POST", "/api/push-token", tok, append(auth, "Content-Type", "text/plain")...))
		c.send(t, ts, specRejects, 413, apiReq("POST", "/api/push-token", map[string]any{"token": strings.Repeat("a", 70<<10), "platform": "ios"}, auth...))
		c.send(t, ts, specRejects, 401, apiReq("POST", "/api/push-token", tok))
		c.send(t, ts, specRejects, 403, apiReq("POST", "/api/push-token", tok, "Cookie", "pl_access="+alice.Access))
		c.send(t, ts, specAccepts, 200, apiReq("GET", "/api/push-token", nil, auth...))
		c.send(t, ts, specRejects, 401, apiReq("GET", "/api/push-token", nil))
		c.send(t, ts, specAccepts, 200, apiReq("GET", "/api/push/vapid-public-key", nil)) // no Web Push here: {"available": false}
		// A server that sends Web Push: its key, and its allowlist.
		pts, pf := pushServer(t)
		c.send(t, pts, specAccepts, 200, apiReq("GET", "/api/push/vapid-public-key", nil))
		carol := pts.register("pushcarol")
		cauth := []string{"Authorization", "Bearer " + carol.Access}
		c.send(t, pts, specAccepts, 201, apiReq("POST", "/api/push-token", map[string]any{"token": pf.web.Subscribe("https://push.example.test/c"), "platform": "web"}, cauth...))
		c.send(t, pts, specAccepts, 400, apiReq("POST", "/api/push-token", map[string]any{"token": webSubscription("https://push.example.net/x"), "platform": "web"}, cauth...))
		del := map[string]any{"token": tok["token"]}
		c.send(t, ts, specAccepts, 404, apiReq("DELETE", "/api/push-token", del, bauth...))
		c.send(t, ts, specAccepts, 204, apiReq("DELETE", "/api/push-token", del, auth...))
		c.send(t, ts, specRejects, 400, apiReq("DELETE", "/api/push-token", map[string]any{}, auth...))
		c.send(t, ts, specRejects, 415, apiReq("DELETE", "/api/push-token", del, append(auth, "Content-Type", "text/plain")...))
		c.send(t, ts, specRejects, 413, apiReq("DELETE", "/api/push-token", map[string]any{"token": strings.Repeat("a", 70<<10)}, auth...))
		c.send(t, ts, specRejects, 401, apiReq("DELETE", "/api/push-token", del))
		c.send(t, ts, specRejects, 403, apiReq("DELETE", "/api/push-token", del, "Cookie", "pl_access="+alice.Access))
	})

}
