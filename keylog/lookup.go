package keylog

import (
	"crypto/ed25519"
	"fmt"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/cjson"
	"github.com/privateline/privateline/keybundle"
	"github.com/privateline/privateline/merkle"
)

// MaxProof bounds the hashes of a proof a client accepts (a log of 2^53
// entries needs at most 2·53).
const MaxProof = 128

// Lookup is the directory's answer for one account (GET
// /api/public_key/{username}, and PUT /api/keys for the caller):
//
//	{"address", "key_bundle": {...}, "entry": {...}, "inclusion_proof": [b64, ...],
//	 "server_key": b64(32), "tree_head": {...}, "consistency": [b64, ...] optional}
//
// server_key is the directory's Ed25519 public key, outside anything
// signed: clients pin it on first use and refuse a change. consistency,
// present when the client asked with ?since=m (spec/e2ee.md §6.4), is the
// proof from m to the head's size.
type Lookup struct {
	Address        privateline.Address
	Bundle         *keybundle.KeyBundle
	Entry          Entry
	InclusionProof []merkle.Hash
	Head           TreeHead
	ServerKey      ed25519.PublicKey
	// Consistency is the proof from Since to Head.TreeSize when Since > 0.
	Since       uint64
	Consistency []merkle.Hash
	// KeyChanges, oldest first, lead from the directory's earlier keys to
	// ServerKey (spec/e2ee.md §6.4 step 2): "key_changes", present only
	// after the server rotated its key.
	KeyChanges []ServerKeyChange
}

func hashList(hs []merkle.Hash) []any {
	out := make([]any, len(hs))
	for i, h := range hs {
		out[i] = b64.EncodeToString(h[:])
	}
	return out
}

func hashesFrom(o *cjson.Object, name string) []merkle.Hash {
	a := o.Array(name, true)
	if o.Err() != nil {
		return nil
	}
	if len(a) > MaxProof {
		o.Fail(name, fmt.Sprintf("at most %d hashes", MaxProof))
		return nil
	}
	out := make([]merkle.Hash, 0, len(a))
	for _, e := range a {
		s, ok := e.(string)
		b, err := b64.Strict().DecodeString(s)
		if !ok || err != nil || len(b) != merkle.HashSize || b64.EncodeToString(b) != s {
			o.Fail(name, "an array of base64 SHA-256 hashes")
			return nil
		}
		var h merkle.Hash
		copy(h[:], b)
		out = append(out, h)
	}
	return out
}

// MarshalJSON writes the wire form.
func (l *Lookup) MarshalJSON() ([]byte, error) {
	bundle, err := cjson.Parse(l.Bundle.JSON())
	if err != nil {
		return nil, err
	}
	m := map[string]any{
		"address":         string(l.Address),
		"key_bundle":      bundle,
		"entry":           l.Entry.object(),
		"inclusion_proof": hashList(l.InclusionProof),
		"server_key":      b64.EncodeToString(l.ServerKey),
		"tree_head":       l.Head.object(),
	}
	if l.Since > 0 {
		m["consistency"] = hashList(l.Consistency)
	}
	if len(l.KeyChanges) > 0 {
		m["key_changes"] = keyChangesList(l.KeyChanges)
	}
	return cjson.Marshal(m)
}

// ParseLookup reads a lookup answer and verifies the bundle's own
// signature (keybundle.Parse); the directory's proofs are checked by
// Verify. since is the tree size the client asked from (0: none): an answer
// to ?since=m must carry "consistency", others must not.
func ParseLookup(data []byte, since uint64) (*Lookup, error) {
	const op = "keylog.ParseLookup"
	o := cjson.ParseObject(data)
	addr := privateline.Address(o.String("address", true))
	bv := o.Object("key_bundle", true)
	ev := o.Object("entry", true)
	proof := hashesFrom(o, "inclusion_proof")
	key := o.Bytes("server_key", true, ed25519.PublicKeySize, ed25519.PublicKeySize)
	hv := o.Object("tree_head", true)
	var cons []merkle.Hash
	if since > 0 {
		cons = hashesFrom(o, "consistency")
	}
	changes, err := keyChangesMember(o, op)
	if err != nil {
		return nil, err
	}
	if err := o.Done(false); err != nil {
		return nil, malformed(op, "lookup: "+err.Error())
	}
	bj, err := cjson.Marshal(bv)
	if err != nil {
		return nil, malformed(op, "lookup: key_bundle is not canonical-JSON compatible")
	}
	b, err := keybundle.Parse(bj)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	e, err := entryFrom(ev)
	if err != nil {
		return nil, err
	}
	h, err := headFrom(hv)
	if err != nil {
		return nil, err
	}
	return &Lookup{Address: addr, Bundle: b, Entry: *e, InclusionProof: proof, Head: *h, ServerKey: key, Since: since, Consistency: cons, KeyChanges: changes}, nil
}

// Verify checks everything in the answer that needs no earlier state,
// under the directory key serverKey (the pinned one, not necessarily the
// answer's own server_key) for a lookup of address on server: the tree
// head's signature and server; the bundle is address's; the entry is a key
// entry of server committing to the bundle and signed by the directory;
// and the entry is in the tree the head describes (inclusion proof). That
// the head extends the last one the client saw is the caller's check
// (clients/go/directory).
func (l *Lookup) Verify(serverKey ed25519.PublicKey, server privateline.ServerName, address privateline.Address) error {
	const op = "keylog.Lookup.Verify"
	if l.Head.Server != server {
		return keybundle.Refuse(op, keybundle.ErrBadProof, fmt.Sprintf("the tree head is from %q, not %q", l.Head.Server, server))
	}
	if err := l.Head.Verify(serverKey); err != nil {
		return err
	}
	if l.Address != address || l.Bundle.Address != address {
		return keybundle.Refuse(op, keybundle.ErrBadProof, "the directory answered for another address")
	}
	if err := VerifyEntry(serverKey, server, l.Bundle, &l.Entry); err != nil {
		return err
	}
	if err := merkle.VerifyInclusion(l.Entry.Leaf.Hash(), l.Entry.Leaf.Index, l.Head.TreeSize, l.InclusionProof, l.Head.RootHash); err != nil {
		return keybundle.Refuse(op, keybundle.ErrBadProof, "the entry is not in the log the tree head describes")
	}
	return nil
}

// Consistency is GET /api/keys/consistency's answer:
// {"from": m, "to": n, "proof": [b64, ...]}.
type Consistency struct {
	From, To uint64
	Proof    []merkle.Hash
}

// MarshalJSON writes the wire form.
func (c *Consistency) MarshalJSON() ([]byte, error) {
	return cjson.Marshal(map[string]any{"from": int64(c.From), "to": int64(c.To), "proof": hashList(c.Proof)})
}

// ParseConsistency reads a consistency answer.
func ParseConsistency(data []byte) (*Consistency, error) {
	o := cjson.ParseObject(data)
	c := &Consistency{
		From: uint64(o.Int("from", true, 0, cjson.MaxSafeInt)),
		To:   uint64(o.Int("to", true, 0, cjson.MaxSafeInt)),
	}
	c.Proof = hashesFrom(o, "proof")
	if err := o.Done(false); err != nil {
		return nil, malformed("keylog.ParseConsistency", "consistency: "+err.Error())
	}
	return c, nil
}

// HeadAnswer is GET /api/keys/head's answer:
// {"server_key": b64(32), "tree_head": {...}}.
type HeadAnswer struct {
	Head      TreeHead
	ServerKey ed25519.PublicKey
	// KeyChanges lead from the directory's earlier keys to ServerKey
	// ("key_changes", after a rotation; see Lookup.KeyChanges).
	KeyChanges []ServerKeyChange
}

func (a *HeadAnswer) object() map[string]any {
	m := map[string]any{"server_key": b64.EncodeToString(a.ServerKey), "tree_head": a.Head.object()}
	if len(a.KeyChanges) > 0 {
		m["key_changes"] = keyChangesList(a.KeyChanges)
	}
	return m
}

// MarshalJSON writes the wire form: {"key_changes" (optional), "server_key", "tree_head"}.
func (a *HeadAnswer) MarshalJSON() ([]byte, error) { return cjson.Marshal(a.object()) }

// ParseHeadAnswer reads a head answer; it does not verify the head.
func ParseHeadAnswer(data []byte) (*HeadAnswer, error) {
	o := cjson.ParseObject(data)
	key := o.Bytes("server_key", true, ed25519.PublicKeySize, ed25519.PublicKeySize)
	hv := o.Object("tree_head", true)
	changes, err := keyChangesMember(o, "keylog.ParseHeadAnswer")
	if err != nil {
		return nil, err
	}
	if err := o.Done(false); err != nil {
		return nil, malformed("keylog.ParseHeadAnswer", "head: "+err.Error())
	}
	h, err := headFrom(hv)
	if err != nil {
		return nil, err
	}
	return &HeadAnswer{Head: *h, ServerKey: key, KeyChanges: changes}, nil
}
