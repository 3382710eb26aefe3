package storage

import (
	"slices"

	"github.com/privateline/privateline"
)

// Lost epochs (spec/federation.md §12.1, "Lost epochs"). A group's server
// restored from a backup goes back to an older epoch of the group (in a
// new era, so its states win), and would make epoch numbers again that
// its lost history had made, with other keys; members' clients that
// opened a message of a lost epoch would refuse the older epochs'
// messages (spec/e2ee.md §12.2, stale_epoch). The replicas remember the
// highest epoch they held (SeenEpoch, with the era of the state they
// first held it in, SeenEra) and tell it in their state requests; the
// group's server raises the group past it: the group moves to the epoch
// after, with no key yet, as after a membership change, so the next
// admin's client that acts makes its key. Only the number moves: no key
// or member comes from the replica. A member's server could claim a
// higher epoch than it saw; what it gains is bounded: one move per
// server with members and era of this server, within one era the group
// moves at most MaxEpochLead epochs past where it stood before the first
// raise, and a raise only costs its members a rekey.

// MaxEpochLead bounds how far past its epoch before the era's first raise
// a group's server moves a group on the word of its members' servers.
const MaxEpochLead = 1 << 20

// noteSeenEpoch carries the replica's highest epoch seen (from cur, the
// record it replaces, if any) into g, a state about to be applied.
func noteSeenEpoch(g, cur *Group) {
	g.SeenEpoch, g.SeenEra = g.Epoch, g.Era
	if cur == nil {
		return
	}
	seen, era := cur.SeenEpoch, cur.SeenEra
	if seen == 0 { // a record of an older version: the era is not known
		seen, era = cur.Epoch, 0
	}
	// Era 0 is "not known": it never counts as another era (RaiseGroupEpoch).
	if seen > g.SeenEpoch || seen == g.SeenEpoch && (era == 0 || era < g.SeenEra) {
		g.SeenEpoch, g.SeenEra = seen, era
	}
}

// RaiseGroupEpoch moves group id, a group of this server, past epoch
// seen, which a replica on server from (one with a member of the group)
// held, first in a state of era seenEra: when seen is greater than the
// group's epoch, or equal to it while the group's epoch began in a later
// era than seenEra (it was made again after a restore). The group then goes to epoch
// seen+1 without a key, in a new version queued to its members' servers,
// and its members here get group_changed. A claim beyond the bound
// (MaxEpochLead) is refused as Invalid, nothing changed. It reports
// whether the group moved.
func (d *DB) RaiseGroupEpoch(id string, from privateline.ServerName, seen int64, seenEra uint64) (bool, error) {
	const op = "storage.RaiseGroupEpoch"
	moved, _, err := d.raiseGroupEpoch(op, id, seen, func(g *Group) (bool, error) {
		on := slices.ContainsFunc(g.Members, func(m GroupMember) bool {
			_, srv, _ := m.Address.Split()
			return srv == from
		})
		if !on {
			return false, privateline.E(op, privateline.NotExist)
		}
		switch {
		case seen > g.Epoch:
		case seen == g.Epoch && g.EpochEra != 0 && seenEra != 0 && seenEra < g.EpochEra:
			// Every state of the epoch this server made has an era at least
			// the one it began in: the replica's came from a lineage that was
			// lost, and the number was made again.
		default:
			return false, nil
		}
		// One move per server and era: its replica's highest epoch does
		// not grow but by states of this server.
		return !slices.Contains(g.FloorBy, from), nil
	}, func(g *Group) { g.FloorBy = append(g.FloorBy, from) })
	return moved, err
}

// RaiseGroupEpochByMember moves group id, a group of this server, past
// epoch seen, of which user, a member here, holds a key (their client
// reports it, spec/e2ee.md §8.1): when seen is greater than the group's
// epoch, or equal to it (the client was about to make the key of the
// current epoch and already held one for it: the server's history of
// that number was lost). A client knows no eras: every key it holds came
// from this server's history, so a number it held that the group has not
// passed was made in a lineage this server lost, or is the current one
// made twice. The move is the one of RaiseGroupEpoch, with its bounds:
// one move per user and era, within MaxEpochLead. A user who is not a
// member (or a group of another server) is NotExist. It returns whether
// the group moved and the group as it is after.
func (d *DB) RaiseGroupEpochByMember(id string, user ID, seen int64) (bool, *Group, error) {
	const op = "storage.RaiseGroupEpochByMember"
	return d.raiseGroupEpoch(op, id, seen, func(g *Group) (bool, error) {
		if m := g.Member(user); m == nil || m.Remote {
			return false, privateline.E(op, privateline.NotExist)
		}
		if seen < g.Epoch {
			return false, nil
		}
		return !slices.Contains(g.FloorUsers, user), nil
	}, func(g *Group) { g.FloorUsers = append(g.FloorUsers, user) })
}

// raiseGroupEpoch is the move of both: claim decides whether the claim
// moves the group (its bound by era aside, checked here), and note
// records who moved it in the era.
func (d *DB) raiseGroupEpoch(op, id string, seen int64, claim func(*Group) (bool, error), note func(*Group)) (bool, *Group, error) {
	g, gk, unlock, err := d.lockGroup(id)
	if err != nil {
		return false, nil, privateline.E(op, err)
	}
	defer unlock()
	if g.Replica {
		return false, nil, privateline.E(op, privateline.NotExist)
	}
	if g.FloorEra != d.groupEra {
		// Who moved it in an earlier era does not count in this one.
		g.FloorBy, g.FloorUsers = nil, nil
	}
	ok, err := claim(g)
	if err != nil || !ok {
		return false, g, err
	}
	base := g.Epoch
	if g.FloorEra == d.groupEra {
		base = g.FloorFrom
	}
	if seen >= base+MaxEpochLead {
		return false, g, privateline.E(op, privateline.Invalid, "the claimed epoch is too far ahead of the group's")
	}
	if g.FloorEra != d.groupEra {
		g.FloorEra, g.FloorFrom = d.groupEra, g.Epoch
	}
	note(g)
	old := g.Members
	g.Epoch = seen + 1
	t := d.newMtxn(nil)
	defer t.unlockGroupDests()
	if err := t.writeGroup(gk, g.ID, old, g); err != nil {
		t.b.Close()
		return false, nil, privateline.E(op, err)
	}
	if err := t.commit(); err != nil {
		return false, nil, privateline.E(op, err)
	}
	return true, g, nil
}
