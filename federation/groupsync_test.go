package federation

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/federation/wire"
	"github.com/privateline/privateline/storage"
)

// flakyStates is a group server's store whose first state requests
// cannot be answered (storage busy).
type flakyStates struct {
	*storage.DB
	fails atomic.Int32 // requests still to fail
	asked atomic.Int32
}

func (f *flakyStates) GroupSyncState(id string, dest privateline.ServerName) ([]byte, error) {
	f.asked.Add(1)
	if f.fails.Add(-1) >= 0 {
		return nil, privateline.E(privateline.Unavailable, "busy")
	}
	return f.DB.GroupSyncState(id, dest)
}

func startOn(t *testing.T, n *realNode, st Store, peers []Peer) {
	t.Helper()
	svc, err := New(Config{Name: n.name, Key: n.key, ListenAddr: "127.0.0.1:0", Peers: peers, Log: quiet, HTTPClient: &http.Client{Transport: noHTTP{}}}, st)
	if err != nil {
		t.Fatal(err)
	}
	svc.base, svc.jitter, svc.lim = 5*time.Millisecond, func() float64 { return 0.5 }, testLimits
	n.db.SetOutboxNotifier(svc.Wake)
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	n.svc = svc
	t.Cleanup(func() { svc.Close() })
}

// TestStaleReplicaMessage: B lost its replica of A's group. A's next
// message for bob shows B the replica is missing; B asks A for the state
// before taking it. While A cannot answer, B refuses the transaction as
// unavailable (nothing stored), A sends it again, and once A answers bob
// gets the message exactly once and ann hears it was delivered.
func TestStaleReplicaMessage(t *testing.T) {
	a, aid := newRealNode(t, nameA, "ann")
	b, bid := newRealNode(t, nameB, "bob")
	ann, bob := addr("ann", nameA), addr("bob", nameB)
	g, err := a.db.CreateGroup(nameA, storage.GroupMember{User: aid["ann"], Address: ann}, []storage.GroupMember{{Address: bob, Remote: true}}, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	flaky := &flakyStates{DB: a.db}
	startOn(t, a, flaky, []Peer{{Name: nameB, Key: b.key.Public()}})
	b.start(t, []Peer{{Name: nameA, Key: a.key.Public()}})
	a.svc.SetPeerAddr(nameB, b.svc.Addr())
	b.svc.SetPeerAddr(nameA, a.svc.Addr())
	waitFor(t, "B's replica", func() bool { r, err := b.db.GroupReplicaOf(g.ID); return err == nil && r.Version == g.Version })

	// B loses it (as a restore from a backup would).
	r, err := b.db.GroupReplicaOf(g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if gone, err := b.db.DropGroupReplica(g.ID, r.Era, r.Version); err != nil || !gone {
		t.Fatalf("drop: %v %v", gone, err)
	}
	flaky.fails.Store(2)
	id := newID()
	dl := &storage.Delivery{MsgID: id, Raw: groupEnv(t, id, ann, g.ID), Sender: storage.Recipient{ID: aid["ann"], Address: ann}, Group: g.ID, Epoch: 1}
	if _, _, err := a.db.Deliver(dl); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "A's outbox to drain", func() bool { d, err := a.db.OutboxDepth(); return err == nil && d[nameB] == 0 })
	if n := flaky.asked.Load(); n < 3 {
		t.Fatalf("A was asked for the state %d times; want the two that failed and one more", n)
	}
	if r, err := b.db.GroupReplicaOf(g.ID); err != nil || r.MemberAt(bob) == nil || r.MemberAt(ann) == nil {
		t.Fatalf("B's replica after the message: %+v %v", r, err)
	}
	evs, err := b.db.EventsAfter(bid["bob"], 0, 1000, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for _, ev := range evs {
		if ev.Type == storage.EventGroupMessage && ev.ID == id {
			got++
		}
	}
	if got != 1 {
		t.Fatalf("bob got the message %d times, want once", got)
	}
	evs, err = a.db.EventsAfter(aid["ann"], 0, 1000, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var outcome []string
	for _, ev := range evs {
		if ev.ID == id && (ev.Type == storage.EventDelivered || ev.Type == storage.EventDeliveryFailed) {
			outcome = append(outcome, ev.Type+" "+ev.Error)
		}
	}
	if len(outcome) != 1 || outcome[0] != storage.EventDelivered+" " {
		t.Fatalf("ann's delivery events %q, want one delivered", outcome)
	}
	if v := counter(b.svc.met.resyncs, "updated"); v != 1 {
		t.Fatalf("B counted %v resyncs that updated the replica, want 1", v)
	}
}

// TestStateRequests: the group's server answers a state request with the
// state for the asking server only if one of the group's members is
// there; otherwise, or for a group it does not have, not_found — and the
// asking server then drops its replica. A state request carries no
// requester; SyncGroup of an own group is refused.
func TestStateRequests(t *testing.T) {
	a, aid := newRealNode(t, nameA, "ann")
	b, bid := newRealNode(t, nameB, "bob")
	ann, bob := addr("ann", nameA), addr("bob", nameB)
	g, err := a.db.CreateGroup(nameA, storage.GroupMember{User: aid["ann"], Address: ann}, []storage.GroupMember{{Address: bob, Remote: true}}, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	a.start(t, []Peer{{Name: nameB, Key: b.key.Public()}})
	b.start(t, []Peer{{Name: nameA, Key: a.key.Public()}})
	a.svc.SetPeerAddr(nameB, b.svc.Addr())
	b.svc.SetPeerAddr(nameA, a.svc.Addr())
	waitFor(t, "B's replica", func() bool { _, err := b.db.GroupReplicaOf(g.ID); return err == nil })
	ctx := testCtx(t)
	if err := b.svc.SyncGroup(ctx, g.ID); err != nil {
		t.Fatalf("SyncGroup of a current replica: %v", err)
	}
	if v := counter(b.svc.met.resyncs, "current"); v < 1 {
		t.Fatalf("a current replica counted %v", v)
	}
	if err := a.svc.SyncGroup(ctx, g.ID); !privateline.Is(privateline.Invalid, err) {
		t.Fatalf("SyncGroup of an own group: %v", err)
	}

	// Raw requests from B: its member's group; a group A does not have.
	c := dialRaw(t, nameB, b.key, &a.node)
	peer := wire.Peer{Name: nameA, Key: a.key.Public()}
	ask1 := func(group string) wire.Result {
		tx := txn(nameB, nameA, time.Now(), wire.Entry{ID: newID(), Group: group, Op: wire.GroupOpState})
		tx.Type = wire.TypeGroupRequest
		rc, err := wire.VerifyReceipt(ask(t, c, sign(t, tx, b.key)), peer, nameB, time.Now(), wire.DefaultLimits(), tx)
		if err != nil {
			t.Fatal(err)
		}
		return rc.Results[0]
	}
	if r := ask1(g.ID); r.HTTPStatus != http.StatusOK || r.State == nil {
		t.Fatalf("state for a member's server: %+v", r)
	}
	if r := ask1(newID() + "@" + string(nameA)); r.HTTPStatus != http.StatusNotFound || r.Error != "not_found" || r.State != nil {
		t.Fatalf("state of an unknown group: %+v", r)
	}

	// B keeps a replica of A's group h that lists bob, but A has no
	// member of B in it (bob's removal never reached B): A answers
	// not_found, and B drops the replica, telling bob.
	h, err := a.db.CreateGroup(nameA, storage.GroupMember{User: aid["ann"], Address: ann}, nil, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if r := ask1(h.ID); r.HTTPStatus != http.StatusNotFound || r.State != nil {
		t.Fatalf("state of a group without members of B: %+v", r)
	}
	stale := &storage.GroupReplica{Group: &storage.Group{ID: h.ID, Version: 1, Epoch: 1, Replica: true, Members: []storage.GroupMember{
		{Address: ann, Role: storage.RoleOwner, Remote: true}, {Address: bob, User: bid["bob"], Role: storage.RoleMember}}}}
	if ok, err := b.db.ApplyGroupReplica(stale); err != nil || !ok {
		t.Fatalf("stale replica: %v %v", ok, err)
	}
	if err := b.svc.SyncGroup(ctx, h.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.db.GroupReplicaOf(h.ID); !privateline.Is(privateline.NotExist, err) {
		t.Fatalf("B kept a replica its group's server does not give it: %v", err)
	}
	if gs, err := b.db.UserGroups(bid["bob"]); err != nil || len(gs) != 1 || gs[0].ID != g.ID {
		t.Fatalf("bob's groups: %+v %v", gs, err)
	}

	// A down: SyncGroup is Unavailable and changes nothing.
	a.svc.Close()
	if err := b.svc.SyncGroup(ctx, g.ID); !privateline.Is(privateline.Unavailable, err) {
		t.Fatalf("SyncGroup with A down: %v", err)
	}
	if _, err := b.db.GroupReplicaOf(g.ID); err != nil {
		t.Fatalf("the replica after a failed SyncGroup: %v", err)
	}
}

// TestResyncAtStart: a server starts with a replica that is behind (A's
// updates were lost) while the group's server cannot be reached: it asks
// again with backoff, and at once when A is back, and the replica catches
// up with A's record though A never delivers an update to it.
func TestResyncAtStart(t *testing.T) {
	a, aid := newRealNode(t, nameA, "ann")
	b, bid := newRealNode(t, nameB, "bob")
	ann, bob := addr("ann", nameA), addr("bob", nameB)
	g, err := a.db.CreateGroup(nameA, storage.GroupMember{User: aid["ann"], Address: ann}, []storage.GroupMember{{Address: bob, Remote: true}}, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"YQ==", "Yg=="} {
		if g, err = a.db.UpdateGroup(storage.ChangeGroup{Group: g.ID, By: aid["ann"], Meta: &m}); err != nil {
			t.Fatal(err)
		}
	}
	old := &storage.GroupReplica{Group: &storage.Group{ID: g.ID, Version: 1, Epoch: 1, Replica: true, Members: []storage.GroupMember{
		{Address: ann, Role: storage.RoleOwner, Remote: true}, {Address: bob, User: bid["bob"], Role: storage.RoleMember, Joined: 1}}}}
	if ok, err := b.db.ApplyGroupReplica(old); err != nil || !ok {
		t.Fatalf("old replica: %v %v", ok, err)
	}
	startOn(t, b, b.db, []Peer{{Name: nameA, Key: a.key.Public()}}) // A is not there
	waitFor(t, "B to find A unreachable", func() bool { return counter(b.svc.met.resyncs, "unreachable") >= 1 })
	if r, _ := b.db.GroupReplicaOf(g.ID); r == nil || r.Version != 1 {
		t.Fatalf("B's replica while A is down: %+v", r)
	}
	// A comes back; B learns its address (as from gossip or configuration).
	// A cannot reach B (no address): only B's request brings the state.
	startOn(t, a, a.db, []Peer{{Name: nameB, Key: b.key.Public()}})
	b.svc.SetPeerAddr(nameA, a.svc.Addr())
	waitFor(t, "B's replica to catch up", func() bool {
		r, err := b.db.GroupReplicaOf(g.ID)
		return err == nil && r.Version == g.Version && r.Meta == "Yg=="
	})
	if d, _ := a.db.OutboxDepth(); d[nameB] == 0 {
		t.Fatal("A delivered its updates; the test wants B's request to be what caught up")
	}
}

// TestStateRequestRateLimited: a group's server that takes one
// transaction a second from B refuses B's second state request in a row
// as rate_limited; B waits its retry_after and asks again instead of
// failing.
func TestStateRequestRateLimited(t *testing.T) {
	a, aid := newRealNode(t, nameA, "ann")
	b, _ := newRealNode(t, nameB, "bob")
	ann, bob := addr("ann", nameA), addr("bob", nameB)
	g, err := a.db.CreateGroup(nameA, storage.GroupMember{User: aid["ann"], Address: ann}, []storage.GroupMember{{Address: bob, Remote: true}}, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Config{Name: a.name, Key: a.key, ListenAddr: "127.0.0.1:0", Peers: []Peer{{Name: nameB, Key: b.key.Public()}}, Log: quiet, RatePerOrigin: 1}, a.db)
	if err != nil {
		t.Fatal(err)
	}
	svc.base, svc.jitter, svc.lim = 5*time.Millisecond, func() float64 { return 0.5 }, testLimits
	a.db.SetOutboxNotifier(svc.Wake)
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	a.svc = svc
	t.Cleanup(func() { svc.Close() })
	b.start(t, []Peer{{Name: nameA, Key: a.key.Public()}})
	a.svc.SetPeerAddr(nameB, b.svc.Addr())
	b.svc.SetPeerAddr(nameA, a.svc.Addr())
	waitFor(t, "B's replica", func() bool { _, err := b.db.GroupReplicaOf(g.ID); return err == nil })
	ctx := testCtx(t)
	for i := range 3 {
		if err := b.svc.SyncGroup(ctx, g.ID); err != nil {
			t.Fatalf("state request %d: %v", i, err)
		}
	}
	if v := counter(a.svc.met.rejected, codeRateLimited); v < 1 {
		t.Fatalf("A refused %v requests as rate_limited; the test needs one", v)
	}
	if v := counter(b.svc.met.resyncs, "rate_limited"); v < 1 {
		t.Fatalf("B waited out %v refusals", v)
	}
	if v := counter(b.svc.met.resyncs, "current"); v != 3 {
		t.Fatalf("B counted %v current replicas, want 3", v)
	}
}
