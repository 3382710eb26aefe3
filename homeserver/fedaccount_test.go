package homeserver_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/client"
)

// Account deletion across servers (spec/federation.md §12.3, account
// deletion; §12.1).

// itemIDs lists the ids of items.
func itemIDs(items []client.Item) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.ID)
	}
	return out
}

// TestFederationAccountDeletion: alice@a.test deletes her account; the
// messages she sent to bob@b.test — direct, in a group of a.test and in a
// group of b.test — leave bob's history with a deleted event each, as
// for her delete for everyone. bob's own message to her stays his.
func TestFederationAccountDeletion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	servers := startFederation(t, "a.test", "b.test")
	a, b := servers[0], servers[1]
	aliceU := sdkRegister(t, a, sdkClient(t, a, nil), "dalice", "alice")
	alice := aliceU.login(t)
	bob := sdkRegister(t, b, sdkClient(t, b, nil), "dbob", "bob").login(t)
	bobEv := listen(t, bob)
	aliceEv := listen(t, alice)

	direct := mustSend(t, alice, bob.Address(), "direct from alice")
	bobEv.message(direct.ID)
	mine := mustSend(t, bob, alice.Address(), "bob's own")

	onA, err := alice.CreateGroup(ctx, []privateline.Address{bob.Address()})
	if err != nil {
		t.Fatal(err)
	}
	bobEv.groupChanged(onA.ID, func(*client.Event) bool { return true })
	inA := mustSendGroup(t, alice, onA.ID, "alice in her group")
	bobEv.groupMessage(inA.ID)
	fromBobA := mustSendGroup(t, bob, onA.ID, "bob in alice's group")

	onB, err := bob.CreateGroup(ctx, []privateline.Address{alice.Address()})
	if err != nil {
		t.Fatal(err)
	}
	fromBobB := mustSendGroup(t, bob, onB.ID, "bob in his group")
	// a.test learns of bob's group when b.test's group update arrives;
	// alice can send in it once she has heard of it, as a user would: her
	// look-up of the group's key waits for bob's key document if it is
	// not on a.test yet (spec/openapi.yaml, GET /api/groups/{id}/key).
	aliceEv.groupChanged(onB.ID, func(*client.Event) bool { return true })
	inB := mustSendGroup(t, alice, onB.ID, "alice in bob's group")
	bobEv.groupMessage(inB.ID)
	if got := aliceEv.groupMessage(fromBobB.ID); got != "bob in his group" {
		t.Fatalf("alice got %q", got)
	}

	if err := alice.DeleteAccount(ctx, aliceU.password); err != nil {
		t.Fatal(err)
	}
	gone := map[string]bool{direct.ID: true, inA.ID: true, inB.ID: true}
	for len(gone) > 0 {
		ev := bobEv.next(client.EventDeleted)
		if !gone[ev.ID] {
			t.Fatalf("bob's deleted event for %s, not one of alice's messages", ev.ID)
		}
		delete(gone, ev.ID)
	}
	if got := itemIDs(mustMessages(t, bob, client.MessagesQuery{With: alice.Address()})); !slices.Equal(got, []string{mine.ID}) {
		t.Fatalf("bob's conversation with alice: %v, want only his own %s", got, mine.ID)
	}
	for _, g := range []struct {
		id   string
		want []string
	}{{onA.ID, []string{fromBobA.ID}}, {onB.ID, []string{fromBobB.ID}}} {
		items, err := bob.GroupMessages(ctx, g.id, client.MessagesQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if got := itemIDs(items); !slices.Equal(got, g.want) {
			t.Fatalf("bob's messages in %s: %v, want %v", g.id, got, g.want)
		}
	}
}

// TestFederationAccountDeletionGroupServerDown: bob@b.test deletes his
// account while a.test, the server of his group, is down; when a.test is
// back, b.test's durable leave reaches it and bob is no member any more —
// a new epoch, as when a member leaves — without an admin's removal.
func TestFederationAccountDeletionGroupServerDown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	servers := startFederation(t, "a.test", "b.test")
	a, b := servers[0], servers[1]
	a.cfg.ListenAddr = a.srv.Addr() // alice reaches the restarted a.test where it was
	aliceU := sdkRegister(t, a, sdkClient(t, a, nil), "lalice", "alice")
	alice := aliceU.login(t)
	bobU := sdkRegister(t, b, sdkClient(t, b, nil), "lbob", "bob")
	bob := bobU.login(t)
	bobEv := listen(t, bob)
	g, err := alice.CreateGroup(ctx, []privateline.Address{bob.Address()})
	if err != nil {
		t.Fatal(err)
	}
	bobEv.groupChanged(g.ID, func(*client.Event) bool { return true })

	a.stop()
	if err := bob.DeleteAccount(ctx, bobU.password); err != nil {
		t.Fatal(err)
	}
	a.launch(nil)
	introduce(a, servers)
	alice = aliceU.login(t)
	deadline := time.Now().Add(60 * time.Second)
	for {
		gg, err := alice.Group(ctx, g.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(gg.Members) == 1 {
			if gg.Members[0].Address != alice.Address() || gg.Epoch != 2 {
				t.Fatalf("the group after bob's leave: %+v", gg)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob is still a member a minute after a.test came back: %+v", gg.Members)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
