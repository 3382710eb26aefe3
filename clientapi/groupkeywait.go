package clientapi

import (
	"context"
	"net/http"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/storage"
)

// A group's epoch begins with the change that starts it (the group made,
// a member added or removed) and gets its key with a second request, the
// key document an owner's or admin's client seals for the new members.
// Members are told of the change (group_changed) at the first; on
// another server than the group's, the key comes with the group's next
// state. A member who sends at once would look the key up in between.
// GET /api/groups/{id}/key for the current epoch therefore does not
// answer "not found" while the key may still come (spec/openapi.yaml):
//
//   - for a replica, it first asks the group's server for the group's
//     state (spec/federation.md §12.1, "Resync"): the key may be there
//     already, on its way in the outbox;
//   - a member who is neither owner nor admin (whose client cannot
//     distribute a key) then waits, up to keyWait, until the key is
//     here or the group moves to another epoch. Owners and admins are
//     answered at once: their clients distribute the key themselves.

// keyWait bounds how long a key look-up waits for its epoch's key: long
// enough for an admin's client to look up the members' keys and upload
// the document, and far below a client's request timeout.
const keyWait = 20 * time.Second

// keyPoll is the first and the longest pause between two looks at the
// store while a look-up waits (doubling from the first).
const (
	keyPollFirst = 10 * time.Millisecond
	keyPollMax   = 250 * time.Millisecond
)

// maxKeyWaiters bounds the key look-ups waiting at once on this server;
// beyond it a look-up is answered at once.
const maxKeyWaiters = 512

// keyResyncTimeout bounds the state request a key look-up makes.
const keyResyncTimeout = 10 * time.Second

// errKeyPending: the current epoch has no key document (yet).
var errKeyPending = &statusError{http.StatusNotFound, "not_found", "no key has been distributed for this epoch of the group yet; an owner's or admin's app distributes it — try again shortly"}

// groupSyncer asks a group's server for the group's state and applies
// it to this server's replica (*federation.Service).
type groupSyncer interface {
	SyncGroup(ctx context.Context, id string) error
}

// keyLookup is one look-up of the caller's view of an epoch's key.
type keyLookup func() (signed []byte, kid, wrap string, err error)

// awaitGroupKey is called when g's current epoch has no key for the
// caller: it brings a replica up to date and lets a plain member wait
// for the key, as above. It answers the look-up's result, errKeyPending
// when the key did not come.
func (a *API) awaitGroupKey(ctx context.Context, c *call, g *storage.Group, get keyLookup) ([]byte, string, string, error) {
	// keyWait bounds the whole look-up, the state request included, so
	// that it ends well within a client's request timeout (the Go SDK's
	// is 30 s).
	deadline := time.NewTimer(a.keyWait)
	defer deadline.Stop()
	if !a.ownGroup(g.ID) {
		if s, ok := a.remoteGroups.(groupSyncer); ok && a.resyncAllowed(c.auth.UserID) {
			sctx, cancel := context.WithTimeout(ctx, min(keyResyncTimeout, a.keyWait))
			err := s.SyncGroup(sctx, g.ID)
			cancel()
			if err != nil && a.log != nil {
				a.log.Info("clientapi: a group's state could not be had for a key look-up", "group", g.ID, "err", err)
			}
			signed, kid, wrap, err := get()
			if !privateline.Is(privateline.NotExist, err) {
				return signed, kid, wrap, err
			}
		}
	}
	me := g.Member(c.auth.UserID)
	if me == nil || me.Role == storage.RoleOwner || me.Role == storage.RoleAdmin {
		return nil, "", "", errKeyPending
	}
	select {
	case a.keyWaiters <- struct{}{}:
		defer func() { <-a.keyWaiters }()
	default:
		return nil, "", "", errKeyPending
	}
	a.metrics.keyWaiting.Inc()
	defer a.metrics.keyWaiting.Dec()
	result := "none"
	defer func() { a.metrics.keyWaits.WithLabelValues(result).Inc() }()
	pause := keyPollFirst
	for {
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, "", "", errKeyPending
		case <-deadline.C:
			t.Stop()
			return nil, "", "", errKeyPending
		case <-t.C:
		}
		if pause *= 2; pause > keyPollMax {
			pause = keyPollMax
		}
		signed, kid, wrap, err := get()
		if !privateline.Is(privateline.NotExist, err) {
			if err == nil {
				result = "key"
			}
			return signed, kid, wrap, err
		}
		now, err := a.grps.GroupFor(g.ID, c.auth.UserID)
		if err != nil {
			return nil, "", "", err
		}
		if now.Epoch != g.Epoch {
			result = "stale_epoch"
			return nil, "", "", errStaleEpoch
		}
	}
}

// resyncAllowed reports whether user may make this server ask a group's
// server for a state now: such a request costs what a message does
// (the per-user message limit), so a client cannot spend this server's
// requests to another server (its per-origin rate, spec §11) at will.
func (a *API) resyncAllowed(user storage.ID) bool {
	ok, _ := a.msgLimit.allow("keysync:" + user.String())
	return ok
}
