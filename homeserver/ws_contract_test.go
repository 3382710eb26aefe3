package homeserver_test

import (
	"net/http"
	"testing"

	"github.com/gorilla/websocket"
)

// wsContract drives POST /api/ws/ticket and GET /api/ws for
// TestContractResponses: every documented status, the upgrade (101)
// included, checked against spec/openapi.yaml.
func wsContract(t *testing.T, c *contract, ts *testServer) {
	a := ts.register("wscontract")
	auth := authBearer(a.Access)

	t.Run("ticket", func(t *testing.T) {
		r := c.send(t, ts, specAccepts, 200, apiReq("POST", "/api/ws/ticket", nil, auth...))
		if r.json(t)["ticket"] == "" {
			t.Fatalf("ticket answer %s", r.Body)
		}
		c.send(t, ts, specRejects, 401, apiReq("POST", "/api/ws/ticket", nil))
		lr := ts.do("POST", "/api/login", "", map[string]any{"username": a.Username, "auth_key": a.AuthKey, "use_cookies": true})
		var cookie string
		for _, ck := range (&http.Response{Header: lr.Header}).Cookies() {
			if ck.Name == "pl_access" {
				cookie = ck.Name + "=" + ck.Value
			}
		}
		c.send(t, ts, specRejects, 403, apiReq("POST", "/api/ws/ticket", nil, "Cookie", cookie))
		c.send(t, ts, specAccepts, 200, apiReq("POST", "/api/ws/ticket", nil, "Cookie", cookie, "X-CSRF-Token", lr.json(t)["csrf_token"].(string)))
	})

	t.Run("upgrade", func(t *testing.T) {
		// The 101 of a real upgrade, validated as an exchange.
		ws, resp, err := ts.dialWS(nil, "?after=0", bearer(a.Access))
		if err != nil {
			t.Fatal(err)
		}
		ws.Close()
		e := apiReq("GET", "/api/ws?after=0", nil, auth...)
		c.check(t, specAccepts, e.request(ts.URL), &response{Status: resp.StatusCode, Header: resp.Header})
		if resp.StatusCode != http.StatusSwitchingProtocols || !websocket.IsWebSocketUpgrade(&http.Request{Header: http.Header{
			"Connection": resp.Header.Values("Connection"), "Upgrade": resp.Header.Values("Upgrade")}}) {
			t.Fatalf("upgrade answered %d %v", resp.StatusCode, resp.Header)
		}
		// And one by ticket.
		tk := ts.do("POST", "/api/ws/ticket", a.Access, nil).json(t)["ticket"].(string)
		ws, resp, err = ts.dialWS(nil, "?ticket="+tk, nil)
		if err != nil {
			t.Fatal(err)
		}
		ws.Close()
		c.check(t, specAccepts, apiReq("GET", "/api/ws?ticket="+tk, nil).request(ts.URL), &response{Status: resp.StatusCode, Header: resp.Header})

		upgrade := []string{"Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}
		c.send(t, ts, specRejects, 401, apiReq("GET", "/api/ws", nil, upgrade...))
		c.send(t, ts, specAccepts, 401, apiReq("GET", "/api/ws?ticket=used-or-unknown", nil, upgrade...))
		c.send(t, ts, specAccepts, 401, apiReq("GET", "/api/ws", nil, append(upgrade, "Authorization", "Bearer not-a-token")...))
		c.send(t, ts, specRejects, 400, apiReq("GET", "/api/ws?after=soon", nil, append(upgrade, auth...)...))
		c.send(t, ts, specCannotTell, 400, apiReq("GET", "/api/ws", nil, auth...)) // no upgrade
		c.send(t, ts, specAccepts, 403, apiReq("GET", "/api/ws", nil, append(upgrade, append(auth, "Origin", "https://evil.example")...)...))
	})
}
