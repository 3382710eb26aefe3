package federation

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/envelope"
	"github.com/privateline/privateline/internal/fakeclock"
)

// queueTo queues n envelopes from user from of src to user to of dst and
// returns their ids in order.
func queueTo(t *testing.T, src *node, from string, dst privateline.ServerName, to string, n int) []string {
	t.Helper()
	var ids []string
	for range n {
		id := newID()
		src.st.queue(dst, id, env(t, id, addr(from, src.name), []privateline.Address{addr(to, dst)}, time.Now(), time.Time{}), time.Now())
		ids = append(ids, id)
	}
	return ids
}

func delivered(st *fakeStore, typ string) []string {
	var ids []string
	for _, e := range st.eventList() {
		if e.Type == typ {
			ids = append(ids, e.ID)
		}
	}
	return ids
}

func mailIDs(st *fakeStore) []string {
	var ids []string
	for _, m := range st.mail() {
		ids = append(ids, m.Entry.ID)
	}
	return ids
}

func TestDeliveryBothWays(t *testing.T) {
	a, b := newNode(t, nameA, "alice"), newNode(t, nameB, "bob")
	pair(t, a, b, nil, nil)

	toB := queueTo(t, a, "alice", nameB, "bob", 3)
	toA := queueTo(t, b, "bob", nameA, "alice", 2)
	waitFor(t, "A's entries delivered", func() bool { return len(delivered(a.st, "delivered")) == 3 })
	waitFor(t, "B's entries delivered", func() bool { return len(delivered(b.st, "delivered")) == 2 })

	if got := mailIDs(b.st); !slices.Equal(got, toB) {
		t.Fatalf("B stored %v, want %v in order", got, toB)
	}
	if got := mailIDs(a.st); !slices.Equal(got, toA) {
		t.Fatalf("A stored %v, want %v in order", got, toA)
	}
	if got := delivered(a.st, "delivered"); !slices.Equal(got, toB) {
		t.Fatalf("A's delivered events %v, want %v", got, toB)
	}
	m := b.st.mail()[0]
	if m.Origin != nameA || m.Entry.From != addr("alice", nameA) || len(m.Entry.Recipients) != 1 ||
		m.Entry.Recipients[0].Address != addr("bob", nameB) || m.Entry.Recipients[0].ID != b.st.users["bob"].ID {
		t.Fatalf("stored entry %+v", m)
	}
	if a.st.depth(nameB) != 0 || b.st.depth(nameA) != 0 {
		t.Fatal("outboxes not empty")
	}
	if n := counter(b.svc.met.entries, "accepted"); n != 3 {
		t.Fatalf("B counted %v accepted entries, want 3", n)
	}
}

// The sender deletes its entries only once the receiver's store returned
// from its commit and the receipt arrived.
func TestReceiptOnlyAfterCommit(t *testing.T) {
	a, b := newNode(t, nameA, "alice"), newNode(t, nameB, "bob")
	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	b.st.gate, b.st.entered = gate, entered
	pair(t, a, b, nil, nil)
	var once sync.Once
	open := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(open) // before the services close, if the test fails

	ids := queueTo(t, a, "alice", nameB, "bob", 1)
	<-entered // B's store is inside ReceiveTransaction, before its commit
	if a.st.depth(nameB) != 1 || len(a.st.eventList()) != 0 {
		t.Fatalf("A settled its outbox before B committed: depth %d, events %v", a.st.depth(nameB), a.st.eventList())
	}
	open()
	waitFor(t, "delivery", func() bool { return a.st.depth(nameB) == 0 })
	if got := delivered(a.st, "delivered"); !slices.Equal(got, ids) || !slices.Equal(mailIDs(b.st), ids) {
		t.Fatalf("delivered %v, stored %v, want %v", got, mailIDs(b.st), ids)
	}
}

// B goes away; A keeps its entries; a new B (same store, new port) gets
// them after Wake, once each, in order.
func TestReceiverRestart(t *testing.T) {
	a, b := newNode(t, nameA, "alice"), newNode(t, nameB, "bob")
	pair(t, a, b, nil, nil)
	first := queueTo(t, a, "alice", nameB, "bob", 2)
	waitFor(t, "first delivery", func() bool { return len(delivered(a.st, "delivered")) == 2 })

	b.svc.Close()
	more := queueTo(t, a, "alice", nameB, "bob", 5)
	waitFor(t, "a failed attempt", func() bool { return a.st.lastError(nameB) != "" })
	if a.st.depth(nameB) != 5 {
		t.Fatalf("A's outbox holds %d entries while B is down, want 5", a.st.depth(nameB))
	}

	b.start(t, []Peer{{Name: nameA, Key: a.key.Public()}}, nil)
	a.svc.SetPeerAddr(nameB, b.svc.Addr())
	a.svc.Retry(nameB)
	waitFor(t, "delivery after the restart", func() bool { return a.st.depth(nameB) == 0 })
	want := append(first, more...)
	if got := mailIDs(b.st); !slices.Equal(got, want) {
		t.Fatalf("B stored %v, want each of %v once, in order", got, want)
	}
	if got := delivered(a.st, "delivered"); !slices.Equal(got, want) {
		t.Fatalf("A's delivered events %v, want %v", got, want)
	}
}

// A receiver that commits and crashes before its receipt: the sender
// retries the same transaction and gets the stored results.
func TestRetryAfterCommitWithoutReceipt(t *testing.T) {
	a, b := newNode(t, nameA, "alice"), newNode(t, nameB, "bob")
	b.st.failAfterCommit = 1
	ids := queueTo(t, a, "alice", nameB, "bob", 3) // before the start: one transaction
	pair(t, a, b, nil, nil)
	waitFor(t, "delivery", func() bool { return a.st.depth(nameB) == 0 })
	if len(a.st.madeTxns()) != 1 {
		t.Fatalf("A made %d transactions, want 1 (retried under the same id)", len(a.st.madeTxns()))
	}
	if got := b.st.receivedTxns(); !slices.Equal(got, []string{a.st.madeTxns()[0]}) {
		t.Fatalf("B's store committed %v, want only %s (the retry answered from the replay records)", got, a.st.madeTxns()[0])
	}
	if got := mailIDs(b.st); !slices.Equal(got, ids) {
		t.Fatalf("B stored %v, want %v once", got, ids)
	}
	if got := delivered(a.st, "delivered"); !slices.Equal(got, ids) {
		t.Fatalf("A's delivered events %v, want %v", got, ids)
	}
	if n := counter(b.svc.met.transactions, "replayed"); n != 1 {
		t.Fatalf("B answered %v replays, want 1", n)
	}
	if n := counter(a.svc.met.failures, codeUnavailable); n != 1 {
		t.Fatalf("A counted %v unavailable failures, want 1", n)
	}
}

// Entries B refuses come back to their senders as delivery_failed with the
// code; the good one is stored.
func TestRefusedEntries(t *testing.T) {
	a, b := newNode(t, nameA, "alice"), newNode(t, nameB, "bob")
	pair(t, a, b, nil, nil)
	now := time.Now()
	good := newID()
	cases := []struct {
		id, code string
		raw      []byte
	}{}
	add := func(code string, raw []byte, id string) {
		cases = append(cases, struct {
			id, code string
			raw      []byte
		}{id, code, raw})
	}
	id := newID()
	add("unknown_recipient", env(t, id, addr("alice", nameA), []privateline.Address{addr("carol", nameB)}, now, time.Time{}), id)
	id = newID()
	add("wrong_origin", env(t, id, addr("mallory", nameC), []privateline.Address{addr("bob", nameB)}, now, time.Time{}), id)
	id = newID()
	add("expired", env(t, id, addr("alice", nameA), []privateline.Address{addr("bob", nameB)}, now.Add(-2*time.Hour), now.Add(-time.Hour)), id)
	id = newID()
	add("not_for_destination", env(t, id, addr("alice", nameA), []privateline.Address{addr("dave", nameC)}, now, time.Time{}), id)
	add("id_mismatch", env(t, newID(), addr("alice", nameA), []privateline.Address{addr("bob", nameB)}, now, time.Time{}), newID())
	add("malformed", []byte(`{"header":{}}`), newID())
	add("", env(t, good, addr("alice", nameA), []privateline.Address{addr("bob", nameB), addr("carol", nameB), addr("dave", nameC)}, now, time.Time{}), good)
	for _, c := range cases {
		a.st.queue(nameB, c.id, c.raw, now)
	}
	waitFor(t, "settled", func() bool { return a.st.depth(nameB) == 0 })
	evs := a.st.eventList()
	if len(evs) != len(cases) {
		t.Fatalf("events %+v, want %d", evs, len(cases))
	}
	for i, c := range cases {
		e := evs[i]
		if c.code == "" {
			if e.Type != "delivered" || e.ID != c.id {
				t.Fatalf("event %d: %+v, want delivered %s", i, e, c.id)
			}
			continue
		}
		if e.Type != "delivery_failed" || e.ID != c.id || e.Error != c.code {
			t.Fatalf("event %d: %+v, want delivery_failed %s %s", i, e, c.id, c.code)
		}
	}
	mail := b.st.mail()
	if len(mail) != 1 || mail[0].Entry.ID != good || len(mail[0].Entry.Recipients) != 1 || mail[0].Entry.Recipients[0].Address != addr("bob", nameB) {
		t.Fatalf("B stored %+v, want only %s for bob", mail, good)
	}
}

// Entries older than the delivery timeout are expired before an attempt,
// with the last error, while the destination is unreachable.
func TestDeliveryTimeout(t *testing.T) {
	clock := fakeclock.New(time.Now())
	a := newNode(t, nameA, "alice")
	dead := newKey(t)
	a.start(t, []Peer{{Name: nameB, Key: dead.Public(), Addr: "127.0.0.1:9"}}, func(c *Config) {
		c.Now = clock.Now
		c.DeliveryTimeout = time.Hour
	})
	id := newID()
	a.st.queue(nameB, id, env(t, id, addr("alice", nameA), []privateline.Address{addr("bob", nameB)}, clock.Now(), time.Time{}), clock.Now())
	waitFor(t, "a failed attempt", func() bool { return a.st.lastError(nameB) != "" })
	if a.st.depth(nameB) != 1 {
		t.Fatal("the entry left the outbox before the timeout")
	}
	clock.Advance(time.Hour + time.Second)
	a.svc.Retry(nameB)
	waitFor(t, "the timeout", func() bool { return a.st.depth(nameB) == 0 })
	evs := a.st.eventList()
	// The failed attempt told alice her message waits for B (once, though
	// B failed again after Retry), then the timeout failed it.
	if len(evs) != 2 || evs[0].Type != "delivery_waiting" || evs[0].ID != id || evs[0].Server != nameB ||
		evs[1].Type != "delivery_failed" || evs[1].ID != id || evs[1].Error != "timeout" || evs[1].Detail == "" {
		t.Fatalf("events %+v, want delivery_waiting, then delivery_failed timeout with the last error", evs)
	}
	a.st.mu.Lock()
	last := a.st.expires[len(a.st.expires)-1]
	a.st.mu.Unlock()
	if want := clock.Now().Add(-time.Hour); !last.Equal(want) {
		t.Fatalf("OutboxExpire cutoff %v, want now − timeout = %v", last, want)
	}
}

func TestBackoffSchedule(t *testing.T) {
	for _, c := range []struct {
		n    int
		u    float64
		want time.Duration
	}{
		{0, 0.5, 500 * time.Millisecond},
		{0, 0.75, 750 * time.Millisecond},
		{1, 0.5, time.Second},
		{3, 0.5, 4 * time.Second},
		{8, 0.5, 128 * time.Second},
		{8, 0.99, time.Duration(0.99 * float64(256*time.Second))},
		{9, 0.5, 150 * time.Second}, // 512 s capped at 300 s
		{9, 0.99, time.Duration(0.99 * float64(300*time.Second))},
		{40, 0.5, 150 * time.Second},
		{1000, 0.5, 150 * time.Second},
	} {
		if got := backoff(time.Second, c.n, c.u); got != c.want {
			t.Errorf("backoff(n=%d, u=%v) = %v, want %v", c.n, c.u, got, c.want)
		}
	}
}

// An idle sender ends; new work starts a new one.
func TestIdleSenderEnds(t *testing.T) {
	a, b := newNode(t, nameA, "alice"), newNode(t, nameB, "bob")
	a.idle = 20 * time.Millisecond
	pair(t, a, b, nil, nil)
	senders := func() int {
		a.svc.mu.Lock()
		defer a.svc.mu.Unlock()
		return len(a.svc.senders)
	}
	first := queueTo(t, a, "alice", nameB, "bob", 1)
	waitFor(t, "delivery", func() bool { return a.st.depth(nameB) == 0 })
	waitFor(t, "the idle sender to end", func() bool { return senders() == 0 })
	second := queueTo(t, a, "alice", nameB, "bob", 1)
	waitFor(t, "delivery by a new sender", func() bool { return a.st.depth(nameB) == 0 })
	if got := mailIDs(b.st); !slices.Equal(got, append(first, second...)) {
		t.Fatalf("stored %v", got)
	}
}

// Retry resets the backoff: the failure count starts again; new work (Wake) does not.
func TestRetryResetsBackoff(t *testing.T) {
	a := newNode(t, nameA, "alice")
	a.start(t, nil, nil) // c.test has no address and no reachable document: every attempt fails at once
	queueTo(t, a, "alice", nameC, "carol", 1)
	fails := func() int64 {
		a.svc.mu.Lock()
		sd := a.svc.senders[nameC]
		a.svc.mu.Unlock()
		if sd == nil {
			return 0
		}
		return sd.fails.Load()
	}
	waitFor(t, "five failures", func() bool { return fails() >= 5 })
	// New work while backing off: the count goes on.
	before := fails()
	a.svc.Wake(nameC)
	queueTo(t, a, "alice", nameC, "carol", 1)
	low := before
	waitFor(t, "two more failures", func() bool { f := fails(); low = min(low, f); return f >= before+2 })
	if low < before {
		t.Fatalf("new work reset the failure count (%d → %d)", before, low)
	}
	a.svc.Retry(nameC)
	waitFor(t, "the failure count to start again", func() bool { return fails() < 5 })
}

// Three servers, each sending to the other two at once: every message
// arrives once, in order per (origin, destination).
func TestThreeServers(t *testing.T) {
	nodes := []*node{newNode(t, nameA, "alice"), newNode(t, nameB, "bob"), newNode(t, nameC, "carol")}
	users := map[privateline.ServerName]string{nameA: "alice", nameB: "bob", nameC: "carol"}
	for _, n := range nodes {
		var peers []Peer
		for _, o := range nodes {
			if o != n {
				peers = append(peers, Peer{Name: o.name, Key: o.key.Public()})
			}
		}
		n.start(t, peers, nil)
	}
	for _, n := range nodes {
		for _, o := range nodes {
			if o != n {
				n.svc.SetPeerAddr(o.name, o.svc.Addr())
			}
		}
	}
	sent := map[[2]privateline.ServerName][]string{}
	for i := range 4 {
		for _, n := range nodes {
			for _, o := range nodes {
				if o != n {
					k := [2]privateline.ServerName{n.name, o.name}
					sent[k] = append(sent[k], queueTo(t, n, users[n.name], o.name, users[o.name], 1+i%2)...)
				}
			}
		}
	}
	for _, n := range nodes {
		for _, o := range nodes {
			if o != n {
				waitFor(t, "delivery", func() bool { return n.st.depth(o.name) == 0 })
			}
		}
	}
	for _, o := range nodes {
		got := map[privateline.ServerName][]string{}
		for _, m := range o.st.mail() {
			got[m.Origin] = append(got[m.Origin], m.Entry.ID)
		}
		for _, n := range nodes {
			if n != o && !slices.Equal(got[n.name], sent[[2]privateline.ServerName{n.name, o.name}]) {
				t.Fatalf("%s stored from %s %v, want %v", o.name, n.name, got[n.name], sent[[2]privateline.ServerName{n.name, o.name}])
			}
		}
	}
}

// Envelopes too large to share one frame are split over transactions
// that each fit in a frame.
func TestLargeEnvelopesSplit(t *testing.T) {
	a, b := newNode(t, nameA, "alice"), newNode(t, nameB, "bob")
	var ids []string
	for range 14 { // 3.6 MB: more than one transaction takes
		id := newID()
		raw := bigEnv(t, id, addr("alice", nameA), addr("bob", nameB))
		a.st.queue(nameB, id, raw, time.Now())
		ids = append(ids, id)
	}
	pair(t, a, b, nil, nil)
	waitFor(t, "delivery", func() bool { return a.st.depth(nameB) == 0 })
	if got := mailIDs(b.st); !slices.Equal(got, ids) {
		t.Fatalf("stored %d of %d, in order: %v", len(got), len(ids), slices.Equal(got, ids[:len(got)]))
	}
	if n := len(a.st.madeTxns()); n < 2 {
		t.Fatalf("%d transactions for 14 envelopes of ~250 KiB, want ≥ 2", n)
	}
}

// bigEnv is a valid envelope of nearly envelope.MaxSize bytes.
func bigEnv(t *testing.T, id string, from, to privateline.Address) []byte {
	t.Helper()
	small := env(t, id, from, []privateline.Address{to}, time.Now(), time.Time{})
	pad := strings.Repeat("A", envelope.MaxSize-len(small)-64)
	raw := strings.Replace(string(small), `"nonce":"AAAA"`, `"nonce":"AAAA`+pad+`"`, 1)
	if _, err := envelope.Parse([]byte(raw)); err != nil || len(raw) < envelope.MaxSize-200 {
		t.Fatalf("big envelope of %d bytes: %v", len(raw), err)
	}
	return []byte(raw)
}

// A sender waiting for a receipt on a link to a process of the
// destination that has since been replaced (a crash the link has not
// noticed) drops the link as soon as the destination's new process
// connects (it has a new certificate) and retries, instead of waiting for
// the attempt timeout; the entries arrive once.
func TestNewProcessOfDestinationDropsStaleLink(t *testing.T) {
	a, b := newNode(t, nameA, "alice"), newNode(t, nameB, "bob")
	gate, entered := make(chan struct{}), make(chan struct{}, 4)
	b.st.gate, b.st.entered = gate, entered
	pair(t, a, b, nil, nil)
	var once sync.Once
	open := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(open)

	ids := queueTo(t, a, "alice", nameB, "bob", 1)
	<-entered // A's transaction is in, A waits for the receipt
	// Another process of b.test (same key, a new certificate) connects
	// to A to send something of its own.
	b2 := &node{name: nameB, key: b.key, st: newFakeStore("bob")}
	b2.start(t, []Peer{{Name: nameA, Key: a.key.Public()}}, nil)
	b2.svc.SetPeerAddr(nameA, a.svc.Addr())
	reply := queueTo(t, b2, "bob", nameA, "alice", 1)
	start := time.Now()
	waitFor(t, "A gives up the exchange on the stale link", func() bool { return a.st.lastError(nameB) != "" })
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("A gave up after %v", d)
	}
	waitFor(t, "the reply", func() bool { return slices.Equal(mailIDs(a.st), reply) })
	open()
	waitFor(t, "delivery", func() bool { return a.st.depth(nameB) == 0 })
	if got := mailIDs(b.st); !slices.Equal(got, ids) {
		t.Fatalf("B stored %v, want %v once", got, ids)
	}
}
