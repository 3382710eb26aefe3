package homeserver_test

import (
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/client"
)

// Two homeservers that know nothing of each other but a gossip seed: no
// FEDERATION_PEERS, no SetPeerAddr, and server names whose documents
// cannot be fetched. Gossip (encrypted) tells each where the other's QUIC
// listener is; the TLS handshake pins the keys; messages and key look-ups
// go both ways.
func TestFederationThroughGossip(t *testing.T) {
	t.Parallel()
	key := make([]byte, 32)
	rand.Read(key)
	start := func(name privateline.ServerName, seeds ...string) *testServer {
		cfg := testConfig(t)
		cfg.ServerName = name
		cfg.FederationListenAddr = "127.0.0.1:0"
		cfg.FederationGossipAddr = "127.0.0.1:0"
		cfg.FederationSeeds = seeds
		cfg.FederationGossipKey = key
		return startServer(t, cfg)
	}
	a := start("ga.test")
	b := start("gb.test", a.srv.GossipAddr())

	sees := func(x, y *testServer) bool {
		for _, m := range x.srv.FederationMembers() {
			if m.Name == y.cfg.ServerName && m.State == "up" && m.Federation == y.srv.FederationAddr() {
				return true
			}
		}
		return false
	}
	countsTwo := func() bool {
		return strings.Contains(a.metrics(), `privateline_federation_gossip_members{state="up"} 2`)
	}
	deadline := time.Now().Add(60 * time.Second)
	for !sees(a, b) || !sees(b, a) || !countsTwo() {
		if time.Now().After(deadline) {
			t.Fatalf("the servers did not find each other through gossip: a sees %+v, b sees %+v; a's metrics:\n%s",
				a.srv.FederationMembers(), b.srv.FederationMembers(), grepLines(a.metrics(), "gossip"))
		}
		time.Sleep(5 * time.Millisecond)
	}

	alice := sdkRegister(t, a, sdkClient(t, a, nil), "galice", "alice").login(t)
	bob := sdkRegister(t, b, sdkClient(t, b, nil), "gbob", "bob").login(t)
	aliceEv, bobEv := listen(t, alice), listen(t, bob)
	if got := mustLookup(t, alice, bob.Address()); !mustKeys(t, bob).Matches(got) {
		t.Fatal("alice got another bundle for bob than bob's own")
	}
	hello := mustSend(t, alice, bob.Address(), "found you through gossip")
	if ev := bobEv.message(hello.ID); ev.Item.Err != nil || ev.Item.Body() != "found you through gossip" || ev.Item.From != alice.Address() {
		t.Fatalf("bob's event: %+v (item %+v)", ev, ev.Item)
	}
	if ev := aliceEv.next(client.EventDelivered); ev.ID != hello.ID || ev.Server != "gb.test" {
		t.Fatalf("alice's delivered event: %+v", ev)
	}
	reply := mustSend(t, bob, alice.Address(), "and back")
	if ev := aliceEv.message(reply.ID); ev.Item.Err != nil || ev.Item.Body() != "and back" {
		t.Fatalf("alice's event: %+v (item %+v)", ev, ev.Item)
	}
}
