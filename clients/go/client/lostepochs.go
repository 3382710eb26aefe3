package client

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/privateline/privateline"
)

// Lost epochs (spec/e2ee.md §8.1). A group's server restored from a
// backup goes back to an older epoch and would make epoch numbers again
// that its lost history had made; the client keeps the first key of an
// epoch. So the client remembers, per account and group, the highest
// epoch it held a key of (and which document that key came in), across
// the account's sessions on this Client (a restored server knows no
// session made after its backup: the user logs in again). When it sees
// the group at a lower epoch, or is about to make the key of an epoch it
// held another key of, it reports that epoch (POST
// /api/groups/{id}/seen_epoch) and the group moves past it; it never
// makes a key for an epoch at or below one it held.
//
// The memory outlives the process only if the app keeps it: it travels
// in SessionState.Epochs (a raise fires OnChange, like new tokens), and
// Resume, or RememberEpochs before a new login, gives it back. Every
// group is kept, a left one too (the spec keeps the memory as long as the
// keys): a few dozen bytes a group.

// HeldEpoch is the highest epoch of a group whose key a session held,
// and the document it came in (its distributor and created_at). It is
// what SessionState.Epochs keeps for each group, so an app that saves the
// state keeps the memory across restarts.
type HeldEpoch struct {
	Epoch     int64               `json:"epoch"`
	From      privateline.Address `json:"from"`       // the key document's distributor
	CreatedAt int64               `json:"created_at"` // the key document's created_at, Unix ms
}

// noteEpoch remembers h for the account's group if it is above the epoch
// held so far, and reports whether it was (the memory changed).
func (c *Client) noteEpoch(a privateline.Address, group string, h HeldEpoch) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.noteEpochLocked(a, group, h)
}

func (c *Client) noteEpochLocked(a privateline.Address, group string, h HeldEpoch) bool {
	if c.epochs == nil {
		c.epochs = map[privateline.Address]map[string]HeldEpoch{}
	}
	if c.epochs[a] == nil {
		c.epochs[a] = map[string]HeldEpoch{}
	}
	if cur, ok := c.epochs[a][group]; ok && h.Epoch <= cur.Epoch {
		return false
	}
	c.epochs[a][group] = h
	return true
}

func (c *Client) highestEpoch(a privateline.Address, group string) HeldEpoch {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.epochs[a][group]
}

// heldEpochs returns a copy of the account's held epochs (nil: none).
func (c *Client) heldEpochs(a privateline.Address) map[string]HeldEpoch {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.epochs[a]) == 0 {
		return nil
	}
	return maps.Clone(c.epochs[a])
}

// RememberEpochs gives the Client back the held epochs of the account's
// groups that an app saved (SessionState.Epochs of an earlier session,
// one that may have ended since), so that the account's next sessions on
// this Client, a new login included, report them. Each group keeps the
// higher of the epoch it remembers and the one given. Resume does this
// with the state it resumes. An entry that is not an epoch of at least 1
// with its distributor's address is Invalid, and then nothing is taken.
func (c *Client) RememberEpochs(a privateline.Address, epochs map[string]HeldEpoch) error {
	return c.rememberEpochs("client.RememberEpochs", a, epochs)
}

func (c *Client) rememberEpochs(op string, a privateline.Address, epochs map[string]HeldEpoch) error {
	if _, _, err := a.Split(); err != nil {
		return privateline.E(op, err)
	}
	for group, h := range epochs {
		if group == "" || h.Epoch < 1 {
			return privateline.E(op, privateline.Invalid, "a saved held epoch has no group or an epoch below 1")
		}
		if _, _, err := h.From.Split(); err != nil {
			return privateline.E(op, privateline.Invalid, "the saved held epoch of group "+group+" names no valid distributor", err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for group, h := range epochs {
		c.noteEpochLocked(a, group, h)
	}
	return nil
}

// HeldEpoch returns the highest epoch of group whose key a session of
// this account on this Client held (0: none).
func (s *Session) HeldEpoch(group string) int64 {
	return s.c.highestEpoch(s.address, group).Epoch
}

// passLostEpochs returns g, or, when this client held a key of an epoch
// g has not passed, the group after reporting it: an epoch above g's, or
// (making: the caller is about to make the key of g's epoch) g's own
// epoch unless the server's document of it is the one held (then same).
func (s *Session) passLostEpochs(ctx context.Context, op string, g *Group, making bool) (after *Group, same bool, err error) {
	h := s.c.highestEpoch(s.address, g.ID)
	switch {
	case h.Epoch > g.Epoch:
	case h.Epoch == g.Epoch && making:
		same, err := s.serverHasDocument(ctx, op, g, h)
		if err != nil || same {
			return g, same, err
		}
	default:
		return g, false, nil
	}
	var moved Group
	if _, err := s.groupCall(ctx, op, http.MethodPost, groupPath(g.ID, "/seen_epoch"), map[string]any{"seen_epoch": h.Epoch}, &moved, http.StatusOK); err != nil {
		return nil, false, err
	}
	return &moved, false, nil
}

// serverHasDocument reports whether the server's key document of g's
// current epoch is the one the client held (no document: false).
func (s *Session) serverHasDocument(ctx context.Context, op string, g *Group, h HeldEpoch) (bool, error) {
	r, err := s.do(ctx, op, &request{method: http.MethodGet, path: groupPath(g.ID, "/key"), query: url.Values{"epoch": {strconv.FormatInt(h.Epoch, 10)}}})
	if err != nil {
		return false, err
	}
	if r.status == http.StatusNotFound {
		return false, nil
	}
	if err := expect(op, r, http.StatusOK); err != nil {
		return false, err
	}
	var pub struct {
		From      privateline.Address `json:"from"`
		CreatedAt int64               `json:"created_at"`
	}
	if err := json.Unmarshal(r.body, &pub); err != nil {
		return false, privateline.E(op, privateline.Invalid, "the group key document is not JSON")
	}
	return pub.From == h.From && pub.CreatedAt == h.CreatedAt, nil
}

// errHeldEpoch: the group is at an epoch this client held a key of, and
// the server did not move it past (the member's one move in this era of
// the server was spent): making its key would give the number a second
// key.
func errHeldEpoch(op string, g *Group, held int64) error {
	return privateline.E(op, privateline.Exist, "the group is at epoch "+strconv.FormatInt(g.Epoch, 10)+
		", but this app already held a key of epoch "+strconv.FormatInt(held, 10)+
		" from before the group's server was restored; it will not make a second key for that number (another admin's app may distribute one)")
}

func heldOf(gkFrom privateline.Address, epoch int64, created time.Time) HeldEpoch {
	return HeldEpoch{Epoch: epoch, From: gkFrom, CreatedAt: created.UnixMilli()}
}
