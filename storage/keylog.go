package storage

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/privateline/privateline"
	"github.com/privateline/privateline/merkle"
)

// The key directory's log (keydir, spec/e2ee.md §6.4) is an append-only
// Merkle tree kept in three tables and one counter:
//
//   - 'L' index → the leaf: its data (hashed into the tree) and the
//     directory's signature. Leaves hold commitments only (hashes of a
//     bundle or an address under a random salt), never a name or a key, so
//     they stay when the account they were about is deleted.
//   - 'T' level index → the hash of each perfect subtree, written when the
//     subtree completes (merkle.AppendNodes). Appending writes at most
//     log2(n)+1 nodes; a root or proof reads O(log n) of them.
//   - 'K' userID → the directory's record of the user's current entry (the
//     bundle and the salt that opens its commitment), replaced at each key
//     change and erased with the account.
//   - meta "keylog-size" → the number of leaves.
//
// Every append happens inside the batch of the user change it records
// (CreateUserLogged, UpdateUserKeys, DeleteUserLogged) and under DB.mu, so
// the log and the users never disagree and indices are dense.

var keyLogSizeKey = tMeta.key([]byte("keylog-size"))

// LogRecord is one leaf of the key log, made by the directory.
type LogRecord struct {
	// Leaf is the leaf data hashed into the tree.
	Leaf []byte
	// Signature is the directory's signature on the leaf.
	Signature []byte
	// Entry is the directory's record of the user's current entry, kept
	// under the user's id until the next key change or the account's
	// deletion. A deletion's record has none.
	Entry []byte
}

// A LogAppend makes the log record for a change to user u once the store
// has fixed the leaf's index. The store calls it holding its lock, inside
// the write it commits; it must not call back into the store.
type LogAppend func(u *User, index uint64) (*LogRecord, error)

type leafRecord struct {
	Leaf      []byte `json:"leaf"`
	Signature []byte `json:"sig"`
}

func nodeKey(level uint8, index uint64) []byte {
	var k [9]byte
	k[0] = level
	binary.BigEndian.PutUint64(k[1:], index)
	return tKeyNode.key(k[:])
}

func leafKey(index uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], index)
	return tKeyLeaf.key(k[:])
}

// KeyLogSize returns the number of leaves in the key log.
func (d *DB) KeyLogSize() (uint64, error) {
	v, err := d.get(keyLogSizeKey)
	if privateline.Is(privateline.NotExist, err) {
		return 0, nil
	}
	if err != nil {
		return 0, privateline.E("storage.KeyLogSize", err)
	}
	if len(v) != 8 {
		return 0, privateline.E("storage.KeyLogSize", privateline.Internal, "bad key-log size record")
	}
	return binary.BigEndian.Uint64(v), nil
}

// KeyLogNode returns the hash of a perfect subtree of the key log
// (merkle.NodeSource). Nodes never change once written.
func (d *DB) KeyLogNode(level uint8, index uint64) (merkle.Hash, error) {
	var h merkle.Hash
	v, err := d.get(nodeKey(level, index))
	if err != nil {
		return h, privateline.E("storage.KeyLogNode", err)
	}
	if len(v) != merkle.HashSize {
		return h, privateline.E("storage.KeyLogNode", privateline.Internal, "bad key-log node")
	}
	copy(h[:], v)
	return h, nil
}

// KeyLogNodes returns the key log's subtree hashes as a merkle.NodeSource.
func (d *DB) KeyLogNodes() merkle.NodeSource { return keyLogNodes{d} }

type keyLogNodes struct{ d *DB }

func (s keyLogNodes) Node(level uint8, index uint64) (merkle.Hash, error) {
	return s.d.KeyLogNode(level, index)
}

// KeyLogLeaf returns the leaf at index and the directory's signature on it.
func (d *DB) KeyLogLeaf(index uint64) (leaf, sig []byte, err error) {
	var r leafRecord
	if err := d.getJSON(leafKey(index), &r); err != nil {
		return nil, nil, privateline.E("storage.KeyLogLeaf", err)
	}
	return r.Leaf, r.Signature, nil
}

// UserKeyEntry returns the directory's record of the user's current entry;
// NotExist if the user has none (or no longer exists).
func (d *DB) UserKeyEntry(id ID) ([]byte, error) {
	v, err := d.get(tKeyEntry.key(id[:]))
	if err != nil {
		return nil, privateline.E("storage.UserKeyEntry", err)
	}
	return v, nil
}

// appendLogLocked adds to b the leaf that app makes for u, the subtree
// nodes it completes, the user's entry record and the new size. d.mu must
// be held from before the size is read until b is committed.
func (d *DB) appendLogLocked(b *pebble.Batch, u *User, app LogAppend) error {
	size, err := d.KeyLogSize()
	if err != nil {
		return err
	}
	rec, err := app(u, size)
	if err != nil {
		return err
	}
	if len(rec.Leaf) == 0 {
		return errors.New("storage: empty key-log leaf")
	}
	nodes, err := merkle.AppendNodes(keyLogNodes{d}, size, merkle.LeafHash(rec.Leaf))
	if err != nil {
		return fmt.Errorf("storage: key-log append: %w", err)
	}
	for _, n := range nodes {
		d.setSealed(b, nodeKey(n.Level, n.Index), n.Hash[:])
	}
	if err := d.setJSON(b, leafKey(size), leafRecord{Leaf: rec.Leaf, Signature: rec.Signature}); err != nil {
		return err
	}
	if rec.Entry != nil {
		d.setSealed(b, tKeyEntry.key(u.ID[:]), rec.Entry)
	}
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], size+1)
	d.setSealed(b, keyLogSizeKey, n[:])
	return nil
}

// CreateUserLogged stores a new user and appends the log record app makes
// for it, in one synced batch. A taken username is an Exist error and logs
// nothing.
func (d *DB) CreateUserLogged(u *User, app LogAppend) error {
	return d.createUser(u, app)
}

// UpdateUserKeys changes a user's keys and logs the change in one synced
// batch: under the store's lock it loads the user, lets mutate change it
// (mutate may refuse, and then nothing is written), appends app's record,
// stores the user and puts a key_changed event in the log of each of the
// user's contacts (contacts.go). It returns the user as stored. Lock
// order: DB.mu, then the stripes of the user and the contacts.
func (d *DB) UpdateUserKeys(id ID, mutate func(u *User) error, app LogAppend) (*User, error) {
	const op = "storage.UpdateUserKeys"
	d.mu.Lock()
	defer d.mu.Unlock()
	u, err := d.UserByID(id)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	if err := mutate(u); err != nil {
		return nil, err
	}
	contacts, unlock, err := d.lockContacts(id)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	defer unlock()
	t := d.newMtxn(nil)
	if err := d.setJSON(t.b, tUser.key(u.ID[:]), u); err != nil {
		t.b.Close()
		return nil, privateline.E(op, err)
	}
	if err := d.appendLogLocked(t.b, u, app); err != nil {
		t.b.Close()
		return nil, privateline.E(op, err)
	}
	if err := t.keyChangedLocked(u, contacts); err != nil {
		t.b.Close()
		return nil, privateline.E(op, err)
	}
	err = t.commit()
	d.users.invalidate(u.ID)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	return u, nil
}

// DeleteUserLogged erases the user as DeleteUser does and appends app's
// deletion record to the key log in the same synced batch. The record
// must carry no Entry: nothing of the user is kept.
func (d *DB) DeleteUserLogged(id ID, app LogAppend) error {
	return d.deleteUser(id, func(u *User, index uint64) (*LogRecord, error) {
		rec, err := app(u, index)
		if err == nil && rec.Entry != nil {
			return nil, privateline.E("storage.DeleteUserLogged", privateline.Internal, "a deletion record must not keep an entry")
		}
		return rec, err
	})
}
