package storage

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/privateline/privateline"
)

// drain takes every item queued for dest, in order, settling each
// transaction as delivered.
func drain(t *testing.T, d *DB, dest privateline.ServerName) []OutboxItem {
	t.Helper()
	var out []OutboxItem
	c := &ids{}
	for {
		txn, err := d.OutboxNext(dest, 256, 1<<30, c.next)
		if err != nil {
			t.Fatal(err)
		}
		if txn == nil {
			return out
		}
		var rs []OutboxResult
		for _, it := range txn.Items {
			if it.Type != txn.Type {
				t.Fatalf("a transaction of %s holds an item of %s", txn.Type, it.Type)
			}
			out = append(out, it)
			rs = append(rs, OutboxResult{ID: it.ID, Delivered: true})
		}
		if err := d.OutboxDone(dest, txn.TxnID, rs); err != nil {
			t.Fatal(err)
		}
	}
}

func stateOf(t *testing.T, it OutboxItem) GroupState {
	t.Helper()
	if it.Type != OutboxGroupUpdates {
		t.Fatalf("item of type %s, want group_updates", it.Type)
	}
	var st GroupState
	if err := json.Unmarshal(it.Payload, &st); err != nil {
		t.Fatal(err)
	}
	c, err := canonicalJSON(st)
	if err != nil || string(c) != string(it.Payload) {
		t.Fatalf("a state is not canonical JSON: %s", it.Payload)
	}
	return st
}

func stateAddrs(st GroupState) []privateline.Address {
	var as []privateline.Address
	for _, m := range st.Members {
		as = append(as, m.Address)
	}
	return as
}

// TestGroupServerQueuesStatesAndFanOut: on the group's server, a group
// with members of two other servers queues a new version of its state for
// both at every change (the key with each server's own wraps only), and
// its messages for the remote members' servers; a message of a remote
// member has no copy here and is relayed to the others.
func TestGroupServerQueuesStatesAndFanOut(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		d := e.db
		us := createUsers(t, d, "ann", "ben")
		ann, ben := us[0], us[1]
		now := time.Unix(1_800_000_000, 0)
		g, err := d.CreateGroup("hs", member(ann), []GroupMember{member(ben), {Address: rob, Remote: true}, {Address: rita, Remote: true}, {Address: sue, Remote: true}}, "", now)
		if err != nil {
			t.Fatal(err)
		}
		if g.Version != 1 || !g.MemberAt(rob).Remote || g.MemberAt(rob).User.IsZero() || g.Member(g.MemberAt(rob).User).Address != rob {
			t.Fatalf("group %+v", g)
		}
		checkGroupIndexes(t, d, ann, ben)
		for _, dest := range []privateline.ServerName{other, third} {
			items := drain(t, d, dest)
			if len(items) != 1 {
				t.Fatalf("%s: %d items", dest, len(items))
			}
			if st := stateOf(t, items[0]); st.Group != g.ID || st.Version != 1 || st.Epoch != 1 || len(st.Members) != 5 || st.Members[0].Role != RoleOwner || st.Key != nil {
				t.Fatalf("%s's state %+v", dest, st)
			}
		}
		// The key: each server gets its own members' wraps.
		up := &GroupKeyUpload{Group: g.ID, Epoch: 1, By: ann.ID, Members: g.Addresses(), Signed: []byte(`{"signed":1}`), Sum: make([]byte, 32),
			Wraps: map[privateline.Address][2]string{}, KeyIDs: map[privateline.Address]string{}}
		for _, a := range g.Addresses() {
			up.Wraps[a] = [2]string{"k-" + string(a), "w-" + string(a)}
			up.KeyIDs[a] = "k-" + string(a)
		}
		if _, err := d.PutGroupKey(up); err != nil {
			t.Fatal(err)
		}
		st := stateOf(t, drain(t, d, other)[0])
		if st.Version != 2 || st.Key == nil || st.Key.Epoch != 1 || len(st.Key.Wraps) != 2 || st.Key.Wraps[rob].Wrap != "w-"+string(rob) || st.Key.Wraps[rita].KeyID != "k-"+string(rita) {
			t.Fatalf("other's state with the key: %+v %+v", st, st.Key)
		}
		if st := stateOf(t, drain(t, d, third)[0]); st.Key == nil || len(st.Key.Wraps) != 1 || st.Key.Wraps[sue].Wrap == "" {
			t.Fatalf("third's state with the key: %+v", st.Key)
		}

		// ann's message: ben here, rob and rita through other, sue through third.
		dl := &Delivery{MsgID: newMsgID(), Sender: rcpt(ann), Group: g.ID, Epoch: 1}
		dl.Raw = []byte(`{"id":"` + dl.MsgID + `"}`)
		if _, _, err := d.Deliver(dl); err != nil {
			t.Fatal(err)
		}
		if ev := lastEvent(t, d, ben); ev.Type != EventGroupMessage || ev.ID != dl.MsgID {
			t.Fatalf("ben's event %+v", ev)
		}
		for dest, want := range map[privateline.ServerName][]privateline.Address{other: {rita, rob}, third: {sue}} {
			items := drain(t, d, dest)
			var p GroupEnvelopePayload
			if len(items) != 1 || items[0].Type != OutboxGroupEnvelopes || items[0].ID != dl.MsgID || string(items[0].Payload) != string(dl.Raw) {
				t.Fatalf("%s: %+v", dest, items)
			}
			if err := json.Unmarshal(items[0].Meta, &p); err != nil || p.Group != g.ID || !slices.Equal(p.To, want) {
				t.Fatalf("%s's fan-out %+v %v", dest, p, err)
			}
		}

		// rob's message, forwarded by other: no copy for rob here; rita
		// is other's to store (RelayTo); sue gets it through third.
		rd := &Delivery{MsgID: newMsgID(), Sender: Recipient{Address: rob}, RemoteSender: true, Group: g.ID, Epoch: 1}
		rd.Raw = []byte(`{"id":"` + rd.MsgID + `"}`)
		seq, replay, err := d.Deliver(rd)
		if err != nil || seq != 0 || replay || !slices.Equal(rd.RelayTo, []privateline.Address{rita}) {
			t.Fatalf("rob's message: seq %d replay %v relay %v: %v", seq, replay, rd.RelayTo, err)
		}
		if items := drain(t, d, other); len(items) != 0 {
			t.Fatalf("rob's own server got his message back: %+v", items)
		}
		if items := drain(t, d, third); len(items) != 1 || items[0].ID != rd.MsgID {
			t.Fatalf("third: %+v", items)
		}
		for _, u := range []*User{ann, ben} {
			if ev := lastEvent(t, d, u); ev.Type != EventGroupMessage || ev.ID != rd.MsgID {
				t.Fatalf("%s's event %+v", u.Username, ev)
			}
		}
		// A retry is a replay; another member of rob's server cannot
		// claim it; a stale epoch is refused.
		rd2 := *rd
		if _, replay, err := d.Deliver(&rd2); err != nil || !replay || !slices.Equal(rd2.RelayTo, []privateline.Address{rita}) {
			t.Fatalf("retry: replay %v relay %v: %v", replay, rd2.RelayTo, err)
		}
		rd3 := *rd
		rd3.Sender = Recipient{Address: rita}
		if _, _, err := d.Deliver(&rd3); !privateline.Is(privateline.Exist, err) {
			t.Fatalf("rita reuses rob's id: %v", err)
		}
		rd4 := Delivery{MsgID: newMsgID(), Sender: Recipient{Address: rob}, RemoteSender: true, Group: g.ID, Epoch: 2, Raw: []byte(`{}`)}
		if _, _, err := d.Deliver(&rd4); err != ErrStaleEpoch {
			t.Fatalf("stale epoch from rob: %v", err)
		}
		outsider := Delivery{MsgID: newMsgID(), Sender: Recipient{Address: "zed@other.example"}, RemoteSender: true, Group: g.ID, Epoch: 1, Raw: []byte(`{}`)}
		if _, _, err := d.Deliver(&outsider); !privateline.Is(privateline.NotExist, err) {
			t.Fatalf("a non-member of another server sends: %v", err)
		}

		// sue is removed: third hears it (and nothing more after).
		sueID := g.MemberAt(sue).User
		g, err = d.UpdateGroup(ChangeGroup{Group: g.ID, By: ann.ID, Remove: &sueID})
		if err != nil || g.Epoch != 2 || g.Version != 3 || g.MemberAt(sue) != nil {
			t.Fatalf("after removing sue: %+v %v", g, err)
		}
		if st := stateOf(t, drain(t, d, third)[0]); st.Version != 3 || slices.Contains(stateAddrs(st), sue) {
			t.Fatalf("third's state after sue left: %+v", st)
		}
		dl = &Delivery{MsgID: newMsgID(), Sender: rcpt(ann), Group: g.ID, Epoch: 2, Raw: []byte(`{}`)}
		if _, _, err := d.Deliver(dl); err != nil {
			t.Fatal(err)
		}
		if items := drain(t, d, third); len(items) != 0 {
			t.Fatalf("third after sue left: %+v", items)
		}
		// rob, a remote admin, changes the group here as a local one would.
		robID := g.MemberAt(rob).User
		if _, err := d.UpdateGroup(ChangeGroup{Group: g.ID, By: robID, Remove: &ben.ID}); !privateline.Is(privateline.Forbidden, err) {
			t.Fatalf("rob (member) removes ben: %v", err)
		}
		if gs, err := d.UserGroups(ben.ID); err != nil || len(gs) != 1 {
			t.Fatalf("ben's groups: %v %v", gs, err)
		}
		if got, err := d.GroupForAddress(g.ID, rob); err != nil || got.ID != g.ID {
			t.Fatalf("GroupForAddress(rob): %v", err)
		}
		if _, err := d.GroupForAddress(g.ID, sue); !privateline.Is(privateline.NotExist, err) {
			t.Fatalf("GroupForAddress(sue, removed): %v", err)
		}
	})
}

// replicaOf builds the replica a member's server makes of a state (as
// federation's parseGroupState does): its own users by id.
func replicaOf(st GroupState, local map[privateline.Address]ID) *GroupReplica {
	g := &Group{ID: st.Group, Version: st.Version, Epoch: st.Epoch, Retention: st.Retention, Replica: true}
	for _, m := range st.Members {
		gm := GroupMember{Address: m.Address, Role: m.Role, Joined: m.Joined, Remote: true}
		if id, ok := local[m.Address]; ok {
			gm.User, gm.Remote = id, false
		}
		g.Members = append(g.Members, gm)
	}
	r := &GroupReplica{Group: g}
	if st.Key != nil {
		r.Key = &GroupReplicaKey{Epoch: st.Key.Epoch, Signed: st.Key.Document, Sum: st.Key.Sum, Wraps: map[ID][2]string{}}
		for a, w := range st.Key.Wraps {
			if id, ok := local[a]; ok {
				r.Key.Wraps[id] = [2]string{w.KeyID, w.Wrap}
			}
		}
	}
	return r
}

// TestGroupReplica: a member's server keeps the group's newest state, with
// its members' key wraps (also from older states), tells its members,
// forgets the group when none of them is left, answers reads from it,
// refuses changes of it, and stores the group's messages only for its
// members, from members.
func TestGroupReplica(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		d := e.db // the server "hs" of ann and ben; the group is on other.example
		us := createUsers(t, d, "ann", "ben")
		ann, ben := us[0], us[1]
		annA, benA := rcpt(ann).Address, rcpt(ben).Address
		local := map[privateline.Address]ID{annA: ann.ID, benA: ben.ID}
		gid := newMsgID() + "@" + string(other)
		st := func(v uint64, epoch int64, members ...privateline.Address) GroupState {
			s := GroupState{Group: gid, Version: v, Epoch: epoch, Members: []GroupStateMember{}}
			for i, a := range members {
				role := RoleMember
				if i == 0 {
					role = RoleOwner
				}
				s.Members = append(s.Members, GroupStateMember{Address: a, Role: role, Joined: uint64(i)})
			}
			return s
		}
		apply := func(s GroupState) bool {
			t.Helper()
			applied, err := d.ApplyGroupReplica(replicaOf(s, local))
			if err != nil {
				t.Fatal(err)
			}
			return applied
		}
		if !apply(st(1, 1, rob, annA)) {
			t.Fatal("the first state was not applied")
		}
		if ev := lastEvent(t, d, ann); ev.Type != EventGroupChanged || ev.Group != gid {
			t.Fatalf("ann's event %+v", ev)
		}
		g, err := d.GroupFor(gid, ann.ID)
		if err != nil || !g.Replica || g.Version != 1 || g.MemberAt(rob) == nil || !g.MemberAt(rob).Remote {
			t.Fatalf("ann's replica %+v %v", g, err)
		}
		checkGroupIndexes(t, d, ann, ben)
		// Newer replaces; older or equal changes nothing.
		s3 := st(3, 2, rob, annA, benA)
		s3.Key = &GroupStateKey{Epoch: 2, Document: []byte(`{"e":2}`), Sum: make([]byte, 32), Wraps: map[privateline.Address]GroupStateWrap{annA: {"ka", "wa"}, benA: {"kb", "wb"}}}
		if !apply(s3) {
			t.Fatal("version 3 was not applied")
		}
		s2 := st(2, 1, rob, annA)
		s2.Key = &GroupStateKey{Epoch: 1, Document: []byte(`{"e":1}`), Sum: make([]byte, 32), Wraps: map[privateline.Address]GroupStateWrap{annA: {"ka1", "wa1"}}}
		if apply(s2) || apply(st(3, 9, rob)) {
			t.Fatal("an older or equal version was applied")
		}
		if g, _ := d.GroupFor(gid, ben.ID); g == nil || g.Version != 3 || g.Epoch != 2 || len(g.Members) != 3 {
			t.Fatalf("ben's replica %+v", g)
		}
		// The older state's key (epoch 1) was kept: an epoch's key never changes.
		if signed, kid, wrap, err := d.GroupKey(gid, 1, ann.ID); err != nil || string(signed) != `{"e":1}` || kid != "ka1" || wrap != "wa1" {
			t.Fatalf("ann's epoch-1 key: %s %s %s %v", signed, kid, wrap, err)
		}
		if _, kid, _, err := d.GroupKey(gid, 2, ben.ID); err != nil || kid != "kb" {
			t.Fatalf("ben's epoch-2 key: %s %v", kid, err)
		}
		// Changes are the group's server's.
		if _, err := d.UpdateGroup(ChangeGroup{Group: gid, By: ann.ID, Remove: &ben.ID}); !privateline.Is(privateline.Invalid, err) {
			t.Fatalf("a change of the replica: %v", err)
		}
		dl := &Delivery{MsgID: newMsgID(), Sender: rcpt(ann), Group: gid, Epoch: 2, Raw: []byte(`{}`)}
		if _, _, err := d.Deliver(dl); !privateline.Is(privateline.Invalid, err) {
			t.Fatalf("a message to the replica: %v", err)
		}
		if depth, _ := d.OutboxDepth(); depth[other] != 0 {
			t.Fatalf("a replica queued %d items", depth[other])
		}
		// A message the group's server accepted: stored for ben as the
		// group's (Relayed), ann's sent copy.
		rl := &Delivery{MsgID: newMsgID(), Sender: rcpt(ann), Recipients: []Recipient{rcpt(ben)}, Group: gid, Epoch: 2, Relayed: true, Raw: []byte(`{"r":1}`)}
		if seq, _, err := d.Deliver(rl); err != nil || seq == 0 {
			t.Fatalf("relayed: %d %v", seq, err)
		}
		if items, _ := d.Mailbox(ben.ID, MailQuery{Group: gid, Limit: 10}); len(items) != 1 || string(items[0].Envelope) != `{"r":1}` {
			t.Fatalf("ben's group page %+v", items)
		}

		// Group envelopes from the group's server (checked by federation:
		// origin is the group's server): only members, from members.
		in := func(id string, from privateline.Address, group string, to ...*User) InboundEntry {
			e := InboundEntry{Kind: OutboxGroupEnvelopes, ID: id, Raw: []byte(`{"id":"` + id + `"}`), From: from, Group: group}
			for _, u := range to {
				e.Recipients = append(e.Recipients, rcpt(u))
			}
			return e
		}
		m1, m2, m3, m4 := newMsgID(), newMsgID(), newMsgID(), newMsgID()
		rs, _, err := d.ReceiveTransaction(other, newMsgID(), []InboundEntry{
			in(m1, rob, gid, ann, ben),
			in(m2, "zed@other.example", gid, ann),
			in(m3, rob, newMsgID()+"@"+string(other), ann),
			in(m4, annA, gid, ann, ben), // ann's own copy is her server's
		}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		want := []string{InboundAccepted, RefusedNotMember, RefusedUnknownGroup, InboundAccepted}
		for i, r := range rs {
			if r.Status != want[i] && r.Error != want[i] {
				t.Errorf("entry %d: %+v, want %s", i, r, want[i])
			}
		}
		if ev := lastEvent(t, d, ann); ev.Type != EventGroupMessage || ev.ID != m1 || ev.Group != gid {
			t.Fatalf("ann's event %+v", ev)
		}
		if ev := lastEvent(t, d, ben); ev.Type != EventGroupMessage || ev.ID != m4 {
			t.Fatalf("ben's event %+v", ev)
		}
		if items, _ := d.Mailbox(ann.ID, MailQuery{Group: gid, Limit: 10}); len(items) != 2 {
			t.Fatalf("ann's page holds %d items, want her sent copy and rob's", len(items))
		}

		// Group updates through ReceiveTransaction: two versions in one
		// transaction; then a state without members here forgets it.
		upd := func(s GroupState) InboundEntry {
			return InboundEntry{Kind: OutboxGroupUpdates, ID: newMsgID(), Group: gid, Replica: replicaOf(s, local)}
		}
		if _, _, err := d.ReceiveTransaction(other, newMsgID(), []InboundEntry{upd(st(4, 3, rob, annA, benA)), upd(st(5, 4, rob, benA))}, time.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := d.GroupFor(gid, ann.ID); !privateline.Is(privateline.NotExist, err) {
			t.Fatalf("ann reads the group after leaving: %v", err)
		}
		if g, err := d.GroupFor(gid, ben.ID); err != nil || g.Version != 5 {
			t.Fatalf("ben's replica %+v %v", g, err)
		}
		checkGroupIndexes(t, d, ann, ben)
		if _, _, err := d.ReceiveTransaction(other, newMsgID(), []InboundEntry{upd(st(6, 5, rob))}, time.Now()); err != nil {
			t.Fatal(err)
		}
		if gs, err := d.UserGroups(ben.ID); err != nil || len(gs) != 0 {
			t.Fatalf("ben's groups after the last member here went: %+v %v", gs, err)
		}
		if ev := lastEvent(t, d, ben); ev.Type != EventGroupChanged || ev.Group != gid {
			t.Fatalf("ben's event %+v", ev)
		}
		if _, _, _, err := d.GroupKey(gid, 2, ben.ID); !privateline.Is(privateline.NotExist, err) {
			t.Fatalf("ben's key of a forgotten group: %v", err)
		}
	})
}

// TestGroupReplicaCannotTakeALocalGroup: a state whose id has the hex of
// one of this server's groups (under another server) changes nothing.
func TestGroupReplicaCannotTakeALocalGroup(t *testing.T) {
	d, err := Open(Options{Dir: "db", Key: testKey(), fs: vfs.NewMem(), FilesDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ann := createUsers(t, d, "ann")[0]
	g, err := d.CreateGroup("hs", member(ann), nil, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	forged := &GroupReplica{Group: &Group{ID: g.ID[:32] + "@" + string(other), Version: 99, Epoch: 1,
		Members: []GroupMember{{Address: rob, Role: RoleOwner}, {User: ann.ID, Address: rcpt(ann).Address, Role: RoleMember}}}}
	if _, err := d.ApplyGroupReplica(forged); !errors.Is(err, ErrNotReplica) {
		t.Fatalf("forged state: %v, want ErrNotReplica", err)
	}
	own := &GroupReplica{Group: &Group{ID: g.ID, Version: 99, Epoch: 1, Members: []GroupMember{{Address: rob, Role: RoleOwner}}}}
	if _, err := d.ApplyGroupReplica(own); !errors.Is(err, ErrNotReplica) {
		t.Fatalf("a state of this server's own group: %v, want ErrNotReplica", err)
	}
	if got, err := d.GroupFor(g.ID, ann.ID); err != nil || got.Replica || got.Member(ann.ID).Role != RoleOwner {
		t.Fatalf("ann's group after the forged states: %+v %v", got, err)
	}
}
