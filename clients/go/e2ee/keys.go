package e2ee

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/keybundle"
)

// IdentityKey is an account's Ed25519 public key, 32 raw bytes (RFC 8032).
type IdentityKey = keybundle.IdentityKey

// EncryptionKey is an account's RSA-OAEP-4096 public key with its SPKI DER
// encoding and key id.
type EncryptionKey = keybundle.EncryptionKey

// ParseEncryptionKey accepts the DER SubjectPublicKeyInfo of an RSA key
// with a 4096-bit modulus and exponent 65537, in its unique DER form.
func ParseEncryptionKey(spki []byte) (*EncryptionKey, error) {
	return keybundle.ParseEncryptionKey(spki)
}

// KeyID returns the key id of an SPKI DER: lower-case hex of the first 16
// bytes of its SHA-256.
func KeyID(spki []byte) string { return keybundle.KeyID(spki) }

// wrapKey encrypts a 32-byte key to k with RSA-OAEP-SHA256 under an OAEP
// label.
func wrapKey(k *EncryptionKey, r io.Reader, key []byte, label string) ([]byte, error) {
	ct, err := rsa.EncryptOAEP(sha256.New(), randOrDefault(r), k.PublicKey(), key, []byte(label))
	if err != nil {
		return nil, privateline.E("e2ee.wrap", privateline.Internal, err)
	}
	return ct, nil
}

// PrivateKeys are an account's private keys: the Ed25519 identity key and
// the RSA-OAEP-4096 encryption key, bound to the account's address. They
// never print: every formatting, logging and marshalling path shows
// "[REDACTED]", and no method returns the private material.
type PrivateKeys struct {
	address    privateline.Address
	identity   ed25519.PrivateKey
	encryption *rsa.PrivateKey
	pub        IdentityKey
	enc        *EncryptionKey
}

const redactedKeys = "e2ee.PrivateKeys{[REDACTED]}"

func (PrivateKeys) String() string                  { return redactedKeys }
func (PrivateKeys) GoString() string                { return redactedKeys }
func (PrivateKeys) Format(f fmt.State, _ rune)      { io.WriteString(f, redactedKeys) }
func (PrivateKeys) LogValue() slog.Value            { return slog.StringValue(redactedKeys) }
func (PrivateKeys) MarshalJSON() ([]byte, error)    { return []byte(`"[REDACTED]"`), nil }
func (PrivateKeys) MarshalText() ([]byte, error)    { return []byte("[REDACTED]"), nil }
func (k *PrivateKeys) Address() privateline.Address { return k.address }

// IdentityKey returns the public identity key.
func (k *PrivateKeys) IdentityKey() IdentityKey { return k.pub }

// EncryptionKey returns the public encryption key.
func (k *PrivateKeys) EncryptionKey() *EncryptionKey { return k.enc }

func (k *PrivateKeys) sign(msg []byte) []byte { return ed25519.Sign(k.identity, msg) }

func (k *PrivateKeys) unwrap(ct []byte, label string) ([]byte, error) {
	return rsa.DecryptOAEP(sha256.New(), nil, k.encryption, ct, []byte(label))
}

// GenerateKeys makes a fresh identity and encryption key pair for address.
// RSA-4096 generation takes a second or more. Since Go 1.26 the RSA key
// always comes from the system's secure random source.
func GenerateKeys(address privateline.Address) (*PrivateKeys, error) {
	const op = "e2ee.GenerateKeys"
	if !validAddress(string(address)) {
		return nil, refuse(op, ErrMalformed, "invalid address")
	}
	_, id, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, privateline.E(op, privateline.Internal, err)
	}
	rk, err := rsa.GenerateKey(nil, RSABits)
	if err != nil {
		return nil, privateline.E(op, privateline.Internal, err)
	}
	return newPrivateKeys(address, id.Seed(), rk)
}

// NewPrivateKeys builds an account's keys from an Ed25519 seed and an RSA
// private key in PKCS #8 DER; cmd/plvectors uses it for fixed test keys.
func NewPrivateKeys(address privateline.Address, ed25519Seed, rsaPKCS8 []byte) (*PrivateKeys, error) {
	const op = "e2ee.NewPrivateKeys"
	if !validAddress(string(address)) {
		return nil, refuse(op, ErrMalformed, "invalid address")
	}
	if len(ed25519Seed) != ed25519.SeedSize {
		return nil, refuse(op, ErrBadKey, "identity seed must be 32 bytes")
	}
	rk, err := parseRSAPrivate(rsaPKCS8)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	return newPrivateKeys(address, ed25519Seed, rk)
}

func newPrivateKeys(address privateline.Address, seed []byte, rk *rsa.PrivateKey) (*PrivateKeys, error) {
	id := ed25519.NewKeyFromSeed(seed)
	spki, err := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	if err != nil {
		return nil, privateline.E("e2ee.newPrivateKeys", privateline.Internal, err)
	}
	enc, err := keybundle.ParseEncryptionKey(spki)
	if err != nil {
		return nil, privateline.E("e2ee.newPrivateKeys", err)
	}
	k := &PrivateKeys{address: address, identity: id, encryption: rk, enc: enc}
	copy(k.pub[:], id.Public().(ed25519.PublicKey))
	return k, nil
}

// Ed25519 private keys travel as the 48-byte PKCS #8 v1 structure of
// RFC 8410 §7: this fixed prefix followed by the 32-byte seed.
var ed25519PKCS8Prefix = []byte{0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20}

func ed25519PKCS8(seed []byte) []byte { return concat(ed25519PKCS8Prefix, seed) }

func ed25519SeedFromPKCS8(der []byte) ([]byte, bool) {
	if len(der) != len(ed25519PKCS8Prefix)+ed25519.SeedSize || !bytes.HasPrefix(der, ed25519PKCS8Prefix) {
		return nil, false
	}
	return der[len(ed25519PKCS8Prefix):], true
}

func parseRSAPrivate(der []byte) (*rsa.PrivateKey, error) {
	const op = "e2ee.parseRSAPrivate"
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, refuse(op, ErrBadKey, "encryption private key is not an RSA PKCS #8")
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok || rk.N.BitLen() != RSABits || rk.E != RSAExponent {
		return nil, refuse(op, ErrBadKey, "encryption private key must be RSA-4096 with e=65537")
	}
	return rk, nil
}

// CheckPinned compares a contact's current identity key with the one the
// client pinned on first use and refuses a change (spec/e2ee.md §10).
func CheckPinned(pinned IdentityKey, b *KeyBundle) error {
	if !pinned.Equal(b.Identity) {
		return refuse("e2ee.CheckPinned", ErrKeyChanged, "the contact's identity key changed; verify it before trusting it")
	}
	return nil
}
