package federation

import (
	"slices"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/federation/wire"
	"github.com/privateline/privateline/internal/fakeclock"
)

// goodEntry is an envelope from alice@A for bob@B.
func goodEntry(t *testing.T, now time.Time) wire.Entry {
	id := newID()
	return wire.Entry{ID: id, Envelope: env(t, id, addr("alice", nameA), []privateline.Address{addr("bob", nameB)}, now, time.Time{})}
}

func wantRefusal(t *testing.T, resp []byte, code string) errFrame {
	t.Helper()
	ef, ok := parseErrorFrame(resp)
	if !ok {
		t.Fatalf("answer %.200q is not an error frame, want %s", resp, code)
	}
	if ef.code != code {
		t.Fatalf("refused with %s (%s), want %s", ef.code, ef.message, code)
	}
	return ef
}

func wantReceipt(t *testing.T, resp []byte, b *node, tx *wire.Transaction) *wire.Receipt {
	t.Helper()
	rc, err := wire.VerifyReceipt(resp, wire.Peer{Name: b.name, Key: b.key.Public()}, tx.Origin, time.Now(), wire.DefaultLimits(), tx)
	if err != nil {
		t.Fatalf("answer %.200q: %v", resp, err)
	}
	return rc
}

// Frames a peer implementation could send that B must refuse, each with
// its code, storing nothing.
func TestRefusedFrames(t *testing.T) {
	b := newNode(t, nameB, "bob")
	ka := newKey(t)
	b.start(t, []Peer{{Name: nameA, Key: ka.Public()}}, nil)
	c := dialRaw(t, nameA, ka, b)
	now := time.Now()

	valid := sign(t, txn(nameA, nameB, now, goodEntry(t, now)), ka)
	many := txn(nameA, nameB, now)
	for range 257 {
		many.Entries = append(many.Entries, goodEntry(t, now))
	}
	receipt := &wire.Receipt{Header: wire.Header{Origin: nameA, Destination: nameB, TxnID: newID(), CreatedAt: now.UnixMilli()},
		Results: []wire.Result{{ID: newID(), Status: wire.Accepted}}}
	for _, tc := range []struct {
		name  string
		frame []byte
		code  string
	}{
		{"forged", sign(t, txn(nameA, nameB, now, goodEntry(t, now)), newKey(t)), "bad_signature"},
		{"misaddressed", sign(t, txn(nameA, nameC, now, goodEntry(t, now)), ka), "misaddressed"},
		{"wrong origin", sign(t, txn(nameC, nameB, now, goodEntry(t, now)), ka), "wrong_origin"},
		{"stale", sign(t, txn(nameA, nameB, now.Add(-6*time.Minute), goodEntry(t, now)), ka), "stale"},
		{"future", sign(t, txn(nameA, nameB, now.Add(6*time.Minute), goodEntry(t, now)), ka), "future"},
		{"oversized envelope", sign(t, txn(nameA, nameB, now, wire.Entry{ID: newID(), Envelope: make([]byte, wire.MaxEnvelope+1)}), ka), "too_large"},
		{"too many entries", sign(t, many, ka), "too_many_entries"},
		{"non-canonical", append(slices.Clone(valid), ' '), "non_canonical"},
		{"not JSON", []byte("hello"), "malformed"},
		{"a receipt", sign(t, receipt, ka), "unknown_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantRefusal(t, ask(t, c, tc.frame), tc.code)
			if n := counter(b.svc.met.rejected, tc.code); n != 1 {
				t.Fatalf("rejected{%s} = %v, want 1", tc.code, n)
			}
		})
	}
	if m := b.st.mail(); len(m) != 0 || len(b.st.receivedTxns()) != 0 {
		t.Fatalf("B stored %+v from refused frames", m)
	}
	// Control: the valid one is accepted on the same link.
	wantRefusalNot(t, ask(t, c, valid))
	if len(b.st.mail()) != 1 {
		t.Fatal("the valid transaction was not stored")
	}
}

func wantRefusalNot(t *testing.T, resp []byte) {
	t.Helper()
	if ef, ok := parseErrorFrame(resp); ok {
		t.Fatalf("refused: %s: %s", ef.code, ef.message)
	}
}

// Replay (spec §13): a retried txn id gets the stored results, re-signed;
// the same txn id with other entries is txn_id_reused; an envelope id seen
// before is a duplicate under any txn id.
func TestReplay(t *testing.T) {
	b := newNode(t, nameB, "bob")
	ka := newKey(t)
	b.start(t, []Peer{{Name: nameA, Key: ka.Public()}}, nil)
	c := dialRaw(t, nameA, ka, b)
	now := time.Now()

	e1, e2 := goodEntry(t, now), goodEntry(t, now)
	tx := txn(nameA, nameB, now, e1, e2)
	rc := wantReceipt(t, ask(t, c, sign(t, tx, ka)), b, tx)
	for _, r := range rc.Results {
		if r.Status != wire.Accepted {
			t.Fatalf("results %+v", rc.Results)
		}
	}

	// The same transaction again, re-signed later: the stored results.
	tx.CreatedAt++
	rc2 := wantReceipt(t, ask(t, c, sign(t, tx, ka)), b, tx)
	same := slices.EqualFunc(rc2.Results, rc.Results, func(x, y wire.Result) bool {
		return x.ID == y.ID && x.Status == y.Status && x.Error == y.Error
	})
	if !same || rc2.CreatedAt < rc.CreatedAt {
		t.Fatalf("replayed results %+v, want %+v", rc2.Results, rc.Results)
	}

	// The same txn id with other entries.
	other := &wire.Transaction{Header: tx.Header, Type: tx.Type, Entries: []wire.Entry{goodEntry(t, now)}}
	wantRefusal(t, ask(t, c, sign(t, other, ka)), "txn_id_reused")

	// A new txn id with an old envelope and a new one.
	e3 := goodEntry(t, now)
	tx3 := txn(nameA, nameB, now, e1, e3)
	rc3 := wantReceipt(t, ask(t, c, sign(t, tx3, ka)), b, tx3)
	if rc3.Results[0].Status != wire.Duplicate || rc3.Results[1].Status != wire.Accepted {
		t.Fatalf("results %+v, want duplicate, accepted", rc3.Results)
	}
	if got := mailIDs(b.st); !slices.Equal(got, []string{e1.ID, e2.ID, e3.ID}) {
		t.Fatalf("B stored %v", got)
	}
}

func TestRateLimit(t *testing.T) {
	clock := fakeclock.New(time.Now())
	b := newNode(t, nameB, "bob")
	ka := newKey(t)
	b.start(t, []Peer{{Name: nameA, Key: ka.Public()}}, func(c *Config) {
		c.RatePerOrigin = 1
		c.Now = clock.Now
	})
	c := dialRaw(t, nameA, ka, b)
	send := func() []byte {
		return ask(t, c, sign(t, txn(nameA, nameB, clock.Now(), goodEntry(t, clock.Now())), ka))
	}
	wantRefusalNot(t, send())
	ef := wantRefusal(t, send(), "rate_limited")
	if ef.retryAfter != time.Second {
		t.Fatalf("retry_after %v, want 1s", ef.retryAfter)
	}
	clock.Advance(500 * time.Millisecond)
	if ef := wantRefusal(t, send(), "rate_limited"); ef.retryAfter != 500*time.Millisecond {
		t.Fatalf("retry_after %v, want 500ms", ef.retryAfter)
	}
	clock.Advance(500 * time.Millisecond)
	wantRefusalNot(t, send())
	if n := len(b.st.mail()); n != 2 {
		t.Fatalf("B stored %d entries, want 2", n)
	}
}

// More than MaxConcurrentPerOrigin exchanges in progress: rate_limited.
func TestConcurrencyLimit(t *testing.T) {
	b := newNode(t, nameB, "bob")
	ka := newKey(t)
	b.start(t, []Peer{{Name: nameA, Key: ka.Public()}}, nil)
	c := dialRaw(t, nameA, ka, b)
	for range MaxConcurrentPerOrigin {
		if !b.svc.acquire(nameA) {
			t.Fatal("a slot under the limit was refused")
		}
	}
	now := time.Now()
	wantRefusal(t, ask(t, c, sign(t, txn(nameA, nameB, now, goodEntry(t, now)), ka)), "rate_limited")
	b.svc.release(nameA)
	wantRefusalNot(t, ask(t, c, sign(t, txn(nameA, nameB, now, goodEntry(t, now)), ka)))
}

// The registry shows the outbox depth per destination on scrape and the
// counters.
func TestMetrics(t *testing.T) {
	a, b := newNode(t, nameA, "alice"), newNode(t, nameB, "bob")
	queueTo(t, a, "alice", nameC, "carol", 2) // c.test is unreachable
	pair(t, a, b, nil, nil)
	queueTo(t, a, "alice", nameB, "bob", 1)
	waitFor(t, "delivery", func() bool { return a.st.depth(nameB) == 0 })
	fams, err := a.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, f := range fams {
		found[f.GetName()] = true
		if f.GetName() == "privateline_federation_outbox_depth" {
			if len(f.Metric) != 1 || f.Metric[0].GetLabel()[0].GetValue() != string(nameC) || f.Metric[0].GetGauge().GetValue() != 2 {
				t.Fatalf("outbox depth %v, want c.test = 2", f.Metric)
			}
		}
		if f.GetName() == "privateline_federation_delivery_latency_seconds" && f.Metric[0].GetHistogram().GetSampleCount() != 1 {
			t.Fatalf("latency samples %d, want 1", f.Metric[0].GetHistogram().GetSampleCount())
		}
	}
	for _, n := range []string{"privateline_federation_outbox_depth", "privateline_federation_send_attempts_total",
		"privateline_federation_entries_delivered_total", "privateline_federation_delivery_latency_seconds",
		"privateline_federation_send_failures_total"} {
		if !found[n] {
			t.Errorf("metric %s not registered", n)
		}
	}
	bf, _ := b.reg.Gather()
	for _, f := range bf {
		if f.GetName() == "privateline_federation_transactions_received_total" {
			return
		}
	}
	t.Error("B has no transactions_received metric")
}

// A key_request is answered from Config.Keys with a key_answer the asker
// verifies as a client would; without Keys it is unknown_type.
func TestKeyRequestOverTheLink(t *testing.T) {
	f := newKeyFixture(t)
	f.register(t, "alice")
	clock := fakeclock.New(f.now)
	d := &node{name: dirServer, key: f.key, st: newFakeStore()}
	d.start(t, []Peer{{Name: askerServer, Key: f.asker.Public()}}, func(c *Config) {
		c.Keys = f.dir
		c.Now = clock.Now
	})
	c := dialRaw(t, askerServer, f.asker, d)
	req := &wire.Transaction{Type: wire.TypeKeyRequest,
		Entries: []wire.Entry{{ID: id(0), Address: "alice@example.org"}, {ID: id(1), Address: "nobody@example.org"}},
		Header:  wire.Header{Origin: askerServer, Destination: dirServer, TxnID: newID(), CreatedAt: f.now.UnixMilli()}}
	resp := ask(t, c, sign(t, req, f.asker))
	peer := wire.Peer{Name: dirServer, Key: f.key.Public()}
	ans, err := wire.VerifyReceipt(resp, peer, askerServer, f.now, wire.DefaultLimits(), req)
	if err != nil {
		t.Fatalf("answer %.200q: %v", resp, err)
	}
	out, head, err := verifyKeyAnswer(peer, req, ans, nil)
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Lookup == nil || !out[0].Lookup.Bundle.Equal(f.bundles["alice"]) || out[1].Lookup != nil || head == nil {
		t.Fatalf("answers %+v", out)
	}

	n := &node{name: nameB, key: newKey(t), st: newFakeStore()}
	n.start(t, []Peer{{Name: askerServer, Key: f.asker.Public()}}, nil)
	req.Destination, req.CreatedAt = nameB, time.Now().UnixMilli()
	wantRefusal(t, ask(t, dialRaw(t, askerServer, f.asker, n), sign(t, req, f.asker)), "unknown_type")
}
