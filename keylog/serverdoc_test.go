package keylog

import (
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/cjson"
	"github.com/privateline/privateline/keybundle"
)

type edSigner ed25519.PrivateKey

func (k edSigner) Public() ed25519.PublicKey {
	return ed25519.PrivateKey(k).Public().(ed25519.PublicKey)
}
func (k edSigner) Sign(m []byte) []byte { return ed25519.Sign(ed25519.PrivateKey(k), m) }

// keyChangeAt is a statement that next replaces old for server, made at ms.
func keyChangeAt(t *testing.T, server privateline.ServerName, old ed25519.PrivateKey, next ed25519.PublicKey, ms int64) ServerKeyChange {
	t.Helper()
	c := ServerKeyChange{Server: server, CreatedAt: time.UnixMilli(ms), OldKey: edSigner(old).Public(), NewKey: next}
	c.Signature = ed25519.Sign(old, c.SigningInput())
	if err := c.Verify(); err != nil {
		t.Fatal(err)
	}
	return c
}

// serverDocument is spec/federation.md §2.1's document of server with key
// key and the statements, signed by signer (the key's own, unless a test
// forges one), with edit applied to its members before signing.
func serverDocument(t *testing.T, server privateline.ServerName, key ed25519.PublicKey, signer ed25519.PrivateKey, changes []ServerKeyChange, edit func(map[string]any)) []byte {
	t.Helper()
	body := map[string]any{"created_at": int64(5000), "federation": "127.0.0.1:4433", "key": b64.EncodeToString(key), "server": string(server), "v": int64(1)}
	if len(changes) > 0 {
		body["key_changes"] = keyChangesList(changes)
	}
	if edit != nil {
		edit(body)
	}
	in, err := cjson.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	body["signature"] = b64.EncodeToString(ed25519.Sign(signer, append([]byte("privateline/v1/federation-server\x00"), in...)))
	raw, err := cjson.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestEarlierKeysFromDocument: the keys a server's document, signed by
// the key pinned for it, names as its earlier ones — and nothing from a
// document the pinned key did not sign, whoever made it (a holder of an
// old key included), nor from a broken chain.
func TestEarlierKeysFromDocument(t *testing.T) {
	const server = "example.org"
	k0, p0 := witnessKey(t)
	k1, p1 := witnessKey(t)
	k2, p2 := witnessKey(t)
	thief, pThief := witnessKey(t)
	chain := []ServerKeyChange{keyChangeAt(t, server, p0, k1, 1000), keyChangeAt(t, server, p1, k2, 2000)}

	got, err := EarlierKeysFromDocument(serverDocument(t, server, k2, p2, chain, nil), server, k2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[0].Key.Equal(k0) || got[0].ReplacedAt != 1000 || !got[1].Key.Equal(k1) || got[1].ReplacedAt != 2000 {
		t.Fatalf("earlier keys: %+v", got)
	}
	if got, err := EarlierKeysFromDocument(serverDocument(t, server, k2, p2, nil, nil), server, k2); err != nil || len(got) != 0 {
		t.Fatalf("a server that never rotated: %v, %v", got, err)
	}

	for _, tc := range []struct {
		name   string
		doc    []byte
		pinned ed25519.PublicKey
		want   keybundle.Reason
	}{
		// A client that pinned k2 trusts k2 alone.
		{"pinned another key", serverDocument(t, server, k2, p2, chain, nil), k1, keybundle.ErrServerKeyChanged},
		// The holder of the old key k1 signs a document of its own.
		{"signed by a stolen old key, naming it", serverDocument(t, server, k1, p1, chain[:1], nil), k2, keybundle.ErrServerKeyChanged},
		{"signed by a stolen old key, naming the pinned one", serverDocument(t, server, k2, p1, chain, nil), k2, keybundle.ErrBadSignature},
		// A statement from the thief's key to the pinned one: valid in
		// itself (the thief signed it), but k2 did not vouch for it.
		{"a statement added to a signed document", setChanges(t, serverDocument(t, server, k2, p2, chain[1:], nil), keyChangeAt(t, server, pThief, k1, 1500), chain[1]), k2, keybundle.ErrBadSignature},
		{"a statement replaced in a signed document", setChanges(t, serverDocument(t, server, k2, p2, chain[1:], nil), keyChangeAt(t, server, pThief, k2, 1500)), k2, keybundle.ErrBadSignature},
		// Even a document k2 signed must hold a valid chain.
		{"a broken chain", serverDocument(t, server, k2, p2, []ServerKeyChange{chain[0], keyChangeAt(t, server, pThief, k2, 2000)}, nil), k2, keybundle.ErrBadProof},
		{"a chain that does not end at the key", serverDocument(t, server, k2, p2, chain[:1], nil), k2, keybundle.ErrBadProof},
		{"a statement of another server", serverDocument(t, server, k2, p2, []ServerKeyChange{keyChangeAt(t, "other.org", p1, k2, 2000)}, nil), k2, keybundle.ErrBadProof},
		{"another server's document", serverDocument(t, "other.org", k2, p2, nil, nil), k2, keybundle.ErrBadProof},
		{"an unknown member", serverDocument(t, server, k2, p2, chain, func(m map[string]any) { m["earlier_keys"] = []any{b64.EncodeToString(thief)} }), k2, keybundle.ErrMalformed},
		{"another version", serverDocument(t, server, k2, p2, chain, func(m map[string]any) { m["v"] = int64(2) }), k2, keybundle.ErrMalformed},
		{"no key", serverDocument(t, server, k2, p2, chain, func(m map[string]any) { delete(m, "key") }), k2, keybundle.ErrMalformed},
		{"not canonical", append([]byte(" "), serverDocument(t, server, k2, p2, chain, nil)...), k2, keybundle.ErrNonCanonical},
	} {
		got, err := EarlierKeysFromDocument(tc.doc, server, tc.pinned)
		if keybundle.ReasonOf(err) != tc.want || got != nil {
			t.Errorf("%s: %v (%v), want %s", tc.name, err, got, tc.want)
		}
	}
}

// setChanges replaces a signed document's key_changes (keeping its
// signature).
func setChanges(t *testing.T, doc []byte, cs ...ServerKeyChange) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	list := []any{}
	for _, c := range cs {
		list = append(list, json.RawMessage(c.Marshal()))
	}
	m["key_changes"] = list
	raw, err := cjson.Canonicalize(mustJSON(t, m))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestForkEvidenceVouched: evidence whose heads an earlier key signed
// verifies for a verifier that trusts only the current key, through the
// earlier keys the current key vouches for, if the heads are dated before
// that key was replaced; heads a holder of the old key signs with later
// dates, or heads of a key the document does not name, do not.
func TestForkEvidenceVouched(t *testing.T) {
	old, pOld := witnessKey(t)
	cur, pCur := witnessKey(t)
	_, pOther := witnessKey(t)
	earlier := []EarlierServerKey{{Key: old, ReplacedAt: 10_000}}
	fork := func(p1 ed25519.PrivateKey, at1 int64, p2 ed25519.PrivateKey, at2 int64) *ForkEvidence {
		f := NewForkEvidence(signedHead(t, treeOf("a", 5), p1, at1), signedHead(t, treeOf("b", 5), p2, at2), nil, "w.test", 20_000)
		if f == nil {
			t.Fatal("no conflict")
		}
		return f
	}
	for name, f := range map[string]*ForkEvidence{
		"both before the rotation": fork(pOld, 9_000, pOld, 10_000),
		"across the rotation":      fork(pOld, 9_000, pCur, 11_000),
	} {
		if err := f.VerifyUnder([]ed25519.PublicKey{cur}); keybundle.ReasonOf(err) != keybundle.ErrBadSignature {
			t.Fatalf("%s: verifies under the current key alone: %v", name, err)
		}
		if err := f.VerifyVouched([]ed25519.PublicKey{cur}, earlier); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	for name, f := range map[string]*ForkEvidence{
		// A thief of the old key signs heads after the rotation.
		"a head dated after the rotation":  fork(pOld, 9_000, pOld, 10_001),
		"both dated after the rotation":    fork(pOld, 12_000, pOld, 13_000),
		"a key the document does not name": fork(pOld, 9_000, pOther, 9_500),
	} {
		if err := f.VerifyVouched([]ed25519.PublicKey{cur}, earlier); keybundle.ReasonOf(err) != keybundle.ErrBadSignature {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if err := fork(pOld, 9_000, pOld, 12_000).VerifyVouched([]ed25519.PublicKey{cur}, earlier); err == nil || !strings.Contains(err.Error(), "dated after") {
		t.Fatalf("a late head's refusal does not say why: %v", err)
	}
	// The conflict is still checked.
	same := NewForkEvidence(signedHead(t, treeOf("a", 5), pOld, 9_000), signedHead(t, treeOf("b", 5), pOld, 9_500), nil, "w.test", 20_000)
	same.Second = *signedHead(t, treeOf("a", 5), pOld, 9_600)
	if err := same.VerifyVouched([]ed25519.PublicKey{cur}, earlier); keybundle.ReasonOf(err) != keybundle.ErrBadProof {
		t.Fatalf("heads that do not conflict: %v", err)
	}
	// Evidence does not bring keys of its own: a "key_changes" member in
	// it (or in the answer) is refused.
	f := fork(pOld, 9_000, pOld, 10_000)
	b, _ := f.MarshalJSON()
	var m map[string]any
	json.Unmarshal(b, &m)
	m["key_changes"] = []any{json.RawMessage(keyChangeAt(t, "example.org", pOld, cur, 10_000).Marshal())}
	withChain, _ := cjson.Canonicalize(mustJSON(t, map[string]any{"forks": []any{m}}))
	if _, err := ParseForksAnswer(withChain); keybundle.ReasonOf(err) != keybundle.ErrMalformed {
		t.Fatalf("evidence with its own key-change statements: %v", err)
	}
}

// TestVerifyServerDocument: the one reader of the server document, which
// homeservers (federation.VerifyDocument) and clients
// (EarlierKeysFromDocument) share, checks the document whatever key it
// names; trusting that key is the caller's: a client that pinned the
// current key refuses a document an old key signed, and a nil pin trusts
// no key.
func TestVerifyServerDocument(t *testing.T) {
	const server = "example.org"
	k0, p0 := witnessKey(t)
	k1, p1 := witnessKey(t)
	k2, p2 := witnessKey(t)
	chain := []ServerKeyChange{keyChangeAt(t, server, p0, k1, 1000), keyChangeAt(t, server, p1, k2, 2000)}

	d, err := VerifyServerDocument(serverDocument(t, server, k2, p2, chain, nil), server)
	if err != nil {
		t.Fatal(err)
	}
	if d.Server != server || d.Federation != "127.0.0.1:4433" || !d.Key.Equal(k2) || d.CreatedAt.UnixMilli() != 5000 ||
		len(d.KeyChanges) != 2 || !d.KeyChanges[0].OldKey.Equal(k0) || !d.KeyChanges[1].NewKey.Equal(k2) {
		t.Fatalf("document %+v", d)
	}
	// What a server serves is the document of §2.1, byte for byte.
	signed, err := SignServerDocument(ServerDocument{Server: server, Federation: "127.0.0.1:4433", KeyChanges: chain, CreatedAt: time.UnixMilli(5000)}, edSigner(p2))
	if err != nil || string(signed) != string(serverDocument(t, server, k2, p2, chain, nil)) {
		t.Fatalf("signed %s, %v", signed, err)
	}
	if signed, _ := SignServerDocument(ServerDocument{Server: server, Federation: "127.0.0.1:4433", CreatedAt: time.UnixMilli(5000)}, edSigner(p2)); string(signed) != string(serverDocument(t, server, k2, p2, nil, nil)) {
		t.Fatalf("never rotated: signed %s", signed)
	}
	// The old key k1's own document (as a thief of k1 would serve it)
	// is well-formed and signed by its key: the reader says so, and the
	// client that pinned k2 refuses it.
	old := serverDocument(t, server, k1, p1, chain[:1], nil)
	if d, err := VerifyServerDocument(old, server); err != nil || !d.Key.Equal(k1) {
		t.Fatalf("the old key's document: %v", err)
	}
	if _, err := EarlierKeysFromDocument(old, server, k2); keybundle.ReasonOf(err) != keybundle.ErrServerKeyChanged {
		t.Fatalf("the old key's document, k2 pinned: %v", err)
	}
	// No pin is no trust, not any key.
	if got, err := EarlierKeysFromDocument(serverDocument(t, server, k2, p2, chain, nil), server, nil); keybundle.ReasonOf(err) != keybundle.ErrServerKeyChanged || got != nil {
		t.Fatalf("no pin: %v, %v", got, err)
	}
	// "federation" is host:port for clients too (homeservers always
	// required it; spec/federation.md §2.1).
	for _, addr := range []string{"127.0.0.1", ":4433", "example.org:", ""} {
		raw := serverDocument(t, server, k2, p2, chain, func(m map[string]any) { m["federation"] = addr })
		if _, err := VerifyServerDocument(raw, server); keybundle.ReasonOf(err) != keybundle.ErrMalformed {
			t.Errorf("federation %q: %v", addr, err)
		}
		if _, err := EarlierKeysFromDocument(raw, server, k2); keybundle.ReasonOf(err) != keybundle.ErrMalformed {
			t.Errorf("federation %q, client: %v", addr, err)
		}
	}
	// The signing input is the label, a zero byte and the canonical JSON
	// of the members without the signature.
	in, err := ServerDocumentInput(map[string]any{"v": int64(1), "server": server})
	if err != nil || string(in) != "privateline/v1/federation-server\x00{\"server\":\"example.org\",\"v\":1}" {
		t.Fatalf("signing input %q, %v", in, err)
	}
}
