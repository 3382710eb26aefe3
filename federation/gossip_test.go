package federation

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/privateline/privateline"
)

// Gossip in these tests: real memberlist on 127.0.0.1, port 0, probing
// every 100 ms.
const testGossipInterval = 100 * time.Millisecond

// withGossip configures gossip bound to 127.0.0.1:0 joining seeds, with
// key (nil: plain).
func withGossip(key []byte, seeds ...string) func(*Config) {
	return func(c *Config) {
		c.Gossip = &GossipConfig{BindAddr: "127.0.0.1:0", Seeds: seeds, Key: key, Interval: testGossipInterval}
	}
}

// waitGossip is waitFor with room for a loaded machine: memberlist's
// probes and the QUIC handshakes compete with the rest of the test suite.
func waitGossip(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// member returns what n's service knows of name in gossip.
func member(n *node, name privateline.ServerName) (Member, bool) {
	for _, m := range n.svc.Members() {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

// upAt reports whether n sees name up in gossip with federation address addr.
func upAt(n *node, name privateline.ServerName, addr string) bool {
	m, ok := member(n, name)
	return ok && m.State == MemberUp && m.Federation == addr
}

func names(ms []Member) []privateline.ServerName {
	var out []privateline.ServerName
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

// gauge reads a labelled gauge from a node's registry.
func gauge(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{%s=%q}", name, label, value)
	return 0
}

func plainCounter(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// A knows B's QUIC address only through gossip (no static address, no
// server document): A's envelope reaches B, and B's key is pinned by the
// TLS handshake, not by the hint in its metadata.
func TestGossipDiscoveryDelivers(t *testing.T) {
	c := newNode(t, nameC)
	c.start(t, nil, withGossip(nil))
	seed := c.svc.GossipAddr()
	if host, port, _ := net.SplitHostPort(seed); host != "127.0.0.1" || port == "0" || port == "" {
		t.Fatalf("gossip address %q: want 127.0.0.1 and the port actually bound", seed)
	}
	a, b := newNode(t, nameA, "alice"), newNode(t, nameB, "bob")
	a.start(t, nil, withGossip(nil, seed))
	b.start(t, nil, withGossip(nil, seed))

	waitGossip(t, "A to learn B's address through gossip", func() bool { return upAt(a, nameB, b.svc.Addr()) })
	waitGossip(t, "A to see all three servers", func() bool { return len(a.svc.Members()) == 3 })
	ms := a.svc.Members()
	if got := names(ms); !slices.Equal(got, []privateline.ServerName{nameA, nameB, nameC}) {
		t.Fatalf("A's members %v", got)
	}
	if !ms[0].Self || ms[1].Self || !ms[1].KeyHint.Equal(b.key.Public()) || ms[0].Federation != a.svc.Addr() {
		t.Fatalf("A's member list %+v", ms)
	}
	waitGossip(t, "A's gauge to count three members up", func() bool {
		return gauge(t, a.reg, "privateline_federation_gossip_members", "state", MemberUp) == 3
	})
	if k, _ := a.st.PeerPin(nameB); k != nil {
		t.Fatal("A pinned B's key from its gossip metadata")
	}

	ids := queueTo(t, a, "alice", nameB, "bob", 2)
	waitGossip(t, "delivery to B", func() bool { return a.st.depth(nameB) == 0 })
	if got := mailIDs(b.st); !slices.Equal(got, ids) {
		t.Fatalf("B stored %v, want %v", got, ids)
	}
	if k, _ := a.st.PeerPin(nameB); !k.Equal(b.key.Public()) {
		t.Fatal("A did not pin B's key at the TLS handshake")
	}
}

// A node claiming B's name with another key is found through gossip, its
// key hint disagrees with B's pin: logged and counted, never pinned, and
// the TLS handshake refuses it, so nothing reaches it.
func TestGossipKeyHintNeverTrusted(t *testing.T) {
	a := newNode(t, nameA, "alice")
	realB := newKey(t)
	if err := a.st.SetPeerPin(nameB, realB.Public()); err != nil {
		t.Fatal(err)
	}
	impostor := newNode(t, nameB, "bob") // B's name, another key
	a.start(t, nil, withGossip(nil))
	impostor.start(t, nil, withGossip(nil, a.svc.GossipAddr()))

	waitGossip(t, "A to see the impostor in gossip", func() bool { return upAt(a, nameB, impostor.svc.Addr()) })
	waitGossip(t, "the key mismatch counted", func() bool { return plainCounter(a.svc.gossip.met.keyMismatch) >= 1 })

	queueTo(t, a, "alice", nameB, "bob", 1)
	waitGossip(t, "A's attempt to fail", func() bool { return a.st.lastError(nameB) != "" })
	if n := counter(a.svc.met.failures, "unreachable"); n < 1 {
		t.Fatalf("A counted %v unreachable attempts, want ≥ 1 (the handshake refused)", n)
	}
	if k, _ := a.st.PeerPin(nameB); !k.Equal(realB.Public()) {
		t.Fatal("B's pin changed")
	}
	if len(impostor.st.mail()) != 0 || a.st.depth(nameB) != 1 {
		t.Fatalf("the impostor got %d entries; A's outbox holds %d", len(impostor.st.mail()), a.st.depth(nameB))
	}
	if !strings.Contains(a.st.lastError(nameB), "changed") {
		t.Fatalf("A's last error %q does not name the key change", a.st.lastError(nameB))
	}
}

// Gossip encrypted with one key: a node with another key cannot join, one
// with the same key can.
func TestGossipWrongKeyDoesNotJoin(t *testing.T) {
	k1, k2 := make([]byte, 32), make([]byte, 32)
	rand.Read(k1)
	rand.Read(k2)
	a, c, d := newNode(t, nameA), newNode(t, nameC), newNode(t, "d.test")
	a.start(t, nil, withGossip(k1))
	c.start(t, nil, withGossip(k2, a.svc.GossipAddr()))
	d.start(t, nil, withGossip(k1, a.svc.GossipAddr()))

	waitGossip(t, "D (same key) to join", func() bool { return upAt(a, "d.test", d.svc.Addr()) })
	waitGossip(t, "C (other key) to fail twice", func() bool { return counter(c.svc.gossip.met.joins, "failed") >= 2 })
	if _, ok := member(a, nameC); ok {
		t.Fatal("A lists C, whose gossip key is wrong")
	}
	if got := names(c.svc.Members()); !slices.Equal(got, []privateline.ServerName{nameC}) {
		t.Fatalf("C sees %v, want only itself", got)
	}
	if n := counter(c.svc.gossip.met.joins, "joined"); n != 0 {
		t.Fatalf("C counted %v joins", n)
	}
}

// A node claiming a denied name, or one off the allow list, is ignored:
// not listed, no address recorded.
func TestGossipIgnoresRefusedNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"deny", func(c *Config) { c.Deny = []privateline.ServerName{"d.test"} }},
		{"allow", func(c *Config) { c.Allow = []privateline.ServerName{nameB} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b, d := newNode(t, nameA), newNode(t, nameB), newNode(t, "d.test")
			a.start(t, nil, func(c *Config) { withGossip(nil)(c); tc.mod(c) })
			d.start(t, nil, withGossip(nil, a.svc.GossipAddr()))
			b.start(t, nil, withGossip(nil, a.svc.GossipAddr()))

			waitGossip(t, "A to see B", func() bool { return upAt(a, nameB, b.svc.Addr()) })
			waitGossip(t, "A to ignore D", func() bool { return counter(a.svc.gossip.met.ignored, "forbidden") >= 1 })
			waitGossip(t, "D to see A (it joined the cluster)", func() bool { return upAt(d, nameA, a.svc.Addr()) })
			if _, ok := member(a, "d.test"); ok {
				t.Fatal("A lists D")
			}
			if got := a.svc.addrOf("d.test"); got != "" {
				t.Fatalf("A recorded D's address %q", got)
			}
		})
	}
}

// B stops (leaving the cluster) and comes back on a new QUIC port while A
// has entries queued for it and is backing off for half an hour: A learns
// the new address from gossip and its sender is woken at once, so the
// entries arrive, in order, long before the backoff would have retried.
// B comes back on a new gossip port, or on the same one (memberlist then
// has B refute the "left" it hears about itself).
func TestGossipRestartWakesSender(t *testing.T) {
	for _, samePort := range []bool{false, true} {
		t.Run(map[bool]string{false: "new gossip port", true: "same gossip port"}[samePort], func(t *testing.T) {
			c := newNode(t, nameC)
			c.start(t, nil, withGossip(nil))
			seed := c.svc.GossipAddr()
			a, b := newNode(t, nameA, "alice"), newNode(t, nameB, "bob")
			a.base = time.Hour // first backoff: 30 min (jitter 0.5)
			// One failed handshake on a loaded machine would leave the
			// sender waiting for half an hour: allow slow ones.
			a.hand = 5 * time.Second
			a.start(t, nil, withGossip(nil, seed))
			b.start(t, nil, withGossip(nil, seed))
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("A: last error %q, attempts %v, members %+v", a.st.lastError(nameB), plainCounter(a.svc.met.attempts), a.svc.Members())
				}
			})
			waitGossip(t, "A to learn B's address", func() bool { return upAt(a, nameB, b.svc.Addr()) })
			first := queueTo(t, a, "alice", nameB, "bob", 1)
			waitGossip(t, "first delivery", func() bool { return a.st.depth(nameB) == 0 })

			oldAddr, oldGossip := b.svc.Addr(), b.svc.GossipAddr()
			b.svc.Close()
			waitGossip(t, "A to see B leave", func() bool { m, _ := member(a, nameB); return m.State == MemberDown })
			more := queueTo(t, a, "alice", nameB, "bob", 3)
			waitGossip(t, "A's attempt to fail", func() bool { return a.st.lastError(nameB) != "" })
			if a.st.depth(nameB) != 3 {
				t.Fatalf("A's outbox holds %d entries, want 3", a.st.depth(nameB))
			}
			woken := plainCounter(a.svc.gossip.met.wakeups)

			mod := withGossip(nil, seed)
			if samePort {
				mod = func(cfg *Config) {
					cfg.Gossip = &GossipConfig{BindAddr: oldGossip, Seeds: []string{seed}, Interval: testGossipInterval}
				}
			}
			b.start(t, nil, mod)
			if b.svc.Addr() == oldAddr {
				t.Fatalf("B came back on the same QUIC address %s; the test needs a new one", oldAddr)
			}
			waitGossip(t, "delivery after B came back", func() bool { return a.st.depth(nameB) == 0 })
			if got := plainCounter(a.svc.gossip.met.wakeups); got <= woken {
				t.Fatalf("gossip woke A's sender %v times before and %v after B came back", woken, got)
			}
			if m, _ := member(a, nameB); m.Federation != b.svc.Addr() || m.State != MemberUp {
				t.Fatalf("A's member B: %+v, want up at %s", m, b.svc.Addr())
			}
			if got, want := mailIDs(b.st), append(first, more...); !slices.Equal(got, want) {
				t.Fatalf("B stored %v, want %v", got, want)
			}
		})
	}
}

// Close leaves the cluster: A, which probes only once an hour, sees B
// down at once (B's leave message, not A's failure detection), and B's
// gossip port is released.
func TestGossipCloseLeaves(t *testing.T) {
	a, b := newNode(t, nameA), newNode(t, nameB)
	a.start(t, nil, func(c *Config) {
		c.Gossip = &GossipConfig{BindAddr: "127.0.0.1:0", Interval: time.Hour}
	})
	b.start(t, nil, withGossip(nil, a.svc.GossipAddr()))
	waitGossip(t, "A to see B", func() bool { return upAt(a, nameB, b.svc.Addr()) })
	gaddr := b.svc.GossipAddr()
	if err := b.svc.Close(); err != nil {
		t.Fatal(err)
	}
	waitGossip(t, "A to see B leave", func() bool { m, _ := member(a, nameB); return m.State == MemberDown })
	if n := gauge(t, a.reg, "privateline_federation_gossip_members", "state", MemberDown); n != 1 {
		t.Fatalf("A's gauge of members down is %v, want 1", n)
	}
	ln, err := net.Listen("tcp", gaddr)
	if err != nil {
		t.Fatalf("B's gossip port is still held after Close: %v", err)
	}
	ln.Close()
}

// A seed that is down at start does not fail Start; joining is retried in
// the background until it answers.
func TestGossipSeedDownAtStart(t *testing.T) {
	// A free port for the seed that is not there yet.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	seed := l.Addr().String()
	l.Close()

	a := newNode(t, nameA)
	a.start(t, nil, withGossip(nil, seed))
	waitGossip(t, "a failed join", func() bool { return counter(a.svc.gossip.met.joins, "failed") >= 1 })
	c := newNode(t, nameC)
	c.start(t, nil, func(cfg *Config) { cfg.Gossip = &GossipConfig{BindAddr: seed, Interval: testGossipInterval} })
	t.Cleanup(func() {
		t.Logf("A: %+v joined %v failed %v; C: %+v", a.svc.Members(), counter(a.svc.gossip.met.joins, "joined"), counter(a.svc.gossip.met.joins, "failed"), c.svc.Members())
	})
	waitGossip(t, "A to join through the seed once it is up", func() bool {
		return upAt(a, nameC, c.svc.Addr()) && counter(a.svc.gossip.met.joins, "joined") == 1
	})
}

func TestGossipMeta(t *testing.T) {
	key := newKey(t).Public()
	raw, err := encodeGossipMeta(nameB, "127.0.0.1:8448", key)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"federation":"127.0.0.1:8448","key":"` + std64.EncodeToString(key) + `","server":"b.test","v":1}`
	if string(raw) != want {
		t.Fatalf("metadata %s, want %s", raw, want)
	}
	m, err := parseGossipMeta(raw)
	if err != nil || m.Server != nameB || m.Federation != "127.0.0.1:8448" || !m.Key.Equal(key) {
		t.Fatalf("parsed %+v, %v", m, err)
	}

	// Too big with the key: the key (a hint) is left out; too big
	// without it: an error.
	long := privateline.ServerName(strings.Repeat("x", 250) + ".test")
	raw, err = encodeGossipMeta(long, strings.Repeat("h", 200)+":8448", key)
	if err != nil || bytes.Contains(raw, []byte(`"key"`)) || len(raw) > MaxGossipMeta {
		t.Fatalf("metadata of %d bytes %s, %v", len(raw), raw, err)
	}
	if m, err := parseGossipMeta(raw); err != nil || m.Key != nil {
		t.Fatalf("parsed %+v, %v", m, err)
	}
	if _, err := encodeGossipMeta(long, strings.Repeat("h", 260)+":8448", key); err == nil {
		t.Fatal("metadata over 512 bytes without its key was accepted")
	}

	for _, bad := range []string{
		``,
		`[]`,
		`{"federation":"127.0.0.1:8448","server":"b.test"}`,                                  // no v
		`{"federation":"127.0.0.1:8448","server":"b.test","v":2}`,                            // version
		`{"federation":"127.0.0.1:8448","server":"B.test","v":1}`,                            // name
		`{"federation":"127.0.0.1","server":"b.test","v":1}`,                                 // no port
		`{"federation":"0.0.0.0:8448","server":"b.test","v":1}`,                              // unspecified
		`{"federation":"127.0.0.1:0","server":"b.test","v":1}`,                               // port 0
		`{"federation":"127.0.0.1:8448","key":"AAAA","server":"b.test","v":1}`,               // short key
		`{"server":"b.test","federation":"127.0.0.1:8448","v":1}`,                            // not canonical
		`{"federation":"127.0.0.1:8448", "server":"b.test","v":1}`,                           // not canonical
		`{"federation":"127.0.0.1:8448","server":"b.test","v":1,"v":1}`,                      // duplicate
		`{"federation":"127.0.0.1:8448","server":"b.test","v":1}` + strings.Repeat(" ", 600), // size
	} {
		if _, err := parseGossipMeta([]byte(bad)); err == nil {
			t.Errorf("metadata %q accepted", bad)
		}
	}
	// Later versions may add hints.
	if _, err := parseGossipMeta([]byte(`{"federation":"[::1]:8448","hint":"x","server":"b.test","v":1}`)); err != nil {
		t.Fatalf("unknown member refused: %v", err)
	}
}

func TestGossipConfigChecked(t *testing.T) {
	for _, g := range []GossipConfig{
		{BindAddr: "127.0.0.1"},
		{BindAddr: "localhost:7946"},
		{BindAddr: "127.0.0.1:70000"},
		{BindAddr: "127.0.0.1:0", Seeds: []string{"b.example"}},
		{BindAddr: "127.0.0.1:0", Seeds: []string{"b.example:0"}},
		{BindAddr: "127.0.0.1:0", AdvertiseAddr: "0.0.0.0:7946"},
		{BindAddr: "127.0.0.1:0", Key: make([]byte, 20)},
	} {
		_, err := New(Config{Name: nameA, Key: newKey(t), Log: quiet, Gossip: &g}, newFakeStore())
		if err == nil {
			t.Errorf("gossip config %+v accepted", g)
		}
	}
}

// refuse decides which alive nodes are ignored.
func TestGossipRefuse(t *testing.T) {
	s, err := New(Config{Name: nameA, Key: newKey(t), Log: quiet, Deny: []privateline.ServerName{nameC},
		Gossip: &GossipConfig{BindAddr: "127.0.0.1:0"}}, newFakeStore())
	if err != nil {
		t.Fatal(err)
	}
	meta := func(name privateline.ServerName) []byte {
		raw, err := encodeGossipMeta(name, "127.0.0.1:1", ed25519.PublicKey(make([]byte, 32)))
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	for _, tc := range []struct {
		name   string
		meta   []byte
		reason string
	}{
		{"b.test", meta(nameB), ""},
		{"c.test", meta(nameC), "forbidden"},
		{"B.TEST", meta(nameB), "bad_name"},
		{"b.test", []byte(`{}`), "bad_metadata"},
		{"b.test", meta(nameC), "name_mismatch"},
	} {
		if got, _ := s.gossip.refuse(&memberlist.Node{Name: tc.name, Meta: tc.meta}); got != tc.reason {
			t.Errorf("node %s with %s: reason %q, want %q", tc.name, tc.meta, got, tc.reason)
		}
	}
}

// Close stops every goroutine gossip started too (memberlist's included).
func TestGossipCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		a, b := newNode(t, nameA, "alice"), newNode(t, nameB, "bob")
		a.start(t, nil, withGossip(nil))
		b.start(t, nil, withGossip(nil, a.svc.GossipAddr()))
		waitGossip(t, "A to see B", func() bool { return upAt(a, nameB, b.svc.Addr()) })
		queueTo(t, a, "alice", nameB, "bob", 2)
		waitGossip(t, "delivery", func() bool { return a.st.depth(nameB) == 0 })
		a.svc.Close()
		b.svc.Close()
	}()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Address order (spec §5.2): a static address wins over gossip, gossip
// over the server document (which the sender fetches only when addrOf
// has nothing).
func TestGossipAddressOrder(t *testing.T) {
	s, err := New(Config{Name: nameA, Key: newKey(t), Log: quiet,
		Peers:  []Peer{{Name: nameB, Addr: "127.0.0.1:1001"}, {Name: nameC}},
		Gossip: &GossipConfig{BindAddr: "127.0.0.1:0"}}, newFakeStore())
	if err != nil {
		t.Fatal(err)
	}
	s.gossipSeen(nameB, "127.0.0.1:2001", true)
	s.gossipSeen(nameC, "127.0.0.1:2002", true)
	if got := s.addrOf(nameB); got != "127.0.0.1:1001" {
		t.Errorf("B (static and gossip) resolves to %s, want the static address", got)
	}
	if got := s.addrOf(nameC); got != "127.0.0.1:2002" {
		t.Errorf("C (static without address, gossip) resolves to %s, want the gossip address", got)
	}
	if got := s.addrOf("d.test"); got != "" {
		t.Errorf("D (unknown) resolves to %q, want nothing (its server document)", got)
	}
}
