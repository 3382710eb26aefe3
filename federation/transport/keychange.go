package transport

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/cjson"
)

// KeyChangeLabel is the domain label of a key-change statement's signing
// input (spec/federation.md §2.2, §3).
const KeyChangeLabel = "privateline/v1/federation-key-change"

// KeyChange is a statement by a homeserver that its identity key changed:
// NewKey replaces OldKey for Server, signed by OldKey (see the package doc
// for the bytes).
type KeyChange struct {
	Server    privateline.ServerName
	CreatedAt time.Time // when the statement was made; millisecond precision
	OldKey    ed25519.PublicKey
	NewKey    ed25519.PublicKey
	Signature []byte
}

// Signer signs with a server's identity key (*serverkey.PrivateKey).
type Signer interface {
	Public() ed25519.PublicKey
	Sign(msg []byte) []byte
}

var std64 = base64.StdEncoding

// members are the statement's JSON members without the signature.
func (c KeyChange) members() map[string]any {
	return map[string]any{
		"created_at": c.CreatedAt.UnixMilli(),
		"new_key":    std64.EncodeToString(c.NewKey),
		"old_key":    std64.EncodeToString(c.OldKey),
		"server":     string(c.Server),
	}
}

func mustMarshal(m map[string]any) []byte {
	b, err := cjson.Marshal(m)
	if err != nil { // strings and an integer: cannot happen
		panic(err)
	}
	return b
}

// SigningInput returns UTF-8(KeyChangeLabel) ‖ 0x00 ‖ canonical JSON of
// {"created_at": ms, "new_key": b64, "old_key": b64, "server": name}.
func (c KeyChange) SigningInput() []byte {
	return append(append([]byte(KeyChangeLabel), 0), mustMarshal(c.members())...)
}

// NewKeyChange makes the statement that newKey replaces old's key for
// server, signed by old.
func NewKeyChange(server privateline.ServerName, old Signer, newKey ed25519.PublicKey) (KeyChange, error) {
	c := KeyChange{Server: server, CreatedAt: time.UnixMilli(time.Now().UnixMilli()), OldKey: old.Public(), NewKey: append(ed25519.PublicKey(nil), newKey...)}
	if err := c.checkShape(); err != nil {
		return KeyChange{}, err
	}
	c.Signature = old.Sign(c.SigningInput())
	return c, nil
}

func (c KeyChange) checkShape() error {
	if _, err := privateline.ParseServerName(string(c.Server)); err != nil {
		return fmt.Errorf("key change: %w", err)
	}
	if len(c.OldKey) != ed25519.PublicKeySize || len(c.NewKey) != ed25519.PublicKeySize {
		return errors.New("key change: keys must be 32-byte Ed25519 public keys")
	}
	if ms := c.CreatedAt.UnixMilli(); ms < 0 || ms > cjson.MaxSafeInt {
		return errors.New("key change: created_at is out of range")
	}
	if bytes.Equal(c.OldKey, c.NewKey) {
		return errors.New("key change: the new key equals the old key")
	}
	return nil
}

// Verify checks the statement's shape and that OldKey signed it.
func (c KeyChange) Verify() error {
	if err := c.checkShape(); err != nil {
		return err
	}
	if len(c.Signature) != ed25519.SignatureSize || !ed25519.Verify(c.OldKey, c.SigningInput(), c.Signature) {
		return errors.New("key change: the old key's signature does not verify")
	}
	return nil
}

// Marshal returns the statement's canonical JSON: {"created_at", "new_key",
// "old_key", "server", "signature"}, keys and signature in standard base64.
func (c KeyChange) Marshal() []byte {
	m := c.members()
	m["signature"] = std64.EncodeToString(c.Signature)
	return mustMarshal(m)
}

// ParseKeyChange reads a statement written by Marshal: canonical JSON, no
// other members. It does not verify the signature (Verify does).
func ParseKeyChange(data []byte) (KeyChange, error) {
	if err := cjson.Check(data); err != nil {
		return KeyChange{}, fmt.Errorf("key change: %w", err)
	}
	o := cjson.ParseObject(data)
	c := KeyChange{
		Server:    privateline.ServerName(o.String("server", true)),
		CreatedAt: time.UnixMilli(o.Int("created_at", true, 0, cjson.MaxSafeInt)),
		OldKey:    o.Bytes("old_key", true, ed25519.PublicKeySize, ed25519.PublicKeySize),
		NewKey:    o.Bytes("new_key", true, ed25519.PublicKeySize, ed25519.PublicKeySize),
		Signature: o.Bytes("signature", true, ed25519.SignatureSize, ed25519.SignatureSize),
	}
	if err := o.Done(false); err != nil {
		return KeyChange{}, fmt.Errorf("key change: %w", err)
	}
	return c, c.checkShape()
}
