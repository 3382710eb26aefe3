package clientapi

import (
	"sync"

	"github.com/privateline/privateline/storage"
)

// The hub hands each user's committed events to every WebSocket of that
// user (ws.go).
//
// The store calls Notify once a batch is durable, holding its publishing
// lock (storage/commit.go), so Notify must never block: it appends
// a shared, not yet encoded frame to each socket's bounded queue and, if no
// writer is running for that socket, starts one (wsConn.enqueue). A socket
// whose queue is full is closed as too slow; nobody else waits for it.
//
// Lock order: storage's publishing lock (held by the caller of Notify) → hub.mu →
// wsConn.mu. No code takes a storage lock while holding hub.mu or a
// wsConn.mu.

// hub is the set of open sockets, by user.
type hub struct {
	push   Pusher // nil: no push notifications
	mu     sync.RWMutex
	users  map[storage.ID][]*wsConn // guarded by mu
	closed bool                     // guarded by mu: shutting down
	wg     sync.WaitGroup           // one per socket, done when its goroutine ends
}

func newHub(push Pusher) *hub { return &hub{push: push, users: map[storage.ID][]*wsConn{}} }

// add registers c, so that it gets its user's events from now on. It
// reports false once the hub is shutting down.
func (h *hub) add(c *wsConn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.users[c.user] = append(h.users[c.user], c)
	h.wg.Add(1)
	return true
}

// remove unregisters c; its goroutine has ended.
func (h *hub) remove(c *wsConn) {
	h.mu.Lock()
	cs := h.users[c.user]
	for i, x := range cs {
		if x == c {
			cs = append(cs[:i:i], cs[i+1:]...)
			break
		}
	}
	if len(cs) == 0 {
		delete(h.users, c.user)
	} else {
		h.users[c.user] = cs
	}
	h.mu.Unlock()
	h.wg.Done()
}

// Notify is the store's notifier (storage.DB.SetNotifier): it queues each
// event for every socket of its user, without blocking. A user with no
// socket open who received a message is handed to push (which never
// blocks either).
func (h *hub) notify(evs []storage.UserEvent) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for i := range evs {
		cs := h.users[evs[i].User]
		if len(cs) == 0 {
			if h.push != nil && wakes(&evs[i].Event) {
				h.push.Notify(evs[i].User)
			}
			continue
		}
		f := &outFrame{seq: evs[i].Seq, ev: &evs[i].Event}
		for _, c := range cs {
			c.enqueue(f)
		}
	}
}

// wakes reports whether ev is worth a push: a message (direct or group)
// the user received, not one the user sent from another device.
func wakes(ev *storage.Event) bool {
	return (ev.Type == storage.EventMessage || ev.Type == storage.EventGroupMessage) && ev.Mail != nil && !ev.Mail.Out
}

// closeSessions closes every socket of user whose session match selects,
// with the given close code and reason.
func (h *hub) closeSessions(user storage.ID, match func(session storage.ID) bool, code int, reason string) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, c := range h.users[user] {
		if match(c.session) {
			c.closeWith(code, reason)
		}
	}
}

// sessionEnded closes the sockets of one session (revoked, or its
// refresh token was reused).
func (h *hub) sessionEnded(user, session storage.ID) {
	h.closeSessions(user, func(s storage.ID) bool { return s == session }, closeSessionEnded, reasonSessionEnded)
}

// sessionsEnded closes the sockets of every session of user but keep
// (revoke all, a password change, account deletion).
func (h *hub) sessionsEnded(user, keep storage.ID) {
	h.closeSessions(user, func(s storage.ID) bool { return s != keep }, closeSessionEnded, reasonSessionEnded)
}

// count returns the number of open sockets.
func (h *hub) count() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	n := 0
	for _, cs := range h.users {
		n += len(cs)
	}
	return n
}

// shutdown closes every socket (going away) and waits for their
// goroutines, so that none uses the store after it closes. No socket is
// accepted afterwards.
func (h *hub) shutdown() {
	h.mu.Lock()
	h.closed = true
	for _, cs := range h.users {
		for _, c := range cs {
			c.closeWith(closeGoingAway, "the server is shutting down; reconnect")
		}
	}
	h.mu.Unlock()
	h.wg.Wait()
}
