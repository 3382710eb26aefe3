package keylog

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/keybundle"
	"github.com/privateline/privateline/merkle"
)

func bundles(t testing.TB) []*keybundle.KeyBundle {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "spec", "vectors", "parties.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Cases []struct{ Key_bundle string } }
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
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

// testLog is a directory in miniature: a key, a tree, the salts.
type testLog struct {
	key   ed25519.PrivateKey
	tree  merkle.Tree
	items []*Entry
}

func newTestLog() *testLog {
	_, k, _ := ed25519.GenerateKey(nil)
	return &testLog{key: k}
}

func (l *testLog) pub() ed25519.PublicKey { return l.key.Public().(ed25519.PublicKey) }

func (l *testLog) addKey(b *keybundle.KeyBundle) *Entry {
	salt := bytes.Repeat([]byte{byte(len(l.items) + 1)}, SaltSize)
	leaf := Leaf{Server: "example.org", Index: l.tree.Size(), Kind: KindKey, Commitment: KeyCommitment(salt, b), Timestamp: 1767225600000 + int64(l.tree.Size())}
	l.tree.Append(leaf.Canonical())
	e := &Entry{Leaf: leaf, Salt: salt, Signature: ed25519.Sign(l.key, leaf.SigningInput())}
	l.items = append(l.items, e)
	return e
}

func (l *testLog) head() TreeHead {
	h := TreeHead{Server: "example.org", TreeSize: l.tree.Size(), RootHash: l.tree.Root(), Timestamp: 1767225700000}
	h.Signature = ed25519.Sign(l.key, h.SigningInput())
	return h
}

func (l *testLog) lookup(t testing.TB, b *keybundle.KeyBundle, e *Entry) *Lookup {
	t.Helper()
	h := l.head()
	p, err := merkle.InclusionProof(&l.tree, e.Leaf.Index, h.TreeSize)
	if err != nil {
		t.Fatal(err)
	}
	return &Lookup{Address: b.Address, Bundle: b, Entry: *e, InclusionProof: p, Head: h, ServerKey: l.pub()}
}

func TestLeafEncoding(t *testing.T) {
	l := Leaf{Server: "example.org", Index: 7, Kind: KindKey, Timestamp: 1767225600000}
	l.Commitment[0] = 0xff
	want := `{"commitment":"/wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","index":7,"kind":"key","server":"example.org","timestamp":1767225600000}`
	if got := string(l.Canonical()); got != want {
		t.Fatalf("leaf = %s\nwant %s", got, want)
	}
	if got := string(l.SigningInput()); got != "privateline/v1/directory-entry\x00"+want {
		t.Fatalf("signing input %q", got)
	}
	if l.Hash() != merkle.LeafHash([]byte(want)) {
		t.Fatal("leaf hash is not the RFC 6962 hash of the canonical leaf")
	}
	// Re-serialized, it parses to the same leaf.
	back, err := ParseLeaf([]byte(" {\"timestamp\": 1767225600000, \"server\":\"example.org\",\"kind\":\"key\",\"index\":7,\"commitment\":\"/wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}"))
	if err != nil || *back != l {
		t.Fatalf("parsed %+v, %v", back, err)
	}
	for _, bad := range []string{
		strings.Replace(want, `"key"`, `"admin"`, 1),
		strings.Replace(want, `"index":7`, `"index":-7`, 1),
		strings.Replace(want, `"index":7`, `"index":7.0`, 1),
		strings.Replace(want, `"example.org"`, `"Example.org"`, 1),
		strings.Replace(want, `}`, `,"extra":1}`, 1),
		strings.Replace(want, `/wAA`, `/wA`, 1),
		`[]`,
	} {
		if _, err := ParseLeaf([]byte(bad)); keybundle.ReasonOf(err) != keybundle.ErrMalformed {
			t.Errorf("ParseLeaf(%s): %v", bad, err)
		}
	}
}

func TestCommitments(t *testing.T) {
	bs := bundles(t)
	s1, s2 := bytes.Repeat([]byte{1}, SaltSize), bytes.Repeat([]byte{2}, SaltSize)
	if KeyCommitment(s1, bs[0]) == KeyCommitment(s2, bs[0]) || KeyCommitment(s1, bs[0]) == KeyCommitment(s1, bs[1]) {
		t.Fatal("commitments do not depend on salt and bundle")
	}
	h := bs[0].Hash()
	if DeleteCommitment(s1, bs[0].Address, h) == DeleteCommitment(s1, bs[1].Address, h) ||
		DeleteCommitment(s1, bs[0].Address, h) == DeleteCommitment(s2, bs[0].Address, h) {
		t.Fatal("deletion commitments do not depend on salt and address")
	}
	// Without the salt, a commitment says nothing findable about the bundle.
	c := KeyCommitment(s1, bs[0])
	for _, b := range bs {
		if bytes.Contains(b.JSON(), c[:8]) || bytes.Contains(c[:], []byte(b.Address)) {
			t.Fatal("the commitment shows the bundle")
		}
	}
}

func TestLookupRoundTripAndVerify(t *testing.T) {
	bs := bundles(t)
	l := newTestLog()
	var entries []*Entry
	for i := range 7 {
		entries = append(entries, l.addKey(bs[i%len(bs)]))
	}
	for i, e := range entries {
		b := bs[i%len(bs)]
		lk := l.lookup(t, b, e)
		wire, err := lk.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseLookup(wire, 0)
		if err != nil {
			t.Fatalf("ParseLookup: %v\n%s", err, wire)
		}
		if err := back.Verify(l.pub(), "example.org", b.Address); err != nil {
			t.Fatalf("entry %d does not verify: %v", i, err)
		}
		if err := VerifyEntry(l.pub(), "example.org", b, &back.Entry); err != nil {
			t.Fatalf("entry %d alone: %v", i, err)
		}
	}

	// Each tampering is refused with its reason.
	b := bs[1]
	_, other, _ := ed25519.GenerateKey(nil)
	for _, tc := range []struct {
		name   string
		edit   func(lk *Lookup)
		key    ed25519.PublicKey
		server privateline.ServerName
		want   keybundle.Reason
	}{
		{"other key", func(*Lookup) {}, other.Public().(ed25519.PublicKey), "example.org", keybundle.ErrBadSignature},
		{"other server", func(*Lookup) {}, nil, "example.net", keybundle.ErrBadProof},
		{"head root", func(lk *Lookup) { lk.Head.RootHash[0] ^= 1 }, nil, "", keybundle.ErrBadSignature},
		{"head size", func(lk *Lookup) { lk.Head.TreeSize++ }, nil, "", keybundle.ErrBadSignature},
		{"salt", func(lk *Lookup) { lk.Entry.Salt = bytes.Repeat([]byte{9}, SaltSize) }, nil, "", keybundle.ErrBadProof},
		{"bundle", func(lk *Lookup) { lk.Bundle = bs[2]; lk.Address = bs[2].Address }, nil, "", keybundle.ErrBadProof},
		{"address only", func(lk *Lookup) { lk.Address = bs[2].Address }, nil, "", keybundle.ErrBadProof},
		{"kind", func(lk *Lookup) { lk.Entry.Leaf.Kind = KindDelete }, nil, "", keybundle.ErrBadProof},
		{"leaf server", func(lk *Lookup) { lk.Entry.Leaf.Server = "example.net" }, nil, "", keybundle.ErrBadProof},
		{"leaf index", func(lk *Lookup) { lk.Entry.Leaf.Index++ }, nil, "", keybundle.ErrBadSignature},
		{"leaf index, re-signed", func(lk *Lookup) {
			lk.Entry.Leaf.Index++
			lk.Entry.Signature = ed25519.Sign(l.key, lk.Entry.Leaf.SigningInput())
		}, nil, "", keybundle.ErrBadProof},
		{"entry signature", func(lk *Lookup) { lk.Entry.Signature[5] ^= 1 }, nil, "", keybundle.ErrBadSignature},
		{"proof hash", func(lk *Lookup) { lk.InclusionProof[0][0] ^= 1 }, nil, "", keybundle.ErrBadProof},
		{"proof cut", func(lk *Lookup) { lk.InclusionProof = lk.InclusionProof[1:] }, nil, "", keybundle.ErrBadProof},
		{"index beyond the head", func(lk *Lookup) {
			lk.Head.TreeSize = 1
			lk.Head.Signature = ed25519.Sign(l.key, lk.Head.SigningInput())
		}, nil, "", keybundle.ErrBadProof},
	} {
		lk := l.lookup(t, b, entries[1])
		lk.Entry.Signature = bytes.Clone(lk.Entry.Signature)
		tc.edit(lk)
		key, server := l.pub(), privateline.ServerName("example.org")
		if tc.key != nil {
			key = tc.key
		}
		if tc.server != "" {
			server = tc.server
		}
		if err := lk.Verify(key, server, b.Address); keybundle.ReasonOf(err) != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.want)
		}
	}
}

func TestHeadAndConsistencyWire(t *testing.T) {
	l := newTestLog()
	l.addKey(bundles(t)[0])
	h := l.head()
	a := &HeadAnswer{Head: h, ServerKey: l.pub()}
	wire, _ := a.MarshalJSON()
	back, err := ParseHeadAnswer(wire)
	if err != nil || back.Head.Verify(l.pub()) != nil || !back.ServerKey.Equal(l.pub()) {
		t.Fatalf("head round trip: %v\n%s", err, wire)
	}
	if !strings.HasPrefix(string(h.SigningInput()), "privateline/v1/tree-head\x00{\"root_hash\":") {
		t.Fatalf("head signing input %q", h.SigningInput())
	}
	c := &Consistency{From: 1, To: 1, Proof: []merkle.Hash{}}
	cw, _ := c.MarshalJSON()
	if string(cw) != `{"from":1,"proof":[],"to":1}` {
		t.Fatalf("consistency wire %s", cw)
	}
	long := `{"from":1,"to":2,"proof":[` + strings.Repeat(`"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",`, MaxProof) + `"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]}`
	if _, err := ParseConsistency([]byte(long)); keybundle.ReasonOf(err) != keybundle.ErrMalformed {
		t.Fatalf("a proof of %d hashes: %v", MaxProof+1, err)
	}
	for _, bad := range []string{`{"from":1,"to":2,"proof":["AAAA"]}`, `{"from":1,"to":2}`, `{"from":-1,"to":2,"proof":[]}`} {
		if _, err := ParseConsistency([]byte(bad)); err == nil {
			t.Errorf("ParseConsistency(%s) accepted", bad)
		}
	}
}

func FuzzParseLookup(f *testing.F) {
	bs := bundles(f)
	l := newTestLog()
	e := l.addKey(bs[0])
	l.addKey(bs[1])
	wire, _ := l.lookup(f, bs[0], e).MarshalJSON()
	f.Add(wire)
	f.Add([]byte(`{"address":"a@b","entry":{},"inclusion_proof":[],"key_bundle":{},"server_key":"","tree_head":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		lk, err := ParseLookup(data, 0)
		if err != nil {
			if keybundle.ReasonOf(err) == "" {
				t.Fatalf("refusal without a reason: %v", err)
			}
			return
		}
		// Verification of whatever parsed never panics, and a forged
		// answer verifies only under the key that signed it.
		_ = lk.Verify(l.pub(), "example.org", bs[0].Address)
		_, _ = ParseHeadAnswer(data)
		_, _ = ParseConsistency(data)
	})
}
