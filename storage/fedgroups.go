package storage

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"slices"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/cjson"
)

// Groups across servers (spec/federation.md §12.1).
//
// A group lives on its server, the one in its id, which decides every
// change. Its record there may hold members of other servers (Remote,
// with an id derived from their address, remoteMemberID). Every change of
// such a group gives it a new Version and queues, in the change's batch, a
// "group_updates" item with the group's state for each server of a remote
// member (before or after the change); a key upload queues the members'
// wraps with it. A group message queues a "group_envelopes" item for each
// server of the remote members it is for.
//
// Each other server with members keeps a Replica: the same record, its
// own users as members and everybody else Remote, and the key documents
// of its own members. It is replaced by a newer version only, and goes
// when none of its members is a user here any more. Reads answer from
// it; changes go to the group's server (federation, clientapi).

// Outbox item types of groups (the wire types).
const (
	OutboxGroupEnvelopes = "group_envelopes" // a group message for members of the destination: GroupEnvelopePayload
	OutboxGroupUpdates   = "group_updates"   // a group's state for the destination: the state's canonical JSON
)

// GroupEnvelopePayload is an OutboxGroupEnvelopes item's payload (JSON);
// the envelope is the message's record, read when the item is sent.
type GroupEnvelopePayload struct {
	Group string                `json:"group"`
	To    []privateline.Address `json:"to"`
}

// remoteMemberID is the id a member without an account here has in a
// group record: derived from the address, so the same on every change.
func (d *DB) remoteMemberID(a privateline.Address) ID {
	m := hmac.New(sha256.New, d.nameKey)
	m.Write([]byte("remote-member\x00"))
	m.Write([]byte(a))
	var id ID
	copy(id[:], m.Sum(nil))
	return id
}

// MemberAt returns the member record of address a, or nil.
func (g *Group) MemberAt(a privateline.Address) *GroupMember {
	for i := range g.Members {
		if g.Members[i].Address == a {
			return &g.Members[i]
		}
	}
	return nil
}

// GroupForAddress returns group id, one of this server's (not a
// replica), if a is a member; otherwise NotExist.
func (d *DB) GroupForAddress(id string, a privateline.Address) (*Group, error) {
	g, _, err := d.group(id)
	if err == nil && (g.Replica || g.MemberAt(a) == nil) {
		err = privateline.E(privateline.NotExist)
	}
	if err != nil {
		return nil, privateline.E("storage.GroupForAddress", err)
	}
	return g, nil
}

// groupHas reports whether a is a member of group id as this server
// knows it (its own record, or its replica).
func (d *DB) groupHas(id string, a privateline.Address) (bool, error) {
	g, _, err := d.group(id)
	if privateline.Is(privateline.NotExist, err) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return g.MemberAt(a) != nil, nil
}

func hasRemote(ms []GroupMember) bool {
	return slices.ContainsFunc(ms, func(m GroupMember) bool { return m.Remote })
}

// groupKeyView is an epoch's key document as the members' servers get it:
// the signed part and each member's wrap.
type groupKeyView struct {
	Epoch  int64
	Signed []byte
	Sum    []byte
	Wraps  map[ID]groupWrap
}

// GroupState is the state of a group as its server sends it (the
// "state" of spec/federation.md §12.1). Members empty: the group is gone
// for the destination (deleted, or none of its members is there).
type GroupState struct {
	Group     string             `json:"group"`
	Version   uint64             `json:"version"`
	Epoch     int64              `json:"epoch"`
	Members   []GroupStateMember `json:"members"`
	Meta      string             `json:"meta,omitempty"`
	Retention int64              `json:"retention"`
	CreatedAt int64              `json:"created_at"`
	Key       *GroupStateKey     `json:"key,omitempty"`
	Era       uint64             `json:"era,omitempty"` // the store's era (fedgroupsync.go)
}

// GroupStateMember is one member in a GroupState, in join order.
type GroupStateMember struct {
	Address privateline.Address `json:"address"`
	Role    string              `json:"role"`
	Joined  uint64              `json:"joined"`
}

// GroupStateKey is the current epoch's key document for the destination's
// members: its signed part (without "keys"), the digest of the document as
// uploaded, and each of those members' key id and wrap.
type GroupStateKey struct {
	Epoch    int64                                  `json:"epoch"`
	Document []byte                                 `json:"document"`
	Sum      []byte                                 `json:"sum"`
	Wraps    map[privateline.Address]GroupStateWrap `json:"wraps"`
}

// GroupStateWrap is one member's wrap of an epoch's key.
type GroupStateWrap struct {
	KeyID string `json:"key_id"`
	Wrap  string `json:"wrap"`
}

// groupState is g's state for server dest (g nil: deleted, at version),
// with the key view of key (nil: the current epoch's, if it has one), as
// canonical JSON.
func (d *DB) groupState(gk []byte, id string, g *Group, version uint64, dest privateline.ServerName, key *groupKeyView) ([]byte, error) {
	st := GroupState{Group: id, Version: version, Members: []GroupStateMember{}, Era: d.groupEra}
	if g != nil {
		st.Epoch, st.Meta, st.Retention, st.CreatedAt = g.Epoch, g.Meta, g.Retention, g.CreatedAt.UnixMilli()
		ms := slices.Clone(g.Members)
		slices.SortFunc(ms, func(a, b GroupMember) int { return int(a.Joined) - int(b.Joined) })
		for _, m := range ms {
			st.Members = append(st.Members, GroupStateMember{Address: m.Address, Role: m.Role, Joined: m.Joined})
		}
		if key == nil {
			var rec groupKeyRecord
			if err := d.getJSON(tGroupKey.key(gk, u64(uint64(g.Epoch))), &rec); err == nil {
				key = &groupKeyView{Epoch: g.Epoch, Signed: rec.Signed, Sum: rec.Sum, Wraps: map[ID]groupWrap{}}
				for _, m := range g.Members {
					var w groupWrap
					if _, srv, _ := m.Address.Split(); srv != dest {
						continue
					}
					if err := d.getJSON(tGroupWrap.key(gk, m.User[:], u64(uint64(g.Epoch))), &w); err == nil {
						key.Wraps[m.User] = w
					} else if !privateline.Is(privateline.NotExist, err) {
						return nil, err
					}
				}
			} else if !privateline.Is(privateline.NotExist, err) {
				return nil, err
			}
		}
		if key != nil {
			sk := &GroupStateKey{Epoch: key.Epoch, Document: key.Signed, Sum: key.Sum, Wraps: map[privateline.Address]GroupStateWrap{}}
			for _, m := range g.Members {
				if _, srv, _ := m.Address.Split(); srv == dest {
					if w, ok := key.Wraps[m.User]; ok {
						sk.Wraps[m.Address] = GroupStateWrap{KeyID: w.KeyID, Wrap: w.Wrap}
					}
				}
			}
			if len(sk.Wraps) > 0 {
				st.Key = sk
			}
		}
	}
	return canonicalJSON(st)
}

// canonicalJSON encodes v as canonical JSON (spec/e2ee.md §2).
func canonicalJSON(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	pv, err := cjson.Parse(raw)
	if err != nil {
		return nil, err
	}
	return cjson.Marshal(pv)
}

// GroupStateFor returns the current state of group id, a group of this
// server, for server dest (the answer to a group request, spec §12.1).
func (d *DB) GroupStateFor(id string, dest privateline.ServerName) ([]byte, error) {
	const op = "storage.GroupStateFor"
	g, gk, err := d.group(id)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	if g.Replica {
		return nil, privateline.E(op, privateline.NotExist)
	}
	st, err := d.groupState(gk, id, g, g.Version, dest, nil)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	return st, nil
}

// lockGroupDest locks outbox destination x for t, once, until
// unlockGroupDests. Taken after the stripes (the lock order of
// outbox.go); a write that holds several takes them under every stripe
// of their users, so no two writers wait on each other's destinations.
func (t *mtxn) lockGroupDest(x outboxDest) {
	if slices.ContainsFunc(t.groupDests, func(y outboxDest) bool { return y.name == x.name }) {
		return
	}
	t.groupDestUnlock = append(t.groupDestUnlock, t.d.lockDests([]outboxDest{x}))
	t.groupDests = append(t.groupDests, x)
}

// unlockGroupDests releases the destinations lockGroupDest took; calling
// it again does nothing.
func (t *mtxn) unlockGroupDests() {
	for _, u := range slices.Backward(t.groupDestUnlock) {
		u()
	}
	t.groupDestUnlock = nil
}

// remoteServers returns the servers of the remote members of the lists,
// in lock order.
func (d *DB) remoteServers(lists ...[]GroupMember) []outboxDest {
	var as []privateline.Address
	for _, l := range lists {
		for _, m := range l {
			if m.Remote {
				as = append(as, m.Address)
			}
		}
	}
	ds, _ := d.outboxDests(as) // addresses of records: valid
	return ds
}

// queueGroupUpdates queues, in t's batch, group id's state (g; nil:
// deleted) at version for each server of its remote members in old or g,
// with key (nil: the current epoch's key, if any).
func (t *mtxn) queueGroupUpdates(gk []byte, id string, old []GroupMember, g *Group, version uint64, key *groupKeyView) error {
	var now []GroupMember
	if g != nil {
		now = g.Members
	}
	for _, x := range t.d.remoteServers(old, now) {
		st, err := t.d.groupState(gk, id, g, version, x.name, key)
		if err != nil {
			return err
		}
		t.lockGroupDest(x)
		if err := t.queueGroupState(x, gk, st); err != nil { // fedgroupsync.go
			return err
		}
	}
	return nil
}

// queueGroupEnvelopes queues the group message dl for the servers of its
// remote recipients (dl.fanout), in t's batch.
func (t *mtxn) queueGroupEnvelopes(dl *Delivery) error {
	var as []privateline.Address
	for _, to := range dl.fanout {
		as = append(as, to...)
	}
	ds, err := t.d.outboxDests(as)
	if err != nil {
		return err
	}
	for _, x := range ds {
		to := slices.Clone(dl.fanout[x.name])
		slices.Sort(to)
		p, err := json.Marshal(GroupEnvelopePayload{Group: dl.Group, To: to})
		if err != nil {
			return err
		}
		t.lockGroupDest(x)
		if err := t.queueItems([]outboxDest{x}, OutboxGroupEnvelopes, dl.MsgID, p); err != nil {
			return err
		}
		if err := t.groupItemQueued(x, dl.Group); err != nil { // fedgroupsync.go
			return err
		}
	}
	return nil
}

// GroupReplica is a group's state from its server, for this server's
// replica: Group has Replica set and its members resolved (users of this
// server with their ids; everybody else Remote, id filled in here); Key,
// if not nil, the wraps of an epoch for users of this server.
type GroupReplica struct {
	Group *Group
	Key   *GroupReplicaKey
}

// GroupReplicaKey is an epoch's key document for this server's members.
type GroupReplicaKey struct {
	Epoch  int64
	Signed []byte
	Sum    []byte
	Wraps  map[ID][2]string // user → key id, wrap
}

// localIDs are the ids of r's members with an account here.
func (r *GroupReplica) localIDs() []ID {
	var ids []ID
	for _, m := range r.Group.Members {
		if !m.Remote {
			ids = append(ids, m.User)
		}
	}
	for u := range r.Key.wraps() {
		ids = append(ids, u)
	}
	return ids
}

func (k *GroupReplicaKey) wraps() map[ID][2]string {
	if k == nil {
		return nil
	}
	return k.Wraps
}

// ErrNotReplica: a group state names a group this server owns.
var ErrNotReplica = privateline.E("storage", privateline.Forbidden, "the group is this server's own")

// ApplyGroupReplica applies a group's state from its server (the answer
// to a request, spec §12.1) as applyReplica does, in one synced batch.
func (d *DB) ApplyGroupReplica(r *GroupReplica) (applied bool, err error) {
	const op = "storage.ApplyGroupReplica"
	gk, err := groupKeyID(r.Group.ID)
	if err != nil {
		return false, privateline.E(op, privateline.Invalid, "not a group id")
	}
	for {
		var held []ID
		ids := [][]byte{gk}
		cur, _, err := d.group(r.Group.ID)
		if err == nil {
			held = cur.memberIDs()
		} else if !privateline.Is(privateline.NotExist, err) {
			return false, privateline.E(op, err)
		}
		held = append(held, r.localIDs()...)
		for _, u := range held {
			ids = append(ids, slices.Clone(u[:]))
		}
		unlock := d.lockStripes(ids...)
		if !d.stripesHeld(r.Group.ID, held) {
			unlock()
			continue
		}
		t := d.newMtxn(nil)
		t.release = unlock
		applied, err := t.applyReplica(gk, r)
		if err == nil {
			err = t.commit()
		} else {
			t.b.Close()
		}
		unlock()
		if err != nil {
			return false, privateline.E(op, err)
		}
		return applied, nil
	}
}

// stripesHeld reports whether the stored record of group id has no
// member outside held (read under the locks of held).
func (d *DB) stripesHeld(id string, held []ID) bool {
	cur, _, err := d.group(id)
	if err != nil {
		return true
	}
	in := map[int]bool{}
	for _, u := range held {
		in[stripeOf(u[:])] = true
	}
	for _, u := range cur.memberIDs() {
		if !in[stripeOf(u[:])] {
			return false
		}
	}
	return true
}

// applyReplica applies r in t: the key wraps always (an epoch's document
// never changes within an era of the group's server: the first one
// stays; a state of a later era that is not older than the replica
// replaces another document of its epoch), the record only if r is newer
// than the replica (newerState: a later era, or a greater version in the
// same one). A replica none of whose members is a user here is
// deleted. The caller holds the stripes of the group and of its members,
// old and new. It reports whether the record changed.
func (t *mtxn) applyReplica(gk []byte, r *GroupReplica) (bool, error) {
	d := t.d
	g := r.Group
	cur, _, err := d.group(g.ID)
	if w, ok := t.replicas[g.ID]; ok { // written earlier in this batch
		cur, err = w, nil
		if w == nil {
			err = privateline.E(privateline.NotExist)
		}
	}
	switch {
	case err == nil:
		if !cur.Replica {
			return false, ErrNotReplica
		}
	case privateline.Is(privateline.NotExist, err):
		cur = nil
		// Group records are keyed by the id's hex part: another group
		// under it (of this server, or of a server that chose the same
		// hex) is not this one's to replace.
		var other Group
		if err := d.getJSON(tGroup.key(gk), &other); err == nil && other.ID != g.ID {
			return false, ErrNotReplica
		} else if err != nil && !privateline.Is(privateline.NotExist, err) {
			return false, err
		}
	default:
		return false, err
	}
	g.Replica = true
	local := false
	for i := range g.Members {
		m := &g.Members[i]
		if m.Remote || m.User.IsZero() {
			m.Remote, m.User = true, d.remoteMemberID(m.Address)
		} else {
			local = true
		}
	}
	noteSeenEpoch(g, cur) // fedepochs.go
	older := cur != nil && !newerState(g, cur)
	changed := cur == nil && local || cur != nil && !older
	if changed && local && cur != nil && sameReplica(cur, g) {
		// Only the era or version moved (the group's server restarted, or
		// answered a state request with what this replica holds): the
		// record follows, nobody is told of a change.
		if err := d.setJSON(t.b, tGroup.key(gk), g); err != nil {
			return false, err
		}
		if t.replicas == nil {
			t.replicas = map[string]*Group{}
		}
		t.replicas[g.ID] = g
		changed = false
	} else if changed {
		var old []GroupMember
		if cur != nil {
			old = cur.Members
		}
		after := g
		if !local {
			after = nil
		}
		if err := t.writeGroup(gk, g.ID, old, after); err != nil {
			return false, err
		}
		if t.replicas == nil {
			t.replicas = map[string]*Group{}
		}
		t.replicas[g.ID] = after
	}
	if k := r.Key; k != nil && (changed && local || !changed && cur != nil) {
		ek := tGroupKey.key(gk, u64(uint64(k.Epoch)))
		var rec groupKeyRecord
		replace := false
		if err := d.getJSON(ek, &rec); privateline.Is(privateline.NotExist, err) {
			replace = true
		} else if err != nil {
			return false, err
		} else if !older && g.Era > rec.Era && !hmac.Equal(rec.Sum, k.Sum) {
			// The group's server went back (restored from a backup) and
			// made this epoch again, with another document: the one of
			// its current lineage is the epoch's now.
			replace = true
		}
		if replace {
			if err := d.setJSON(t.b, ek, groupKeyRecord{Signed: k.Signed, Sum: k.Sum, Era: g.Era}); err != nil {
				return false, err
			}
		}
		for u, w := range k.Wraps {
			wk := tGroupWrap.key(gk, u[:], u64(uint64(k.Epoch)))
			if ok, err := d.exists(wk); err != nil {
				return false, err
			} else if !ok || replace {
				if err := d.setJSON(t.b, wk, groupWrap{KeyID: w[0], Wrap: w[1]}); err != nil {
					return false, err
				}
			}
		}
	}
	return changed, nil
}
