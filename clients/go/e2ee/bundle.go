package e2ee

import (
	"bytes"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/cjson"
)

// KeyBundle is an account's public key bundle (spec/e2ee.md §6):
//
//	{"address", "created_at", "encryption_key", "identity_key", "signature", "version"}
//
// signed by its own identity key over "privateline/v1/key-bundle" ‖ 0x00 ‖
// canonical JSON of the bundle without "signature". A *KeyBundle exists only
// after its signature has been checked.
type KeyBundle struct {
	Address    privateline.Address
	Identity   IdentityKey
	Encryption *EncryptionKey
	CreatedAt  time.Time // millisecond precision
	Version    int

	json []byte // canonical signed form
}

// BundleVersion is the "version" of bundles this package makes and reads.
const BundleVersion = 1

func bundleBody(address privateline.Address, id IdentityKey, enc *EncryptionKey, createdAt int64) map[string]any {
	return map[string]any{
		"address":        string(address),
		"created_at":     createdAt,
		"encryption_key": encodeB64(enc.spki),
		"identity_key":   encodeB64(id[:]),
		"version":        int64(BundleVersion),
	}
}

// NewKeyBundle makes and signs the bundle of keys, created at createdAt.
func NewKeyBundle(keys *PrivateKeys, createdAt time.Time) (*KeyBundle, error) {
	const op = "e2ee.NewKeyBundle"
	body := bundleBody(keys.address, keys.pub, keys.enc, Millis(createdAt))
	c, err := cjson.Marshal(body)
	if err != nil {
		return nil, privateline.E(op, privateline.Internal, err)
	}
	body["signature"] = encodeB64(keys.sign(concat(domain(labelKeyBundle), c)))
	js, err := cjson.Marshal(body)
	if err != nil {
		return nil, privateline.E(op, privateline.Internal, err)
	}
	return ParseKeyBundle(js)
}

// JSON returns the bundle's canonical JSON, as uploaded in "key_bundle".
func (b *KeyBundle) JSON() []byte { return bytes.Clone(b.json) }

// MarshalJSON makes a bundle embed as its signed JSON object.
func (b *KeyBundle) MarshalJSON() ([]byte, error) { return b.JSON(), nil }

// ParseKeyBundle decodes a bundle and verifies its self-signature. The
// signature covers the canonical form of the parsed value, so a bundle
// that was re-serialized (whitespace, member order) still verifies.
func ParseKeyBundle(data []byte) (*KeyBundle, error) {
	const op = "e2ee.ParseKeyBundle"
	if len(data) > MaxKeyBundle {
		return nil, refuse(op, ErrTooLarge, "key bundle is too large")
	}
	f := parseFields(data)
	addr := f.str("address", true)
	created := f.integer("created_at", true, 0, cjson.MaxSafeInt)
	spki := f.bytes("encryption_key", true, 1, 4096)
	idb := f.bytes("identity_key", true, 32, 32)
	sig := f.bytes("signature", true, SignatureSize, SignatureSize)
	ver := f.integer("version", true, 1, cjson.MaxSafeInt)
	if err := f.done(false); err != nil {
		return nil, privateline.E(op, reasonKind[ErrMalformed], "key bundle: "+err.Error(), ErrMalformed)
	}
	if ver != BundleVersion {
		return nil, refuse(op, ErrUnknownSuite, "unsupported key bundle version")
	}
	if !validAddress(addr) {
		return nil, refuse(op, ErrMalformed, "key bundle address is invalid")
	}
	enc, err := ParseEncryptionKey(spki)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	var id IdentityKey
	copy(id[:], idb)
	body := bundleBody(privateline.Address(addr), id, enc, created)
	c, _ := cjson.Marshal(body)
	if !id.verify(concat(domain(labelKeyBundle), c), sig) {
		return nil, refuse(op, ErrBadSignature, "key bundle signature is invalid")
	}
	body["signature"] = encodeB64(sig)
	js, _ := cjson.Marshal(body)
	return &KeyBundle{
		Address:    privateline.Address(addr),
		Identity:   id,
		Encryption: enc,
		CreatedAt:  fromMillis(created),
		Version:    int(ver),
		json:       js,
	}, nil
}

// Matches reports whether keys are the private halves of bundle b.
func (k *PrivateKeys) Matches(b *KeyBundle) bool {
	return k.address == b.Address && k.pub.Equal(b.Identity) && k.enc.id == b.Encryption.id
}
