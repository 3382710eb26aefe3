package storage

import (
	"crypto/rand"
	"encoding/binary"

	"github.com/cockroachdb/pebble/v2"
	"github.com/privateline/privateline"
)

// The commit pipeline of batches that carry events.
//
// A messaging write holds its stripes while it reads and builds its batch,
// and applies the batch (ApplyNoSyncWait: written to the WAL and the
// memtable, in one order for everyone under applyMu). It then releases the
// stripes and only then waits for the WAL sync. So the next write to the
// same users builds on the applied state at once, and many writes share
// one fsync (Pebble's group commit) instead of queueing one fsync each
// behind the stripes.
//
// Because the WAL is written in apply order, the sync that makes a batch
// durable makes every batch applied before it durable too. Events are
// queued in apply order and handed to the notifier only once durable, in
// that order: whoever sees its own batch synced publishes every queued
// batch up to its own. Two batches that touch a user were applied in the
// order their stripes allowed, so each user's events reach the notifier in
// sequence order, and no client hears of anything that a crash could
// still take back.
//
// Readers see an applied batch before it is durable (Pebble publishes on
// apply). An operation that answers success from state it did not write
// itself (a replayed send, a repeated read mark) syncs the WAL first
// (syncWAL), so an acknowledgement never rests on an unsynced batch. A
// mailbox page or an event replay that found something waits for the sync
// of what it could have seen (readDurable), so a client never reads a
// message that a crash takes back. Other reads may still show, for the
// length of one fsync, a write that a crash then loses; sequence numbers
// are not reused afterwards, because a store that was not closed cleanly
// moves every counter forward by crashSkip on first use (counter).

// pendingBatch is an applied batch waiting for its WAL sync.
type pendingBatch struct {
	ticket uint64
	events []UserEvent
}

// commitEvents applies b, calls release (the caller's stripes; may be
// nil), waits until b is durable and hands events to the notifier in
// apply order. On error b is closed and nothing is published.
func (d *DB) commitEvents(b *pebble.Batch, events []UserEvent, release func()) error {
	const op = "storage.commit"
	d.applyMu.Lock()
	d.ticket++
	ticket := d.ticket
	d.applied.Store(ticket) // before the batch can be seen (readDurable)
	err := d.db.ApplyNoSyncWait(b, pebble.Sync)
	if err == nil && len(events) > 0 {
		d.pubMu.Lock()
		d.pending = append(d.pending, pendingBatch{ticket, events})
		d.pubMu.Unlock()
	}
	d.applyMu.Unlock()
	if release != nil {
		release()
	}
	if err != nil {
		// Not closed: Pebble may still hold it for the sync (the
		// garbage collector takes it).
		return privateline.E(op, privateline.Unavailable, err)
	}
	err = b.SyncWait()
	b.Close()
	d.pubMu.Lock()
	defer d.pubMu.Unlock()
	if err != nil {
		// Leave the queue to batches whose sync succeeds; drop our own.
		for i, p := range d.pending {
			if p.ticket == ticket {
				d.pending = append(d.pending[:i], d.pending[i+1:]...)
				break
			}
		}
		return privateline.E(op, privateline.Unavailable, err)
	}
	d.markDurable(ticket)
	n := 0
	for n < len(d.pending) && d.pending[n].ticket <= ticket {
		n++
	}
	if n == 0 {
		return nil
	}
	if d.notify != nil {
		for _, p := range d.pending[:n] {
			d.notify(p.events)
		}
	}
	d.pending = append(d.pending[:0], d.pending[n:]...)
	return nil
}

// markDurable notes that every batch up to ticket is durable.
func (d *DB) markDurable(ticket uint64) {
	for {
		old := d.durable.Load()
		if old >= ticket || d.durable.CompareAndSwap(old, ticket) {
			return
		}
	}
}

// readDurable is called after a read whose result goes to a client (a
// mailbox page, events to replay) and found something: it returns once
// every batch of the pipeline that the read could have seen is durable,
// waiting for the WAL sync if one is not yet known to be. So a client
// never reads a message that a crash could still take back — which it
// would then see again, under a new number, when its sender retries.
// The read ended before applied is loaded, and a batch's ticket is
// stored before it is applied, so every batch the read saw is counted.
func (d *DB) readDurable() error {
	a := d.applied.Load()
	if d.durable.Load() >= a {
		return nil
	}
	if err := d.syncWAL(); err != nil {
		return err
	}
	d.markDurable(a)
	return nil
}

// syncWAL waits until everything applied so far is durable.
func (d *DB) syncWAL() error {
	if err := d.db.LogData(nil, pebble.Sync); err != nil {
		return privateline.E("storage.syncWAL", privateline.Unavailable, err)
	}
	return nil
}

// crashSkip is how far each sequence counter moves after an unclean
// shutdown: far more than one user's writes that can wait for one fsync.
const crashSkip = 1024

// openKey is present while the store is open; finding it at Open means the
// last run did not close the store.
var openKey = tMeta.key([]byte("open"))

// markOpen notes an unclean last shutdown (crashSkip) and records that the
// store is open.
func (d *DB) markOpen() error {
	was, err := d.exists(openKey)
	if err != nil {
		return err
	}
	if was {
		d.crashSkip = crashSkip
		var r [8]byte
		rand.Read(r[:])
		d.boot = binary.BigEndian.Uint64(r[:]) | 1
		d.log.Warn("the store was not closed cleanly; sequence numbers move forward by a margin so none a client saw is given out again", "skip", crashSkip)
	}
	b := d.db.NewBatch()
	d.setSealed(b, openKey, nil)
	return d.commit(b)
}
