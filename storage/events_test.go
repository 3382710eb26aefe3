package storage

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// recorder is a notifier that keeps what it was given, per user.
type recorder struct {
	mu  sync.Mutex
	got map[ID][]Event
}

func (r *recorder) notify(evs []UserEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range evs {
		r.got[e.User] = append(r.got[e.User], e.Event)
	}
}

func (r *recorder) types(u ID) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ts []string
	for _, e := range r.got[u] {
		ts = append(ts, e.Type+":"+e.ID[:4])
	}
	return ts
}

func eventTypes(evs []Event) []string {
	var ts []string
	for _, e := range evs {
		ts = append(ts, e.Type+":"+e.ID[:4])
	}
	return ts
}

// TestEventLog: every change is an event in the log of each user it
// concerns, published after the commit and read back the same after a
// restart; numbers are shared with the mailbox.
func TestEventLog(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		rec := &recorder{got: map[ID][]Event{}}
		e.db.SetNotifier(rec.notify)
		a, b := newUser("ann"), newUser("ben")
		for _, u := range []*User{a, b} {
			if err := e.db.CreateUser(u); err != nil {
				t.Fatal(err)
			}
		}
		now := time.Unix(1_800_000_000, 0)
		send := func(from, to *User, exp time.Time) string {
			t.Helper()
			dl := &Delivery{MsgID: newMsgID(), Sender: rcpt(from), Recipients: []Recipient{rcpt(to)}, ExpiresAt: exp}
			dl.Raw = []byte(`{"id":"` + dl.MsgID + `"}`)
			if _, _, err := e.db.Deliver(dl); err != nil {
				t.Fatal(err)
			}
			return dl.MsgID
		}
		m1 := send(a, b, time.Time{})
		m2 := send(a, b, now.Add(time.Minute))
		m3 := send(b, a, time.Time{})
		if err := e.db.MarkRead(b.ID, m1, now); err != nil {
			t.Fatal(err)
		}
		if err := e.db.DeleteMessage(a.ID, m3, now); err != nil { // a removes her copy
			t.Fatal(err)
		}
		if n, err := e.db.SweepMessages(now.Add(time.Minute)); err != nil || n != 1 {
			t.Fatalf("sweep: %d %v", n, err)
		}
		want := map[*User][]string{
			a: {"message:" + m1[:4], "message:" + m2[:4], "message:" + m3[:4], "read:" + m1[:4], "deleted:" + m3[:4], "expired:" + m2[:4]},
			b: {"message:" + m1[:4], "message:" + m2[:4], "message:" + m3[:4], "read:" + m1[:4], "expired:" + m2[:4]},
		}
		e.reopen()
		e.db.SetNotifier(rec.notify)
		for u, w := range want {
			if got := rec.types(u.ID); !slices.Equal(got, w) {
				t.Errorf("%s notified %v, want %v", u.Username, got, w)
			}
			for i, ev := range rec.got[u.ID] {
				if ev.Seq != uint64(i+1) {
					t.Errorf("%s: event %d has seq %d", u.Username, i, ev.Seq)
				}
				if (ev.Type == EventMessage) != (ev.Mail != nil) || ev.Mail != nil && ev.Mail.Seq != ev.Seq {
					t.Errorf("%s: event %+v", u.Username, ev)
				}
			}
			// Read back: the messages that went (m2 expired; m3 removed by
			// a) are left out, the events saying so are there.
			evs, err := e.db.EventsAfter(u.ID, 0, 100, now.Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			var w2 []string
			for _, s := range w {
				if s != "message:"+m2[:4] && !(u == a && s == "message:"+m3[:4]) {
					w2 = append(w2, s)
				}
			}
			if got := eventTypes(evs); !slices.Equal(got, w2) {
				t.Errorf("%s read back %v, want %v", u.Username, got, w2)
			}
			if evs[len(evs)-1].Type == EventRead && evs[len(evs)-1].By != rcpt(b).Address {
				t.Errorf("read event by %q", evs[len(evs)-1].By)
			}
			// Resuming part way gives the rest.
			tail, err := e.db.EventsAfter(u.ID, 3, 100, now)
			if err != nil || len(tail) != len(w)-3 || tail[0].Seq != 4 {
				t.Errorf("%s after 3: %v, %v", u.Username, eventTypes(tail), err)
			}
			if none, err := e.db.EventsAfter(u.ID, uint64(len(w)), 100, now); err != nil || len(none) != 0 {
				t.Errorf("%s after the last: %v, %v", u.Username, none, err)
			}
		}
		// Account deletion: the other side hears that the messages went.
		if err := e.db.DeleteUser(a.ID); err != nil {
			t.Fatal(err)
		}
		got := rec.types(b.ID)
		if last := got[len(got)-2:]; !slices.Contains(last, "deleted:"+m1[:4]) || !slices.Contains(last, "deleted:"+m3[:4]) {
			t.Errorf("after a's deletion b was notified %v", got)
		}
		if got := rec.types(a.ID); len(got) != len(want[a]) {
			t.Errorf("the deleted user got events: %v", got)
		}
	})
}

// TestEventWindow: the log keeps the newest events; a client further
// behind is told to resynchronise.
func TestEventWindow(t *testing.T) {
	db, err := Open(Options{InMemory: true, Key: testKey(), EventWindow: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a, b := newUser("ann"), newUser("ben")
	for _, u := range []*User{a, b} {
		if err := db.CreateUser(u); err != nil {
			t.Fatal(err)
		}
	}
	for range 8 {
		dl := &Delivery{MsgID: newMsgID(), Sender: rcpt(a), Recipients: []Recipient{rcpt(b)}, Raw: []byte(`{}`)}
		if _, _, err := db.Deliver(dl); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	if _, err := db.EventsAfter(b.ID, 2, 100, now); !errors.Is(err, ErrEventsGone) {
		t.Errorf("after 2 of 8 with a window of 5: %v", err)
	}
	evs, err := db.EventsAfter(b.ID, 3, 100, now)
	if err != nil || len(evs) != 5 || evs[0].Seq != 4 {
		t.Errorf("after 3: %d events, %v", len(evs), err)
	}
	n := 0
	db.scanKeys(tEvent.key(b.ID[:]), func(k, _ []byte) error { n++; return nil })
	if n != 5 {
		t.Errorf("the log holds %d events, want 5", n)
	}
	// The mailbox still has every message.
	if items, err := db.Mailbox(b.ID, MailQuery{Limit: 100, Now: now}); err != nil || len(items) != 8 {
		t.Errorf("mailbox: %d, %v", len(items), err)
	}
}

// TestEventOrderUnderConcurrency: with many concurrent deliveries each
// user's events reach the notifier in sequence order, without gaps.
func TestEventOrderUnderConcurrency(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		rec := &recorder{got: map[ID][]Event{}}
		e.db.SetNotifier(rec.notify)
		var users []*User
		for i := range 4 {
			u := newUser(fmt.Sprint("user", i))
			if err := e.db.CreateUser(u); err != nil {
				t.Fatal(err)
			}
			users = append(users, u)
		}
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				for j := range 25 {
					from, to := users[i%4], users[(i+j+1)%4]
					if from == to {
						to = users[(i+1)%4]
					}
					dl := &Delivery{MsgID: newMsgID(), Sender: rcpt(from), Recipients: []Recipient{rcpt(to)}, Raw: []byte(`{}`)}
					if _, _, err := e.db.Deliver(dl); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		total := 0
		for _, u := range users {
			for i, ev := range rec.got[u.ID] {
				if ev.Seq != uint64(i+1) {
					t.Fatalf("%s: notified event %d has seq %d", u.Username, i, ev.Seq)
				}
			}
			total += len(rec.got[u.ID])
		}
		if total != 2*8*25 {
			t.Errorf("%d events, want %d", total, 2*8*25)
		}
	})
}
