package e2ee

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/privateline/privateline"
)

// Benchmarks of the operations a client runs per message, per contact and
// per login. Run them with
//
//	go test -run '^$' -bench . -benchtime 2s ./clients/go/e2ee/
//
// and see docs/benchmarks.md for figures. Key generation and other setup
// happen before b.Loop and are not timed.

// benchPlaintext is a text message whose canonical JSON plaintext is
// exactly 1 KiB (it pads to 1,280 bytes).
func benchPlaintext(b *testing.B) *Message {
	b.Helper()
	overhead := len(`{"attachments":[],"body":"","type":"text"}`)
	m := text(strings.Repeat("x", 1024-overhead))
	pt, err := EncodeMessage(m)
	if err != nil || len(pt) != 1024 {
		b.Fatalf("plaintext of %d bytes: %v", len(pt), err)
	}
	return m
}

// benchGenerated is how many accounts are generated on top of the three
// vector parties, so that alice can write to 10 recipients.
const benchGenerated = 8

var (
	benchOnce   sync.Once
	benchPeople []*testParty // alice, bob, carol (spec/vectors/parties.json), then generated accounts
	benchErr    error
)

// benchParties returns alice followed by at least 10 other accounts, each
// with its own RSA-4096 key (a sender refuses two recipients sharing an
// encryption key, so the fixed keys cannot be reused under other
// addresses). The three vector parties are loaded from their fixed keys;
// the other eight are generated once per run, which takes a few seconds
// and is outside every timed loop.
func benchParties(b *testing.B) []*testParty {
	b.Helper()
	benchOnce.Do(func() {
		raw, err := os.ReadFile(filepath.Join("..", "..", "..", "spec", "vectors", "parties.json"))
		if err != nil {
			benchErr = err
			return
		}
		var f struct{ Cases []vcase }
		if benchErr = json.Unmarshal(raw, &f); benchErr != nil {
			return
		}
		byName := map[string]*testParty{}
		for _, c := range f.Cases {
			seed, _ := hexDecode(c.s("identity_seed_hex"))
			der, _ := base64.StdEncoding.DecodeString(c.s("encryption_pkcs8_b64"))
			k, err := NewPrivateKeys(privateline.Address(c.s("address")), seed, der)
			if err != nil {
				benchErr = err
				return
			}
			bundle, err := ParseKeyBundle([]byte(c.s("key_bundle")))
			if err != nil {
				benchErr = err
				return
			}
			byName[c.s("name")] = &testParty{k, bundle}
		}
		benchPeople = []*testParty{byName["alice"], byName["bob"], byName["carol"]}
		for i := range benchGenerated {
			k, err := GenerateKeys(privateline.Address(fmt.Sprintf("user%02d@example.org", i)))
			if err != nil {
				benchErr = err
				return
			}
			bundle, err := NewKeyBundle(k, t0)
			if err != nil {
				benchErr = err
				return
			}
			benchPeople = append(benchPeople, &testParty{k, bundle})
		}
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchPeople
}

// recipientBundles returns the bundles of the first n accounts after alice.
func recipientBundles(ps []*testParty, n int) []*KeyBundle {
	out := make([]*KeyBundle, n)
	for i := range n {
		out[i] = ps[1+i].bundle
	}
	return out
}

var benchRecipientCounts = []int{1, 2, 10}

// BenchmarkSealDirect: alice seals a 1 KiB message to n recipients: one
// AES-256-GCM encryption, n+1 RSA-OAEP-4096 wraps, one Ed25519 signature.
func BenchmarkSealDirect(b *testing.B) {
	for _, n := range benchRecipientCounts {
		b.Run(fmt.Sprintf("recipients=%d", n), func(b *testing.B) {
			ps := benchParties(b)
			recips := recipientBundles(ps, n)
			d := Draft{Conversation: "c.bench", SentAt: t0, Message: benchPlaintext(b)}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := SealDirect(nil, ps[0].keys, recips, d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOpenDirect: bob opens a 1 KiB message sealed to n recipients:
// one Ed25519 verification, one RSA-OAEP-4096 unwrap, one AES-256-GCM
// decryption, unpadding and the plaintext's canonical-JSON check.
func BenchmarkOpenDirect(b *testing.B) {
	for _, n := range benchRecipientCounts {
		b.Run(fmt.Sprintf("recipients=%d", n), func(b *testing.B) {
			ps := benchParties(b)
			e, err := SealDirect(nil, ps[0].keys, recipientBundles(ps, n),
				Draft{Conversation: "c.bench", SentAt: t0, Message: benchPlaintext(b)})
			if err != nil {
				b.Fatal(err)
			}
			bob := ps[1]
			b.ReportAllocs()
			for b.Loop() {
				if _, err := OpenDirect(e, bob.keys, ps[0].bundle, OpenOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func benchGroupKey(b *testing.B, ps []*testParty) *GroupKey {
	b.Helper()
	gk, _, err := SealGroupKey(nil, ps[0].keys, "g.bench", 1, t0, []*KeyBundle{ps[0].bundle, ps[1].bundle})
	if err != nil {
		b.Fatal(err)
	}
	return gk
}

// BenchmarkSealGroup: a 1 KiB group message: HKDF, AES-256-GCM, Ed25519.
func BenchmarkSealGroup(b *testing.B) {
	ps := benchParties(b)
	gk := benchGroupKey(b, ps)
	d := Draft{SentAt: t0, Message: benchPlaintext(b)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SealGroup(nil, ps[0].keys, gk, d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenGroup: verify and decrypt a 1 KiB group message.
func BenchmarkOpenGroup(b *testing.B) {
	ps := benchParties(b)
	gk := benchGroupKey(b, ps)
	e, err := SealGroup(nil, ps[0].keys, gk, Draft{SentAt: t0, Message: benchPlaintext(b)})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := OpenGroup(e, gk, ps[0].bundle, GroupOpenOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSafetyNumber: 2 × 5,200 SHA-512 iterations.
func BenchmarkSafetyNumber(b *testing.B) {
	ps := benchParties(b)
	a, c := ps[0].bundle, ps[1].bundle
	b.ReportAllocs()
	for b.Loop() {
		if sn := SafetyNumber(a.Address, a.Identity, c.Address, c.Identity); len(sn) != 60 {
			b.Fatal(sn)
		}
	}
}

// BenchmarkDerivePasswordKeys: one op is a full derivation, PBKDF2-HMAC-SHA256
// with 600,000 iterations plus two HKDFs: what every login and registration
// costs.
func BenchmarkDerivePasswordKeys(b *testing.B) {
	salt := []byte("0123456789abcdef")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DerivePasswordKeys("correct horse battery staple", KDFName, Iterations, salt); err != nil {
			b.Fatal(err)
		}
	}
}

func benchKEK() *KEK { return &KEK{[]byte("0123456789abcdef0123456789abcdef")} }

// BenchmarkWrapPrivateKeys: PKCS #8 encoding of both keys and AES-256-GCM.
func BenchmarkWrapPrivateKeys(b *testing.B) {
	ps := benchParties(b)
	kek := benchKEK()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := WrapPrivateKeys(nil, kek, ps[0].keys); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUnwrapPrivateKeys: AES-256-GCM, then parsing (and so
// validating) the RSA-4096 PKCS #8 key.
func BenchmarkUnwrapPrivateKeys(b *testing.B) {
	ps := benchParties(b)
	kek := benchKEK()
	w, err := WrapPrivateKeys(nil, kek, ps[0].keys)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := UnwrapPrivateKeys(kek, ps[0].keys.address, w); err != nil {
			b.Fatal(err)
		}
	}
}
