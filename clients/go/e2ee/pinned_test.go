package e2ee

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/privateline/privateline"
)

func testKEK(b byte) *KEK { return &KEK{bytes.Repeat([]byte{b}, KeySize)} }

func TestPinsSealOpen(t *testing.T) {
	ps := vectorParties(t)
	bob, carol := ps["bob"].bundle, ps["carol"].bundle
	p := Pins{}
	if changed, err := p.Observe(bob, t0); err != nil || !changed {
		t.Fatalf("first Observe: changed=%v err=%v", changed, err)
	}
	p.MarkVerified(carol, t0.Add(time.Minute))
	const me = privateline.Address("alice@example.org")
	blob, err := SealPins(nil, testKEK(1), me, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(blob)%PadBlock != NonceSize+16 {
		t.Errorf("blob of %d bytes is not nonce ‖ padded ciphertext ‖ tag", len(blob))
	}
	if bytes.Contains(blob, []byte("bob@")) {
		t.Error("the blob shows a contact's address")
	}
	got, err := OpenPins(testKEK(1), me, blob)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[bob.Address] != p[bob.Address] || got[carol.Address] != p[carol.Address] {
		t.Fatalf("round trip: got %+v, want %+v", got, p)
	}
	if !got[carol.Address].Verified || got[bob.Address].Verified {
		t.Errorf("verified flags lost: %+v", got)
	}
	// Another password (KEK) or another account: decrypt_failed.
	if _, err := OpenPins(testKEK(2), me, blob); ReasonOf(err) != ErrDecrypt {
		t.Errorf("other KEK: %v, want decrypt_failed", err)
	}
	if _, err := OpenPins(testKEK(1), "mallory@example.org", blob); ReasonOf(err) != ErrDecrypt {
		t.Errorf("other account: %v, want decrypt_failed", err)
	}
	for i := range blob {
		bad := bytes.Clone(blob)
		bad[i] ^= 1
		if _, err := OpenPins(testKEK(1), me, bad); err == nil {
			t.Fatalf("a flipped byte %d still opens", i)
		}
	}
	if p, err := OpenPins(testKEK(1), me, nil); err != nil || len(p) != 0 {
		t.Errorf("empty blob: %v %v", p, err)
	}
}

func TestPinsObserveKeyChange(t *testing.T) {
	ps := vectorParties(t)
	bob := ps["bob"].bundle
	p := Pins{}
	p.Observe(bob, t0)
	if changed, err := p.Observe(bob, t0.Add(time.Hour)); err != nil || changed {
		t.Fatalf("same key again: changed=%v err=%v", changed, err)
	}
	// Bob's address with carol's keys stands in for a key change.
	moved := *ps["carol"].bundle
	moved.Address = bob.Address
	if _, err := p.Observe(&moved, t0.Add(time.Hour)); ReasonOf(err) != ErrKeyChanged {
		t.Fatalf("changed key: %v, want key_changed", err)
	}
	if !p[bob.Address].IdentityKey.Equal(bob.Identity) {
		t.Fatal("Observe replaced a pin")
	}
	prev, replaced := p.MarkVerified(&moved, t0.Add(2*time.Hour))
	if !replaced || !prev.IdentityKey.Equal(bob.Identity) {
		t.Fatalf("MarkVerified of a new key: replaced=%v prev=%+v", replaced, prev)
	}
	if pin := p[bob.Address]; !pin.IdentityKey.Equal(moved.Identity) || !pin.Verified || !pin.FirstSeen.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("after MarkVerified: %+v", pin)
	}
}

func TestMergePins(t *testing.T) {
	k1, k2 := IdentityKey{1}, IdentityKey{2}
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	cases := []struct {
		name string
		a, b Pin
		want Pin
	}{
		{"same key: earliest first_seen, verified wins",
			Pin{IdentityKey: k1, FirstSeen: at(5)},
			Pin{IdentityKey: k1, FirstSeen: at(1), Verified: true, VerifiedAt: at(7)},
			Pin{IdentityKey: k1, FirstSeen: at(1), Verified: true, VerifiedAt: at(7)}},
		{"same key: later verified_at",
			Pin{IdentityKey: k1, FirstSeen: at(1), Verified: true, VerifiedAt: at(9)},
			Pin{IdentityKey: k1, FirstSeen: at(1), Verified: true, VerifiedAt: at(3)},
			Pin{IdentityKey: k1, FirstSeen: at(1), Verified: true, VerifiedAt: at(9)}},
		{"other key: later first_seen wins even over verified",
			Pin{IdentityKey: k1, FirstSeen: at(1), Verified: true, VerifiedAt: at(2)},
			Pin{IdentityKey: k2, FirstSeen: at(4)},
			Pin{IdentityKey: k2, FirstSeen: at(4)}},
		{"other key, same first_seen: verified wins",
			Pin{IdentityKey: k2, FirstSeen: at(1)},
			Pin{IdentityKey: k1, FirstSeen: at(1), Verified: true, VerifiedAt: at(2)},
			Pin{IdentityKey: k1, FirstSeen: at(1), Verified: true, VerifiedAt: at(2)}},
		{"full tie: larger key",
			Pin{IdentityKey: k1, FirstSeen: at(1)},
			Pin{IdentityKey: k2, FirstSeen: at(1)},
			Pin{IdentityKey: k2, FirstSeen: at(1)}},
	}
	const x = privateline.Address("x@example.org")
	for _, c := range cases {
		for _, order := range [][2]Pin{{c.a, c.b}, {c.b, c.a}} {
			got := MergePins(Pins{x: order[0], "only.a@example.org": {IdentityKey: k1, FirstSeen: at(0)}},
				Pins{x: order[1], "only.b@example.org": {IdentityKey: k2, FirstSeen: at(0)}})
			if got[x] != c.want || len(got) != 3 {
				t.Errorf("%s: got %+v (%d pins), want %+v", c.name, got[x], len(got), c.want)
			}
		}
	}
}

func TestDecodePinsRefuses(t *testing.T) {
	const key = `"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="`
	cases := map[string]struct {
		in   string
		want Reason
	}{
		"not json":                     {`{`, ErrMalformed},
		"non-canonical":                {`{"v":1, "pins":{}}`, ErrNonCanonical},
		"unknown version":              {`{"pins":{},"v":2}`, ErrUnknownSuite},
		"unknown member":               {`{"extra":1,"pins":{},"v":1}`, ErrMalformed},
		"bad address":                  {`{"pins":{"Bob@x":{"first_seen":1,"identity_key":` + key + `,"verified":false}},"v":1}`, ErrMalformed},
		"short key":                    {`{"pins":{"bob@x":{"first_seen":1,"identity_key":"AQ==","verified":false}},"v":1}`, ErrMalformed},
		"verified_at without verified": {`{"pins":{"bob@x":{"first_seen":1,"identity_key":` + key + `,"verified":false,"verified_at":2}},"v":1}`, ErrMalformed},
		"verified without verified_at": {`{"pins":{"bob@x":{"first_seen":1,"identity_key":` + key + `,"verified":true}},"v":1}`, ErrMalformed},
		"verified not bool":            {`{"pins":{"bob@x":{"first_seen":1,"identity_key":` + key + `,"verified":1}},"v":1}`, ErrMalformed},
		"unknown pin member":           {`{"pins":{"bob@x":{"first_seen":1,"identity_key":` + key + `,"note":"","verified":false}},"v":1}`, ErrMalformed},
		"pin not object":               {`{"pins":{"bob@x":1},"v":1}`, ErrMalformed},
	}
	for name, c := range cases {
		if _, err := DecodePins([]byte(c.in)); ReasonOf(err) != c.want {
			t.Errorf("%s: %v, want %s", name, err, c.want)
		}
	}
	good := `{"pins":{"bob@x":{"first_seen":1,"identity_key":` + key + `,"verified":true,"verified_at":2}},"v":1}`
	p, err := DecodePins([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	back, err := EncodePins(p)
	if err != nil || string(back) != good {
		t.Fatalf("re-encoding: %s %v", back, err)
	}
}

func TestPinsTooLarge(t *testing.T) {
	p := Pins{}
	for i := 0; i < 2000; i++ {
		p[privateline.Address(fmt.Sprintf("contact%s%d@example.org", strings.Repeat("x", 40), i))] = Pin{FirstSeen: t0}
	}
	if _, err := SealPins(nil, testKEK(1), "alice@example.org", p); ReasonOf(err) != ErrTooLarge {
		t.Fatalf("2000 long pins: %v, want too_large", err)
	}
}

func FuzzDecodePins(f *testing.F) {
	f.Add([]byte(`{"pins":{},"v":1}`))
	f.Add([]byte(`{"pins":{"bob@x":{"first_seen":1,"identity_key":"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","verified":true,"verified_at":2}},"v":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodePins(data)
		if err != nil {
			if ReasonOf(err) == "" {
				t.Fatalf("refusal without a reason: %v", err)
			}
			return
		}
		back, err := EncodePins(p)
		if err != nil || !bytes.Equal(back, data) {
			t.Fatalf("accepted input does not re-encode to itself: %q → %q %v", data, back, err)
		}
	})
}
