package storage

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/privateline/privateline"
)

func newMsgID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func rcpt(u *User) Recipient {
	return Recipient{ID: u.ID, Address: privateline.Address(string(u.Username) + "@hs")}
}

// checkMailboxes checks the invariants of every user's mailbox: the
// counters match the entries, sequence numbers are unique and at most the
// last one given out, every entry has its envelope and index entries.
func checkMailboxes(t *testing.T, d *DB, users ...*User) {
	t.Helper()
	for _, u := range users {
		c, err := d.UnreadCounts(u.ID)
		if err != nil {
			t.Fatal(err)
		}
		var unread, groups int64
		err = d.scanKeys(tMailbox.key(u.ID[:]), func(k, _ []byte) error {
			seq := binary.BigEndian.Uint64(k[17:])
			if seq == 0 || seq > c.Next {
				t.Errorf("%s: seq %d beyond the counter %d", u.Username, seq, c.Next)
			}
			var e mailboxEntry
			if err := d.getJSON(k, &e); err != nil {
				return err
			}
			mid, _ := msgKeyID(e.MsgID)
			rec, err := d.envelope(mid)
			if err != nil {
				t.Errorf("%s: entry %d without its envelope: %v", u.Username, seq, err)
				return nil
			}
			if got, err := d.liveSeq(u.ID, mid); err != nil || got != seq {
				t.Errorf("%s: entry %d has by-id index %d, %v", u.Username, seq, got, err)
			}
			if !e.Out && !e.Read {
				unread++
				if rec.Group != "" {
					groups++
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if c.Unread != unread || c.Direct != unread-groups || c.Groups != groups {
			t.Errorf("%s: counters %+v, but %d unread entries", u.Username, c, unread)
		}
	}
}

func TestDeliverReadDeleteSweep(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		a, b, c := newUser("ann"), newUser("ben"), newUser("cat")
		for _, u := range []*User{a, b, c} {
			if err := e.db.CreateUser(u); err != nil {
				t.Fatal(err)
			}
		}
		now := time.Unix(1_800_000_000, 0)
		send := func(from *User, to []*User, exp time.Time) string {
			t.Helper()
			dl := &Delivery{MsgID: newMsgID(), Sender: rcpt(from), ExpiresAt: exp}
			for _, r := range to {
				dl.Recipients = append(dl.Recipients, rcpt(r))
			}
			dl.Raw = []byte(`{"id":"` + dl.MsgID + `"}`)
			if _, _, err := e.db.Deliver(dl); err != nil {
				t.Fatal(err)
			}
			return dl.MsgID
		}
		m1 := send(a, []*User{b, c}, time.Time{})
		m2 := send(b, []*User{a}, now.Add(time.Minute))
		send(c, []*User{b}, time.Time{})
		if err := e.db.MarkRead(b.ID, m1, now); err != nil {
			t.Fatal(err)
		}
		if err := e.db.MarkRead(a.ID, m1, now); !privateline.Is(privateline.NotExist, err) {
			t.Errorf("the sender marking read: %v", err)
		}
		if err := e.db.DeleteMessage(c.ID, m1, now); err != nil {
			t.Fatal(err)
		}
		checkMailboxes(t, e.db, a, b, c)
		e.reopen()
		checkMailboxes(t, e.db, a, b, c)
		if n, err := e.db.SweepMessages(now.Add(time.Minute)); err != nil || n != 1 {
			t.Fatalf("sweep: %d, %v", n, err)
		}
		if _, err := e.db.envelope(mustID(t, m2)); !privateline.Is(privateline.NotExist, err) {
			t.Errorf("swept envelope: %v", err)
		}
		checkMailboxes(t, e.db, a, b, c)
		if err := e.db.DeleteMessage(a.ID, m1, now); err != nil {
			t.Fatal(err)
		}
		checkMailboxes(t, e.db, a, b, c)
		for _, u := range []*User{a, b} {
			items, err := e.db.Mailbox(u.ID, MailQuery{Limit: 10, Now: now})
			if err != nil || len(items) != map[*User]int{a: 0, b: 1}[u] {
				t.Errorf("%s's mailbox: %d items, %v", u.Username, len(items), err)
			}
		}
	})
}

func mustID(t *testing.T, s string) []byte {
	t.Helper()
	b, err := msgKeyID(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDeliverRacesAccountDeletion: deliveries to and from a user being
// deleted either land before the deletion (and go with it) or fail; none
// leaves an entry behind, and the others' counters stay true.
func TestDeliverRacesAccountDeletion(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		var users []*User
		for i := range 6 {
			u := newUser(fmt.Sprint("user", i))
			if err := e.db.CreateUser(u); err != nil {
				t.Fatal(err)
			}
			users = append(users, u)
		}
		gone := users[0]
		var wg sync.WaitGroup
		for i := range 5 {
			wg.Go(func() {
				from := users[i+1]
				for j := range 20 {
					to := []*User{users[(i+j)%len(users)]}
					if to[0] == from {
						to[0] = gone
					}
					dl := &Delivery{MsgID: newMsgID(), Sender: rcpt(from), Recipients: []Recipient{rcpt(to[0])}}
					dl.Raw = []byte(`{"id":"` + dl.MsgID + `","to":"` + string(to[0].Username) + `"}`)
					if _, _, err := e.db.Deliver(dl); err != nil && !privateline.Is(privateline.NotExist, err) {
						t.Error(err)
					}
				}
			})
		}
		wg.Go(func() {
			if err := e.db.DeleteUser(gone.ID); err != nil {
				t.Error(err)
			}
		})
		wg.Wait()
		if found := e.db.scanFor(t, gone.ID[:], []byte(gone.Username)); len(found) > 0 {
			t.Fatalf("after deletion the store holds the user at %q", found)
		}
		checkMailboxes(t, e.db, users[1:]...)
	})
}
