package homeserver_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/client"
	"github.com/privateline/privateline/clients/go/directory"
	"github.com/privateline/privateline/homeserver"
	"github.com/privateline/privateline/keybundle"
)

// docRoutes is the federation HTTP client's transport in these tests: it
// routes the test's server names to their HTTP listeners (no real DNS,
// plain http), so peers fetch each other's server documents.
type docRoutes struct {
	mu sync.Mutex
	m  map[string]string // server name → host:port of its HTTP listener
}

func (d *docRoutes) add(servers ...*testServer) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m = map[string]string{}
	}
	for _, s := range servers {
		d.m[string(s.cfg.ServerName)] = s.cfg.ListenAddr
	}
}

func (d *docRoutes) RoundTrip(r *http.Request) (*http.Response, error) {
	d.mu.Lock()
	addr, ok := d.m[r.URL.Host]
	d.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("the test routes no server %q", r.URL.Host)
	}
	r2 := r.Clone(r.Context())
	r2.URL.Scheme, r2.URL.Host, r2.Host = "http", addr, r.URL.Host
	return http.DefaultTransport.RoundTrip(r2)
}

// startRoutedFederation is startFederation with peers that fetch each
// other's server documents through routes.
func startRoutedFederation(t *testing.T, routes *docRoutes, names ...privateline.ServerName) []*testServer {
	t.Helper()
	servers := startFederationWith(t, func(c *homeserver.Config) {
		c.FederationHTTPClient = &http.Client{Transport: routes, Timeout: 10 * time.Second}
	}, names...)
	routes.add(servers...)
	return servers
}

// TestFederationLongKeyChain: b.test rotates its key 9 times while a.test,
// which pinned the first key, does not talk to it; b's certificate carries
// only the newest 8 statements, so a follows the chain of b's server
// document and deliveries go on. After 8 more rotations b keeps 16
// statements, the first key is no longer in its chain, and c.test, which
// pinned that first key and was down all along, refuses b and tells its
// operator to configure b's new key.
func TestFederationLongKeyChain(t *testing.T) {
	t.Parallel()
	routes := &docRoutes{}
	servers := startRoutedFederation(t, routes, "a.test", "b.test", "c.test")
	a, b, c := servers[0], servers[1], servers[2]
	alice := sdkRegister(t, a, sdkClient(t, a, nil), "lalice", "alice").login(t)
	bobU := sdkRegister(t, b, sdkClient(t, b, nil), "lbob", "bob")
	bob := bobU.login(t)
	carol := sdkRegister(t, c, sdkClient(t, c, nil), "lcarol", "carol").login(t)
	mustLookup(t, alice, bob.Address()) // a pins b's first key
	mustLookup(t, carol, bob.Address()) // so does c
	mustSend(t, alice, bob.Address(), "before the rotations")
	first := b.srv.IdentityKey()

	c.stop() // c hears nothing of the rotations
	b.stop()
	var out string
	for range 9 {
		out = rotate(t, b)
	}
	if !strings.Contains(out, "b.test/.well-known/privateline/server, which must reach this server") {
		t.Fatalf("the ninth rotation does not say peers may need the server document:\n%s", out)
	}
	b.launch(nil)
	introduce(b, servers)
	if b.srv.IdentityKey().Equal(first) {
		t.Fatal("b's key did not change")
	}

	bob = bobU.login(t)
	bobEv := listen(t, bob)
	m := mustSend(t, alice, bob.Address(), "after nine rotations")
	if ev := bobEv.message(m.ID); ev.Item.Body() != "after nine rotations" {
		t.Fatalf("bob got %q", ev.Item.Body())
	}
	if !strings.Contains(a.logs.String(), `"statements_from":"its server document"`) {
		t.Fatalf("a did not log that it followed b's chain from its server document:\n%s", grepLines(a.logs.String(), "key"))
	}

	b.stop()
	for range 8 {
		rotate(t, b)
	}
	b.launch(nil)
	introduce(b, servers)
	if h := headAnswer(t, b); len(h.KeyChanges) != 16 || h.KeyChanges[0].OldKey.Equal(first) {
		t.Fatalf("b presents %d statements, the first from its first key: %v", len(h.KeyChanges), h.KeyChanges[0].OldKey.Equal(first))
	}
	c.launch(nil)
	introduce(c, servers)
	carol.PublicKey(t.Context(), bob.Address()) // c dials b (and b, c for its witness requests)
	newKey := base64.StdEncoding.EncodeToString(b.srv.IdentityKey())
	waitUntil(t, "c refuses b and says what to do", 60*time.Second, func() bool {
		for _, l := range strings.Split(c.logs.String(), "\n") {
			if strings.Contains(l, "FEDERATION_PEERS") && strings.Contains(l, `"presented_key":"`+newKey+`"`) && strings.Contains(l, `"level":"ERROR"`) {
				return true
			}
		}
		return false
	})
	if strings.Contains(c.logs.String(), "the new key is pinned") {
		t.Fatal("c followed b to a key its chain does not reach")
	}
}

// TestFederationKeptAnswerOfRotatedServer: a.test keeps b.test's answer
// for bob, signed with b's first key. b rotates; a learns the new key (b
// dials it for bob's look-up of alice) and alice's client re-pins it (a look-up of carol).
// While b is down, a does not pass on its kept answer for bob as current
// (alice's client would call it server_key_changed): alice gets a clear
// "cannot be reached" error. Once b is back her look-up works.
func TestFederationKeptAnswerOfRotatedServer(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	servers := startFederationWith(t, func(*homeserver.Config) {}, "a.test", "b.test")
	a, b := servers[0], servers[1]
	pins := &directory.Memory{}
	ac, err := client.New(client.Options{BaseURL: a.URL, Directory: pins})
	if err != nil {
		t.Fatal(err)
	}
	alice := sdkRegister(t, a, ac, "ralice", "alice").login(t)
	bobU := sdkRegister(t, b, sdkClient(t, b, nil), "rbob", "bob")
	bob := bobU.login(t)
	carol := sdkRegister(t, b, sdkClient(t, b, nil), "rcarol", "carol").login(t)
	mustLookup(t, alice, bob.Address()) // a keeps b's answer for bob; alice pins b's key
	first := b.srv.IdentityKey()

	b.stop()
	rotate(t, b)
	b.launch(nil)
	introduce(b, servers)
	newKey := b.srv.IdentityKey()
	bob = bobU.login(t)
	mustLookup(t, bob, alice.Address()) // b dials a, which follows b's statement
	waitUntil(t, "a follows b's key change", 60*time.Second, func() bool {
		return strings.Contains(a.logs.String(), "the new key is pinned")
	})
	if got := mustLookup(t, alice, carol.Address()); !mustKeys(t, carol).Matches(got) {
		t.Fatal("alice got another bundle for carol")
	}
	if st, _ := pins.Load("b.test"); st == nil || !st.Key.Equal(newKey) || st.Key.Equal(first) {
		t.Fatal("alice's client did not re-pin b's new key")
	}

	b.stop()
	_, err = alice.PublicKey(ctx, bob.Address())
	if keybundle.ReasonOf(err) == keybundle.ErrServerKeyChanged {
		t.Fatalf("alice's look-up of bob while b is down: %v", err)
	}
	if !privateline.Is(privateline.Unavailable, err) || !strings.Contains(privateline.MessageOf(err), "b.test cannot be reached") {
		t.Fatalf("alice's look-up of bob while b is down: %v (%q), want unavailable, b.test cannot be reached", err, privateline.MessageOf(err))
	}

	b.launch(nil)
	introduce(b, servers)
	waitUntil(t, "alice looks bob up once b is back", 60*time.Second, func() bool {
		got, err := alice.PublicKey(ctx, bob.Address())
		return err == nil && mustKeys(t, bob).Matches(got)
	})
}

// TestForkEvidenceAfterRotation: b.test keeps evidence that a.test's
// directory forked, both heads signed with a's first key. a rotates its
// key. Bob's client, which pinned a's first key and followed the chain to
// the new one, still verifies the evidence; so does a new device of
// bob's, which only ever pinned the new key: b passes on a's server
// document, signed by the new key, which names the first key as a's
// earlier one.
func TestForkEvidenceAfterRotation(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	servers := startRoutedFederation(t, &docRoutes{}, "a.test", "b.test")
	a, b := servers[0], servers[1]
	alice := sdkRegister(t, a, sdkClient(t, a, nil), "falice", "alice").login(t)
	bobU := sdkRegister(t, b, sdkClient(t, b, nil), "fbob", "bob")
	bob := bobU.login(t)
	mustLookup(t, bob, alice.Address()) // bob pins a's first key
	waitUntil(t, "a's head co-signed by b", 60*time.Second, func() bool {
		return len(covered(cosignaturesOf(t, a))) == 1
	})
	showFork(t, a, b)
	verified := func(s *client.Session) (bool, error) {
		t.Helper()
		f := forkOf(t, s)
		return f.Verified, f.Err
	}
	if f := forkOf(t, bob); !f.Verified || f.Basis != client.ForkUnderPin {
		t.Fatalf("bob does not verify the evidence before the rotation: %v (%s)", f.Err, f.Basis)
	}

	a.stop()
	rotate(t, a)
	a.launch(nil)
	introduce(a, servers)
	alice = sdkRegister(t, a, sdkClient(t, a, nil), "falice2", "alice").login(t) // grows a's log under the new key
	if got := mustLookup(t, bob, alice.Address()); !mustKeys(t, alice).Matches(got) {
		t.Fatal("bob got another bundle for alice")
	}
	if st, _ := bob.Client().LastHead(); st == nil {
		t.Fatal("bob holds no head of his own server")
	}
	if ok, err := verified(bob); !ok {
		t.Fatalf("bob, who followed a's key change, does not verify the evidence made before it: %v", err)
	}
	if f := forkOf(t, bob); f.Basis != client.ForkUnderFollowed {
		t.Fatalf("bob verified it %s", f.Basis)
	}
	pins := &directory.Memory{}
	freshC, err := client.New(client.Options{BaseURL: b.URL, Directory: pins})
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := freshC.Login(ctx, bobU.name, bobU.password) // bob's new device: no pins yet
	if err != nil {
		t.Fatal(err)
	}
	if f := forkOf(t, fresh); f.Verified || f.Err == nil {
		t.Fatal("a device with no pin for a.test calls the evidence verified")
	}
	mustLookup(t, fresh, alice.Address()) // pins a's new key only
	if st, _ := pins.Load("a.test"); st == nil || len(st.Earlier) != 0 || !st.Key.Equal(a.srv.IdentityKey()) {
		t.Fatal("the new device does not pin a's new key alone")
	}
	if f := forkOf(t, fresh); !f.Verified || f.Basis != client.ForkUnderVouched {
		t.Fatalf("a device that only pinned a's new key does not verify the evidence made before the rotation: %v (%s)", f.Err, f.Basis)
	}
	handOffFork(t, b, alice.Address())
}

// handOffFork lends the web client's integration test
// (clients/web/test/forkdoc.integration.test.ts) the servers of
// TestForkEvidenceAfterRotation, which that test runs with
// PRIVATELINE_FORK_HANDOFF set to a directory: b's URL and alice's
// address go into handoff.json there, and the servers stay up until the
// web test creates done in it. Without the variable it does nothing.
func handOffFork(t *testing.T, b *testServer, alice privateline.Address) {
	t.Helper()
	dir := os.Getenv("PRIVATELINE_FORK_HANDOFF")
	if dir == "" {
		return
	}
	raw, err := json.Marshal(map[string]string{"url": b.URL, "alice": string(alice)})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "handoff.json.tmp"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "handoff.json.tmp"), filepath.Join(dir, "handoff.json")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the web test to finish with the servers", 15*time.Minute, func() bool {
		_, err := os.Stat(filepath.Join(dir, "done"))
		return err == nil
	})
}

// forkOf returns the one fork evidence s's homeserver keeps, about
// a.test, as s's client checked it.
func forkOf(t *testing.T, s *client.Session) client.Fork {
	t.Helper()
	fs, err := s.Client().DirectoryForks(t.Context())
	if err != nil || len(fs) != 1 || fs[0].Evidence.Server != "a.test" {
		t.Fatalf("the fork evidence: %+v, %v", fs, err)
	}
	return fs[0]
}

// forkedPair starts a.test and b.test (routed server documents), registers
// user on a, waits for b to co-sign a's head and shows b a fork of a's
// directory (showFork).
func forkedPair(t *testing.T, user string) (a, b *testServer) {
	t.Helper()
	servers := startRoutedFederation(t, &docRoutes{}, "a.test", "b.test")
	a, b = servers[0], servers[1]
	sdkRegister(t, a, sdkClient(t, a, nil), user, "alice")
	waitUntil(t, "a's head co-signed by b", 60*time.Second, func() bool {
		return len(covered(cosignaturesOf(t, a))) == 1
	})
	showFork(t, a, b)
	return a, b
}

// TestForkDocumentUnavailable: b.test keeps evidence that a.test's
// directory forked; while a is down, a client asking b for a's server
// document (GET /api/keys/forks/document) gets 503 "unavailable", not a
// document b cannot vouch is a's; once a is back, b passes it on again.
func TestForkDocumentUnavailable(t *testing.T) {
	t.Parallel()
	a, b := forkedPair(t, "fualice")
	a.stop()
	r := b.do("GET", "/api/keys/forks/document?server=a.test", "", nil)
	if r.Status != http.StatusServiceUnavailable || r.errorCode(t) != "unavailable" {
		t.Fatalf("a's server document while a is down: %d %s", r.Status, r.Body)
	}
	a.launch(nil)
	introduce(a, []*testServer{a, b})
	waitUntil(t, "b passes on a's server document again", 90*time.Second, func() bool {
		r := b.do("GET", "/api/keys/forks/document?server=a.test", "", nil)
		return r.Status == http.StatusOK && r.json(t)["server"] == "a.test"
	})
}
