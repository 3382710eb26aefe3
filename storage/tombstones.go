package storage

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"slices"
	"time"

	"github.com/privateline/privateline"
)

// Tombstones: when an envelope is removed for everyone (deleted by its
// sender, expired, or gone with an account), a small record keeps its id
// for TombstoneTTL, so a client that retries an old send cannot bring a
// deleted message back: Deliver refuses the id (Exist, ErrTombstoned).
//
//	'x' msgID(16)                   sender hash (HMAC of the sender's id;
//	                                omitted when the sender's account is
//	                                being deleted) or, for a message from
//	                                another server, a hash of its origin
//	                                and bytes; and time of removal
//	'y' removedAtMillis(8) msgID(16) expiry index, swept by SweepTombstones
//
// A tombstone changes under the stripe of its message id.

// TombstoneTTL is how long a removed message's id stays refused: longer
// than any client keeps retrying a send.
const TombstoneTTL = 30 * 24 * time.Hour

// ErrTombstoned: the message id belongs to a message that was deleted or
// expired (wrapped in an Exist error).
var ErrTombstoned = errors.New("storage: a message with this id was deleted")

type tombstone struct {
	Sender []byte `json:"sender,omitempty"` // HMAC(nameKey, "tombstone" 0x00 senderID)[:16]
	At     int64  `json:"at"`               // ms
	// Origin, for a message from another server: HMAC(nameKey,
	// "tombstone-origin" 0x00 origin 0x00 SHA-256 of the envelope)[:16],
	// so that the origin sending it again is told "duplicate" (inbound.go).
	Origin []byte `json:"origin,omitempty"`
}

// tombstone adds the tombstone of a removed message to the batch.
func (t *mtxn) tombstone(rec *envelopeRecord, mid []byte) error {
	now := t.now
	if now.IsZero() {
		now = time.Now()
	}
	ts := tombstone{At: now.UnixMilli()}
	switch {
	case rec.remoteSender():
		ts.Origin = t.d.originSum(rec.Sender.Address, rec.Sum)
	case rec.Sender.ID != t.gone:
		m := hmac.New(sha256.New, t.d.nameKey)
		m.Write([]byte("tombstone\x00"))
		m.Write(rec.Sender.ID[:])
		ts.Sender = m.Sum(nil)[:16]
	}
	if err := t.d.setJSON(t.b, tTombstone.key(mid), ts); err != nil {
		return err
	}
	t.d.setSealed(t.b, tTombstoneExpiry.key(u64(uint64(ts.At)), mid), nil)
	return nil
}

// checkTombstone returns an Exist error if message id mid was removed
// less than TombstoneTTL ago (the stripe of mid is held).
func (d *DB) checkTombstone(mid []byte) error {
	ok, err := d.existsNew(tTombstone.key(mid))
	if err != nil {
		return err
	}
	if ok {
		return privateline.E("storage.checkTombstone", privateline.Exist, ErrTombstoned)
	}
	return nil
}

// SweepTombstones deletes the tombstones older than TombstoneTTL at now
// and returns how many went.
func (d *DB) SweepTombstones(now time.Time) (int, error) {
	const op = "storage.SweepTombstones"
	upper := tTombstoneExpiry.key(u64(uint64(now.Add(-TombstoneTTL).UnixMilli()) + 1))
	total := 0
	for {
		var keys [][]byte
		if err := d.scanKeys([]byte{tTombstoneExpiry.prefix}, func(k, _ []byte) error {
			if string(k) >= string(upper) || len(keys) >= maxSweep {
				return errStop
			}
			if len(k) == 1+8+16 {
				keys = append(keys, slices.Clone(k))
			}
			return nil
		}); err != nil && !errors.Is(err, errStop) {
			return total, privateline.E(op, err)
		}
		if len(keys) == 0 {
			return total, nil
		}
		var mids [][]byte
		for _, k := range keys {
			mids = append(mids, k[9:])
		}
		unlock := d.lockStripes(mids...)
		b := d.db.NewBatch()
		for _, k := range keys {
			mid := k[9:]
			var ts tombstone
			err := d.getJSON(tTombstone.key(mid), &ts)
			if err == nil && string(u64(uint64(ts.At))) == string(k[1:9]) {
				// A newer tombstone of the same id has its own index entry.
				err = b.Delete(tTombstone.key(mid), nil)
			} else if privateline.Is(privateline.NotExist, err) {
				err = nil
			}
			if err == nil {
				err = b.Delete(k, nil)
			}
			if err != nil {
				unlock()
				b.Close()
				return total, privateline.E(op, err)
			}
		}
		err := d.commit(b)
		unlock()
		if err != nil {
			return total, privateline.E(op, err)
		}
		total += len(keys)
		if len(keys) < maxSweep {
			return total, nil
		}
	}
}
