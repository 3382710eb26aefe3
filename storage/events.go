package storage

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/privateline/privateline"
)

// Event log.
//
// Every change a user's clients must hear about is an event with the
// user's next sequence number, written in the same synced batch as the
// change itself:
//
//	'V' userID(16) seq(8)   event (type, message id, …)
//
// A user's sequence numbers are shared by the mailbox ('M') and the event
// log: a message's mailbox entry and its "message" event have the same
// number, and every number given out has exactly one event. So a client
// that remembers the last number it saw resumes with EventsAfter and gets
// everything it missed, in order, without a gap or a duplicate.
//
// The log keeps the newest EventWindow events per user (each write deletes
// the one that falls out of the window); a client further behind is told to
// resynchronise (ErrEventsGone) and pages the mailbox instead, which keeps
// messages for as long as they live.
//
// Once a batch with events is durable, the notifier (SetNotifier) is
// called with them in apply order under the pipeline's publishing lock
// (commit.go), so it sees each user's events in sequence order. It must
// not block or call back into the store.

// EventWindow is how many of a user's newest events the log keeps.
const EventWindow = 10_000

// Event types.
const (
	EventMessage      = "message"       // a direct message arrived or was sent
	EventGroupMessage = "group_message" // a group message arrived or was sent
	EventRead         = "read"          // a recipient read a message
	EventDeleted      = "deleted"       // a message was deleted
	EventExpired      = "expired"       // a message expired
	EventKeyChanged   = "key_changed"   // a contact's key changed
	EventGroupChanged = "group_changed" // a group's members, roles or epoch changed

	// Federation (outbox.go): a message's outbox entry for one destination
	// server was answered accepted or duplicate in a verified receipt …
	EventDelivered = "delivered"
	// … or was refused in a receipt (Error: the entry refusal code) or not
	// delivered within the delivery timeout (Error "timeout", Detail: the
	// destination's last error).
	EventDeliveryFailed = "delivery_failed"
	// … or is still queued after a delivery attempt to the destination
	// failed without a refusal (it could not be reached or was
	// unavailable): the message waits for Server (OutboxWaiting). A
	// later delivered or delivery_failed event for the same id ends it.
	EventDeliveryWaiting = "delivery_waiting"
)

// Event is one entry of a user's event log.
//
// Stored events name no address, so none outlives its account: a read
// event stores the reader's place among the envelope's recipients and a
// key_changed event the user's id; the address is filled in when the event
// is published or read back, and an event whose message or user has gone is
// left out then.
type Event struct {
	Seq   uint64 `json:"seq"`
	Type  string `json:"type"`
	ID    string `json:"id,omitempty"`    // message id
	Group string `json:"group,omitempty"` // group id

	Reader  int `json:"reader,omitempty"`  // read: 1 + the reader's index in the recipients, local then remote
	Subject *ID `json:"subject,omitempty"` // key_changed: whose key (a local user)
	// Remote is, for key_changed, the user of another server whose key
	// changed (instead of Subject): the user's own contact's address.
	Remote privateline.Address `json:"remote,omitempty"`

	Server privateline.ServerName `json:"server,omitempty"` // delivered, delivery_failed, delivery_waiting: the destination
	Error  string                 `json:"error,omitempty"`  // delivery_failed: refusal code or "timeout"
	Detail string                 `json:"detail,omitempty"` // delivery_failed: the last error (≤ 512 bytes)

	// Filled when the event is published or read back, never stored:
	By   privateline.Address  `json:"-"` // read: the reader
	Name privateline.Username `json:"-"` // key_changed: the local user whose key changed
	Mail *MailItem            `json:"-"` // message events: the mailbox item
}

// UserEvent is an event and the user whose log it is in.
type UserEvent struct {
	User ID
	Event
}

// ErrEventsGone is returned by EventsAfter when events after the given
// number have left the log.
var ErrEventsGone = errors.New("storage: events after this sequence number are no longer kept; resynchronise")

// SetNotifier sets the function called with the events of every committed
// batch (see the event log notes above). Call it before serving.
func (d *DB) SetNotifier(fn func([]UserEvent)) { d.notify = fn }

// event gives ev user u's next sequence number, writes it to the log and
// queues it for the notifier; it returns the number.
func (t *mtxn) event(u ID, ev Event) (uint64, error) {
	if u == t.gone {
		return 0, nil
	}
	c, err := t.counter(u)
	if err != nil {
		return 0, err
	}
	c.Next++
	ev.Seq = c.Next
	if ev.Mail != nil {
		ev.Mail.Seq = ev.Seq
	}
	if err := t.d.setJSON(t.b, tEvent.key(u[:], u64(ev.Seq)), ev); err != nil {
		return 0, err
	}
	if w := uint64(t.d.eventWindow); ev.Seq > w {
		t.del(tEvent.key(u[:], u64(ev.Seq-w)))
	}
	t.events = append(t.events, UserEvent{User: u, Event: ev})
	return ev.Seq, nil
}

// commit writes the counters and commits the batch through the pipeline
// (commit.go): it releases t.release (the stripes, if the caller set it)
// once the batch is applied, and returns once it is durable and its events
// are published. On error the batch is closed.
func (t *mtxn) commit() error {
	if err := t.flush(); err != nil {
		t.b.Close()
		return err
	}
	release := t.release
	if len(t.groupDests) > 0 {
		release = func() {
			t.unlockGroupDests()
			if t.release != nil {
				t.release()
			}
		}
	}
	end := t.d.removing(t.removes)
	err := t.d.commitEvents(t.b, t.events, release)
	end()
	t.unlockGroupDests()
	if err != nil {
		return err
	}
	t.filesCommitted()
	t.d.outboxQueued(t.groupDests)
	return nil
}

// EventsAfter returns up to limit of the user's events with sequence
// numbers greater than after, in order. A message event whose message has
// since gone (deleted, expired at now) is left out — its event is removed
// with the copy, or skipped until the sweeper comes — so numbers may skip;
// the event that says it went follows. If the log no longer holds every
// event after `after`, it returns ErrEventsGone.
func (d *DB) EventsAfter(user ID, after uint64, limit int, now time.Time) ([]Event, error) {
	const op = "storage.EventsAfter"
	prefix := tEvent.key(user[:])
	it, err := d.db.NewIter(&pebble.IterOptions{
		LowerBound: append(tEvent.key(user[:]), u64(after+1)...),
		UpperBound: prefixEnd(prefix),
	})
	if err != nil {
		return nil, privateline.E(op, privateline.Unavailable, err)
	}
	defer it.Close()
	// The iterator reads a snapshot; counters read after it was made bound
	// what the window may have pruned from that snapshot.
	c, err := d.UnreadCounts(user)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	if w := uint64(d.eventWindow); c.Next > w && after < c.Next-w {
		return nil, ErrEventsGone
	}
	var evs []Event
	for valid := it.First(); valid && len(evs) < limit; valid = it.Next() {
		k := it.Key()
		if len(k) != len(prefix)+8 {
			continue
		}
		pt, err := d.seal.open(k, it.Value())
		if err != nil {
			return nil, privateline.E(op, privateline.Internal, err)
		}
		var ev Event
		if err := json.Unmarshal(pt, &ev); err != nil {
			return nil, privateline.E(op, privateline.Internal, err)
		}
		switch ok, err := d.fillEvent(user, &ev, now); {
		case err != nil:
			return nil, privateline.E(op, err)
		case ok:
			evs = append(evs, ev)
		}
	}
	if err := it.Error(); err != nil {
		return nil, privateline.E(op, privateline.Unavailable, err)
	}
	if len(evs) > 0 {
		if err := d.readDurable(); err != nil {
			return nil, privateline.E(op, err)
		}
	}
	return evs, nil
}

// fillEvent fills in the parts of a stored event that are not stored; it
// reports false for an event to leave out because what it names has gone.
func (d *DB) fillEvent(user ID, ev *Event, now time.Time) (bool, error) {
	switch ev.Type {
	case EventMessage, EventGroupMessage:
		item, err := d.mailItem(user, ev.Seq, now)
		if errors.Is(err, errNoCopy) {
			return false, nil
		} else if err != nil {
			return false, err
		}
		ev.Mail = item
	case EventRead:
		mid, err := msgKeyID(ev.ID)
		if err != nil {
			return false, privateline.E("storage.fillEvent", privateline.Internal, err)
		}
		rec, err := d.envelope(mid)
		if privateline.Is(privateline.NotExist, err) {
			return false, nil
		} else if err != nil {
			return false, err
		}
		// Reader counts the local recipients, then the remote ones, then a
		// group message's readers on other servers.
		switch n := len(rec.Recipients); {
		case ev.Reader >= 1 && ev.Reader <= n:
			ev.By = rec.Recipients[ev.Reader-1].Address
		case ev.Reader > n && ev.Reader <= n+len(rec.Remote):
			ev.By = rec.Remote[ev.Reader-n-1]
		case ev.Reader > n+len(rec.Remote) && ev.Reader <= n+len(rec.Remote)+len(rec.RemoteReaders):
			ev.By = rec.RemoteReaders[ev.Reader-n-len(rec.Remote)-1] // a group message's reader elsewhere
		default:
			return false, privateline.E("storage.fillEvent", privateline.Internal, "read event without its reader")
		}
		if ev.By == "" {
			return false, nil // the reader's account was deleted
		}
	case EventKeyChanged:
		if ev.Remote != "" {
			return true, nil
		}
		if ev.Subject == nil {
			return false, privateline.E("storage.fillEvent", privateline.Internal, "key_changed event without its subject")
		}
		u, err := d.UserByID(*ev.Subject)
		if privateline.Is(privateline.NotExist, err) {
			return false, nil
		} else if err != nil {
			return false, err
		}
		ev.Name = u.Username
	}
	return true, nil
}
