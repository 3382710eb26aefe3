package homeserver_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/client"
	"github.com/privateline/privateline/clients/go/e2ee"
)

// Groups across servers (spec/federation.md §12.1): a group on a.test with
// members on b.test and c.test, through the Go SDK.

// groupMessage waits for the group_message event of message id on l and
// returns its body, failing if it did not open.
func (l *listener) groupMessage(id string) string {
	l.t.Helper()
	for {
		ev := l.next(client.EventGroupMessage)
		if ev.Item == nil || ev.Item.ID != id {
			continue
		}
		if ev.Item.Err != nil {
			l.t.Fatalf("group message %s did not open: %v", id, ev.Item.Err)
		}
		return ev.Item.Body()
	}
}

// groupChanged waits for a group_changed event of group id on l for
// which ok holds (older changes are skipped).
func (l *listener) groupChanged(id string, ok func(*client.Event) bool) *client.Event {
	l.t.Helper()
	for {
		if ev := l.next(client.EventGroupChanged); ev.Group == id && ok(ev) {
			return ev
		}
	}
}

func mustSendGroup(t *testing.T, s *client.Session, id, body string) *client.SendResult {
	t.Helper()
	res, err := s.SendGroup(context.Background(), id, text(body), client.SendOptions{})
	if err != nil {
		t.Fatalf("%s sends %q: %v", s.Address(), body, err)
	}
	return res
}

func TestFederationGroups(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	servers := startFederation(t, "a.test", "b.test", "c.test")
	a, b, c := servers[0], servers[1], servers[2]
	for _, ts := range servers { // clients reach restarted servers where they were
		ts.cfg.ListenAddr = ts.srv.Addr()
	}
	aliceU := sdkRegister(t, a, sdkClient(t, a, nil), "galice", "alice")
	alice := aliceU.login(t)
	bobU := sdkRegister(t, b, sdkClient(t, b, nil), "gbob", "bob")
	bob := bobU.login(t)
	carol := sdkRegister(t, c, sdkClient(t, c, nil), "gcarol", "carol").login(t)
	aliceEv, bobEv, carolEv := listen(t, alice), listen(t, bob), listen(t, carol)

	g, err := alice.CreateGroup(ctx, []privateline.Address{bob.Address(), carol.Address()})
	if err != nil {
		t.Log(a.logs.String())
		t.Fatal(err)
	}
	if !strings.HasSuffix(g.ID, "@a.test") || len(g.Members) != 3 || g.Role(bob.Address()) != "member" {
		t.Fatalf("group %+v", g)
	}
	// The members' servers keep the group: it is in their lists.
	for _, p := range []struct {
		s *client.Session
		l *listener
	}{{bob, bobEv}, {carol, carolEv}} {
		if ev := p.l.groupChanged(g.ID, func(*client.Event) bool { return true }); ev.Info == nil || ev.Info.Epoch != 1 || len(ev.Info.Members) != 3 || ev.Info.Role(alice.Address()) != "owner" {
			t.Fatalf("%s's group_changed: %+v", p.s.Address(), ev)
		}
		gs, err := p.s.Groups(ctx)
		if err != nil || len(gs) != 1 || gs[0].ID != g.ID {
			t.Fatalf("%s's groups: %+v %v", p.s.Address(), gs, err)
		}
	}

	// Everyone sends (alice's first message distributes the key); everyone
	// else receives and decrypts; every mailbox reads the same order.
	var want []string
	for _, p := range []struct {
		s      *client.Session
		others []*listener
	}{{alice, []*listener{bobEv, carolEv}}, {bob, []*listener{aliceEv, carolEv}}, {carol, []*listener{aliceEv, bobEv}}} {
		body := "hello from " + string(p.s.Address())
		res := mustSendGroup(t, p.s, g.ID, body)
		for _, l := range p.others {
			if got := l.groupMessage(res.ID); got != body {
				t.Fatalf("received %q, want %q", got, body)
			}
		}
		want = append(want, body)
	}
	for _, s := range []*client.Session{alice, bob, carol} {
		if got := groupBodies(t, s, g.ID); !slices.Equal(got, want) {
			t.Fatalf("%s reads %q, want %q", s.Address(), got, want)
		}
	}

	// A file in bob's group message stays on b.test; a.test and c.test
	// fetch it from there for their members (spec §12.1, §12.4).
	photo := randBytes(200 << 10)
	att, err := bob.UploadFile(ctx, photo, "photo.jpg", "image/jpeg")
	if err != nil {
		t.Fatal(err)
	}
	withFile, err := bob.SendGroup(ctx, g.ID, &e2ee.Message{Type: e2ee.MessageTypeText, Body: "a photo", Attachments: []e2ee.Attachment{*att}}, client.SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, "a photo")
	for _, p := range []struct {
		s *client.Session
		l *listener
	}{{alice, aliceEv}, {carol, carolEv}} {
		var got e2ee.Attachment
		for {
			ev := p.l.next(client.EventGroupMessage)
			if ev.Item != nil && ev.Item.ID == withFile.ID {
				if ev.Item.Err != nil || len(ev.Item.Message.Attachments) != 1 {
					t.Fatalf("%s's message with the file: %+v", p.s.Address(), ev.Item)
				}
				got = ev.Item.Message.Attachments[0]
				break
			}
		}
		data, err := p.s.DownloadFile(ctx, got)
		if err != nil || !bytes.Equal(data, photo) {
			t.Fatalf("%s downloads bob's file: %d bytes, %v", p.s.Address(), len(data), err)
		}
	}
	outsider := sdkRegister(t, c, sdkClient(t, c, nil), "gdave", "carol").login(t)
	if _, err := outsider.DownloadFile(ctx, *att); !privateline.Is(privateline.NotExist, err) {
		t.Fatalf("a non-member downloads bob's file: %v, want NotExist", err)
	}

	// A change by a member of another server goes through the group's
	// server with its checks: bob is no admin.
	if err := bob.RemoveMember(ctx, g.ID, carol.Address()); !privateline.Is(privateline.Forbidden, err) {
		t.Fatalf("bob removes carol: %v, want Forbidden", err)
	}
	if _, err := alice.SetRole(ctx, g.ID, bob.Address(), "admin"); err != nil {
		t.Fatal(err)
	}
	bobEv.groupChanged(g.ID, func(ev *client.Event) bool { return ev.Info != nil && ev.Info.Role(bob.Address()) == "admin" })
	gk1, err := e2ee.OpenGroupKey(b.do("GET", "/api/groups/"+g.ID+"/key?epoch=1", access(bob), nil).Body, mustKeys(t, bob), mustLookup(t, bob, alice.Address()), e2ee.GroupKeyOptions{})
	if err != nil {
		t.Fatalf("bob's view of the epoch-1 key from b.test: %v", err)
	}

	// carol leaves (through c.test): a new epoch; c.test forgets the group.
	if err := carol.Leave(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	carolEv.groupChanged(g.ID, func(ev *client.Event) bool { return ev.Removed })
	if gs, err := carol.Groups(ctx); err != nil || len(gs) != 0 {
		t.Fatalf("carol's groups after leaving: %+v %v", gs, err)
	}
	bobEv.groupChanged(g.ID, func(ev *client.Event) bool { return ev.Info != nil && ev.Info.Epoch == 2 && len(ev.Info.Members) == 2 })
	// The old epoch through the proxy: 409 stale_epoch, from a.test.
	stale, err := e2ee.SealGroup(nil, mustKeys(t, bob), gk1, e2ee.Draft{SentAt: time.Now(), Message: text("old key")})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := stale.MarshalJSON()
	if r := b.do("POST", "/api/groups/"+g.ID+"/messages", access(bob), raw); r.Status != http.StatusConflict || r.errorCode(t) != "stale_epoch" {
		t.Fatalf("old epoch through b.test: %d %s", r.Status, r.Body)
	}
	// bob (an admin now) distributes epoch 2's key through b.test.
	after := mustSendGroup(t, bob, g.ID, "after carol")
	if got := aliceEv.groupMessage(after.ID); got != "after carol" {
		t.Fatalf("alice got %q", got)
	}
	want = append(want, "after carol")
	if r := c.do("GET", "/api/groups/"+g.ID+"/messages", access(carol), nil); r.Status != http.StatusNotFound {
		t.Fatalf("carol reads the group after leaving: %d %s", r.Status, r.Body)
	}
	if n, err := carol.UnreadCount(ctx); err != nil || n.Groups != 3 {
		t.Fatalf("carol's unread group messages: %+v %v (want the 3 from before she left)", n, err)
	}

	// b.test is down for a while: alice's messages wait in a.test's
	// outbox and arrive in order, once each, when it is back.
	b.stop()
	var down []string
	for i := range 3 {
		body := fmt.Sprintf("while b.test is down %d", i)
		mustSendGroup(t, alice, g.ID, body)
		down = append(down, body)
	}
	b.launch(nil)
	introduce(b, servers)
	bob = bobU.login(t)
	want = append(want, down...)
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := groupBodies(t, bob, g.ID)
		if slices.Equal(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob reads\n%q\nwant\n%q", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// a.test, the group's server, is down: bob still reads the group from
	// b.test's copy; a change cannot be made (503) and nothing is lost.
	a.stop()
	if gg, err := bob.Group(ctx, g.ID); err != nil || gg.Epoch != 2 {
		t.Fatalf("bob reads the group while a.test is down: %+v %v", gg, err)
	}
	if _, err := bob.SendGroup(ctx, g.ID, text("nobody hears"), client.SendOptions{}); !privateline.Is(privateline.Unavailable, err) {
		t.Fatalf("sending while the group's server is down: %v, want Unavailable", err)
	}
	a.launch(nil)
	introduce(a, servers)
	back := mustSendGroup(t, bob, g.ID, "a.test is back")
	want = append(want, "a.test is back")
	outsider = sdkRegister(t, a, sdkClient(t, a, nil), "galice2", "alice").login(t)
	if _, err := outsider.Group(ctx, g.ID); !privateline.Is(privateline.NotExist, err) {
		t.Fatalf("a non-member reads the group: %v", err)
	}
	if got := groupBodies(t, bob, g.ID); !slices.Equal(got, want) {
		t.Fatalf("bob reads\n%q\nwant\n%q", got, want)
	}
	alice = aliceU.login(t)
	if got := groupBodies(t, alice, g.ID); !slices.Equal(got, want) || len(got) == 0 {
		t.Fatalf("alice reads\n%q\nwant\n%q", got, want)
	}
	_ = back

	// bob deletes his account: b.test asks a.test to remove him first.
	if err := bob.DeleteAccount(ctx, bobU.password); err != nil {
		t.Fatal(err)
	}
	if gg, err := alice.Group(ctx, g.ID); err != nil || len(gg.Members) != 1 || gg.Epoch != 3 {
		t.Fatalf("the group after bob deleted his account: %+v %v", gg, err)
	}
}
