package homeserver_test

import (
	"context"
	"net/url"
	"slices"
	"sync"
	"testing"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/client"
	"github.com/privateline/privateline/homeserver"
)

// TestFederationRestoredGroupLostEpochs: a.test, the group's server, is
// restored from a backup taken at epoch 1, after the group had gone to
// epochs 2 and 3 (dave@a.test added, then removed) and bob@b.test had
// opened messages of each. When b.test next speaks with a.test it tells
// it the highest epoch it held, and a.test moves the group past it, to
// epoch 4: no epoch number is made a second time (with another key), and
// bob, whose client opened epoch 3, reads alice's and erin's messages
// after the restore — nobody was told to rekey, alice's next message
// made epoch 4's key. bob's whole history still opens.
func TestFederationRestoredGroupLostEpochs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	servers := startFederationWith(t, func(*homeserver.Config) {}, "a.test", "b.test")
	a, b := servers[0], servers[1]
	aliceU := sdkRegister(t, a, sdkClient(t, a, fresh()), "ealice", "alice")
	alice := aliceU.login(t)
	daveU := sdkRegister(t, a, sdkClient(t, a, fresh()), "edave", "")
	dave := daveU.login(t)
	bob := sdkRegister(t, b, sdkClient(t, b, nil), "ebob", "bob").login(t)
	erin := sdkRegister(t, b, sdkClient(t, b, nil), "eerin", "carol").login(t)
	for _, s := range []*client.Session{bob, erin, dave} {
		mustLookup(t, alice, s.Address())
	}
	mustLookup(t, bob, alice.Address())
	bobEv := listen(t, bob)

	g, err := alice.CreateGroup(ctx, []privateline.Address{bob.Address(), erin.Address()})
	if err != nil {
		t.Fatal(err)
	}
	sent := map[string]string{} // message id → body, of every group message
	say := func(s *client.Session, body string) *client.SendResult {
		t.Helper()
		r := mustSendGroup(t, s, g.ID, body)
		sent[r.ID] = body
		return r
	}
	if m := say(alice, "epoch 1"); bobEv.groupMessage(m.ID) != "epoch 1" {
		t.Fatal("bob did not read epoch 1")
	}

	// The backup, at epoch 1.
	backup := backUp(t, a, servers)
	alice = aliceU.login(t)

	// Epochs 2 and 3, lost with the restore; bob opens a message of each.
	if g2, err := alice.AddMember(ctx, g.ID, dave.Address(), ""); err != nil || g2.Epoch != 2 {
		t.Fatalf("alice adds dave: %+v %v", g2, err)
	}
	if m := say(alice, "epoch 2"); bobEv.groupMessage(m.ID) != "epoch 2" {
		t.Fatal("bob did not read epoch 2")
	}
	if err := alice.RemoveMember(ctx, g.ID, dave.Address()); err != nil {
		t.Fatal(err)
	}
	if m := say(alice, "epoch 3"); bobEv.groupMessage(m.ID) != "epoch 3" {
		t.Fatal("bob did not read epoch 3")
	}
	waitGroup(t, bob, g.ID, "epoch 3 on b.test", func(g *client.Group) bool { return g.Epoch == 3 })

	// a.test is restored: its group is at epoch 1 again. bob and alice
	// chat directly (a.test and b.test meet again); the group moves on
	// past epoch 3 by itself.
	restoreFrom(t, a, backup, servers)
	alice = aliceU.login(t)
	aliceEv := listen(t, alice)
	hi := mustSend(t, bob, alice.Address(), "are you back?")
	if ev := aliceEv.message(hi.ID); ev.Item == nil {
		t.Fatalf("alice's event: %+v", ev)
	}
	waitGroup(t, alice, g.ID, "a.test's group past the epochs it lost", func(g *client.Group) bool { return g.Epoch > 3 })
	ga := waitGroup(t, bob, g.ID, "b.test's replica after the restore", func(g *client.Group) bool { return g.Epoch > 3 })
	if ga.Epoch != 4 || len(ga.Members) != 3 {
		t.Fatalf("the group after the restore: %+v", ga)
	}
	// bob's app reports epoch 3 to b.test too (it held its key): b.test's
	// replica told a.test already, so nothing moves again; the answer is
	// the replica.
	if r := b.do("POST", "/api/groups/"+url.PathEscape(g.ID)+"/seen_epoch", string(bob.State().Tokens.Access), map[string]any{"seen_epoch": 3}); r.Status != 200 || r.json(t)["epoch"].(float64) != 4 {
		t.Fatalf("bob's report through b.test: %d %s", r.Status, r.Body)
	}

	// Everyone goes on: alice's message makes epoch 4's key; bob (who
	// opened epoch 3) and erin read it, and alice and bob read erin.
	erinEv := listen(t, erin)
	m := say(alice, "after the restore")
	if got := bobEv.groupMessage(m.ID); got != "after the restore" {
		t.Fatalf("bob got %q", got)
	}
	if got := erinEv.groupMessage(m.ID); got != "after the restore" {
		t.Fatalf("erin got %q", got)
	}
	r := say(erin, "erin after the restore")
	if got := aliceEv.groupMessage(r.ID); got != "erin after the restore" {
		t.Fatalf("alice got %q", got)
	}
	if got := bobEv.groupMessage(r.ID); got != "erin after the restore" {
		t.Fatalf("bob got %q", got)
	}
	r = say(bob, "bob after the restore")
	if got := aliceEv.groupMessage(r.ID); got != "bob after the restore" {
		t.Fatalf("alice got %q", got)
	}

	// bob's whole history opens, each epoch with its one key.
	items, err := bob.GroupMessages(ctx, g.ID, client.MessagesQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	opened := 0
	for _, it := range items {
		want, ok := sent[it.ID]
		if !ok {
			continue
		}
		if it.Err != nil || it.Body() != want {
			t.Fatalf("bob's history: %q reads %q, %v", want, it.Body(), it.Err)
		}
		opened++
	}
	if opened != len(sent) {
		t.Fatalf("bob's history holds %d of the %d group messages", opened, len(sent))
	}
	if v := a.metricValue("privateline_federation_group_epoch_raises_total"); v != 1 {
		t.Fatalf("a.test moved the group past a replica's epoch %v times", v)
	}
}

// TestRestoredGroupLostEpochsReportedByClients: a.test is restored from a
// backup taken at epoch 1 of two groups with no member on another server
// (no member server can tell it of the epochs it lost), after both had
// gone to epochs 2 and 3. The members' clients held keys of those epochs
// and report them. In the first group alice, the owner, adds erin before
// anyone reported: her client does not make epoch 2's key again but
// reports epoch 3, and keys epoch 4. In the second, dave, a plain
// member, reads the group: his client reports, and alice's next message
// makes epoch 4's key. No lost number gets a second key, and dave (who
// opened epochs 2 and 3) reads everything sent after the restore.
func TestRestoredGroupLostEpochsReportedByClients(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newLostEpochs(t, "l")
	a, servers, gs := w.a, w.servers, w.gs
	aliceU, daveU, erinU := w.aliceU, w.daveU, w.erinU
	alice, dave, erin := w.alice, w.dave, w.erin
	daveEv := listen(t, dave)
	for _, g := range gs {
		if m := mustSendGroup(t, alice, g.ID, "epoch 1"); daveEv.groupMessage(m.ID) != "epoch 1" {
			t.Fatal("dave did not read epoch 1")
		}
	}

	backup := backUp(t, a, servers)
	alice, dave = aliceU.login(t), daveU.login(t)
	daveEv = listen(t, dave)

	// Epochs 2 and 3 of both groups, lost with the restore; dave opens a
	// message of each.
	w.toEpoch3(alice, daveEv)
	for _, g := range gs {
		if dave.HeldEpoch(g.ID) != 3 || alice.HeldEpoch(g.ID) != 3 {
			t.Fatalf("held epochs: dave %d, alice %d", dave.HeldEpoch(g.ID), alice.HeldEpoch(g.ID))
		}
	}

	restoreFrom(t, a, backup, servers)
	// Sessions made after the backup are gone with it: both log in again
	// through the same apps.
	alice, dave, erin = aliceU.login(t), daveU.login(t), erinU.login(t)
	for _, g := range gs {
		if g2, err := alice.Group(ctx, g.ID); err != nil || g2.Epoch != 1 {
			t.Fatalf("the restored group: %+v %v", g2, err)
		}
	}
	daveEv = listen(t, dave)
	erinEv := listen(t, erin)
	sent := map[string]string{}

	// The first group: alice adds erin before anyone reported. The server
	// makes epoch 2; alice's app, which held epoch 3, reports it and
	// keys epoch 4.
	g := gs[0]
	if _, err := alice.AddMember(ctx, g.ID, erin.Address(), ""); err != nil {
		t.Fatalf("alice adds erin after the restore: %v", err)
	}
	if g2, err := alice.Group(ctx, g.ID); err != nil || g2.Epoch != 4 || len(g2.Members) != 3 {
		t.Fatalf("the first group after alice's change: %+v %v", g2, err)
	}
	m := mustSendGroup(t, alice, g.ID, "after the restore")
	sent[m.ID] = "after the restore"
	if got := daveEv.groupMessage(m.ID); got != "after the restore" {
		t.Fatalf("dave got %q", got)
	}
	if got := erinEv.groupMessage(m.ID); got != "after the restore" {
		t.Fatalf("erin got %q", got)
	}

	// The second group: dave reads it; his app reports epoch 3 and the
	// group moves to epoch 4, whose key alice's next message makes.
	g = gs[1]
	if _, err := dave.GroupMessages(ctx, g.ID, client.MessagesQuery{Limit: 10}); err != nil {
		t.Fatal(err)
	}
	if g2, err := alice.Group(ctx, g.ID); err != nil || g2.Epoch != 4 || len(g2.Members) != 2 {
		t.Fatalf("the second group after dave's report: %+v %v", g2, err)
	}
	m = mustSendGroup(t, alice, g.ID, "second group, after the restore")
	sent[m.ID] = "second group, after the restore"
	if got := daveEv.groupMessage(m.ID); got != "second group, after the restore" {
		t.Fatalf("dave got %q", got)
	}
	r := mustSendGroup(t, dave, g.ID, "dave, after the restore")
	sent[r.ID] = "dave, after the restore"

	w.noSecondKeys(alice)
	for _, g := range gs {
		// dave's history after the restore opens, in epoch 4.
		items, err := dave.GroupMessages(ctx, g.ID, client.MessagesQuery{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			want, ok := sent[it.ID]
			if !ok {
				continue
			}
			if it.Err != nil || it.Body() != want || it.Epoch != 4 {
				t.Fatalf("dave's history: %q reads %q in epoch %d, %v", want, it.Body(), it.Epoch, it.Err)
			}
			delete(sent, it.ID)
		}
	}
	if len(sent) != 0 {
		t.Fatalf("dave's history lacks %v", sent)
	}
}

// TestRestoredGroupLostEpochsRememberedAcrossRestarts: as above, but the
// apps restart between the lost epochs and the restore: alice's and
// dave's sessions (made before the backup, so the restored server still
// knows them) are saved with State, which carries the held epochs (each
// rise reached OnChange), and resumed on new Clients that never saw a
// key. The memory comes back with the state: in the first group alice,
// the owner, adds erin (the server makes epoch 2 again) and her resumed
// app reports epoch 3 and keys epoch 4; in the second, dave's resumed app
// reports epoch 3 when it reads the group. No lost number gets a second
// key, which a new app without the memory would have made.
func TestRestoredGroupLostEpochsRememberedAcrossRestarts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newLostEpochs(t, "r")
	a, servers, gs := w.a, w.servers, w.gs
	aliceU, daveU := w.aliceU, w.daveU
	alice, dave, erin := w.alice, w.dave, w.erin
	// dave's app saves every change of its state; the held epochs of both
	// groups rise to 1, 2, then 3, each rise a change.
	var mu sync.Mutex
	var daveSaved []client.SessionState
	dave.OnChange(func(st client.SessionState) {
		mu.Lock()
		defer mu.Unlock()
		daveSaved = append(daveSaved, st)
	})
	daveEv := listen(t, dave)
	for _, g := range gs {
		if m := mustSendGroup(t, alice, g.ID, "epoch 1"); daveEv.groupMessage(m.ID) != "epoch 1" {
			t.Fatal("dave did not read epoch 1")
		}
	}

	backup := backUp(t, a, servers)
	w.toEpoch3(alice, listen(t, dave))
	mu.Lock()
	for _, g := range gs {
		var rises []int64
		for _, st := range daveSaved {
			if e := st.Epochs[g.ID].Epoch; e != 0 && (len(rises) == 0 || e != rises[len(rises)-1]) {
				rises = append(rises, e)
			}
		}
		if !slices.Equal(rises, []int64{1, 2, 3}) {
			t.Fatalf("dave's app saw the held epochs of %s go %v, want 1, 2, 3", g.ID, rises)
		}
	}
	daveSt := daveSaved[len(daveSaved)-1]
	mu.Unlock()
	aliceSt := alice.State()
	for _, g := range gs {
		if h := aliceSt.Epochs[g.ID]; h.Epoch != 3 || h.From != alice.Address() || daveSt.Epochs[g.ID] != h {
			t.Fatalf("the saved held epochs of %s: alice %+v, dave %+v", g.ID, h, daveSt.Epochs[g.ID])
		}
	}

	restoreFrom(t, a, backup, servers)
	// The apps start again: new Clients, the saved states.
	resume := func(u *sdkUser, st client.SessionState) *client.Session {
		t.Helper()
		s, err := sdkClient(t, a, fresh()).Resume(st)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Unlock(u.password); err != nil {
			t.Fatal(err)
		}
		for _, g := range gs {
			if s.HeldEpoch(g.ID) != 3 {
				t.Fatalf("%s's resumed app holds epoch %d of %s", s.Address(), s.HeldEpoch(g.ID), g.ID)
			}
		}
		return s
	}
	alice, dave = resume(aliceU, aliceSt), resume(daveU, daveSt)
	for _, g := range gs {
		if g2, err := alice.Group(ctx, g.ID); err != nil || g2.Epoch != 1 {
			t.Fatalf("the restored group: %+v %v", g2, err)
		}
	}

	// The first group: alice adds erin; the server makes epoch 2, which
	// alice's resumed app does not key: it reports epoch 3 and keys 4.
	if _, err := alice.AddMember(ctx, gs[0].ID, erin.Address(), ""); err != nil {
		t.Fatalf("alice adds erin after the restore: %v", err)
	}
	if g2, err := alice.Group(ctx, gs[0].ID); err != nil || g2.Epoch != 4 || len(g2.Members) != 3 {
		t.Fatalf("the first group after alice's change: %+v %v", g2, err)
	}
	// The second group: dave's resumed app reads it and reports epoch 3.
	if _, err := dave.GroupMessages(ctx, gs[1].ID, client.MessagesQuery{Limit: 10}); err != nil {
		t.Fatal(err)
	}
	if g2, err := alice.Group(ctx, gs[1].ID); err != nil || g2.Epoch != 4 {
		t.Fatalf("the second group after dave's report: %+v %v", g2, err)
	}
	m := mustSendGroup(t, alice, gs[1].ID, "after the restore")
	items, err := dave.GroupMessages(ctx, gs[1].ID, client.MessagesQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(items, func(it client.Item) bool { return it.ID == m.ID }); i < 0 || items[i].Err != nil || items[i].Body() != "after the restore" || items[i].Epoch != 4 {
		t.Fatalf("dave's resumed app does not read alice's message in epoch 4: %+v", items)
	}
	w.noSecondKeys(alice)
}

// lostEpochs is the set-up of the tests of a group server restored by
// itself: a.test with alice, dave and erin (each prefix+name), who know
// each other's keys, and two groups of alice's with dave, at epoch 1.
type lostEpochs struct {
	t                    *testing.T
	servers              []*testServer
	a                    *testServer
	aliceU, daveU, erinU *sdkUser
	alice, dave, erin    *client.Session
	gs                   []*client.Group
}

func newLostEpochs(t *testing.T, prefix string) *lostEpochs {
	t.Helper()
	w := &lostEpochs{t: t, servers: startFederationWith(t, func(*homeserver.Config) {}, "a.test")}
	w.a = w.servers[0]
	w.aliceU = sdkRegister(t, w.a, sdkClient(t, w.a, fresh()), prefix+"alice", "alice")
	w.daveU = sdkRegister(t, w.a, sdkClient(t, w.a, fresh()), prefix+"dave", "bob")
	w.erinU = sdkRegister(t, w.a, sdkClient(t, w.a, fresh()), prefix+"erin", "carol")
	w.alice, w.dave, w.erin = w.aliceU.login(t), w.daveU.login(t), w.erinU.login(t)
	for _, s := range []*client.Session{w.dave, w.erin} {
		mustLookup(t, w.alice, s.Address())
	}
	mustLookup(t, w.dave, w.alice.Address())
	for range 2 {
		g, err := w.alice.CreateGroup(context.Background(), []privateline.Address{w.dave.Address()})
		if err != nil {
			t.Fatal(err)
		}
		w.gs = append(w.gs, g)
	}
	return w
}

// toEpoch3 takes both groups from epoch 1 to 3 (alice adds erin, then
// removes her), a message in each epoch, which dave (listening on daveEv)
// opens.
func (w *lostEpochs) toEpoch3(alice *client.Session, daveEv *listener) {
	w.t.Helper()
	ctx := context.Background()
	for _, g := range w.gs {
		if _, err := alice.AddMember(ctx, g.ID, w.erin.Address(), ""); err != nil {
			w.t.Fatal(err)
		}
		if m := mustSendGroup(w.t, alice, g.ID, "epoch 2"); daveEv.groupMessage(m.ID) != "epoch 2" {
			w.t.Fatal("dave did not read epoch 2")
		}
		if err := alice.RemoveMember(ctx, g.ID, w.erin.Address()); err != nil {
			w.t.Fatal(err)
		}
		if m := mustSendGroup(w.t, alice, g.ID, "epoch 3"); daveEv.groupMessage(m.ID) != "epoch 3" {
			w.t.Fatal("dave did not read epoch 3")
		}
	}
}

// noSecondKeys checks that no lost epoch number (2, 3) of either group
// has a key again, asking as alice.
func (w *lostEpochs) noSecondKeys(alice *client.Session) {
	w.t.Helper()
	for _, g := range w.gs {
		for _, e := range []string{"2", "3"} {
			if r := w.a.do("GET", "/api/groups/"+url.PathEscape(g.ID)+"/key?epoch="+e, string(alice.State().Tokens.Access), nil); r.Status != 404 {
				w.t.Fatalf("epoch %s of %s has a key again: %d %s", e, g.ID, r.Status, r.Body)
			}
		}
	}
}
