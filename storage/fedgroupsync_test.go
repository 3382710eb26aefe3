package storage

import (
	"slices"
	"testing"
	"time"

	"github.com/privateline/privateline"
)

// TestGroupUpdatesOutliveTheDeliveryTimeout: at the delivery timeout a
// group message for another server goes with a delivery_failed event for
// its sender, as a direct message does; the group's states for that
// server stay queued (also one in the pending transaction), in order, so
// the server gets them when it is back.
func TestGroupUpdatesOutliveTheDeliveryTimeout(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		d := e.db
		clock := time.Unix(1_800_000_000, 0)
		d.now = func() time.Time { return clock }
		ann := createUsers(t, d, "ann")[0]
		g, err := d.CreateGroup("hs", member(ann), []GroupMember{{Address: rob, Remote: true}}, "", clock)
		if err != nil {
			t.Fatal(err)
		}
		var c ids
		txn, err := d.OutboxNext(other, 256, 1<<20, c.next) // the first state, pending
		if err != nil || txn == nil || txn.Type != OutboxGroupUpdates {
			t.Fatalf("pending %+v %v", txn, err)
		}
		clock = clock.Add(time.Hour)
		dl := &Delivery{MsgID: newMsgID(), Sender: rcpt(ann), Group: g.ID, Epoch: 1, Raw: []byte(`{}`)}
		if _, _, err := d.Deliver(dl); err != nil {
			t.Fatal(err)
		}
		clock = clock.Add(time.Hour)
		if g, err = d.UpdateGroup(ChangeGroup{Group: g.ID, By: ann.ID, Meta: ptr("bWV0YQ==")}); err != nil || g.Version != 2 {
			t.Fatalf("meta: %+v %v", g, err)
		}
		seq := lastSeq(t, d, ann)

		n, err := d.OutboxExpire(other, clock.Add(time.Hour))
		if err != nil || n != 1 {
			t.Fatalf("expire: %d, %v; want the message only", n, err)
		}
		evs := fedEvents(t, d, ann, seq)
		if len(evs) != 1 || evs[0].Type != EventDeliveryFailed || evs[0].ID != dl.MsgID || evs[0].Error != "timeout" || evs[0].Server != other {
			t.Fatalf("ann's events: %+v", evs)
		}
		if depth, _ := d.OutboxDepth(); depth[other] != 2 {
			t.Fatalf("depth %d, want the two states", depth[other])
		}
		// Again: nothing more goes, and the pending transaction is intact.
		if n, err := d.OutboxExpire(other, clock.Add(time.Hour)); err != nil || n != 0 {
			t.Fatalf("expire again: %d, %v", n, err)
		}
		again, err := d.OutboxNext(other, 256, 1<<20, c.next)
		if err != nil || again.TxnID != txn.TxnID || len(again.Items) != 1 {
			t.Fatalf("the pending transaction changed: %+v %v", again, err)
		}
		var versions []uint64
		for _, it := range drain(t, d, other) {
			versions = append(versions, stateOf(t, it).Version)
		}
		if !slices.Equal(versions, []uint64{1, 2}) {
			t.Fatalf("delivered states of versions %v, want [1 2]", versions)
		}
		// A message queued after a kept state still expires.
		clock = clock.Add(time.Hour)
		if _, err = d.UpdateGroup(ChangeGroup{Group: g.ID, By: ann.ID, Meta: ptr("bWV0YTI=")}); err != nil {
			t.Fatal(err)
		}
		clock = clock.Add(time.Hour)
		dl2 := &Delivery{MsgID: newMsgID(), Sender: rcpt(ann), Group: g.ID, Epoch: 1, Raw: []byte(`{}`)}
		if _, _, err := d.Deliver(dl2); err != nil {
			t.Fatal(err)
		}
		if n, err := d.OutboxExpire(other, clock.Add(time.Minute)); err != nil || n != 1 {
			t.Fatalf("expire behind a kept state: %d, %v", n, err)
		}
		if items := drain(t, d, other); len(items) != 1 || stateOf(t, items[0]).Version != 3 {
			t.Fatalf("left: %+v", items)
		}
		// rob, other's last member, is removed: that state (none of its
		// members on other) expires, silently; other, when back, asks
		// for the state of its replica and drops it.
		robID := g.MemberAt(rob).User
		if _, err := d.UpdateGroup(ChangeGroup{Group: g.ID, By: ann.ID, Remove: &robID}); err != nil {
			t.Fatal(err)
		}
		seq = lastSeq(t, d, ann)
		if n, err := d.OutboxExpire(other, clock.Add(time.Hour)); err != nil || n != 1 {
			t.Fatalf("expire the farewell state: %d, %v", n, err)
		}
		if depth, _ := d.OutboxDepth(); depth[other] != 0 {
			t.Fatalf("depth %d after the farewell state expired", depth[other])
		}
		if evs := fedEvents(t, d, ann, seq); len(evs) != 0 {
			t.Fatalf("events for an expired state: %+v", evs)
		}
	})
}

// TestGroupSyncState: the group's server answers a server's state request
// only for one of its groups with a member there; a member's server lists
// its replicas, and drops one only if it is still at the version it had.
func TestGroupSyncState(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		d := e.db
		us := createUsers(t, d, "ann", "ben")
		ann, ben := us[0], us[1]
		now := time.Unix(1_800_000_000, 0)
		g, err := d.CreateGroup("hs", member(ann), []GroupMember{{Address: rob, Remote: true}}, "", now)
		if err != nil {
			t.Fatal(err)
		}
		st, err := d.GroupSyncState(g.ID, other)
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := d.GroupStateFor(g.ID, other); string(st) != string(want) {
			t.Fatalf("state %s, want %s", st, want)
		}
		for _, c := range []struct {
			id   string
			dest privateline.ServerName
		}{{g.ID, third}, {newMsgID() + "@hs", other}, {"not a group", other}} {
			if _, err := d.GroupSyncState(c.id, c.dest); !privateline.Is(privateline.NotExist, err) {
				t.Errorf("state of %s for %s: %v, want NotExist", c.id, c.dest, err)
			}
		}
		if _, err := d.GroupReplicaOf(g.ID); !privateline.Is(privateline.NotExist, err) {
			t.Fatalf("this server's own group as a replica: %v", err)
		}

		// A replica of a group of other.example, with ann and ben.
		annA, benA := rcpt(ann).Address, rcpt(ben).Address
		rid := newMsgID() + "@" + string(other)
		rs := GroupState{Group: rid, Version: 4, Epoch: 1, Members: []GroupStateMember{{Address: rob, Role: RoleOwner}, {Address: annA, Role: RoleMember, Joined: 1}, {Address: benA, Role: RoleMember, Joined: 2}}}
		if ok, err := d.ApplyGroupReplica(replicaOf(rs, map[privateline.Address]ID{annA: ann.ID, benA: ben.ID})); err != nil || !ok {
			t.Fatalf("replica: %v %v", ok, err)
		}
		if reps, err := d.GroupReplicas(); err != nil || !slices.Equal(reps, []ReplicaVersion{{Group: rid, Version: 4}}) {
			t.Fatalf("replicas %+v %v", reps, err)
		}
		if r, err := d.GroupReplicaOf(rid); err != nil || r.Version != 4 || r.MemberAt(benA) == nil {
			t.Fatalf("replica of %s: %+v %v", rid, r, err)
		}
		if _, err := d.GroupSyncState(rid, other); !privateline.Is(privateline.NotExist, err) {
			t.Fatalf("a replica's state for its own server: %v", err)
		}
		// Dropping at an older version: it has moved on, it stays.
		if gone, err := d.DropGroupReplica(rid, 3); err != nil || gone {
			t.Fatalf("drop at version 3: %v %v", gone, err)
		}
		if gs, _ := d.UserGroups(ben.ID); len(gs) != 1 {
			t.Fatalf("ben's groups after a stale drop: %+v", gs)
		}
		seq := lastSeq(t, d, ben)
		if gone, err := d.DropGroupReplica(rid, 4); err != nil || !gone {
			t.Fatalf("drop at version 4: %v %v", gone, err)
		}
		if gs, _ := d.UserGroups(ben.ID); len(gs) != 0 {
			t.Fatalf("ben's groups after the drop: %+v", gs)
		}
		if ev := lastEvent(t, d, ben); ev.Type != EventGroupChanged || ev.Group != rid || ev.Seq <= seq {
			t.Fatalf("ben's event: %+v", ev)
		}
		if reps, err := d.GroupReplicas(); err != nil || len(reps) != 0 {
			t.Fatalf("replicas after the drop: %+v %v", reps, err)
		}
		if gone, err := d.DropGroupReplica(rid, 4); err != nil || gone {
			t.Fatalf("drop of no replica: %v %v", gone, err)
		}
	})
}

// TestGroupStatesCoalesce: while a destination does not take them, a
// group's new state replaces its previous one if nothing of the group was
// queued after it and it is not handed out (pending); a message between
// two states keeps the earlier one.
func TestGroupStatesCoalesce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		d := e.db
		ann := createUsers(t, d, "ann")[0]
		g, err := d.CreateGroup("hs", member(ann), []GroupMember{{Address: rob, Remote: true}}, "", time.Unix(1_800_000_000, 0))
		if err != nil {
			t.Fatal(err)
		}
		// Another group's state between two of g's does not keep the first.
		h, err := d.CreateGroup("hs", member(ann), []GroupMember{{Address: rita, Remote: true}}, "", time.Unix(1_800_000_000, 0))
		if err != nil {
			t.Fatal(err)
		}
		meta := func(id string, m string) {
			t.Helper()
			if _, err := d.UpdateGroup(ChangeGroup{Group: id, By: ann.ID, Meta: ptr(m)}); err != nil {
				t.Fatal(err)
			}
		}
		depth := func() int {
			t.Helper()
			dd, err := d.OutboxDepth()
			if err != nil {
				t.Fatal(err)
			}
			return dd[other]
		}
		if n := depth(); n != 2 {
			t.Fatalf("depth %d after two groups were made", n)
		}
		var c ids
		txn, err := d.OutboxNext(other, 1, 1<<20, c.next) // g's version 1, handed out
		if err != nil || len(txn.Items) != 1 || stateOf(t, OutboxItem{Type: txn.Type, Payload: txn.Items[0].Payload}).Group != g.ID {
			t.Fatalf("pending %+v %v", txn, err)
		}
		meta(g.ID, "YQ==") // v2: the pending v1 stays
		meta(g.ID, "Yg==") // v3 replaces v2
		meta(h.ID, "Yw==") // h's v2 replaces h's v1
		meta(g.ID, "ZA==") // v4 replaces v3
		if n := depth(); n != 3 {
			t.Fatalf("depth %d, want g's pending v1, h's v2 and g's v4", n)
		}
		dl := &Delivery{MsgID: newMsgID(), Sender: rcpt(ann), Group: g.ID, Epoch: 1, Raw: []byte(`{}`)}
		if _, _, err := d.Deliver(dl); err != nil {
			t.Fatal(err)
		}
		meta(g.ID, "ZQ==") // v5 after a message: v4 stays
		meta(g.ID, "Zg==") // v6 replaces v5
		type got struct {
			group   string
			version uint64
		}
		var items []got
		for _, it := range drain(t, d, other) {
			if it.Type == OutboxGroupEnvelopes {
				items = append(items, got{it.ID, 0})
				continue
			}
			st := stateOf(t, it)
			items = append(items, got{st.Group, st.Version})
		}
		want := []got{{g.ID, 1}, {h.ID, 2}, {g.ID, 4}, {dl.MsgID, 0}, {g.ID, 6}}
		if !slices.Equal(items, want) {
			t.Fatalf("delivered %v, want %v", items, want)
		}
		if n := depth(); n != 0 {
			t.Fatalf("depth %d after draining", n)
		}
	})
}
