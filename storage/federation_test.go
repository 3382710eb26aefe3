package storage

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/privateline/privateline"
)

const (
	other = privateline.ServerName("other.example")
	third = privateline.ServerName("third.example")
	rob   = privateline.Address("rob@other.example")
	rita  = privateline.Address("rita@other.example")
	sue   = privateline.Address("sue@third.example")
)

func createUsers(t *testing.T, d *DB, names ...string) []*User {
	t.Helper()
	var us []*User
	for _, n := range names {
		u := newUser(n)
		if err := d.CreateUser(u); err != nil {
			t.Fatal(err)
		}
		us = append(us, u)
	}
	return us
}

// sendRemote delivers a direct message from a local user to local and
// remote recipients and returns its id.
func sendRemote(t *testing.T, d *DB, from *User, local []*User, remote []privateline.Address, exp time.Time) string {
	t.Helper()
	dl := &Delivery{MsgID: newMsgID(), Sender: rcpt(from), Remote: remote, ExpiresAt: exp}
	for _, r := range local {
		dl.Recipients = append(dl.Recipients, rcpt(r))
	}
	dl.Raw = []byte(`{"id":"` + dl.MsgID + `","pad":"` + strings.Repeat("x", len(remote)*7) + `"}`)
	if _, _, err := d.Deliver(dl); err != nil {
		t.Fatal(err)
	}
	return dl.MsgID
}

func rawOf(t *testing.T, d *DB, id string) []byte {
	t.Helper()
	rec, err := d.envelope(mustID(t, id))
	if err != nil {
		t.Fatal(err)
	}
	return rec.Raw
}

// settleAll records next (read ahead by OutboxPeek; nil: none) to follow
// txn, dest's pending transaction, if it still follows (OutboxPend), then
// settles txn with every item delivered; it reports whether next was
// recorded (and so is now the pending transaction).
func settleAll(t *testing.T, d *DB, dest privateline.ServerName, txn, next *OutboxTxn) bool {
	t.Helper()
	pended := false
	if next != nil {
		var err error
		if pended, err = d.OutboxPend(dest, txn.TxnID, next); err != nil {
			t.Fatal(err)
		}
	}
	var rs []OutboxResult
	for _, it := range txn.Items {
		rs = append(rs, OutboxResult{ID: it.ID, Delivered: true})
	}
	if err := d.OutboxDone(dest, txn.TxnID, rs); err != nil {
		t.Fatal(err)
	}
	return pended
}

// seenEnvelope is SeenEnvelopes for one id.
func seenEnvelope(t *testing.T, d *DB, origin privateline.ServerName, id string) (bool, error) {
	t.Helper()
	seen, err := d.SeenEnvelopes(origin, []string{id})
	if err != nil {
		return false, err
	}
	return seen[0], nil
}

func itemIDs(txn *OutboxTxn) []string {
	if txn == nil {
		return nil
	}
	var ids []string
	for _, it := range txn.Items {
		ids = append(ids, it.ID)
	}
	return ids
}

// ids counts the txn ids it hands out.
type ids struct{ n int }

func (c *ids) next() string { c.n++; return fmt.Sprintf("txn-%d", c.n) }

func mailIDs(t *testing.T, d *DB, u *User, with privateline.Address) []string {
	t.Helper()
	items, err := d.Mailbox(u.ID, MailQuery{With: with, HasAfter: true, Limit: 1000, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, it := range items {
		out = append(out, string(it.Envelope[7:39]))
	}
	return out
}

// fedEvents returns the user's delivered / delivery_failed events after seq.
func fedEvents(t *testing.T, d *DB, u *User, after uint64) []Event {
	t.Helper()
	evs, err := d.EventsAfter(u.ID, after, 1000, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var out []Event
	for _, e := range evs {
		if e.Type == EventDelivered || e.Type == EventDeliveryFailed || e.Type == EventDeliveryWaiting {
			out = append(out, e)
		}
	}
	return out
}

func lastSeq(t *testing.T, d *DB, u *User) uint64 {
	t.Helper()
	c, err := d.UnreadCounts(u.ID)
	if err != nil {
		t.Fatal(err)
	}
	return c.Next
}

func fingerprint(t *testing.T, d *DB) [32]byte {
	t.Helper()
	fp, err := d.Fingerprint()
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

// TestDeliverQueuesRemoteRecipients: a message to users of other servers
// is queued once per server in outbox order, the notifier hears of each
// server after the commit, and the sender finds the sent copy in the
// conversation with each remote recipient.
func TestDeliverQueuesRemoteRecipients(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		var mu sync.Mutex
		var woken []privateline.ServerName
		e.db.SetOutboxNotifier(func(s privateline.ServerName) {
			mu.Lock()
			woken = append(woken, s)
			mu.Unlock()
		})
		us := createUsers(t, e.db, "ann", "ben")
		ann, ben := us[0], us[1]
		m1 := sendRemote(t, e.db, ann, []*User{ben}, []privateline.Address{rob, sue, rita}, time.Time{})
		m2 := sendRemote(t, e.db, ann, nil, []privateline.Address{rob}, time.Time{})
		sendRemote(t, e.db, ben, []*User{ann}, nil, time.Time{}) // local only: queues nothing
		mu.Lock()
		slices.Sort(woken)
		if want := []privateline.ServerName{other, other, third}; !slices.Equal(woken, want) {
			t.Errorf("notified %v, want %v", woken, want)
		}
		mu.Unlock()
		depth, err := e.db.OutboxDepth()
		if err != nil {
			t.Fatal(err)
		}
		if len(depth) != 2 || depth[other] != 2 || depth[third] != 1 {
			t.Errorf("depth %v, want other:2 third:1", depth)
		}
		dests, err := e.db.OutboxDestinations()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(dests, []privateline.ServerName{other, third}) {
			t.Errorf("destinations %v", dests)
		}
		// The sent copy is in the conversation with each remote recipient.
		if got := mailIDs(t, e.db, ann, rob); !slices.Equal(got, []string{m1, m2}) {
			t.Errorf("ann's conversation with rob: %v, want %v", got, []string{m1, m2})
		}
		if got := mailIDs(t, e.db, ann, sue); !slices.Equal(got, []string{m1}) {
			t.Errorf("ann's conversation with sue: %v", got)
		}
		if got := mailIDs(t, e.db, ben, privateline.Address("ann@hs")); len(got) != 2 || got[0] != m1 {
			t.Errorf("ben's conversation with ann: %v", got)
		}
		checkMailboxes(t, e.db, ann, ben)

		var c ids
		txn, err := e.db.OutboxNext(other, 10, 1<<20, c.next)
		if err != nil {
			t.Fatal(err)
		}
		if txn == nil || txn.Type != OutboxEnvelopes || !slices.Equal(itemIDs(txn), []string{m1, m2}) {
			t.Fatalf("txn to other: %+v", txn)
		}
		if !bytes.Equal(txn.Items[0].Payload, rawOf(t, e.db, m1)) || !bytes.Equal(txn.Items[1].Payload, rawOf(t, e.db, m2)) {
			t.Error("payloads are not the envelopes as posted")
		}
		if txn.Items[0].Seq >= txn.Items[1].Seq || txn.Items[0].QueuedAt.IsZero() {
			t.Errorf("items %+v", txn.Items)
		}
		if txn3, err := e.db.OutboxNext(third, 10, 1<<20, c.next); err != nil || !slices.Equal(itemIDs(txn3), []string{m1}) {
			t.Errorf("txn to third: %+v, %v", txn3, err)
		}
		if none, err := e.db.OutboxNext("nowhere.example", 10, 1<<20, c.next); none != nil || err != nil {
			t.Errorf("empty destination: %+v, %v", none, err)
		}
		// A group message has no remote recipients.
		dl := &Delivery{MsgID: newMsgID(), Sender: rcpt(ann), Group: newMsgID(), Remote: []privateline.Address{rob}, Raw: []byte(`{}`)}
		if _, _, err := e.db.Deliver(dl); !privateline.Is(privateline.Invalid, err) {
			t.Errorf("group message with remote recipients: %v", err)
		}
	})
}

// queueOther queues an item of another type than envelopes (as later
// types will), with its payload.
func queueOther(t *testing.T, d *DB, dest privateline.ServerName, typ, id string, payload []byte) {
	t.Helper()
	x := outboxDest{name: dest, h: d.serverHash(dest)}
	unlock := d.lockDests([]outboxDest{x})
	defer unlock()
	st, err := d.destState(x)
	if err != nil {
		t.Fatal(err)
	}
	st.Next++
	st.Depth++
	b := d.db.NewBatch()
	if err := errors.Join(d.setJSON(b, tOutbox.key(x.h, u64(st.Next)), outboxRecord{Type: typ, ID: id, QueuedAt: time.Now().UnixMilli(), Payload: payload}),
		d.setJSON(b, stateKey(x.h), st)); err != nil {
		t.Fatal(err)
	}
	if err := d.commit(b); err != nil {
		t.Fatal(err)
	}
}

// TestOutboxNextLimits: a transaction takes consecutive items of one type
// from the head within the item and byte limits, at least one; the
// pending one is returned again (same id and items) until settled, also
// after a restart.
func TestOutboxNextLimits(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ann := createUsers(t, e.db, "ann")[0]
		var ms []string
		for range 5 {
			ms = append(ms, sendRemote(t, e.db, ann, nil, []privateline.Address{rob}, time.Time{}))
		}
		queueOther(t, e.db, other, "read_marks", "mark-1", []byte("marks"))
		m6 := sendRemote(t, e.db, ann, nil, []privateline.Address{rob}, time.Time{})
		size := len(rawOf(t, e.db, ms[0]))
		var c ids
		next := func(items, bytes int) *OutboxTxn {
			t.Helper()
			txn, err := e.db.OutboxNext(other, items, bytes, c.next)
			if err != nil {
				t.Fatal(err)
			}
			return txn
		}
		// Two items at most.
		txn := next(2, 1<<20)
		if !slices.Equal(itemIDs(txn), ms[:2]) || txn.TxnID != "txn-1" {
			t.Fatalf("first txn %v %s", itemIDs(txn), txn.TxnID)
		}
		// Pending: the same transaction whatever the limits, also after a restart.
		e.reopen()
		again, err := e.db.OutboxNext(other, 1, 1, c.next)
		if err != nil {
			t.Fatal(err)
		}
		if again.TxnID != "txn-1" || !slices.Equal(itemIDs(again), ms[:2]) || c.n != 1 {
			t.Fatalf("pending after reopen: %s %v (ids handed out %d)", again.TxnID, itemIDs(again), c.n)
		}
		settleAll(t, e.db, other, again, nil)
		// Byte limit: one item over it still goes alone; two fit only with room for both.
		if txn := next(10, 1); !slices.Equal(itemIDs(txn), ms[2:3]) {
			t.Fatalf("tiny byte limit: %v", itemIDs(txn))
		} else {
			settleAll(t, e.db, other, txn, nil)
		}
		if txn := next(10, 2*size-1); !slices.Equal(itemIDs(txn), ms[3:4]) {
			t.Fatalf("byte limit below two: %v", itemIDs(txn))
		} else {
			settleAll(t, e.db, other, txn, nil)
		}
		// Same type only: the envelope stops before the read marks item…
		if txn := next(10, 1<<20); !slices.Equal(itemIDs(txn), ms[4:5]) {
			t.Fatalf("before another type: %v", itemIDs(txn))
		} else {
			settleAll(t, e.db, other, txn, nil)
		}
		// … which goes alone, with its payload, before the next envelope.
		if txn := next(10, 1<<20); txn.Type != "read_marks" || !slices.Equal(itemIDs(txn), []string{"mark-1"}) || string(txn.Items[0].Payload) != "marks" {
			t.Fatalf("read marks txn: %+v", txn)
		} else {
			settleAll(t, e.db, other, txn, nil)
		}
		if txn := next(10, 2*size); !slices.Equal(itemIDs(txn), []string{m6}) {
			t.Fatalf("last: %v", itemIDs(txn))
		} else {
			settleAll(t, e.db, other, txn, nil)
		}
		if txn := next(10, 1<<20); txn != nil {
			t.Fatalf("empty outbox gave %+v", txn)
		}
		if d, _ := e.db.OutboxDepth(); d[other] != 0 {
			t.Errorf("depth %d after everything was settled", d[other])
		}
		if dests, _ := e.db.OutboxDestinations(); len(dests) != 0 {
			t.Errorf("destinations %v after everything was settled", dests)
		}
	})
}

// TestOutboxDone: a receipt deletes the transaction's items and tells each
// sender delivered or delivery_failed with the code; a wrong txn id
// changes nothing.
func TestOutboxDone(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		rec := &recorder{got: map[ID][]Event{}}
		e.db.SetNotifier(rec.notify)
		us := createUsers(t, e.db, "ann", "ben")
		ann, ben := us[0], us[1]
		m1 := sendRemote(t, e.db, ann, nil, []privateline.Address{rob}, time.Time{})
		m2 := sendRemote(t, e.db, ben, nil, []privateline.Address{rita}, time.Time{})
		m3 := sendRemote(t, e.db, ann, nil, []privateline.Address{rob}, time.Time{})
		aSeq, bSeq := lastSeq(t, e.db, ann), lastSeq(t, e.db, ben)
		var c ids
		txn, err := e.db.OutboxNext(other, 2, 1<<20, c.next)
		if err != nil {
			t.Fatal(err)
		}
		before := fingerprint(t, e.db)
		err = e.db.OutboxDone(other, "txn-other", []OutboxResult{{ID: m1, Delivered: true}, {ID: m2, Delivered: true}})
		if !privateline.Is(privateline.Exist, err) || !errors.Is(err, ErrNotPending) {
			t.Errorf("wrong txn id: %v", err)
		}
		if fingerprint(t, e.db) != before {
			t.Error("a wrong txn id changed the store")
		}
		if err := e.db.OutboxDone(third, txn.TxnID, nil); !privateline.Is(privateline.Exist, err) {
			t.Errorf("txn id of another destination: %v", err)
		}
		if err := e.db.OutboxDone(other, txn.TxnID, []OutboxResult{{ID: m1, Delivered: true}, {ID: m2, Error: "unknown_recipient"}}); err != nil {
			t.Fatal(err)
		}
		got := fedEvents(t, e.db, ann, aSeq)
		if len(got) != 1 || got[0].Type != EventDelivered || got[0].ID != m1 || got[0].Server != other || got[0].Error != "" {
			t.Errorf("ann's events: %+v", got)
		}
		got = fedEvents(t, e.db, ben, bSeq)
		if len(got) != 1 || got[0].Type != EventDeliveryFailed || got[0].ID != m2 || got[0].Server != other || got[0].Error != "unknown_recipient" {
			t.Errorf("ben's events: %+v", got)
		}
		if ts := rec.types(ben.ID); ts[len(ts)-1] != EventDeliveryFailed+":"+m2[:4] {
			t.Errorf("ben's published events: %v", ts)
		}
		if d, _ := e.db.OutboxDepth(); d[other] != 1 {
			t.Errorf("depth %d, want 1", d[other])
		}
		// Settling again with the old id is refused; the next txn is m3 alone.
		if err := e.db.OutboxDone(other, txn.TxnID, []OutboxResult{{ID: m1, Delivered: true}}); !privateline.Is(privateline.Exist, err) {
			t.Errorf("settling twice: %v", err)
		}
		next, err := e.db.OutboxNext(other, 10, 1<<20, c.next)
		if err != nil || !slices.Equal(itemIDs(next), []string{m3}) || next.TxnID == txn.TxnID {
			t.Fatalf("next txn: %+v, %v", next, err)
		}
		// An item without a result stays queued.
		if err := e.db.OutboxDone(other, next.TxnID, nil); err != nil {
			t.Fatal(err)
		}
		if again, _ := e.db.OutboxNext(other, 10, 1<<20, c.next); !slices.Equal(itemIDs(again), []string{m3}) {
			t.Errorf("an item without a result: %v", itemIDs(again))
		}
		// A sender whose account went gets no event, and nothing is left of it.
		if err := e.db.DeleteUser(ann.ID); err != nil {
			t.Fatal(err)
		}
		if left := e.db.scanFor(t, ann.ID[:], []byte("ann@hs")); len(left) > 0 {
			t.Errorf("after account deletion: %v", left)
		}
	})
}

// TestOutboxWaiting: each queued message's sender is told once that it
// waits for the destination; a later call names only what was queued
// since; other senders' messages reach only their own logs.
func TestOutboxWaiting(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		us := createUsers(t, e.db, "ann", "ben")
		ann, ben := us[0], us[1]
		annSeq, benSeq := lastSeq(t, e.db, ann), lastSeq(t, e.db, ben)
		m1 := sendRemote(t, e.db, ann, nil, []privateline.Address{rob}, time.Time{})
		m2 := sendRemote(t, e.db, ben, nil, []privateline.Address{rob}, time.Time{})
		last, err := e.db.OutboxWaiting(other, 0)
		if err != nil || last == 0 {
			t.Fatalf("waiting: %d, %v", last, err)
		}
		if got := fedEvents(t, e.db, ann, annSeq); len(got) != 1 || got[0].Type != EventDeliveryWaiting || got[0].ID != m1 || got[0].Server != other {
			t.Fatalf("ann's events: %+v", got)
		}
		if got := fedEvents(t, e.db, ben, benSeq); len(got) != 1 || got[0].Type != EventDeliveryWaiting || got[0].ID != m2 {
			t.Fatalf("ben's events: %+v", got)
		}
		// Again with nothing new: nobody is told twice.
		if again, err := e.db.OutboxWaiting(other, last); err != nil || again != last {
			t.Fatalf("again: %d, %v (want %d)", again, err, last)
		}
		m3 := sendRemote(t, e.db, ann, nil, []privateline.Address{rob}, time.Time{})
		if _, err := e.db.OutboxWaiting(other, last); err != nil {
			t.Fatal(err)
		}
		got := fedEvents(t, e.db, ann, annSeq)
		if len(got) != 2 || got[1].ID != m3 || got[1].Type != EventDeliveryWaiting {
			t.Fatalf("ann's events after a new message: %+v", got)
		}
		if got := fedEvents(t, e.db, ben, benSeq); len(got) != 1 {
			t.Fatalf("ben told about ann's message: %+v", got)
		}
	})
}

// TestOutboxWaitingStartsAfterTold: a sweep after the first reads only
// what was queued since (keys are ordered by sequence number): items
// already announced are neither announced again nor even read — the
// record of one, made unreadable here, would fail a walk from the head —
// and new ones are announced, each once.
func TestOutboxWaitingStartsAfterTold(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ann := createUsers(t, e.db, "ann")[0]
		annSeq := lastSeq(t, e.db, ann)
		m1 := sendRemote(t, e.db, ann, nil, []privateline.Address{rob}, time.Time{})
		m2 := sendRemote(t, e.db, ann, nil, []privateline.Address{rob}, time.Time{})
		last, err := e.db.OutboxWaiting(other, 0)
		if err != nil || last != 2 {
			t.Fatalf("waiting: %d, %v (want 2)", last, err)
		}
		if got := fedEvents(t, e.db, ann, annSeq); len(got) != 2 || got[0].ID != m1 || got[1].ID != m2 {
			t.Fatalf("ann's events: %+v", got)
		}
		h := e.db.serverHash(other)
		if err := e.db.db.Set(tOutbox.key(h, u64(1)), []byte("not a sealed record"), pebble.Sync); err != nil {
			t.Fatal(err)
		}
		m3 := sendRemote(t, e.db, ann, nil, []privateline.Address{rob}, time.Time{})
		m4 := sendRemote(t, e.db, ann, nil, []privateline.Address{rob}, time.Time{})
		again, err := e.db.OutboxWaiting(other, last)
		if err != nil || again != 4 {
			t.Fatalf("waiting after two more: %d, %v (want 4)", again, err)
		}
		got := fedEvents(t, e.db, ann, annSeq)
		if len(got) != 4 || got[2].ID != m3 || got[3].ID != m4 || got[2].Type != EventDeliveryWaiting || got[3].Type != EventDeliveryWaiting {
			t.Fatalf("ann's events after two more messages: %+v", got)
		}
		if n, err := e.db.OutboxWaiting(other, again); err != nil || n != again {
			t.Fatalf("nothing new: %d, %v (want %d)", n, err, again)
		}
		if got := fedEvents(t, e.db, ann, annSeq); len(got) != 4 {
			t.Fatalf("told again: %+v", got)
		}
	})
}

// TestOutboxExpire: items queued before the cutoff go with a timeout
// event naming the last error, also out of the pending transaction
// (whose rest gets a new txn id); messages that expired or were deleted
// leave the outbox silently.
func TestOutboxExpire(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		clock := time.Unix(1_800_000_000, 0)
		e.db.now = func() time.Time { return clock }
		ann := createUsers(t, e.db, "ann")[0]
		m1 := sendRemote(t, e.db, ann, nil, []privateline.Address{rob}, time.Time{})
		clock = clock.Add(time.Hour)
		m2 := sendRemote(t, e.db, ann, nil, []privateline.Address{rob}, time.Time{})
		clock = clock.Add(time.Hour)
		m3 := sendRemote(t, e.db, ann, nil, []privateline.Address{rob}, time.Time{})
		long := strings.Repeat("é", 400) // 800 bytes
		if err := e.db.OutboxAttemptFailed(other, "dial: "+long); err != nil {
			t.Fatal(err)
		}
		var c ids
		txn, err := e.db.OutboxNext(other, 2, 1<<20, c.next)
		if err != nil || !slices.Equal(itemIDs(txn), []string{m1, m2}) {
			t.Fatalf("txn %+v %v", txn, err)
		}
		seq := lastSeq(t, e.db, ann)
		n, err := e.db.OutboxExpire(other, time.Unix(1_800_000_000, 0).Add(30*time.Minute))
		if err != nil || n != 1 {
			t.Fatalf("expire: %d, %v", n, err)
		}
		got := fedEvents(t, e.db, ann, seq)
		if len(got) != 1 || got[0].Type != EventDeliveryFailed || got[0].ID != m1 || got[0].Error != "timeout" || got[0].Server != other {
			t.Fatalf("timeout events: %+v", got)
		}
		if d := got[0].Detail; len(d) > maxDetail || !strings.HasPrefix(d, "dial: éé") || !strings.HasSuffix(d, "é") {
			t.Errorf("detail %q (%d bytes)", d, len(d))
		}
		if d, _ := e.db.OutboxDepth(); d[other] != 2 {
			t.Errorf("depth %d, want 2", d[other])
		}
		// The pending transaction lost m1: m2 goes under a new txn id.
		rest, err := e.db.OutboxNext(other, 2, 1<<20, c.next)
		if err != nil || !slices.Equal(itemIDs(rest), []string{m2}) || rest.TxnID == txn.TxnID {
			t.Fatalf("rest %+v %v", rest, err)
		}
		if err := e.db.OutboxDone(other, txn.TxnID, []OutboxResult{{ID: m2, Delivered: true}}); !privateline.Is(privateline.Exist, err) {
			t.Errorf("the replaced txn id settled: %v", err)
		}
		// Everything before a cutoff beyond the last: the pending txn is cleared.
		if n, err := e.db.OutboxExpire(other, clock.Add(time.Second)); err != nil || n != 2 {
			t.Fatalf("expire all: %d, %v", n, err)
		}
		if evs := fedEvents(t, e.db, ann, seq); len(evs) != 3 || evs[1].ID != m2 || evs[2].ID != m3 {
			t.Errorf("timeout events %+v", evs)
		}
		if d, _ := e.db.OutboxDepth(); d[other] != 0 {
			t.Errorf("depth %d, want 0", d[other])
		}
		if none, err := e.db.OutboxNext(other, 2, 1<<20, c.next); none != nil || err != nil {
			t.Errorf("after expiring everything: %+v, %v", none, err)
		}

		// Silently: a message that expired, one the sender deleted.
		m4 := sendRemote(t, e.db, ann, nil, []privateline.Address{rob}, clock.Add(time.Minute))
		m5 := sendRemote(t, e.db, ann, nil, []privateline.Address{rob}, time.Time{})
		m6 := sendRemote(t, e.db, ann, nil, []privateline.Address{rob}, time.Time{})
		if err := e.db.DeleteMessage(ann.ID, m5, clock); err != nil {
			t.Fatal(err)
		}
		seq = lastSeq(t, e.db, ann)
		clock = clock.Add(2 * time.Minute)
		if d, _ := e.db.OutboxDepth(); d[other] != 3 {
			t.Errorf("depth %d, want 3", d[other])
		}
		txn, err = e.db.OutboxNext(other, 10, 1<<20, c.next)
		if err != nil || !slices.Equal(itemIDs(txn), []string{m6}) {
			t.Fatalf("after expiry and deletion: %v, %v (m4 %s m5 %s)", itemIDs(txn), err, m4[:4], m5[:4])
		}
		if d, _ := e.db.OutboxDepth(); d[other] != 1 {
			t.Errorf("depth %d, want 1", d[other])
		}
		if err := e.db.OutboxDone(other, txn.TxnID, []OutboxResult{{ID: m6, Delivered: true}}); err != nil {
			t.Fatal(err)
		}
		// A pending transaction whose every message went: the next items
		// go under a new txn id, counted once.
		m7 := sendRemote(t, e.db, ann, nil, []privateline.Address{rob}, time.Time{})
		m8 := sendRemote(t, e.db, ann, nil, []privateline.Address{rob}, time.Time{})
		if txn, err = e.db.OutboxNext(other, 1, 1<<20, c.next); err != nil || !slices.Equal(itemIDs(txn), []string{m7}) {
			t.Fatalf("m7: %v %v", itemIDs(txn), err)
		}
		if err := e.db.DeleteMessage(ann.ID, m7, clock); err != nil {
			t.Fatal(err)
		}
		next, err := e.db.OutboxNext(other, 10, 1<<20, c.next)
		if err != nil || !slices.Equal(itemIDs(next), []string{m8}) || next.TxnID == txn.TxnID {
			t.Fatalf("after the pending message went: %+v %v", next, err)
		}
		// m7 may have reached rob's server: its delete is queued after m8.
		if d, _ := e.db.OutboxDepth(); d[other] != 2 {
			t.Errorf("depth %d, want 2 (m8 and m7's delete)", d[other])
		}
		// A message that expires while pending leaves silently when the
		// delivery times out too; m8 gets its timeout event (the delete
		// none: it has no sender to tell).
		m9 := sendRemote(t, e.db, ann, nil, []privateline.Address{rob}, clock.Add(time.Minute))
		clock = clock.Add(2 * time.Minute)
		if n, err := e.db.OutboxExpire(other, clock.Add(time.Hour)); err != nil || n != 3 {
			t.Fatalf("expire: %d %v", n, err)
		}
		if evs := fedEvents(t, e.db, ann, seq); len(evs) != 2 || evs[0].ID != m6 || evs[0].Type != EventDelivered || evs[1].ID != m8 || evs[1].Error != "timeout" {
			t.Errorf("events after the silent removals (m9 %s): %+v", m9[:4], evs)
		}
		if d, _ := e.db.OutboxDepth(); d[other] != 0 {
			t.Errorf("depth %d, want 0", d[other])
		}
	})
}

// entry builds an inbound entry from a remote sender.
func entry(from privateline.Address, to ...*User) InboundEntry {
	id := newMsgID()
	e := InboundEntry{ID: id, From: from, Raw: []byte(`{"id":"` + id + `","from":"` + string(from) + `"}`)}
	for _, u := range to {
		e.Recipients = append(e.Recipients, rcpt(u))
	}
	return e
}

func statuses(rs []InboundResult) []string {
	var out []string
	for _, r := range rs {
		s := r.Status
		if r.Error != "" {
			s += ":" + r.Error
		}
		out = append(out, s)
	}
	return out
}

// TestReceiveTransaction: accepted entries reach their recipients in entry
// order; duplicates, replays, a reused txn id, unknown recipients and id
// collisions are answered as spec/federation.md §7.3 and §13 say, and a
// refused entry stores nothing.
func TestReceiveTransaction(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		rec := &recorder{got: map[ID][]Event{}}
		e.db.SetNotifier(rec.notify)
		us := createUsers(t, e.db, "ann", "ben", "gone")
		ann, ben, gone := us[0], us[1], us[2]
		if err := e.db.DeleteUser(gone.ID); err != nil {
			t.Fatal(err)
		}
		local := sendRemote(t, e.db, ann, []*User{ben}, nil, time.Time{})
		now := time.Now()
		e1 := entry(rob, ben)
		e2 := entry(rita, ann, ben)
		e3 := entry(rob, ben)
		e3.Refused = "expired"
		e4 := entry(rob, gone)
		e5 := entry(rob, ben)
		e5.ID = local
		e6 := entry(rob, ben, gone)
		e7 := entry(rob, ben)
		e7.ExpiresAt = now.Add(-time.Second)
		e8 := entry(sue, ben) // not from the origin
		entries := []InboundEntry{e1, e2, e3, e4, e5, e6, e7, e8}
		bSeq := lastSeq(t, e.db, ben)
		res, replayed, err := e.db.ReceiveTransaction(other, "t1", entries, now)
		if err != nil || replayed {
			t.Fatalf("receive: %v %v", err, replayed)
		}
		want := []string{"accepted", "accepted", "refused:expired", "refused:unknown_recipient", "refused:id_in_use", "accepted", "refused:expired", "refused:wrong_origin"}
		if !slices.Equal(statuses(res), want) {
			t.Fatalf("results %v, want %v", statuses(res), want)
		}
		for i, r := range res {
			if r.ID != entries[i].ID {
				t.Errorf("result %d names %s", i, r.ID)
			}
		}
		// Ben's copies in entry order, with ascending seqs, in the conversations with the senders.
		evs, err := e.db.EventsAfter(ben.ID, bSeq, 100, now)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := eventTypes(evs), []string{"message:" + e1.ID[:4], "message:" + e2.ID[:4], "message:" + e6.ID[:4]}; !slices.Equal(got, want) {
			t.Errorf("ben's events %v, want %v", got, want)
		}
		for _, ev := range evs {
			if ev.Mail == nil || ev.Mail.Out || ev.Mail.Seq != ev.Seq {
				t.Errorf("event %+v", ev)
			}
		}
		if got := rec.types(ben.ID); !slices.Equal(got[len(got)-3:], eventTypes(evs)) {
			t.Errorf("published %v", got)
		}
		if got := mailIDs(t, e.db, ben, rob); !slices.Equal(got, []string{e1.ID, e6.ID}) {
			t.Errorf("ben's conversation with rob: %v", got)
		}
		if got := mailIDs(t, e.db, ann, rita); !slices.Equal(got, []string{e2.ID}) {
			t.Errorf("ann's conversation with rita: %v", got)
		}
		if c, _ := e.db.UnreadCounts(ben.ID); c.Direct != 4 || c.Unread != 4 {
			t.Errorf("ben's counters %+v", c)
		}
		checkMailboxes(t, e.db, ann, ben)
		// Refused entries stored nothing.
		for _, x := range []InboundEntry{e3, e4, e6, e7, e8} {
			if x.ID == e6.ID {
				continue
			}
			if _, err := e.db.envelope(mustID(t, x.ID)); !privateline.Is(privateline.NotExist, err) {
				t.Errorf("refused entry %s stored: %v", x.ID[:4], err)
			}
		}
		if r, _ := e.db.envelope(mustID(t, local)); r.remoteSender() || !bytes.Equal(r.Raw, rawOf(t, e.db, local)) {
			t.Error("the local message was touched")
		}
		for _, x := range []InboundEntry{e1, e2, e6} {
			if ok, err := seenEnvelope(t, e.db, other, x.ID); !ok || err != nil {
				t.Errorf("seen %s: %v %v", x.ID[:4], ok, err)
			}
		}
		for _, x := range []InboundEntry{e3, e4, e5} {
			if ok, _ := seenEnvelope(t, e.db, other, x.ID); ok {
				t.Errorf("refused %s recorded as seen", x.ID[:4])
			}
		}
		if ok, _ := seenEnvelope(t, e.db, third, e1.ID); ok {
			t.Error("seen for another origin")
		}
		if rs, ok, err := e.db.TransactionResults(other, "t1"); !ok || err != nil || !slices.Equal(statuses(rs), want) {
			t.Errorf("stored results %v %v %v", statuses(rs), ok, err)
		}
		if _, ok, _ := e.db.TransactionResults(third, "t1"); ok {
			t.Error("results for another origin")
		}

		// Replay: same txn → stored results, nothing written.
		before := fingerprint(t, e.db)
		res2, replayed, err := e.db.ReceiveTransaction(other, "t1", entries, now)
		if err != nil || !replayed || !slices.Equal(statuses(res2), want) {
			t.Fatalf("replay: %v %v %v", statuses(res2), replayed, err)
		}
		// Reused txn id with other entries.
		_, _, err = e.db.ReceiveTransaction(other, "t1", []InboundEntry{e1, e2}, now)
		if !errors.Is(err, ErrTxnReused) || !privateline.Is(privateline.Exist, err) || !strings.Contains(err.Error(), "txn_id_reused") {
			t.Errorf("reused txn id: %v", err)
		}
		if fingerprint(t, e.db) != before {
			t.Error("a replay or a reused txn id wrote something")
		}
		// The same entries under a new txn id: duplicates; a new one accepted.
		e9 := entry(rob, ann)
		res3, _, err := e.db.ReceiveTransaction(other, "t2", []InboundEntry{e1, e9, e9, e2}, now)
		if err != nil || !slices.Equal(statuses(res3), []string{"duplicate", "accepted", "duplicate", "duplicate"}) {
			t.Fatalf("second txn: %v %v", statuses(res3), err)
		}
		// (origin, id) known: duplicate, whatever the bytes (spec §13).
		changed := e1
		changed.Raw = append(slices.Clone(e1.Raw), ' ')
		if res, _, err := e.db.ReceiveTransaction(other, "t2b", []InboundEntry{changed}, now); err != nil || !slices.Equal(statuses(res), []string{"duplicate"}) {
			t.Fatalf("known id, other bytes: %v %v", statuses(res), err)
		}
		if got := mailIDs(t, e.db, ann, rob); !slices.Equal(got, []string{e9.ID}) {
			t.Errorf("ann's conversation with rob: %v", got)
		}
		// The same txn id from another origin is another transaction; the
		// ids known from other.example are not duplicates there, but their
		// messages exist: id_in_use.
		res4, replayed, err := e.db.ReceiveTransaction(third, "t1", []InboundEntry{entry(sue, ann), {ID: e1.ID, From: sue, Raw: e1.Raw, Recipients: e1.Recipients}}, now)
		if err != nil || replayed || !slices.Equal(statuses(res4), []string{"accepted", "refused:id_in_use"}) {
			t.Errorf("other origin: %v %v %v", statuses(res4), replayed, err)
		}
		checkMailboxes(t, e.db, ann, ben)

		// After the replay records went, the stored message still answers:
		// same origin and bytes → duplicate, other bytes → id_in_use; and
		// so does its tombstone once the last local copy is deleted.
		if _, err := e.db.SweepReplay(now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		res5, _, err := e.db.ReceiveTransaction(other, "t3", []InboundEntry{e1, changed}, now)
		if err != nil || !slices.Equal(statuses(res5), []string{"duplicate", "refused:id_in_use"}) {
			t.Errorf("against the stored message: %v %v", statuses(res5), err)
		}
		if err := e.db.DeleteMessage(ben.ID, e1.ID, now); err != nil {
			t.Fatal(err)
		}
		if _, err := e.db.envelope(mustID(t, e1.ID)); !privateline.Is(privateline.NotExist, err) {
			t.Errorf("a remote message nobody keeps stays: %v", err)
		}
		if _, err := e.db.SweepReplay(now.Add(2 * time.Hour)); err != nil {
			t.Fatal(err)
		}
		res6, _, err := e.db.ReceiveTransaction(other, "t4", []InboundEntry{e1, changed}, now)
		if err != nil || !slices.Equal(statuses(res6), []string{"duplicate", "refused:id_in_use"}) {
			t.Errorf("against the tombstone: %v %v", statuses(res6), err)
		}
		if got := mailIDs(t, e.db, ben, rob); !slices.Equal(got, []string{e6.ID}) {
			t.Errorf("a tombstoned message came back: %v", got)
		}
		// A local client cannot take the id of a remote message either.
		dl := &Delivery{MsgID: e6.ID, Sender: rcpt(ann), Recipients: []Recipient{rcpt(ben)}, Raw: e6.Raw}
		if _, _, err := e.db.Deliver(dl); !privateline.Is(privateline.Exist, err) {
			t.Errorf("local delivery under a remote message's id: %v", err)
		}
		// Bad arguments.
		if _, _, err := e.db.ReceiveTransaction(other, "", []InboundEntry{e9}, now); !privateline.Is(privateline.Invalid, err) {
			t.Errorf("no txn id: %v", err)
		}
	})
}

// zeroUserKeys lists keys of per-user tables under the zero user id: a
// remote sender treated as a user would leave some.
func zeroUserKeys(t *testing.T, d *DB) []string {
	t.Helper()
	var zero ID
	var found []string
	for _, tb := range []table{tMailbox, tMailboxByID, tConversation, tCounters, tParticipant, tEvent, tContact, tFileUsage} {
		if err := d.scanKeys(tb.key(zero[:]), func(k, _ []byte) error {
			found = append(found, tb.name)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	var ids []ID
	err := d.scanKeys([]byte{tContact.prefix}, func(k, _ []byte) error {
		if bytes.Equal(k[17:], zero[:]) {
			ids = append(ids, zero)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) > 0 {
		found = append(found, "contact of zero")
	}
	return found
}

// TestRemoteSenderMessages: a message from another server can be read,
// deleted, swept and deleted with a recipient's account, and nothing is
// ever written for its sender.
func TestRemoteSenderMessages(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		us := createUsers(t, e.db, "ann", "ben", "cat")
		ann, ben, cat := us[0], us[1], us[2]
		now := time.Now()
		e1 := entry(rob, ann, ben)
		e2 := entry(rob, ann)
		e2.ExpiresAt = now.Add(time.Minute)
		e3 := entry(rita, ben, cat)
		if res, _, err := e.db.ReceiveTransaction(other, "t1", []InboundEntry{e1, e2, e3}, now); err != nil || !slices.Equal(statuses(res), []string{"accepted", "accepted", "accepted"}) {
			t.Fatalf("receive %v %v", statuses(res), err)
		}
		// MarkRead: the reader hears of it; the remote sender has no log here.
		aSeq := lastSeq(t, e.db, ann)
		if err := e.db.MarkRead(ann.ID, e1.ID, now); err != nil {
			t.Fatal(err)
		}
		evs, err := e.db.EventsAfter(ann.ID, aSeq, 10, now)
		if err != nil || len(evs) != 1 || evs[0].Type != EventRead || evs[0].By != "ann@hs" {
			t.Errorf("read events %+v %v", evs, err)
		}
		if c, _ := e.db.UnreadCounts(ann.ID); c.Unread != 1 {
			t.Errorf("ann's unread %d, want 1", c.Unread)
		}
		// DeleteMessage by one recipient keeps the other's copy.
		if err := e.db.DeleteMessage(ann.ID, e1.ID, now); err != nil {
			t.Fatal(err)
		}
		if got := mailIDs(t, e.db, ben, rob); !slices.Equal(got, []string{e1.ID}) {
			t.Errorf("ben's copy: %v", got)
		}
		if got := mailIDs(t, e.db, ann, rob); !slices.Equal(got, []string{e2.ID}) {
			t.Errorf("ann's conversation with rob: %v", got)
		}
		// The last recipient deleting it removes the message.
		if err := e.db.DeleteMessage(ben.ID, e1.ID, now); err != nil {
			t.Fatal(err)
		}
		if _, err := e.db.envelope(mustID(t, e1.ID)); !privateline.Is(privateline.NotExist, err) {
			t.Errorf("message after its last copy went: %v", err)
		}
		// The expiry sweep.
		if n, err := e.db.SweepMessages(now.Add(2 * time.Minute)); err != nil || n != 1 {
			t.Errorf("sweep: %d %v", n, err)
		}
		evs, _ = e.db.EventsAfter(ann.ID, 0, 100, now)
		if last := evs[len(evs)-1]; last.Type != EventExpired || last.ID != e2.ID {
			t.Errorf("ann's last event %+v", last)
		}
		// A recipient's account deletion takes the message from every mailbox.
		if err := e.db.DeleteUser(ben.ID); err != nil {
			t.Fatal(err)
		}
		if got := mailIDs(t, e.db, cat, rita); len(got) != 0 {
			t.Errorf("cat still has %v", got)
		}
		if left := e.db.scanFor(t, ben.ID[:], []byte("ben@hs")); len(left) > 0 {
			t.Errorf("after account deletion: %v", left)
		}
		checkMailboxes(t, e.db, ann, cat)
		if z := zeroUserKeys(t, e.db); len(z) > 0 {
			t.Errorf("written for the remote sender: %v", z)
		}
		for _, u := range []*User{ann, cat} {
			if _, err := e.db.EventsAfter(u.ID, 0, 100, now); err != nil {
				t.Errorf("%s's events: %v", u.Username, err)
			}
		}
	})
}

// TestSweepReplay: replay records go after the retention, newer ones stay.
func TestSweepReplay(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ann := createUsers(t, e.db, "ann")[0]
		t0 := time.Unix(1_800_000_000, 0)
		e1, e2 := entry(rob, ann), entry(rob, ann)
		if _, _, err := e.db.ReceiveTransaction(other, "old", []InboundEntry{e1}, t0); err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.db.ReceiveTransaction(other, "new", []InboundEntry{e2}, t0.Add(8*24*time.Hour)); err != nil {
			t.Fatal(err)
		}
		n, err := e.db.SweepReplay(t0.Add(7 * 24 * time.Hour))
		if err != nil || n != 1 {
			t.Fatalf("sweep: %d %v", n, err)
		}
		if _, ok, _ := e.db.TransactionResults(other, "old"); ok {
			t.Error("old txn results kept")
		}
		if ok, _ := seenEnvelope(t, e.db, other, e1.ID); ok {
			t.Error("old envelope record kept")
		}
		if _, ok, _ := e.db.TransactionResults(other, "new"); !ok {
			t.Error("new txn results swept")
		}
		if ok, _ := seenEnvelope(t, e.db, other, e2.ID); !ok {
			t.Error("new envelope record swept")
		}
		if n, err := e.db.SweepReplay(t0.Add(7 * 24 * time.Hour)); err != nil || n != 0 {
			t.Errorf("second sweep: %d %v", n, err)
		}
		var left int
		e.db.scanKeys([]byte{tReplayByTime.prefix}, func(k, v []byte) error { left++; return nil })
		if left != 1 {
			t.Errorf("%d index entries, want 1", left)
		}
	})
}

func TestPeerPins(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		if k, err := e.db.PeerPin(other); k != nil || err != nil {
			t.Fatalf("no pin: %v %v", k, err)
		}
		if err := e.db.SetPeerPin(other, pub); err != nil {
			t.Fatal(err)
		}
		if err := e.db.SetPeerPin(third, pub[:31]); !privateline.Is(privateline.Invalid, err) {
			t.Errorf("short key: %v", err)
		}
		e.reopen()
		if k, err := e.db.PeerPin(other); err != nil || !k.Equal(pub) {
			t.Errorf("after reopen: %x %v", k, err)
		}
		if k, _ := e.db.PeerPin(third); k != nil {
			t.Errorf("third has %x", k)
		}
		// The peer's last verified directory head, kept apart from the pin.
		if h, err := e.db.PeerDirectoryHead(other); h != nil || err != nil {
			t.Fatalf("no head: %q %v", h, err)
		}
		if err := e.db.SetPeerDirectoryHead(other, []byte(`{"tree_size":3}`)); err != nil {
			t.Fatal(err)
		}
		e.reopen()
		if h, err := e.db.PeerDirectoryHead(other); err != nil || string(h) != `{"tree_size":3}` {
			t.Errorf("head after reopen: %q %v", h, err)
		}
		if h, _ := e.db.PeerDirectoryHead(third); h != nil {
			t.Errorf("third has a head %q", h)
		}
		if k, err := e.db.PeerPin(other); err != nil || !k.Equal(pub) {
			t.Errorf("the head changed the pin: %x %v", k, err)
		}
		// The last verified answer for a remote user.
		const bob = privateline.Address("bob@" + string(other))
		if l, err := e.db.RemoteLookup(bob); l != nil || err != nil {
			t.Fatalf("no lookup: %q %v", l, err)
		}
		if err := e.db.SetRemoteLookup(bob, []byte(`{"address":"bob"}`)); err != nil {
			t.Fatal(err)
		}
		e.reopen()
		if l, err := e.db.RemoteLookup(bob); err != nil || string(l) != `{"address":"bob"}` {
			t.Errorf("lookup after reopen: %q %v", l, err)
		}
		if l, _ := e.db.RemoteLookup(privateline.Address("carol@" + string(other))); l != nil {
			t.Errorf("carol has %q", l)
		}
		if err := e.db.DeleteRemoteLookup(bob); err != nil {
			t.Fatal(err)
		}
		if l, err := e.db.RemoteLookup(bob); l != nil || err != nil {
			t.Errorf("after delete: %q %v", l, err)
		}
		e.db.scanKeys(nil, func(k, _ []byte) error {
			if bytes.Contains(k, []byte(other)) {
				t.Errorf("server name in key %q", k)
			}
			return nil
		})
	})
}

// TestFederationDurability crashes the store (keeping only what was
// synced) right after each call returned: what ReceiveTransaction
// answered, the outbox items Deliver queued, the pending transaction, a
// settled receipt and a pin are each there.
func TestFederationDurability(t *testing.T) {
	fs := vfs.NewCrashableMem()
	key := testKey()
	db, err := Open(Options{Dir: "db", Key: key, fs: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// crashed opens a copy of the store as a crash now would leave it.
	crashed := func() *DB {
		t.Helper()
		d, err := Open(Options{Dir: "db", Key: key, fs: fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	us := createUsers(t, db, "ann", "ben")
	ann, ben := us[0], us[1]
	now := time.Now()
	var entries []InboundEntry
	for range 20 {
		entries = append(entries, entry(rob, ann, ben))
	}
	res, _, err := db.ReceiveTransaction(other, "t1", entries, now)
	if err != nil {
		t.Fatal(err)
	}
	db2 := crashed()
	got, ok, err := db2.TransactionResults(other, "t1")
	if err != nil || !ok || !slices.Equal(statuses(got), statuses(res)) {
		t.Fatalf("results after the crash: %v %v %v", statuses(got), ok, err)
	}
	for _, u := range []*User{ann, ben} {
		if items := mailIDs(t, db2, u, rob); len(items) != 20 {
			t.Errorf("%s has %d of the 20 entries after the crash", u.Username, len(items))
		}
	}
	checkMailboxes(t, db2, ann, ben)

	m1 := sendRemote(t, db, ann, nil, []privateline.Address{rob}, time.Time{})
	if d, _ := crashed().OutboxDepth(); d[other] != 1 {
		t.Errorf("queued item after the crash: depth %d", d[other])
	}
	var c ids
	txn1, err := db.OutboxNext(other, 10, 1<<20, c.next)
	if err != nil {
		t.Fatal(err)
	}
	again, err := crashed().OutboxNext(other, 10, 1<<20, c.next)
	if err != nil || again.TxnID != txn1.TxnID || !slices.Equal(itemIDs(again), []string{m1}) {
		t.Errorf("pending txn after the crash: %+v %v", again, err)
	}
	if err := db.OutboxDone(other, txn1.TxnID, []OutboxResult{{ID: m1, Delivered: true}}); err != nil {
		t.Fatal(err)
	}
	db3 := crashed()
	if none, err := db3.OutboxNext(other, 10, 1<<20, c.next); none != nil || err != nil {
		t.Errorf("settled txn came back: %+v %v", none, err)
	}
	if evs := fedEvents(t, db3, ann, 0); len(evs) != 1 || evs[0].ID != m1 {
		t.Errorf("delivered event after the crash: %+v", evs)
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	if err := db.SetPeerPin(other, pub); err != nil {
		t.Fatal(err)
	}
	if k, err := crashed().PeerPin(other); err != nil || !k.Equal(pub) {
		t.Errorf("pin after the crash: %v", err)
	}
}

// TestOutboxConcurrentDeliveries: concurrent deliveries to the same
// destinations give every item its own sequence number, and the depth
// counts them all.
func TestOutboxConcurrentDeliveries(t *testing.T) {
	db, err := Open(Options{InMemory: true, Key: testKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	us := createUsers(t, db, "u0", "u1", "u2", "u3")
	var wg sync.WaitGroup
	const per = 40
	for _, u := range us {
		wg.Go(func() {
			for range per {
				sendRemote(t, db, u, nil, []privateline.Address{rob, sue}, time.Time{})
			}
		})
	}
	wg.Wait()
	depth, err := db.OutboxDepth()
	if err != nil {
		t.Fatal(err)
	}
	if depth[other] != 4*per || depth[third] != 4*per {
		t.Errorf("depth %v, want %d each", depth, 4*per)
	}
	var c ids
	seen := map[string]bool{}
	for {
		txn, err := db.OutboxNext(other, 256, 1<<22, c.next)
		if err != nil {
			t.Fatal(err)
		}
		if txn == nil {
			break
		}
		var rs []OutboxResult
		for _, it := range txn.Items {
			seen[it.ID] = true
			rs = append(rs, OutboxResult{ID: it.ID, Delivered: true})
		}
		if err := db.OutboxDone(other, txn.TxnID, rs); err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != 4*per {
		t.Errorf("%d distinct items delivered, want %d", len(seen), 4*per)
	}
}

// BenchmarkReceiveTransaction commits transactions of 256 entries, each
// for one of 64 local users, on disk.
func BenchmarkReceiveTransaction(b *testing.B) {
	db, users := benchStore(b, 64)
	pad := strings.Repeat("x", 1000)
	b.ResetTimer()
	for i := range b.N {
		entries := make([]InboundEntry, 256)
		for j := range entries {
			e := entry(rob, users[j%len(users)])
			e.Raw = append(e.Raw, pad...)
			entries[j] = e
		}
		if _, _, err := db.ReceiveTransaction(other, fmt.Sprint("txn", i), entries, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*256)/b.Elapsed().Seconds(), "envelopes/s")
}

// BenchmarkDeliverLocal delivers local-only direct messages on disk from
// parallel senders (the path Deliver had before federation).
func BenchmarkDeliverLocal(b *testing.B) {
	db, users := benchStore(b, 16)
	raw := []byte(strings.Repeat("x", 1000))
	var n sync.Mutex
	next := 0
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		n.Lock()
		w := next
		next++
		n.Unlock()
		for i := 0; pb.Next(); i++ {
			from, to := users[w%16], users[(w+i+1)%16]
			if from == to {
				to = users[(w+1)%16]
			}
			dl := &Delivery{MsgID: newMsgID(), Sender: rcpt(from), Recipients: []Recipient{rcpt(to)}, Raw: raw}
			if _, _, err := db.Deliver(dl); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// TestFederationConcurrency runs deliveries with remote recipients,
// inbound transactions, a sender loop settling and expiring transactions
// and deletions at once: nothing deadlocks, the mailboxes' invariants
// hold and each destination's depth is the number of items queued.
func TestFederationConcurrency(t *testing.T) {
	db, err := Open(Options{InMemory: true, Key: testKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	us := createUsers(t, db, "ann", "ben", "cat", "dan")
	const rounds = 60
	var wg sync.WaitGroup
	for i, u := range us {
		wg.Go(func() {
			for j := range rounds {
				id := sendRemote(t, db, u, []*User{us[(i+1)%4]}, []privateline.Address{rob, sue}, time.Time{})
				if j%5 == 0 {
					if err := db.DeleteMessage(u.ID, id, time.Now()); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Go(func() {
		for j := range rounds / 2 {
			var es []InboundEntry
			for k := range 8 {
				es = append(es, entry(rob, us[k%4], us[(k+j)%4]))
			}
			res, _, err := db.ReceiveTransaction(other, fmt.Sprint("in", j), es, time.Now())
			if err != nil {
				t.Error(err)
				return
			}
			for _, r := range res {
				if r.Status != InboundAccepted {
					t.Errorf("entry %s: %s %s", r.ID, r.Status, r.Error)
				}
			}
			if err := db.MarkRead(us[0].ID, es[0].ID, time.Now()); err != nil {
				t.Error(err)
			}
		}
	})
	for _, dest := range []privateline.ServerName{other, third} {
		wg.Go(func() {
			var c ids
			for j := range rounds * 2 {
				txn, err := db.OutboxNext(dest, 16, 1<<20, c.next)
				if err != nil {
					t.Error(err)
					return
				}
				if txn != nil {
					var rs []OutboxResult
					for _, it := range txn.Items {
						rs = append(rs, OutboxResult{ID: it.ID, Delivered: true})
					}
					if err := db.OutboxDone(dest, txn.TxnID, rs); err != nil {
						t.Error(err)
					}
				}
				if j%7 == 3 { // times out what is queued, with events
					if _, err := db.OutboxExpire(dest, time.Now()); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	checkMailboxes(t, db, us...)
	for _, dest := range []privateline.ServerName{other, third} {
		n := 0
		db.scanKeys(tOutbox.key(db.serverHash(dest)), func(k, v []byte) error { n++; return nil })
		if d, _ := db.OutboxDepth(); d[dest] != n {
			t.Errorf("%s: depth %d, %d items queued", dest, d[dest], n)
		}
	}
}

// TestReadMarksAndDeletesAcrossServers: a local reader of a remote
// sender's message and a local sender deleting for everyone queue
// read_marks and deletes items for the other servers; the other way round,
// received read marks reach the local sender's log with the remote reader,
// and received deletes remove the local copies — each only from the
// origin that may send it, once.
func TestReadMarksAndDeletesAcrossServers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		us := createUsers(t, e.db, "ann", "ben")
		ann, ben := us[0], us[1]
		now := time.Now()
		var c ids

		// ben reads rob's message: a read mark for other.example.
		in := entry(rob, ben)
		if _, _, err := e.db.ReceiveTransaction(other, "in1", []InboundEntry{in}, now); err != nil {
			t.Fatal(err)
		}
		if err := e.db.MarkRead(ben.ID, in.ID, now); err != nil {
			t.Fatal(err)
		}
		txn, err := e.db.OutboxNext(other, 10, 1<<20, c.next)
		if err != nil || txn == nil || txn.Type != OutboxReadMarks || len(txn.Items) != 1 {
			t.Fatalf("outbox after the read: %+v %v", txn, err)
		}
		var mark ReadMarkPayload
		if err := json.Unmarshal(txn.Items[0].Payload, &mark); err != nil || mark.Message != in.ID || mark.Reader != rcpt(ben).Address || mark.ReadAt != now.UnixMilli() {
			t.Fatalf("read mark payload %s (%v)", txn.Items[0].Payload, err)
		}
		if err := e.db.OutboxDone(other, txn.TxnID, []OutboxResult{{ID: txn.Items[0].ID, Delivered: true}}); err != nil {
			t.Fatal(err)
		}
		if len(fedEvents(t, e.db, ben, 0)) != 0 {
			t.Fatal("a delivered read mark made a delivered event")
		}
		// Marking again queues nothing.
		if err := e.db.MarkRead(ben.ID, in.ID, now); err != nil {
			t.Fatal(err)
		}
		if txn, _ := e.db.OutboxNext(other, 10, 1<<20, c.next); txn != nil {
			t.Fatalf("a second read queued %+v", txn)
		}

		// ann's message to rob, rita and sue: read marks come back.
		out := sendRemote(t, e.db, ann, nil, []privateline.Address{rob, rita, sue}, time.Time{})
		seq := lastSeq(t, e.db, ann)
		rm := func(reader privateline.Address, msg string) InboundEntry {
			return InboundEntry{Kind: OutboxReadMarks, ID: newMsgID(), Message: msg, Reader: reader, At: now}
		}
		robMark := rm(rob, out)
		marks := []InboundEntry{robMark, rm(rita, out), rm(sue, out), rm(rob, newMsgID()), rm("bob@other.example", out), rm(rob, in.ID), robMark}
		res, _, err := e.db.ReceiveTransaction(other, "marks", marks, now)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"accepted", "accepted", "refused:wrong_origin", "accepted", "refused:not_for_destination", "refused:not_for_destination", "duplicate"}
		if !slices.Equal(statuses(res), want) {
			t.Fatalf("read mark results %v, want %v", statuses(res), want)
		}
		evs, err := e.db.EventsAfter(ann.ID, seq, 100, now)
		if err != nil {
			t.Fatal(err)
		}
		var by []privateline.Address
		for _, ev := range evs {
			if ev.Type == EventRead && ev.ID == out {
				by = append(by, ev.By)
			}
		}
		if !slices.Equal(by, []privateline.Address{rob, rita}) {
			t.Fatalf("ann's read events name %v", by)
		}
		if r, err := e.db.envelope(mustID(t, out)); err != nil || !slices.Equal(r.ReadBy, []privateline.Address{rob, rita}) {
			t.Fatalf("record read by %v (%v)", r.ReadBy, err)
		}
		items, _ := e.db.Mailbox(ann.ID, MailQuery{With: rob, Limit: 10, Now: now})
		if len(items) != 1 || !slices.Equal(items[0].ReadBy, []privateline.Address{rob, rita}) {
			t.Fatalf("ann's copy read by %+v", items)
		}
		// The same mark id again (a new transaction after a lost receipt): duplicate.
		if res, _, _ := e.db.ReceiveTransaction(other, "marks2", []InboundEntry{robMark}, now); !slices.Equal(statuses(res), []string{"duplicate"}) {
			t.Fatalf("replayed mark: %v", statuses(res))
		}

		// ann deletes her message for everyone: a delete for each server
		// it went to; one it never left for (a new message) needs none.
		for _, srv := range []privateline.ServerName{other, third} {
			txn, err := e.db.OutboxNext(srv, 10, 1<<20, c.next)
			if err != nil || txn == nil || !slices.Contains(itemIDs(txn), out) {
				t.Fatalf("%s's outbox before the delete: %+v %v", srv, txn, err)
			}
			var rs []OutboxResult
			for _, it := range txn.Items {
				rs = append(rs, OutboxResult{ID: it.ID, Delivered: true})
			}
			if err := e.db.OutboxDone(srv, txn.TxnID, rs); err != nil {
				t.Fatal(err)
			}
		}
		unsent := sendRemote(t, e.db, ann, nil, []privateline.Address{sue}, time.Time{})
		if err := e.db.DeleteMessage(ann.ID, unsent, now); err != nil {
			t.Fatal(err)
		}
		if d, _ := e.db.OutboxDepth(); d[third] != 1 {
			t.Fatalf("third's depth %d after deleting a message never sent there, want 1 (its dropped item)", d[third])
		}
		if txn, _ := e.db.OutboxNext(third, 10, 1<<20, c.next); txn != nil {
			t.Fatalf("a delete of a message never sent: %+v", txn)
		}
		if err := e.db.DeleteMessage(ann.ID, out, now); err != nil {
			t.Fatal(err)
		}
		for _, srv := range []privateline.ServerName{other, third} {
			txn, err := e.db.OutboxNext(srv, 10, 1<<20, c.next)
			if err != nil || txn == nil {
				t.Fatalf("%s's outbox: %+v %v", srv, txn, err)
			}
			last := txn.Items[0]
			var del DeletePayload
			if txn.Type != OutboxDeletes || len(txn.Items) != 1 || json.Unmarshal(last.Payload, &del) != nil || del.Message != out || del.From != rcpt(ann).Address {
				t.Fatalf("%s's outbox %+v, payload %s", srv, txn, last.Payload)
			}
		}

		// rob deletes his message: ben's copy goes; nobody else may delete it.
		in2 := entry(rob, ben)
		if _, _, err := e.db.ReceiveTransaction(other, "in2", []InboundEntry{in2}, now); err != nil {
			t.Fatal(err)
		}
		del := func(from privateline.Address, msg string) InboundEntry {
			return InboundEntry{Kind: OutboxDeletes, ID: newMsgID(), Message: msg, From: from, At: now}
		}
		mine := local(t, e.db, ann, ben)
		bSeq := lastSeq(t, e.db, ben)
		res, _, err = e.db.ReceiveTransaction(other, "dels", []InboundEntry{del(rita, in2.ID), del(rob, mine), del(rob, in2.ID), del(rob, in2.ID)}, now)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"refused:wrong_origin", "refused:wrong_origin", "accepted", "accepted"}; !slices.Equal(statuses(res), want) {
			t.Fatalf("delete results %v, want %v", statuses(res), want)
		}
		if ids := mailIDs(t, e.db, ben, rob); slices.Contains(ids, in2.ID) {
			t.Fatalf("ben still has the deleted message: %v", ids)
		}
		evs, _ = e.db.EventsAfter(ben.ID, bSeq, 100, now)
		if len(evs) != 1 || evs[0].Type != EventDeleted || evs[0].ID != in2.ID {
			t.Fatalf("ben's events after the delete: %+v", evs)
		}
		// The deleted id cannot come back.
		if res, _, _ := e.db.ReceiveTransaction(other, "again", []InboundEntry{in2}, now); res[0].Status == InboundAccepted {
			t.Fatalf("the deleted message was accepted again: %v", statuses(res))
		}
	})
}

// local sends a message between two local users and returns its id.
func local(t *testing.T, d *DB, from, to *User) string {
	t.Helper()
	return sendRemote(t, d, from, []*User{to}, nil, time.Time{})
}

// TestRemoteContacts: direct messages with users of other servers, both
// ways, make them contacts; their key change reaches exactly those local
// users, naming the address; account deletion leaves no entry.
func TestRemoteContacts(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		us := createUsers(t, e.db, "ann", "ben", "cat")
		ann, ben, cat := us[0], us[1], us[2]
		now := time.Now()
		sendRemote(t, e.db, ann, nil, []privateline.Address{rob}, time.Time{})
		sendRemote(t, e.db, ann, nil, []privateline.Address{rob}, time.Time{}) // once is enough
		if _, _, err := e.db.ReceiveTransaction(other, "t", []InboundEntry{entry(rob, ben), entry(rita, cat)}, now); err != nil {
			t.Fatal(err)
		}
		seqs := map[ID]uint64{ann.ID: lastSeq(t, e.db, ann), ben.ID: lastSeq(t, e.db, ben), cat.ID: lastSeq(t, e.db, cat)}
		n, err := e.db.RemoteKeyChanged(rob)
		if err != nil || n != 2 {
			t.Fatalf("RemoteKeyChanged(rob) = %d, %v; want ann and ben", n, err)
		}
		for _, u := range us {
			evs, err := e.db.EventsAfter(u.ID, seqs[u.ID], 10, now)
			if err != nil {
				t.Fatal(err)
			}
			want := u != cat
			if got := len(evs) == 1 && evs[0].Type == EventKeyChanged && evs[0].Remote == rob; got != want || (!want && len(evs) != 0) {
				t.Errorf("%s's events %+v", u.Username, evs)
			}
		}
		if n, err := e.db.RemoteKeyChanged(sue); err != nil || n != 0 {
			t.Fatalf("a stranger's key change told %d (%v)", n, err)
		}
		// Account deletion removes both directions.
		if err := e.db.DeleteUser(ann.ID); err != nil {
			t.Fatal(err)
		}
		if n, _ := e.db.RemoteKeyChanged(rob); n != 1 {
			t.Fatalf("after ann's deletion, %d contacts of rob", n)
		}
		e.db.scanKeys(nil, func(k, _ []byte) error {
			if (k[0] == tRemoteContact.prefix || k[0] == tRemoteContactByUser.prefix) && bytes.Contains(k, ann.ID[:]) {
				t.Errorf("a remote contact entry of the deleted account: %x", k)
			}
			return nil
		})
	})
}

// BenchmarkOutboxCycle: the sending side's store work for one full
// transaction, on disk: OutboxNext takes 256 queued envelopes of 3.5 KB
// (the size of a 1 KiB pl1 message to one recipient) and records the
// pending transaction, OutboxDone settles the receipt with a delivered
// event per sender. Queueing (Deliver) is not timed.
func BenchmarkOutboxCycle(b *testing.B) {
	db, users := benchStore(b, 16)
	raw := []byte(strings.Repeat("x", 3510))
	seq := 0
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		for range 256 {
			seq++
			u := users[seq%len(users)]
			if _, _, err := db.Deliver(&Delivery{MsgID: fmt.Sprintf("%032x", seq), Raw: raw,
				Sender: Recipient{ID: u.ID, Address: privateline.MakeAddress(u.Username, "here.example")}, Remote: []privateline.Address{rob}}); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		txn, err := db.OutboxNext(other, 256, 3<<20, func() string { return fmt.Sprintf("%032x", seq) })
		if err != nil || txn == nil || len(txn.Items) != 256 {
			b.Fatalf("OutboxNext: %v, %v", txn, err)
		}
		results := make([]OutboxResult, len(txn.Items))
		for i, it := range txn.Items {
			results[i] = OutboxResult{ID: it.ID, Delivered: true}
		}
		if err := db.OutboxDone(other, txn.TxnID, results); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*256)/b.Elapsed().Seconds(), "entries/s")
}

// TestOutboxDoneOldPendingRecord: a pending transaction recorded before
// pending records named their items' ids and senders is settled by
// reading the items, with the same events.
func TestOutboxDoneOldPendingRecord(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		us := createUsers(t, e.db, "ann", "ben")
		ann, ben := us[0], us[1]
		m1 := sendRemote(t, e.db, ann, nil, []privateline.Address{rob}, time.Time{})
		m2 := sendRemote(t, e.db, ben, nil, []privateline.Address{rita}, time.Time{})
		aSeq, bSeq := lastSeq(t, e.db, ann), lastSeq(t, e.db, ben)
		var c ids
		txn, err := e.db.OutboxNext(other, 10, 1<<20, c.next)
		if err != nil || len(txn.Items) != 2 {
			t.Fatalf("OutboxNext: %+v, %v", txn, err)
		}
		h := e.db.serverHash(other)
		p, err := e.db.pendingTxn(h)
		if err != nil || len(p.IDs) != 2 || len(p.Senders) != 2*len(ID{}) {
			t.Fatalf("pending record %+v, %v: want ids and senders", p, err)
		}
		p.IDs, p.Senders = nil, nil
		b := e.db.db.NewBatch()
		if err := e.db.setJSON(b, pendingKey(h), p); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(pebble.Sync); err != nil {
			t.Fatal(err)
		}
		if err := e.db.OutboxDone(other, txn.TxnID, []OutboxResult{{ID: m1, Delivered: true}, {ID: m2, Error: "unknown_recipient"}}); err != nil {
			t.Fatal(err)
		}
		if got := fedEvents(t, e.db, ann, aSeq); len(got) != 1 || got[0].Type != EventDelivered || got[0].ID != m1 {
			t.Errorf("ann's events: %+v", got)
		}
		if got := fedEvents(t, e.db, ben, bSeq); len(got) != 1 || got[0].Type != EventDeliveryFailed || got[0].ID != m2 || got[0].Error != "unknown_recipient" {
			t.Errorf("ben's events: %+v", got)
		}
		if d, _ := e.db.OutboxDepth(); d[other] != 0 {
			t.Errorf("depth %d, want 0", d[other])
		}
	})
}

// benchStore opens an on-disk store for a benchmark, closed when it ends,
// with n users.
func benchStore(b *testing.B, n int) (*DB, []*User) {
	db, err := Open(Options{Dir: b.TempDir(), Key: testKey()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	var users []*User
	for i := range n {
		u := newUser(fmt.Sprint("user", i))
		if err := db.CreateUser(u); err != nil {
			b.Fatal(err)
		}
		users = append(users, u)
	}
	return db, users
}

// TestAccountDeletionDeletesAcrossServers: deleting an account queues, in
// its batch, a delete for every message the user sent to users of other
// servers that left for them (spec/federation.md §12.3, account
// deletion) — several for one server, each once; none for a message that
// never left or for messages the user received from another server.
func TestAccountDeletionDeletesAcrossServers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		us := createUsers(t, e.db, "ann", "ben")
		ann, ben := us[0], us[1]
		now := time.Now()
		var c ids
		sent := []string{
			sendRemote(t, e.db, ann, nil, []privateline.Address{rob}, time.Time{}),
			sendRemote(t, e.db, ann, []*User{ben}, []privateline.Address{rob, sue}, time.Time{}),
			sendRemote(t, e.db, ann, nil, []privateline.Address{rita}, now.Add(time.Hour)),
		}
		for _, srv := range []privateline.ServerName{other, third} {
			txn, err := e.db.OutboxNext(srv, 10, 1<<20, c.next)
			if err != nil || txn == nil {
				t.Fatalf("%s's outbox: %+v %v", srv, txn, err)
			}
			var rs []OutboxResult
			for _, it := range txn.Items {
				rs = append(rs, OutboxResult{ID: it.ID, Delivered: true})
			}
			if err := e.db.OutboxDone(srv, txn.TxnID, rs); err != nil {
				t.Fatal(err)
			}
		}
		unsent := sendRemote(t, e.db, ann, nil, []privateline.Address{rob}, time.Time{})
		in := entry(rob, ann)
		if _, _, err := e.db.ReceiveTransaction(other, "in1", []InboundEntry{in}, now); err != nil {
			t.Fatal(err)
		}
		if err := e.db.DeleteUser(ann.ID); err != nil {
			t.Fatal(err)
		}
		deleted := func(srv privateline.ServerName) []string {
			t.Helper()
			txn, err := e.db.OutboxNext(srv, 10, 1<<20, c.next)
			if err != nil {
				t.Fatal(err)
			}
			if txn == nil {
				return nil
			}
			var out []string
			for _, it := range txn.Items {
				var p DeletePayload
				if txn.Type != OutboxDeletes || json.Unmarshal(it.Payload, &p) != nil || p.From != rcpt(ann).Address {
					t.Fatalf("%s's outbox after the deletion: %+v, payload %s", srv, txn, it.Payload)
				}
				out = append(out, p.Message)
			}
			slices.Sort(out)
			return out
		}
		if got, want := deleted(other), slices.Sorted(slices.Values(sent)); !slices.Equal(got, want) {
			t.Fatalf("deletes for %s: %v, want %v (not the unsent %s nor rob's %s)", other, got, want, unsent, in.ID)
		}
		if got, want := deleted(third), sent[1:2]; !slices.Equal(got, want) {
			t.Fatalf("deletes for %s: %v, want %v", third, got, want)
		}
		if ids := mailIDs(t, e.db, ben, rcpt(ann).Address); len(ids) != 0 {
			t.Fatalf("ben keeps ann's messages: %v", ids)
		}
	})
}

// TestOutboxFloor: walks of a destination's outbox start at the first item
// an earlier walk met (no stepping over the deletion marks of settled
// items again), and nothing queued later — while a transaction is pending,
// after the outbox ran empty, after a restart — is missed or reordered.
func TestOutboxFloor(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ann := createUsers(t, e.db, "ann")[0]
		var c ids
		send := func() string { return sendRemote(t, e.db, ann, nil, []privateline.Address{rob}, time.Time{}) }
		deliver := func(want ...string) {
			t.Helper()
			txn, err := e.db.OutboxNext(other, 2, 1<<20, c.next)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(itemIDs(txn), want) {
				t.Fatalf("transaction %v, want %v", itemIDs(txn), want)
			}
			if txn != nil {
				settleAll(t, e.db, other, txn, nil)
			}
		}
		h := e.db.serverHash(other)
		m1, m2, m3 := send(), send(), send()
		deliver(m1, m2)
		m4 := send()
		deliver(m3, m4)
		// The walk that found m3 (sequence 3) starts there now.
		if got, want := e.db.outboxLower(h), tOutbox.key(h, u64(3)); !bytes.Equal(got, want) {
			t.Fatalf("walks start at %x, want %x (sequence 3)", got, want)
		}
		deliver() // empty
		m5, m6, m7 := send(), send(), send()
		deliver(m5, m6)
		e.reopen() // the floor is in memory: a reopened store walks from the start
		h = e.db.serverHash(other)
		if got := e.db.outboxLower(h); !bytes.Equal(got, tOutbox.key(h)) {
			t.Fatalf("reopened store walks from %x", got)
		}
		m8 := send()
		deliver(m7, m8)
		deliver()
		if d, _ := e.db.OutboxDepth(); d[other] != 0 {
			t.Errorf("depth %d after everything was settled", d[other])
		}
	})
}
