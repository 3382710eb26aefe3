package directory

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"encoding/json"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/keybundle"
	"github.com/privateline/privateline/keylog"
	"github.com/privateline/privateline/merkle"
)

// fakeDirectory is a key directory in memory: it signs heads and entries
// like a homeserver and can be made to misbehave.
type fakeDirectory struct {
	server privateline.ServerName
	key    ed25519.PrivateKey
	tree   merkle.Tree
}

func newFake(server privateline.ServerName, key ed25519.PrivateKey) *fakeDirectory {
	if key == nil {
		_, key, _ = ed25519.GenerateKey(nil)
	}
	return &fakeDirectory{server: server, key: key}
}

func (d *fakeDirectory) pub() ed25519.PublicKey { return d.key.Public().(ed25519.PublicKey) }

func (d *fakeDirectory) add(b *keybundle.KeyBundle) *keylog.Entry {
	salt := make([]byte, keylog.SaltSize)
	salt[0] = byte(d.tree.Size())
	leaf := keylog.Leaf{Server: d.server, Index: d.tree.Size(), Kind: keylog.KindKey, Commitment: keylog.KeyCommitment(salt, b), Timestamp: 1}
	d.tree.Append(leaf.Canonical())
	return &keylog.Entry{Leaf: leaf, Salt: salt, Signature: ed25519.Sign(d.key, leaf.SigningInput())}
}

func (d *fakeDirectory) filler(n int) {
	for i := range n {
		d.tree.Append([]byte(fmt.Sprintf("filler %d", i)))
	}
}

func (d *fakeDirectory) head() keylog.TreeHead {
	h := keylog.TreeHead{Server: d.server, TreeSize: d.tree.Size(), RootHash: d.tree.Root(), Timestamp: 2}
	h.Signature = ed25519.Sign(d.key, h.SigningInput())
	return h
}

func (d *fakeDirectory) lookup(t *testing.T, b *keybundle.KeyBundle, e *keylog.Entry) *keylog.Lookup {
	t.Helper()
	h := d.head()
	p, err := merkle.InclusionProof(&d.tree, e.Leaf.Index, h.TreeSize)
	if err != nil {
		t.Fatal(err)
	}
	return &keylog.Lookup{Address: b.Address, Bundle: b, Entry: *e, InclusionProof: p, Head: h, ServerKey: d.pub()}
}

func (d *fakeDirectory) consistency(_ context.Context, server privateline.ServerName, from, to uint64) (*keylog.Consistency, error) {
	p, err := merkle.ConsistencyProof(&d.tree, from, to)
	if err != nil {
		return nil, err
	}
	return &keylog.Consistency{From: from, To: to, Proof: p}, nil
}

func parties(t *testing.T) []*keybundle.KeyBundle {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "spec", "vectors", "parties.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Cases []struct{ Key_bundle string } }
	json.Unmarshal(b, &f)
	var out []*keybundle.KeyBundle
	for _, c := range f.Cases {
		kb, err := keybundle.Parse([]byte(c.Key_bundle))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, kb)
	}
	return out
}

func TestLookupsAdvanceTheHead(t *testing.T) {
	bs := parties(t) // alice, bob, carol @example.org
	d := newFake("example.org", nil)
	v := NewVerifier(&Memory{}, d.consistency)
	ctx := context.Background()
	ea := d.add(bs[0])
	got, err := v.VerifyLookup(ctx, bs[0].Address, d.lookup(t, bs[0], ea))
	if err != nil || !got.Equal(bs[0]) {
		t.Fatalf("first lookup: %v", err)
	}
	for i := range 5 {
		d.filler(i)
		eb := d.add(bs[1])
		if _, err := v.VerifyLookup(ctx, bs[1].Address, d.lookup(t, bs[1], eb)); err != nil {
			t.Fatalf("lookup %d: %v", i, err)
		}
		if h, _ := v.LastHead("example.org"); h.TreeSize != d.tree.Size() {
			t.Fatalf("last head %d, log %d", h.TreeSize, d.tree.Size())
		}
	}
	// An old answer (a smaller log) after a newer one is a rollback.
	if _, err := v.VerifyLookup(ctx, bs[0].Address, mustOld(t, d, bs[0])); keybundle.ReasonOf(err) != keybundle.ErrLogRollback {
		t.Fatalf("old answer: %v", err)
	}
	// An answer for another address than asked.
	if _, err := v.VerifyLookup(ctx, bs[2].Address, d.lookup(t, bs[0], ea)); keybundle.ReasonOf(err) != keybundle.ErrBadProof {
		t.Fatalf("answer for another address: %v", err)
	}
}

// mustOld rebuilds an answer as the log was at size 1.
func mustOld(t *testing.T, d *fakeDirectory, b *keybundle.KeyBundle) *keylog.Lookup {
	t.Helper()
	old := newFake(d.server, d.key)
	e := old.add(b)
	return old.lookup(t, b, e)
}

func TestForkAndServerKey(t *testing.T) {
	bs := parties(t)
	ctx := context.Background()
	d := newFake("example.org", nil)
	store := &Memory{}
	v := NewVerifier(store, d.consistency)
	e := d.add(bs[0])
	d.filler(3)
	if _, err := v.VerifyLookup(ctx, bs[0].Address, d.lookup(t, bs[0], e)); err != nil {
		t.Fatal(err)
	}

	// The same key, another history (the server shows this client a fork).
	fork := newFake("example.org", d.key)
	fork.filler(2)
	fe := fork.add(bs[0])
	fork.filler(1) // the same size as the log the client saw
	vf := NewVerifier(store, fork.consistency)
	if _, err := vf.VerifyLookup(ctx, bs[0].Address, fork.lookup(t, bs[0], fe)); keybundle.ReasonOf(err) != keybundle.ErrLogFork {
		t.Fatalf("same size, another root: %v", err)
	}
	fork.filler(5)
	if _, err := vf.VerifyLookup(ctx, bs[0].Address, fork.lookup(t, bs[0], fe)); keybundle.ReasonOf(err) != keybundle.ErrLogFork {
		t.Fatalf("larger forked log: %v", err)
	}

	// Another key for the server.
	other := newFake("example.org", nil)
	oe := other.add(bs[0])
	vo := NewVerifier(store, other.consistency)
	if _, err := vo.VerifyLookup(ctx, bs[0].Address, other.lookup(t, bs[0], oe)); keybundle.ReasonOf(err) != keybundle.ErrServerKeyChanged {
		t.Fatalf("another server key: %v", err)
	}
	if err := v.Pin("example.org", other.pub()); keybundle.ReasonOf(err) != keybundle.ErrServerKeyChanged {
		t.Fatalf("pinning over a pinned key: %v", err)
	}
	if err := v.Pin("example.org", d.pub()); err != nil {
		t.Fatalf("pinning the same key: %v", err)
	}
	// Only the user's decision (Forget) lets another key in.
	if err := vo.Forget("example.org"); err != nil {
		t.Fatal(err)
	}
	if _, err := vo.VerifyLookup(ctx, bs[0].Address, other.lookup(t, bs[0], oe)); err != nil {
		t.Fatalf("after Forget: %v", err)
	}

	// A key pinned out of band is used from the first answer on.
	v2 := NewVerifier(&Memory{}, d.consistency)
	if err := v2.Pin("example.org", other.pub()); err != nil {
		t.Fatal(err)
	}
	if _, err := v2.VerifyLookup(ctx, bs[0].Address, d.lookup(t, bs[0], e)); keybundle.ReasonOf(err) != keybundle.ErrServerKeyChanged {
		t.Fatalf("answer under another key than the configured one: %v", err)
	}
}

func TestConsistencyFetchFailures(t *testing.T) {
	bs := parties(t)
	ctx := context.Background()
	d := newFake("example.org", nil)
	e := d.add(bs[0])
	var fail, wrong bool
	fetch := func(ctx context.Context, s privateline.ServerName, from, to uint64) (*keylog.Consistency, error) {
		if fail {
			return nil, errors.New("network down")
		}
		c, err := d.consistency(ctx, s, from, to)
		if wrong && err == nil {
			c.From++
		}
		return c, err
	}
	v := NewVerifier(&Memory{}, fetch)
	if _, err := v.VerifyLookup(ctx, bs[0].Address, d.lookup(t, bs[0], e)); err != nil {
		t.Fatal(err)
	}
	d.filler(3)
	fail = true
	if _, err := v.VerifyLookup(ctx, bs[0].Address, d.lookup(t, bs[0], e)); !privateline.Is(privateline.Unavailable, err) {
		t.Fatalf("no proof: %v", err)
	}
	fail, wrong = false, true
	if _, err := v.VerifyLookup(ctx, bs[0].Address, d.lookup(t, bs[0], e)); keybundle.ReasonOf(err) != keybundle.ErrMalformed {
		t.Fatalf("proof for other sizes: %v", err)
	}
	if h, _ := v.LastHead("example.org"); h.TreeSize != 1 {
		t.Fatalf("a failed check moved the head to %d", h.TreeSize)
	}
}

func TestConcurrentHeadsNeverGoBack(t *testing.T) {
	d := newFake("example.org", nil)
	var heads []*keylog.HeadAnswer
	for i := range 30 {
		d.tree.Append([]byte{byte(i)})
		heads = append(heads, &keylog.HeadAnswer{Head: d.head(), ServerKey: d.pub()})
	}
	v := NewVerifier(&Memory{}, d.consistency)
	var wg sync.WaitGroup
	for _, h := range heads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := v.VerifyHead(context.Background(), "example.org", h)
			if err != nil && keybundle.ReasonOf(err) != keybundle.ErrLogRollback {
				t.Errorf("head %d: %v", h.Head.TreeSize, err)
			}
		}()
	}
	wg.Wait()
	// Whatever the order, the stored head is one that was offered and the
	// newest is accepted last.
	if err := v.VerifyHead(context.Background(), "example.org", heads[len(heads)-1]); err != nil {
		t.Fatal(err)
	}
	if h, _ := v.LastHead("example.org"); h.TreeSize != 30 {
		t.Fatalf("last head %d", h.TreeSize)
	}
	if err := v.VerifyHead(context.Background(), "example.net", heads[0]); keybundle.ReasonOf(err) != keybundle.ErrBadProof {
		t.Fatalf("a head of another server: %v", err)
	}
}
