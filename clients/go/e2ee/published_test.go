package e2ee

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/pbkdf2"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// Published vectors (spec/vectors/published): the primitives this package
// relies on must agree with them. Valid cases pass, invalid ones fail.

func loadPublished(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "spec", "vectors", "published", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func TestRFC8032(t *testing.T) {
	var f struct {
		Tests []struct {
			Name      string
			SecretKey string `json:"secret_key"`
			PublicKey string `json:"public_key"`
			Message   string
			Signature string
		}
	}
	loadPublished(t, "rfc8032_ed25519.json", &f)
	if len(f.Tests) != 4 {
		t.Fatalf("want 4 RFC 8032 tests, got %d", len(f.Tests))
	}
	for _, tc := range f.Tests {
		t.Run(tc.Name, func(t *testing.T) {
			priv := ed25519.NewKeyFromSeed(unhex(t, tc.SecretKey))
			if got := priv.Public().(ed25519.PublicKey); !bytes.Equal(got, unhex(t, tc.PublicKey)) {
				t.Fatalf("public key %x", got)
			}
			msg := unhex(t, tc.Message)
			sig := ed25519.Sign(priv, msg)
			if !bytes.Equal(sig, unhex(t, tc.Signature)) {
				t.Fatalf("signature %x", sig)
			}
			var pub IdentityKey
			copy(pub[:], unhex(t, tc.PublicKey))
			if !pub.Verify(msg, sig) || pub.Verify(append(msg, 0), sig) {
				t.Fatal("verification is wrong")
			}
		})
	}
}

func TestRFC5869(t *testing.T) {
	var f struct {
		Tests []struct {
			Name, IKM, Salt, Info, PRK, OKM string
			Length                          int
		}
	}
	loadPublished(t, "rfc5869_hkdf_sha256.json", &f)
	if len(f.Tests) != 3 {
		t.Fatalf("want 3 cases, got %d", len(f.Tests))
	}
	for _, tc := range f.Tests {
		prk, err := hkdf.Extract(sha256.New, unhex(t, tc.IKM), unhex(t, tc.Salt))
		if err != nil || !bytes.Equal(prk, unhex(t, tc.PRK)) {
			t.Errorf("%s: PRK %x, %v", tc.Name, prk, err)
		}
		okm, err := hkdf.Key(sha256.New, unhex(t, tc.IKM), unhex(t, tc.Salt), string(unhex(t, tc.Info)), tc.Length)
		if err != nil || !bytes.Equal(okm, unhex(t, tc.OKM)) {
			t.Errorf("%s: OKM %x, %v", tc.Name, okm, err)
		}
	}
}

func TestRFC7914PBKDF2(t *testing.T) {
	var f struct {
		Tests []struct {
			Password, Salt, DK string
			Iterations         int
			DKLen              int `json:"dk_len"`
		}
	}
	loadPublished(t, "rfc7914_pbkdf2_sha256.json", &f)
	if len(f.Tests) != 2 {
		t.Fatalf("want 2 cases, got %d", len(f.Tests))
	}
	for _, tc := range f.Tests {
		dk, err := pbkdf2.Key(sha256.New, tc.Password, []byte(tc.Salt), tc.Iterations, tc.DKLen)
		if err != nil || !bytes.Equal(dk, unhex(t, tc.DK)) {
			t.Errorf("%s/%d: %x, %v", tc.Password, tc.Iterations, dk, err)
		}
	}
}

type wycheproofTest struct {
	TcID                               int `json:"tcId"`
	Comment                            string
	Key, IV, AAD, Msg, CT, Tag, Result string
	Label, Sig                         string
	Flags                              []string
}

func TestWycheproofAESGCM(t *testing.T) {
	var f struct {
		TestGroups []struct {
			IVSize, KeySize, TagSize int
			Tests                    []wycheproofTest
		}
	}
	loadPublished(t, "wycheproof_aes_gcm.json", &f)
	n := 0
	for _, g := range f.TestGroups {
		for _, tc := range g.Tests {
			n++
			b, err := aes.NewCipher(unhex(t, tc.Key))
			if err != nil {
				t.Fatalf("tc %d: %v", tc.TcID, err)
			}
			gcm, err := cipher.NewGCM(b)
			if err != nil {
				t.Fatal(err)
			}
			ct := append(unhex(t, tc.CT), unhex(t, tc.Tag)...)
			pt, err := gcm.Open(nil, unhex(t, tc.IV), ct, unhex(t, tc.AAD))
			switch tc.Result {
			case "valid", "acceptable":
				if err != nil || !bytes.Equal(pt, unhex(t, tc.Msg)) {
					t.Errorf("tc %d (%s): open failed: %v", tc.TcID, tc.Comment, err)
				}
				if sealed := gcm.Seal(nil, unhex(t, tc.IV), unhex(t, tc.Msg), unhex(t, tc.AAD)); !bytes.Equal(sealed, ct) {
					t.Errorf("tc %d: seal differs", tc.TcID)
				}
			case "invalid":
				if err == nil {
					t.Errorf("tc %d (%s): invalid ciphertext opened", tc.TcID, tc.Comment)
				}
			}
		}
	}
	if n < 100 {
		t.Fatalf("only %d AES-GCM tests", n)
	}
}

func TestWycheproofRSAOAEP4096(t *testing.T) {
	var f struct {
		TestGroups []struct {
			KeySize         int
			SHA             string `json:"sha"`
			MGFSha          string `json:"mgfSha"`
			PrivateKeyPkcs8 string `json:"privateKeyPkcs8"`
			Tests           []wycheproofTest
		}
	}
	loadPublished(t, "wycheproof_rsa_oaep_4096_sha256.json", &f)
	n := 0
	for _, g := range f.TestGroups {
		if g.KeySize != 4096 || g.SHA != "SHA-256" || g.MGFSha != "SHA-256" {
			t.Fatalf("unexpected group %d %s %s", g.KeySize, g.SHA, g.MGFSha)
		}
		k, err := x509.ParsePKCS8PrivateKey(unhex(t, g.PrivateKeyPkcs8))
		if err != nil {
			t.Fatal(err)
		}
		priv := k.(*rsa.PrivateKey)
		for _, tc := range g.Tests {
			n++
			pt, err := rsa.DecryptOAEP(sha256.New(), nil, priv, unhex(t, tc.CT), unhex(t, tc.Label))
			switch tc.Result {
			case "valid", "acceptable":
				if err != nil || !bytes.Equal(pt, unhex(t, tc.Msg)) {
					t.Errorf("tc %d (%s): %v", tc.TcID, tc.Comment, err)
				}
			case "invalid":
				if err == nil {
					t.Errorf("tc %d (%s): invalid ciphertext decrypted", tc.TcID, tc.Comment)
				}
			}
		}
	}
	if n != 37 {
		t.Fatalf("ran %d RSA-OAEP tests, want 37", n)
	}
}

func TestWycheproofEd25519(t *testing.T) {
	var f struct {
		TestGroups []struct {
			PublicKey struct{ PK string } `json:"publicKey"`
			Tests     []wycheproofTest
		}
	}
	loadPublished(t, "wycheproof_ed25519.json", &f)
	n := 0
	for _, g := range f.TestGroups {
		var pub IdentityKey
		pk := unhex(t, g.PublicKey.PK)
		if len(pk) != 32 {
			t.Fatalf("public key of %d bytes", len(pk))
		}
		copy(pub[:], pk)
		for _, tc := range g.Tests {
			n++
			ok := pub.Verify(unhex(t, tc.Msg), unhex(t, tc.Sig))
			if want := tc.Result == "valid"; ok != want {
				t.Errorf("tc %d (%s): verify = %v, want %v", tc.TcID, tc.Comment, ok, want)
			}
		}
	}
	if n < 100 {
		t.Fatalf("only %d Ed25519 tests", n)
	}
}

func TestSignalFingerprintVectors(t *testing.T) {
	var f map[string]any
	loadPublished(t, "signal_fingerprint.json", &f)
	s := func(k string) string { return f[k].(string) }
	it := int(f["iterations"].(float64))
	a := FingerprintHash(it, unhex(t, s("alice_identity_key")), []byte(s("alice_stable_id")))
	b := FingerprintHash(it, unhex(t, s("bob_identity_key")), []byte(s("bob_stable_id")))
	da, db := FingerprintDigits(a), FingerprintDigits(b)
	if da > db {
		da, db = db, da
	}
	if da+db != s("displayable_fingerprint") {
		t.Errorf("display %s%s, want %s", da, db, s("displayable_fingerprint"))
	}
	want := "080112220a20" + hex.EncodeToString(a[:32]) + "1a220a20" + hex.EncodeToString(b[:32])
	if want != s("alice_scannable_fingerprint_v1") {
		t.Errorf("scannable halves differ from Signal's")
	}
}
