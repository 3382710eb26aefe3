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

// addContacts adds the missing contacts index entries of a new envelope
// to t's batch (most messages go between users who are contacts already,
// and a read is cheaper than a write). A sender on another server (zero
// id) has no entries. The caller holds the stripes of the sender and the
// recipients.
func (t *mtxn) addContacts(rec *envelopeRecord) error {
	if rec.remoteSender() {
		return nil
	}
	for _, r := range rec.Recipients {
		for _, k := range [][]byte{tContact.key(rec.Sender.ID[:], r.ID[:]), tContact.key(r.ID[:], rec.Sender.ID[:])} {
			if ok, err := t.d.exists(k); err != nil {
				return err
			} else if !ok {
				t.d.setSealed(t.b, k, nil)
			}
		}
	}
	return nil
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
	return t.b.DeleteRange(p, prefixEnd(p), nil)
}
