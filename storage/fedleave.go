package storage

import (
	"encoding/json"

	"github.com/privateline/privateline"
)

// A user of this server who deletes their account leaves the groups of
// other servers durably (spec/federation.md §12.1, group_leaves): the
// deletion's batch queues, for each group replica that still lists them,
// a "group_leaves" item for the group's server, which removes them — the
// member's own removal — when the item reaches it. The client API asks
// the group's server at once first (a group_request); when that worked,
// the replica no longer lists the user and nothing is queued, and an item
// that arrives after all finds the member gone and changes nothing.

// OutboxGroupLeaves is the outbox item type (and wire type) of a deleted
// user leaving a group of the destination: GroupLeavePayload.
const OutboxGroupLeaves = "group_leaves"

// GroupLeavePayload is an OutboxGroupLeaves item's payload (JSON): Member,
// a user of this server whose account was deleted, leaves Group, where
// it joined at Joined (its join order there: a later member of the same
// address, after the name was taken again, is not removed).
type GroupLeavePayload struct {
	Group  string              `json:"group"`
	Member privateline.Address `json:"member"`
	Joined uint64              `json:"joined"`
}

// queueGroupLeave queues, in t's batch, member m's leaving of g (a
// replica) for g's server. Every stripe is held; the destination is
// locked after them until the batch is applied.
func (t *mtxn) queueGroupLeave(g *Group, m *GroupMember) error {
	p, err := json.Marshal(GroupLeavePayload{Group: g.ID, Member: m.Address, Joined: m.Joined})
	if err != nil {
		return err
	}
	srv := groupServer(g.ID)
	x := outboxDest{name: srv, h: t.d.serverHash(srv)}
	t.lockGroupDest(x)
	return t.queueItems([]outboxDest{x}, OutboxGroupLeaves, NewID().String(), p)
}

// RemoveDeletedMember removes member, a user of another server whose
// server says their account was deleted, from group id, a group of this
// server: the member's own leaving (UpdateGroup's removal: a new epoch,
// ownership passed on, every member's server told). A group that is not
// there, or not this server's, or a member not in it or who joined at
// another place than joined, changes nothing and is no error (the leave
// came late, or twice).
func (d *DB) RemoveDeletedMember(id string, member privateline.Address, joined uint64) error {
	const op = "storage.RemoveDeletedMember"
	uid := d.remoteMemberID(member)
	g, _, err := d.group(id)
	if privateline.Is(privateline.NotExist, err) {
		return nil
	} else if err != nil {
		return privateline.E(op, err)
	}
	if g.Replica {
		return nil
	}
	_, err = d.UpdateGroup(ChangeGroup{Group: id, By: uid, Remove: &uid, Joined: &joined})
	if err != nil && !privateline.Is(privateline.NotExist, err) {
		return privateline.E(op, err)
	}
	return nil
}
