package federation

import (
	"context"
	"crypto/ed25519"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/federation/transport"
	"github.com/privateline/privateline/federation/wire"
	"github.com/privateline/privateline/serverkey"
)

// fakeReceiver is a peer implementation whose answers the test writes.
type fakeReceiver struct {
	name   privateline.ServerName
	key    *serverkey.PrivateKey
	ln     *transport.Listener
	answer func(i int, tx *wire.Transaction) []byte

	mu  sync.Mutex
	got []*wire.Transaction
	at  []time.Time
}

func newFakeReceiver(t *testing.T, name privateline.ServerName, from privateline.ServerName, fromKey ed25519.PublicKey,
	answer func(i int, tx *wire.Transaction) []byte) *fakeReceiver {
	t.Helper()
	r := &fakeReceiver{name: name, key: newKey(t), answer: answer}
	id, err := transport.NewIdentity(name, r.key)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := transport.NewPolicy(transport.PolicyConfig{Peers: map[privateline.ServerName]ed25519.PublicKey{from: fromKey}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	r.ln, err = transport.Listen("127.0.0.1:0", id, pol, testLimits)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := r.ln.Accept(context.Background())
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					st, err := c.AcceptStream(context.Background())
					if err != nil {
						return
					}
					raw, err := st.Receive()
					if err != nil {
						continue
					}
					tx, err := wire.VerifyTransaction(raw, wire.Peer{Name: from, Key: fromKey}, name, time.Now(), wire.DefaultLimits())
					if err != nil {
						st.Send(errorFrame(string(wire.ReasonOf(err)), err.Error(), 0))
						continue
					}
					r.mu.Lock()
					i := len(r.got)
					r.got = append(r.got, tx)
					r.at = append(r.at, time.Now())
					r.mu.Unlock()
					st.Send(r.answer(i, tx))
				}
			}()
		}
	}()
	t.Cleanup(func() {
		r.ln.Close()
		wg.Wait()
	})
	return r
}

func (r *fakeReceiver) received() ([]*wire.Transaction, []time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*wire.Transaction(nil), r.got...), append([]time.Time(nil), r.at...)
}

// receiptFor signs a receipt answering tx with every entry accepted.
func receiptFor(t *testing.T, tx *wire.Transaction, k *serverkey.PrivateKey) []byte {
	rc := &wire.Receipt{Header: wire.Header{Origin: tx.Destination, Destination: tx.Origin, TxnID: tx.TxnID, CreatedAt: time.Now().UnixMilli()}}
	for _, e := range tx.Entries {
		rc.Results = append(rc.Results, wire.Result{ID: e.ID, Status: wire.Accepted})
	}
	return sign(t, rc, k)
}

// The sender deletes nothing on a receipt that does not answer its
// transaction or is not signed by the destination; it re-signs and
// retries at once after stale; every attempt carries the same txn id.
func TestSenderReactions(t *testing.T) {
	a := newNode(t, nameA, "alice")
	a.base = time.Hour // only Retry and the stale retry make attempts
	var r *fakeReceiver
	r = newFakeReceiver(t, nameB, nameA, a.key.Public(), func(i int, tx *wire.Transaction) []byte {
		switch i {
		case 0:
			return errorFrame("stale", "your clock", 0)
		case 1:
			other := *tx
			other.TxnID = newID()
			return receiptFor(t, &other, r.key)
		case 2:
			return receiptFor(t, tx, newKey(t))
		default:
			return receiptFor(t, tx, r.key)
		}
	})
	ids := queueTo(t, a, "alice", nameB, "bob", 2) // before the start: one transaction
	a.start(t, []Peer{{Name: nameB, Key: r.key.Public(), Addr: r.ln.Addr().String()}}, nil)

	waitFor(t, "the mismatched receipt", func() bool { return strings.Contains(a.st.lastError(nameB), "receipt_mismatch") })
	if got, _ := r.received(); len(got) != 2 {
		t.Fatalf("%d attempts before the mismatch, want 2 (stale, then re-signed at once)", len(got))
	}
	if a.st.depth(nameB) != 2 || len(a.st.eventList()) != 0 {
		t.Fatal("a mismatched receipt settled the outbox")
	}
	a.svc.Retry(nameB)
	waitFor(t, "the forged receipt", func() bool { return strings.Contains(a.st.lastError(nameB), "bad_signature") })
	if a.st.depth(nameB) != 2 || len(a.st.eventList()) != 0 {
		t.Fatal("a receipt signed by another key settled the outbox")
	}
	a.svc.Retry(nameB)
	waitFor(t, "delivery", func() bool { return a.st.depth(nameB) == 0 })
	if got := delivered(a.st, "delivered"); len(got) != 2 || got[0] != ids[0] || got[1] != ids[1] {
		t.Fatalf("delivered %v, want %v", got, ids)
	}
	got, _ := r.received()
	for i, tx := range got {
		if tx.TxnID != got[0].TxnID || len(tx.Entries) != 2 {
			t.Fatalf("attempt %d: txn %s with %d entries, want %s with 2", i, tx.TxnID, len(tx.Entries), got[0].TxnID)
		}
		if i > 0 && tx.CreatedAt < got[i-1].CreatedAt {
			t.Fatalf("attempt %d signed earlier than attempt %d", i, i-1)
		}
	}
	if n := counter(a.svc.met.failures, "receipt_mismatch"); n != 1 {
		t.Fatalf("failures{receipt_mismatch} = %v, want 1", n)
	}
}

// rate_limited is not a failure: the sender waits its retry_after, not
// the backoff (an hour here), and no failure is counted towards it.
func TestSenderRespectsRetryAfter(t *testing.T) {
	a := newNode(t, nameA, "alice")
	a.base = time.Hour
	var r *fakeReceiver
	r = newFakeReceiver(t, nameB, nameA, a.key.Public(), func(i int, tx *wire.Transaction) []byte {
		if i == 0 {
			return errorFrame("rate_limited", "slow down", 300*time.Millisecond)
		}
		return receiptFor(t, tx, r.key)
	})
	a.start(t, []Peer{{Name: nameB, Key: r.key.Public(), Addr: r.ln.Addr().String()}}, nil)
	queueTo(t, a, "alice", nameB, "bob", 1)
	waitFor(t, "delivery", func() bool { return a.st.depth(nameB) == 0 })
	_, at := r.received()
	if len(at) != 2 || at[1].Sub(at[0]) < 300*time.Millisecond {
		t.Fatalf("attempts at %v, want 2 at least 300ms apart", at)
	}
	if n := counter(a.svc.met.failures, "rate_limited"); n != 1 {
		t.Fatalf("failures{rate_limited} = %v, want 1", n)
	}
}
