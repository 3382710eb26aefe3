package federation

import (
	"net"
	"testing"
	"time"

	"github.com/privateline/privateline"
)

// TestLookupWhilePeerDown: with a verified answer kept, a key look-up of
// a peer that went down answers from it within lookupGrace instead of
// waiting for the handshake timeout (a long one here, 60 s), and another
// look-up while that dial is still in progress answers at once; a
// look-up of a peer that is up gets its fresh answer.
func TestLookupWhilePeerDown(t *testing.T) {
	f := newKeyFixture(t)
	f.register(t, "alice")
	d := &node{name: dirServer, key: f.key, st: newFakeStore()}
	asker := newNode(t, nameA)
	asker.hand = 60 * time.Second
	pair(t, d, asker, func(c *Config) { c.Keys = f.dir }, nil)
	alice := privateline.Address("alice@example.org")
	fresh, err := asker.svc.LookupRemote(testCtx(t), alice, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The link is up: no grace is spent, the answer is fresh again.
	start := time.Now()
	if _, err := asker.svc.LookupRemote(testCtx(t), alice, 0); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took >= lookupGrace {
		t.Fatalf("a look-up over a live link took %v", took)
	}

	d.svc.Close()
	waitFor(t, "the link to the stopped peer to close", func() bool {
		asker.svc.mu.Lock()
		sd := asker.svc.senders[dirServer]
		asker.svc.mu.Unlock()
		return sd == nil || !sd.linked()
	})
	for i, limit := range []time.Duration{lookupGrace + 5*time.Second, lookupGrace / 2} {
		start := time.Now()
		l, err := asker.svc.LookupRemote(testCtx(t), alice, 0)
		took := time.Since(start)
		if err != nil {
			t.Fatalf("look-up %d while the peer is down: %v", i, err)
		}
		if !l.Bundle.Equal(fresh.Bundle) || l.Head.TreeSize != fresh.Head.TreeSize {
			t.Fatalf("look-up %d while the peer is down gave another answer than the kept one", i)
		}
		if took > limit {
			t.Fatalf("look-up %d while the peer is down took %v, want at most %v (the handshake timeout is 60 s)", i, took, limit)
		}
	}
	asker.svc.mu.Lock()
	inFlight := asker.svc.flights[dirServer]
	asker.svc.mu.Unlock()
	if !inFlight {
		t.Fatal("no look-up of the stopped peer is in progress in the background")
	}
}

// TestStaleDialDoesNotMarkMovedPeerDown: a dial to the address a peer has
// left, failing after the peer's new address was learnt (SetPeerAddr),
// does not mark the peer down: a key look-up right after it reaches the
// peer at its new address instead of answering "could not be reached
// moments ago".
func TestStaleDialDoesNotMarkMovedPeerDown(t *testing.T) {
	f := newKeyFixture(t)
	f.register(t, "alice")
	d := &node{name: dirServer, key: f.key, st: newFakeStore()}
	asker := newNode(t, nameA)
	d.start(t, []Peer{{Name: asker.name, Key: asker.key.Public()}}, func(c *Config) { c.Keys = f.dir })
	asker.start(t, []Peer{{Name: d.name, Key: d.key.Public()}}, nil)

	// The old address: a UDP socket that takes packets and never answers.
	old, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	asker.svc.SetPeerAddr(dirServer, old.LocalAddr().String())
	asker.svc.mu.Lock()
	sd := asker.svc.senderLocked(dirServer)
	asker.svc.mu.Unlock()
	failed := make(chan error, 1)
	go func() {
		_, err := sd.link(testCtx(t))
		failed <- err
	}()
	// The dial is under way once its first packet reaches the old address.
	old.SetReadDeadline(time.Now().Add(15 * time.Second))
	if _, _, err := old.ReadFrom(make([]byte, 2048)); err != nil {
		t.Fatalf("no handshake reached the old address: %v", err)
	}
	asker.svc.SetPeerAddr(dirServer, d.svc.Addr())
	if err := <-failed; err == nil {
		t.Fatal("the dial to the old address succeeded")
	}
	if sd.down() {
		t.Fatal("a dial begun before the peer moved marked it down")
	}
	if _, err := asker.svc.LookupRemote(testCtx(t), "alice@example.org", 0); err != nil {
		t.Fatalf("a look-up after the peer moved: %v", err)
	}
}
