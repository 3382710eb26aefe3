package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/privateline/privateline/clients/go/e2ee"
)

type options struct {
	serverBin, url, keyCache string
	pid                      int
	users, messages          int
	rate                     float64
	latencyFor, rtt          time.Duration
	idle                     int
	federation, drain        bool
	dataDir, cpuProfile      string
	memtableMiB              uint64
}

// msg is one pre-sealed envelope.
type msg struct {
	from *user
	raw  []byte
}

// tracker matches deliveries on the WebSockets to the messages sent.
type tracker struct {
	index     map[string]int // message id → index into sent/got
	sent      []atomic.Int64 // unix ns the send was due (latency phase) or started
	got       []atomic.Int64 // unix ns of delivery to the recipient
	delivered atomic.Int64
}

func newTracker(ids []string) *tracker {
	t := &tracker{index: make(map[string]int, len(ids)), sent: make([]atomic.Int64, len(ids)), got: make([]atomic.Int64, len(ids))}
	for i, id := range ids {
		t.index[id] = i
	}
	return t
}

var (
	idKey  = []byte(`"id":"`)
	inKey  = []byte(`"direction":"in"`)
	msgKey = []byte(`"type":"message"`)
)

// frame records a WebSocket frame: an incoming message event's envelope
// id is found without decoding the whole frame (the first "id" member of a
// message event is the envelope header's).
func (t *tracker) frame(b []byte, now int64) {
	if !bytes.Contains(b, msgKey) || !bytes.Contains(b, inKey) {
		return
	}
	i := bytes.Index(b, idKey)
	if i < 0 || len(b) < i+len(idKey)+32 {
		return
	}
	if n, ok := t.index[string(b[i+len(idKey):i+len(idKey)+32])]; ok && t.got[n].CompareAndSwap(0, now) {
		t.delivered.Add(1)
	}
}

func wsURL(base string) string {
	u, _ := url.Parse(base)
	u.Scheme = "ws"
	u.Path = "/api/ws"
	return u.String()
}

// conn is a user's WebSocket: it feeds the tracker and passes the ids of
// acknowledged sends to acks.
type conn struct {
	ws   *websocket.Conn
	acks chan string
}

var (
	ackKey = []byte(`"type":"ack"`)
	errKey = []byte(`"type":"error"`)
)

// listen opens a WebSocket for u that feeds t until ctx ends.
func listen(ctx context.Context, base string, u *user, t *tracker) (*conn, error) {
	h := http.Header{"Authorization": {"Bearer " + u.access}}
	c, resp, err := websocket.DefaultDialer.DialContext(ctx, wsURL(base), h)
	if err != nil {
		if resp != nil {
			b, _ := io.ReadAll(resp.Body)
			return nil, fmt.Errorf("websocket: %v: %d %s", err, resp.StatusCode, b)
		}
		return nil, err
	}
	cn := &conn{ws: c, acks: make(chan string, 1)}
	go func() {
		<-ctx.Done()
		c.Close()
	}()
	go func() {
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				close(cn.acks)
				return
			}
			if bytes.Contains(b, errKey) {
				cn.acks <- "error: " + string(b)
				continue
			}
			if bytes.Contains(b, ackKey) {
				i := bytes.Index(b, idKey)
				if i >= 0 && len(b) >= i+len(idKey)+32 {
					cn.acks <- string(b[i+len(idKey) : i+len(idKey)+32])
				}
				continue
			}
			t.frame(b, time.Now().UnixNano())
		}
	}()
	return cn, nil
}

// send sends an envelope on the socket and waits for its ack.
func (cn *conn) send(m msg, id string) error {
	frame := make([]byte, 0, len(m.raw)+40)
	frame = append(frame, `{"type":"send","envelope":`...)
	frame = append(frame, m.raw...)
	frame = append(frame, '}')
	if err := cn.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
		return err
	}
	got, ok := <-cn.acks
	if !ok {
		return fmt.Errorf("the socket closed before the ack of %s", id)
	}
	if got != id {
		return fmt.Errorf("ack for %s while waiting for %s", got, id)
	}
	return nil
}

// seal makes n envelopes, user i to user i+1, on every CPU.
func seal(users []*user, n int) ([]msg, []string, error) {
	msgs := make([]msg, n)
	ids := make([]string, n)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	cpus := runtime.NumCPU()
	for w := range cpus {
		wg.Go(func() {
			for i := w; i < n; i += cpus {
				from, to := users[i%len(users)], users[(i+1)%len(users)]
				env, err := e2ee.SealDirect(nil, from.keys, []*e2ee.KeyBundle{to.bundle}, e2ee.Draft{
					Conversation: "bench", SentAt: time.Now(),
					Message: &e2ee.Message{Type: "text", Body: fmt.Sprintf("message %d, a sentence of ordinary length for a chat", i)},
				})
				var raw []byte
				if err == nil {
					raw, err = env.MarshalJSON()
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				msgs[i], ids[i] = msg{from, raw}, env.Header.ID
			}
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return nil, nil, err
	}
	return msgs, ids, nil
}

// waitDelivered waits until want messages were delivered or nothing more
// arrives for two seconds.
func waitDelivered(t *tracker, want int64) { waitQuiet(t, want, 2*time.Second) }

// waitQuiet waits until want messages were delivered or nothing more
// arrives for quiet.
func waitQuiet(t *tracker, want int64, quiet time.Duration) {
	last, since := t.delivered.Load(), time.Now()
	for t.delivered.Load() < want && time.Since(since) < quiet {
		time.Sleep(10 * time.Millisecond)
		if n := t.delivered.Load(); n != last {
			last, since = n, time.Now()
		}
	}
}

func run(o options) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := &server{url: o.url, pid: o.pid}
	if o.serverBin != "" {
		var err error
		if srv, err = startServer(o.serverBin); err != nil {
			return err
		}
		defer srv.stop()
	}
	fmt.Printf("machine: %s, %d CPUs, %s/%s, %s, %s\n", cpuModel(), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), cgoSetting())
	if o.keyCache == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			dir = os.TempDir()
		}
		o.keyCache = filepath.Join(dir, "privateline", "plbench-rsa-keys.json")
	}
	der, err := rsaKeys(o.keyCache, o.users)
	if err != nil {
		return err
	}
	users, err := registerUsers(ctx, srv.url, der)
	if err != nil {
		return fmt.Errorf("registering users: %w", err)
	}
	nLat := int(o.rate * o.latencyFor.Seconds())
	fmt.Fprintf(os.Stderr, "sealing %d envelopes…\n", o.messages+nLat)
	msgs, ids, err := seal(users, o.messages+nLat)
	if err != nil {
		return err
	}
	tr := newTracker(ids)
	conns := make([]*conn, len(users))
	for i, u := range users {
		if conns[i], err = listen(ctx, srv.url, u, tr); err != nil {
			return err
		}
	}
	rssBase := srv.rss()

	// Throughput: every user sends its messages on its socket as fast as
	// the acknowledgements come (one in flight per socket, as a client
	// keeps its order), while every socket also receives.
	var acked atomic.Int64
	var sendErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for ui := range users {
		wg.Go(func() {
			for i := ui; i < o.messages; i += len(users) {
				tr.sent[i].Store(time.Now().UnixNano())
				if err := conns[ui].send(msgs[i], ids[i]); err != nil {
					sendErr.CompareAndSwap(nil, err)
					return
				}
				acked.Add(1)
			}
		})
	}
	wg.Wait()
	ackDur := time.Since(start)
	if err, _ := sendErr.Load().(error); err != nil {
		return err
	}
	waitDelivered(tr, int64(o.messages))
	var lastGot int64
	for i := range o.messages {
		lastGot = max(lastGot, tr.got[i].Load())
	}
	delDur := time.Duration(lastGot - start.UnixNano())
	rssLoad := srv.rss()
	fmt.Printf("throughput: %d messages, %d users each sending and receiving on one WebSocket\n", o.messages, len(users))
	fmt.Printf("  acknowledged (durable):  %8.0f msg/s\n", float64(acked.Load())/ackDur.Seconds())
	fmt.Printf("  delivered end to end:    %8.0f msg/s (%d of %d delivered)\n", float64(tr.delivered.Load())/delDur.Seconds(), tr.delivered.Load(), o.messages)
	fmt.Printf("  latency under full load: %s\n", latencies(tr, 0, o.messages))

	// Latency at a fixed rate: message k is due at start + k/rate; the
	// latency counts from when it was due, so a server that falls behind
	// is not flattered (no coordinated omission).
	base := o.messages
	before := tr.delivered.Load()
	start = time.Now()
	if err := sendPaced(tr, start, base, nLat, len(users), o.rate, func(u, i int) error { return conns[u].send(msgs[i], ids[i]) }); err != nil {
		return err
	}
	waitDelivered(tr, before+int64(nLat))
	fmt.Printf("latency at %.0f msg/s for %s: %s\n", o.rate, o.latencyFor, latencies(tr, base, base+nLat))
	fmt.Printf("server RSS: %s with %d sockets before load, %s after\n", mib(rssBase), len(users), mib(rssLoad))

	if o.idle > 0 && srv.pid != 0 {
		if err := idleSockets(ctx, srv, users, o.idle); err != nil {
			return err
		}
	}
	return nil
}

// latencies summarises delivery latencies of messages [from, to).
func latencies(t *tracker, from, to int) string {
	var ds []time.Duration
	lost := 0
	for i := from; i < to; i++ {
		g := t.got[i].Load()
		if g == 0 {
			lost++
			continue
		}
		ds = append(ds, time.Duration(g-t.sent[i].Load()))
	}
	if len(ds) == 0 {
		return "nothing delivered"
	}
	slices.Sort(ds)
	q := func(p float64) time.Duration {
		return ds[min(len(ds)-1, int(p*float64(len(ds))))].Round(10 * time.Microsecond)
	}
	s := fmt.Sprintf("p50 %s, p99 %s, max %s", q(0.50), q(0.99), ds[len(ds)-1].Round(10*time.Microsecond))
	if lost > 0 {
		s += fmt.Sprintf(", %d NOT DELIVERED", lost)
	}
	return s
}

// idleSockets opens n idle WebSockets (spread over the users) and reports
// the server's RSS growth per socket.
func idleSockets(ctx context.Context, srv *server, users []*user, n int) error {
	runtime.GC()
	time.Sleep(2 * time.Second)
	before := srv.rss()
	d := websocket.Dialer{ReadBufferSize: 256, WriteBufferSize: 256, HandshakeTimeout: 30 * time.Second}
	conns := make([]*websocket.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range n {
		u := users[i%len(users)]
		c, resp, err := d.DialContext(ctx, wsURL(srv.url), http.Header{"Authorization": {"Bearer " + u.access}})
		if err != nil {
			if resp != nil {
				b, _ := io.ReadAll(resp.Body)
				return fmt.Errorf("idle socket %d: %v: %d %s", i, err, resp.StatusCode, b)
			}
			return fmt.Errorf("idle socket %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	time.Sleep(3 * time.Second) // let the server settle (a measurement, not an ordering)
	after := srv.rss()
	fmt.Printf("idle WebSockets: %d open, server RSS %s → %s, %.1f KiB per socket\n", n, mib(before), mib(after), float64(int64(after)-int64(before))/float64(n)/1024)
	return nil
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.Equal(bytes.TrimSpace(k), []byte("model name")) {
			return string(bytes.TrimSpace(v))
		}
	}
	return "unknown CPU"
}

// sendPaced sends messages base … base+n-1 at rate per second from start,
// message i by sender i mod senders, one goroutine per sender; each is
// timed from when it was due (tr.sent), so a server that falls behind is
// not flattered (no coordinated omission). It returns the first error.
func sendPaced(tr *tracker, start time.Time, base, n, senders int, rate float64, send func(sender, i int) error) error {
	var wg sync.WaitGroup
	var sendErr atomic.Value
	for u := range senders {
		wg.Go(func() {
			for k := (u - base%senders + senders) % senders; k < n; k += senders {
				due := start.Add(time.Duration(float64(k) / rate * float64(time.Second)))
				if d := time.Until(due); d > 0 {
					time.Sleep(d)
				}
				tr.sent[base+k].Store(due.UnixNano())
				if err := send(u, base+k); err != nil {
					sendErr.CompareAndSwap(nil, err)
					return
				}
			}
		})
	}
	wg.Wait()
	err, _ := sendErr.Load().(error)
	return err
}

// cgoSetting says how the binary was built: with cgo, Pebble allocates
// its block cache through it, which costs measurably more CPU; the
// homeserver is built without it (Makefile, Dockerfile).
func cgoSetting() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "CGO_ENABLED" && s.Value == "1" {
				return "cgo (build with CGO_ENABLED=0 to measure what the homeserver runs)"
			}
		}
	}
	return "no cgo"
}
