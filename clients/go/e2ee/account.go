package e2ee

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/privateline/privateline"
)

// KEK is the key-encryption key derived from the password. It never leaves
// the client and never prints.
type KEK struct{ k []byte }

const redactedKEK = "e2ee.KEK{[REDACTED]}"

func (KEK) String() string               { return redactedKEK }
func (KEK) GoString() string             { return redactedKEK }
func (KEK) Format(f fmt.State, _ rune)   { io.WriteString(f, redactedKEK) }
func (KEK) LogValue() slog.Value         { return slog.StringValue(redactedKEK) }
func (KEK) MarshalJSON() ([]byte, error) { return []byte(`"[REDACTED]"`), nil }
func (KEK) MarshalText() ([]byte, error) { return []byte("[REDACTED]"), nil }

// PasswordKeys are what a password yields: the auth key sent to the server
// at registration and login, and the KEK that wraps the private keys.
type PasswordKeys struct {
	AuthKey privateline.Secret
	KEK     *KEK
}

// DerivePasswordKeys runs spec/e2ee.md §4: the password is normalized to
// Unicode NFC and encoded as UTF-8, master = PBKDF2-HMAC-SHA256(password,
// salt, iterations, 32), auth_key = HKDF-SHA256(master, salt "", info
// "privateline/v1/auth", 32) and kek = HKDF-SHA256(master, salt "", info
// "privateline/v1/key-wrap", 32). kdf must be "pbkdf2-sha256" and
// iterations at least 600,000, so a server cannot talk a client down.
func DerivePasswordKeys(password string, kdf string, iterations int, salt []byte) (*PasswordKeys, error) {
	const op = "e2ee.DerivePasswordKeys"
	switch {
	case kdf != KDFName:
		return nil, refuse(op, ErrWeakKDF, "unsupported password KDF")
	case iterations < Iterations || iterations > 100*Iterations:
		return nil, refuse(op, ErrWeakKDF, "PBKDF2 iteration count out of range")
	case len(salt) != SaltSize:
		return nil, refuse(op, ErrMalformed, "salt must be 16 bytes")
	case password == "" || !utf8.ValidString(password):
		return nil, refuse(op, ErrMalformed, "password must be non-empty valid UTF-8")
	}
	master, err := pbkdf2.Key(sha256.New, norm.NFC.String(password), salt, iterations, KeySize)
	if err != nil {
		return nil, privateline.E(op, privateline.Internal, err)
	}
	auth, err := hkdf.Key(sha256.New, master, nil, labelAuth, KeySize)
	if err != nil {
		return nil, privateline.E(op, privateline.Internal, err)
	}
	kek, err := hkdf.Key(sha256.New, master, nil, labelKeyWrap, KeySize)
	if err != nil {
		return nil, privateline.E(op, privateline.Internal, err)
	}
	clear(master)
	return &PasswordKeys{AuthKey: auth, KEK: &KEK{kek}}, nil
}

// WrappedKeys is what the server stores for an account: the AES-256-GCM
// nonce and ciphertext of the private keys (registration fields "nonce"
// and "encrypted_private_key").
type WrappedKeys struct {
	Nonce      []byte
	Ciphertext []byte
}

func newGCM(key []byte) cipher.AEAD {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // keys are always 32 bytes here
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		panic(err)
	}
	return g
}

// privateKeysAAD is "privateline/v1/private-keys" ‖ 0x00 ‖ address.
func privateKeysAAD(a privateline.Address) []byte {
	return concat(domain(labelPrivateKeys), []byte(a))
}

// WrapPrivateKeys encrypts keys under kek (spec/e2ee.md §5). The plaintext
// is 0x01 ‖ u16be(48) ‖ Ed25519 PKCS #8 ‖ u16be(n) ‖ RSA PKCS #8 (n bytes).
// r supplies the nonce; nil means crypto/rand (pass non-nil only to make
// test vectors).
func WrapPrivateKeys(r io.Reader, kek *KEK, keys *PrivateKeys) (*WrappedKeys, error) {
	const op = "e2ee.WrapPrivateKeys"
	rsaDER, err := x509.MarshalPKCS8PrivateKey(keys.encryption)
	if err != nil {
		return nil, privateline.E(op, privateline.Internal, err)
	}
	edDER := ed25519PKCS8(keys.identity.Seed())
	pt := []byte{1}
	pt = binary.BigEndian.AppendUint16(pt, uint16(len(edDER)))
	pt = append(pt, edDER...)
	pt = binary.BigEndian.AppendUint16(pt, uint16(len(rsaDER)))
	pt = append(pt, rsaDER...)
	nonce, err := readRand(r, NonceSize)
	if err != nil {
		return nil, err
	}
	ct := newGCM(kek.k).Seal(nil, nonce, pt, privateKeysAAD(keys.address))
	clear(pt)
	clear(rsaDER)
	return &WrappedKeys{Nonce: nonce, Ciphertext: ct}, nil
}

// UnwrapPrivateKeys decrypts the keys of the account at address. A wrong
// password shows up here as ErrWrongPasswordOrKey.
func UnwrapPrivateKeys(kek *KEK, address privateline.Address, w *WrappedKeys) (*PrivateKeys, error) {
	const op = "e2ee.UnwrapPrivateKeys"
	if len(w.Nonce) != NonceSize || len(w.Ciphertext) > MaxWrappedKeys {
		return nil, refuse(op, ErrMalformed, "wrapped keys have the wrong size")
	}
	pt, err := newGCM(kek.k).Open(nil, w.Nonce, w.Ciphertext, privateKeysAAD(address))
	if err != nil {
		return nil, refuse(op, ErrWrongPasswordOrKey, "cannot unwrap the private keys (wrong password?)")
	}
	defer clear(pt)
	edDER, rest, ok := splitWrapped(pt)
	if !ok {
		return nil, refuse(op, ErrMalformed, "wrapped key layout is invalid")
	}
	seed, ok := ed25519SeedFromPKCS8(edDER)
	if !ok {
		return nil, refuse(op, ErrBadKey, "identity key is not an Ed25519 PKCS #8 of 48 bytes")
	}
	rk, err := parseRSAPrivate(rest)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	return newPrivateKeys(address, seed, rk)
}

func splitWrapped(pt []byte) (ed, rsaDER []byte, ok bool) {
	if len(pt) < 3 || pt[0] != 1 {
		return nil, nil, false
	}
	n := int(binary.BigEndian.Uint16(pt[1:3]))
	if len(pt) < 3+n+2 {
		return nil, nil, false
	}
	ed = pt[3 : 3+n]
	rest := pt[3+n:]
	m := int(binary.BigEndian.Uint16(rest[:2]))
	if len(rest) != 2+m {
		return nil, nil, false
	}
	return ed, rest[2:], true
}
