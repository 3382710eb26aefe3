package storage

import (
	"bytes"

	"github.com/privateline/privateline"
)

// After the homeserver's identity key is replaced (homeserver rotate-key),
// the key log's entries still carry the old key's signatures. Signatures
// are kept beside the leaves, not in them ('L' holds {leaf, sig}; the tree
// hashes the leaf only), so the directory signs every entry again with
// the new key without changing a hash of the tree. Meta "keylog-signer"
// records the key that signed every entry, so this happens once per key.

var keyLogSignerKey = tMeta.key([]byte("keylog-signer"))

// resignBatch is how many entries one synced batch re-signs.
const resignBatch = 1024

// ResignKeyLog makes every entry of the key log carry sign's signature of
// its leaf, unless signer (the public key of sign) is recorded as having
// signed them all. It holds the store's lock, so no entry is appended
// meanwhile, writes in synced batches and records signer with the last
// one: a crash leaves a mix of old and new signatures that the next call
// finishes. It returns how many entries it signed.
func (d *DB) ResignKeyLog(signer []byte, sign func(leaf []byte) []byte) (uint64, error) {
	const op = "storage.ResignKeyLog"
	if len(signer) == 0 {
		return 0, privateline.E(op, privateline.Invalid, "no signer")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	cur, err := d.get(keyLogSignerKey)
	if err != nil && !privateline.Is(privateline.NotExist, err) {
		return 0, privateline.E(op, err)
	}
	if bytes.Equal(cur, signer) {
		return 0, nil
	}
	size, err := d.KeyLogSize()
	if err != nil {
		return 0, privateline.E(op, err)
	}
	var done uint64
	for start := uint64(0); ; start += resignBatch {
		b := d.db.NewBatch()
		end := min(start+resignBatch, size)
		for i := start; i < end; i++ {
			var r leafRecord
			if err := d.getJSON(leafKey(i), &r); err != nil {
				b.Close()
				return done, privateline.E(op, err)
			}
			r.Signature = sign(r.Leaf)
			if err := d.setJSON(b, leafKey(i), r); err != nil {
				b.Close()
				return done, privateline.E(op, err)
			}
		}
		if end == size {
			d.setSealed(b, keyLogSignerKey, signer)
		}
		if err := d.commit(b); err != nil {
			return done, privateline.E(op, err)
		}
		done += end - start
		if end == size {
			return done, nil
		}
	}
}
