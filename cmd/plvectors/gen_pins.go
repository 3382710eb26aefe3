package main

import (
	"crypto/pbkdf2"
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/e2ee"
)

// pinsValue describes a pin set for the vector file (not the wire form,
// which is plaintext_hex): address → first_seen_ms, identity_key_hex,
// verified, verified_at_ms when verified.
func pinsValue(p e2ee.Pins) obj {
	out := obj{}
	for _, a := range slices.Sorted(maps.Keys(p)) {
		pin := p[a]
		v := obj{"first_seen_ms": e2ee.Millis(pin.FirstSeen), "identity_key_hex": hx(pin.IdentityKey[:]), "verified": pin.Verified}
		if pin.Verified {
			v["verified_at_ms"] = e2ee.Millis(pin.VerifiedAt)
		}
		out[string(a)] = v
	}
	return out
}

func genPins(ps map[string]*party) (obj, error) {
	A, B, C := ps["alice"], ps["bob"], ps["carol"]
	s := newStream("pinned")
	salt := s.bytes(16)
	pw := "pins password of alice"
	pk, err := e2ee.DerivePasswordKeys(pw, e2ee.KDFName, e2ee.Iterations, salt)
	if err != nil {
		return nil, err
	}
	master, _ := pbkdf2.Key(sha256.New, pw, salt, e2ee.Iterations, 32)
	kek := hkdfKey(master, nil, "privateline/v1/key-wrap")
	at := func(d time.Duration) time.Time { return bundleTime.Add(d) }
	bobKey, carolKey := B.keys.IdentityKey(), C.keys.IdentityKey()

	var cases []obj
	seal := func(name string, account privateline.Address, p e2ee.Pins) ([]byte, error) {
		pt, err := e2ee.EncodePins(p)
		if err != nil {
			return nil, err
		}
		blob, err := e2ee.SealPins(s, pk.KEK, account, p)
		if err != nil {
			return nil, err
		}
		back, err := e2ee.OpenPins(pk.KEK, account, blob)
		if err != nil || len(back) != len(p) {
			return nil, fmt.Errorf("%s: sealed pins do not open: %v", name, err)
		}
		cases = append(cases, obj{
			"name": name, "result": "valid", "op": "seal", "account": string(account), "kek_hex": hx(kek),
			"pins": pinsValue(p), "plaintext_hex": hx(pt), "nonce_hex": hx(blob[:e2ee.NonceSize]), "blob_b64": b64(blob),
		})
		return blob, nil
	}
	if _, err := seal("empty", A.address, e2ee.Pins{}); err != nil {
		return nil, err
	}
	two := e2ee.Pins{
		B.address: {IdentityKey: bobKey, FirstSeen: at(0)},
		C.address: {IdentityKey: carolKey, FirstSeen: at(time.Hour), Verified: true, VerifiedAt: at(2 * time.Hour)},
	}
	blob, err := seal("bob-unverified-carol-verified", A.address, two)
	if err != nil {
		return nil, err
	}

	openFails := func(name, code string, account privateline.Address, kekHex string, blob []byte) {
		cases = append(cases, obj{"name": name, "result": "invalid", "error": code, "op": "open", "account": string(account), "kek_hex": kekHex, "blob_b64": b64(blob)})
	}
	tampered := append([]byte(nil), blob...)
	tampered[len(tampered)-20] ^= 1
	if _, err := e2ee.OpenPins(pk.KEK, A.address, tampered); e2ee.ReasonOf(err) != e2ee.ErrDecrypt {
		return nil, fmt.Errorf("tampered pins: %v", err)
	}
	openFails("tampered", "decrypt_failed", A.address, hx(kek), tampered)
	if _, err := e2ee.OpenPins(pk.KEK, B.address, blob); e2ee.ReasonOf(err) != e2ee.ErrDecrypt {
		return nil, fmt.Errorf("pins of another account: %v", err)
	}
	openFails("another-account", "decrypt_failed", B.address, hx(kek), blob)
	openFails("another-kek", "decrypt_failed", A.address, hx(hkdfKey(master, nil, "privateline/v1/auth")), blob)
	nonce := s.bytes(e2ee.NonceSize)
	aad := cat([]byte("privateline/v1/pinned-keys\x00"), []byte(A.address))
	unpadded := cat(nonce, gcmSeal(kek, nonce, make([]byte, 256), aad))
	if _, err := e2ee.OpenPins(pk.KEK, A.address, unpadded); e2ee.ReasonOf(err) != e2ee.ErrBadPadding {
		return nil, fmt.Errorf("unpadded pins: %v", err)
	}
	openFails("bad-padding", "bad_padding", A.address, hx(kek), unpadded)

	bk := b64(bobKey[:])
	for _, c := range []struct{ name, code, text string }{
		{"future-version", "unknown_suite", `{"pins":{},"v":2}`},
		{"unknown-member", "malformed", `{"pins":{},"v":1,"x":1}`},
		{"members-out-of-order", "non_canonical", `{"v":1,"pins":{}}`},
		{"not-json", "malformed", `{"pins":`},
		{"verified-at-without-verified", "malformed", `{"pins":{"bob@example.org":{"first_seen":1,"identity_key":"` + bk + `","verified":false,"verified_at":2}},"v":1}`},
		{"verified-without-verified-at", "malformed", `{"pins":{"bob@example.org":{"first_seen":1,"identity_key":"` + bk + `","verified":true}},"v":1}`},
		{"invalid-address", "malformed", `{"pins":{"bob":{"first_seen":1,"identity_key":"` + bk + `","verified":false}},"v":1}`},
		{"short-key", "malformed", `{"pins":{"bob@example.org":{"first_seen":1,"identity_key":"` + b64(bobKey[:31]) + `","verified":false}},"v":1}`},
		{"unknown-pin-member", "malformed", `{"pins":{"bob@example.org":{"first_seen":1,"identity_key":"` + bk + `","note":"x","verified":false}},"v":1}`},
	} {
		if _, err := e2ee.DecodePins([]byte(c.text)); string(e2ee.ReasonOf(err)) != c.code {
			return nil, fmt.Errorf("%s: DecodePins gave %v, want %s", c.name, err, c.code)
		}
		cases = append(cases, obj{"name": c.name, "result": "invalid", "error": c.code, "op": "decode", "plaintext_hex": hx([]byte(c.text))})
	}

	merge := func(name string, a, b e2ee.Pins) error {
		m1, m2 := e2ee.MergePins(a, b), e2ee.MergePins(b, a)
		p1, err := e2ee.EncodePins(m1)
		if err != nil {
			return err
		}
		p2, _ := e2ee.EncodePins(m2)
		if string(p1) != string(p2) {
			return fmt.Errorf("merge %s depends on the order of its arguments", name)
		}
		cases = append(cases, obj{"name": name, "result": "valid", "op": "merge", "a": pinsValue(a), "b": pinsValue(b), "merged": pinsValue(m1), "merged_plaintext_hex": hx(p1)})
		return nil
	}
	bob := func(k e2ee.IdentityKey, first time.Duration, verifiedAt time.Duration) e2ee.Pins {
		p := e2ee.Pin{IdentityKey: k, FirstSeen: at(first)}
		if verifiedAt >= 0 {
			p.Verified, p.VerifiedAt = true, at(verifiedAt)
		}
		return e2ee.Pins{B.address: p}
	}
	const unverified = -1
	for _, m := range []struct {
		name string
		a, b e2ee.Pins
	}{
		{"disjoint", bob(bobKey, 0, unverified), e2ee.Pins{C.address: {IdentityKey: carolKey, FirstSeen: at(time.Minute)}}},
		{"same-key-earlier-first-seen-and-verified", bob(bobKey, time.Hour, unverified), bob(bobKey, 2*time.Hour, 3*time.Hour)},
		{"same-key-later-verified-at", bob(bobKey, 0, time.Hour), bob(bobKey, 0, 2*time.Hour)},
		{"changed-key-later-first-seen-wins", bob(bobKey, 0, time.Hour), bob(carolKey, 2*time.Hour, unverified)},
		{"changed-key-same-time-verified-wins", bob(bobKey, 0, unverified), bob(carolKey, 0, time.Minute)},
		{"changed-key-tie-larger-key-wins", bob(bobKey, 0, unverified), bob(carolKey, 0, unverified)},
	} {
		if err := merge(m.name, m.a, m.b); err != nil {
			return nil, err
		}
	}
	return vectorFile("pinned-keys blob", "§18", []string{
		"op seal: encode pins to plaintext_hex (canonical JSON, §18.1), then blob = nonce ‖ AES-GCM(kek, nonce, pad(plaintext), \"privateline/v1/pinned-keys\" ‖ 0x00 ‖ account); blob_b64 is the result with nonce_hex. kek_hex is the §4 key-wrap key of the password \"" + pw + "\" and salt " + hx(salt) + ".",
		"op open (invalid): opening blob_b64 for account under kek_hex fails with error.",
		"op decode (invalid): parsing plaintext_hex as §18.1 fails with error.",
		"op merge: merging a and b (§18.3) in either order gives merged, whose plaintext is merged_plaintext_hex.",
		"In pins, each address maps to first_seen_ms, identity_key_hex, verified and (when verified) verified_at_ms.",
	}, cases), nil
}
