package homeserver_test

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Helpers for the WebSocket tests: a raw client of GET /api/ws.

// wsFrame is any frame the server sends.
type wsFrame struct {
	Type    string        `json:"type"`
	Seq     uint64        `json:"seq"`
	ID      string        `json:"id"`
	By      string        `json:"by"`
	Address string        `json:"address"`
	Group   string        `json:"group"`
	Message *mailItem     `json:"message"`
	Error   *wsFrameError `json:"error"`
	Server  string        `json:"server"` // delivered, delivery_failed
	Detail  string        `json:"detail"` // delivery_failed
}

// wsFrameError is an error frame's {"code", "message"}, or the refusal
// code string of a delivery_failed event (Code then, Message empty).
type wsFrameError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *wsFrameError) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &e.Code)
	}
	type plain wsFrameError
	return json.Unmarshal(b, (*plain)(e))
}

// wsTestConn is one socket of a test.
type wsTestConn struct {
	t testing.TB
	c *websocket.Conn
}

// wsWait bounds every wait for a frame or a close.
const wsWait = 10 * time.Second

func (ts *testServer) wsURL(query string) string {
	return "ws" + strings.TrimPrefix(ts.URL, "http") + "/api/ws" + query
}

// dialWS opens GET /api/ws?query with the given headers and dialer (nil:
// the default).
func (ts *testServer) dialWS(d *websocket.Dialer, query string, h http.Header) (*websocket.Conn, *http.Response, error) {
	if d == nil {
		d = websocket.DefaultDialer
	}
	return d.Dial(ts.wsURL(query), h)
}

func bearer(tok string) http.Header {
	return http.Header{"Authorization": {"Bearer " + tok}}
}

// openWS opens a socket with the access token and fails the test unless
// it opens.
func (ts *testServer) openWS(access, query string) *wsTestConn {
	ts.t.Helper()
	c, resp, err := ts.dialWS(nil, query, bearer(access))
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		ts.t.Fatalf("GET /api/ws%s: %v (status %d)", query, err, status)
	}
	w := &wsTestConn{t: ts.t, c: c}
	ts.t.Cleanup(func() { c.Close() })
	return w
}

// openReady opens a socket for live events and returns it with the seq of
// its ready frame.
func (ts *testServer) openReady(access string) (*wsTestConn, uint64) {
	ts.t.Helper()
	w := ts.openWS(access, "")
	f := w.next()
	if f.Type != "ready" {
		ts.t.Fatalf("first frame %+v, want ready", f)
	}
	return w, f.Seq
}

// next reads one frame.
func (w *wsTestConn) next() wsFrame {
	w.t.Helper()
	w.c.SetReadDeadline(time.Now().Add(wsWait))
	mt, data, err := w.c.ReadMessage()
	if err != nil {
		w.t.Fatalf("reading a frame: %v", err)
	}
	if mt != websocket.TextMessage {
		w.t.Fatalf("frame of type %d", mt)
	}
	var f wsFrame
	if err := json.Unmarshal(data, &f); err != nil {
		w.t.Fatalf("frame is not JSON: %q", data)
	}
	return f
}

// nextOf reads frames until one of type typ, failing on an error frame.
func (w *wsTestConn) nextOf(typ string) wsFrame {
	w.t.Helper()
	for {
		f := w.next()
		if f.Type == typ {
			return f
		}
		if f.Type == "error" {
			w.t.Fatalf("error frame %+v while waiting for %s", f.Error, typ)
		}
	}
}

func (w *wsTestConn) send(v any) {
	w.t.Helper()
	if err := w.c.WriteJSON(v); err != nil {
		w.t.Fatalf("writing a frame: %v", err)
	}
}

// closed reads until the server closes the socket and returns the close
// code (websocket.CloseAbnormalClosure if it just hung up) and how long it
// took.
func (w *wsTestConn) closed(within time.Duration) (int, time.Duration) {
	w.t.Helper()
	start := time.Now()
	w.c.SetReadDeadline(start.Add(within))
	for {
		_, _, err := w.c.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code, time.Since(start)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			w.t.Fatalf("the socket was still open after %v", within)
		}
		return websocket.CloseAbnormalClosure, time.Since(start)
	}
}

// expectClose fails unless the server closes the socket with code within
// the time given.
func (w *wsTestConn) expectClose(code int, within time.Duration, what string) {
	w.t.Helper()
	got, took := w.closed(within)
	if got != code {
		w.t.Fatalf("%s: close code %d after %v, want %d", what, got, took, code)
	}
}

// expectWSError fails unless the upgrade was refused with status and the
// JSON error code.
func expectWSError(t testing.TB, resp *http.Response, err error, status int, code, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: the socket opened", what)
	}
	if resp == nil {
		t.Fatalf("%s: %v (no answer)", what, err)
	}
	var body struct {
		Error struct{ Code, Message string }
	}
	dec := json.NewDecoder(resp.Body)
	if resp.StatusCode != status || dec.Decode(&body) != nil || body.Error.Code != code || body.Error.Message == "" ||
		resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%s: status %d, error %+v, want %d %s", what, resp.StatusCode, body.Error, status, code)
	}
}
