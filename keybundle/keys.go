package keybundle

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"math/big"
)

// Key sizes of suite pl1 (spec/e2ee.md §5.1).
const (
	RSABits       = 4096
	RSAExponent   = 65537
	SignatureSize = ed25519.SignatureSize
)

// IdentityKey is an account's Ed25519 public key, 32 raw bytes (RFC 8032).
type IdentityKey [ed25519.PublicKeySize]byte

// Equal compares two identity keys in constant time.
func (k IdentityKey) Equal(o IdentityKey) bool { return subtle.ConstantTimeCompare(k[:], o[:]) == 1 }

// Verify reports whether sig is k's Ed25519 signature of msg.
func (k IdentityKey) Verify(msg, sig []byte) bool {
	return len(sig) == SignatureSize && ed25519.Verify(ed25519.PublicKey(k[:]), msg, sig)
}

// EncryptionKey is an account's RSA-OAEP-4096 public key with its SPKI DER
// encoding and key id.
type EncryptionKey struct {
	pub  *rsa.PublicKey
	spki []byte
	id   string
}

// ParseEncryptionKey accepts the DER SubjectPublicKeyInfo of an RSA key
// with a 4096-bit modulus and exponent 65537, in its unique DER form.
func ParseEncryptionKey(spki []byte) (*EncryptionKey, error) {
	const op = "keybundle.ParseEncryptionKey"
	k, err := x509.ParsePKIXPublicKey(spki)
	if err != nil {
		return nil, Refuse(op, ErrBadKey, "encryption key is not an RSA SPKI")
	}
	pub, ok := k.(*rsa.PublicKey)
	if !ok || pub.N.BitLen() != RSABits || pub.E != RSAExponent {
		return nil, Refuse(op, ErrBadKey, "encryption key must be RSA-4096 with e=65537")
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil || !bytes.Equal(der, spki) {
		return nil, Refuse(op, ErrBadKey, "encryption key SPKI is not in canonical DER")
	}
	return &EncryptionKey{pub: pub, spki: bytes.Clone(spki), id: KeyID(spki)}, nil
}

// KeyID returns the key id of an SPKI DER: lower-case hex of the first 16
// bytes of its SHA-256 (spec/e2ee.md §5.2).
func KeyID(spki []byte) string {
	h := sha256.Sum256(spki)
	return hex.EncodeToString(h[:16])
}

// SPKI returns the key's DER SubjectPublicKeyInfo.
func (k *EncryptionKey) SPKI() []byte { return bytes.Clone(k.spki) }

// ID returns the key id.
func (k *EncryptionKey) ID() string { return k.id }

// PublicKey returns a copy of the RSA public key, for encrypting to it.
func (k *EncryptionKey) PublicKey() *rsa.PublicKey {
	return &rsa.PublicKey{N: new(big.Int).Set(k.pub.N), E: k.pub.E}
}
