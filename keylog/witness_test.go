package keylog

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/privateline/privateline/keybundle"
	"github.com/privateline/privateline/merkle"
)

func witnessKey(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func signedHead(t *testing.T, tree *merkle.Tree, priv ed25519.PrivateKey, at int64) *TreeHead {
	t.Helper()
	h := &TreeHead{Server: "example.org", TreeSize: tree.Size(), RootHash: tree.Root(), Timestamp: at}
	h.Signature = ed25519.Sign(priv, h.SigningInput())
	return h
}

func treeOf(tag string, n int) *merkle.Tree {
	var tr merkle.Tree
	for i := range n {
		tr.Append([]byte(fmt.Sprintf("%s-%d", tag, i)))
	}
	return &tr
}

func TestCosignature(t *testing.T) {
	_, dpriv := witnessKey(t)
	wpub, wpriv := witnessKey(t)
	h := signedHead(t, treeOf("a", 5), dpriv, 1000)
	c := Cosign(h, "witness.test", 2000, wpub, func(m []byte) []byte { return ed25519.Sign(wpriv, m) })
	if err := c.Verify(wpub); err != nil {
		t.Fatal(err)
	}
	// The statement is the tree, not the head's signature: another
	// signature of the same tree is covered.
	again := signedHead(t, treeOf("a", 5), dpriv, 3000)
	if !c.Covers(again) || c.Covers(signedHead(t, treeOf("a", 6), dpriv, 3000)) || c.Covers(signedHead(t, treeOf("b", 5), dpriv, 3000)) {
		t.Fatal("Covers is not about size and root")
	}
	// The exact input of spec/federation.md §12.6.
	want := `privateline/v1/federation-witness` + "\x00" + `{"root_hash":"` + b64.EncodeToString(h.RootHash[:]) +
		`","server":"example.org","tree_size":5,"witness":"witness.test","witnessed_at":2000}`
	if got := string(CosignatureInput(h, "witness.test", 2000)); got != want {
		t.Fatalf("signing input\n got %q\nwant %q", got, want)
	}
	for name, mut := range map[string]func(*Cosignature){
		"witness":      func(c *Cosignature) { c.Witness = "other.test" },
		"witnessed_at": func(c *Cosignature) { c.WitnessedAt++ },
		"tree":         func(c *Cosignature) { c.Head.TreeSize++ },
	} {
		x := *c
		mut(&x)
		if err := x.Verify(wpub); keybundle.ReasonOf(err) != keybundle.ErrBadSignature {
			t.Errorf("%s changed: %v", name, err)
		}
	}
	if err := c.Verify(h.Signature[:32]); err == nil {
		t.Error("verifies under a wrong key")
	}

	// Client API form round trip.
	raw, err := c.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseCosignature(raw)
	if err != nil || back.Verify(wpub) != nil || back.Witness != "witness.test" || !back.WitnessKey.Equal(wpub) {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	// Federation form: checked against the head that was shown.
	wj, err := c.WireJSON()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseWireCosignature(wj, h, wpub); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseWireCosignature(wj, signedHead(t, treeOf("b", 5), dpriv, 1000), wpub); keybundle.ReasonOf(err) != keybundle.ErrBadProof {
		t.Fatalf("co-signature of another tree: %v", err)
	}
	if _, err := ParseWireCosignature(wj, h, dpriv.Public().(ed25519.PublicKey)); keybundle.ReasonOf(err) != keybundle.ErrBadSignature {
		t.Fatalf("under another key: %v", err)
	}
	if _, err := ParseWireCosignature([]byte(`{"root_hash":"x"}`), h, wpub); keybundle.ReasonOf(err) != keybundle.ErrMalformed {
		t.Fatalf("malformed: %v", err)
	}
}

func TestForkEvidence(t *testing.T) {
	dpub, dpriv := witnessKey(t)
	opub, _ := witnessKey(t)
	a5 := signedHead(t, treeOf("a", 5), dpriv, 1)
	b5 := signedHead(t, treeOf("b", 5), dpriv, 2)
	a9, b9 := treeOf("a", 9), treeOf("b", 9)
	goodProof, err := merkle.ConsistencyProof(a9, 5, 9)
	if err != nil {
		t.Fatal(err)
	}
	badProof, err := merkle.ConsistencyProof(b9, 5, 9)
	if err != nil {
		t.Fatal(err)
	}
	if NewForkEvidence(a5, signedHead(t, treeOf("a", 5), dpriv, 7), nil, "w.test", 1) != nil {
		t.Fatal("two signatures of one tree are a fork")
	}
	if NewForkEvidence(a5, signedHead(t, a9, dpriv, 3), goodProof, "w.test", 1) != nil {
		t.Fatal("a consistent extension is a fork")
	}
	for _, f := range []*ForkEvidence{
		NewForkEvidence(a5, b5, nil, "w.test", 10),
		NewForkEvidence(a5, signedHead(t, b9, dpriv, 3), badProof, "w.test", 11),
	} {
		if f == nil {
			t.Fatal("no evidence")
		}
		if err := f.Verify(dpub); err != nil {
			t.Fatalf("%s: %v", f.Kind, err)
		}
		if err := f.Verify(opub); err == nil {
			t.Fatalf("%s verifies under another key", f.Kind)
		}
		raw, err := f.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseForkEvidence(raw)
		if err != nil {
			t.Fatal(err)
		}
		if back.Kind != f.Kind || back.Verify(dpub) != nil || back.Server != "example.org" || back.Witness != "w.test" {
			t.Fatalf("round trip of %s: %+v", f.Kind, back)
		}
		// Evidence whose heads do not conflict does not verify.
		forged := *back
		forged.Second = forged.First
		if err := forged.Verify(dpub); keybundle.ReasonOf(err) != keybundle.ErrBadProof {
			t.Fatalf("non-conflicting evidence: %v", err)
		}
	}
	ans := &ForksAnswer{Forks: []*ForkEvidence{NewForkEvidence(a5, b5, nil, "w.test", 10)}}
	raw, err := ans.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseForksAnswer(raw)
	if err != nil || len(back.Forks) != 1 {
		t.Fatalf("%v %v", back, err)
	}
	if _, err := ParseForkEvidence([]byte(`{"kind":"other"}`)); err == nil {
		t.Fatal("unknown kind parsed")
	}
}

// TestForkEvidenceUnderEarlierKeys: evidence whose heads were signed by
// the directory's keys before a rotation (one, or one each side of it)
// verifies under the keys a verifier followed, not under the new key
// alone nor under a key it never followed.
func TestForkEvidenceUnderEarlierKeys(t *testing.T) {
	old, oldPriv := witnessKey(t)
	cur, curPriv := witnessKey(t)
	other, _ := witnessKey(t)
	a5 := signedHead(t, treeOf("a", 5), oldPriv, 1)
	for name, second := range map[string]*TreeHead{
		"both old":            signedHead(t, treeOf("b", 5), oldPriv, 2),
		"across the rotation": signedHead(t, treeOf("b", 5), curPriv, 2),
	} {
		f := NewForkEvidence(a5, second, nil, "w.test", 3)
		if err := f.Verify(cur); err == nil {
			t.Fatalf("%s: verifies under the new key alone", name)
		}
		if err := f.VerifyUnder([]ed25519.PublicKey{cur, other}); keybundle.ReasonOf(err) != keybundle.ErrBadSignature {
			t.Fatalf("%s: under keys never followed: %v", name, err)
		}
		if err := f.VerifyUnder([]ed25519.PublicKey{cur, old}); err != nil {
			t.Fatalf("%s: under the keys followed: %v", name, err)
		}
	}
	if err := NewForkEvidence(a5, signedHead(t, treeOf("b", 5), oldPriv, 2), nil, "w.test", 3).VerifyUnder(nil); err == nil {
		t.Fatal("verified under no key")
	}
}
