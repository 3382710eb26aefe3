package homeserver_test

import (
	"context"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/client"
)

// TestFederationSendWhileDown: alice@a.test writes to bob@b.test, whom she
// wrote before, while b.test is down: the send answers at once (the
// envelope waits in a.test's durable outbox) instead of after a handshake
// timeout spent dialling b.test for bob's keys; a.test answers the key
// look-up from its last verified answer, which her client verifies as
// before. The message reaches bob when b.test is back.
func TestFederationSendWhileDown(t *testing.T) {
	t.Parallel()
	servers := startFederation(t, "a.test", "b.test")
	a, b := servers[0], servers[1]
	b.cfg.ListenAddr = b.srv.Addr()
	alice := sdkRegister(t, a, sdkClient(t, a, nil), "walice", "alice").login(t)
	bobU := sdkRegister(t, b, sdkClient(t, b, nil), "wbob", "bob")
	bob := bobU.login(t)
	bobEv := listen(t, bob)
	first := mustSend(t, alice, bob.Address(), "while b.test is up")
	bobEv.message(first.ID)

	b.stop()
	start := time.Now()
	res, err := alice.Send(context.Background(), []privateline.Address{bob.Address()}, text("while b.test is down"), client.SendOptions{})
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the send took %v", took)
	if took > 3*time.Second {
		t.Fatalf("the send while b.test is down took %v, want well under the 10 s handshake timeout", took)
	}
	b.launch(nil)
	introduce(b, servers)
	bob = bobU.login(t)
	deadline := time.Now().Add(60 * time.Second)
	for {
		items := mustMessages(t, bob, client.MessagesQuery{With: alice.Address()})
		if len(items) == 2 && items[0].ID == res.ID && items[0].Body() == "while b.test is down" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob's conversation a minute after b.test came back: %+v", items)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
