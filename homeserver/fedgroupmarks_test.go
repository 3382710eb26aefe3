package homeserver_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/client"
)

// Read marks and deletes of group messages across servers
// (spec/federation.md §12.2, §12.3): a group on a.test with members on
// b.test and c.test, through the Go SDK.
func TestFederationGroupReadsAndDeletes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	servers := startFederation(t, "a.test", "b.test", "c.test")
	a, b, c := servers[0], servers[1], servers[2]
	alice := sdkRegister(t, a, sdkClient(t, a, nil), "malice", "alice").login(t)
	bob := sdkRegister(t, b, sdkClient(t, b, nil), "mbob", "bob").login(t)
	carol := sdkRegister(t, c, sdkClient(t, c, nil), "mcarol", "carol").login(t)
	aliceEv, bobEv, carolEv := listen(t, alice), listen(t, bob), listen(t, carol)

	g, err := alice.CreateGroup(ctx, []privateline.Address{bob.Address(), carol.Address()})
	if err != nil {
		t.Fatal(err)
	}
	bobEv.groupChanged(g.ID, func(*client.Event) bool { return true })
	carolEv.groupChanged(g.ID, func(*client.Event) bool { return true })

	// bob@b reads alice@a's message: alice's devices hear it, and her
	// copy lists bob among its readers.
	hello := mustSendGroup(t, alice, g.ID, "hello")
	bobEv.groupMessage(hello.ID)
	carolEv.groupMessage(hello.ID)
	if err := bob.MarkRead(ctx, hello.ID); err != nil {
		t.Fatal(err)
	}
	if ev := aliceEv.next(client.EventRead); ev.ID != hello.ID || ev.By != bob.Address() {
		t.Fatalf("alice's read event: %+v", ev)
	}
	readBy := func(s *client.Session, id string) []privateline.Address {
		t.Helper()
		items, err := s.GroupMessages(ctx, g.ID, client.MessagesQuery{})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			if it.ID == id {
				if !it.Outgoing {
					t.Fatalf("%s's copy of %s is not outgoing", s.Address(), id)
				}
				return it.ReadBy
			}
		}
		t.Fatalf("%s has no message %s", s.Address(), id)
		return nil
	}
	if got := readBy(alice, hello.ID); !slices.Equal(got, []privateline.Address{bob.Address()}) {
		t.Fatalf("alice's message read by %v", got)
	}

	// A message of carol@c (relayed by a.test): alice@a reads it, carol
	// hears it from a.test directly.
	mine := mustSendGroup(t, carol, g.ID, "carol's message")
	aliceEv.groupMessage(mine.ID)
	bobEv.groupMessage(mine.ID)
	if err := alice.MarkRead(ctx, mine.ID); err != nil {
		t.Fatal(err)
	}
	if ev := carolEv.next(client.EventRead); ev.ID != mine.ID || ev.By != alice.Address() {
		t.Fatalf("carol's read event: %+v", ev)
	}
	if got := readBy(carol, mine.ID); !slices.Equal(got, []privateline.Address{alice.Address()}) {
		t.Fatalf("carol's message read by %v", got)
	}

	// carol deletes it for everyone: it goes from alice's and bob's
	// servers, and its id cannot be used again.
	if err := carol.Delete(ctx, mine.ID); err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		s *client.Session
		l *listener
	}{{alice, aliceEv}, {bob, bobEv}} {
		if ev := p.l.next(client.EventDeleted); ev.ID != mine.ID {
			t.Fatalf("%s's deleted event: %+v", p.s.Address(), ev)
		}
		if got := groupBodies(t, p.s, g.ID); !slices.Equal(got, []string{"hello"}) {
			t.Fatalf("%s reads %q after carol's delete", p.s.Address(), got)
		}
	}
	if got := groupBodies(t, carol, g.ID); !slices.Equal(got, []string{"hello"}) {
		t.Fatalf("carol reads %q after her delete", got)
	}
	_, err = carol.SendGroup(ctx, g.ID, text("carol's message"), client.SendOptions{ID: mine.ID})
	if !privateline.Is(privateline.Exist, err) || !strings.Contains(err.Error(), "deleted") {
		t.Fatalf("carol sends the deleted id again: %v, want it refused as deleted", err)
	}

	// alice deletes hers: gone on b.test and c.test too.
	if err := alice.Delete(ctx, hello.ID); err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		s *client.Session
		l *listener
	}{{bob, bobEv}, {carol, carolEv}} {
		for ev := p.l.next(client.EventDeleted); ev.ID != hello.ID; ev = p.l.next(client.EventDeleted) {
			if ev.ID != mine.ID { // carol's own delete reaches her devices too
				t.Fatalf("%s's deleted event: %+v", p.s.Address(), ev)
			}
		}
		if got := groupBodies(t, p.s, g.ID); len(got) != 0 {
			t.Fatalf("%s reads %q after alice's delete", p.s.Address(), got)
		}
	}
}
