package e2ee

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/cjson"
)

// These tests open, verify or recompute every case of spec/vectors with
// this package. The vector files are made by cmd/plvectors, whose own test
// checks that they are reproducible.

type vcase map[string]any

func (c vcase) s(k string) string { v, _ := c[k].(string); return v }
func (c vcase) n(k string) int64  { v, _ := c[k].(float64); return int64(v) }
func (c vcase) valid() bool       { return c.s("result") == "valid" }

func loadVectors(t *testing.T, name string) []vcase {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "spec", "vectors", name))
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Cases []vcase }
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) == 0 {
		t.Fatalf("%s has no cases", name)
	}
	return f.Cases
}

type testParty struct {
	keys   *PrivateKeys
	bundle *KeyBundle
}

var (
	partiesOnce sync.Once
	parties     map[string]*testParty
	partiesErr  error
)

// vectorParties loads the fixed accounts of parties.json once per run
// (RSA-4096 keys are never generated in tests).
func vectorParties(t *testing.T) map[string]*testParty {
	t.Helper()
	partiesOnce.Do(func() {
		parties = map[string]*testParty{}
		b, err := os.ReadFile(filepath.Join("..", "..", "..", "spec", "vectors", "parties.json"))
		if err != nil {
			partiesErr = err
			return
		}
		var f struct{ Cases []vcase }
		if partiesErr = json.Unmarshal(b, &f); partiesErr != nil {
			return
		}
		for _, c := range f.Cases {
			seed, _ := hexDecode(c.s("identity_seed_hex"))
			der, _ := base64.StdEncoding.DecodeString(c.s("encryption_pkcs8_b64"))
			k, err := NewPrivateKeys(privateline.Address(c.s("address")), seed, der)
			if err != nil {
				partiesErr = err
				return
			}
			bundle, err := ParseKeyBundle([]byte(c.s("key_bundle")))
			if err != nil {
				partiesErr = err
				return
			}
			if !k.Matches(bundle) || k.enc.ID() != c.s("key_id") {
				partiesErr = ErrBadKey
				return
			}
			parties[c.s("name")] = &testParty{k, bundle}
		}
	})
	if partiesErr != nil {
		t.Fatal(partiesErr)
	}
	return parties
}

func wantReason(t *testing.T, c vcase, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: accepted, want %s", c.s("name"), c.s("error"))
	}
	if got := ReasonOf(err); string(got) != c.s("error") {
		t.Fatalf("%s: refused with %q (%v), want %q", c.s("name"), got, err, c.s("error"))
	}
}

func TestVectorsKDF(t *testing.T) {
	for _, c := range loadVectors(t, "kdf.json") {
		salt, _ := hexDecode(c.s("salt_hex"))
		pk, err := DerivePasswordKeys(c.s("password"), c.s("kdf"), int(c.n("iterations")), salt)
		if !c.valid() {
			wantReason(t, c, err)
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.s("name"), err)
		}
		if hexEncode(pk.AuthKey) != c.s("auth_key_hex") || hexEncode(pk.KEK.k) != c.s("kek_hex") {
			t.Errorf("%s: derived keys differ", c.s("name"))
		}
	}
}

func TestVectorsKeyWrap(t *testing.T) {
	ps := vectorParties(t)
	for _, c := range loadVectors(t, "keywrap.json") {
		kek, _ := hexDecode(c.s("kek_hex"))
		nonce, _ := hexDecode(c.s("nonce_hex"))
		ct, _ := base64.StdEncoding.DecodeString(c.s("encrypted_private_key_b64"))
		w := &WrappedKeys{Nonce: nonce, Ciphertext: ct}
		keys, err := UnwrapPrivateKeys(&KEK{kek}, privateline.Address(c.s("address")), w)
		if !c.valid() {
			wantReason(t, c, err)
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.s("name"), err)
		}
		if !keys.Matches(ps[c.s("party")].bundle) {
			t.Errorf("%s: unwrapped keys are not the party's", c.s("name"))
		}
		// Wrapping again with the same nonce reproduces the ciphertext.
		again, err := WrapPrivateKeys(bytes.NewReader(nonce), &KEK{kek}, keys)
		if err != nil || !bytes.Equal(again.Ciphertext, ct) {
			t.Errorf("%s: re-wrapping differs (%v)", c.s("name"), err)
		}
	}
}

func TestVectorsKeyBundle(t *testing.T) {
	ps := vectorParties(t)
	for _, c := range loadVectors(t, "keybundle.json") {
		b, err := ParseKeyBundle([]byte(c.s("bundle")))
		if c.s("error") == "key_changed" {
			if err != nil {
				t.Fatal(err)
			}
			var pin IdentityKey
			p, _ := hexDecode(c.s("pinned_identity_hex"))
			copy(pin[:], p)
			wantReason(t, c, CheckPinned(pin, b))
			continue
		}
		if !c.valid() {
			wantReason(t, c, err)
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.s("name"), err)
		}
		if !ps[c.s("party")].keys.Matches(b) || string(b.JSON()) != c.s("bundle") {
			t.Errorf("%s: bundle differs", c.s("name"))
		}
		again, err := NewKeyBundle(ps[c.s("party")].keys, b.CreatedAt)
		if err != nil || string(again.JSON()) != c.s("bundle") {
			t.Errorf("%s: re-signing differs", c.s("name"))
		}
		if err := CheckPinned(b.Identity, b); err != nil {
			t.Error(err)
		}
	}
}

func TestVectorsCanonicalJSON(t *testing.T) {
	for _, c := range loadVectors(t, "canonical_json.json") {
		in, _ := hexDecode(c.s("input_hex"))
		got, err := cjson.Canonicalize(in)
		if c.valid() != (err == nil) {
			t.Errorf("%s: canonicalize error %v, result %s", c.s("name"), err, c.s("result"))
			continue
		}
		if c.valid() && string(got) != c.s("canonical") {
			t.Errorf("%s: canonical %s, want %s", c.s("name"), got, c.s("canonical"))
		}
		if isC := cjson.Check(in) == nil; isC != c["is_canonical"].(bool) {
			t.Errorf("%s: is_canonical %v", c.s("name"), isC)
		}
	}
}

func TestVectorsPadding(t *testing.T) {
	for _, c := range loadVectors(t, "padding.json") {
		padded, _ := hexDecode(c.s("padded_hex"))
		got, err := Unpad(padded)
		if !c.valid() {
			wantReason(t, c, err)
			continue
		}
		want, _ := hexDecode(c.s("plaintext_hex"))
		if err != nil || !bytes.Equal(got, want) || !bytes.Equal(Pad(want), padded) {
			t.Errorf("%s: pad/unpad differ (%v)", c.s("name"), err)
		}
	}
}

func strs(v any) []string {
	var out []string
	for _, e := range v.([]any) {
		out = append(out, e.(string))
	}
	return out
}

func TestVectorsEnvelope(t *testing.T) {
	ps := vectorParties(t)
	valid := 0
	for _, c := range loadVectors(t, "envelope.json") {
		t.Run(c.s("name"), func(t *testing.T) {
			e, err := ParseEnvelope([]byte(c.s("envelope")))
			if !c.valid() {
				if err == nil {
					opts := OpenOptions{}
					if c["now_ms"] != nil {
						opts.Now = time.UnixMilli(c.n("now_ms"))
					}
					_, err = OpenDirect(e, ps[c.s("opener")].keys, ps[c.s("sender")].bundle, opts)
				}
				wantReason(t, c, err)
				return
			}
			valid++
			if err != nil {
				t.Fatal(err)
			}
			js, _ := e.MarshalJSON()
			aad, _ := e.Header.AAD()
			if string(js) != c.s("envelope") || string(aad) != c.s("aad") {
				t.Fatal("re-encoding differs")
			}
			var recips []*KeyBundle
			for _, r := range strs(c["recipients"]) {
				recips = append(recips, ps[r].bundle)
			}
			for _, o := range strs(c["openers"]) {
				m, err := OpenDirect(e, ps[o].keys, ps[c.s("sender")].bundle, OpenOptions{Now: e.Header.SentAt, Recipients: recips})
				if err != nil {
					t.Fatalf("opener %s: %v", o, err)
				}
				pt, _ := EncodeMessage(m)
				if string(pt) != c.s("plaintext") {
					t.Fatalf("opener %s: plaintext %s", o, pt)
				}
			}
			// Resealing with the recorded content key and nonce reproduces
			// the ciphertext and, given the same keys, the signature.
			ck, _ := hexDecode(c.s("content_key_hex"))
			nonce, _ := hexDecode(c.s("nonce_hex"))
			padded, _ := hexDecode(c.s("padded_plaintext_hex"))
			if ct := newGCM(ck).Seal(nil, nonce, padded, aad); !bytes.Equal(ct, e.Ciphertext) {
				t.Fatal("ciphertext differs")
			}
			signed := directSigned(aad, e.Nonce, e.Ciphertext, e.Keys)
			if hexEncode(signed) != c.s("signed_hex") || !ps[c.s("sender")].bundle.Identity.Verify(signed, e.Signature) {
				t.Fatal("signed bytes differ")
			}
			if hexEncode(ps[c.s("sender")].keys.sign(signed)) != c.s("signature_hex") {
				t.Fatal("signature differs")
			}
			if blob := c.s("attachment_blob_hex"); blob != "" {
				m, _ := OpenDirect(e, ps["bob"].keys, ps[c.s("sender")].bundle, OpenOptions{})
				b, _ := hexDecode(blob)
				if _, err := DecryptAttachment(m.Attachments[0], b); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	if valid < 2 {
		t.Fatalf("only %d valid envelopes", valid)
	}
}

func TestVectorsAttachment(t *testing.T) {
	for _, c := range loadVectors(t, "attachment.json") {
		key, _ := hexDecode(c.s("key_hex"))
		blob, _ := hexDecode(c.s("blob_hex"))
		sum, _ := hexDecode(c.s("sha256_hex"))
		a := Attachment{Key: key, SHA256: sum, Size: c.n("size")}
		data, err := DecryptAttachment(a, blob)
		if !c.valid() {
			wantReason(t, c, err)
			continue
		}
		want, _ := hexDecode(c.s("data_hex"))
		if err != nil || !bytes.Equal(data, want) {
			t.Errorf("%s: %v", c.s("name"), err)
		}
		nonce, _ := hexDecode(c.s("nonce_hex"))
		again, _, _ := EncryptAttachment(bytes.NewReader(append(key, nonce...)), want)
		if !bytes.Equal(again, blob) {
			t.Errorf("%s: re-encryption differs", c.s("name"))
		}
	}
}

// groupKeys opens the valid distributions of groupkey.json as alice.
func vectorGroupKeys(t *testing.T) map[int64]*GroupKey {
	t.Helper()
	ps := vectorParties(t)
	out := map[int64]*GroupKey{}
	for _, c := range loadVectors(t, "groupkey.json") {
		if c.valid() && slices.Contains(strs(c["openers"]), "alice") {
			gk, err := OpenGroupKey([]byte(c.s("document")), ps["alice"].keys, ps[c.s("distributor")].bundle, GroupKeyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			out[gk.Epoch] = gk
		}
	}
	return out
}

func TestVectorsGroupKey(t *testing.T) {
	ps := vectorParties(t)
	for _, c := range loadVectors(t, "groupkey.json") {
		t.Run(c.s("name"), func(t *testing.T) {
			if !c.valid() {
				_, err := OpenGroupKey([]byte(c.s("document")), ps[c.s("opener")].keys, ps[c.s("distributor")].bundle,
					GroupKeyOptions{Current: c.n("current_epoch")})
				wantReason(t, c, err)
				return
			}
			var members []*KeyBundle
			for _, m := range strs(c["members"]) {
				members = append(members, ps[m].bundle)
			}
			if want, ok := c["signed_hex"]; ok {
				f := parseFields([]byte(c.s("document")))
				digests, err := parseDigests(f.object("key_digests", true))
				var addrs []privateline.Address
				for _, m := range f.strings("members", true, validAddress) {
					addrs = append(addrs, privateline.Address(m))
				}
				body := groupKeySignedBody(f.str("group", true), f.integer("epoch", true, 1, 1<<53), privateline.Address(f.str("from", true)),
					addrs, f.integer("created_at", true, 0, 1<<53), digests)
				if err != nil || f.err != nil || hexEncode(groupKeySigned(body)) != want {
					t.Fatalf("signed bytes differ: %v %v", err, f.err)
				}
			}
			for _, o := range strs(c["openers"]) {
				gk, err := OpenGroupKey([]byte(c.s("document")), ps[o].keys, ps[c.s("distributor")].bundle, GroupKeyOptions{Members: members})
				if err != nil {
					t.Fatalf("opener %s: %v", o, err)
				}
				if hexEncode(gk.key) != c.s("group_key_hex") || gk.Epoch != c.n("epoch") || gk.CreatedAt.UnixMilli() != c.n("created_at_ms") {
					t.Fatalf("opener %s: key differs", o)
				}
			}
		})
	}
}

func TestVectorsGroupMessage(t *testing.T) {
	ps := vectorParties(t)
	gks := vectorGroupKeys(t)
	for _, c := range loadVectors(t, "groupmessage.json") {
		t.Run(c.s("name"), func(t *testing.T) {
			e, err := ParseEnvelope([]byte(c.s("envelope")))
			if c["openers"] == nil { // a case with one opener and a key epoch
				if err == nil {
					opts := GroupOpenOptions{}
					if c["latest_epoch"] != nil {
						opts.Latest = gks[c.n("latest_epoch")]
					}
					gk := gks[c.n("key_epoch")]
					if hexEncode(gk.key) != c.s("group_key_hex") {
						t.Fatal("group key differs")
					}
					_, err = OpenGroup(e, gk, ps[c.s("sender")].bundle, opts)
				}
				if c.valid() {
					if err != nil {
						t.Fatal(err)
					}
					return
				}
				wantReason(t, c, err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			gk := gks[c.n("epoch")]
			for range strs(c["openers"]) {
				m, err := OpenGroup(e, gk, ps[c.s("sender")].bundle, GroupOpenOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if pt, _ := EncodeMessage(m); string(pt) != c.s("plaintext") {
					t.Fatalf("plaintext %s", pt)
				}
			}
			salt, _ := hexDecode(c.s("salt_hex"))
			if hexEncode(messageKey(gk, salt)) != c.s("message_key_hex") {
				t.Fatal("message key differs")
			}
			aad, _ := e.Header.AAD()
			if hexEncode(groupSigned(aad, e.Salt, e.Nonce, e.Ciphertext)) != c.s("signed_hex") {
				t.Fatal("signed bytes differ")
			}
			// Group sealing is deterministic given id, salt and nonce.
			nonce, _ := hexDecode(c.s("nonce_hex"))
			m, _ := DecodeMessage([]byte(c.s("plaintext")))
			again, err := SealGroup(bytes.NewReader(append(salt, nonce...)), ps[c.s("sender")].keys, gk,
				Draft{ID: c.s("id"), SentAt: time.UnixMilli(c.n("sent_at_ms")), Message: m})
			if err != nil {
				t.Fatal(err)
			}
			if js, _ := again.MarshalJSON(); string(js) != c.s("envelope") {
				t.Fatal("resealed envelope differs")
			}
		})
	}
}

func TestVectorsSafetyNumber(t *testing.T) {
	ps := vectorParties(t)
	for _, c := range loadVectors(t, "safetynumber.json") {
		a, b := ps[c.s("a")].bundle, ps[c.s("b")].bundle
		if got := SafetyNumber(a.Address, a.Identity, b.Address, b.Identity); got != c.s("safety_number") {
			t.Errorf("%s: %s", c.s("name"), got)
		}
		if got := SafetyNumber(b.Address, b.Identity, a.Address, a.Identity); got != c.s("safety_number") {
			t.Errorf("%s: not symmetric", c.s("name"))
		}
		if hexEncode(PartyFingerprint(a.Address, a.Identity)) != c.s("a_hash_hex") {
			t.Errorf("%s: hash differs", c.s("name"))
		}
	}
}

func TestVectorsQR(t *testing.T) {
	ps := vectorParties(t)
	for _, c := range loadVectors(t, "qr.json") {
		sc, peer := ps[c.s("scanner")].bundle, ps[c.s("peer_of_scanner")].bundle
		err := CompareQRPayload(c.s("payload"), sc.Address, sc.Identity, peer.Address, peer.Identity)
		if !c.valid() {
			wantReason(t, c, err)
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.s("name"), err)
		}
		sh, other := ps[c.s("shower")].bundle, ps[c.s("scanner")].bundle
		if QRPayload(sh.Address, sh.Identity, other.Address, other.Identity) != c.s("payload") {
			t.Errorf("%s: payload differs", c.s("name"))
		}
	}
}

// pinsOf reads a pin set as the vector files describe it.
func pinsOf(t *testing.T, v any) Pins {
	t.Helper()
	m, _ := v.(map[string]any)
	out := Pins{}
	for a, pv := range m {
		c := vcase(pv.(map[string]any))
		k, err := hexDecode(c.s("identity_key_hex"))
		if err != nil || len(k) != len(IdentityKey{}) {
			t.Fatalf("pin of %s: bad identity_key_hex", a)
		}
		p := Pin{FirstSeen: fromMillis(c.n("first_seen_ms"))}
		copy(p.IdentityKey[:], k)
		if c["verified"] == true {
			p.Verified, p.VerifiedAt = true, fromMillis(c.n("verified_at_ms"))
		}
		out[privateline.Address(a)] = p
	}
	return out
}

func TestVectorsPinned(t *testing.T) {
	for _, c := range loadVectors(t, "pinned.json") {
		name := c.s("name")
		switch c.s("op") {
		case "seal":
			kek, _ := hexDecode(c.s("kek_hex"))
			nonce, _ := hexDecode(c.s("nonce_hex"))
			account := privateline.Address(c.s("account"))
			pins := pinsOf(t, c["pins"])
			pt, err := EncodePins(pins)
			if err != nil || hex.EncodeToString(pt) != c.s("plaintext_hex") {
				t.Fatalf("%s: plaintext differs (%v)", name, err)
			}
			blob, err := SealPins(bytes.NewReader(nonce), &KEK{kek}, account, pins)
			if err != nil || base64.StdEncoding.EncodeToString(blob) != c.s("blob_b64") {
				t.Fatalf("%s: blob differs (%v)", name, err)
			}
			back, err := OpenPins(&KEK{kek}, account, blob)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			again, _ := EncodePins(back)
			if !bytes.Equal(again, pt) {
				t.Errorf("%s: opened pins differ", name)
			}
		case "open":
			kek, _ := hexDecode(c.s("kek_hex"))
			blob, _ := base64.StdEncoding.DecodeString(c.s("blob_b64"))
			_, err := OpenPins(&KEK{kek}, privateline.Address(c.s("account")), blob)
			wantReason(t, c, err)
		case "decode":
			pt, _ := hexDecode(c.s("plaintext_hex"))
			_, err := DecodePins(pt)
			wantReason(t, c, err)
		case "merge":
			a, b := pinsOf(t, c["a"]), pinsOf(t, c["b"])
			for _, m := range []Pins{MergePins(a, b), MergePins(b, a)} {
				pt, err := EncodePins(m)
				if err != nil || hex.EncodeToString(pt) != c.s("merged_plaintext_hex") {
					t.Errorf("%s: merged pins differ (%v)", name, err)
				}
			}
			want, _ := EncodePins(pinsOf(t, c["merged"]))
			if hex.EncodeToString(want) != c.s("merged_plaintext_hex") {
				t.Errorf("%s: merged and merged_plaintext_hex disagree", name)
			}
		default:
			t.Fatalf("%s: unknown op %q", name, c.s("op"))
		}
	}
}
