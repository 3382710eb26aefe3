package homeserver_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/client"
	"github.com/privateline/privateline/clients/go/e2ee"
	"github.com/privateline/privateline/homeserver"
)

// Three homeservers federated over real QUIC on loopback, with users
// talking through the Go SDK as they would from the CLI.

// federation starts one homeserver per name, each listening for
// federation on 127.0.0.1:0, and tells each where the others are
// (first contact pins their keys).
func startFederation(t *testing.T, names ...privateline.ServerName) []*testServer {
	t.Helper()
	var ts []*testServer
	for _, n := range names {
		cfg := testConfig(t)
		cfg.ServerName = n
		cfg.FederationListenAddr = "127.0.0.1:0"
		ts = append(ts, startServer(t, cfg))
	}
	for _, a := range ts {
		introduce(a, ts)
	}
	return ts
}

// introduce tells a where every other server of all listens now.
func introduce(a *testServer, all []*testServer) {
	for _, b := range all {
		if b != a && b.srv != nil {
			a.srv.SetPeerAddr(b.cfg.ServerName, b.srv.FederationAddr())
			b.srv.SetPeerAddr(a.cfg.ServerName, a.srv.FederationAddr())
		}
	}
}

// listener collects a session's events.
type listener struct {
	t      *testing.T
	events chan *client.Event
	cancel context.CancelFunc
	done   chan error
}

func listen(t *testing.T, s *client.Session) *listener {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &listener{t: t, events: make(chan *client.Event, 1000), cancel: cancel, done: make(chan error, 1)}
	go func() {
		l.done <- s.Listen(ctx, client.ListenOptions{LiveOnly: true, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond},
			func(ev *client.Event) error { l.events <- ev; return nil })
	}()
	t.Cleanup(func() { cancel(); <-l.done })
	l.next(client.EventReady)
	return l
}

// next returns the next event of one of the types, skipping others.
func (l *listener) next(types ...string) *client.Event {
	l.t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case ev := <-l.events:
			for _, typ := range types {
				if ev.Type == typ {
					return ev
				}
			}
		case err := <-l.done:
			l.t.Fatalf("Listen returned %v", err)
		case <-deadline:
			l.t.Fatalf("no %v event within a minute", types)
		}
	}
}

// message returns the message event of message id, skipping others.
func (l *listener) message(id string) *client.Event {
	l.t.Helper()
	for {
		if ev := l.next(client.EventMessage); ev.Item != nil && ev.Item.ID == id {
			return ev
		}
	}
}

func TestFederationDirectMessagesAndKeys(t *testing.T) {
	t.Parallel()
	servers := startFederation(t, "a.test", "b.test", "c.test")
	a, b, c := servers[0], servers[1], servers[2]
	alice := sdkRegister(t, a, sdkClient(t, a, nil), "falice", "alice").login(t)
	bob := sdkRegister(t, b, sdkClient(t, b, nil), "fbob", "bob").login(t)
	carol := sdkRegister(t, c, sdkClient(t, c, nil), "fcarol", "carol").login(t)
	aliceEv, bobEv, carolEv := listen(t, alice), listen(t, bob), listen(t, carol)

	// Key look-ups across servers, verified by the client against the
	// other server's directory (and by alice's homeserver before that).
	if got := mustLookup(t, alice, bob.Address()); !mustKeys(t, bob).Matches(got) {
		t.Fatal("alice got another bundle for bob than bob's own")
	}
	if _, err := alice.PublicKey(context.Background(), privateline.Address("nobody@b.test")); !privateline.Is(privateline.NotExist, err) {
		t.Fatalf("looking up an unknown remote user: %v, want NotExist", err)
	}

	// alice → bob, and bob answers.
	hello := mustSend(t, alice, bob.Address(), "hello from a.test")
	ev := bobEv.next(client.EventMessage)
	if ev.Item == nil || ev.Item.Err != nil || ev.Item.Body() != "hello from a.test" || ev.Item.From != alice.Address() || ev.Item.ID != hello.ID {
		t.Fatalf("bob's event: %+v (item %+v)", ev, ev.Item)
	}
	if ev := aliceEv.next(client.EventDelivered); ev.ID != hello.ID || ev.Server != "b.test" {
		t.Fatalf("alice's delivered event: %+v", ev)
	}
	reply := mustSend(t, bob, alice.Address(), "hi from b.test")
	if ev := aliceEv.next(client.EventMessage); ev.Item == nil || ev.Item.Body() != "hi from b.test" || ev.Item.ID != reply.ID || ev.Item.From != bob.Address() {
		t.Fatalf("alice's event: %+v", ev)
	}
	// The conversation reads the same on both sides.
	for _, side := range []struct {
		s    *client.Session
		with privateline.Address
	}{{alice, bob.Address()}, {bob, alice.Address()}} {
		items := mustMessages(t, side.s, client.MessagesQuery{With: side.with})
		if len(items) != 2 || items[0].ID != reply.ID || items[1].ID != hello.ID || items[0].Err != nil || items[1].Err != nil {
			t.Fatalf("%s's conversation with %s: %+v", side.s.Address(), side.with, items)
		}
	}

	// Read receipts cross servers both ways.
	ctx := context.Background()
	if err := bob.MarkRead(ctx, hello.ID); err != nil {
		t.Fatal(err)
	}
	if ev := aliceEv.next(client.EventRead); ev.ID != hello.ID || ev.By != bob.Address() {
		t.Fatalf("alice's read event: %+v", ev)
	}
	if err := alice.MarkRead(ctx, reply.ID); err != nil {
		t.Fatal(err)
	}
	ev = bobEv.next(client.EventRead)
	if ev.ID == hello.ID && ev.By == bob.Address() { // his own read, told to his devices
		ev = bobEv.next(client.EventRead)
	}
	if ev.ID != reply.ID || ev.By != alice.Address() {
		t.Fatalf("bob's read event: %+v", ev)
	}
	if items := mustMessages(t, alice, client.MessagesQuery{With: bob.Address()}); len(items[1].ReadBy) != 1 || items[1].ReadBy[0] != bob.Address() {
		t.Fatalf("alice's copy of hello read by %v", items[1].ReadBy)
	}
	// A delete for everyone reaches bob's server.
	if err := alice.Delete(ctx, hello.ID); err != nil {
		t.Fatal(err)
	}
	if ev := bobEv.next(client.EventDeleted); ev.ID != hello.ID {
		t.Fatalf("bob's deleted event: %+v", ev)
	}
	if items := mustMessages(t, bob, client.MessagesQuery{With: alice.Address()}); len(items) != 1 || items[0].ID != reply.ID {
		t.Fatalf("bob's conversation after the delete: %+v", items)
	}

	// One message to users of two other servers and of its own.
	alice2 := sdkRegister(t, a, sdkClient(t, a, nil), "falice2", "").login(t)
	res, err := alice.Send(context.Background(), []privateline.Address{bob.Address(), carol.Address(), alice2.Address()}, text("to everyone"), client.SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []*listener{bobEv, carolEv} {
		if ev := l.message(res.ID); ev.Item.Err != nil || ev.Item.Body() != "to everyone" {
			t.Fatalf("fan-out event: %+v", ev.Item)
		}
	}
	servers2 := map[privateline.ServerName]bool{}
	for len(servers2) < 2 {
		ev := aliceEv.next(client.EventDelivered)
		if ev.ID == res.ID {
			servers2[ev.Server] = true
		}
	}
	if !servers2["b.test"] || !servers2["c.test"] {
		t.Fatalf("delivered to %v", servers2)
	}

	// bob changes keys: the next look-up through a.test sees it, and a.test
	// tells bob's contacts there.
	if _, err := bob.ChangeKeys(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got := mustLookup(t, alice2, bob.Address()); !mustKeys(t, bob).Matches(got) {
		t.Fatal("the look-up after bob's key change gave other keys than his new ones")
	}
	if ev := aliceEv.next(client.EventKeyChanged); ev.Address != bob.Address() {
		t.Fatalf("alice's key_changed event: %+v", ev)
	}

	// A user that does not exist on the other server: the sender hears of
	// it (a raw client: the SDK looks recipients up before sending).
	sender := a.registerWithKeys("fsender", "alice")
	ws, _ := a.openReady(sender.Access)
	ghost := newTestKeys(t, "ghost@b.test", "bob", time.Now())
	lost := sealFor(t, sender, []*e2ee.KeyBundle{ghost.Bundle}, "anyone?", nil)
	a.sendOK(sender, lost)
	if f := ws.nextOf("delivery_failed"); f.ID != lost.ID() || f.Server != "b.test" || f.Error == nil || f.Error.Code != "unknown_recipient" {
		t.Fatalf("delivery_failed frame: %+v %+v", f, f.Error)
	}
}

// TestFederationRestart: messages sent while the destination is down are
// delivered, each exactly once and in order, when it comes back on
// another port; nothing is lost when the sending server restarts too.
func TestFederationRestart(t *testing.T) {
	t.Parallel()
	servers := startFederation(t, "a.test", "b.test")
	a, b := servers[0], servers[1]
	// The clients reach the restarted servers where they were.
	for _, ts := range servers {
		ts.cfg.ListenAddr = ts.srv.Addr()
	}
	alice := sdkRegister(t, a, sdkClient(t, a, nil), "ralice", "alice").login(t)
	bobU := sdkRegister(t, b, sdkClient(t, b, nil), "rbob", "bob")
	bob := bobU.login(t)
	mustLookup(t, alice, bob.Address())
	first := mustSend(t, alice, bob.Address(), "before")

	t0 := time.Now()
	b.stop()
	t.Logf("b stopped after %v", time.Since(t0))
	const n = 30
	var want []string
	for i := range n {
		body := fmt.Sprintf("while b.test is down %02d", i)
		mustSend(t, alice, bob.Address(), body)
		want = append(want, body)
		if i == n/2 {
			t.Logf("restarting a after %v", time.Since(t0))
			a.restart() // the outbox survives the sender's restart
			introduce(a, servers)
			t.Logf("a restarted after %v", time.Since(t0))
		}
	}
	b.launch(nil)
	introduce(b, servers)
	bob = bobU.login(t)
	t.Logf("b back after %v", time.Since(t0))

	deadline := time.Now().Add(60 * time.Second)
	for {
		items := mustMessages(t, bob, client.MessagesQuery{With: alice.Address(), Limit: 100})
		if len(items) >= n+1 || time.Now().After(deadline) {
			seen := map[string]int{}
			var got []string
			for i := len(items) - 1; i >= 0; i-- { // oldest first
				seen[items[i].ID]++
				if items[i].ID != first.ID {
					got = append(got, items[i].Body())
				}
			}
			for id, k := range seen {
				if k != 1 {
					t.Errorf("message %s arrived %d times", id, k)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("bob has\n%q\nwant\n%q", got, want)
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFederationWaitingForDestination: a message to a user of a server that
// is down is announced to its sender as waiting for that server, and as
// delivered once the server is back.
func TestFederationWaitingForDestination(t *testing.T) {
	t.Parallel()
	servers := startFederation(t, "a.test", "b.test")
	a, b := servers[0], servers[1]
	b.cfg.ListenAddr = b.srv.Addr()
	alice := sdkRegister(t, a, sdkClient(t, a, nil), "walice", "alice").login(t)
	bobU := sdkRegister(t, b, sdkClient(t, b, nil), "wbob", "bob")
	bob := bobU.login(t)
	aliceEv := listen(t, alice)
	mustLookup(t, alice, bob.Address())
	first := mustSend(t, alice, bob.Address(), "while b.test is up")
	if ev := aliceEv.next(client.EventDelivered, client.EventDeliveryWaiting); ev.Type != client.EventDelivered || ev.ID != first.ID {
		t.Fatalf("first message: %+v, want delivered", ev)
	}

	b.stop()
	waiting := mustSend(t, alice, bob.Address(), "while b.test is down")
	ev := aliceEv.next(client.EventDelivered, client.EventDeliveryWaiting, client.EventDeliveryFailed)
	if ev.Type != client.EventDeliveryWaiting || ev.ID != waiting.ID || ev.Server != "b.test" {
		t.Fatalf("alice's event while b.test is down: %+v, want delivery_waiting for %s from b.test", ev, waiting.ID)
	}

	b.launch(nil)
	introduce(b, servers)
	for {
		ev := aliceEv.next(client.EventDelivered, client.EventDeliveryWaiting, client.EventDeliveryFailed)
		if ev.Type == client.EventDeliveryWaiting && ev.ID == waiting.ID {
			continue // an attempt failed before b.test was back (announced once per run of failures)
		}
		if ev.Type != client.EventDelivered || ev.ID != waiting.ID || ev.Server != "b.test" {
			t.Fatalf("alice's event once b.test is back: %+v, want delivered", ev)
		}
		break
	}
	items := mustMessages(t, bobU.login(t), client.MessagesQuery{With: alice.Address(), Limit: 10})
	if len(items) != 2 || items[0].Body() != "while b.test is down" {
		t.Fatalf("bob's messages after b.test is back: %d", len(items))
	}
}

// TestFederationWaitingWhileBackingOff: once a delivery to a server that
// is down has failed, a message sent during the sender's backoff (an hour
// here) is announced to its sender as waiting at once, not at the next
// attempt; the backoff is not cut short (no attempt is made for it), and
// both messages are delivered once the server is back.
func TestFederationWaitingWhileBackingOff(t *testing.T) {
	t.Parallel()
	servers := startFederationWith(t, func(c *homeserver.Config) { c.FederationRetryBase = time.Hour }, "a.test", "b.test")
	a, b := servers[0], servers[1]
	alice := sdkRegister(t, a, sdkClient(t, a, nil), "balice", "alice").login(t)
	bobU := sdkRegister(t, b, sdkClient(t, b, nil), "bbob", "bob")
	bob := bobU.login(t)
	aliceEv := listen(t, alice)
	mustLookup(t, alice, bob.Address())

	b.stop()
	first := mustSend(t, alice, bob.Address(), "first while b.test is down")
	if ev := aliceEv.next(client.EventDelivered, client.EventDeliveryWaiting, client.EventDeliveryFailed); ev.Type != client.EventDeliveryWaiting || ev.ID != first.ID {
		t.Fatalf("alice's event for the first message: %+v, want delivery_waiting", ev)
	}
	attempts := a.sendAttempts()
	second := mustSend(t, alice, bob.Address(), "second while b.test is down")
	ev := aliceEv.next(client.EventDelivered, client.EventDeliveryWaiting, client.EventDeliveryFailed)
	if ev.Type != client.EventDeliveryWaiting || ev.ID != second.ID || ev.Server != "b.test" {
		t.Fatalf("alice's event for a message sent during the backoff: %+v, want delivery_waiting for %s from b.test", ev, second.ID)
	}
	if n := a.sendAttempts(); n != attempts {
		t.Fatalf("%d delivery attempts after the second message, %d before: the backoff was cut short", n, attempts)
	}

	b.launch(nil)
	introduce(b, servers) // a.test learns the new address: the backoff ends
	delivered := map[string]bool{}
	for len(delivered) < 2 {
		ev := aliceEv.next(client.EventDelivered, client.EventDeliveryWaiting, client.EventDeliveryFailed)
		switch {
		case ev.Type == client.EventDelivered && (ev.ID == first.ID || ev.ID == second.ID):
			delivered[ev.ID] = true
		case ev.Type == client.EventDeliveryWaiting && (ev.ID == first.ID || ev.ID == second.ID):
			t.Fatalf("announced as waiting twice: %+v", ev)
		case ev.Type == client.EventDeliveryFailed:
			t.Fatalf("once b.test is back: %+v", ev)
		}
	}
	items := mustMessages(t, bobU.login(t), client.MessagesQuery{With: alice.Address(), Limit: 10})
	if len(items) != 2 || items[0].Body() != "second while b.test is down" || items[1].Body() != "first while b.test is down" {
		t.Fatalf("bob's messages after b.test is back: %d", len(items))
	}
}

// sendAttempts is the number of delivery attempts ts has made, from its
// metrics.
func (ts *testServer) sendAttempts() int {
	ts.t.Helper()
	for _, line := range strings.Split(ts.metrics(), "\n") {
		if v, ok := strings.CutPrefix(line, "privateline_federation_send_attempts_total "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				ts.t.Fatalf("metrics: %q", line)
			}
			return n
		}
	}
	ts.t.Fatal("metrics: no privateline_federation_send_attempts_total")
	return 0
}

// TestFederationUnknownServer: a look-up of a user of a server name that
// does not exist answers 404 unknown_server, while a name whose resolution
// fails for now (a DNS server failure) answers 503 as an unreachable
// server does. Name resolution is the test's own (no real DNS).
func TestFederationUnknownServer(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.FederationListenAddr = "127.0.0.1:0"
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(addr)
		switch host {
		case "typo.example":
			return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}}
		case "flaky.example":
			return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "server misbehaving", Name: host, IsTemporary: true}}
		}
		return nil, fmt.Errorf("the test resolves no name %q", host)
	}
	cfg.FederationHTTPClient = &http.Client{Transport: &http.Transport{DialContext: dial}, Timeout: 10 * time.Second}
	a := startServer(t, cfg)
	alice := a.register("ualice")

	r := a.do("GET", "/api/public_key/bob@typo.example", alice.Access, nil)
	if r.Status != http.StatusNotFound || r.json(t)["error"].(map[string]any)["code"] != "unknown_server" {
		t.Fatalf("look-up on a server name that does not exist: %d %s, want 404 unknown_server", r.Status, r.Body)
	}
	r = a.do("GET", "/api/public_key/bob@flaky.example", alice.Access, nil)
	if r.Status != http.StatusServiceUnavailable || r.json(t)["error"].(map[string]any)["code"] != "unavailable" {
		t.Fatalf("look-up while DNS fails for now: %d %s, want 503 unavailable", r.Status, r.Body)
	}
}
