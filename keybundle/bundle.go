package keybundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/cjson"
)

// Bundle format constants (spec/e2ee.md §6.1, §11).
const (
	// Version is the "version" of the bundles this package reads.
	Version = 1
	// MaxSize caps a bundle's serialized size.
	MaxSize = 16 << 10
)

// Signature labels (spec/e2ee.md §3): the signed bytes start label ‖ 0x00.
const (
	LabelKeyBundle = "privateline/v1/key-bundle"
	LabelKeyChange = "privateline/v1/key-change"
)

// KeyBundle is an account's public key bundle. A *KeyBundle exists only
// after its self-signature, key sizes and address have been checked.
type KeyBundle struct {
	Address    privateline.Address
	Identity   IdentityKey
	Encryption *EncryptionKey
	CreatedAt  time.Time // millisecond precision, UTC
	Version    int

	json []byte // canonical signed form
}

var b64 = base64.StdEncoding

func body(address privateline.Address, id IdentityKey, enc *EncryptionKey, createdAt int64) map[string]any {
	return map[string]any{
		"address":        string(address),
		"created_at":     createdAt,
		"encryption_key": b64.EncodeToString(enc.spki),
		"identity_key":   b64.EncodeToString(id[:]),
		"version":        int64(Version),
	}
}

func domain(label string) []byte { return append([]byte(label), 0) }

// SigningInput returns the bytes a bundle's identity key signs:
// "privateline/v1/key-bundle" ‖ 0x00 ‖ canonical JSON of the bundle
// without "signature". createdAt is in Unix milliseconds.
func SigningInput(address privateline.Address, id IdentityKey, enc *EncryptionKey, createdAt int64) ([]byte, error) {
	c, err := cjson.Marshal(body(address, id, enc, createdAt))
	if err != nil {
		return nil, privateline.E("keybundle.SigningInput", privateline.Invalid, err)
	}
	return append(domain(LabelKeyBundle), c...), nil
}

// Assemble builds a bundle from its parts and the identity key's signature
// over SigningInput, and verifies it as Parse does.
func Assemble(address privateline.Address, id IdentityKey, enc *EncryptionKey, createdAt int64, sig []byte) (*KeyBundle, error) {
	b := body(address, id, enc, createdAt)
	b["signature"] = b64.EncodeToString(sig)
	js, err := cjson.Marshal(b)
	if err != nil {
		return nil, privateline.E("keybundle.Assemble", privateline.Invalid, err)
	}
	return Parse(js)
}

// Parse decodes a bundle and verifies its self-signature. The signature
// covers the canonical form of the parsed value, so a bundle that was
// re-serialized (whitespace, member order) still verifies. It refuses
// (spec/e2ee.md §6.1, §12.4) a bundle over MaxSize (too_large), one that is
// not canonical-JSON-compatible or has missing, unknown or mistyped members
// or an invalid address (malformed), another version (unknown_suite), an
// encryption key that is not RSA-4096/65537 in canonical DER (bad_key), and
// a signature that does not verify (bad_signature).
func Parse(data []byte) (*KeyBundle, error) {
	const op = "keybundle.Parse"
	if len(data) > MaxSize {
		return nil, Refuse(op, ErrTooLarge, "key bundle is too large")
	}
	o := cjson.ParseObject(data)
	addr := o.String("address", true)
	created := o.Int("created_at", true, 0, cjson.MaxSafeInt)
	spki := o.Bytes("encryption_key", true, 1, 4096)
	idb := o.Bytes("identity_key", true, 32, 32)
	sig := o.Bytes("signature", true, SignatureSize, SignatureSize)
	ver := o.Int("version", true, 1, cjson.MaxSafeInt)
	if err := o.Done(false); err != nil {
		return nil, privateline.E(op, ErrMalformed.Kind(), "key bundle: "+err.Error(), ErrMalformed)
	}
	if ver != Version {
		return nil, Refuse(op, ErrUnknownSuite, "unsupported key bundle version")
	}
	if _, _, err := privateline.Address(addr).Split(); err != nil {
		return nil, Refuse(op, ErrMalformed, "key bundle address is invalid")
	}
	enc, err := ParseEncryptionKey(spki)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	var id IdentityKey
	copy(id[:], idb)
	msg, err := SigningInput(privateline.Address(addr), id, enc, created)
	if err != nil {
		return nil, Refuse(op, ErrMalformed, "key bundle is not canonical JSON")
	}
	if !id.Verify(msg, sig) {
		return nil, Refuse(op, ErrBadSignature, "key bundle signature is invalid")
	}
	b := body(privateline.Address(addr), id, enc, created)
	b["signature"] = b64.EncodeToString(sig)
	js, _ := cjson.Marshal(b)
	return &KeyBundle{
		Address:    privateline.Address(addr),
		Identity:   id,
		Encryption: enc,
		CreatedAt:  time.UnixMilli(created).UTC(),
		Version:    int(ver),
		json:       js,
	}, nil
}

// JSON returns the bundle's canonical JSON, as uploaded in "key_bundle".
func (b *KeyBundle) JSON() []byte { return bytes.Clone(b.json) }

// MarshalJSON makes a bundle embed as its signed JSON object.
func (b *KeyBundle) MarshalJSON() ([]byte, error) { return b.JSON(), nil }

// Hash returns SHA-256 of the bundle's canonical JSON.
func (b *KeyBundle) Hash() [32]byte { return sha256.Sum256(b.json) }

// Equal reports whether two bundles are the same signed bundle.
func (b *KeyBundle) Equal(o *KeyBundle) bool { return bytes.Equal(b.json, o.json) }

// CreatedAtMillis returns created_at as on the wire, Unix milliseconds.
func (b *KeyBundle) CreatedAtMillis() int64 { return b.CreatedAt.UnixMilli() }
