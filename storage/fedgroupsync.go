package storage

import (
	"encoding/binary"
	"encoding/json"
	"slices"
	"time"

	"github.com/privateline/privateline"
)

// Replica resync (spec/federation.md §12.1, "Resync"): a member's server
// asks the group's server for the group's current state when its replica
// may be behind — after a restart, when an entry names a group or epoch
// the replica does not know — and the group's server answers with the
// same state it queues in group_updates. The group_updates items
// themselves never expire from the outbox (OutboxExpire): each is a whole
// state, and the newest one is what the destination needs when it comes
// back. So that a server that is down for long does not pile up one state
// per change, a new state replaces the group's previous one when that is
// the last item of the group queued for the destination and not handed
// out yet: nothing of the group was queued between them that needs the
// older state (a message is checked against the state before it, and its
// epoch's key came with an earlier state), so delivering only the newer
// one is the same to the destination. So at most one state per group
// waits behind the pending transaction and the group's messages.
//
//	'l' dest(16) group(16)   the last group item queued for dest of the
//	                         group when it is a state: its sequence
//	                         number (lastQueued)
//
// A record lives only while it can still name a state to replace: it goes
// in the batch that queues a message of the group after the state (the
// state must stay), that settles the state (a receipt, OutboxDone) or
// that expires it (OutboxExpire) — so also after the group was deleted,
// or the destination's last member left, once the farewell state is
// delivered or expired. SweepGroupLastQueued removes records left by
// older versions.

// stateHasMemberOn reports whether the group state st (as queued) lists a
// member on server dest; one that does not parse does (it is kept).
func stateHasMemberOn(st []byte, dest privateline.ServerName) bool {
	var g GroupState
	if err := json.Unmarshal(st, &g); err != nil {
		return true
	}
	for _, m := range g.Members {
		if _, srv, _ := m.Address.Split(); srv == dest {
			return true
		}
	}
	return false
}

// lastQueued is the last group item queued for a destination of a group.
type lastQueued struct {
	Seq   uint64 `json:"seq,omitempty"` // a state's (0: the item is a message)
	State bool   `json:"state,omitempty"`
}

// queueGroupState queues the group's state st (canonical JSON) for x in
// t's batch, in place of the group's previous state if that is the last
// item of the group queued for x, in the store (not in this batch), and
// not in x's pending transaction. The caller holds x's lock until the
// batch is applied.
func (t *mtxn) queueGroupState(x outboxDest, gk []byte, st []byte) error {
	d := t.d
	lk := tGroupLastQueued.key(x.h, gk)
	var drop uint64
	if !t.groupLast[string(lk)] {
		var last lastQueued
		if err := d.getJSON(lk, &last); err != nil && !privateline.Is(privateline.NotExist, err) {
			return err
		}
		if last.State && last.Seq > 0 {
			queued, err := d.exists(tOutbox.key(x.h, u64(last.Seq)))
			if err != nil {
				return err
			}
			p, err := d.pendingTxn(x.h)
			if err != nil {
				return err
			}
			if queued && !p.holds(last.Seq) {
				drop = last.Seq
			}
		}
	}
	if err := t.queueItems([]outboxDest{x}, OutboxGroupUpdates, NewID().String(), st); err != nil {
		return err
	}
	ds := t.destStates[string(x.h)] // queueItems keeps it
	if drop != 0 {
		t.del(tOutbox.key(x.h, u64(drop)))
		ds.Depth--
		if err := d.setJSON(t.b, stateKey(x.h), ds); err != nil {
			return err
		}
	}
	return t.setGroupLast(lk, lastQueued{Seq: ds.Next, State: true})
}

// groupItemQueued records, in t's batch, that a message of group id was
// queued for x after its last state: that state stays, so the record
// that named it goes.
func (t *mtxn) groupItemQueued(x outboxDest, id string) error {
	gk, err := groupKeyID(id)
	if err != nil {
		return err
	}
	lk := tGroupLastQueued.key(x.h, gk)
	if !t.groupLast[string(lk)] {
		if ok, err := t.d.exists(lk); err != nil || !ok {
			return err // no state queued before: nothing to keep
		}
	}
	return t.setGroupLast(lk, lastQueued{})
}

// setGroupLast writes the record lk in t's batch; a record that names no
// state is deleted.
func (t *mtxn) setGroupLast(lk []byte, v lastQueued) error {
	if t.groupLast == nil {
		t.groupLast = map[string]bool{}
	}
	t.groupLast[string(lk)] = true
	if !v.State || v.Seq == 0 {
		t.del(lk)
		return nil
	}
	return t.d.setJSON(t.b, lk, v)
}

// groupStateGone deletes, in t's batch, the record of the last state of
// its group queued for x if it names it, a group_updates item that the
// batch deletes (settled by a receipt, or expired). payload is the
// item's, nil to read it from the store. The caller holds x's lock.
func (t *mtxn) groupStateGone(x outboxDest, seq uint64, payload []byte) error {
	if payload == nil {
		var r outboxRecord
		if err := t.d.getJSON(tOutbox.key(x.h, u64(seq)), &r); privateline.Is(privateline.NotExist, err) {
			return nil
		} else if err != nil {
			return err
		}
		payload = r.Payload
	}
	var st struct {
		Group string `json:"group"`
	}
	if err := json.Unmarshal(payload, &st); err != nil {
		return nil // not a state this server queued: no record names it
	}
	gk, err := groupKeyID(st.Group)
	if err != nil {
		return nil
	}
	lk := tGroupLastQueued.key(x.h, gk)
	if t.groupLast[string(lk)] {
		return nil // rewritten in this batch: it names a newer item
	}
	var last lastQueued
	if err := t.d.getJSON(lk, &last); privateline.Is(privateline.NotExist, err) {
		return nil
	} else if err != nil {
		return err
	}
	if last.Seq == seq {
		t.del(lk)
	}
	return nil
}

// SweepGroupLastQueued deletes the records of the last group state queued
// per destination that name no queued state (left by older versions,
// which kept them for good); it returns how many went.
func (d *DB) SweepGroupLastQueued() (int, error) {
	const op = "storage.SweepGroupLastQueued"
	var keys [][]byte
	err := d.scanKeys([]byte{tGroupLastQueued.prefix}, func(k, _ []byte) error {
		if len(k) == 1+16+16 {
			keys = append(keys, slices.Clone(k))
		}
		return nil
	})
	if err != nil {
		return 0, privateline.E(op, err)
	}
	n := 0
	for len(keys) > 0 {
		// The records of one destination (keys are in order), under its
		// lock, in one batch.
		h := keys[0][1 : 1+16]
		i := 1
		for i < len(keys) && string(keys[i][1:1+16]) == string(h) {
			i++
		}
		unlock := d.lockDests([]outboxDest{{h: h}})
		b := d.db.NewBatch()
		stale := 0
		var err error
		for _, k := range keys[:i] {
			var last lastQueued
			if err = d.getJSON(k, &last); privateline.Is(privateline.NotExist, err) {
				err = nil
				continue
			} else if err != nil {
				break
			}
			queued := false
			if last.State && last.Seq != 0 {
				if queued, err = d.exists(tOutbox.key(h, u64(last.Seq))); err != nil {
					break
				}
			}
			if !queued {
				b.Delete(k, nil)
				stale++
			}
		}
		if err == nil && stale > 0 {
			err = d.commit(b)
		} else {
			b.Close()
		}
		unlock()
		if err != nil {
			return n, privateline.E(op, err)
		}
		n += stale
		keys = keys[i:]
	}
	return n, nil
}

// ReplicaVersion names a replica and the era and version it holds.
type ReplicaVersion struct {
	Group   string
	Era     uint64
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
			out = append(out, ReplicaVersion{Group: g.ID, Era: g.Era, Version: g.Version})
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
// era and version (the group's server said it has no such group for this
// server, after the replica was read at them): its members here get
// group_changed events, as when a state without them arrives. A replica
// that has moved on meanwhile, or none, is left alone; it reports whether
// one went.
func (d *DB) DropGroupReplica(id string, era, version uint64) (bool, error) {
	if version == ^uint64(0) {
		return false, nil
	}
	return d.ApplyGroupReplica(&GroupReplica{Group: &Group{ID: id, Era: era, Version: version + 1, Replica: true, Members: []GroupMember{}}})
}

// Eras (spec/federation.md §12.1, "Eras"). A group's version counts the
// changes its server made; a server restored from a backup counts again
// from the backup's versions, so its states would look older than those
// its members' servers already hold, and be ignored until the version
// passes the lost ones. So every state also carries the era of the
// group's server's store: a number made greater at every opening of the
// store (the time of opening in ms, or the previous era + 1 if that is
// not greater), kept in the store. A restored store's next opening makes
// an era greater than every one the lost lineage used (they were made at
// earlier openings), so its states win; within one era versions decide.
// A restart without restore only moves the era: a replica whose content
// is the same takes it without telling anyone (applyReplica).
//
//	0x00 "group-era"           the era of the last opening (u64)

var groupEraKey = tMeta.key([]byte("group-era"))

// openGroupEra makes and records this opening's era (synced).
func (d *DB) openGroupEra() error {
	var prev uint64
	if v, err := d.get(groupEraKey); err == nil && len(v) == 8 {
		prev = binary.BigEndian.Uint64(v)
	} else if err != nil && !privateline.Is(privateline.NotExist, err) {
		return err
	}
	era := max(uint64(time.Now().UnixMilli()), prev+1)
	b := d.db.NewBatch()
	d.setSealed(b, groupEraKey, u64(era))
	if err := d.commit(b); err != nil {
		return err
	}
	d.groupEra = era
	return nil
}

// GroupEra returns this opening's era.
func (d *DB) GroupEra() uint64 { return d.groupEra }

// newerState reports whether the replica record a is newer than b: a
// later era of the group's server, or a greater version in the same one.
func newerState(a, b *Group) bool {
	return a.Era > b.Era || a.Era == b.Era && a.Version > b.Version
}

// sameReplica reports whether a and b hold the same group apart from
// their era and version.
func sameReplica(a, b *Group) bool {
	return a.Epoch == b.Epoch && a.Meta == b.Meta && a.Retention == b.Retention && a.CreatedAt.Equal(b.CreatedAt) &&
		slices.EqualFunc(a.Members, b.Members, func(x, y GroupMember) bool {
			return x.Address == y.Address && x.Role == y.Role && x.Joined == y.Joined && x.Remote == y.Remote && x.User == y.User
		})
}
