package storage

import (
	"encoding/binary"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/privateline/privateline"
)

// Reading the next transaction ahead of its turn.
//
// A destination has one transaction in flight (spec/federation.md §14).
// While it waits for the receipt, the sender reads the transaction that
// will follow it (OutboxPeek: the envelopes, the costly part, without any
// lock or write) and signs it; OutboxDoneTake, which settles the receipt,
// makes it the pending transaction in the same synced batch if it is
// still exactly what OutboxNext would take then — otherwise the sender
// calls OutboxNext as usual. So the envelope reads and the signature are
// off the path between one receipt and the next transaction, which costs
// one synced commit instead of two, and nothing else changes: the same
// items, in the same order, recorded durably before they are sent.
//
// What can change a peeked transaction before it is taken:
//   - items leave the head or are queued (settled, expired, coalesced):
//     the take compares the outbox's keys, less those the batch
//     settles, with the peeked items;
//   - messages go (deleted by their sender, expired, their account
//     deleted): every commit that deletes envelope records counts itself
//     in removalsBegun before it is applied and in removalsEnded after.
//     OutboxPeek reads removalsBegun, then removalsEnded, and peeks only
//     if they are equal (no such commit under way, so every one counted
//     is applied and visible to its reads); the take happens only if
//     removalsBegun has not moved since;
//   - messages expire with time: the take checks each item's expiry
//     again.
// An outbox item's record is never rewritten (a coalesced group state is
// a new item), so its key stands for its content.

// aheadState is what the take checks of a peeked transaction.
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

// takeAhead records txn, read ahead by OutboxPeek, as destination x's
// pending transaction in t's batch and reports true if, once the batch
// has settled the items in settled (their sequence numbers; t also
// clears the pending record), it is exactly what OutboxNext would take:
// its items at the head of the outbox, none of their messages gone.
// Otherwise it writes nothing and reports false. The caller holds x's
// lock until t is applied.
func (t *mtxn) takeAhead(x outboxDest, txn *OutboxTxn, settled map[uint64]bool) (bool, error) {
	d := t.d
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
	// The batch's deletions are not in the store yet: read past them.
	head, err := d.headSeqs(x.h, len(settled)+len(txn.Items))
	if err != nil {
		return false, err
	}
	head = slices.DeleteFunc(head, func(seq uint64) bool { return settled[seq] })
	if len(head) < len(txn.Items) || !slices.EqualFunc(head[:len(txn.Items)], txn.Items, func(seq uint64, it OutboxItem) bool { return seq == it.Seq }) {
		return false, nil
	}
	if err := d.setPending(t.b, x.h, txn, a.senders); err != nil {
		return false, err
	}
	return true, nil
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
