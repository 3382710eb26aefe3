package client

import (
	"context"
	"encoding/json"
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

// heldEpoch is the highest epoch of a group whose key a session held,
// and the document it came in (its distributor and created_at).
type heldEpoch struct {
	epoch   int64
	from    privateline.Address
	created int64 // ms
}

func (c *Client) noteEpoch(a privateline.Address, group string, h heldEpoch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epochs == nil {
		c.epochs = map[privateline.Address]map[string]heldEpoch{}
	}
	if c.epochs[a] == nil {
		c.epochs[a] = map[string]heldEpoch{}
	}
	if cur, ok := c.epochs[a][group]; !ok || h.epoch > cur.epoch {
		c.epochs[a][group] = h
	}
}

func (c *Client) highestEpoch(a privateline.Address, group string) heldEpoch {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.epochs[a][group]
}

// HeldEpoch returns the highest epoch of group whose key a session of
// this account on this Client held (0: none).
func (s *Session) HeldEpoch(group string) int64 {
	return s.c.highestEpoch(s.address, group).epoch
}

// passLostEpochs returns g, or, when this client held a key of an epoch
// g has not passed, the group after reporting it: an epoch above g's, or
// (making: the caller is about to make the key of g's epoch) g's own
// epoch unless the server's document of it is the one held (then same).
func (s *Session) passLostEpochs(ctx context.Context, op string, g *Group, making bool) (after *Group, same bool, err error) {
	h := s.c.highestEpoch(s.address, g.ID)
	switch {
	case h.epoch > g.Epoch:
	case h.epoch == g.Epoch && making:
		same, err := s.serverHasDocument(ctx, op, g, h)
		if err != nil || same {
			return g, same, err
		}
	default:
		return g, false, nil
	}
	var moved Group
	if _, err := s.groupCall(ctx, op, http.MethodPost, groupPath(g.ID, "/seen_epoch"), map[string]any{"seen_epoch": h.epoch}, &moved, http.StatusOK); err != nil {
		return nil, false, err
	}
	return &moved, false, nil
}

// serverHasDocument reports whether the server's key document of g's
// current epoch is the one the client held (no document: false).
func (s *Session) serverHasDocument(ctx context.Context, op string, g *Group, h heldEpoch) (bool, error) {
	r, err := s.do(ctx, op, &request{method: http.MethodGet, path: groupPath(g.ID, "/key"), query: url.Values{"epoch": {strconv.FormatInt(h.epoch, 10)}}})
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
	return pub.From == h.from && pub.CreatedAt == h.created, nil
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

func heldOf(gkFrom privateline.Address, epoch int64, created time.Time) heldEpoch {
	return heldEpoch{epoch: epoch, from: gkFrom, created: created.UnixMilli()}
}
