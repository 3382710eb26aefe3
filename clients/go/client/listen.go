package client

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gorilla/websocket"

	"github.com/privateline/privateline"
)

// Real-time events (GET /api/ws; the frames are described in
// spec/openapi.yaml): Listen keeps a WebSocket open, resumes from the
// last event it delivered after any disconnect, and opens message events
// through the same checks as Messages (group messages as GroupMessages
// does: the key of the message's epoch, fetched and opened if not held,
// the sender's pinned key, the signature).
//
// Groups and keys. Listen never distributes a group key by itself: the
// admin whose AddMember or RemoveMember changed the members has already
// rekeyed in that call, and every other member only refetches the group
// (group_changed carries it) and fetches the new epoch's key with the
// first message that needs it. After a member leaves on its own no
// admin acted; the next admin to send (SendGroup) distributes the key,
// or a handler that wants it sooner calls Rekey on a group_changed whose
// Info shows this account as owner or admin (a key already distributed
// by another admin is then used, not replaced).

// Event types.
const (
	EventMessage      = "message"       // Item is the message, opened
	EventGroupMessage = "group_message" // Group; Item is the message, opened with its epoch's key
	EventRead         = "read"          // ID was read by By
	EventDeleted      = "deleted"       // ID was deleted
	EventExpired      = "expired"       // ID expired
	EventKeyChanged   = "key_changed"   // Address, a contact, has new keys
	EventGroupChanged = "group_changed" // Group changed: Info is it now, or Removed
	// EventDelivered: this account's message ID reached Server, the
	// homeserver of some of its recipients.
	EventDelivered = "delivered"
	// EventDeliveryFailed: this account's message ID will not reach its
	// recipients on Server: Error is the refusal code or "timeout",
	// Detail the last error seen.
	EventDeliveryFailed = "delivery_failed"
	// EventDeliveryWaiting: this account's message ID is still queued for
	// Server, which could not be reached on the last attempt; a later
	// EventDelivered or EventDeliveryFailed for ID ends the wait.
	EventDeliveryWaiting = "delivery_waiting"
	// EventReady: connected and caught up; Seq is the last number seen.
	EventReady = "ready"
	// EventReset: the server no longer had the events after the last one
	// delivered; Listen fetched the messages since then (delivered as
	// message events before this one) and the client should refresh any
	// other state it keeps (read receipts, deletions). Seq is the number
	// resumed from.
	EventReset = "reset"
)

// Event is one entry of the account's event log.
type Event struct {
	Type    string
	Seq     uint64 // 0 for none (ready and reset carry the number reached)
	Item    *Item
	ID      string              // message id: read, deleted, expired
	By      privateline.Address // read
	Address privateline.Address // key_changed
	Group   string              // group_message, group_changed
	// Server, Error, Detail: delivered, delivery_failed (Server also
	// delivery_waiting).
	Server privateline.ServerName
	Error  string
	Detail string
	// Info is, for group_changed, the group as the server shows it when
	// the event is delivered (a replayed event gets the current state,
	// which may be newer); nil when Removed.
	Info *Group
	// Removed is, for group_changed, that this account is no longer a
	// member (removed, left, or the group is gone): the group's keys are
	// forgotten and its new messages will not reach this account.
	Removed bool
}

// ListenOptions tune Listen.
type ListenOptions struct {
	// After is the last sequence number the client has seen: events after
	// it are delivered first. Ignored with LiveOnly.
	After uint64
	// LiveOnly starts with the events from now on.
	LiveOnly bool
	// MinBackoff and MaxBackoff bound the wait before a reconnection
	// (default 250 ms and 30 s); it doubles after each failure and starts
	// again once a connection is ready.
	MinBackoff, MaxBackoff time.Duration
}

// wsFrame is a frame from the server.
type wsFrame struct {
	Type    string                 `json:"type"`
	Seq     uint64                 `json:"seq"`
	Message *mailItem              `json:"message"`
	ID      string                 `json:"id"`
	By      privateline.Address    `json:"by"`
	Address privateline.Address    `json:"address"`
	Group   string                 `json:"group"`
	Server  privateline.ServerName `json:"server"`
	Error   json.RawMessage        `json:"error"` // a string in delivery_failed, an object in "error" answers
	Detail  string                 `json:"detail"`
}

// handlerError carries the handler's error out of Listen unchanged.
type handlerError struct{ err error }

func (e *handlerError) Error() string { return e.err.Error() }

// errAuth: the server refused the access token (401 at the upgrade, close
// 4001 or 4003); a refresh decides whether the session goes on.
type errAuth struct{ stale privateline.Secret }

func (errAuth) Error() string { return "the access token was refused" }

// Listen delivers the account's events to handler, in order, until ctx
// ends (it then returns ctx.Err()), handler returns an error (returned as
// is) or the session ends (Unauthenticated). Message events are opened
// and verified as Messages does; an Item that fails a check has Err set.
// After any disconnect it reconnects with backoff, refreshing the access
// token when the server asks, and resumes after the last event handler
// accepted, so nothing is lost or repeated. The session must be unlocked.
func (s *Session) Listen(ctx context.Context, o ListenOptions, handler func(*Event) error) error {
	const op = "client.Session.Listen"
	if _, _, err := s.unlocked(op); err != nil {
		return err
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 250 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(30*time.Second, o.MinBackoff)
	}
	l := &listener{s: s, op: op, last: o.After, live: o.LiveOnly, handler: handler, groups: map[string]*Group{}}
	backoff := o.MinBackoff
	for {
		ready, err := l.connect(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var he *handlerError
		if errors.As(err, &he) {
			return he.err
		}
		var ae errAuth
		if errors.As(err, &ae) {
			if err := s.refresh(ctx, op, ae.stale); err != nil {
				if privateline.Is(privateline.Unauthenticated, err) {
					return err
				}
			} else {
				continue // at once, with the new token
			}
		} else if err != nil && !retryable(err) && !errors.Is(err, errDisconnected) {
			return err
		}
		if ready {
			backoff = o.MinBackoff
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, o.MaxBackoff)
	}
}

var errDisconnected = errors.New("client: the event socket closed")

// listener is the state of one Listen call across connections.
type listener struct {
	s       *Session
	op      string
	last    uint64 // the last event delivered
	live    bool   // the next connection asks for live events only
	handler func(*Event) error
	// groups are the groups of the group events seen, as last fetched
	// (refetched on group_changed), shared by the openers of each frame.
	groups map[string]*Group
}

// wsURL is the socket's URL for the next connection.
func (l *listener) wsURL() string {
	u := *l.s.c.base
	u.Scheme = map[string]string{"https": "wss", "http": "ws"}[u.Scheme]
	u.Path = l.s.c.base.Path + "/api/ws"
	u.RawPath = ""
	if !l.live {
		u.RawQuery = url.Values{"after": {strconv.FormatUint(l.last, 10)}}.Encode()
	}
	return u.String()
}

// connect runs one connection until it ends; it reports whether the
// connection got as far as ready.
func (l *listener) connect(ctx context.Context) (ready bool, err error) {
	tok, err := l.s.access(l.op)
	if err != nil {
		return false, err
	}
	h := http.Header{"Authorization": {"Bearer " + string(tok.Bytes())}}
	if l.s.c.ua != "" {
		h.Set("User-Agent", l.s.c.ua)
	}
	d := &websocket.Dialer{HandshakeTimeout: DefaultTimeout, Proxy: http.ProxyFromEnvironment}
	if t, ok := l.s.c.hc.Transport.(*http.Transport); ok && t != nil {
		d.TLSClientConfig = t.TLSClientConfig
	}
	conn, resp, err := d.DialContext(ctx, l.wsURL(), h)
	if err != nil {
		if resp != nil {
			r := &response{status: resp.StatusCode, header: resp.Header}
			if resp.StatusCode == http.StatusUnauthorized {
				return false, errAuth{tok}
			}
			if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
				return false, privateline.E(l.op, privateline.Unavailable, "the server refused the event socket for now", apiError(l.op, r))
			}
			return false, apiError(l.op, r)
		}
		return false, privateline.E(l.op, privateline.Unavailable, "cannot reach the server's event socket", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	conn.SetReadLimit(2 * MaxResponse)
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) && (ce.Code == 4001 || ce.Code == 4003) {
				return ready, errAuth{tok}
			}
			return ready, errDisconnected
		}
		var f wsFrame
		if err := json.Unmarshal(data, &f); err != nil {
			return ready, privateline.E(l.op, privateline.Invalid, "the server sent a malformed event", err)
		}
		switch f.Type {
		case EventReady:
			ready, l.live = true, false
			l.last = max(l.last, f.Seq)
			if err := l.deliver(&Event{Type: EventReady, Seq: l.last}); err != nil {
				return ready, err
			}
		case EventReset:
			ready = true
			if err := l.reset(ctx, f.Seq); err != nil {
				return ready, err
			}
		case "ack", "error":
			// Answers to frames this client does not send.
		default:
			if f.Seq <= l.last {
				continue // seen before this connection
			}
			ev := &Event{Type: f.Type, Seq: f.Seq, ID: f.ID, By: f.By, Address: f.Address, Group: f.Group, Server: f.Server, Detail: f.Detail}
			if f.Type == EventDeliveryFailed {
				json.Unmarshal(f.Error, &ev.Error) // a code; anything else is shown as missing
			}
			if err := l.fill(ctx, ev, f.Message); err != nil {
				return ready, err
			}
			if err := l.deliver(ev); err != nil {
				return ready, err
			}
			l.last = f.Seq
		}
	}
}

// fill opens a message event's item and fetches a changed group. An error
// is a lookup that failed (reconnect and try again) or a locked session.
func (l *listener) fill(ctx context.Context, ev *Event, m *mailItem) error {
	switch {
	case m != nil && (ev.Type == EventMessage || ev.Type == EventGroupMessage):
		keys, _, err := l.s.unlocked(l.op)
		if err != nil {
			return &handlerError{err}
		}
		o := l.s.newOpener(l.op, keys)
		o.groups = l.groups
		items, err := o.openPage(ctx, []mailItem{*m})
		if err != nil {
			return err
		}
		if len(items) != 1 {
			return nil
		}
		it := &items[0]
		if it.Err == nil && it.Group != ev.Group {
			it.Message, it.Err = nil, privateline.E(l.op, privateline.Forbidden, "the server sent the message under another group or kind")
		}
		ev.Item = it
	case ev.Type == EventGroupChanged && ev.Group != "":
		g, err := l.s.Group(ctx, ev.Group)
		if privateline.Is(privateline.NotExist, err) {
			delete(l.groups, ev.Group)
			l.s.forgetGroup(ev.Group)
			ev.Removed = true
			return nil
		}
		if err != nil {
			return err
		}
		l.groups[ev.Group] = g
		ev.Info = g
	}
	return nil
}

// reset catches up over REST after the server's log no longer reached
// back: the messages after the last one delivered, up to upTo, then the
// reset event.
func (l *listener) reset(ctx context.Context, upTo uint64) error {
	if !l.live {
		for l.last < upTo {
			items, err := l.s.Messages(ctx, MessagesQuery{After: l.last, HasAfter: true, Limit: 100})
			if err != nil {
				return err
			}
			if len(items) == 0 {
				break
			}
			for i := range items {
				if items[i].Seq > upTo {
					break
				}
				ev := &Event{Type: EventMessage, Seq: items[i].Seq, Item: &items[i]}
				if items[i].Group != "" {
					ev.Type, ev.Group = EventGroupMessage, items[i].Group
				}
				if err := l.deliver(ev); err != nil {
					return err
				}
				l.last = items[i].Seq
			}
			if items[len(items)-1].Seq >= upTo {
				break
			}
		}
	}
	l.live = false
	l.last = max(l.last, upTo)
	return l.deliver(&Event{Type: EventReset, Seq: l.last})
}

func (l *listener) deliver(ev *Event) error {
	if err := l.handler(ev); err != nil {
		return &handlerError{err}
	}
	return nil
}
