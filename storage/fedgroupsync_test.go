package storage

import (
	"crypto/sha256"
	"fmt"
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
		if gone, err := d.DropGroupReplica(rid, 0, 3); err != nil || gone {
			t.Fatalf("drop at version 3: %v %v", gone, err)
		}
		if gs, _ := d.UserGroups(ben.ID); len(gs) != 1 {
			t.Fatalf("ben's groups after a stale drop: %+v", gs)
		}
		seq := lastSeq(t, d, ben)
		if gone, err := d.DropGroupReplica(rid, 0, 4); err != nil || !gone {
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
		if gone, err := d.DropGroupReplica(rid, 0, 4); err != nil || gone {
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

// TestGroupReplicaEras: a group's server restored from a backup counts
// versions again from the backup's; its states carry a greater era, so a
// member's server takes them although their versions are lower, and
// takes the document its current lineage made for an epoch the lost one
// had made too. A state of the lost era does not bring the replica back.
// A restart alone moves the era: the replica takes it without events.
func TestGroupReplicaEras(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		d := e.db
		us := createUsers(t, d, "ann", "ben")
		ann, ben := us[0], us[1]
		annA, benA := rcpt(ann).Address, rcpt(ben).Address
		local := map[privateline.Address]ID{annA: ann.ID, benA: ben.ID}
		rid := newMsgID() + "@" + string(other)
		key := func(epoch int64, doc string) *GroupStateKey {
			sum := sha256.Sum256([]byte(doc))
			return &GroupStateKey{Epoch: epoch, Document: []byte(doc), Sum: sum[:], Wraps: map[privateline.Address]GroupStateWrap{annA: {KeyID: "k", Wrap: "wrap of " + doc}}}
		}
		apply := func(era uint64, st GroupState) bool {
			t.Helper()
			r := replicaOf(st, local)
			r.Group.Era = era
			ok, err := d.ApplyGroupReplica(r)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		wrapOf := func(epoch int64) string {
			t.Helper()
			_, _, w, err := d.GroupKey(rid, epoch, ann.ID)
			if err != nil {
				t.Fatalf("ann's wrap of epoch %d: %v", epoch, err)
			}
			return w
		}
		three := []GroupStateMember{{Address: rob, Role: RoleOwner}, {Address: annA, Role: RoleMember, Joined: 1}, {Address: benA, Role: RoleMember, Joined: 2}}
		two := three[:2]
		if !apply(5, GroupState{Group: rid, Version: 3, Epoch: 1, Members: two, Key: key(1, "one")}) ||
			!apply(5, GroupState{Group: rid, Version: 4, Epoch: 2, Members: three, Key: key(2, "two")}) {
			t.Fatal("the first states were not taken")
		}
		// other.example is restored from a backup taken at version 3 and
		// makes version 4 again: another change (ben left, a new epoch 2).
		if !apply(6, GroupState{Group: rid, Version: 3, Epoch: 1, Members: two, Key: key(1, "one")}) {
			t.Fatal("the restored server's state (a later era, a lower version) was not taken")
		}
		if gs, _ := d.UserGroups(ben.ID); len(gs) != 0 {
			t.Fatalf("ben is no member after the restore, but has %+v", gs)
		}
		if r, err := d.GroupReplicaOf(rid); err != nil || r.Era != 6 || r.Version != 3 || r.Epoch != 1 || len(r.Members) != 2 {
			t.Fatalf("replica %+v %v", r, err)
		}
		// The lost lineage's state, delivered late: nothing goes back.
		if apply(5, GroupState{Group: rid, Version: 9, Epoch: 2, Members: three, Key: key(2, "two")}) {
			t.Fatal("a state of the lost era was taken")
		}
		if gs, _ := d.UserGroups(ben.ID); len(gs) != 0 {
			t.Fatalf("ben is back in the group: %+v", gs)
		}
		// The restored server makes epoch 2 again: its document is the
		// epoch's now.
		if !apply(6, GroupState{Group: rid, Version: 4, Epoch: 2, Members: two, Key: key(2, "two again")}) {
			t.Fatal("version 4 of the new era was not taken")
		}
		if w := wrapOf(2); w != "wrap of two again" {
			t.Fatalf("ann's wrap of epoch 2: %q", w)
		}
		// Within an era the first document of an epoch stays.
		apply(6, GroupState{Group: rid, Version: 4, Epoch: 2, Members: two, Key: key(2, "forged")})
		if w := wrapOf(2); w != "wrap of two again" {
			t.Fatalf("ann's wrap of epoch 2 after the same state with another document: %q", w)
		}
		// A restart of other.example: the same group, a new era.
		seq := lastSeq(t, d, ann)
		if apply(7, GroupState{Group: rid, Version: 4, Epoch: 2, Members: two, Key: key(2, "two again")}) {
			t.Fatal("a state with nothing new reported as a change")
		}
		if r, err := d.GroupReplicaOf(rid); err != nil || r.Era != 7 || r.Version != 4 {
			t.Fatalf("replica after a restart of its server: %+v %v", r, err)
		}
		if ev := lastEvent(t, d, ann); ev.Seq > seq {
			t.Fatalf("ann was told of a change when nothing changed: %+v", ev)
		}
		if reps, err := d.GroupReplicas(); err != nil || !slices.Equal(reps, []ReplicaVersion{{Group: rid, Era: 7, Version: 4}}) {
			t.Fatalf("replicas %+v %v", reps, err)
		}
		// Dropping is at an era and a version.
		if gone, err := d.DropGroupReplica(rid, 6, 4); err != nil || gone {
			t.Fatalf("drop at the older era: %v %v", gone, err)
		}
		if gone, err := d.DropGroupReplica(rid, 7, 4); err != nil || !gone {
			t.Fatalf("drop at the replica's era and version: %v %v", gone, err)
		}
	})
}

// TestGroupEraGrows: every opening of the store makes a greater era, also
// when the clock is behind the previous one.
func TestGroupEraGrows(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		first := e.db.GroupEra()
		if first < uint64(time.Now().Add(-time.Hour).UnixMilli()) {
			t.Fatalf("era %d is not the time of opening", first)
		}
		e.reopen()
		second := e.db.GroupEra()
		if second <= first {
			t.Fatalf("era %d after %d", second, first)
		}
		ahead := uint64(time.Now().Add(time.Hour).UnixMilli()) // a clock set back since
		b := e.db.db.NewBatch()
		e.db.setSealed(b, groupEraKey, u64(ahead))
		if err := e.db.commit(b); err != nil {
			t.Fatal(err)
		}
		e.reopen()
		if third := e.db.GroupEra(); third != ahead+1 {
			t.Fatalf("era %d after a recorded era %d", third, ahead)
		}
	})
}

// TestGroupLastQueuedGoes: the record of the last state of a group queued
// for a destination lives only while that state may still be replaced:
// it goes when a message of the group is queued after it, when the state
// is delivered or expires (also the farewell state of a group that was
// then deleted); the sweep at start removes those older versions left.
func TestGroupLastQueuedGoes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		d := e.db
		ann := createUsers(t, d, "ann")[0]
		count := func() int {
			t.Helper()
			n := 0
			if err := d.scanKeys([]byte{tGroupLastQueued.prefix}, func(_, _ []byte) error { n++; return nil }); err != nil {
				t.Fatal(err)
			}
			return n
		}
		meta := func(id string, m string) {
			t.Helper()
			if _, err := d.UpdateGroup(ChangeGroup{Group: id, By: ann.ID, Meta: ptr(m)}); err != nil {
				t.Fatal(err)
			}
		}
		now := time.Now()
		g, err := d.CreateGroup("hs", member(ann), []GroupMember{{Address: rob, Remote: true}}, "", now)
		if err != nil {
			t.Fatal(err)
		}
		if n := count(); n != 1 {
			t.Fatalf("%d records after a state was queued", n)
		}
		dl := &Delivery{MsgID: newMsgID(), Sender: rcpt(ann), Group: g.ID, Epoch: 1, Raw: []byte(`{}`)}
		if _, _, err := d.Deliver(dl); err != nil {
			t.Fatal(err)
		}
		if n := count(); n != 0 {
			t.Fatalf("%d records after a message was queued behind the state", n)
		}
		meta(g.ID, "YQ==")
		if n := count(); n != 1 {
			t.Fatalf("%d records after another state", n)
		}
		if items := drain(t, d, other); len(items) != 3 {
			t.Fatalf("delivered %d items", len(items))
		}
		if n := count(); n != 0 {
			t.Fatalf("%d records after the states were delivered", n)
		}

		// A group whose last member on other goes, then the group: its
		// farewell state expires, and with it the record.
		h, err := d.CreateGroup("hs", member(ann), []GroupMember{{Address: rob, Remote: true}}, "", now)
		if err != nil {
			t.Fatal(err)
		}
		meta(h.ID, "Yg==")
		robID := h.MemberAt(rob).User
		if _, err := d.UpdateGroup(ChangeGroup{Group: h.ID, By: ann.ID, Remove: &robID}); err != nil {
			t.Fatal(err)
		}
		if gone, err := d.UpdateGroup(ChangeGroup{Group: h.ID, By: ann.ID, Remove: &ann.ID}); err != nil || gone != nil {
			t.Fatalf("ann, the last member, leaves: %+v %v", gone, err)
		}
		if n := count(); n != 1 {
			t.Fatalf("%d records with the farewell state queued", n)
		}
		if n, err := d.OutboxExpire(other, time.Now().Add(time.Hour)); err != nil || n != 1 {
			t.Fatalf("expire: %d %v", n, err)
		}
		if n := count(); n != 0 {
			t.Fatalf("%d records after the farewell state expired", n)
		}

		// Records an older version left: one naming a state that is no
		// longer queued, and one naming a message. A live one stays.
		k, err := d.CreateGroup("hs", member(ann), []GroupMember{{Address: rob, Remote: true}}, "", now)
		if err != nil {
			t.Fatal(err)
		}
		b := d.db.NewBatch()
		for i, v := range []lastQueued{{Seq: 1 << 40, State: true}, {}} {
			gk, _ := groupKeyID(fmt.Sprintf("%032x@hs", i+1))
			if err := d.setJSON(b, tGroupLastQueued.key(d.serverHash(other), gk), v); err != nil {
				t.Fatal(err)
			}
		}
		if err := d.commit(b); err != nil {
			t.Fatal(err)
		}
		if n, err := d.SweepGroupLastQueued(); err != nil || n != 2 {
			t.Fatalf("sweep: %d %v", n, err)
		}
		if n := count(); n != 1 {
			t.Fatalf("%d records after the sweep; want k's", n)
		}
		meta(k.ID, "Yw==") // the live record still replaces k's state
		if items := drain(t, d, other); len(items) != 1 || stateOf(t, items[0]).Version != 2 {
			t.Fatalf("k's states delivered: %+v", items)
		}
		if n := count(); n != 0 {
			t.Fatalf("%d records at the end", n)
		}
	})
}
