package homeserver_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/e2ee"
)

// Real key material for the homeserver tests, made with the Go SDK.
// RSA-4096 keys are never generated in tests: the fixed keys of
// spec/vectors/parties.json are reused, each account getting a fresh
// Ed25519 identity key and its own signed bundle.

var vectorRSA struct {
	once sync.Once
	der  map[string][]byte // party name → RSA private key, PKCS #8 DER
	err  error
}

// partyRSA returns the PKCS #8 RSA key of a party of parties.json
// ("alice", "bob" or "carol").
func partyRSA(t testing.TB, party string) []byte {
	t.Helper()
	vectorRSA.once.Do(func() {
		b, err := os.ReadFile(filepath.Join("..", "spec", "vectors", "parties.json"))
		if err != nil {
			vectorRSA.err = err
			return
		}
		var f struct {
			Cases []struct {
				Name string `json:"name"`
				RSA  string `json:"encryption_pkcs8_b64"`
			}
		}
		if vectorRSA.err = json.Unmarshal(b, &f); vectorRSA.err != nil {
			return
		}
		vectorRSA.der = map[string][]byte{}
		for _, c := range f.Cases {
			if vectorRSA.der[c.Name], vectorRSA.err = base64.StdEncoding.DecodeString(c.RSA); vectorRSA.err != nil {
				return
			}
		}
	})
	if vectorRSA.err != nil || vectorRSA.der[party] == nil {
		t.Fatalf("RSA key of %q from spec/vectors/parties.json: %v", party, vectorRSA.err)
	}
	return vectorRSA.der[party]
}

// testKeys are an account's private keys and signed bundle.
type testKeys struct {
	Keys   *e2ee.PrivateKeys
	Bundle *e2ee.KeyBundle
}

// newTestKeys makes keys for address: a fresh Ed25519 identity key, the
// RSA key of party, and a bundle created at createdAt.
func newTestKeys(t testing.TB, address privateline.Address, party string, createdAt time.Time) *testKeys {
	t.Helper()
	seed := make([]byte, 32)
	rand.Read(seed)
	k, err := e2ee.NewPrivateKeys(address, seed, partyRSA(t, party))
	if err != nil {
		t.Fatalf("keys for %s: %v", address, err)
	}
	b, err := e2ee.NewKeyBundle(k, createdAt)
	if err != nil {
		t.Fatalf("bundle for %s: %v", address, err)
	}
	return &testKeys{Keys: k, Bundle: b}
}

// testBundleFor is a valid signed bundle for the account name on the test
// server (hs.test), as registerBody sends. A name that is no valid
// username gets a bundle for another name (the request fails on the name
// anyway).
func testBundleFor(name string) json.RawMessage {
	addr := privateline.Address(strings.ToLower(name) + "@hs.test")
	if _, _, err := addr.Split(); err != nil {
		addr = "invalid-name@hs.test"
	}
	return json.RawMessage(newTestKeys(panicTB{}, addr, "alice", time.Now()).Bundle.JSON())
}

// panicTB lets helpers that take a testing.TB run where no test is at
// hand (registerBody has no t); a failure there is a broken fixture.
type panicTB struct{ testing.TB }

func (panicTB) Helper() {}
func (panicTB) Fatalf(format string, args ...any) {
	panic("test fixture: " + fmt.Sprintf(format, args...))
}
