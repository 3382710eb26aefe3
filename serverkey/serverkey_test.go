package serverkey

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLoadOrCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	k, created, err := LoadOrCreate(path)
	if err != nil || !created {
		t.Fatalf("first start: %v, created %v", err, created)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("identity file: %v, mode %v", err, fi.Mode())
	}
	b, _ := os.ReadFile(path)
	if !bytes.HasPrefix(b, []byte("-----BEGIN PRIVATE KEY-----\n")) {
		t.Fatalf("not a PKCS #8 PEM: %q", b)
	}
	k2, created, err := LoadOrCreate(path)
	if err != nil || created || !k2.Public().Equal(k.Public()) {
		t.Fatalf("second start: %v, created %v, same key %v", err, created, k2.Public().Equal(k.Public()))
	}
	msg := []byte("privateline/v1/test\x00hello")
	if !ed25519.Verify(k2.Public(), msg, k.Sign(msg)) {
		t.Fatal("a signature by the loaded key does not verify")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

func TestConcurrentFirstStartsAgree(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	var wg sync.WaitGroup
	keys := make([]ed25519.PublicKey, 8)
	errs := make([]error, 8)
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, _, err := LoadOrCreate(path)
			errs[i] = err
			if err == nil {
				keys[i] = k.Public()
			}
		}()
	}
	wg.Wait()
	for i := range keys {
		if errs[i] != nil || !keys[i].Equal(keys[0]) {
			t.Fatalf("start %d: %v; keys differ: %v", i, errs[i], !keys[i].Equal(keys[0]))
		}
	}
}

func TestRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	k, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	good, _ := k.encode()
	for name, tc := range map[string]struct {
		data []byte
		mode os.FileMode
		want string
	}{
		"world readable": {good, 0o644, "chmod 600"},
		"not PEM":        {[]byte("hello"), 0o600, "PEM"},
		"wrong type":     {bytes.Replace(good, []byte("PRIVATE KEY"), []byte("PUBLIC KEY"), 2), 0o600, "PEM"},
		"garbage DER":    {[]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600, "server identity"},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.WriteFile(path, tc.data, tc.mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(path, tc.mode)
		if _, _, err := LoadOrCreate(path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error mentioning %q", name, err, tc.want)
		}
		if b, _ := os.ReadFile(path); !bytes.Equal(b, tc.data) {
			t.Errorf("%s: the file was overwritten", name)
		}
	}
}

func TestNeverPrints(t *testing.T) {
	k, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	der, _ := k.encode()
	seed := k.k.Seed()
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("key", "k", k, "v", *k)
	j, _ := json.Marshal(map[string]any{"k": k, "v": *k})
	for _, out := range []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s %x", k, k, k, k, k), fmt.Sprintf("%#v", *k), string(j), logged.String()} {
		if !strings.Contains(out, "REDACTED") || strings.Contains(out, fmt.Sprintf("%x", seed)) || bytes.Contains([]byte(out), seed) || bytes.Contains([]byte(out), der) {
			t.Errorf("the private key printed: %s", out)
		}
	}
}

func TestTLSCertificateSignsOnlyTLS13(t *testing.T) {
	k, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "a.example"}, NotAfter: time.Now().Add(time.Hour)}
	cert, err := k.TLSCertificate(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.Leaf.PublicKey.(ed25519.PublicKey).Equal(k.Public()) || cert.Leaf.CheckSignature(cert.Leaf.SignatureAlgorithm, cert.Leaf.RawTBSCertificate, cert.Leaf.Signature) != nil {
		t.Fatal("the certificate is not self-signed by the identity key")
	}
	s := cert.PrivateKey.(crypto.Signer)
	tlsMsg := append([]byte(strings.Repeat(" ", 64)+"TLS 1.3, client CertificateVerify\x00"), make([]byte, 32)...)
	sig, err := s.Sign(nil, tlsMsg, crypto.Hash(0))
	if err != nil || !ed25519.Verify(k.Public(), tlsMsg, sig) {
		t.Fatalf("a TLS 1.3 CertificateVerify input: %v", err)
	}
	for _, msg := range [][]byte{
		[]byte("privateline/v1/tree-head\x00{}"),
		append([]byte(strings.Repeat(" ", 64)+"TLS 1.3, other\x00"), make([]byte, 32)...),
		cert.Leaf.RawTBSCertificate,
	} {
		if _, err := s.Sign(nil, msg, crypto.Hash(0)); !errors.Is(err, ErrNotTLS) {
			t.Errorf("signed %.30q: %v", msg, err)
		}
	}
	for _, out := range []string{fmt.Sprint(cert), fmt.Sprintf("%#v", cert.PrivateKey)} {
		if !strings.Contains(out, "REDACTED") {
			t.Errorf("the TLS key printed: %.80s", out)
		}
	}
}
