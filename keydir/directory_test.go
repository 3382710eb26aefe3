package keydir

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/internal/fakeclock"
	"github.com/privateline/privateline/keybundle"
	"github.com/privateline/privateline/keylog"
	"github.com/privateline/privateline/merkle"
	"github.com/privateline/privateline/serverkey"
	"github.com/privateline/privateline/storage"
)

// party is an account of spec/vectors/parties.json (on example.org).
type party struct {
	bundle *keybundle.KeyBundle
	id     ed25519.PrivateKey
}

func loadParties(t *testing.T) map[string]*party {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "spec", "vectors", "parties.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Cases []struct{ Name, Key_bundle, Identity_seed_hex string }
	}
	json.Unmarshal(b, &f)
	ps := map[string]*party{}
	for _, c := range f.Cases {
		kb, err := keybundle.Parse([]byte(c.Key_bundle))
		if err != nil {
			t.Fatal(err)
		}
		seed, _ := hex.DecodeString(c.Identity_seed_hex)
		ps[c.Name] = &party{bundle: kb, id: ed25519.NewKeyFromSeed(seed)}
	}
	return ps
}

// resign makes a later bundle of p with identity key id.
func resign(t *testing.T, p *party, id ed25519.PrivateKey, later time.Duration) *keybundle.KeyBundle {
	t.Helper()
	var pub keybundle.IdentityKey
	copy(pub[:], id.Public().(ed25519.PublicKey))
	ms := p.bundle.CreatedAt.Add(later).UnixMilli()
	msg, _ := keybundle.SigningInput(p.bundle.Address, pub, p.bundle.Encryption, ms)
	b, err := keybundle.Assemble(p.bundle.Address, pub, p.bundle.Encryption, ms, ed25519.Sign(id, msg))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type fixture struct {
	dir   *Directory
	db    *storage.DB
	key   *serverkey.PrivateKey
	clock *fakeclock.Clock
	ps    map[string]*party
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	k := make(privateline.Secret, 32)
	db, err := storage.Open(storage.Options{Dir: "db", InMemory: true, Key: k})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	sk, err := serverkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	clk := fakeclock.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	return &fixture{dir: New("example.org", db, sk, clk.Now), db: db, key: sk, clock: clk, ps: loadParties(t)}
}

func (f *fixture) register(t *testing.T, name string) *storage.User {
	t.Helper()
	p := f.ps[name]
	b, err := f.dir.VerifyBundle(p.bundle.JSON(), privateline.Username(name))
	if err != nil {
		t.Fatal(err)
	}
	u := &storage.User{ID: storage.NewID(), Username: privateline.Username(name), KDF: storage.KDF{Name: "pbkdf2-sha256", Iterations: 600000}}
	if err := f.dir.Register(u, b); err != nil {
		t.Fatal(err)
	}
	return u
}

func (f *fixture) verify(t *testing.T, name string) *keylog.Lookup {
	t.Helper()
	l, err := f.dir.Lookup(privateline.Username(name))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Verify(f.key.Public(), "example.org", privateline.Address(name+"@example.org")); err != nil {
		t.Fatalf("lookup of %s: %v", name, err)
	}
	return l
}

func TestVerifyBundle(t *testing.T) {
	f := newFixture(t)
	alice := f.ps["alice"].bundle
	if _, err := f.dir.VerifyBundle(alice.JSON(), "alice"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		raw  []byte
		name privateline.Username
	}{
		{alice.JSON(), "bob"},
		{[]byte(`{"address":"alice@example.org"}`), "alice"},
		{[]byte(`{}`), "alice"},
	} {
		_, err := f.dir.VerifyBundle(tc.raw, tc.name)
		if !privateline.Is(privateline.Invalid, err) || privateline.MessageOf(err) == "" {
			t.Errorf("VerifyBundle(%s, %s): %v", tc.raw, tc.name, err)
		}
	}
}

func TestRegisterLookupChangeDelete(t *testing.T) {
	f := newFixture(t)
	alice := f.register(t, "alice")
	f.register(t, "bob")
	l1 := f.verify(t, "alice")
	if l1.Entry.Leaf.Index != 0 || l1.Head.TreeSize != 2 {
		t.Fatalf("alice's entry %d in a head of %d", l1.Entry.Leaf.Index, l1.Head.TreeSize)
	}
	if _, err := f.dir.Lookup("nobody"); !privateline.Is(privateline.NotExist, err) {
		t.Fatalf("unknown user: %v", err)
	}
	// A taken name logs nothing.
	dup := &storage.User{ID: storage.NewID(), Username: "alice"}
	if err := f.dir.Register(dup, f.ps["alice"].bundle); !privateline.Is(privateline.Exist, err) {
		t.Fatalf("taken name: %v", err)
	}
	if h, _ := f.dir.Head(); h.TreeSize != 2 {
		t.Fatalf("a refused registration was logged: size %d", h.TreeSize)
	}

	p := f.ps["alice"]
	_, newID, _ := ed25519.GenerateKey(nil)
	next := resign(t, p, newID, time.Second)
	sig := ed25519.Sign(p.id, keybundle.KeyChangeInput(p.bundle, next))
	for _, tc := range []struct {
		name string
		c    KeyChange
		kind privateline.Kind
	}{
		{"no proof", KeyChange{Bundle: next}, privateline.Forbidden},
		{"bad signature", KeyChange{Bundle: next, OldKeySignature: ed25519.Sign(newID, keybundle.KeyChangeInput(p.bundle, next))}, privateline.Forbidden},
		{"another address", KeyChange{Bundle: f.ps["bob"].bundle, FreshAuth: true}, privateline.Invalid},
		{"not newer", KeyChange{Bundle: resign(t, p, newID, 0), FreshAuth: true}, privateline.Exist},
	} {
		if _, err := f.dir.ChangeKeys(alice.ID, tc.c); privateline.KindOf(err) != tc.kind {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.kind)
		}
	}
	l2, err := f.dir.ChangeKeys(alice.ID, KeyChange{Bundle: next, OldKeySignature: sig, EncryptedPrivateKey: []byte("wrapped"), Nonce: make([]byte, 12)})
	if err != nil {
		t.Fatal(err)
	}
	if !l2.Bundle.Equal(next) || l2.Entry.Leaf.Index != 2 || l2.Verify(f.key.Public(), "example.org", "alice@example.org") != nil {
		t.Fatalf("lookup after the change: %+v", l2.Entry.Leaf)
	}
	if u, _ := f.db.UserByID(alice.ID); string(u.EncryptedPrivateKey) != "wrapped" || string(u.KeyBundle) != string(next.JSON()) {
		t.Fatal("the user record was not updated with the keys")
	}
	// The same signature again: stale.
	if _, err := f.dir.ChangeKeys(alice.ID, KeyChange{Bundle: next, OldKeySignature: sig}); !privateline.Is(privateline.Exist, err) {
		t.Fatalf("replayed change: %v", err)
	}
	// The old lookup still verifies: its leaf stays and the log extends it.
	c, err := f.dir.Consistency(l1.Head.TreeSize, l2.Head.TreeSize)
	if err != nil {
		t.Fatal(err)
	}
	if err := merkle.VerifyConsistency(l1.Head.TreeSize, l2.Head.TreeSize, l1.Head.RootHash, l2.Head.RootHash, c.Proof); err != nil {
		t.Fatal(err)
	}

	if err := f.dir.DeleteUser(alice.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.dir.Lookup("alice"); !privateline.Is(privateline.NotExist, err) {
		t.Fatalf("deleted user: %v", err)
	}
	h, _ := f.dir.Head()
	if h.TreeSize != 4 {
		t.Fatalf("size after deletion %d, want 4", h.TreeSize)
	}
	leaf, sigDel, err := f.db.KeyLogLeaf(3)
	if err != nil {
		t.Fatal(err)
	}
	dl, err := keylog.ParseLeaf(leaf)
	if err != nil || dl.Kind != keylog.KindDelete || !ed25519.Verify(f.key.Public(), dl.SigningInput(), sigDel) {
		t.Fatalf("deletion leaf %s: %v", leaf, err)
	}
	if err := l1.Verify(f.key.Public(), "example.org", "alice@example.org"); err != nil {
		t.Fatalf("a cached lookup after deletion: %v", err)
	}
	f.verify(t, "bob")
}

func TestChangeKeysOfUnverifiedBundle(t *testing.T) {
	// An account made before bundles were verified has a bundle that does
	// not parse: only a password proof can replace it.
	f := newFixture(t)
	u := &storage.User{ID: storage.NewID(), Username: "alice", KeyBundle: json.RawMessage(`{"address":"alice@example.org","version":1}`)}
	if err := f.db.CreateUser(u); err != nil {
		t.Fatal(err)
	}
	if _, err := f.dir.Lookup("alice"); !privateline.Is(privateline.NotExist, err) {
		t.Fatalf("an account without an entry: %v", err)
	}
	b := f.ps["alice"].bundle
	if _, err := f.dir.ChangeKeys(u.ID, KeyChange{Bundle: b, OldKeySignature: make([]byte, 64)}); !privateline.Is(privateline.Forbidden, err) {
		t.Fatalf("signature against an unverified bundle: %v", err)
	}
	if _, err := f.dir.ChangeKeys(u.ID, KeyChange{Bundle: b, FreshAuth: true}); err != nil {
		t.Fatal(err)
	}
	f.verify(t, "alice")
}

func TestHeads(t *testing.T) {
	f := newFixture(t)
	h0, err := f.dir.Head()
	if err != nil || h0.TreeSize != 0 || h0.RootHash != merkle.EmptyRoot() || h0.Verify(f.key.Public()) != nil {
		t.Fatalf("empty head %+v, %v", h0, err)
	}
	f.register(t, "alice")
	f.clock.Advance(time.Minute)
	h1, _ := f.dir.Head()
	f.clock.Advance(time.Minute)
	again, _ := f.dir.Head()
	if h1.TreeSize != 1 || string(again.Signature) != string(h1.Signature) || again.Timestamp != h1.Timestamp {
		t.Fatal("the head of an unchanged log was signed again")
	}
	// After HeadRefresh the same tree is signed again, later.
	f.clock.Advance(HeadRefresh)
	fresh, _ := f.dir.Head()
	if fresh.TreeSize != 1 || fresh.RootHash != h1.RootHash || fresh.Timestamp <= h1.Timestamp || fresh.Verify(f.key.Public()) != nil {
		t.Fatalf("refreshed head %+v", fresh)
	}
	h1 = fresh
	// A clock that goes back does not make heads go back.
	f.clock.Advance(-time.Hour)
	f.register(t, "bob")
	h2, _ := f.dir.Head()
	if h2.TreeSize != 2 || h2.Timestamp < h1.Timestamp || h2.Verify(f.key.Public()) != nil {
		t.Fatalf("head after a clock step back: %+v", h2)
	}
	a, _ := f.dir.HeadAnswer()
	if !a.ServerKey.Equal(f.key.Public()) {
		t.Fatal("the head answer carries another key")
	}
	for _, r := range [][2]uint64{{0, 1}, {2, 1}, {1, 3}} {
		if _, err := f.dir.Consistency(r[0], r[1]); !privateline.Is(privateline.Invalid, err) {
			t.Errorf("consistency %v: %v", r, err)
		}
	}
	if c, err := f.dir.Consistency(2, 2); err != nil || len(c.Proof) != 0 {
		t.Errorf("consistency 2→2: %v, %v", c, err)
	}
}

func TestPinnedKeys(t *testing.T) {
	f := newFixture(t)
	u := f.register(t, "alice")
	if _, err := f.dir.PutPinnedKeys(u.ID, nil, 0); !privateline.Is(privateline.Invalid, err) {
		t.Fatalf("empty blob: %v", err)
	}
	if _, err := f.dir.PutPinnedKeys(u.ID, make([]byte, MaxPinnedKeys+1), 0); !privateline.Is(privateline.Invalid, err) {
		t.Fatalf("big blob: %v", err)
	}
	if v, err := f.dir.PutPinnedKeys(u.ID, []byte("x"), 0); err != nil || v != 1 {
		t.Fatal(v, err)
	}
	if _, err := f.dir.PutPinnedKeys(u.ID, []byte("y"), 0); !errors.Is(err, storage.ErrVersionMismatch) {
		t.Fatalf("stale: %v", err)
	}
	if b, v, err := f.dir.PinnedKeys(u.ID); err != nil || v != 1 || string(b) != "x" {
		t.Fatal(b, v, err)
	}
}

// TestLookupsShareOneHead: a batch of lookups (a federation key request)
// is answered against one tree head, each entry provably in it, with nil
// for unknown accounts.
func TestLookupsShareOneHead(t *testing.T) {
	f := newFixture(t)
	f.register(t, "alice")
	f.register(t, "bob")
	ls, err := f.dir.Lookups([]privateline.Username{"bob", "nobody", "alice", "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if ls[1] != nil {
		t.Fatal("an unknown account has an answer")
	}
	for i, name := range []string{"bob", "", "alice", "bob"} {
		if name == "" {
			continue
		}
		if ls[i].Head.TreeSize != ls[0].Head.TreeSize || ls[i].Head.RootHash != ls[0].Head.RootHash || ls[i].Head.Timestamp != ls[0].Head.Timestamp {
			t.Fatalf("answer %d has another head", i)
		}
		if err := ls[i].Verify(f.key.Public(), "example.org", privateline.Address(name+"@example.org")); err != nil {
			t.Fatalf("answer %d (%s): %v", i, name, err)
		}
	}
	if ls[0].Head.TreeSize != 2 || ls[2].Entry.Leaf.Index != 0 || ls[0].Entry.Leaf.Index != 1 {
		t.Fatalf("head %d, alice at %d, bob at %d", ls[0].Head.TreeSize, ls[2].Entry.Leaf.Index, ls[0].Entry.Leaf.Index)
	}
}
