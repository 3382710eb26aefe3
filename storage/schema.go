package storage

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/privateline/privateline"
)

// A migration moves the store from version-1 to version. It adds its changes
// to the batch, which also carries the version bump, so either both happen
// or neither.
type migration struct {
	version int
	name    string
	apply   func(d *DB, b *pebble.Batch) error
}

// migrations are the schema's history, oldest first. Never edit a released
// entry; append a new one.
var migrations = []migration{
	{version: 1, name: "initial keyspace", apply: func(*DB, *pebble.Batch) error { return nil }},
	// New tables only (key log, key entries, pinned keys): nothing to
	// convert, but an older binary must not open a store it cannot read.
	{version: 2, name: "key directory log and pinned keys", apply: func(*DB, *pebble.Batch) error { return nil }},
	// New tables only (files, tombstones, retention, push tokens).
	{version: 3, name: "files, tombstones, retention and push tokens", apply: func(*DB, *pebble.Batch) error { return nil }},
	// Envelope records in a binary form (envrecord.go); the JSON records
	// of earlier versions are still read, but an older binary must not
	// open a store holding records it cannot read.
	{version: 4, name: "binary envelope records", apply: func(*DB, *pebble.Batch) error { return nil }},
}

var schemaKey = tMeta.key([]byte("schema"))

// SchemaVersion is the version this binary writes.
func SchemaVersion() int { return migrations[len(migrations)-1].version }

// schemaVersion returns the stored version, 0 for a new store.
func (d *DB) schemaVersion() (int, error) {
	v, err := d.get(schemaKey)
	if privateline.Is(privateline.NotExist, err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading schema version: %w (is AES_KEY the key this data directory was created with?)", err)
	}
	if len(v) != 4 {
		return 0, fmt.Errorf("schema version record has %d bytes", len(v))
	}
	return int(binary.BigEndian.Uint32(v)), nil
}

func (d *DB) migrate(migs []migration) error {
	cur, err := d.schemaVersion()
	if err != nil {
		return err
	}
	latest := migs[len(migs)-1].version
	if cur > latest {
		return fmt.Errorf("the store has schema version %d but this homeserver knows only up to %d; run a newer homeserver", cur, latest)
	}
	if cur == 0 {
		empty := true
		if err := d.scanKeys([]byte{}, func(k, v []byte) error { empty = false; return errStop }); err != nil && err != errStop {
			return err
		}
		if !empty {
			return fmt.Errorf("the store has data but no schema version; refusing to touch it")
		}
	}
	for _, m := range migs {
		if m.version <= cur {
			continue
		}
		b := d.db.NewBatch()
		if err := m.apply(d, b); err != nil {
			b.Close()
			return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
		}
		var v [4]byte
		binary.BigEndian.PutUint32(v[:], uint32(m.version))
		d.setSealed(b, schemaKey, v[:])
		if err := d.commit(b); err != nil {
			return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
		}
		d.log.Info("storage migrated", "version", m.version, "migration", m.name)
	}
	return nil
}

var errStop = fmt.Errorf("stop")
