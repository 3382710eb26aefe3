package homeserver_test

import (
	"context"
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
