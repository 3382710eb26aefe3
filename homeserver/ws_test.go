package homeserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/e2ee"
	"github.com/privateline/privateline/envelope"
	"github.com/privateline/privateline/homeserver"
)

// The WebSocket (GET /api/ws) against a real server on loopback, with
// envelopes sealed and opened by the SDK.

func wsConfig(t testing.TB) homeserver.Config {
	cfg := testConfig(t)
	cfg.MessageRatePerMinute, cfg.MessageBurst = 60000, 100000
	return cfg
}

// TestWSEvents: a message arrives in real time at the recipient and at
// the sender's other socket; read, deleted, expired and key_changed
// events follow; a message sent over the socket is acknowledged after the
// write, and bad frames get error frames without closing the socket.
func TestWSEvents(t *testing.T) {
	t.Parallel()
	clock := newStepClock()
	ts := startServer(t, wsConfig(t), withStepClock(clock))
	alice := ts.registerWithKeys("wsalice", "alice")
	bob := ts.registerWithKeys("wsbob", "bob")
	aliceOther := ts.loginAgain(alice.account)
	bobWS, bobSeq := ts.openReady(bob.Access)
	aliceWS, _ := ts.openReady(aliceOther.Access)
	if bobSeq != 0 {
		t.Fatalf("a new account's ready seq is %d", bobSeq)
	}

	hello := sealTo(t, alice, bob, "hello over the socket")
	seq := ts.sendOK(alice, hello)
	in := bobWS.next()
	if in.Type != "message" || in.Seq != 1 || in.Message == nil || in.Message.Seq != 1 || in.Message.Direction != "in" ||
		in.Message.Read == nil || *in.Message.Read || openItem(t, *in.Message, bob, alice) != "hello over the socket" {
		t.Fatalf("bob's frame: %+v", in)
	}
	out := aliceWS.next()
	if out.Type != "message" || out.Seq != seq || out.Message.Direction != "out" || out.Message.ReadBy == nil || len(out.Message.ReadBy) != 0 ||
		out.Message.id(t) != hello.ID() {
		t.Fatalf("alice's other socket: %+v", out)
	}

	// Read: both sides hear it, naming the reader.
	if r := ts.do("POST", "/api/messages/"+hello.ID()+"/read", bob.Access, nil); r.Status != http.StatusNoContent {
		t.Fatalf("read: %d %s", r.Status, r.Body)
	}
	for _, w := range []*wsTestConn{bobWS, aliceWS} {
		if f := w.next(); f.Type != "read" || f.ID != hello.ID() || f.By != string(bob.Address) || f.Message != nil {
			t.Fatalf("read frame: %+v", f)
		}
	}
	// Deleted by the sender: everyone's copy.
	if r := ts.do("DELETE", "/api/messages/"+hello.ID(), alice.Access, nil); r.Status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	for _, w := range []*wsTestConn{bobWS, aliceWS} {
		if f := w.next(); f.Type != "deleted" || f.ID != hello.ID() {
			t.Fatalf("deleted frame: %+v", f)
		}
	}

	// Sent over the socket: acknowledged after the write, then visible
	// over REST; the recipient gets it live.
	viaWS := sealTo(t, alice, bob, "sent over the socket")
	aliceWS.send(map[string]any{"type": "send", "envelope": json.RawMessage(viaWS.Raw)})
	var ack wsFrame
	for ack.Type != "ack" { // alice's own copy comes first
		if ack = aliceWS.next(); ack.Type == "message" && ack.Message.id(t) != viaWS.ID() {
			t.Fatalf("alice's socket: %+v", ack)
		}
	}
	if ack.ID != viaWS.ID() || ack.Seq == 0 {
		t.Fatalf("ack: %+v", ack)
	}
	items := ts.mailbox(bob, "after=0")
	if len(items) != 1 || items[0].id(t) != viaWS.ID() || openItem(t, items[0], bob, alice) != "sent over the socket" {
		t.Fatalf("bob's mailbox after the ack: %+v", items)
	}
	if f := bobWS.next(); f.Type != "message" || f.Message.id(t) != viaWS.ID() {
		t.Fatalf("bob's frame for the socket's message: %+v", f)
	}

	// Bad frames: error frames, and the socket stays open.
	forged := sealTo(t, bob, alice, "not from alice")
	for _, c := range []struct {
		frame     string
		code, id  string
		substring string
	}{
		{`{"type":"send","envelope":` + string(forged.Raw) + `}`, "forbidden", forged.ID(), "from"},
		{`{"type":"send","envelope":{"header":{}}}`, "invalid_request", "", "envelope"},
		{`{"type":"send"}`, "invalid_request", "", "envelope"},
		{`{"type":"subscribe"}`, "invalid_request", "", "unknown frame type"},
		{`{"type":`, "invalid_request", "", ""},
		{`[1,2]`, "invalid_request", "", ""},
		{`{"type":"send","type":"send"}`, "invalid_request", "", ""},
	} {
		if err := aliceWS.c.WriteMessage(websocket.TextMessage, []byte(c.frame)); err != nil {
			t.Fatal(err)
		}
		f := aliceWS.next()
		if f.Type != "error" || f.Error == nil || f.Error.Code != c.code || f.ID != c.id || !strings.Contains(f.Error.Message, c.substring) {
			t.Fatalf("frame %s: answered %+v %+v", c.frame, f, f.Error)
		}
	}
	if err := aliceWS.c.WriteMessage(websocket.BinaryMessage, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if f := aliceWS.next(); f.Type != "error" || f.Error.Code != "invalid_request" {
		t.Fatalf("binary frame: %+v", f)
	}

	// Expired: the sweep on the server's clock tells both sides.
	start := clock.Now()
	short := sealFor(t, alice, []*e2ee.KeyBundle{bob.Keys.Bundle}, "short-lived", func(d *e2ee.Draft) {
		d.SentAt, d.ExpiresAt = start, start.Add(time.Minute)
	})
	ts.sendOK(alice, short)
	bobWS.nextOf("message")
	aliceWS.nextOf("message")
	clock.Advance(time.Minute)
	if n := homeserver.SweepMessages(ts.srv); n != 1 {
		t.Fatalf("sweep: %d", n)
	}
	for _, w := range []*wsTestConn{bobWS, aliceWS} {
		if f := w.next(); f.Type != "expired" || f.ID != short.ID() {
			t.Fatalf("expired frame: %+v", f)
		}
	}

	// key_changed: bob changes his keys; alice, a contact, hears of it.
	next := newTestKeys(t, bob.Address, "carol", clock.Now())
	if r := ts.do("PUT", "/api/keys", bob.Access, keyChangeBody(t, bob, next, "")); r.Status != http.StatusOK {
		t.Fatalf("key change: %d %s", r.Status, r.Body)
	}
	if f := aliceWS.next(); f.Type != "key_changed" || f.Address != string(bob.Address) {
		t.Fatalf("alice's key_changed frame: %+v", f)
	}
	// ... and it is in her log for a client that resumes.
	resumed := ts.openWS(alice.Access, "?after=0")
	var types []string
	for f := resumed.next(); f.Type != "ready"; f = resumed.next() {
		types = append(types, f.Type)
	}
	// (the read and the first message events went with the deleted message)
	if want := []string{"deleted", "message", "expired", "key_changed"}; !slices.Equal(types, want) {
		t.Fatalf("alice's log from 0: %v, want %v", types, want)
	}
}

// TestWSResume: bob disconnects; alice sends 50 messages concurrently
// with bob reconnecting with his last seq; bob gets each exactly once, in
// order, without a gap.
func TestWSResume(t *testing.T) {
	t.Parallel()
	ts := startServer(t, wsConfig(t))
	alice := ts.registerWithKeys("rsalice", "alice")
	bob := ts.registerWithKeys("rsbob", "bob")
	first := sealTo(t, alice, bob, "before")
	ts.sendOK(alice, first)
	w := ts.openWS(bob.Access, "?after=0")
	if f := w.next(); f.Type != "message" || f.Seq != 1 {
		t.Fatalf("backlog: %+v", f)
	}
	if f := w.next(); f.Type != "ready" || f.Seq != 1 {
		t.Fatalf("ready: %+v", f)
	}
	w.c.Close()

	const n = 50
	msgs := make([]sealed, n)
	for i := range msgs {
		msgs[i] = sealTo(t, alice, bob, "burst")
	}
	var wg sync.WaitGroup
	for i := range msgs {
		wg.Go(func() { ts.sendOK(alice, msgs[i]) })
	}
	w = ts.openWS(bob.Access, "?after=1")
	got := map[string]bool{}
	last := uint64(1)
	ready := false
	// The 50 may all be in the backlog, before ready, or follow it live.
	for len(got) < n || !ready {
		f := w.next()
		switch f.Type {
		case "ready":
			if ready || f.Seq != last {
				t.Fatalf("ready %+v after seq %d", f, last)
			}
			ready = true
			continue
		case "message":
		default:
			t.Fatalf("unexpected frame %+v", f)
		}
		if f.Seq != last+1 {
			t.Fatalf("seq %d after %d: a gap or a duplicate", f.Seq, last)
		}
		last = f.Seq
		id := f.Message.id(t)
		if got[id] {
			t.Fatalf("message %s twice", id)
		}
		got[id] = true
	}
	wg.Wait()
	if !ready {
		t.Fatal("no ready frame")
	}
	for _, m := range msgs {
		if !got[m.ID()] {
			t.Fatalf("message %s missing", m.ID())
		}
	}
	// Nothing more comes: a message sent now is the next frame.
	late := sealTo(t, alice, bob, "late")
	ts.sendOK(alice, late)
	if f := w.next(); f.Type != "message" || f.Seq != last+1 || f.Message.id(t) != late.ID() {
		t.Fatalf("after the burst: %+v", f)
	}
}

// TestWSReset: a client further behind than the event log reaches is told
// to resynchronise, with the current seq, and then gets live events.
func TestWSReset(t *testing.T) {
	t.Parallel()
	ts := startServer(t, wsConfig(t), func(o *homeserver.Options) { o.EventWindow = 3 })
	alice := ts.registerWithKeys("rtalice", "alice")
	bob := ts.registerWithKeys("rtbob", "bob")
	for range 5 {
		ts.sendOK(alice, sealTo(t, alice, bob, "old"))
	}
	w := ts.openWS(bob.Access, "?after=1")
	if f := w.next(); f.Type != "reset" || f.Seq != 5 {
		t.Fatalf("behind the window: %+v, want reset 5", f)
	}
	m := sealTo(t, alice, bob, "live")
	ts.sendOK(alice, m)
	if f := w.next(); f.Type != "message" || f.Seq != 6 || f.Message.id(t) != m.ID() {
		t.Fatalf("after reset: %+v", f)
	}
	// Within the window: the backlog.
	w2 := ts.openWS(bob.Access, "?after=3")
	var seqs []uint64
	for f := w2.next(); f.Type != "ready"; f = w2.next() {
		seqs = append(seqs, f.Seq)
	}
	if !slices.Equal(seqs, []uint64{4, 5, 6}) {
		t.Fatalf("after 3: %v", seqs)
	}
}

// TestWSAuth: no credentials, bad ones, a refused Origin, a bad query and
// a request that is no upgrade are JSON errors before the upgrade; the
// access cookie and the server's own or an allowed Origin work; tickets
// are single-use, expire, and belong to one session.
func TestWSAuth(t *testing.T) {
	t.Parallel()
	clock := newStepClock()
	cfg := wsConfig(t)
	cfg.CORSOrigins = []string{"https://app.example"}
	ts := startServer(t, cfg, withStepClock(clock))
	alice := ts.register("wsauth")
	bob := ts.register("wsauthb")

	_, resp, err := ts.dialWS(nil, "", nil)
	expectWSError(t, resp, err, http.StatusUnauthorized, "unauthenticated", "no credentials")
	_, resp, err = ts.dialWS(nil, "", bearer(alice.Access+"x"))
	expectWSError(t, resp, err, http.StatusUnauthorized, "unauthenticated", "a bad token")
	h := bearer(alice.Access)
	h.Set("Origin", "https://evil.example")
	_, resp, err = ts.dialWS(nil, "", h)
	expectWSError(t, resp, err, http.StatusForbidden, "origin_not_allowed", "a foreign Origin")
	for _, q := range []string{"?after=x", "?after=1&after=2", "?since=1"} {
		_, resp, err = ts.dialWS(nil, q, bearer(alice.Access))
		expectWSError(t, resp, err, http.StatusBadRequest, "invalid_request", "query "+q)
	}
	expectAPIError(t, ts.do("GET", "/api/ws", alice.Access, nil), http.StatusBadRequest, "invalid_request", "no upgrade")

	for _, origin := range []string{"https://app.example", ts.URL} {
		h := bearer(alice.Access)
		h.Set("Origin", origin)
		c, _, err := ts.dialWS(nil, "", h)
		if err != nil {
			t.Fatalf("Origin %s: %v", origin, err)
		}
		(&wsTestConn{t: t, c: c}).nextOf("ready")
		c.Close()
	}

	// The access cookie of a browser session (no CSRF token needed).
	r := ts.do("POST", "/api/login", "", map[string]any{"username": alice.Username, "auth_key": alice.AuthKey, "use_cookies": true})
	var cookie string
	for _, ck := range r.Header["Set-Cookie"] {
		if strings.HasPrefix(ck, "pl_access=") {
			cookie, _, _ = strings.Cut(ck, ";")
		}
	}
	if cookie == "" {
		t.Fatalf("no access cookie: %v", r.Header)
	}
	c, _, err := ts.dialWS(nil, "", http.Header{"Cookie": {cookie}, "Origin": {ts.URL}})
	if err != nil {
		t.Fatalf("cookie: %v", err)
	}
	(&wsTestConn{t: t, c: c}).nextOf("ready")
	c.Close()

	ticket := func(access string) string {
		t.Helper()
		r := ts.do("POST", "/api/ws/ticket", access, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("ticket: %d %s", r.Status, r.Body)
		}
		m := r.json(t)
		if m["expires_in"] != float64(30) {
			t.Fatalf("ticket answer %v", m)
		}
		return m["ticket"].(string)
	}
	expectUnauthenticated(t, ts.do("POST", "/api/ws/ticket", "", nil), "a ticket without a token")
	tk := ticket(alice.Access)
	c, _, err = ts.dialWS(nil, "?ticket="+tk, nil)
	if err != nil {
		t.Fatalf("ticket: %v", err)
	}
	(&wsTestConn{t: t, c: c}).nextOf("ready")
	c.Close()
	_, resp, err = ts.dialWS(nil, "?ticket="+tk, nil)
	expectWSError(t, resp, err, http.StatusUnauthorized, "unauthenticated", "a used ticket")

	tk = ticket(alice.Access)
	clock.Advance(30 * time.Second)
	_, resp, err = ts.dialWS(nil, "?ticket="+tk, nil)
	expectWSError(t, resp, err, http.StatusUnauthorized, "unauthenticated", "an expired ticket")

	tk = ticket(alice.Access)
	_, resp, err = ts.dialWS(nil, "?ticket="+tk, bearer(bob.Access))
	expectWSError(t, resp, err, http.StatusUnauthorized, "unauthenticated", "alice's ticket with bob's token")

	tk = ticket(alice.Access)
	if r := ts.do("POST", "/api/revoke", alice.Access, map[string]any{}); r.Status != http.StatusNoContent {
		t.Fatalf("revoke: %d", r.Status)
	}
	_, resp, err = ts.dialWS(nil, "?ticket="+tk, nil)
	expectWSError(t, resp, err, http.StatusUnauthorized, "unauthenticated", "a ticket of a revoked session")
	_, resp, err = ts.dialWS(nil, "?ticket=nonsense", nil)
	expectWSError(t, resp, err, http.StatusUnauthorized, "unauthenticated", "an unknown ticket")
}

// TestWSRevocation: every way a session ends closes its sockets within a
// second (code 4003), and only its sockets.
func TestWSRevocation(t *testing.T) {
	t.Parallel()
	ts := startServer(t, wsConfig(t))
	const within = time.Second
	ended := func(w *wsTestConn, what string) { w.t.Helper(); w.expectClose(4003, within, what) }
	stillOpen := func(w *wsTestConn, access, what string) {
		t.Helper()
		// A ticket issued to the session shows up nowhere; use the
		// socket itself: a bad frame is answered.
		w.send(map[string]any{"type": "ping?"})
		if f := w.next(); f.Type != "error" {
			t.Fatalf("%s: %+v", what, f)
		}
	}

	t.Run("revoke", func(t *testing.T) {
		a := ts.register("rvk")
		other := ts.loginAgain(a)
		w, _ := ts.openReady(a.Access)
		o, _ := ts.openReady(other.Access)
		ts.do("POST", "/api/revoke", a.Access, map[string]any{})
		ended(w, "revoke")
		stillOpen(o, other.Access, "the other session's socket after revoke")
	})
	t.Run("revoke all", func(t *testing.T) {
		a := ts.register("rvka")
		other := ts.loginAgain(a)
		w, _ := ts.openReady(a.Access)
		o, _ := ts.openReady(other.Access)
		ts.do("POST", "/api/revoke", other.Access, map[string]any{"all": true})
		ended(w, "revoke all")
		ended(o, "revoke all (the caller's own)")
	})
	t.Run("password change", func(t *testing.T) {
		keys := newAccountKeys()
		a := ts.registerKeys("rvkp", keys)
		other := ts.loginAgain(a)
		w, _ := ts.openReady(a.Access)
		o, _ := ts.openReady(other.Access)
		if r := ts.do("PUT", "/api/account-settings", other.Access, passwordChangeBody(keys.AuthKey, newAccountKeys())); r.Status != http.StatusOK {
			t.Fatalf("password change: %d %s", r.Status, r.Body)
		}
		ended(w, "password change")
		stillOpen(o, other.Access, "the changing session's socket")
	})
	t.Run("refresh token reuse", func(t *testing.T) {
		a := ts.register("rvkr")
		w, _ := ts.openReady(a.Access)
		refreshPair(t, ts.postRefresh(a.Refresh))
		expectUnauthenticated(t, ts.postRefresh(a.Refresh), "reuse")
		ended(w, "refresh token reuse")
	})
	t.Run("account deletion", func(t *testing.T) {
		a := ts.register("rvkd")
		other := ts.loginAgain(a)
		w, _ := ts.openReady(a.Access)
		o, _ := ts.openReady(other.Access)
		if r := ts.do("DELETE", "/api/account", a.Access, map[string]any{"auth_key": a.AuthKey}); r.Status != http.StatusNoContent {
			t.Fatalf("delete: %d %s", r.Status, r.Body)
		}
		ended(w, "account deletion")
		ended(o, "account deletion (other session)")
	})
}

// TestWSTokenExpiry: the socket closes (4001) when its access token
// expires by the server's clock.
func TestWSTokenExpiry(t *testing.T) {
	t.Parallel()
	clock := newStepClock()
	cfg := wsConfig(t)
	cfg.WSPingInterval = 50 * time.Millisecond
	ts := startServer(t, cfg, withStepClock(clock))
	a := ts.register("wsexpc")
	w, _ := ts.openReady(a.Access)
	clock.Advance(cfg.AccessTokenTTL - time.Second)
	w.c.SetReadDeadline(time.Now().Add(5 * cfg.WSPingInterval))
	if _, _, err := w.c.ReadMessage(); !isTimeout(err) {
		t.Fatalf("the socket closed before its token expired: %v", err)
	}
	w = ts.openWS(a.Access, "") // a read deadline breaks a gorilla connection for good
	w.nextOf("ready")
	clock.Advance(time.Second)
	w.expectClose(4001, 5*time.Second, "access token expiry")
	_, resp, err := ts.dialWS(nil, "", bearer(a.Access))
	expectWSError(t, resp, err, http.StatusUnauthorized, "unauthenticated", "the expired token")
}

// TestWSKeepAlive: a client that answers pings stays connected across
// many intervals; one that does not is closed after about two.
func TestWSKeepAlive(t *testing.T) {
	t.Parallel()
	cfg := wsConfig(t)
	cfg.WSPingInterval = 100 * time.Millisecond
	ts := startServer(t, cfg)
	alice := ts.registerWithKeys("kaalice", "alice")
	bob := ts.registerWithKeys("kabob", "bob")
	w, _ := ts.openReady(bob.Access)
	pings := make(chan struct{}, 100)
	w.c.SetPingHandler(func(data string) error {
		pings <- struct{}{}
		return w.c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	frames := make(chan wsFrame, 1)
	go func() {
		for {
			_, data, err := w.c.ReadMessage()
			if err != nil {
				close(frames)
				return
			}
			var f wsFrame
			if json.Unmarshal(data, &f) == nil {
				frames <- f
			}
		}
	}()
	for range 6 { // six intervals, three times the silence allowed
		select {
		case <-pings:
		case <-frames:
			t.Fatal("the socket closed or sent something while idle")
		case <-time.After(wsWait):
			t.Fatal("no ping")
		}
	}
	m := sealTo(t, alice, bob, "still there")
	ts.sendOK(alice, m)
	if f, ok := <-frames; !ok || f.Type != "message" || f.Message.id(t) != m.ID() {
		t.Fatalf("after idling: %+v %v", f, ok)
	}

	// A client that never answers pings is dropped.
	silent, _ := ts.openReady(alice.Access)
	silent.c.SetPingHandler(func(string) error { return nil })
	start := time.Now()
	silent.closed(wsWait)
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Fatalf("a silent client was dropped after %v, before two intervals", took)
	}
}

// TestWSReadLimit: a frame over an envelope's size and the frame around it
// closes the socket with 1009.
func TestWSReadLimit(t *testing.T) {
	t.Parallel()
	ts := startServer(t, wsConfig(t))
	a := ts.register("wsbig")
	w, _ := ts.openReady(a.Access)
	big := `{"type":"send","envelope":"` + strings.Repeat("x", envelope.MaxSize+2048) + `"}`
	if err := w.c.WriteMessage(websocket.TextMessage, []byte(big)); err != nil {
		t.Fatal(err)
	}
	w.expectClose(websocket.CloseMessageTooBig, wsWait, "an oversized frame")
}

// TestWSSlowReader: a socket that never reads is closed (4008) once its
// queue overflows, while another socket of the same user keeps receiving
// every message promptly.
func TestWSSlowReader(t *testing.T) {
	t.Parallel()
	cfg := wsConfig(t)
	cfg.WSQueueLimit = 4
	ts := startServer(t, cfg)
	alice := ts.registerWithKeys("slalice", "alice")
	bob := ts.registerWithKeys("slbob", "bob")
	// The slow socket's receive buffer is small, so the server's writes
	// back up soon; it is never read until the end.
	small := &websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
			return errors.Join(err, serr)
		}}
		return d.DialContext(ctx, network, addr)
	}}
	sc, _, err := ts.dialWS(small, "", bearer(bob.Access))
	if err != nil {
		t.Fatal(err)
	}
	slow := &wsTestConn{t: t, c: sc}
	slow.nextOf("ready")
	fast, _ := ts.openReady(bob.Access)
	// Once the server gives up on it, the slow client starts reading: it
	// gets what was in flight, then the close frame.
	slowCode := make(chan int, 1)
	go func() {
		for !strings.Contains(scrapeMetrics(t, ts), "privateline_ws_slow_disconnects_total 1") {
			time.Sleep(10 * time.Millisecond)
		}
		code, _ := slow.closed(wsWait)
		slowCode <- code
	}()

	const n = 120
	body := strings.Repeat("large message body ", 2000) // ~38 KB
	var mu sync.Mutex
	sentAt := map[string]time.Time{}
	var worst time.Duration
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range n {
			f := fast.nextOf("message")
			id := f.Message.id(t)
			mu.Lock()
			if d := time.Since(sentAt[id]); d > worst {
				worst = d
			}
			mu.Unlock()
		}
	}()
	for range n {
		m := sealTo(t, alice, bob, body)
		mu.Lock()
		sentAt[m.ID()] = time.Now()
		mu.Unlock()
		ts.sendOK(alice, m)
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("the fast reader did not get every message")
	}
	if worst > 5*time.Second {
		t.Errorf("the fast reader waited up to %v for a message", worst)
	}
	select {
	case code := <-slowCode:
		if code != 4008 {
			t.Fatalf("the slow reader was closed with %d, want 4008", code)
		}
	case <-time.After(time.Minute):
		t.Fatal("the slow reader was never dropped")
	}
	// The metrics count it; the gauge goes down once its goroutine ends.
	deadline := time.Now().Add(wsWait)
	for {
		b := scrapeMetrics(t, ts)
		if strings.Contains(b, "privateline_ws_slow_disconnects_total 1") && strings.Contains(b, "privateline_ws_connections 1") &&
			strings.Contains(b, "privateline_ws_events_sent_total") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics after the slow reader was dropped:\n%s", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func scrapeMetrics(t testing.TB, ts *testServer) string {
	t.Helper()
	resp, err := http.Get("http://" + ts.srv.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// The WebSocket routes in TestAuthenticatedRoutes: bob's credentials
// open bob's event log only.
func init() {
	bobsLogOnly := func(t *testing.T, ts *testServer, alice *account, w *wsTestConn) {
		t.Helper()
		// Alice has an event (a message from carol); bob's log is empty.
		carol := ts.registerWithKeys("wscarol", "carol")
		aliceKeys := newTestKeys(t, privateline.Address(alice.Username+"@hs.test"), "alice", time.Now())
		m := sealFor(t, carol, []*e2ee.KeyBundle{aliceKeys.Bundle}, "for alice", nil)
		ts.sendOK(carol, m)
		if f := w.next(); f.Type != "ready" || f.Seq != 0 {
			t.Fatalf("bob's socket from 0: %+v", f)
		}
		// A frame of bob's own is answered; nothing of alice's came first.
		w.send(map[string]any{"type": "nothing"})
		if f := w.next(); f.Type != "error" {
			t.Fatalf("bob's socket got %+v", f)
		}
	}
	crossUserCases["GET /api/ws"] = func(t *testing.T, ts *testServer, alice, bob *account) {
		bobsLogOnly(t, ts, alice, ts.openWS(bob.Access, "?after=0"))
	}
	crossUserCases["POST /api/ws/ticket"] = func(t *testing.T, ts *testServer, alice, bob *account) {
		tk := func() string {
			r := ts.do("POST", "/api/ws/ticket", bob.Access, nil)
			expectHTTPStatus(t, r, http.StatusOK, "bob's ticket")
			return r.json(t)["ticket"].(string)
		}
		// Bob's ticket with alice's token is refused (and used up).
		_, resp, err := ts.dialWS(nil, "?ticket="+tk(), bearer(alice.Access))
		expectWSError(t, resp, err, http.StatusUnauthorized, "unauthenticated", "bob's ticket with alice's token")
		c, _, err := ts.dialWS(nil, "?after=0&ticket="+tk(), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		bobsLogOnly(t, ts, alice, &wsTestConn{t: t, c: c})
	}
}
