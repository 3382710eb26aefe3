package storage

import (
	"encoding/json"
	"time"

	"github.com/privateline/privateline"
)

// KDF names the client-side password derivation of an account.
type KDF struct {
	Name       string `json:"name"` // "pbkdf2-sha256"
	Iterations int    `json:"iterations"`
}

// User is an account. It holds only what the server may know: the client's
// derived auth key is kept as an Argon2id hash, private keys only wrapped.
type User struct {
	ID       ID                   `json:"id"`
	Username privateline.Username `json:"username"`
	Email    string               `json:"email,omitempty"`

	AuthHash []byte `json:"auth_hash"` // Argon2id(auth_key, AuthSalt)
	AuthSalt []byte `json:"auth_salt"`

	KDF                 KDF             `json:"kdf"`
	Salt                []byte          `json:"salt"` // client KDF salt
	EncryptedPrivateKey []byte          `json:"encrypted_private_key"`
	Nonce               []byte          `json:"nonce"`
	KeyBundle           json.RawMessage `json:"key_bundle"`

	// DefaultRetentionSeconds is how long the user keeps messages of a
	// conversation without its own setting (retention.go); 0: until
	// deleted. DefaultRetentionDays is its older form, read when
	// DefaultRetentionSeconds is 0.
	DefaultRetentionSeconds int64     `json:"default_retention_seconds,omitempty"`
	DefaultRetentionDays    int       `json:"default_retention_days,omitempty"`
	CreatedAt               time.Time `json:"created_at"`
}

// DefaultRetention returns the user's default retention; 0: none.
func (u *User) DefaultRetention() time.Duration {
	if u.DefaultRetentionSeconds > 0 {
		return time.Duration(u.DefaultRetentionSeconds) * time.Second
	}
	return time.Duration(u.DefaultRetentionDays) * 24 * time.Hour
}

// CreateUser stores a new user. A taken username is an Exist error.
// Registration goes through CreateUserLogged, which also logs the user's
// key bundle.
func (d *DB) CreateUser(u *User) error { return d.createUser(u, nil) }

func (d *DB) createUser(u *User, app LogAppend) error {
	const op = "storage.CreateUser"
	d.mu.Lock()
	defer d.mu.Unlock()
	nk := nameIndexKey(d.nameKey, string(u.Username))
	if _, err := d.get(nk); err == nil {
		return privateline.E(op, privateline.Exist, "username is taken")
	} else if !privateline.Is(privateline.NotExist, err) {
		return privateline.E(op, err)
	}
	b := d.db.NewBatch()
	d.setSealed(b, nk, u.ID[:])
	if err := d.setJSON(b, tUser.key(u.ID[:]), u); err != nil {
		b.Close()
		return privateline.E(op, err)
	}
	if app != nil {
		if err := d.appendLogLocked(b, u, app); err != nil {
			b.Close()
			return privateline.E(op, err)
		}
	}
	return d.commit(b)
}

// UserByID returns the user with the given id.
func (d *DB) UserByID(id ID) (*User, error) {
	u, gen := d.users.get(id)
	if u != nil {
		return u, nil
	}
	u = &User{}
	if err := d.getJSON(tUser.key(id[:]), u); err != nil {
		return nil, privateline.E("storage.UserByID", err)
	}
	d.users.put(u, gen)
	return u, nil
}

// userExists reports whether the user exists (through the cache).
func (d *DB) userExists(id ID) (bool, error) {
	_, err := d.UserByID(id)
	if privateline.Is(privateline.NotExist, err) {
		return false, nil
	}
	return err == nil, err
}

// UserByName returns the user with the given (case-folded) username.
func (d *DB) UserByName(name privateline.Username) (*User, error) {
	const op = "storage.UserByName"
	if id, ok, _ := d.users.idOf(name); ok {
		if u, _ := d.users.get(id); u != nil {
			return u, nil
		}
	}
	v, err := d.get(nameIndexKey(d.nameKey, string(name)))
	if err != nil {
		return nil, privateline.E(op, err)
	}
	var id ID
	if len(v) != len(id) {
		return nil, privateline.E(op, privateline.Internal, "bad name index entry")
	}
	copy(id[:], v)
	return d.UserByID(id)
}

// UpdateUser replaces a user's record (the username cannot change). When
// revokeOthers is set, every session of the user except keep is ended in
// the same batch (a password change). The key bundle is not changed here:
// it changes only together with the key log (UpdateUserKeys), so the
// stored one is kept even if u carries an older copy.
func (d *DB) UpdateUser(u *User, revokeOthers bool, keep ID) error {
	const op = "storage.UpdateUser"
	d.mu.Lock()
	defer d.mu.Unlock()
	cur, err := d.UserByID(u.ID)
	if err != nil {
		return privateline.E(op, err)
	}
	u.KeyBundle = cur.KeyBundle
	b := d.db.NewBatch()
	if err := d.setJSON(b, tUser.key(u.ID[:]), u); err != nil {
		b.Close()
		return privateline.E(op, err)
	}
	if revokeOthers {
		if err := d.deleteSessionsLocked(b, u.ID, keep); err != nil {
			b.Close()
			return privateline.E(op, err)
		}
	}
	err = d.commit(b)
	d.users.invalidate(u.ID)
	return err
}

// DeleteUser erases the user and everything of theirs in one synced batch,
// then compacts the affected ranges so the sealed records leave the table
// files. Pebble's write-ahead log and manifest may still hold the random
// 16-byte user id (a key, never a value) until they are recycled; every
// value, the username and the email were sealed and are gone with the
// records. Account deletion goes through DeleteUserLogged, which also
// appends a deletion entry to the key log.
func (d *DB) DeleteUser(id ID) error { return d.deleteUser(id, nil) }

func (d *DB) deleteUser(id ID, app LogAppend) error {
	const op = "storage.DeleteUser"
	d.mu.Lock()
	defer d.mu.Unlock()
	u, err := d.UserByID(id)
	if err != nil {
		return privateline.E(op, err)
	}
	b := d.db.NewBatch()
	nk := nameIndexKey(d.nameKey, string(u.Username))
	uk := tUser.key(id[:])
	ek, pk := tKeyEntry.key(id[:]), tPinnedKeys.key(id[:])
	for _, k := range [][]byte{nk, uk, ek, pk} {
		if err := b.Delete(k, nil); err != nil {
			b.Close()
			return privateline.E(op, privateline.Internal, err)
		}
	}
	if err := d.deleteSessionsLocked(b, id, ID{}); err != nil {
		b.Close()
		return privateline.E(op, err)
	}
	// Every message the user sent or received goes, from every mailbox
	// (messages.go): an envelope names its sender and recipients.
	mt, unlockMessages, err := d.deleteUserMessagesLocked(b, id)
	if err != nil {
		b.Close()
		return privateline.E(op, err)
	}
	defer unlockMessages()
	defer mt.unlockGroupDests()
	if err := d.deleteContactsLocked(mt, id); err != nil {
		b.Close()
		return privateline.E(op, err)
	}
	if app != nil {
		if err := d.appendLogLocked(b, u, app); err != nil {
			b.Close()
			return privateline.E(op, err)
		}
	}
	// The cache forgets the user before the stripes open, so no delivery
	// under them finds the user (usercache.go).
	release := func() { d.users.invalidate(id); unlockMessages() }
	end := d.removing(mt.removes)
	err = d.commitEvents(b, mt.events, release)
	end()
	d.users.invalidate(id)
	if err != nil {
		return privateline.E(op, err)
	}
	mt.filesCommitted()
	mt.unlockGroupDests()
	d.outboxQueued(mt.groupDests) // groups' remote members' servers (fedgroups.go)
	// Best effort: the deletion is durable already; compaction only makes
	// the tombstoned bytes leave older files sooner.
	for _, k := range [][]byte{nk, uk, ek, pk, tUserSessions.key(id[:]), {tEnvelope.prefix},
		tMailbox.key(id[:]), tMailboxByID.key(id[:]), tConversation.key(id[:]), tParticipant.key(id[:]), tEvent.key(id[:]), tCounters.key(id[:]),
		{tFile.prefix}, tUserFile.key(id[:]), tFileUsage.key(id[:]), tRetention.key(id[:]), tPushToken.key(id[:]), tContact.key(id[:]),
		tUserGroup.key(id[:]), {tGroup.prefix}, {tGroupWrap.prefix}} {
		if err := d.compactRange(k, prefixEnd(k)); err != nil {
			d.log.Warn("compaction after account deletion failed", "err", err)
		}
	}
	return nil
}
