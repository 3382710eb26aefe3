package e2ee

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"testing"
	"time"

	"github.com/privateline/privateline/keybundle"
)

func TestSignKeyChange(t *testing.T) {
	ps := vectorParties(t)
	alice, bob := ps["alice"], ps["bob"]
	// Alice moves to a new identity key (and bob's RSA key, for speed).
	seed := make([]byte, 32)
	seed[0] = 7
	next, err := NewPrivateKeys(alice.keys.Address(), seed, rsaPKCS8Of(t, bob.keys))
	if err != nil {
		t.Fatal(err)
	}
	nb, err := NewKeyBundle(next, alice.bundle.CreatedAt.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := SignKeyChange(alice.keys, alice.bundle, nb)
	if err != nil {
		t.Fatal(err)
	}
	if err := keybundle.VerifyKeyChange(alice.bundle, nb, sig); err != nil {
		t.Fatalf("the server's check refuses the SDK's signature: %v", err)
	}
	if !ed25519.Verify(alice.bundle.Identity[:], append([]byte("privateline/v1/key-change\x00"), append(hash(alice.bundle.JSON()), hash(nb.JSON())...)...), sig) {
		t.Fatal("the signature is not over the bytes of spec/e2ee.md §6.3")
	}
	for _, tc := range []struct {
		name string
		keys *PrivateKeys
		old  *KeyBundle
		next *KeyBundle
		want Reason
	}{
		{"keys of another bundle", bob.keys, alice.bundle, nb, ErrKeyChanged},
		{"new keys signing", next, alice.bundle, nb, ErrKeyChanged},
		{"older bundle", alice.keys, alice.bundle, mustBundle(t, next, alice.bundle.CreatedAt), ErrStaleBundle},
		{"another address", alice.keys, alice.bundle, bob.bundle, ErrMalformed},
	} {
		if _, err := SignKeyChange(tc.keys, tc.old, tc.next); ReasonOf(err) != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.want)
		}
	}
}

func hash(b []byte) []byte { h := sha256.Sum256(b); return h[:] }

func mustBundle(t *testing.T, k *PrivateKeys, at time.Time) *KeyBundle {
	t.Helper()
	b, err := NewKeyBundle(k, at)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rsaPKCS8Of(t *testing.T, k *PrivateKeys) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k.encryption)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
