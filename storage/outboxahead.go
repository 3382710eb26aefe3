package storage

import (
	"encoding/binary"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/privateline/privateline"
)

// Reading the next transaction ahead of its turn.
//
// A destination has at most two transactions in flight
// (spec/federation.md §14): the pending one, and the one that follows it.
// While the pending one waits for its receipt, the sender reads the next
// (OutboxPeek: the envelopes, the costly part, without any lock or
// write), signs it, and records it as the pending one's Next
// (OutboxPend) if it is still exactly what OutboxNext would take once the
// pending one is settled; then it sends it at once. OutboxDone makes Next
// the pending transaction when it settles the receipt. So the envelope
// reads, the signature and the destination's receipt of the next
// transaction overlap the exchange of the one before, and nothing else
// changes: the same items, in the same order, recorded durably before
// they are sent.
//
// What can change a peeked transaction before it is recorded:
//   - items leave the head or are queued (settled, expired, coalesced):
//     OutboxPend compares the outbox's keys, less the pending
//     transaction's, with the peeked items;
//   - messages go (deleted by their sender, expired, their account
//     deleted): every commit that deletes envelope records counts itself
//     in removalsBegun before it is applied and in removalsEnded after.
//     OutboxPeek reads removalsBegun, then removalsEnded, and peeks only
//     if they are equal (no such commit under way, so every one counted
//     is applied and visible to its reads); OutboxPend records it only
//     if removalsBegun has not moved since;
//   - messages expire with time: OutboxPend checks each item's expiry
//     again.
// Once recorded, Next's items count as handed to the destination, like
// the pending transaction's (pendingTxn.holds).
// An outbox item's record is never rewritten (a coalesced group state is
// a new item), so its key stands for its content.

// aheadState is what OutboxPend checks of a peeked transaction.
type aheadState struct {
	dest    privateline.ServerName
	begun   uint64 // removalsBegun when it was read
	senders map[uint64]ID
	expires []int64 // per item, ms (0: never)
}

// removing counts a commit that deletes envelope records (removes) as
// begun; the returned function, called once the commit has returned,
// counts it as ended.
func (d *DB) removing(removes bool) func() {
	if !removes {
		return func() {}
	}
	d.removalsBegun.Add(1)
	return func() { d.removalsEnded.Add(1) }
}

// OutboxPeek reads the transaction of dest that follows the items up to
// sequence number after — what OutboxNext would take once they are
// settled — without recording it or taking any lock, under txn id
// newID(). It returns nil when there is nothing to read ahead, or when
// reading ahead would not be sound now (an item whose message has gone
// is at its head, or messages are being deleted).
func (d *DB) OutboxPeek(dest privateline.ServerName, after uint64, maxItems, maxBytes int, newID func() string) (*OutboxTxn, error) {
	const op = "storage.OutboxPeek"
	begun := d.removalsBegun.Load()
	if d.removalsEnded.Load() != begun {
		return nil, nil
	}
	h := d.serverHash(dest)
	abandon := false
	txn, items, err := d.collect(h, after, d.now(), maxItems, maxBytes, func(*item) bool {
		abandon = true // OutboxNext drops it; let it
		return false
	})
	if err != nil {
		return nil, privateline.E(op, err)
	}
	if txn == nil || abandon {
		return nil, nil
	}
	txn.TxnID = newID()
	a := &aheadState{dest: dest, begun: begun, senders: map[uint64]ID{}}
	for _, it := range items {
		a.senders[it.Seq] = it.sender
		a.expires = append(a.expires, it.expires)
	}
	txn.ahead = a
	return txn, nil
}

// OutboxPend records next, read ahead by OutboxPeek while dest's pending
// transaction after is in flight, as the transaction that follows it
// (pendingTxn.Next), in one synced batch, if it is exactly what
// OutboxNext would take once after's items are settled: its items at the
// head of the outbox behind after's, none of their messages gone. It
// reports whether it did; if not, nothing is written. Once recorded, the
// sender may send next before after's receipt (spec/federation.md §14),
// and OutboxDone makes it the pending transaction when it settles after.
func (d *DB) OutboxPend(dest privateline.ServerName, after string, next *OutboxTxn) (bool, error) {
	const op = "storage.OutboxPend"
	x := outboxDest{name: dest, h: d.serverHash(dest)}
	unlock := d.lockDests([]outboxDest{x})
	defer unlock()
	p, err := d.pendingTxn(x.h)
	if err != nil {
		return false, privateline.E(op, err)
	}
	if p == nil || p.TxnID != after || p.Changed || p.Next != nil {
		return false, nil
	}
	settled := make(map[uint64]bool, len(p.Seqs))
	for _, seq := range p.Seqs {
		settled[seq] = true
	}
	if ok, err := d.follows(x, next, settled); err != nil {
		return false, privateline.E(op, err)
	} else if !ok {
		return false, nil
	}
	np := pendingOf(next, next.ahead.senders)
	p.Next = &np
	t := d.newMtxn(nil)
	t.release = unlock
	if err := d.putPending(t.b, x.h, p); err != nil {
		t.b.Close()
		return false, privateline.E(op, err)
	}
	if err := t.commit(); err != nil {
		return false, privateline.E(op, err)
	}
	return true, nil
}

// follows reports whether txn, read ahead by OutboxPeek, is exactly what
// OutboxNext would take once the items in settled (their sequence
// numbers) have left destination x's outbox: its items at the head, none
// of their messages gone. The caller holds x's lock.
func (d *DB) follows(x outboxDest, txn *OutboxTxn, settled map[uint64]bool) (bool, error) {
	a := txn.ahead
	if a == nil || len(txn.Items) == 0 || a.dest != x.name || d.removalsBegun.Load() != a.begun {
		return false, nil
	}
	now := d.now().UnixMilli()
	for _, e := range a.expires {
		if e != 0 && now >= e {
			return false, nil
		}
	}
	head, err := d.headSeqs(x.h, len(settled)+len(txn.Items))
	if err != nil {
		return false, err
	}
	head = slices.DeleteFunc(head, func(seq uint64) bool { return settled[seq] })
	return len(head) >= len(txn.Items) && slices.EqualFunc(head[:len(txn.Items)], txn.Items, func(seq uint64, it OutboxItem) bool { return seq == it.Seq }), nil
}

// headSeqs returns the sequence numbers of the first n items of
// destination h's outbox (fewer if it holds fewer), reading keys only.
func (d *DB) headSeqs(h []byte, n int) ([]uint64, error) {
	p := tOutbox.key(h)
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: d.outboxLower(h), UpperBound: prefixEnd(p)})
	if err != nil {
		return nil, privateline.E(privateline.Unavailable, err)
	}
	defer it.Close()
	var seqs []uint64
	for valid := it.First(); valid && len(seqs) < n; valid = it.Next() {
		if k := it.Key(); len(k) == len(p)+8 {
			seqs = append(seqs, binary.BigEndian.Uint64(k[len(p):]))
		}
	}
	return seqs, it.Error()
}
