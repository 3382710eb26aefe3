package storage

import (
	"github.com/privateline/privateline"
)

// Replica resync (spec/federation.md §12.1, "Resync"): a member's server
// asks the group's server for the group's current state when its replica
// may be behind — after a restart, when an entry names a group or epoch
// the replica does not know — and the group's server answers with the
// same state it queues in group_updates. The group_updates items
// themselves never expire from the outbox (OutboxExpire): each is a whole
// state, and the newest one is what the destination needs when it comes
// back.

// ReplicaVersion names a replica and the version it holds.
type ReplicaVersion struct {
	Group   string
	Version uint64
}

// GroupReplicas lists the replicas this server keeps (groups of other
// servers with members here), with their versions, in key order.
func (d *DB) GroupReplicas() ([]ReplicaVersion, error) {
	const op = "storage.GroupReplicas"
	var out []ReplicaVersion
	err := d.scanKeys([]byte{tGroup.prefix}, func(k, v []byte) error {
		if len(k) != 1+16 {
			return nil
		}
		var g Group
		if err := d.getJSON(k, &g); err != nil {
			return err
		}
		if g.Replica {
			out = append(out, ReplicaVersion{Group: g.ID, Version: g.Version})
		}
		return nil
	})
	if err != nil {
		return nil, privateline.E(op, err)
	}
	return out, nil
}

// GroupReplicaOf returns the replica of group id (NotExist: none, or id
// is a group of this server).
func (d *DB) GroupReplicaOf(id string) (*Group, error) {
	g, _, err := d.group(id)
	if err == nil && !g.Replica {
		err = privateline.E(privateline.NotExist)
	}
	if err != nil {
		return nil, privateline.E("storage.GroupReplicaOf", err)
	}
	return g, nil
}

// GroupSyncState returns the current state of group id, a group of this
// server, for server dest if one of its members is on dest; otherwise
// NotExist (as for a group that does not exist or was deleted): a
// server learns nothing of a group none of its users is in.
func (d *DB) GroupSyncState(id string, dest privateline.ServerName) ([]byte, error) {
	const op = "storage.GroupSyncState"
	g, gk, err := d.group(id)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	on := false
	for _, m := range g.Members {
		if _, srv, _ := m.Address.Split(); srv == dest {
			on = true
			break
		}
	}
	if g.Replica || !on {
		return nil, privateline.E(op, privateline.NotExist)
	}
	st, err := d.groupState(gk, id, g, g.Version, dest, nil)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	return st, nil
}

// DropGroupReplica deletes the replica of group id if it still holds
// version (the group's server said it has no such group for this server,
// after the replica was read at that version): its members here get
// group_changed events, as when a state without them arrives. A replica
// that has moved on meanwhile, or none, is left alone; it reports whether
// one went.
func (d *DB) DropGroupReplica(id string, version uint64) (bool, error) {
	if version == ^uint64(0) {
		return false, nil
	}
	return d.ApplyGroupReplica(&GroupReplica{Group: &Group{ID: id, Version: version + 1, Replica: true, Members: []GroupMember{}}})
}
