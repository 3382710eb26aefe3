package storage

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/privateline/privateline"
)

// TestReplicaSeenEpoch: a replica remembers the highest epoch it held and
// the era of the state it first held it in, across a state of a restored
// server (a later era, a lower epoch) and that server making the epoch
// again.
func TestReplicaSeenEpoch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		d := e.db
		ann := createUsers(t, d, "ann")[0]
		annA := rcpt(ann).Address
		local := map[privateline.Address]ID{annA: ann.ID}
		rid := newMsgID() + "@" + string(other)
		members := []GroupStateMember{{Address: rob, Role: RoleOwner}, {Address: annA, Role: RoleMember, Joined: 1}}
		apply := func(era uint64, version uint64, epoch int64) {
			t.Helper()
			r := replicaOf(GroupState{Group: rid, Version: version, Epoch: epoch, Members: members}, local)
			r.Group.Era = era
			if _, err := d.ApplyGroupReplica(r); err != nil {
				t.Fatal(err)
			}
		}
		seen := func(what string, epoch int64, seenEpoch int64, seenEra uint64) {
			t.Helper()
			r, err := d.GroupReplicaOf(rid)
			if err != nil || r.Epoch != epoch || r.SeenEpoch != seenEpoch || r.SeenEra != seenEra {
				t.Fatalf("%s: replica %+v %v; want epoch %d, seen %d in era %d", what, r, err, epoch, seenEpoch, seenEra)
			}
		}
		apply(5, 1, 1)
		apply(5, 2, 3)
		seen("epoch 3", 3, 3, 5)
		apply(6, 1, 1) // restored
		seen("after the restore", 1, 3, 5)
		apply(6, 3, 3) // epoch 3 made again
		seen("epoch 3 made again", 3, 3, 5)
		apply(7, 3, 3) // a restart
		seen("after a restart", 3, 3, 5)
		apply(7, 4, 4)
		seen("epoch 4", 4, 4, 7)
		// A record written by an older version (no seen epoch): its epoch,
		// in an era not known (0), which no later era replaces.
		r, err := d.GroupReplicaOf(rid)
		if err != nil {
			t.Fatal(err)
		}
		r.SeenEpoch, r.SeenEra = 0, 0
		gk, _ := groupKeyID(rid)
		b := d.db.NewBatch()
		if err := d.setJSON(b, tGroup.key(gk), r); err != nil {
			t.Fatal(err)
		}
		if err := d.commit(b); err != nil {
			t.Fatal(err)
		}
		apply(8, 5, 4)
		seen("an older version's record", 4, 4, 0)
	})
}

// TestRaiseGroupEpoch: the group's server moves its group past an epoch a
// replica on a server with a member held (higher, or the same number held
// from an era before the group's epoch began), by a new keyless epoch
// queued to its members' servers; not for a server without members, not
// for what it made itself (also after a restart), not twice for one
// server in an era, and not beyond the bound.
func TestRaiseGroupEpoch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		d := e.db
		ann := createUsers(t, d, "ann")[0]
		const third, fourth, fifth = privateline.ServerName("third.example"), privateline.ServerName("fourth.example"), privateline.ServerName("fifth.example")
		remote := []GroupMember{{Address: rob, Remote: true}}
		for _, srv := range []privateline.ServerName{third, fourth, fifth} {
			remote = append(remote, GroupMember{Address: privateline.Address("sue@" + string(srv)), Remote: true})
		}
		g, err := d.CreateGroup("hs", member(ann), remote, "", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		era := d.GroupEra()
		group := func() *Group {
			t.Helper()
			g, err := d.GroupFor(g.ID, ann.ID)
			if err != nil {
				t.Fatal(err)
			}
			return g
		}
		raise := func(from privateline.ServerName, seen int64, seenEra uint64) (bool, error) {
			return d.RaiseGroupEpoch(g.ID, from, seen, seenEra)
		}
		if ok, err := raise(other, 1, era); ok || err != nil {
			t.Fatalf("the replica's own epoch 1: %v %v", ok, err)
		}
		if ok, err := raise("sixth.example", 9, era); ok || !privateline.Is(privateline.NotExist, err) {
			t.Fatalf("a server without members: %v %v", ok, err)
		}
		seq := lastSeq(t, d, ann)
		if ok, err := raise(other, 3, era-1); !ok || err != nil {
			t.Fatalf("a lost epoch 3: %v %v", ok, err)
		}
		if g2 := group(); g2.Epoch != 4 || g2.Version != g.Version+1 || len(g2.Members) != 5 {
			t.Fatalf("after the raise: %+v", g2)
		}
		if _, _, _, err := d.GroupKey(g.ID, 4, ann.ID); !privateline.Is(privateline.NotExist, err) {
			t.Fatalf("epoch 4 has a key before a client made one: %v", err)
		}
		if ev := lastEvent(t, d, ann); ev.Seq <= seq || ev.Type != EventGroupChanged || ev.Group != g.ID {
			t.Fatalf("ann's last event: %+v", ev)
		}
		var c ids
		txn, err := d.OutboxNext(other, 256, 1<<20, c.next)
		if err != nil || txn == nil || txn.Type != OutboxGroupUpdates || len(txn.Items) != 1 {
			t.Fatalf("queued for %s: %+v %v", other, txn, err)
		}
		var st GroupState
		if err := json.Unmarshal(txn.Items[0].Payload, &st); err != nil || st.Epoch != 4 || st.Version != g.Version+1 {
			t.Fatalf("the state queued for %s: %+v %v (%s)", other, st, err, txn.Items[0].Payload)
		}
		// One move per server and era.
		if ok, err := raise(other, 9, era-1); ok || err != nil || group().Epoch != 4 {
			t.Fatalf("a second claim of the same server: %v %v, epoch %d", ok, err, group().Epoch)
		}
		// Epoch 4 as this server made it, or held first from a later era
		// (an answer after a restart), or in an era not known: nothing;
		// held from an earlier era (a lost epoch 4): past it.
		for _, e := range []uint64{era, era + 1, 0} {
			if ok, err := raise(third, 4, e); ok || err != nil {
				t.Fatalf("epoch 4 held from era %d (the group's epoch began in %d): %v %v", e, era, ok, err)
			}
		}
		if ok, err := raise(third, 4, era-1); !ok || err != nil || group().Epoch != 5 {
			t.Fatalf("another era's epoch 4: %v %v, epoch %d", ok, err, group().Epoch)
		}
		// The bound counts from the epoch before the era's first raise (1).
		if ok, err := raise(fourth, 1+MaxEpochLead, era-1); ok || !privateline.Is(privateline.Invalid, err) || group().Epoch != 5 {
			t.Fatalf("a claim beyond the bound: %v %v, epoch %d", ok, err, group().Epoch)
		}
		if ok, err := raise(fourth, MaxEpochLead, era-1); !ok || err != nil || group().Epoch != MaxEpochLead+1 {
			t.Fatalf("a claim within the bound: %v %v, epoch %d", ok, err, group().Epoch)
		}
		if ok, err := raise(fifth, MaxEpochLead+1, era-1); ok || !privateline.Is(privateline.Invalid, err) {
			t.Fatalf("a claim past the era's bound: %v %v", ok, err)
		}
		// A restart (a new era) without a restore: the replica's epoch,
		// made in the previous era, is the group's; nothing moves. A
		// server may move it again in the new era.
		e.reopen()
		d = e.db
		if ok, err := raise(fourth, MaxEpochLead+1, era); ok || err != nil || group().Epoch != MaxEpochLead+1 {
			t.Fatalf("after a restart: %v %v, epoch %d", ok, err, group().Epoch)
		}
		if ok, err := raise(other, MaxEpochLead+5, era-1); !ok || err != nil || group().Epoch != MaxEpochLead+6 {
			t.Fatalf("a claim in the new era: %v %v, epoch %d", ok, err, group().Epoch)
		}
	})
}

// TestRaiseGroupEpochByMember: a member's client that holds a key of an
// epoch the group has not passed (a higher one, or the current one it
// was about to make again) moves the group past it, as a replica's claim
// does, with no remote member to report it; not for a lower epoch, not
// for a non-member or a replica, once per member and era, within the
// bound.
func TestRaiseGroupEpochByMember(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		d := e.db
		us := createUsers(t, d, "ann", "ben", "cat", "dan")
		ann, ben, cat, dan := us[0], us[1], us[2], us[3]
		g, err := d.CreateGroup("hs", member(ann), []GroupMember{member(ben), member(cat)}, "", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		raise := func(u *User, seen int64) (bool, *Group, error) {
			return d.RaiseGroupEpochByMember(g.ID, u.ID, seen)
		}
		epoch := func() int64 {
			t.Helper()
			g, err := d.GroupFor(g.ID, ann.ID)
			if err != nil {
				t.Fatal(err)
			}
			return g.Epoch
		}
		if ok, _, err := raise(dan, 5); ok || !privateline.Is(privateline.NotExist, err) || epoch() != 1 {
			t.Fatalf("a non-member's claim: %v %v, epoch %d", ok, err, epoch())
		}
		seq := lastSeq(t, d, ben)
		if ok, after, err := raise(ann, 3); !ok || err != nil || after.Epoch != 4 || epoch() != 4 || after.Version != g.Version+1 {
			t.Fatalf("ann held epoch 3: %v %+v %v", ok, after, err)
		}
		if ev := lastEvent(t, d, ben); ev.Seq <= seq || ev.Type != EventGroupChanged || ev.Group != g.ID {
			t.Fatalf("ben's last event: %+v", ev)
		}
		if _, _, _, err := d.GroupKey(g.ID, 4, ann.ID); !privateline.Is(privateline.NotExist, err) {
			t.Fatalf("epoch 4 has a key before a client made one: %v", err)
		}
		// One move per member and era; a lower epoch moves nothing.
		if ok, after, err := raise(ann, 9); ok || err != nil || after.Epoch != 4 {
			t.Fatalf("ann's second claim: %v %+v %v", ok, after, err)
		}
		if ok, _, err := raise(ben, 2); ok || err != nil || epoch() != 4 {
			t.Fatalf("a passed epoch: %v %v, epoch %d", ok, err, epoch())
		}
		// The current epoch, held with another key: past it.
		if ok, _, err := raise(ben, 4); !ok || err != nil || epoch() != 5 {
			t.Fatalf("ben held epoch 4: %v %v, epoch %d", ok, err, epoch())
		}
		// The bound counts from the epoch before the era's first move (1),
		// members' and servers' claims alike.
		if ok, _, err := raise(cat, 1+MaxEpochLead); ok || !privateline.Is(privateline.Invalid, err) || epoch() != 5 {
			t.Fatalf("a claim beyond the bound: %v %v, epoch %d", ok, err, epoch())
		}
		// A new era: ann may move it once more.
		e.reopen()
		d = e.db
		if ok, _, err := d.RaiseGroupEpochByMember(g.ID, ann.ID, 7); !ok || err != nil || epoch() != 8 {
			t.Fatalf("ann in a new era: %v %v, epoch %d", ok, err, epoch())
		}
		// A replica's record is not this server's group.
		rid := newMsgID() + "@" + string(other)
		r := replicaOf(GroupState{Group: rid, Version: 1, Epoch: 1, Members: []GroupStateMember{{Address: rob, Role: RoleOwner}, {Address: rcpt(ann).Address, Role: RoleMember, Joined: 1}}},
			map[privateline.Address]ID{rcpt(ann).Address: ann.ID})
		r.Group.Era = 3
		if _, err := d.ApplyGroupReplica(r); err != nil {
			t.Fatal(err)
		}
		if ok, _, err := d.RaiseGroupEpochByMember(rid, ann.ID, 5); ok || !privateline.Is(privateline.NotExist, err) {
			t.Fatalf("a replica: %v %v", ok, err)
		}
	})
}
