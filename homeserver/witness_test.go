package homeserver_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/federation/transport"
	"github.com/privateline/privateline/federation/wire"
	"github.com/privateline/privateline/keylog"
	"github.com/privateline/privateline/merkle"
	"github.com/privateline/privateline/serverkey"
)

// Tree-head witnessing through real homeservers (spec/federation.md
// §12.6): each server's directory ends up co-signed by the two others,
// the client route serves the co-signatures and the SDK verifies them
// with the keys it pinned for the witnesses' directories; a fork shown
// to a witness is kept as evidence and served to its clients.

// cosignaturesOf reads ts's GET /api/keys/cosignatures.
func cosignaturesOf(t *testing.T, ts *testServer) *keylog.CosignaturesAnswer {
	t.Helper()
	resp, err := http.Get(ts.URL + "/api/keys/cosignatures")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil || resp.StatusCode != 200 {
		t.Fatalf("cosignatures: %d %v", resp.StatusCode, err)
	}
	a, err := keylog.ParseCosignaturesAnswer(raw)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// covered returns the witnesses whose co-signature is of a's current tree.
func covered(a *keylog.CosignaturesAnswer) []privateline.ServerName {
	var out []privateline.ServerName
	for _, c := range a.Cosignatures {
		if c.Covers(&a.Head) {
			out = append(out, c.Witness)
		}
	}
	return out
}

func waitUntil(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func identityOf(t *testing.T, ts *testServer) *serverkey.PrivateKey {
	t.Helper()
	k, created, err := serverkey.LoadOrCreate(filepath.Join(ts.cfg.DataDir, serverkey.FileName))
	if err != nil || created {
		t.Fatalf("reading %s's identity: %v (created %v)", ts.cfg.ServerName, err, created)
	}
	return k
}

func TestFederationWitnessing(t *testing.T) {
	t.Parallel()
	servers := startFederation(t, "a.test", "b.test", "c.test")
	a, b, c := servers[0], servers[1], servers[2]
	alice := sdkRegister(t, a, sdkClient(t, a, nil), "walice", "alice").login(t)
	bob := sdkRegister(t, b, sdkClient(t, b, nil), "wbob", "bob").login(t)
	carol := sdkRegister(t, c, sdkClient(t, c, nil), "wcarol", "carol")

	// Every server's current head, co-signed by the two others.
	for _, s := range servers {
		want := []privateline.ServerName{}
		for _, o := range servers {
			if o != s {
				want = append(want, o.cfg.ServerName)
			}
		}
		waitUntil(t, fmt.Sprintf("%s's head co-signed by %v", s.cfg.ServerName, want), 60*time.Second, func() bool {
			return slices.Equal(covered(cosignaturesOf(t, s)), want)
		})
		ans := cosignaturesOf(t, s)
		if ans.Head.TreeSize == 0 {
			t.Fatalf("%s's head is empty after a registration", s.cfg.ServerName)
		}
		for _, cs := range ans.Cosignatures {
			w := servers[slices.IndexFunc(servers, func(x *testServer) bool { return x.cfg.ServerName == cs.Witness })]
			if !cs.WitnessKey.Equal(identityOf(t, w).Public()) {
				t.Fatalf("%s's co-signature names another key than its identity", cs.Witness)
			}
			if err := cs.Verify(cs.WitnessKey); err != nil {
				t.Fatalf("co-signature of %s by %s: %v", s.cfg.ServerName, cs.Witness, err)
			}
		}
		// ?size= keeps the co-signatures of that tree.
		resp, err := http.Get(fmt.Sprintf("%s/api/keys/cosignatures?size=%d", s.URL, ans.Head.TreeSize+1))
		if err != nil {
			t.Fatal(err)
		}
		var m struct{ Cosignatures []any }
		json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if len(m.Cosignatures) != 0 {
			t.Fatalf("?size=%d kept %d co-signatures", ans.Head.TreeSize+1, len(m.Cosignatures))
		}
	}

	// The SDK: before alice pinned b's and c's directory keys the
	// co-signatures prove nothing to her; after looking up a user of each
	// (which pins them), both verify and vouch for a's current head.
	ctx := context.Background()
	w, err := alice.Client().Cosignatures(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Cosignatures) != 2 || len(w.Vouching()) != 0 {
		t.Fatalf("before pins: %d co-signatures, vouching %v", len(w.Cosignatures), w.Vouching())
	}
	for _, cs := range w.Cosignatures {
		if cs.Verified || !privateline.Is(privateline.NotExist, cs.Err) {
			t.Fatalf("unpinned witness %s: verified %v, %v", cs.Witness, cs.Verified, cs.Err)
		}
	}
	mustLookup(t, alice, bob.Address())
	mustLookup(t, alice, privateline.MakeAddress(privateline.Username(carol.name), "c.test"))
	if w, err = alice.Client().Cosignatures(ctx); err != nil {
		t.Fatal(err)
	}
	if got := w.Vouching(); !slices.Equal(got, []privateline.ServerName{"b.test", "c.test"}) {
		for _, cs := range w.Cosignatures {
			t.Logf("%s: verified %v current %v err %v", cs.Witness, cs.Verified, cs.Current, cs.Err)
		}
		t.Fatalf("vouching for a.test: %v", got)
	}
	if last, _ := alice.Client().LastHead(); last == nil || last.TreeSize != w.Head.TreeSize {
		t.Fatalf("the head verified with the co-signatures did not become the last head: %+v", last)
	}

	// A fork shown to b (b and c both co-signed the head it holds).
	held, forked := showFork(t, a, b)
	// b serves the evidence; bob (who pins a.test's key once he has
	// looked up alice) verifies it.
	mustLookup(t, bob, alice.Address())
	forks, err := bob.Client().DirectoryForks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(forks) != 1 || !forks[0].Verified || forks[0].Evidence.Server != "a.test" || forks[0].Evidence.Kind != keylog.ForkSameSize || forks[0].Evidence.Witness != "b.test" {
		t.Fatalf("b's fork evidence: %+v", forks)
	}
	if f := forks[0].Evidence; f.First.RootHash != held.RootHash || f.Second.RootHash != forked.RootHash {
		t.Fatal("the evidence is not the two heads b was shown")
	}
	// c was not shown the fork.
	if fs, err := alice.Client().DirectoryForks(ctx); err != nil || len(fs) != 0 {
		t.Fatalf("a's forks: %v %v", fs, err)
	}
	if !strings.Contains(b.logs.String(), "a peer's key directory forked") {
		t.Fatal("b did not log the fork")
	}
}

// showFork shows b a fork of a.test's directory: a head of the size b
// co-signed (the first co-signature a holds), another root, signed with
// a.test's own key and sent as a.test would. b must answer log_fork. It
// returns the head b held and the forked one.
func showFork(t *testing.T, a, b *testServer) (held, forked keylog.TreeHead) {
	t.Helper()
	aKey := identityOf(t, a)
	held = cosignaturesOf(t, a).Cosignatures[0].Head
	forked = keylog.TreeHead{Server: "a.test", TreeSize: held.TreeSize, RootHash: merkle.LeafHash([]byte("not a's log")), Timestamp: time.Now().UnixMilli()}
	forked.Signature = aKey.Sign(forked.SigningInput())
	if code := sendWitness(t, "a.test", aKey, b, &forked); code != "log_fork" {
		t.Fatalf("b answered the forked head with %q, want log_fork", code)
	}
	return held, forked
}

// sendWitness sends to over QUIC, as name with key, a witness request for
// head and returns the code of the answer ("" for a co-signature).
func sendWitness(t *testing.T, name privateline.ServerName, key *serverkey.PrivateKey, to *testServer, head *keylog.TreeHead) string {
	t.Helper()
	id, err := transport.NewIdentity(name, key)
	if err != nil {
		t.Fatal(err)
	}
	toKey := identityOf(t, to).Public()
	pol, err := transport.NewPolicy(transport.PolicyConfig{Peers: map[privateline.ServerName]ed25519.PublicKey{to.cfg.ServerName: toKey}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := transport.Dial(ctx, to.cfg.ServerName, to.srv.FederationAddr(), id, pol, transport.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hj, err := head.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	req := &wire.Transaction{Type: wire.TypeWitness, Entries: []wire.Entry{{ID: wire.NewTxnID(), Head: hj}},
		Header: wire.Header{Origin: name, Destination: to.cfg.ServerName, TxnID: wire.NewTxnID(), CreatedAt: time.Now().UnixMilli()}}
	raw, err := wire.Sign(req, key)
	if err != nil {
		t.Fatal(err)
	}
	st, err := conn.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.SetDeadline(time.Now().Add(30 * time.Second))
	if err := st.Send(raw); err != nil {
		t.Fatal(err)
	}
	resp, err := st.Receive()
	if err != nil {
		t.Fatal(err)
	}
	ans, err := wire.VerifyReceipt(resp, wire.Peer{Name: to.cfg.ServerName, Key: toKey}, name, time.Now(), wire.DefaultLimits(), req)
	if err != nil {
		t.Fatalf("%s's answer: %v (%s)", to.cfg.ServerName, err, resp)
	}
	return ans.Results[0].Error
}
