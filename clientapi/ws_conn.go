package clientapi

import (
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/privateline/privateline/envelope"
	"github.com/privateline/privateline/storage"
)

// One WebSocket (GET /api/ws; protocol in ws.go).
//
// An idle socket costs one goroutine (the reader, blocked in a read), a
// small read buffer, two runtime timers (ping, token expiry) and nothing
// queued: writes take a buffer from a shared pool, and a writer goroutine
// exists only while frames are waiting (wsConn.enqueue starts one, it
// ends when the queue is empty).

// Close codes and reasons.
const (
	closeTokenExpired  = 4001
	reasonTokenExpired = "the access token expired; reconnect with a fresh one"
	closeSessionEnded  = 4003
	reasonSessionEnded = "the session has ended"
	closeTooSlow       = 4008
	reasonTooSlow      = "too slow; resume with after=<seq>"
	closeGoingAway     = websocket.CloseGoingAway
	closeInternal      = websocket.CloseInternalServerErr
)

// Timing and sizes of sockets.
const (
	// DefaultWSPingInterval is how often the server pings; a socket that
	// sends nothing (not even a pong) for twice as long is closed.
	DefaultWSPingInterval = 25 * time.Second
	// DefaultWSQueueLimit is how many frames may wait for a socket before
	// it is closed as too slow.
	DefaultWSQueueLimit = 256
	// wsReadLimit is the largest frame a client may send: an envelope
	// and the frame around it.
	wsReadLimit = envelope.MaxSize + 1024
	// wsWriteWait bounds one write; wsCloseWait the close frame.
	wsWriteWait = 10 * time.Second
	wsCloseWait = time.Second
	// wsBacklogPage is how many logged events one read of the backlog
	// gets.
	wsBacklogPage = 256
)

// outFrame is one frame to send: an event, encoded at most once however
// many sockets of the user send it, or a reply already encoded.
type outFrame struct {
	seq  uint64         // the event's sequence number; 0 for other frames
	ev   *storage.Event // nil for other frames
	once sync.Once
	data []byte
	err  error
}

func (f *outFrame) encode(a *API) ([]byte, error) {
	f.once.Do(func() {
		if f.ev != nil {
			f.data, f.err = json.Marshal(a.eventFrame(f.ev))
		}
	})
	return f.data, f.err
}

// wsConn is one open socket.
type wsConn struct {
	a       *API
	ws      *websocket.Conn
	user    storage.ID
	session storage.ID
	tokenID string
	expires time.Time // the access token's expiry: the socket closes then

	mu      sync.Mutex
	queue   []*outFrame // guarded by mu
	writing bool        // guarded by mu: a goroutine owns the writer
	closed  bool        // guarded by mu
	// closeCode and closeReason are set with closed, under mu, and read by
	// the writer's owner once it has seen closed.
	closeCode   int
	closeReason string
	ping        *time.Timer // guarded by mu
	expiry      *time.Timer // guarded by mu

	// sent is the last event number written; only the writer's owner
	// touches it.
	sent uint64
}

func newWSConn(a *API, ws *websocket.Conn, p *principal) *wsConn {
	// The socket's first goroutine owns the writer until the backlog is
	// out (run).
	return &wsConn{a: a, ws: ws, user: p.UserID, session: p.SessionID, tokenID: p.TokenID, expires: p.Expires, writing: true}
}

// enqueue queues f and makes sure a writer runs. It never blocks: a full
// queue closes the socket as too slow.
func (c *wsConn) enqueue(f *outFrame) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if len(c.queue) >= c.a.cfg.WSQueueLimit {
		c.mu.Unlock()
		c.a.metrics.wsSlow.Inc()
		c.closeWith(closeTooSlow, reasonTooSlow)
		return
	}
	c.queue = append(c.queue, f)
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		go c.drain()
	}
}

// drain writes queued frames until the queue is empty, then gives up the
// writer; once the socket is closed it sends the close frame instead
// (finish). The caller owns the writer.
func (c *wsConn) drain() {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			c.finish()
			return
		}
		if len(c.queue) == 0 {
			c.writing = false
			c.queue = nil
			c.mu.Unlock()
			return
		}
		batch := c.queue
		c.queue = nil
		c.mu.Unlock()
		for _, f := range batch {
			if c.isClosed() {
				break
			}
			if err := c.write(f); err != nil {
				c.closeWith(0, "")
			}
		}
	}
}

// write sends one frame; an event at or before the last one sent is
// skipped (it came both from the log and live). The caller owns the
// writer.
func (c *wsConn) write(f *outFrame) error {
	if f.ev != nil && f.seq <= c.sent {
		return nil
	}
	data, err := f.encode(c.a)
	if err != nil {
		c.a.log.Error("websocket: cannot encode an event", "err", err)
		return err
	}
	c.ws.SetWriteDeadline(time.Now().Add(wsWriteWait))
	if err := c.ws.WriteMessage(websocket.TextMessage, data); err != nil {
		return err
	}
	if f.ev != nil {
		c.sent = f.seq
		c.a.metrics.wsEvents.Inc()
	}
	return nil
}

// reply queues a frame that answers the client.
func (c *wsConn) reply(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		c.a.log.Error("websocket: cannot encode a reply", "err", err)
		return
	}
	f := &outFrame{data: b}
	f.once.Do(func() {})
	c.enqueue(f)
}

func (c *wsConn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// closeWith closes the socket, without blocking the caller: nothing more
// is queued or sent but a close frame with code and reason (none with code
// 0), which the writer sends after the frame it is writing, if any (a
// write that does not finish fails at its deadline), and then the
// connection closes.
func (c *wsConn) closeWith(code int, reason string) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.queue = nil
	c.closeCode, c.closeReason = code, reason
	for _, t := range []*time.Timer{c.ping, c.expiry} {
		if t != nil {
			t.Stop()
		}
	}
	busy := c.writing
	c.writing = true
	c.mu.Unlock()
	if !busy {
		go c.finish()
	}
}

// finish sends the close frame and closes the connection. The caller owns
// the writer and has seen closed set.
func (c *wsConn) finish() {
	if c.closeCode != 0 {
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(c.closeCode, c.closeReason), time.Now().Add(wsCloseWait))
	}
	c.ws.Close()
}

// pongWait is how long a socket may stay silent.
func (c *wsConn) pongWait() time.Duration { return 2 * c.a.cfg.WSPingInterval }

// startTimers arms the keep-alive ping and the close at the access
// token's expiry.
func (c *wsConn) startTimers() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.ping = time.AfterFunc(c.a.cfg.WSPingInterval, c.onPing)
	c.expiry = time.AfterFunc(c.expires.Sub(c.a.now()), func() { c.closeWith(closeTokenExpired, reasonTokenExpired) })
}

// onPing pings the client, or closes the socket if the access token has
// expired by the server's clock.
func (c *wsConn) onPing() {
	if !c.a.now().Before(c.expires) {
		c.closeWith(closeTokenExpired, reasonTokenExpired)
		return
	}
	if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(wsWriteWait)); err != nil {
		c.closeWith(0, "")
		return
	}
	c.mu.Lock()
	if !c.closed {
		c.ping.Reset(c.a.cfg.WSPingInterval)
	}
	c.mu.Unlock()
}

// run serves the socket: the backlog, then live events and the client's
// frames until it closes.
func (c *wsConn) run(after uint64, hasAfter bool) {
	defer c.a.hub.remove(c)
	defer c.a.metrics.wsOpen.Dec()
	defer c.closeWith(0, "")
	defer func() {
		if v := recover(); v != nil {
			c.a.log.Error("websocket: panic", "panic", v)
		}
	}()
	if !c.a.sessionLive(c.user, c.session, c.tokenID) {
		// Revoked between the handshake and joining the hub.
		c.closeWith(closeSessionEnded, reasonSessionEnded)
	} else if err := c.backlog(after, hasAfter); err != nil {
		if !c.isClosed() {
			c.a.log.Error("websocket: cannot send the backlog", "err", err)
		}
		c.closeWith(closeInternal, "the server could not read the events; reconnect")
	}
	c.drain() // the live events queued meanwhile (or the close); then the writer is free
	if c.isClosed() {
		return
	}
	c.ws.SetReadLimit(wsReadLimit)
	c.ws.SetReadDeadline(time.Now().Add(c.pongWait()))
	c.ws.SetPongHandler(func(string) error { return c.ws.SetReadDeadline(time.Now().Add(c.pongWait())) })
	c.startTimers()
	for {
		mt, data, err := c.ws.ReadMessage()
		if err != nil {
			return // the deferred close; a too-large frame was answered 1009 by the library
		}
		c.ws.SetReadDeadline(time.Now().Add(c.pongWait()))
		c.handle(mt, data)
	}
}

// backlog sends the logged events after `after` (with hasAfter), or
// nothing, then ready; or reset when the log no longer reaches back. The
// socket is in the hub already, so nothing committed from now on is
// missed: it is queued, and the events sent here are skipped there. The
// caller owns the writer.
func (c *wsConn) backlog(after uint64, hasAfter bool) error {
	if !hasAfter {
		n, err := c.a.msgs.UnreadCounts(c.user)
		if err != nil {
			return err
		}
		c.sent = n.Next
		return c.writeNow(wsReady{Type: "ready", Seq: n.Next})
	}
	c.sent = after
	for {
		evs, err := c.a.events.EventsAfter(c.user, after, wsBacklogPage, c.a.now())
		if errors.Is(err, storage.ErrEventsGone) {
			n, err := c.a.msgs.UnreadCounts(c.user)
			if err != nil {
				return err
			}
			c.sent = n.Next
			return c.writeNow(wsReady{Type: "reset", Seq: n.Next})
		}
		if err != nil {
			return err
		}
		for i := range evs {
			if err := c.write(&outFrame{seq: evs[i].Seq, ev: &evs[i]}); err != nil {
				return err
			}
		}
		if len(evs) < wsBacklogPage {
			break
		}
		after = evs[len(evs)-1].Seq
	}
	return c.writeNow(wsReady{Type: "ready", Seq: c.sent})
}

// writeNow encodes and writes v; the caller owns the writer.
func (c *wsConn) writeNow(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	f := &outFrame{data: b}
	f.once.Do(func() {})
	return c.write(f)
}
