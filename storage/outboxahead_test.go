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
// in flight is recorded to follow it (OutboxPend) only when it is exactly
// what OutboxNext would take once that one is settled; otherwise nothing
// is recorded and OutboxNext decides as before. Nothing is ever sent that
// its sender deleted, that expired or that left the queue, and the order
// stays the outbox's.
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
				t.Fatalf("recording %v read ahead to follow %v: %v, want %v", itemIDs(ahead), itemIDs(txn), got, want)
			}
		}
		pend := func(txn, ahead *OutboxTxn, want bool) {
			t.Helper()
			if got, err := e.db.OutboxPend(other, txn.TxnID, ahead); err != nil || got != want {
				t.Fatalf("recording %v read ahead to follow %v: %v, %v; want %v", itemIDs(ahead), itemIDs(txn), got, err, want)
			}
		}
		want := func(txn *OutboxTxn, ids ...string) {
			t.Helper()
			if got := itemIDs(txn); !slices.Equal(got, ids) {
				t.Fatalf("transaction %v, want %v", got, ids)
			}
		}

		// Recorded to follow: once the one before is settled, OutboxNext
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
		pend(t1, p, true)
		pend(t1, p, false) // one is recorded to follow, not two
		// Recorded, its items count as handed to the destination: deleting
		// one of its messages now is told to the destination.
		if unsent, err := e.db.unsentIDs(outboxDest{name: other, h: e.db.serverHash(other)}); err != nil || len(unsent) != 0 {
			t.Fatalf("unsent while both transactions are recorded: %v, %v", unsent, err)
		}
		e.reopen() // the record is durable
		e.db.now = func() time.Time { return clock }
		if got := next(); got.TxnID != t1.TxnID {
			t.Fatalf("after a restart OutboxNext gives %s, want the pending %s", got.TxnID, t1.TxnID)
		}
		settle(t1, nil, false)
		if got := next(); got.TxnID != p.TxnID || !slices.Equal(itemIDs(got), []string{m3, m4}) {
			t.Fatalf("OutboxNext after the receipt: %s %v, want the recorded %s %v", got.TxnID, itemIDs(got), p.TxnID, []string{m3, m4})
		}

		// Items queued after the read-ahead wait for the next transaction.
		m5, m6 := send(time.Time{}), send(time.Time{})
		p2 := peek(p)
		want(p2, m5, m6)
		m7 := send(time.Time{})
		settle(p, p2, true)
		want(next(), m5, m6)

		// A receipt without a result for one item: it stays queued, ahead
		// of what was recorded to follow, which is forgotten.
		m8 := send(time.Time{})
		p = peek(p2)
		want(p, m7, m8)
		pend(p2, p, true)
		if err := e.db.OutboxDone(other, p2.TxnID, []OutboxResult{{ID: m5, Delivered: true}}); err != nil {
			t.Fatal(err)
		}
		tb := next()
		want(tb, m6, m7)
		if tb.TxnID == p.TxnID {
			t.Fatal("other items under the txn id of the forgotten transaction")
		}

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

		// Items dropped at the delivery timeout after they were recorded
		// (with the pending one's, older still: its receipt settles
		// nothing).
		m16, m17 := send(time.Time{}), send(time.Time{})
		p = peek(t5)
		want(p, m16, m17)
		pend(t5, p, true)
		clock = clock.Add(time.Hour)
		m18 := send(time.Time{})
		if n, err := e.db.OutboxExpire(other, clock.Add(-30*time.Minute)); err != nil || n != 3 {
			t.Fatalf("OutboxExpire: %d, %v; want the 3 old items", n, err)
		}
		if err := e.db.OutboxDone(other, t5.TxnID, []OutboxResult{{ID: m15, Delivered: true}}); !errors.Is(err, ErrNotPending) {
			t.Fatalf("settling an expired transaction: %v; want ErrNotPending", err)
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
		t7 := next()
		want(t7, m19)

		// The pending one expires, the one recorded to follow does not: it
		// becomes the pending one, under its txn id.
		clock = clock.Add(time.Hour)
		m20 := send(time.Time{})
		p = peek(t7)
		want(p, m20)
		pend(t7, p, true)
		if n, err := e.db.OutboxExpire(other, clock.Add(-time.Minute)); err != nil || n != 1 {
			t.Fatalf("OutboxExpire: %d, %v; want m19", n, err)
		}
		if got := next(); got.TxnID != p.TxnID || !slices.Equal(itemIDs(got), []string{m20}) {
			t.Fatalf("after the pending one expired: %s %v, want the recorded %s [%s]", got.TxnID, itemIDs(got), p.TxnID, m20)
		}
		settle(p, nil, false)

		// Its sender deletes a message of the one recorded to follow: it
		// was handed to the destination, which is told (a delete item is
		// queued), and OutboxNext leaves the message out of a new txn id.
		m21, m22 := send(time.Time{}), send(time.Time{})
		t8 := next()
		want(t8, m21, m22)
		m23, m24 := send(time.Time{}), send(time.Time{})
		p = peek(t8)
		want(p, m23, m24)
		pend(t8, p, true)
		if err := e.db.DeleteMessage(ann.ID, m23, clock); err != nil {
			t.Fatal(err)
		}
		settle(t8, nil, false)
		t9 := next()
		want(t9, m24)
		if t9.TxnID == p.TxnID {
			t.Fatal("a changed transaction kept its txn id")
		}
		settle(t9, nil, false)
		if t10 := next(); t10 == nil || t10.Type != OutboxDeletes {
			t.Fatalf("the destination is not told of the deletion of a message it was handed: %+v", t10)
		}
	})
}
