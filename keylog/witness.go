package keylog

import (
	"crypto/ed25519"
	"fmt"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/cjson"
	"github.com/privateline/privateline/keybundle"
	"github.com/privateline/privateline/merkle"
)

// Tree-head witnessing (spec/federation.md §12.6, spec/e2ee.md §6.4
// "Witnesses"): a witness, another homeserver, co-signs a directory's tree
// (size and root) after checking that it extends every head of that
// directory it saw before; two heads of one directory that cannot both be
// true are fork evidence. Shared by the homeserver and the client SDK.

// LabelWitness prefixes a co-signature (spec/federation.md §3).
const LabelWitness = "privateline/v1/federation-witness"

// Cosignature is a witness's statement that it verified the tree of
// Head.TreeSize entries with root Head.RootHash of Head.Server's directory
// at WitnessedAt and that it extends every head of that server it holds.
// Head is the signed head the witness was shown (its timestamp and
// signature are not part of the statement: any signature of the same
// tree is covered).
type Cosignature struct {
	Witness     privateline.ServerName
	WitnessKey  ed25519.PublicKey // the witness's identity key (spec/federation.md §2)
	WitnessedAt int64             // Unix ms, the witness's clock
	Signature   []byte
	Head        TreeHead
}

// CosignatureInput returns what a witness signs:
// "privateline/v1/federation-witness" ‖ 0x00 ‖ canonical
// {"root_hash", "server", "tree_size", "witness", "witnessed_at"}.
func CosignatureInput(h *TreeHead, witness privateline.ServerName, witnessedAt int64) []byte {
	c, err := cjson.Marshal(statement(h, witness, witnessedAt))
	if err != nil {
		panic(err) // bounded integers and ASCII strings only
	}
	return append(domain(LabelWitness), c...)
}

func statement(h *TreeHead, witness privateline.ServerName, at int64) map[string]any {
	return map[string]any{
		"root_hash":    b64.EncodeToString(h.RootHash[:]),
		"server":       string(h.Server),
		"tree_size":    int64(h.TreeSize),
		"witness":      string(witness),
		"witnessed_at": at,
	}
}

// Cosign makes sign's co-signature of h as witness at witnessedAt.
func Cosign(h *TreeHead, witness privateline.ServerName, witnessedAt int64, key ed25519.PublicKey, sign func([]byte) []byte) *Cosignature {
	return &Cosignature{Witness: witness, WitnessKey: key, WitnessedAt: witnessedAt,
		Signature: sign(CosignatureInput(h, witness, witnessedAt)), Head: *h}
}

// Verify checks the co-signature under key (the witness's key as the
// verifier knows it) and that it is of the tree of head.
func (c *Cosignature) Verify(key ed25519.PublicKey) error {
	const op = "keylog.Cosignature.Verify"
	if len(key) != ed25519.PublicKeySize || !ed25519.Verify(key, CosignatureInput(&c.Head, c.Witness, c.WitnessedAt), c.Signature) {
		return keybundle.Refuse(op, keybundle.ErrBadSignature, fmt.Sprintf("the co-signature of %s does not verify", c.Witness))
	}
	return nil
}

// Covers reports whether the co-signature is of the tree of h (same
// server, size and root).
func (c *Cosignature) Covers(h *TreeHead) bool {
	return c.Head.Server == h.Server && c.Head.TreeSize == h.TreeSize && c.Head.RootHash == h.RootHash
}

// WireJSON is the co-signature as a witness answers it over federation
// (spec/federation.md §12.6): the statement and "signature".
func (c *Cosignature) WireJSON() ([]byte, error) {
	m := statement(&c.Head, c.Witness, c.WitnessedAt)
	m["signature"] = b64.EncodeToString(c.Signature)
	return cjson.Marshal(m)
}

// ParseWireCosignature reads a witness's answer (WireJSON's form) for the
// head h it was shown; key is the witness's key. It checks that the
// statement is about h's tree and that the signature verifies.
func ParseWireCosignature(data []byte, h *TreeHead, key ed25519.PublicKey) (*Cosignature, error) {
	const op = "keylog.ParseWireCosignature"
	o := cjson.ParseObject(data)
	root := o.Bytes("root_hash", true, merkle.HashSize, merkle.HashSize)
	server := o.String("server", true)
	size := o.Int("tree_size", true, 0, cjson.MaxSafeInt)
	witness := o.String("witness", true)
	at := o.Int("witnessed_at", true, 0, cjson.MaxSafeInt)
	sig := o.Bytes("signature", true, ed25519.SignatureSize, ed25519.SignatureSize)
	if err := o.Done(false); err != nil {
		return nil, malformed(op, "co-signature: "+err.Error())
	}
	if _, err := privateline.ParseServerName(witness); err != nil {
		return nil, malformed(op, "co-signature: invalid witness name")
	}
	if privateline.ServerName(server) != h.Server || uint64(size) != h.TreeSize || string(root) != string(h.RootHash[:]) {
		return nil, keybundle.Refuse(op, keybundle.ErrBadProof, "the co-signature is not of the tree that was shown")
	}
	c := &Cosignature{Witness: privateline.ServerName(witness), WitnessKey: append(ed25519.PublicKey(nil), key...), WitnessedAt: at, Signature: sig, Head: *h}
	if err := c.Verify(key); err != nil {
		return nil, err
	}
	return c, nil
}

// MarshalJSON writes the client API's form (GET /api/keys/cosignatures):
// {"signature", "tree_head": {…}, "witness", "witness_key", "witnessed_at"}.
func (c *Cosignature) MarshalJSON() ([]byte, error) {
	return cjson.Marshal(map[string]any{
		"signature":    b64.EncodeToString(c.Signature),
		"tree_head":    c.Head.object(),
		"witness":      string(c.Witness),
		"witness_key":  b64.EncodeToString(c.WitnessKey),
		"witnessed_at": c.WitnessedAt,
	})
}

// ParseCosignature reads MarshalJSON's form; it does not verify it.
func ParseCosignature(data []byte) (*Cosignature, error) {
	v, err := cjson.Parse(data)
	if err != nil {
		return nil, malformed("keylog.ParseCosignature", "co-signature: "+err.Error())
	}
	return cosignatureFrom(v)
}

func cosignatureFrom(v any) (*Cosignature, error) {
	const op = "keylog.ParseCosignature"
	o := cjson.NewObject(v)
	c := &Cosignature{
		Signature:   o.Bytes("signature", true, ed25519.SignatureSize, ed25519.SignatureSize),
		Witness:     privateline.ServerName(o.String("witness", true)),
		WitnessKey:  o.Bytes("witness_key", true, ed25519.PublicKeySize, ed25519.PublicKeySize),
		WitnessedAt: o.Int("witnessed_at", true, 0, cjson.MaxSafeInt),
	}
	hv := o.Object("tree_head", true)
	if err := o.Done(false); err != nil {
		return nil, malformed(op, "co-signature: "+err.Error())
	}
	if _, err := privateline.ParseServerName(string(c.Witness)); err != nil {
		return nil, malformed(op, "co-signature: invalid witness name")
	}
	h, err := headFrom(hv)
	if err != nil {
		return nil, err
	}
	c.Head = *h
	return c, nil
}

// CosignaturesAnswer is GET /api/keys/cosignatures's answer: the
// directory's key and current head, and the latest co-signature of each
// witness (spec/e2ee.md §6.4).
type CosignaturesAnswer struct {
	HeadAnswer
	Cosignatures []*Cosignature
}

// MarshalJSON writes {"cosignatures": […], "server_key", "tree_head"}.
func (a *CosignaturesAnswer) MarshalJSON() ([]byte, error) {
	cs := make([]any, len(a.Cosignatures))
	for i, c := range a.Cosignatures {
		raw, err := c.MarshalJSON()
		if err != nil {
			return nil, err
		}
		if cs[i], err = cjson.Parse(raw); err != nil {
			return nil, err
		}
	}
	m := a.HeadAnswer.object()
	m["cosignatures"] = cs
	return cjson.Marshal(m)
}

// ParseCosignaturesAnswer reads the answer; it verifies nothing.
func ParseCosignaturesAnswer(data []byte) (*CosignaturesAnswer, error) {
	const op = "keylog.ParseCosignaturesAnswer"
	o := cjson.ParseObject(data)
	key := o.Bytes("server_key", true, ed25519.PublicKeySize, ed25519.PublicKeySize)
	hv := o.Object("tree_head", true)
	cv := o.Array("cosignatures", true)
	changes, err := keyChangesMember(o, op)
	if err != nil {
		return nil, err
	}
	if err := o.Done(false); err != nil {
		return nil, malformed(op, "co-signatures: "+err.Error())
	}
	h, err := headFrom(hv)
	if err != nil {
		return nil, err
	}
	a := &CosignaturesAnswer{HeadAnswer: HeadAnswer{Head: *h, ServerKey: key, KeyChanges: changes}}
	for _, v := range cv {
		c, err := cosignatureFrom(v)
		if err != nil {
			return nil, err
		}
		a.Cosignatures = append(a.Cosignatures, c)
	}
	return a, nil
}

// Fork evidence kinds.
const (
	// ForkSameSize: two heads of one size with different roots. Proof by
	// itself: anyone with the directory's key can check it.
	ForkSameSize = "same_size"
	// ForkInconsistent: a larger head whose consistency proof from the
	// smaller one does not verify. The directory signed both heads and the
	// request that carried the proof, but could still produce a valid
	// proof if it has one; a verifier may ask it (GET /api/keys/consistency).
	ForkInconsistent = "inconsistent"
)

// ForkEvidence is what a witness keeps when a directory shows it two heads
// that cannot both be true (spec/federation.md §12.6).
type ForkEvidence struct {
	Kind        string // ForkSameSize or ForkInconsistent
	Server      privateline.ServerName
	Witness     privateline.ServerName // who detected it
	DetectedAt  int64                  // Unix ms
	First       TreeHead               // the head held before
	Second      TreeHead               // the conflicting head
	Consistency []merkle.Hash          // ForkInconsistent: the proof that failed
}

// NewForkEvidence returns the evidence that first and second (both
// verified under server's key) conflict, or nil if they do not: for heads
// of one size, different roots; for a larger second, a consistency proof
// from first that does not verify.
func NewForkEvidence(first, second *TreeHead, proof []merkle.Hash, witness privateline.ServerName, at int64) *ForkEvidence {
	f := &ForkEvidence{Server: first.Server, Witness: witness, DetectedAt: at, First: *first, Second: *second}
	switch {
	case first.Server != second.Server:
		return nil
	case first.TreeSize == second.TreeSize:
		if first.RootHash == second.RootHash {
			return nil
		}
		f.Kind = ForkSameSize
	case first.TreeSize < second.TreeSize && first.TreeSize > 0:
		if merkle.VerifyConsistency(first.TreeSize, second.TreeSize, first.RootHash, second.RootHash, proof) == nil {
			return nil
		}
		f.Kind = ForkInconsistent
		f.Consistency = append([]merkle.Hash{}, proof...)
	default:
		return nil
	}
	return f
}

// Verify checks the evidence under the directory's key: both heads are
// signed by it, of its server, and conflict as Kind says.
func (f *ForkEvidence) Verify(serverKey ed25519.PublicKey) error {
	return f.VerifyUnder([]ed25519.PublicKey{serverKey})
}

// VerifyUnder is Verify where each head may be signed by any of keys:
// the directory's key pinned now and the keys it had before, as the
// verifier followed them (ServerKeyPath), so that evidence made before a
// key rotation stays verifiable after it (spec/federation.md §2.2). Keys
// must not come from whoever serves the evidence: anyone can make a
// key-change statement that leads from a key of their own to the
// directory's current key.
func (f *ForkEvidence) VerifyUnder(keys []ed25519.PublicKey) error {
	return f.VerifyVouched(keys, nil)
}

// VerifyVouched is VerifyUnder(keys) where a head may also be signed by
// one of earlier — keys the server's current key names as the server's
// before it, in the server document it signed (EarlierKeysFromDocument)
// — if the head's timestamp is not after that key was replaced, so that a
// verifier that only ever trusted the current key can check evidence made
// before a rotation. earlier must come from a document verified under the
// key the verifier pinned, never from the evidence or statements that
// come with it.
func (f *ForkEvidence) VerifyVouched(keys []ed25519.PublicKey, earlier []EarlierServerKey) error {
	const op = "keylog.ForkEvidence.Verify"
	if len(keys) == 0 {
		return keybundle.Refuse(op, keybundle.ErrBadSignature, "no key to check the evidence under")
	}
	for _, h := range []*TreeHead{&f.First, &f.Second} {
		if h.Server != f.Server {
			return keybundle.Refuse(op, keybundle.ErrBadProof, "a head of another server")
		}
		var err error
		for _, k := range keys {
			if err = h.Verify(k); err == nil {
				break
			}
		}
		if err == nil {
			continue
		}
		ok, late := false, false
		for _, e := range earlier {
			if h.Verify(e.Key) == nil {
				if h.Timestamp <= e.ReplacedAt {
					ok = true
					break
				}
				late = true
			}
		}
		if ok {
			continue
		}
		if late {
			return keybundle.Refuse(op, keybundle.ErrBadSignature, fmt.Sprintf("a head of %s is signed with a key it replaced, and dated after it replaced it: not the server's", f.Server))
		}
		return err
	}
	g := NewForkEvidence(&f.First, &f.Second, f.Consistency, f.Witness, f.DetectedAt)
	if g == nil || g.Kind != f.Kind {
		return keybundle.Refuse(op, keybundle.ErrBadProof, "the two heads do not conflict")
	}
	return nil
}

// MarshalJSON writes {"consistency" (inconsistent only), "detected_at",
// "first", "kind", "second", "server", "witness"}.
func (f *ForkEvidence) MarshalJSON() ([]byte, error) {
	m := map[string]any{
		"detected_at": f.DetectedAt,
		"first":       f.First.object(),
		"kind":        f.Kind,
		"second":      f.Second.object(),
		"server":      string(f.Server),
		"witness":     string(f.Witness),
	}
	if f.Kind == ForkInconsistent {
		hs := make([]any, len(f.Consistency))
		for i, h := range f.Consistency {
			hs[i] = b64.EncodeToString(h[:])
		}
		m["consistency"] = hs
	}
	return cjson.Marshal(m)
}

// ParseForkEvidence reads MarshalJSON's form; it does not verify it.
func ParseForkEvidence(data []byte) (*ForkEvidence, error) {
	v, err := cjson.Parse(data)
	if err != nil {
		return nil, malformed("keylog.ParseForkEvidence", "fork evidence: "+err.Error())
	}
	return forkFrom(v)
}

func forkFrom(v any) (*ForkEvidence, error) {
	const op = "keylog.ParseForkEvidence"
	o := cjson.NewObject(v)
	f := &ForkEvidence{
		DetectedAt: o.Int("detected_at", true, 0, cjson.MaxSafeInt),
		Kind:       o.String("kind", true),
		Server:     privateline.ServerName(o.String("server", true)),
		Witness:    privateline.ServerName(o.String("witness", true)),
	}
	first := o.Object("first", true)
	second := o.Object("second", true)
	var proof []any
	if f.Kind == ForkInconsistent {
		proof = o.Array("consistency", true)
	}
	if err := o.Done(false); err != nil {
		return nil, malformed(op, "fork evidence: "+err.Error())
	}
	if f.Kind != ForkSameSize && f.Kind != ForkInconsistent {
		return nil, malformed(op, "fork evidence: unknown kind")
	}
	for _, n := range []privateline.ServerName{f.Server, f.Witness} {
		if _, err := privateline.ParseServerName(string(n)); err != nil {
			return nil, malformed(op, "fork evidence: invalid server name")
		}
	}
	a, err := headFrom(first)
	if err != nil {
		return nil, err
	}
	b, err := headFrom(second)
	if err != nil {
		return nil, err
	}
	f.First, f.Second = *a, *b
	if proof != nil {
		f.Consistency = make([]merkle.Hash, 0, len(proof))
		for _, p := range proof {
			s, ok := p.(string)
			h, err := b64.DecodeString(s)
			if !ok || err != nil || len(h) != merkle.HashSize || len(f.Consistency) >= 128 {
				return nil, malformed(op, "fork evidence: consistency is not a list of hashes")
			}
			f.Consistency = append(f.Consistency, merkle.Hash(h))
		}
	}
	return f, nil
}

// ForksAnswer is GET /api/keys/forks's answer: {"forks": […]}.
type ForksAnswer struct{ Forks []*ForkEvidence }

// MarshalJSON writes {"forks": […]}.
func (a *ForksAnswer) MarshalJSON() ([]byte, error) {
	fs := make([]any, len(a.Forks))
	for i, f := range a.Forks {
		raw, err := f.MarshalJSON()
		if err != nil {
			return nil, err
		}
		if fs[i], err = cjson.Parse(raw); err != nil {
			return nil, err
		}
	}
	return cjson.Marshal(map[string]any{"forks": fs})
}

// ParseForksAnswer reads the answer; it verifies nothing.
func ParseForksAnswer(data []byte) (*ForksAnswer, error) {
	o := cjson.ParseObject(data)
	fv := o.Array("forks", true)
	if err := o.Done(false); err != nil {
		return nil, malformed("keylog.ParseForksAnswer", "forks: "+err.Error())
	}
	a := &ForksAnswer{Forks: []*ForkEvidence{}}
	for _, v := range fv {
		f, err := forkFrom(v)
		if err != nil {
			return nil, err
		}
		a.Forks = append(a.Forks, f)
	}
	return a, nil
}
