package e2ee

import (
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/keybundle"
)

// KeyBundle is an account's public key bundle (spec/e2ee.md §6):
//
//	{"address", "created_at", "encryption_key", "identity_key", "signature", "version"}
//
// signed by its own identity key over "privateline/v1/key-bundle" ‖ 0x00 ‖
// canonical JSON of the bundle without "signature". A *KeyBundle exists only
// after its signature has been checked. Parsing and verification live in
// the shared package keybundle, so the homeserver checks bundles by the
// same code; signing lives here, with the private keys.
type KeyBundle = keybundle.KeyBundle

// BundleVersion is the "version" of bundles this package makes and reads.
const BundleVersion = keybundle.Version

// NewKeyBundle makes and signs the bundle of keys, created at createdAt.
func NewKeyBundle(keys *PrivateKeys, createdAt time.Time) (*KeyBundle, error) {
	const op = "e2ee.NewKeyBundle"
	ms := Millis(createdAt)
	msg, err := keybundle.SigningInput(keys.address, keys.pub, keys.enc, ms)
	if err != nil {
		return nil, privateline.E(op, privateline.Internal, err)
	}
	b, err := keybundle.Assemble(keys.address, keys.pub, keys.enc, ms, keys.sign(msg))
	if err != nil {
		return nil, privateline.E(op, err)
	}
	return b, nil
}

// ParseKeyBundle decodes a bundle and verifies its self-signature, key
// sizes and address (keybundle.Parse). The signature covers the canonical
// form of the parsed value, so a bundle that was re-serialized
// (whitespace, member order) still verifies.
func ParseKeyBundle(data []byte) (*KeyBundle, error) { return keybundle.Parse(data) }

// Matches reports whether keys are the private halves of bundle b.
func (k *PrivateKeys) Matches(b *KeyBundle) bool {
	return k.address == b.Address && k.pub.Equal(b.Identity) && k.enc.ID() == b.Encryption.ID()
}

// SignKeyChange is the account's current identity key handing over to a
// new bundle (spec/e2ee.md §6.3): keys must be the private halves of old,
// and next must be a later bundle of the same address. The result goes
// with next to PUT /api/keys as "old_key_signature".
func SignKeyChange(keys *PrivateKeys, old, next *KeyBundle) ([]byte, error) {
	const op = "e2ee.SignKeyChange"
	if !keys.Matches(old) {
		return nil, refuse(op, ErrKeyChanged, "the keys are not those of the bundle being replaced")
	}
	if err := keybundle.CheckSuccessor(old, next); err != nil {
		return nil, privateline.E(op, err)
	}
	return keys.sign(keybundle.KeyChangeInput(old, next)), nil
}
