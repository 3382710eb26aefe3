package clientapi

import (
	"crypto/rand"
	"encoding/base64"
	"slices"
	"sync"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/storage"
)

// WebSocket tickets (POST /api/ws/ticket): single-use, short-lived
// credentials for GET /api/ws?ticket=, bound to the user and session of
// the access token that asked for them. They are kept in memory only (a
// restart forgets them; the client asks again), at most maxWSTickets in
// all and maxUserWSTickets per user (a user's oldest goes first).

const (
	wsTicketTTL       = 30 * time.Second
	maxWSTickets      = 10_000
	maxUserWSTickets  = 16
	wsTicketRandBytes = 32
)

type wsTicket struct {
	p       principal
	expires time.Time
}

type wsTickets struct {
	mu     sync.Mutex
	m      map[string]*wsTicket    // guarded by mu
	byUser map[storage.ID][]string // guarded by mu: oldest first
}

func newWSTickets() *wsTickets {
	return &wsTickets{m: map[string]*wsTicket{}, byUser: map[storage.ID][]string{}}
}

var errTooManyTickets = privateline.E("clientapi.wsTickets", privateline.Unavailable, "too many WebSocket tickets are pending; try again shortly")

// issue makes a ticket for p.
func (t *wsTickets) issue(p *principal, now time.Time) (string, error) {
	b := make([]byte, wsTicketRandBytes)
	rand.Read(b)
	tok := base64.RawURLEncoding.EncodeToString(b)
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.m) >= maxWSTickets {
		t.purgeLocked(now)
		if len(t.m) >= maxWSTickets {
			return "", errTooManyTickets
		}
	}
	if mine := t.byUser[p.UserID]; len(mine) >= maxUserWSTickets {
		t.dropLocked(mine[0])
	}
	t.m[tok] = &wsTicket{p: *p, expires: now.Add(wsTicketTTL)}
	t.byUser[p.UserID] = append(t.byUser[p.UserID], tok)
	return tok, nil
}

// take uses up a ticket: it returns the principal it was issued to, or
// false if it is unknown, used or expired.
func (t *wsTickets) take(tok string, now time.Time) (*principal, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tk, ok := t.m[tok]
	if !ok {
		return nil, false
	}
	t.dropLocked(tok)
	if !now.Before(tk.expires) {
		return nil, false
	}
	p := tk.p
	return &p, true
}

func (t *wsTickets) dropLocked(tok string) {
	tk, ok := t.m[tok]
	if !ok {
		return
	}
	delete(t.m, tok)
	u := tk.p.UserID
	mine := slices.DeleteFunc(t.byUser[u], func(s string) bool { return s == tok })
	if len(mine) == 0 {
		delete(t.byUser, u)
	} else {
		t.byUser[u] = mine
	}
}

func (t *wsTickets) purgeLocked(now time.Time) {
	for tok, tk := range t.m {
		if !now.Before(tk.expires) {
			t.dropLocked(tok)
		}
	}
}

// count is the number of tickets held (tests).
func (t *wsTickets) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}
