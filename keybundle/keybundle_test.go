package keybundle

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/cjson"
)

// party is a fixed account of spec/vectors/parties.json: its published
// bundle and the Ed25519 key that signed it.
type party struct {
	bundle *KeyBundle
	id     ed25519.PrivateKey
	raw    string
}

func loadParties(t testing.TB) map[string]*party {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "spec", "vectors", "parties.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Cases []struct {
			Name, Key_bundle, Identity_seed_hex string
		}
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	ps := map[string]*party{}
	for _, c := range f.Cases {
		kb, err := Parse([]byte(c.Key_bundle))
		if err != nil {
			t.Fatalf("%s's published bundle: %v", c.Name, err)
		}
		seed, _ := hex.DecodeString(c.Identity_seed_hex)
		ps[c.Name] = &party{bundle: kb, id: ed25519.NewKeyFromSeed(seed), raw: c.Key_bundle}
	}
	if len(ps) != 3 {
		t.Fatalf("parties.json has %d parties", len(ps))
	}
	return ps
}

// sign makes a bundle of p's keys created at ms, signed by id.
func sign(t testing.TB, p *party, id ed25519.PrivateKey, ms int64) *KeyBundle {
	t.Helper()
	var pub IdentityKey
	copy(pub[:], id.Public().(ed25519.PublicKey))
	msg, err := SigningInput(p.bundle.Address, pub, p.bundle.Encryption, ms)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Assemble(p.bundle.Address, pub, p.bundle.Encryption, ms, ed25519.Sign(id, msg))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParsePublishedAndReserialized(t *testing.T) {
	for name, p := range loadParties(t) {
		if string(p.bundle.JSON()) != p.raw {
			t.Errorf("%s: canonical form differs from the published one", name)
		}
		// Whitespace and member order do not matter: the signature covers
		// the canonical form of the value.
		var m map[string]any
		json.Unmarshal([]byte(p.raw), &m)
		pretty, _ := json.MarshalIndent(m, "", "  ")
		b, err := Parse(pretty)
		if err != nil || !b.Equal(p.bundle) || b.Hash() != p.bundle.Hash() {
			t.Errorf("%s re-serialized: %v", name, err)
		}
		if again := sign(t, p, p.id, p.bundle.CreatedAtMillis()); !again.Equal(p.bundle) {
			t.Errorf("%s: re-signing the published bundle gives another bundle", name)
		}
	}
}

func TestParseRefusals(t *testing.T) {
	p := loadParties(t)["alice"]
	obj := func(edit func(m map[string]any)) []byte {
		var m map[string]any
		d := json.NewDecoder(strings.NewReader(p.raw))
		d.UseNumber()
		d.Decode(&m)
		edit(m)
		b, _ := json.Marshal(m)
		return b
	}
	flip := func(field string) func(m map[string]any) {
		return func(m map[string]any) {
			b, _ := base64.StdEncoding.DecodeString(m[field].(string))
			b[len(b)/2] ^= 1
			m[field] = base64.StdEncoding.EncodeToString(b)
		}
	}
	for _, tc := range []struct {
		name string
		data []byte
		want Reason
	}{
		{"too large", []byte(`{"pad":"` + strings.Repeat("x", MaxSize) + `"}`), ErrTooLarge},
		{"not JSON", []byte(`{"address":`), ErrMalformed},
		{"an array", []byte(`[]`), ErrMalformed},
		{"unknown member", obj(func(m map[string]any) { m["x"] = 1 }), ErrMalformed},
		{"missing signature", obj(func(m map[string]any) { delete(m, "signature") }), ErrMalformed},
		{"float created_at", []byte(strings.Replace(p.raw, `"created_at":1767225600000`, `"created_at":1767225600000.0`, 1)), ErrMalformed},
		{"duplicate member", []byte(strings.Replace(p.raw, `{`, `{"version":1,`, 1)), ErrMalformed},
		{"version 2", obj(func(m map[string]any) { m["version"] = 2 }), ErrUnknownSuite},
		{"bad address", obj(func(m map[string]any) { m["address"] = "Alice@example.org" }), ErrMalformed},
		{"no server", obj(func(m map[string]any) { m["address"] = "alice" }), ErrMalformed},
		{"short identity key", obj(func(m map[string]any) { m["identity_key"] = "AAAA" }), ErrMalformed},
		{"line break in base64", obj(func(m map[string]any) { s := m["signature"].(string); m["signature"] = s[:10] + "\n" + s[10:] }), ErrMalformed},
		{"SPKI garbage", obj(func(m map[string]any) { m["encryption_key"] = "AAAA" }), ErrBadKey},
		{"encryption key bit", obj(flip("encryption_key")), ErrBadSignature},
		{"signature bit", obj(flip("signature")), ErrBadSignature},
		{"identity key bit", obj(flip("identity_key")), ErrBadSignature},
		{"created_at changed", obj(func(m map[string]any) { m["created_at"] = 1 }), ErrBadSignature},
	} {
		_, err := Parse(tc.data)
		if ReasonOf(err) != tc.want || privateline.KindOf(err) != tc.want.Kind() {
			t.Errorf("%s: %v (%s), want %s", tc.name, err, ReasonOf(err), tc.want)
		}
	}
}

func TestKeyChange(t *testing.T) {
	ps := loadParties(t)
	alice := ps["alice"]
	_, newID, _ := ed25519.GenerateKey(nil)
	next := sign(t, alice, newID, alice.bundle.CreatedAtMillis()+1000)

	input := KeyChangeInput(alice.bundle, next)
	if want := "privateline/v1/key-change\x00"; !strings.HasPrefix(string(input), want) || len(input) != len(want)+64 {
		t.Fatalf("signing input %q", input)
	}
	sig := ed25519.Sign(alice.id, input)
	if err := VerifyKeyChange(alice.bundle, next, sig); err != nil {
		t.Fatalf("a change signed by the old key: %v", err)
	}
	for _, tc := range []struct {
		name      string
		old, next *KeyBundle
		sig       []byte
		want      Reason
	}{
		{"signed by the new key", alice.bundle, next, ed25519.Sign(newID, input), ErrBadSignature},
		{"signed by another account", alice.bundle, next, ed25519.Sign(ps["bob"].id, input), ErrBadSignature},
		{"signature over another change", alice.bundle, sign(t, alice, newID, alice.bundle.CreatedAtMillis()+2000), sig, ErrBadSignature},
		{"not newer", alice.bundle, sign(t, alice, newID, alice.bundle.CreatedAtMillis()), sig, ErrStaleBundle},
		{"older", next, alice.bundle, sig, ErrStaleBundle},
		{"another address", alice.bundle, ps["bob"].bundle, sig, ErrMalformed},
		{"truncated signature", alice.bundle, next, sig[:63], ErrBadSignature},
	} {
		if err := VerifyKeyChange(tc.old, tc.next, tc.sig); ReasonOf(err) != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.want)
		}
	}
	// A replay after the account moved on does not verify against the new bundle.
	later := sign(t, alice, alice.id, next.CreatedAtMillis()+1000)
	if err := VerifyKeyChange(next, later, sig); ReasonOf(err) != ErrBadSignature {
		t.Errorf("replayed signature: %v", err)
	}
	if next.CreatedAt.Sub(alice.bundle.CreatedAt) != time.Second {
		t.Errorf("created_at precision lost: %v", next.CreatedAt)
	}
}

func TestReasonKinds(t *testing.T) {
	for r, k := range reasonKind {
		err := Refuse("op", r, "m")
		if !errors.Is(err, r) || privateline.KindOf(err) != k || ReasonOf(err) != r || k == privateline.Other {
			t.Errorf("%s: %v", r, err)
		}
	}
	if ReasonOf(errors.New("plain")) != "" {
		t.Error("a plain error has a reason")
	}
}

func FuzzParse(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("..", "spec", "vectors", "parties.json"))
	if err != nil {
		f.Fatal(err)
	}
	var pf struct{ Cases []struct{ Key_bundle string } }
	json.Unmarshal(b, &pf)
	for _, c := range pf.Cases {
		f.Add([]byte(c.Key_bundle))
	}
	f.Add([]byte(`{"address":"a@b","version":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		kb, err := Parse(data)
		if err != nil {
			if ReasonOf(err) == "" {
				t.Fatalf("refusal without a reason: %v", err)
			}
			return
		}
		// Whatever parses re-parses from its canonical form to the same bundle.
		if err := cjson.Check(kb.JSON()); err != nil {
			t.Fatalf("canonical form is not canonical: %v", err)
		}
		again, err := Parse(kb.JSON())
		if err != nil || !again.Equal(kb) {
			t.Fatalf("canonical form does not re-parse: %v", err)
		}
	})
}
