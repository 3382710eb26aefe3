package federation

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/envelope"
	"github.com/privateline/privateline/federation/transport"
	"github.com/privateline/privateline/federation/wire"
	"github.com/privateline/privateline/serverkey"
)

const (
	nameA privateline.ServerName = "a.test"
	nameB privateline.ServerName = "b.test"
	nameC privateline.ServerName = "c.test"
)

// testLimits keep a dial to a dead address short.
var testLimits = transport.Limits{HandshakeTimeout: time.Second, IdleTimeout: 20 * time.Second}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newKey(t *testing.T) *serverkey.PrivateKey {
	t.Helper()
	k, err := serverkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// noHTTP keeps tests off the network: server documents are fetched only
// where a test serves one.
type noHTTP struct{}

func (noHTTP) RoundTrip(r *http.Request) (*http.Response, error) {
	return nil, fmt.Errorf("no HTTP in this test (%s)", r.URL)
}

// node is one homeserver's federation in a test.
type node struct {
	name privateline.ServerName
	key  *serverkey.PrivateKey
	st   *fakeStore
	svc  *Service
	reg  *prometheus.Registry
	base time.Duration // first backoff; 0: 5 ms
	idle time.Duration // idle sender lifetime; 0: idleExit
	hand time.Duration // handshake timeout; 0: testLimits'
	// orderWait: how long a transaction waits for the one it names; 0:
	// orderWait.
	orderWait time.Duration
}

// start makes and starts a Service for n with fast retries (base 5 ms,
// no jitter) and hooks the store's notifier to Wake.
func (n *node) start(t *testing.T, peers []Peer, mod func(*Config)) {
	t.Helper()
	n.reg = prometheus.NewRegistry()
	cfg := Config{Name: n.name, Key: n.key, ListenAddr: "127.0.0.1:0", Peers: peers, Log: quiet, Registry: n.reg,
		HTTPClient: &http.Client{Transport: noHTTP{}}}
	if mod != nil {
		mod(&cfg)
	}
	svc, err := New(cfg, n.st)
	if err != nil {
		t.Fatal(err)
	}
	svc.base = 5 * time.Millisecond
	if n.base != 0 {
		svc.base = n.base
	}
	if n.idle != 0 {
		svc.idleAfter = n.idle
	}
	if n.orderWait != 0 {
		svc.order.wait = n.orderWait
	}
	svc.jitter = func() float64 { return 0.5 }
	svc.lim = testLimits
	if n.hand != 0 {
		svc.lim.HandshakeTimeout = n.hand
	}
	n.st.setNotifier(svc.Wake)
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	n.svc = svc
	t.Cleanup(func() { svc.Close() })
}

// pair starts two nodes that know each other's key and address.
func pair(t *testing.T, a, b *node, modA, modB func(*Config)) {
	t.Helper()
	a.start(t, []Peer{{Name: b.name, Key: b.key.Public()}}, modA)
	b.start(t, []Peer{{Name: a.name, Key: a.key.Public()}}, modB)
	a.svc.SetPeerAddr(b.name, b.svc.Addr())
	b.svc.SetPeerAddr(a.name, a.svc.Addr())
}

func newNode(t *testing.T, name privateline.ServerName, users ...privateline.Username) *node {
	return &node{name: name, key: newKey(t), st: newFakeStore(users...)}
}

// env returns a direct envelope that envelope.Parse accepts.
func env(t *testing.T, id string, from privateline.Address, to []privateline.Address, sent, expires time.Time) []byte {
	t.Helper()
	sorted := slices.Clone(to)
	slices.Sort(sorted)
	h := map[string]any{"v": 1, "suite": "pl1", "id": id, "from": from, "to": sorted, "conversation": "c1", "sent_at": sent.UnixMilli()}
	if !expires.IsZero() {
		h["expires_at"] = expires.UnixMilli()
	}
	keys := map[string]string{}
	for range len(to) + 1 {
		keys[newID()] = "AAAA"
	}
	b, err := json.Marshal(map[string]any{"ciphertext": "AAAA", "header": h, "keys": keys, "nonce": "AAAA", "signature": "AAAA"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := envelope.Parse(b); err != nil {
		t.Fatalf("test envelope refused: %v", err)
	}
	return b
}

func addr(u string, s privateline.ServerName) privateline.Address {
	return privateline.MakeAddress(privateline.Username(u), s)
}

// waitFor polls cond until it holds (a condition, not a sleep for order).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// dialRaw connects to the node at addr as name with key, as a peer
// implementation that sends whatever a test makes it send.
func dialRaw(t *testing.T, name privateline.ServerName, key *serverkey.PrivateKey, to *node) *transport.Conn {
	t.Helper()
	id, err := transport.NewIdentity(name, key)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := transport.NewPolicy(transport.PolicyConfig{Peers: map[privateline.ServerName]ed25519.PublicKey{to.name: to.key.Public()}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	c, err := transport.Dial(testCtx(t), to.name, to.svc.Addr(), id, pol, testLimits)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ask makes one exchange on c.
func ask(t *testing.T, c *transport.Conn, frame []byte) []byte {
	t.Helper()
	st, err := c.OpenStream(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	st.SetDeadline(time.Now().Add(15 * time.Second))
	if err := st.Send(frame); err != nil {
		t.Fatal(err)
	}
	resp, err := st.Receive()
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// txn builds an unsigned envelopes transaction.
func txn(origin, dest privateline.ServerName, at time.Time, entries ...wire.Entry) *wire.Transaction {
	return &wire.Transaction{
		Header:  wire.Header{Origin: origin, Destination: dest, TxnID: newID(), CreatedAt: at.UnixMilli()},
		Type:    wire.TypeEnvelopes,
		Entries: entries,
	}
}

func sign(t *testing.T, m wire.Message, k *serverkey.PrivateKey) []byte {
	t.Helper()
	raw, err := wire.Sign(m, k)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// counter reads a labelled counter of a service's metrics.
func counter(c *prometheus.CounterVec, label string) float64 {
	var m dto.Metric
	if err := c.WithLabelValues(label).Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}
