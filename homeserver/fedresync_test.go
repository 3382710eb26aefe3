package homeserver_test

import (
	"context"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/client"
	"github.com/privateline/privateline/homeserver"
)

// Group replica resync (spec/federation.md §12.1 "Resync", §14): a
// member's server that missed the group's changes, or lost its replica,
// catches up without any further change on the group's server.

// startFederationWith is startFederation with each configuration changed
// by mod first.
func startFederationWith(t *testing.T, mod func(*homeserver.Config), names ...privateline.ServerName) []*testServer {
	t.Helper()
	var ts []*testServer
	for _, n := range names {
		cfg := testConfig(t)
		cfg.ServerName = n
		cfg.FederationListenAddr = "127.0.0.1:0"
		mod(&cfg)
		ts = append(ts, startServer(t, cfg))
	}
	for _, a := range ts {
		introduce(a, ts)
	}
	for _, s := range ts { // clients reach restarted servers where they were
		s.cfg.ListenAddr = s.srv.Addr()
	}
	return ts
}

// outboxDepth is the number of entries ts has queued for dest, from its
// metrics.
func (ts *testServer) outboxDepth(dest privateline.ServerName) int {
	ts.t.Helper()
	prefix := `privateline_federation_outbox_depth{destination="` + string(dest) + `"} `
	for _, line := range strings.Split(ts.metrics(), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			d, err := strconv.Atoi(v)
			if err != nil {
				ts.t.Fatalf("metrics: %q", line)
			}
			return d
		}
	}
	return 0 // no line: nothing queued
}

// waitGroup polls s's view of group id until ok holds (a minute at most).
func waitGroup(t *testing.T, s *client.Session, id string, what string, ok func(*client.Group) bool) *client.Group {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		g, err := s.Group(context.Background(), id)
		if err == nil && ok(g) {
			return g
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s: the group reads %+v, %v", s.Address(), what, g, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFederationGroupResyncAfterTimeout: b.test is down longer than the
// delivery timeout while a.test, the group's server, adds carol@c.test
// and moves the group to a new epoch. A message sent meanwhile expires
// for b.test (alice is told); the group's state does not. When b.test is
// back, bob sees carol, and reads and sends in the new epoch with no
// further change made on a.test.
func TestFederationGroupResyncAfterTimeout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	servers := startFederationWith(t, func(c *homeserver.Config) { c.FederationDeliveryTimeout = 2 * time.Second },
		"a.test", "b.test", "c.test")
	a, b, c := servers[0], servers[1], servers[2]
	alice := sdkRegister(t, a, sdkClient(t, a, nil), "salice", "alice").login(t)
	bobU := sdkRegister(t, b, sdkClient(t, b, fresh()), "sbob", "bob")
	bob := bobU.login(t)
	carol := sdkRegister(t, c, sdkClient(t, c, nil), "scarol", "carol").login(t)
	mustLookup(t, alice, carol.Address())
	aliceEv, carolEv := listen(t, alice), listen(t, carol)
	bobEv := listen(t, bob)

	g, err := alice.CreateGroup(ctx, []privateline.Address{bob.Address()})
	if err != nil {
		t.Fatal(err)
	}
	first := mustSendGroup(t, alice, g.ID, "epoch one")
	if got := bobEv.groupMessage(first.ID); got != "epoch one" {
		t.Fatalf("bob got %q", got)
	}

	b.stop()
	g2, err := alice.AddMember(ctx, g.ID, carol.Address(), "")
	if err != nil {
		t.Fatalf("alice adds carol while b.test is down: %v", err)
	}
	if g2.Epoch != 2 || len(g2.Members) != 3 {
		t.Fatalf("the group after adding carol: %+v", g2)
	}
	missed := mustSendGroup(t, alice, g.ID, "while b.test is down")
	if got := carolEv.groupMessage(missed.ID); got != "while b.test is down" {
		t.Fatalf("carol got %q", got)
	}
	// The message expires for b.test: alice hears of it.
	for {
		ev := aliceEv.next(client.EventDeliveryFailed)
		if ev.ID == missed.ID {
			if ev.Server != "b.test" || ev.Error != "timeout" {
				t.Fatalf("alice's delivery_failed: %+v", ev)
			}
			break
		}
	}
	// The group's state stays queued for b.test (it never expires).
	if n := a.outboxDepth("b.test"); n < 1 {
		t.Fatalf("a.test's outbox for b.test holds %d entries after the timeout; the group's state must stay", n)
	}

	b.launch(nil)
	introduce(b, servers)
	bob = bobU.login(t)
	bobEv = listen(t, bob)
	waitGroup(t, bob, g.ID, "carol and epoch 2 after b.test is back", func(g *client.Group) bool {
		return g.Epoch == 2 && len(g.Members) == 3 && g.Role(carol.Address()) == "member"
	})
	// bob sends in epoch 2 (his key wrap of it came with the state); alice
	// and carol read it; carol's reply reaches bob and opens.
	hi := mustSendGroup(t, bob, g.ID, "bob is back")
	for _, l := range []*listener{aliceEv, carolEv} {
		if got := l.groupMessage(hi.ID); got != "bob is back" {
			t.Fatalf("got %q", got)
		}
	}
	// What a.test kept for b.test is delivered (an attempt that was
	// dialling b.test's old address ends first); with a delivery timeout
	// of 2 s, a message queued before that could expire.
	waitUntil(t, "a.test's outbox for b.test to empty", time.Minute, func() bool { return a.outboxDepth("b.test") == 0 })
	reply := mustSendGroup(t, carol, g.ID, "welcome back")
	if got := bobEv.groupMessage(reply.ID); got != "welcome back" {
		t.Fatalf("bob got %q", got)
	}
	// The expired message never reached bob; everything else did, once.
	if got, want := groupBodies(t, bob, g.ID), []string{"epoch one", "bob is back", "welcome back"}; !slices.Equal(got, want) {
		t.Fatalf("bob reads %q, want %q", got, want)
	}

	// b.test restarts while a.test is down: it cannot ask a.test for the
	// group's state, and bob's reads do not wait for it (a dial to a.test
	// alone would take the 10 s handshake timeout).
	a.stop()
	b.restart()
	introduce(b, servers)
	bob = bobU.login(t)
	start := time.Now()
	if gg, err := bob.Group(ctx, g.ID); err != nil || gg.Epoch != 2 || len(gg.Members) != 3 {
		t.Fatalf("bob reads the group while a.test is down: %+v %v", gg, err)
	}
	if got := groupBodies(t, bob, g.ID); len(got) != 3 {
		t.Fatalf("bob reads %q while a.test is down", got)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("bob's reads took %v while the group's server is down", d)
	}
}

// fresh is a transport with a new connection per request: bob's client
// must not reuse a connection to b.test's previous process.
func fresh() http.RoundTripper { return &http.Transport{DisableKeepAlives: true} }

// copyDir copies the tree at from to to (which must not exist), with
// the files' permissions: a backup of a stopped server.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, info.Mode().Perm())
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestFederationGroupLostReplica: b.test is restored from a backup taken
// before bob joined the group, so it has no replica. alice's next message
// shows b.test the replica is missing: b.test gets the group's state
// from a.test before taking the message, so bob receives it exactly once
// and can open it, and alice hears it was delivered.
func TestFederationGroupLostReplica(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	servers := startFederationWith(t, func(*homeserver.Config) {}, "a.test", "b.test")
	a, b := servers[0], servers[1]
	alice := sdkRegister(t, a, sdkClient(t, a, nil), "lalice", "alice").login(t)
	bobU := sdkRegister(t, b, sdkClient(t, b, fresh()), "lbob", "bob")
	bob := bobU.login(t)
	mustLookup(t, alice, bob.Address())

	backup := backUp(t, b, servers)
	bob = bobU.login(t)
	bobEv := listen(t, bob)

	g, err := alice.CreateGroup(ctx, []privateline.Address{bob.Address()})
	if err != nil {
		t.Fatal(err)
	}
	before := mustSendGroup(t, alice, g.ID, "before the restore")
	if got := bobEv.groupMessage(before.ID); got != "before the restore" {
		t.Fatalf("bob got %q", got)
	}

	restoreFrom(t, b, backup, servers)
	bob = bobU.login(t)
	if gs, err := bob.Groups(ctx); err != nil || len(gs) != 0 {
		t.Fatalf("after the restore b.test should know no group of bob's: %+v %v", gs, err)
	}
	bobEv = listen(t, bob)
	aliceEv := listen(t, alice)

	after := mustSendGroup(t, alice, g.ID, "after the restore")
	if got := bobEv.groupMessage(after.ID); got != "after the restore" {
		t.Fatalf("bob got %q", got)
	}
	for {
		ev := aliceEv.next(client.EventDelivered, client.EventDeliveryFailed)
		if ev.ID != after.ID {
			continue
		}
		if ev.Type != client.EventDelivered || ev.Server != "b.test" {
			t.Fatalf("alice's event for the message: %+v", ev)
		}
		break
	}
	if gg, err := bob.Group(ctx, g.ID); err != nil || len(gg.Members) != 2 || gg.Epoch != 1 {
		t.Fatalf("bob's group after the message: %+v %v", gg, err)
	}
	// Exactly once: the restored b.test had nothing of the group, and
	// the message was taken once.
	if got, want := groupBodies(t, bob, g.ID), []string{"after the restore"}; !slices.Equal(got, want) {
		t.Fatalf("bob reads %q, want %q", got, want)
	}
	if !strings.Contains(b.logs.String(), "brought up to date") {
		t.Fatalf("b.test did not log that it brought the replica up to date")
	}
}

// backUp stops ts, copies its data directory and starts it again where
// it was; it returns the copy's path.
func backUp(t *testing.T, ts *testServer, servers []*testServer) string {
	t.Helper()
	ts.stop()
	backup := t.TempDir() + "/backup"
	copyDir(t, ts.cfg.DataDir, backup)
	ts.launch(nil)
	introduce(ts, servers)
	return backup
}

// restoreFrom stops ts, replaces its data directory by the backup and
// starts it again where it was.
func restoreFrom(t *testing.T, ts *testServer, backup string, servers []*testServer) {
	t.Helper()
	ts.stop()
	if err := os.RemoveAll(ts.cfg.DataDir); err != nil {
		t.Fatal(err)
	}
	copyDir(t, backup, ts.cfg.DataDir)
	ts.launch(nil)
	introduce(ts, servers)
}

// TestFederationGroupServerRestored: a.test, the group's server, is
// restored from a backup taken before alice added carol@c.test, so its
// group is back at an older version, without carol. b.test, which had
// taken the newer state, follows the restored one when a.test next
// speaks to it (a message of alice's): bob no longer sees carol, and the
// group moves past the epoch a.test lost (b.test tells it), where both go
// on. c.test drops its replica when carol next
// acts in the group, which a.test no longer lets her do.
func TestFederationGroupServerRestored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	servers := startFederationWith(t, func(*homeserver.Config) {}, "a.test", "b.test", "c.test")
	a, b, c := servers[0], servers[1], servers[2]
	aliceU := sdkRegister(t, a, sdkClient(t, a, fresh()), "ralice", "alice")
	alice := aliceU.login(t)
	bob := sdkRegister(t, b, sdkClient(t, b, nil), "rbob", "bob").login(t)
	carol := sdkRegister(t, c, sdkClient(t, c, nil), "rcarol", "carol").login(t)
	mustLookup(t, alice, bob.Address())
	mustLookup(t, alice, carol.Address())
	bobEv := listen(t, bob)

	g, err := alice.CreateGroup(ctx, []privateline.Address{bob.Address()})
	if err != nil {
		t.Fatal(err)
	}
	first := mustSendGroup(t, alice, g.ID, "before the backup")
	if got := bobEv.groupMessage(first.ID); got != "before the backup" {
		t.Fatalf("bob got %q", got)
	}

	backup := backUp(t, a, servers)
	alice = aliceU.login(t)

	if g2, err := alice.AddMember(ctx, g.ID, carol.Address(), ""); err != nil || g2.Epoch != 2 || len(g2.Members) != 3 {
		t.Fatalf("alice adds carol: %+v %v", g2, err)
	}
	waitGroup(t, bob, g.ID, "carol, in epoch 2", func(g *client.Group) bool {
		return g.Epoch == 2 && len(g.Members) == 3 && g.Role(carol.Address()) == "member"
	})
	waitGroup(t, carol, g.ID, "carol's own view of the group", func(g *client.Group) bool { return g.Epoch == 2 })
	// alice makes epoch 2's key (her next message would); it goes to
	// b.test and c.test. (No message of epoch 2 is sent: clients that
	// opened one refuse later messages of an older epoch, the restored
	// one — see docs/federation.md.)
	if _, err := alice.Rekey(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a.test to deliver epoch 2's key", time.Minute, func() bool {
		return a.outboxDepth("b.test") == 0 && a.outboxDepth("c.test") == 0
	})

	// a.test is restored: its group is at epoch 1 again, without carol
	// (or already past epoch 2, if b.test has told it of epoch 2).
	restoreFrom(t, a, backup, servers)
	alice = aliceU.login(t)
	if ga, err := alice.Group(ctx, g.ID); err != nil || ga.Epoch != 1 && ga.Epoch != 3 || len(ga.Members) != 2 {
		t.Fatalf("the restored a.test's group: %+v %v", ga, err)
	}
	after := mustSendGroup(t, alice, g.ID, "after the restore")
	if got := bobEv.groupMessage(after.ID); got != "after the restore" {
		t.Fatalf("bob got %q", got)
	}
	// b.test, having met a.test's new process, told it that it held epoch
	// 2: the restored group moves past it, to epoch 3 (spec/federation.md
	// §12.1, "Lost epochs"), and bob's copy follows, without carol.
	waitGroup(t, bob, g.ID, "the restored group: alice and bob, past epoch 2", func(g *client.Group) bool {
		return g.Epoch == 3 && len(g.Members) == 2 && g.Role(carol.Address()) == ""
	})
	// alice's next message makes epoch 3's key; bob goes on in it and
	// alice reads him.
	aliceEv := listen(t, alice)
	again := mustSendGroup(t, alice, g.ID, "alice in the new epoch")
	if got := bobEv.groupMessage(again.ID); got != "alice in the new epoch" {
		t.Fatalf("bob got %q", got)
	}
	reply := mustSendGroup(t, bob, g.ID, "bob in the restored group")
	if got := aliceEv.groupMessage(reply.ID); got != "bob in the restored group" {
		t.Fatalf("alice got %q", got)
	}

	// carol acts: a.test refuses her, and c.test, having met a.test's new
	// process, asks it for the group and drops its replica.
	if _, err := carol.SendGroup(ctx, g.ID, text("am I still in?"), client.SendOptions{}); err == nil {
		t.Fatal("carol sent in a group the restored a.test does not count her in")
	}
	waitUntil(t, "c.test to drop its replica of the group", time.Minute, func() bool {
		gs, err := carol.Groups(ctx)
		return err == nil && len(gs) == 0
	})
}

// metricValue is the value of the metric line of ts that starts with
// series (name and labels), 0 if there is none.
func (ts *testServer) metricValue(series string) float64 {
	ts.t.Helper()
	for _, line := range strings.Split(ts.metrics(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				ts.t.Fatalf("metrics: %q", line)
			}
			return f
		}
	}
	return 0
}

// TestFederationResyncPaced: b.test keeps replicas of many groups of
// a.test. When it restarts it asks a.test for the state of each, but
// paced to a part of the per-origin rate: a.test never has to refuse it
// as rate_limited, and bob's message to alice, sent while the requests
// go on, is delivered.
func TestFederationResyncPaced(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const rate, groups = 20, 40 // 40 requests at once would be refused after the 20 of a second's burst
	servers := startFederationWith(t, func(c *homeserver.Config) { c.FederationRatePerOrigin = rate }, "a.test", "b.test")
	a, b := servers[0], servers[1]
	alice := sdkRegister(t, a, sdkClient(t, a, nil), "palice", "alice").login(t)
	bobU := sdkRegister(t, b, sdkClient(t, b, fresh()), "pbob", "bob")
	bob := bobU.login(t)
	mustLookup(t, alice, bob.Address())
	mustLookup(t, bob, alice.Address())
	aliceEv := listen(t, alice)
	for range groups {
		if _, err := alice.CreateGroup(ctx, []privateline.Address{bob.Address()}); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "bob to see all of alice's groups", time.Minute, func() bool {
		gs, err := bob.Groups(ctx)
		return err == nil && len(gs) == groups
	})
	limited := `privateline_federation_rejected_frames_total{reason="rate_limited"}`
	before := a.metricValue(limited)

	b.restart()
	introduce(b, servers)
	bob = bobU.login(t)
	hi := mustSend(t, bob, alice.Address(), "sent while b.test catches up")
	if ev := aliceEv.message(hi.ID); ev.Item == nil {
		t.Fatalf("alice's event: %+v", ev)
	}
	asked := func() float64 {
		return b.metricValue(`privateline_federation_group_resyncs_total{outcome="current"}`) +
			b.metricValue(`privateline_federation_group_resyncs_total{outcome="updated"}`)
	}
	waitUntil(t, "b.test to ask a.test for every group", 2*time.Minute, func() bool { return asked() >= groups })
	if n := a.metricValue(limited) - before; n != 0 {
		t.Fatalf("a.test refused %v frames as rate_limited while b.test caught up", n)
	}
	if n := b.metricValue(`privateline_federation_group_resyncs_total{outcome="rate_limited"}`); n != 0 {
		t.Fatalf("b.test was told to wait %v times", n)
	}
	if gs, err := bob.Groups(ctx); err != nil || len(gs) != groups {
		t.Fatalf("bob's groups after the restart: %d %v", len(gs), err)
	}
}
