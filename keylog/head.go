package keylog

import (
	"crypto/ed25519"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/cjson"
	"github.com/privateline/privateline/keybundle"
	"github.com/privateline/privateline/merkle"
)

// TreeHead is a signed tree head: the directory's statement that its log
// had TreeSize entries with root RootHash at Timestamp.
type TreeHead struct {
	Server    privateline.ServerName
	TreeSize  uint64
	RootHash  merkle.Hash
	Timestamp int64 // Unix milliseconds
	Signature []byte
}

func (h *TreeHead) unsigned() map[string]any {
	return map[string]any{
		"root_hash": b64.EncodeToString(h.RootHash[:]),
		"server":    string(h.Server),
		"timestamp": h.Timestamp,
		"tree_size": int64(h.TreeSize),
	}
}

// SigningInput returns the bytes the directory signs:
// "privateline/v1/tree-head" ‖ 0x00 ‖ canonical
// {"root_hash", "server", "timestamp", "tree_size"}.
func (h *TreeHead) SigningInput() []byte {
	c, err := cjson.Marshal(h.unsigned())
	if err != nil {
		panic(err) // bounded integers and ASCII strings only
	}
	return append(domain(LabelTreeHead), c...)
}

// Verify checks the head's signature under the directory's key.
func (h *TreeHead) Verify(serverKey ed25519.PublicKey) error {
	if len(serverKey) != ed25519.PublicKeySize || !ed25519.Verify(serverKey, h.SigningInput(), h.Signature) {
		return keybundle.Refuse("keylog.TreeHead.Verify", keybundle.ErrBadSignature, "the tree head's signature is invalid")
	}
	return nil
}

func (h *TreeHead) object() map[string]any {
	m := h.unsigned()
	m["signature"] = b64.EncodeToString(h.Signature)
	return m
}

// MarshalJSON writes {"root_hash", "server", "signature", "timestamp", "tree_size"}.
func (h *TreeHead) MarshalJSON() ([]byte, error) { return cjson.Marshal(h.object()) }

// ParseTreeHead reads a tree head from its JSON; it does not verify it.
func ParseTreeHead(data []byte) (*TreeHead, error) {
	v, err := cjson.Parse(data)
	if err != nil {
		return nil, malformed("keylog.ParseTreeHead", "tree head: "+err.Error())
	}
	return headFrom(v)
}

func headFrom(v any) (*TreeHead, error) {
	const op = "keylog.ParseTreeHead"
	o := cjson.NewObject(v)
	h := &TreeHead{
		Server:    privateline.ServerName(o.String("server", true)),
		TreeSize:  uint64(o.Int("tree_size", true, 0, cjson.MaxSafeInt)),
		Timestamp: o.Int("timestamp", true, 0, cjson.MaxSafeInt),
	}
	root := o.Bytes("root_hash", true, merkle.HashSize, merkle.HashSize)
	h.Signature = o.Bytes("signature", true, ed25519.SignatureSize, ed25519.SignatureSize)
	if err := o.Done(false); err != nil {
		return nil, malformed(op, "tree head: "+err.Error())
	}
	copy(h.RootHash[:], root)
	if _, err := privateline.ParseServerName(string(h.Server)); err != nil {
		return nil, malformed(op, "tree head: invalid server name")
	}
	return h, nil
}
