package federation

import (
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/envelope"
	"github.com/privateline/privateline/storage"
)

// realNode is a node on a real (in-memory) storage.DB.
type realNode struct {
	node
	db    *storage.DB
	store Store // what the service uses; nil: db
}

func newRealNode(t *testing.T, name privateline.ServerName, users ...string) (*realNode, map[string]storage.ID) {
	t.Helper()
	db, err := storage.Open(storage.Options{Dir: string(name), InMemory: true, Key: make(privateline.Secret, 32)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ids := map[string]storage.ID{}
	for _, u := range users {
		user := &storage.User{ID: storage.NewID(), Username: privateline.Username(u), KDF: storage.KDF{Name: "pbkdf2-sha256", Iterations: 600000}}
		if err := db.CreateUser(user); err != nil {
			t.Fatal(err)
		}
		ids[u] = user.ID
	}
	return &realNode{node: node{name: name, key: newKey(t)}, db: db}, ids
}

func (n *realNode) start(t *testing.T, peers []Peer) {
	t.Helper()
	var st Store = n.db
	if n.store != nil {
		st = n.store
	}
	svc, err := New(Config{Name: n.name, Key: n.key, ListenAddr: "127.0.0.1:0", Peers: peers, Log: quiet}, st)
	if err != nil {
		t.Fatal(err)
	}
	svc.base, svc.jitter, svc.lim = 5*time.Millisecond, func() float64 { return 0.5 }, testLimits
	n.db.SetOutboxNotifier(svc.Wake)
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	n.svc = svc
	t.Cleanup(func() { svc.Close() })
}

// The service on storage.DB: a message alice@A → bob@B is delivered,
// bob's mailbox has it, alice gets "delivered", A's outbox is empty.
func TestOverStorage(t *testing.T) {
	a, aid := newRealNode(t, nameA, "alice")
	b, bid := newRealNode(t, nameB, "bob")
	a.start(t, []Peer{{Name: nameB, Key: b.key.Public()}})
	b.start(t, []Peer{{Name: nameA, Key: a.key.Public()}})
	a.svc.SetPeerAddr(nameB, b.svc.Addr())
	b.svc.SetPeerAddr(nameA, a.svc.Addr())

	alice, bob := addr("alice", nameA), addr("bob", nameB)
	var ids []string
	for range 3 {
		id := newID()
		raw := env(t, id, alice, []privateline.Address{bob}, time.Now(), time.Time{})
		if _, _, err := a.db.Deliver(&storage.Delivery{MsgID: id, Raw: raw, Sender: storage.Recipient{ID: aid["alice"], Address: alice}, Remote: []privateline.Address{bob}}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	waitFor(t, "delivery", func() bool {
		d, err := a.db.OutboxDepth()
		return err == nil && d[nameB] == 0
	})
	items, err := b.db.Mailbox(bid["bob"], storage.MailQuery{HasAfter: true, Limit: 10, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 3 {
		t.Fatalf("bob has %d messages, want 3", len(items))
	}
	for i, it := range items {
		h, err := envelope.Parse(it.Envelope)
		if err != nil || h.ID != ids[i] || it.Out {
			t.Fatalf("item %d: %v, %v; want %s in order", i, h, err, ids[i])
		}
	}
	evs, err := a.db.EventsAfter(aid["alice"], 0, 100, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		if e.Type == storage.EventDelivered {
			if e.Server != nameB {
				t.Fatalf("delivered event for %s", e.Server)
			}
			got = append(got, e.ID)
		}
	}
	if len(got) != 3 || got[0] != ids[0] || got[2] != ids[2] {
		t.Fatalf("alice's delivered events %v, want %v", got, ids)
	}
}

// TestReadAheadOverStorage: a backlog larger than one transaction goes
// out two transactions at a time, the second read, signed, recorded and
// sent while the first is in flight (storage.OutboxPeek/OutboxPend); every
// message arrives once, in order, and its sender hears it was delivered —
// also when the receiver fails to commit some transactions (the second
// in flight is then refused or abandoned, and sent again after the
// first).
func TestReadAheadOverStorage(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(map[bool]string{false: "clean", true: "failing commits"}[fail], func(t *testing.T) { testReadAhead(t, fail) })
	}
}

// failingStore fails the commits of transactions numbered in fail
// (counting from 1) as storage that cannot write would.
type failingStore struct {
	*storage.DB
	mu    sync.Mutex
	calls int
	fail  map[int]bool
}

func (f *failingStore) ReceiveTransaction(origin privateline.ServerName, txnID string, entries []storage.InboundEntry, now time.Time) ([]storage.InboundResult, bool, error) {
	f.mu.Lock()
	f.calls++
	fail := f.fail[f.calls]
	f.mu.Unlock()
	if fail {
		return nil, false, privateline.E("test", privateline.Unavailable, "a commit that failed")
	}
	return f.DB.ReceiveTransaction(origin, txnID, entries, now)
}

func testReadAhead(t *testing.T, fail bool) {
	a, aid := newRealNode(t, nameA, "alice")
	b, bid := newRealNode(t, nameB, "bob")
	if fail {
		b.store = &failingStore{DB: b.db, fail: map[int]bool{2: true, 3: true, 5: true}}
	}
	alice, bob := addr("alice", nameA), addr("bob", nameB)
	const n = 4*MaxTxnEntries + 100
	var ids []string
	for range n {
		id := newID()
		raw := env(t, id, alice, []privateline.Address{bob}, time.Now(), time.Time{})
		if _, _, err := a.db.Deliver(&storage.Delivery{MsgID: id, Raw: raw, Sender: storage.Recipient{ID: aid["alice"], Address: alice}, Remote: []privateline.Address{bob}}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	a.start(t, []Peer{{Name: nameB, Key: b.key.Public()}})
	b.start(t, []Peer{{Name: nameA, Key: a.key.Public()}})
	b.svc.SetPeerAddr(nameA, a.svc.Addr())
	a.svc.SetPeerAddr(nameB, b.svc.Addr())
	waitFor(t, "delivery", func() bool {
		d, err := a.db.OutboxDepth()
		return err == nil && d[nameB] == 0
	})
	items, err := b.db.Mailbox(bid["bob"], storage.MailQuery{HasAfter: true, Limit: 2 * n, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != n {
		t.Fatalf("bob has %d messages, want %d", len(items), n)
	}
	for i, it := range items {
		if h, err := envelope.Parse(it.Envelope); err != nil || h.ID != ids[i] {
			t.Fatalf("bob's message %d: %v, %v; want %s (outbox order)", i, h, err, ids[i])
		}
	}
	evs, err := a.db.EventsAfter(aid["alice"], 0, 10*n, time.Now()) // delivery_waiting too, after failures
	if err != nil {
		t.Fatal(err)
	}
	delivered := 0
	for _, e := range evs {
		if e.Type == storage.EventDelivered {
			delivered++
		}
	}
	if delivered != n {
		t.Fatalf("alice heard of %d deliveries, want %d", delivered, n)
	}
	if sent := testutil.ToFloat64(a.svc.met.readAhead.WithLabelValues("sent")); sent < 1 {
		t.Fatalf("%v transactions sent while the one before was in flight; want the backlog's later ones", sent)
	}
	if fail {
		if f := testutil.ToFloat64(a.svc.met.failures.WithLabelValues(codeUnavailable)); f < 3 {
			t.Fatalf("%v failures counted, want the 3 failed commits", f)
		}
		t.Logf("abandoned %v, refused out_of_order %v", testutil.ToFloat64(a.svc.met.readAhead.WithLabelValues("abandoned")),
			testutil.ToFloat64(b.svc.met.rejected.WithLabelValues(codeOutOfOrder)))
	}
}
