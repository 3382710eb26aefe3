package directory

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/keybundle"
	"github.com/privateline/privateline/keylog"
)

type edSigner struct{ k ed25519.PrivateKey }

func (s edSigner) Public() ed25519.PublicKey { return s.k.Public().(ed25519.PublicKey) }
func (s edSigner) Sign(m []byte) []byte      { return ed25519.Sign(s.k, m) }

func newEdKey() ed25519.PrivateKey {
	_, k, _ := ed25519.GenerateKey(nil)
	return k
}

func statement(t *testing.T, server privateline.ServerName, old ed25519.PrivateKey, next ed25519.PrivateKey) keylog.ServerKeyChange {
	t.Helper()
	c, err := keylog.NewServerKeyChange(server, edSigner{old}, next.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestServerKeyRotation: a client that pinned a directory's key accepts
// another one only with a valid chain of key-change statements from the
// pinned key, then pins the new key; anything else is server_key_changed
// and leaves the pin as it was.
func TestServerKeyRotation(t *testing.T) {
	bs := parties(t)
	const server = "example.org"
	ctx := context.Background()
	k1, k2, k3 := newEdKey(), newEdKey(), newEdKey()
	s12, s23 := statement(t, server, k1, k2), statement(t, server, k2, k3)

	// pinned returns a verifier that verified a lookup under k1, and the
	// directory, now signing with key (entries signed again, as the
	// homeserver does after rotate-key), grown by one entry.
	pinned := func(t *testing.T, key ed25519.PrivateKey) (*Verifier, *Memory, *fakeDirectory, *keylog.Entry) {
		t.Helper()
		d := newFake(server, k1)
		st := &Memory{}
		v := NewVerifier(st, d.consistency)
		e := d.add(bs[0])
		if _, err := v.VerifyLookup(ctx, bs[0].Address, d.lookup(t, bs[0], e)); err != nil {
			t.Fatal(err)
		}
		d.key = key
		e.Signature = ed25519.Sign(key, e.Leaf.SigningInput())
		d.filler(3)
		return v, st, d, e
	}
	pin := func(st *Memory) ed25519.PublicKey {
		s, _ := st.Load(server)
		return s.Key
	}
	refused := func(t *testing.T, name string, key ed25519.PrivateKey, changes []keylog.ServerKeyChange, want keybundle.Reason) {
		t.Helper()
		v, st, d, e := pinned(t, key)
		l := d.lookup(t, bs[0], e)
		l.KeyChanges = changes
		if _, err := v.VerifyLookup(ctx, bs[0].Address, l); keybundle.ReasonOf(err) != want {
			t.Fatalf("%s: got %v, want %s", name, err, want)
		}
		if !pin(st).Equal(k1.Public().(ed25519.PublicKey)) {
			t.Fatalf("%s: the pin changed", name)
		}
	}

	t.Run("valid chain", func(t *testing.T) {
		v, st, d, e := pinned(t, k2)
		l := d.lookup(t, bs[0], e)
		l.KeyChanges = []keylog.ServerKeyChange{s12}
		if got, err := v.VerifyLookup(ctx, bs[0].Address, l); err != nil || !got.Equal(bs[0]) {
			t.Fatalf("lookup after the rotation: %v", err)
		}
		if !pin(st).Equal(k2.Public().(ed25519.PublicKey)) {
			t.Fatal("the new key is not pinned")
		}
		if h, _ := v.LastHead(server); h.TreeSize != d.tree.Size() {
			t.Fatalf("last head %d, log %d", h.TreeSize, d.tree.Size())
		}
		// Pinned now: answers without the chain verify, the old key's do not.
		if err := v.VerifyHead(ctx, server, &keylog.HeadAnswer{Head: d.head(), ServerKey: d.pub()}); err != nil {
			t.Fatalf("head under the new pin: %v", err)
		}
		d.key = k1
		if err := v.VerifyHead(ctx, server, &keylog.HeadAnswer{Head: d.head(), ServerKey: d.pub()}); keybundle.ReasonOf(err) != keybundle.ErrServerKeyChanged {
			t.Fatalf("the old key after the rotation: %v", err)
		}
	})
	t.Run("two rotations, head answer", func(t *testing.T) {
		v, st, d, _ := pinned(t, k3)
		a := &keylog.HeadAnswer{Head: d.head(), ServerKey: d.pub(), KeyChanges: []keylog.ServerKeyChange{s12, s23}}
		if err := v.VerifyHead(ctx, server, a); err != nil {
			t.Fatalf("head after two rotations: %v", err)
		}
		if !pin(st).Equal(k3.Public().(ed25519.PublicKey)) {
			t.Fatal("the newest key is not pinned")
		}
		// The keys followed are kept: evidence signed by them stays the
		// server's (keylog.ForkEvidence.VerifyUnder).
		s, _ := st.Load(server)
		if len(s.Earlier) != 2 || !s.Earlier[0].Equal(k1.Public().(ed25519.PublicKey)) || !s.Earlier[1].Equal(k2.Public().(ed25519.PublicKey)) {
			t.Fatalf("earlier keys kept: %d", len(s.Earlier))
		}
	})
	t.Run("same tree, older timestamp", func(t *testing.T) {
		// The new key's head of the tree already seen, not newer: the
		// pin still moves (the answer verified under the new key).
		d := newFake(server, k1)
		st := &Memory{}
		v := NewVerifier(st, d.consistency)
		d.add(bs[0])
		if err := v.VerifyHead(ctx, server, &keylog.HeadAnswer{Head: d.head(), ServerKey: d.pub()}); err != nil {
			t.Fatal(err)
		}
		d.key = k2
		if err := v.VerifyHead(ctx, server, &keylog.HeadAnswer{Head: d.head(), ServerKey: d.pub(), KeyChanges: []keylog.ServerKeyChange{s12}}); err != nil {
			t.Fatal(err)
		}
		if !pin(st).Equal(k2.Public().(ed25519.PublicKey)) {
			t.Fatal("the new key is not pinned")
		}
	})

	refused(t, "no chain", k2, nil, keybundle.ErrServerKeyChanged)
	refused(t, "chain not starting at the pin", k3, []keylog.ServerKeyChange{s23}, keybundle.ErrServerKeyChanged)
	k4 := newEdKey()
	refused(t, "broken chain", k4, []keylog.ServerKeyChange{s12, statement(t, server, k3, k4)}, keybundle.ErrServerKeyChanged)
	refused(t, "chain to another key", k3, []keylog.ServerKeyChange{s12}, keybundle.ErrServerKeyChanged)
	bad := s12
	bad.Signature = bytes.Clone(s12.Signature)
	bad.Signature[5] ^= 1
	refused(t, "statement signature wrong", k2, []keylog.ServerKeyChange{bad}, keybundle.ErrServerKeyChanged)
	forged := s12
	forged.Signature = ed25519.Sign(k2, forged.SigningInput()) // by the new key, not the old one
	refused(t, "statement signed by the new key", k2, []keylog.ServerKeyChange{forged}, keybundle.ErrServerKeyChanged)
	label := s12
	in := append([]byte("privateline/v1/federation-server\x00"), label.SigningInput()[len(keylog.LabelServerKeyChange)+1:]...)
	label.Signature = ed25519.Sign(k1, in)
	refused(t, "label wrong", k2, []keylog.ServerKeyChange{label}, keybundle.ErrServerKeyChanged)
	refused(t, "statement of another server", k2, []keylog.ServerKeyChange{statement(t, "other.example", k1, k2)}, keybundle.ErrServerKeyChanged)
	late := s12
	late.CreatedAt = late.CreatedAt.Add(time.Millisecond) // changes what was signed
	refused(t, "statement altered", k2, []keylog.ServerKeyChange{late}, keybundle.ErrServerKeyChanged)
	// A valid chain does not excuse an answer that the new key did not sign.
	t.Run("valid chain, head by another key", func(t *testing.T) {
		v, st, d, e := pinned(t, k2)
		l := d.lookup(t, bs[0], e)
		l.KeyChanges = []keylog.ServerKeyChange{s12}
		l.Head.Signature = ed25519.Sign(k1, l.Head.SigningInput())
		if _, err := v.VerifyLookup(ctx, bs[0].Address, l); keybundle.ReasonOf(err) != keybundle.ErrBadSignature {
			t.Fatalf("got %v", err)
		}
		if !pin(st).Equal(k1.Public().(ed25519.PublicKey)) {
			t.Fatal("the pin changed")
		}
	})
}

// TestKeyChangesRoundTrip: answers carry "key_changes" through their JSON
// form, and an empty or malformed member is refused.
func TestKeyChangesRoundTrip(t *testing.T) {
	k1, k2 := newEdKey(), newEdKey()
	d := newFake("example.org", k2)
	a := &keylog.HeadAnswer{Head: d.head(), ServerKey: d.pub(), KeyChanges: []keylog.ServerKeyChange{statement(t, "example.org", k1, k2)}}
	raw, err := a.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	got, err := keylog.ParseHeadAnswer(raw)
	if err != nil || len(got.KeyChanges) != 1 || !bytes.Equal(got.KeyChanges[0].Marshal(), a.KeyChanges[0].Marshal()) {
		t.Fatalf("round trip: %v", err)
	}
	start, end := bytes.Index(raw, []byte(`"key_changes":`)), bytes.Index(raw, []byte(`,"server_key"`))
	for name, member := range map[string]string{
		"empty":           `"key_changes":[]`,
		"not a statement": `"key_changes":[{"old_key":"x"}]`,
		"not an array":    `"key_changes":{}`,
	} {
		bad := append(append(append([]byte(nil), raw[:start]...), member...), raw[end:]...)
		if _, err := keylog.ParseHeadAnswer(bad); keybundle.ReasonOf(err) != keybundle.ErrMalformed {
			t.Fatalf("%s: %v (%s)", name, err, bad)
		}
	}
}
