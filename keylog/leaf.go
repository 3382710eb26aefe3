package keylog

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/cjson"
	"github.com/privateline/privateline/keybundle"
	"github.com/privateline/privateline/merkle"
)

// Labels of spec/e2ee.md §3 used by the directory.
const (
	LabelEntry            = "privateline/v1/directory-entry"  // signature prefix: a log entry
	LabelTreeHead         = "privateline/v1/tree-head"        // signature prefix: a signed tree head
	LabelKeyCommitment    = "privateline/v1/directory-key"    // HMAC input prefix: a key entry's commitment
	LabelDeleteCommitment = "privateline/v1/directory-delete" // HMAC input prefix: a deletion entry's commitment
)

// SaltSize is the size of an entry's commitment salt.
const SaltSize = 32

// Kind says what an entry records.
type Kind string

// The kinds of entry.
const (
	KindKey    Kind = "key"    // an account's bundle: registration or key change
	KindDelete Kind = "delete" // an account's deletion
)

var b64 = base64.StdEncoding

func domain(label string) []byte { return append([]byte(label), 0) }

// Leaf is one entry of the log as it is hashed into the tree.
type Leaf struct {
	Server     privateline.ServerName
	Index      uint64
	Kind       Kind
	Commitment [32]byte
	Timestamp  int64 // Unix milliseconds
}

func (l *Leaf) object() map[string]any {
	return map[string]any{
		"commitment": b64.EncodeToString(l.Commitment[:]),
		"index":      int64(l.Index),
		"kind":       string(l.Kind),
		"server":     string(l.Server),
		"timestamp":  l.Timestamp,
	}
}

// Canonical returns the leaf's canonical JSON, the leaf data of the tree.
func (l *Leaf) Canonical() []byte {
	b, err := cjson.Marshal(l.object())
	if err != nil {
		panic(err) // every member is a bounded integer or an ASCII string
	}
	return b
}

// MarshalJSON writes the canonical JSON.
func (l *Leaf) MarshalJSON() ([]byte, error) { return l.Canonical(), nil }

// Hash returns the leaf's Merkle leaf hash.
func (l *Leaf) Hash() merkle.Hash { return merkle.LeafHash(l.Canonical()) }

// SigningInput returns the bytes the directory signs for the entry:
// "privateline/v1/directory-entry" ‖ 0x00 ‖ canonical leaf.
func (l *Leaf) SigningInput() []byte { return EntrySigningInput(l.Canonical()) }

// EntrySigningInput is the signing input of an entry whose leaf is the
// canonical JSON canonical (as the directory stores it):
// "privateline/v1/directory-entry" ‖ 0x00 ‖ canonical.
func EntrySigningInput(canonical []byte) []byte {
	return append(domain(LabelEntry), canonical...)
}

// ParseLeaf reads a leaf from its JSON (possibly re-serialized).
func ParseLeaf(data []byte) (*Leaf, error) {
	v, err := cjson.Parse(data)
	if err != nil {
		return nil, malformed("keylog.ParseLeaf", "leaf: "+err.Error())
	}
	return leafFrom(v)
}

func leafFrom(v any) (*Leaf, error) {
	const op = "keylog.ParseLeaf"
	o := cjson.NewObject(v)
	l := &Leaf{
		Server:    privateline.ServerName(o.String("server", true)),
		Index:     uint64(o.Int("index", true, 0, cjson.MaxSafeInt)),
		Kind:      Kind(o.String("kind", true)),
		Timestamp: o.Int("timestamp", true, 0, cjson.MaxSafeInt),
	}
	c := o.Bytes("commitment", true, 32, 32)
	if err := o.Done(false); err != nil {
		return nil, malformed(op, "leaf: "+err.Error())
	}
	copy(l.Commitment[:], c)
	if l.Kind != KindKey && l.Kind != KindDelete {
		return nil, malformed(op, "leaf: unknown kind")
	}
	if _, err := privateline.ParseServerName(string(l.Server)); err != nil {
		return nil, malformed(op, "leaf: invalid server name")
	}
	return l, nil
}

func malformed(op, msg string) error { return keybundle.Refuse(op, keybundle.ErrMalformed, msg) }

// KeyCommitment is a key entry's commitment to bundle b under salt.
func KeyCommitment(salt []byte, b *keybundle.KeyBundle) [32]byte {
	m := hmac.New(sha256.New, salt)
	m.Write(domain(LabelKeyCommitment))
	m.Write(b.JSON())
	var c [32]byte
	m.Sum(c[:0])
	return c
}

// DeleteCommitment is a deletion entry's commitment to the deleted
// address and the hash of its last bundle, under salt.
func DeleteCommitment(salt []byte, address privateline.Address, lastBundle [32]byte) [32]byte {
	m := hmac.New(sha256.New, salt)
	m.Write(domain(LabelDeleteCommitment))
	m.Write([]byte(address))
	m.Write([]byte{0})
	m.Write(lastBundle[:])
	var c [32]byte
	m.Sum(c[:0])
	return c
}

// Entry is the directory's signed entry for one bundle, as a lookup
// returns it: {"leaf": {...}, "salt": b64(32), "signature": b64(64)}.
type Entry struct {
	Leaf      Leaf
	Salt      []byte
	Signature []byte
}

// MarshalJSON writes the entry's wire form.
func (e *Entry) MarshalJSON() ([]byte, error) {
	return cjson.Marshal(e.object())
}

func (e *Entry) object() map[string]any {
	return map[string]any{
		"leaf":      e.Leaf.object(),
		"salt":      b64.EncodeToString(e.Salt),
		"signature": b64.EncodeToString(e.Signature),
	}
}

func entryFrom(v any) (*Entry, error) {
	const op = "keylog.ParseEntry"
	o := cjson.NewObject(v)
	lv := o.Object("leaf", true)
	salt := o.Bytes("salt", true, SaltSize, SaltSize)
	sig := o.Bytes("signature", true, ed25519.SignatureSize, ed25519.SignatureSize)
	if err := o.Done(false); err != nil {
		return nil, malformed(op, "entry: "+err.Error())
	}
	l, err := leafFrom(lv)
	if err != nil {
		return nil, err
	}
	return &Entry{Leaf: *l, Salt: salt, Signature: sig}, nil
}

// VerifyEntry checks an entry on its own (a cached or relayed one needs no
// tree head): that it is a key entry of server for bundle b, and that the
// directory's key signed it.
func VerifyEntry(serverKey ed25519.PublicKey, server privateline.ServerName, b *keybundle.KeyBundle, e *Entry) error {
	const op = "keylog.VerifyEntry"
	want := KeyCommitment(e.Salt, b)
	switch {
	case e.Leaf.Server != server:
		return keybundle.Refuse(op, keybundle.ErrBadProof, fmt.Sprintf("the entry is from %q, not %q", e.Leaf.Server, server))
	case e.Leaf.Kind != KindKey:
		return keybundle.Refuse(op, keybundle.ErrBadProof, "the entry is not a key entry")
	case !hmac.Equal(e.Leaf.Commitment[:], want[:]):
		return keybundle.Refuse(op, keybundle.ErrBadProof, "the entry does not commit to this key bundle")
	case len(serverKey) != ed25519.PublicKeySize || !ed25519.Verify(serverKey, e.Leaf.SigningInput(), e.Signature):
		return keybundle.Refuse(op, keybundle.ErrBadSignature, "the directory's signature on the entry is invalid")
	}
	return nil
}
