package storage

import (
	"slices"

	"github.com/privateline/privateline"
)

// Contacts index.
//
//	'w' userID(16) contactID(16)   the two users exchanged a direct message
//
// Deliver writes both directions (sender ↔ each recipient) in the
// message's batch; account deletion removes the user's entries and the
// reverse ones. The index exists so that a key change (UpdateUserKeys)
// can put a key_changed event in every contact's log in the same batch.
// It names no address: only random user ids.
//
// Remote contacts (users of other servers):
//
//	'U' remote(16) userID(16)   the local user exchanged a direct message
//	                            with the remote user
//	'Z' userID(16) remote(16)   the same entry by local user
//
// remote is addressHash(address) (peers.go). Deliver and inbound
// envelopes write them; when a verified look-up shows a remote user's new
// keys (federation), RemoteKeyChanged puts a key_changed event naming the
// address in each local contact's log.

// addContacts adds the missing contacts index entries of a new envelope
// to t's batch (most messages go between users who are contacts already,
// and a read is cheaper than a write). A sender on another server (zero
// id) has no entries. The caller holds the stripes of the sender and the
// recipients.
func (t *mtxn) addContacts(rec *envelopeRecord) error {
	if rec.remoteSender() {
		for _, r := range rec.Recipients {
			if err := t.addRemoteContact(r.ID, rec.Sender.Address); err != nil {
				return err
			}
		}
		return nil
	}
	for _, a := range rec.Remote {
		if err := t.addRemoteContact(rec.Sender.ID, a); err != nil {
			return err
		}
	}
	for _, r := range rec.Recipients {
		for _, k := range [][]byte{tContact.key(rec.Sender.ID[:], r.ID[:]), tContact.key(r.ID[:], rec.Sender.ID[:])} {
			if t.known(string(k)) {
				continue
			}
			if ok, err := t.d.exists(k); err != nil {
				return err
			} else if !ok {
				t.d.setSealed(t.b, k, nil)
			}
		}
	}
	return nil
}

// known reports whether this batch already made sure of the contact
// record named by memo (it exists in the store or in the batch), and
// notes it for the rest of the batch: a transaction of many messages
// between the same users looks each record up once and writes it at most
// once.
func (t *mtxn) known(memo string) bool {
	if t.contacts[memo] {
		return true
	}
	if t.contacts == nil {
		t.contacts = map[string]bool{}
	}
	t.contacts[memo] = true
	return false
}

// Contacts returns the ids of the users user exchanged a direct message
// with.
func (d *DB) Contacts(user ID) ([]ID, error) {
	prefix := tContact.key(user[:])
	var ids []ID
	err := d.scanKeys(prefix, func(k, _ []byte) error {
		if len(k) != len(prefix)+16 {
			return nil
		}
		var id ID
		copy(id[:], k[len(prefix):])
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		return nil, privateline.E("storage.Contacts", err)
	}
	return ids, nil
}

// maxContactLockTries bounds the attempts to lock a user's contacts
// before lockContacts takes every stripe.
const maxContactLockTries = 3

// lockContacts locks the stripes of user and of every contact of user and
// returns the contacts and the unlock function. The contacts are read
// again under the locks: Deliver adds entries under the stripes of both
// users, and user's stripe is held, so the list cannot grow until unlock;
// if it grew between the two reads, it tries again, and in the end takes
// every stripe.
func (d *DB) lockContacts(user ID) ([]ID, func(), error) {
	for try := 0; ; try++ {
		before, err := d.Contacts(user)
		if err != nil {
			return nil, nil, err
		}
		var unlock func()
		held := map[int]bool{}
		if try < maxContactLockTries {
			ids := [][]byte{user[:]}
			for _, c := range before {
				ids = append(ids, c[:])
			}
			for _, id := range ids {
				held[stripeOf(id)] = true
			}
			unlock = d.lockStripes(ids...)
		} else {
			unlock = d.lockAllStripes()
		}
		after, err := d.Contacts(user)
		if err != nil {
			unlock()
			return nil, nil, err
		}
		if try >= maxContactLockTries || !slices.ContainsFunc(after, func(c ID) bool { return !held[stripeOf(c[:])] }) {
			return after, unlock, nil
		}
		unlock()
	}
}

// keyChangedLocked adds to t a key_changed event about u to the log of
// each contact. The caller holds the contacts' stripes (lockContacts).
func (t *mtxn) keyChangedLocked(u *User, contacts []ID) error {
	for _, c := range contacts {
		subject := u.ID
		if _, err := t.event(c, Event{Type: EventKeyChanged, Subject: &subject, Name: u.Username}); err != nil {
			return err
		}
	}
	return nil
}

// deleteContactsLocked adds to t's batch the deletion of user's contacts
// index entries and of the reverse entries. The caller holds the stripes
// of user and the contacts (account deletion holds every stripe).
func (d *DB) deleteContactsLocked(t *mtxn, user ID) error {
	contacts, err := d.Contacts(user)
	if err != nil {
		return err
	}
	for _, c := range contacts {
		t.del(tContact.key(c[:], user[:]))
	}
	p := tContact.key(user[:])
	if err := t.b.DeleteRange(p, prefixEnd(p), nil); err != nil {
		return err
	}
	// Remote contacts: the entries by remote user, then the user's own.
	rp := tRemoteContactByUser.key(user[:])
	err = d.scanKeys(rp, func(k, _ []byte) error {
		if len(k) == len(rp)+16 {
			t.del(tRemoteContact.key(k[len(rp):], user[:]))
		}
		return nil
	})
	if err != nil {
		return err
	}
	return t.b.DeleteRange(rp, prefixEnd(rp), nil)
}

// addRemoteContact records that local user u and remote user a exchanged
// a direct message, if not yet recorded. The caller holds u's stripe.
func (t *mtxn) addRemoteContact(u ID, a privateline.Address) error {
	if t.known("r" + string(u[:]) + string(a)) { // local keys start with tContact.prefix
		return nil
	}
	h := t.d.addressHash(a)
	k := tRemoteContact.key(h, u[:])
	if ok, err := t.d.exists(k); err != nil || ok {
		return err
	}
	t.d.setSealed(t.b, k, nil)
	t.d.setSealed(t.b, tRemoteContactByUser.key(u[:], h), nil)
	return nil
}

// RemoteKeyChanged puts a key_changed event naming a, a user of another
// server whose keys a verified look-up showed changed, in the log of every
// local user who exchanged a direct message with a, and returns how many.
func (d *DB) RemoteKeyChanged(a privateline.Address) (int, error) {
	const op = "storage.RemoteKeyChanged"
	prefix := tRemoteContact.key(d.addressHash(a))
	var users []ID
	collect := func() ([]ID, error) {
		var out []ID
		err := d.scanKeys(prefix, func(k, _ []byte) error {
			if len(k) == len(prefix)+16 {
				var id ID
				copy(id[:], k[len(prefix):])
				out = append(out, id)
			}
			return nil
		})
		return out, err
	}
	users, err := collect()
	if err != nil {
		return 0, privateline.E(op, err)
	}
	if len(users) == 0 {
		return 0, nil
	}
	var ids [][]byte
	held := map[int]bool{}
	for _, u := range users {
		ids = append(ids, u[:])
		held[stripeOf(u[:])] = true
	}
	unlock := d.lockStripes(ids...)
	defer unlock()
	// Under the locks: only those still there (account deletion removes
	// entries under every stripe).
	if users, err = collect(); err != nil {
		return 0, privateline.E(op, err)
	}
	t := d.newMtxn(nil)
	t.release = unlock
	n := 0
	for _, u := range users {
		if !held[stripeOf(u[:])] {
			continue // a contact added meanwhile, under a stripe not held: its next look-up shows the new keys
		}
		if _, err := t.event(u, Event{Type: EventKeyChanged, Remote: a}); err != nil {
			t.b.Close()
			return 0, privateline.E(op, err)
		}
		n++
	}
	if err := t.commit(); err != nil {
		return 0, privateline.E(op, err)
	}
	return n, nil
}
