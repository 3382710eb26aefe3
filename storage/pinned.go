package storage

import (
	"errors"

	"github.com/privateline/privateline"
)

// ErrVersionMismatch is the cause of a PutPinnedKeys refused because the
// stored version is not the one the caller based its change on.
var ErrVersionMismatch = errors.New("storage: the stored version has changed")

type pinnedRecord struct {
	Version uint64 `json:"version"`
	Blob    []byte `json:"blob"`
}

// PinnedKeys returns the user's pinned-keys blob (opaque, encrypted by the
// client) and its version; version 0 and no blob when none was stored yet.
// An unknown user is NotExist.
func (d *DB) PinnedKeys(id ID) (blob []byte, version uint64, err error) {
	const op = "storage.PinnedKeys"
	if _, err := d.get(tUser.key(id[:])); err != nil {
		return nil, 0, privateline.E(op, err)
	}
	var r pinnedRecord
	switch err := d.getJSON(tPinnedKeys.key(id[:]), &r); {
	case privateline.Is(privateline.NotExist, err):
		return nil, 0, nil
	case err != nil:
		return nil, 0, privateline.E(op, err)
	}
	return r.Blob, r.Version, nil
}

// PutPinnedKeys replaces the user's blob if its stored version is
// ifVersion (0: none stored yet) and returns the new version, ifVersion+1.
// Otherwise nothing is written and the error is an Exist error wrapping
// ErrVersionMismatch.
func (d *DB) PutPinnedKeys(id ID, blob []byte, ifVersion uint64) (uint64, error) {
	const op = "storage.PutPinnedKeys"
	d.mu.Lock()
	defer d.mu.Unlock()
	_, cur, err := d.PinnedKeys(id)
	if err != nil {
		return 0, privateline.E(op, err)
	}
	if cur != ifVersion {
		return 0, privateline.E(op, privateline.Exist, "the pinned keys changed meanwhile", ErrVersionMismatch)
	}
	b := d.db.NewBatch()
	if err := d.setJSON(b, tPinnedKeys.key(id[:]), pinnedRecord{Version: cur + 1, Blob: blob}); err != nil {
		b.Close()
		return 0, privateline.E(op, err)
	}
	if err := d.commit(b); err != nil {
		return 0, privateline.E(op, err)
	}
	return cur + 1, nil
}
