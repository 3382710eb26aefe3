// Package serverkey is a homeserver's identity: an Ed25519 key created on
// first start and kept in the data directory as a PKCS #8 PEM file
// (DATA_DIR/server_identity.pem, mode 0600). It signs the key directory's
// entries and tree heads (keydir, spec/e2ee.md §6.4) and will authenticate
// the server to its federation peers. The private key lives only in
// *PrivateKey, which never prints, logs or marshals; the server's
// private-key operations happen here and nowhere else.
package serverkey

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
)

// FileName is the identity's file in the data directory.
const FileName = "server_identity.pem"

// PrivateKey is the homeserver's Ed25519 identity key.
type PrivateKey struct{ k ed25519.PrivateKey }

const redacted = "serverkey.PrivateKey{[REDACTED]}"

func (PrivateKey) String() string               { return redacted }
func (PrivateKey) GoString() string             { return redacted }
func (PrivateKey) Format(f fmt.State, _ rune)   { io.WriteString(f, redacted) }
func (PrivateKey) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (PrivateKey) MarshalJSON() ([]byte, error) { return []byte(`"[REDACTED]"`), nil }
func (PrivateKey) MarshalText() ([]byte, error) { return []byte("[REDACTED]"), nil }

// Generate makes a fresh identity key.
func Generate() (*PrivateKey, error) {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return &PrivateKey{k}, nil
}

// Public returns the public key.
func (k *PrivateKey) Public() ed25519.PublicKey {
	return append(ed25519.PublicKey(nil), k.k.Public().(ed25519.PublicKey)...)
}

// Sign signs msg (pure Ed25519). msg must already carry its domain label
// ("privateline/v1/…" ‖ 0x00 ‖ …), as every signing input in the protocol
// does.
func (k *PrivateKey) Sign(msg []byte) []byte { return ed25519.Sign(k.k, msg) }

// Fingerprint is a short public name of a key for logs: hex of the first
// 8 bytes of SHA-256 of the public key.
func Fingerprint(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:8])
}

// TLSCertificate makes a self-signed X.509 certificate for this key from
// template (the caller chooses names, validity and extensions) and returns
// it as a tls.Certificate for the federation links. Its PrivateKey is a
// crypto.Signer that signs TLS 1.3 CertificateVerify inputs only (RFC 8446
// §4.4.3: 64 spaces, "TLS 1.3, server CertificateVerify" or "TLS 1.3, client
// CertificateVerify", 0x00, transcript hash), so the certificate handed to
// crypto/tls cannot be used to sign protocol messages; like PrivateKey it
// never prints.
func (k *PrivateKey) TLSCertificate(template *x509.Certificate) (tls.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, template, template, k.Public(), k.k)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: tlsSigner{k.k}, Leaf: leaf}, nil
}

// tlsSigner is the private key as crypto/tls sees it.
type tlsSigner struct{ k ed25519.PrivateKey }

func (tlsSigner) String() string             { return redacted }
func (tlsSigner) GoString() string           { return redacted }
func (tlsSigner) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }
func (tlsSigner) LogValue() slog.Value       { return slog.StringValue(redacted) }

func (s tlsSigner) Public() crypto.PublicKey { return s.k.Public() }

var tls13Contexts = [][]byte{
	[]byte("TLS 1.3, server CertificateVerify\x00"),
	[]byte("TLS 1.3, client CertificateVerify\x00"),
}

// ErrNotTLS is returned by the TLS signer for anything but a TLS 1.3
// CertificateVerify input.
var ErrNotTLS = errors.New("serverkey: the TLS key signs TLS 1.3 CertificateVerify inputs only")

func (s tlsSigner) Sign(_ io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts.HashFunc() != crypto.Hash(0) {
		return nil, errors.New("serverkey: Ed25519 signs the message itself, not a hash")
	}
	const pad = 64
	if len(msg) < pad || !bytes.Equal(msg[:pad], bytes.Repeat([]byte{' '}, pad)) {
		return nil, ErrNotTLS
	}
	for _, c := range tls13Contexts {
		if bytes.HasPrefix(msg[pad:], c) {
			return ed25519.Sign(s.k, msg), nil
		}
	}
	return nil, ErrNotTLS
}

const pemType = "PRIVATE KEY"

// LoadOrCreate reads the identity at path, or creates it if the file does
// not exist: a new key is written to a temporary file in the same
// directory (mode 0600), synced, and linked into place only if no other
// process got there first, so a crash or a race never leaves a partial or
// second identity. created reports whether the key is new. A file that
// others may read is refused: the key must be mode 0600 (or stricter).
func LoadOrCreate(path string) (k *PrivateKey, created bool, err error) {
	k, err = load(path)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return k, false, err
	}
	nk, err := Generate()
	if err != nil {
		return nil, false, err
	}
	if err := create(path, nk); err != nil {
		if errors.Is(err, os.ErrExist) { // another process won the race
			k, err = load(path)
			return k, false, err
		}
		return nil, false, err
	}
	return nk, true, nil
}

func load(path string) (*PrivateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("server identity %s has mode %04o; others must not read it (chmod 600 %s)", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, rest := pem.Decode(b)
	if blk == nil || blk.Type != pemType || len(trimSpace(rest)) != 0 {
		return nil, fmt.Errorf("server identity %s is not a single PEM %q block", path, pemType)
	}
	key, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("server identity %s: %v", path, err)
	}
	ek, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("server identity %s is a %T, not an Ed25519 key", path, key)
	}
	return &PrivateKey{ek}, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == '\n' || b[0] == '\r' || b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

// encode returns the key as a PKCS #8 PEM block.
func (k *PrivateKey) encode() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der}), nil
}

func create(path string, k *PrivateKey) error {
	data, err := k.encode()
	if err != nil {
		return err
	}
	tmp, err := writeTemp(path, data)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	// Link, unlike rename, fails if path exists: the first creator wins.
	if err := os.Link(tmp, path); err != nil {
		return err
	}
	SyncDir(filepath.Dir(path)) // best effort, as the key is whole already
	return nil
}

// writeTemp writes data to a new temporary file (mode 0600) next to path,
// synced and closed, and returns its name; the caller removes it.
func writeTemp(path string, data []byte) (string, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*.tmp")
	if err != nil {
		return "", err
	}
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	return tmp.Name(), nil
}

// Load reads the identity at path (PKCS #8 PEM, mode 0600 or stricter). A
// missing file is an error wrapping os.ErrNotExist.
func Load(path string) (*PrivateKey, error) { return load(path) }

// Save writes k to path, replacing any file there, so that path holds
// either its old content or k, whole, after a crash: a temporary file in
// the same directory (mode 0600), synced, renamed over path, and the
// directory synced.
func Save(path string, k *PrivateKey) error {
	data, err := k.encode()
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, data)
}

// WriteFileAtomic writes data to path (mode 0600) as Save does: temporary
// file, fsync, rename, fsync of the directory.
func WriteFileAtomic(path string, data []byte) error {
	tmp, err := writeTemp(path, data)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir syncs a directory, making the renames and links in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
