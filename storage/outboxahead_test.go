package storage

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/privateline/privateline"
)

// TestOutboxReadAhead: a transaction read ahead while the one before is
// in flight is taken only when it is exactly what OutboxNext would take;
// otherwise nothing is recorded and OutboxNext decides as before. Nothing
// is ever sent that its sender deleted, that expired or that left the
// queue, and the order stays the outbox's.
func TestOutboxReadAhead(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ann := createUsers(t, e.db, "ann")[0]
		clock := time.Now()
		e.db.now = func() time.Time { return clock }
		var c ids
		send := func(exp time.Time) string { return sendRemote(t, e.db, ann, nil, []privateline.Address{rob}, exp) }
		next := func() *OutboxTxn {
			t.Helper()
			txn, err := e.db.OutboxNext(other, 2, 1<<20, c.next)
			if err != nil {
				t.Fatal(err)
			}
			return txn
		}
		peek := func(after *OutboxTxn) *OutboxTxn {
			t.Helper()
			last := after.Items[len(after.Items)-1].Seq
			txn, err := e.db.OutboxPeek(other, last, 2, 1<<20, c.next)
			if err != nil {
				t.Fatal(err)
			}
			return txn
		}
		settle := func(txn, ahead *OutboxTxn, want bool) {
			t.Helper()
			if got := settleAll(t, e.db, other, txn, ahead); got != want {
				t.Fatalf("settling %v took %v read ahead: %v, want %v", itemIDs(txn), itemIDs(ahead), got, want)
			}
		}
		want := func(txn *OutboxTxn, ids ...string) {
			t.Helper()
			if got := itemIDs(txn); !slices.Equal(got, ids) {
				t.Fatalf("transaction %v, want %v", got, ids)
			}
		}

		// Taken with the receipt of the one before: the next OutboxNext
		// answers it as the pending transaction, same id, same items and
		// payloads.
		m1, m2, m3, m4 := send(time.Time{}), send(time.Time{}), send(time.Time{}), send(time.Time{})
		t1 := next()
		want(t1, m1, m2)
		p := peek(t1)
		want(p, m3, m4)
		for i, it := range p.Items {
			if !bytes.Equal(it.Payload, rawOf(t, e.db, it.ID)) {
				t.Fatalf("read-ahead item %d carries another payload than the envelope", i)
			}
		}
		settle(t1, p, true)
		if got := next(); got.TxnID != p.TxnID || !slices.Equal(itemIDs(got), []string{m3, m4}) {
			t.Fatalf("OutboxNext after the take: %s %v, want the taken %s %v", got.TxnID, itemIDs(got), p.TxnID, []string{m3, m4})
		}
		e.reopen() // the take is durable
		e.db.now = func() time.Time { return clock }
		if got := next(); got.TxnID != p.TxnID {
			t.Fatalf("after a restart OutboxNext gives %s, want the taken %s", got.TxnID, p.TxnID)
		}

		// Items queued after the read-ahead wait for the next transaction.
		m5, m6 := send(time.Time{}), send(time.Time{})
		p2 := peek(p)
		want(p2, m5, m6)
		m7 := send(time.Time{})
		settle(p, p2, true)
		want(next(), m5, m6)

		// A receipt without a result for one item: it stays queued, ahead
		// of what was read, which is not taken.
		m8 := send(time.Time{})
		p = peek(p2)
		want(p, m7, m8)
		if taken, err := e.db.OutboxDoneTake(other, p2.TxnID, []OutboxResult{{ID: m5, Delivered: true}}, p); err != nil || taken {
			t.Fatalf("a partial receipt took the read-ahead (%v, %v)", taken, err)
		}
		tb := next()
		want(tb, m6, m7)

		// Its sender deletes a message that was read ahead: not taken, and
		// OutboxNext leaves the message out.
		m9, m10, m11 := send(time.Time{}), send(time.Time{}), send(time.Time{})
		p = peek(tb)
		want(p, m8, m9)
		if err := e.db.DeleteMessage(ann.ID, m9, clock); err != nil {
			t.Fatal(err)
		}
		settle(tb, p, false)
		t3 := next()
		want(t3, m8, m10)
		settle(t3, nil, false)
		t3 = next()
		want(t3, m11)

		// A message that has gone at the head: nothing is read ahead.
		m12, m13 := send(time.Time{}), send(time.Time{})
		if err := e.db.DeleteMessage(ann.ID, m12, clock); err != nil {
			t.Fatal(err)
		}
		if p := peek(t3); p != nil {
			t.Fatalf("read ahead %v over a deleted message", itemIDs(p))
		}
		settle(t3, nil, false)
		t4 := next()
		want(t4, m13)

		// A message read ahead that expires before it is taken.
		m14, m15 := send(clock.Add(time.Minute)), send(time.Time{})
		p = peek(t4)
		want(p, m14, m15)
		clock = clock.Add(2 * time.Minute)
		settle(t4, p, false)
		t5 := next()
		want(t5, m15)

		// Items dropped at the delivery timeout while read ahead (with the
		// pending one's, older still: its receipt settles nothing, and
		// takes nothing).
		m16, m17 := send(time.Time{}), send(time.Time{})
		p = peek(t5)
		want(p, m16, m17)
		clock = clock.Add(time.Hour)
		m18 := send(time.Time{})
		if n, err := e.db.OutboxExpire(other, clock.Add(-30*time.Minute)); err != nil || n != 3 {
			t.Fatalf("OutboxExpire: %d, %v; want the 3 old items", n, err)
		}
		if taken, err := e.db.OutboxDoneTake(other, t5.TxnID, []OutboxResult{{ID: m15, Delivered: true}}, p); !errors.Is(err, ErrNotPending) || taken {
			t.Fatalf("settling an expired transaction: %v, %v; want ErrNotPending, nothing taken", taken, err)
		}
		t6 := next()
		want(t6, m18)

		// While a commit that deletes messages is under way, nothing is
		// read ahead; one that began after the read-ahead stops its take.
		m19 := send(time.Time{})
		end := e.db.removing(true)
		if p := peek(t6); p != nil {
			t.Fatalf("read ahead %v while messages were being deleted", itemIDs(p))
		}
		end()
		p = peek(t6)
		want(p, m19)
		e.db.removing(true)() // a deletion of some other message
		settle(t6, p, false)
		want(next(), m19)
	})
}
