package storage

import (
	"bytes"
	"slices"
	"testing"
	"time"
)

// TestKeyChangedEvents: a key change puts a key_changed event, naming the
// user, in the log of every contact (both directions of a delivery make a
// contact) in the change's own batch; non-contacts hear nothing; account
// deletion removes the contacts index both ways.
func TestKeyChangedEvents(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		rec := &recorder{got: map[ID][]Event{}}
		e.db.SetNotifier(rec.notify)
		ann, ben, cal, dan := newUser("ann"), newUser("ben"), newUser("cal"), newUser("dan")
		for _, u := range []*User{ann, ben, cal, dan} {
			if err := e.db.CreateUser(u); err != nil {
				t.Fatal(err)
			}
		}
		deliver := func(from *User, to ...*User) {
			t.Helper()
			dl := &Delivery{MsgID: newMsgID(), Sender: rcpt(from), Raw: []byte(`{}`)}
			for _, u := range to {
				dl.Recipients = append(dl.Recipients, rcpt(u))
			}
			if _, _, err := e.db.Deliver(dl); err != nil {
				t.Fatal(err)
			}
		}
		deliver(ann, ben) // ann ↔ ben
		deliver(cal, ann) // cal ↔ ann
		deliver(ann, ben) // again: one entry
		if c, err := e.db.Contacts(ann.ID); err != nil || len(c) != 2 || !slices.Contains(c, ben.ID) || !slices.Contains(c, cal.ID) {
			t.Fatalf("ann's contacts: %v %v", c, err)
		}
		if c, _ := e.db.Contacts(dan.ID); len(c) != 0 {
			t.Fatalf("dan has contacts: %v", c)
		}

		if _, err := e.db.UpdateUserKeys(ann.ID, func(u *User) error { u.KeyBundle = []byte(`{"v":2}`); return nil },
			func(u *User, i uint64) (*LogRecord, error) {
				return &LogRecord{Leaf: []byte("leaf"), Entry: []byte("entry")}, nil
			}); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		for _, u := range []*User{ben, cal} {
			got := rec.got[u.ID]
			last := got[len(got)-1]
			if last.Type != EventKeyChanged || last.Subject == nil || *last.Subject != ann.ID || last.Name != ann.Username {
				t.Fatalf("%s was notified %+v", u.Username, last)
			}
			evs, err := e.db.EventsAfter(u.ID, last.Seq-1, 10, now)
			if err != nil || len(evs) != 1 || evs[0].Type != EventKeyChanged || evs[0].Name != ann.Username || evs[0].Seq != last.Seq {
				t.Fatalf("%s's log: %+v %v", u.Username, evs, err)
			}
		}
		for _, u := range []*User{ann, dan} {
			for _, ev := range rec.got[u.ID] {
				if ev.Type == EventKeyChanged {
					t.Fatalf("%s got %+v", u.Username, ev)
				}
			}
		}

		// Deleting ann removes her entries and the reverse ones; ben's
		// key_changed event about her is left out when read back.
		if err := e.db.DeleteUser(ann.ID); err != nil {
			t.Fatal(err)
		}
		e.db.ScanAll(func(k, _ []byte) {
			if k[0] == tContact.prefix && bytes.Contains(k, ann.ID[:]) {
				t.Errorf("contacts entry %x outlives ann", k)
			}
		})
		evs, err := e.db.EventsAfter(ben.ID, 0, 100, now)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if ev.Type == EventKeyChanged {
				t.Errorf("ben's log still shows ann's key change: %+v", ev)
			}
		}
		// A key change of a user without contacts writes no event.
		n := len(rec.got[dan.ID])
		if _, err := e.db.UpdateUserKeys(dan.ID, func(u *User) error { return nil },
			func(u *User, i uint64) (*LogRecord, error) { return &LogRecord{Leaf: []byte("leaf")}, nil }); err != nil {
			t.Fatal(err)
		}
		if len(rec.got[dan.ID]) != n {
			t.Fatal("dan's own key change was put in his log")
		}
	})
}
