package e2ee

import (
	"bytes"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/cjson"
)

// The pinned-keys blob (spec/e2ee.md §18) keeps the identity keys a user's
// clients pinned for contacts (§6.2), so the pins roam between devices
// through GET/PUT /api/pinned_keys while the server can neither read nor
// forge them:
//
//	plaintext = canonical JSON {"pins": {address: {"first_seen", "identity_key",
//	            "verified", "verified_at"?}}, "v": 1}, padded as §7.5
//	blob      = nonce(12) ‖ AES-GCM(kek, nonce, padded plaintext,
//	            "privateline/v1/pinned-keys" ‖ 0x00 ‖ account address)

// Pinned-keys limits.
const (
	PinsVersion   = 1         // the "v" of the pinned-keys plaintext
	MaxPinnedBlob = 256 << 10 // the server's cap on the blob
)

const labelPinnedKeys = "privateline/v1/pinned-keys"

// Pin is what a client remembers about one contact's identity key.
type Pin struct {
	IdentityKey IdentityKey
	FirstSeen   time.Time // when this key was pinned; millisecond precision
	Verified    bool      // the user compared the safety number (§10)
	VerifiedAt  time.Time // when; zero unless Verified
}

// Pins maps contacts' addresses to their pins.
type Pins map[privateline.Address]Pin

// Clone returns a copy of p.
func (p Pins) Clone() Pins {
	if p == nil {
		return Pins{}
	}
	return maps.Clone(p)
}

// Observe applies trust on first use to a contact's verified bundle: an
// address without a pin gets an unverified pin of b's identity key; a pin
// of the same key is left as it is; a pin of another key is kept and
// Observe refuses with key_changed, which the caller must show (§6.2).
// It reports whether p changed.
func (p Pins) Observe(b *KeyBundle, now time.Time) (bool, error) {
	pin, ok := p[b.Address]
	if !ok {
		p[b.Address] = Pin{IdentityKey: b.Identity, FirstSeen: truncMillis(now)}
		return true, nil
	}
	if err := CheckPinned(pin.IdentityKey, b); err != nil {
		return false, err
	}
	return false, nil
}

// MarkVerified records that the user verified b's identity key (compared
// the safety number): the pin becomes b's key, verified at now. A pin of
// another key is replaced (the user verified the new key); its previous
// value is returned so the caller can say so.
func (p Pins) MarkVerified(b *KeyBundle, now time.Time) (previous Pin, replaced bool) {
	now = truncMillis(now)
	pin, ok := p[b.Address]
	if ok && !pin.IdentityKey.Equal(b.Identity) {
		previous, replaced = pin, true
		ok = false
	}
	if !ok {
		pin = Pin{IdentityKey: b.Identity, FirstSeen: now}
	}
	if !pin.Verified {
		pin.Verified, pin.VerifiedAt = true, now
	}
	p[b.Address] = pin
	return previous, replaced
}

// MergePins combines two devices' pins (spec/e2ee.md §18.3): the union of
// the addresses; for an address pinned to the same key in both, the
// earlier first_seen and verified if either is (with the later
// verified_at); for different keys, the pin with the later first_seen,
// then the verified one, then the bytewise larger key. The result does not
// depend on the order of the arguments.
func MergePins(a, b Pins) Pins {
	out := a.Clone()
	for addr, pb := range b {
		pa, ok := out[addr]
		if !ok {
			out[addr] = pb
			continue
		}
		out[addr] = mergePin(pa, pb)
	}
	return out
}

func mergePin(a, b Pin) Pin {
	if a.IdentityKey.Equal(b.IdentityKey) {
		m := a
		if b.FirstSeen.Before(m.FirstSeen) {
			m.FirstSeen = b.FirstSeen
		}
		switch {
		case a.Verified && b.Verified:
			if b.VerifiedAt.After(m.VerifiedAt) {
				m.VerifiedAt = b.VerifiedAt
			}
		case b.Verified:
			m.Verified, m.VerifiedAt = true, b.VerifiedAt
		}
		return m
	}
	switch {
	case !a.FirstSeen.Equal(b.FirstSeen):
		if a.FirstSeen.After(b.FirstSeen) {
			return a
		}
		return b
	case a.Verified != b.Verified:
		if a.Verified {
			return a
		}
		return b
	case bytes.Compare(a.IdentityKey[:], b.IdentityKey[:]) > 0:
		return a
	default:
		return b
	}
}

func truncMillis(t time.Time) time.Time { return fromMillis(Millis(t)) }

// EncodePins returns the canonical JSON plaintext of p (§18.1), unpadded.
func EncodePins(p Pins) ([]byte, error) {
	const op = "e2ee.EncodePins"
	m := make(map[string]any, len(p))
	for _, addr := range slices.Sorted(maps.Keys(p)) {
		pin := p[addr]
		if !validAddress(string(addr)) {
			return nil, refuse(op, ErrMalformed, "pinned address is invalid")
		}
		if pin.Verified != !pin.VerifiedAt.IsZero() {
			return nil, refuse(op, ErrMalformed, "a pin has verified_at exactly when it is verified")
		}
		v := map[string]any{
			"first_seen":   Millis(pin.FirstSeen),
			"identity_key": encodeB64(pin.IdentityKey[:]),
			"verified":     pin.Verified,
		}
		if pin.Verified {
			v["verified_at"] = Millis(pin.VerifiedAt)
		}
		m[string(addr)] = v
	}
	b, err := cjson.Marshal(map[string]any{"pins": m, "v": int64(PinsVersion)})
	if err != nil {
		return nil, refuse(op, ErrMalformed, "pins: "+err.Error())
	}
	return b, nil
}

// DecodePins parses the pinned-keys plaintext: canonical JSON (§2) of
// exactly the members of §18.1.
func DecodePins(data []byte) (Pins, error) {
	const op = "e2ee.DecodePins"
	if len(data) > MaxPinnedBlob {
		return nil, refuse(op, ErrTooLarge, "pins are too large")
	}
	if err := cjson.Check(data); err != nil {
		if _, perr := cjson.Parse(data); perr != nil {
			return nil, refuse(op, ErrMalformed, "pins are not JSON")
		}
		return nil, refuse(op, ErrNonCanonical, "pins are not canonical JSON")
	}
	o := cjson.ParseObject(data)
	v := o.Int("v", true, 0, cjson.MaxSafeInt)
	if o.Err() == nil && v != PinsVersion {
		return nil, refuse(op, ErrUnknownSuite, "unsupported pinned-keys version")
	}
	pm := o.Object("pins", true)
	if err := o.Done(false); err != nil {
		return nil, refuse(op, ErrMalformed, "pins: "+err.Error())
	}
	out := make(Pins, len(pm))
	for addr, pv := range pm {
		if !validAddress(addr) {
			return nil, refuse(op, ErrMalformed, "pins: invalid address")
		}
		raw, _ := pv.(map[string]any)
		verified, ok := raw["verified"].(bool)
		for name := range raw {
			switch name {
			case "first_seen", "identity_key", "verified", "verified_at":
			default:
				ok = false
			}
		}
		_, hasAt := raw["verified_at"]
		po := cjson.NewObject(pv)
		first := po.Int("first_seen", true, 0, cjson.MaxSafeInt)
		key := po.Bytes("identity_key", true, len(IdentityKey{}), len(IdentityKey{}))
		at := po.Int("verified_at", verified, 0, cjson.MaxSafeInt)
		if err := po.Done(true); err != nil || !ok || hasAt != verified {
			return nil, refuse(op, ErrMalformed, "pins: the pin of "+addr+" is malformed")
		}
		pin := Pin{FirstSeen: fromMillis(first), Verified: verified}
		copy(pin.IdentityKey[:], key)
		if verified {
			pin.VerifiedAt = fromMillis(at)
		}
		out[privateline.Address(addr)] = pin
	}
	return out, nil
}

func pinsAAD(account privateline.Address) []byte {
	return concat(domain(labelPinnedKeys), []byte(account))
}

// SealPins encrypts p for account under kek (§18.2). r supplies the nonce;
// nil means crypto/rand.
func SealPins(r io.Reader, kek *KEK, account privateline.Address, p Pins) ([]byte, error) {
	const op = "e2ee.SealPins"
	if !validAddress(string(account)) {
		return nil, refuse(op, ErrMalformed, "invalid account address")
	}
	pt, err := EncodePins(p)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	padded := Pad(pt)
	if NonceSize+len(padded)+16 > MaxPinnedBlob {
		return nil, refuse(op, ErrTooLarge, "too many pinned keys for the server's blob size")
	}
	nonce, err := readRand(r, NonceSize)
	if err != nil {
		return nil, err
	}
	return newGCM(kek.k).Seal(nonce, nonce, padded, pinsAAD(account)), nil
}

// OpenPins decrypts and parses a blob sealed by SealPins for account. An
// empty blob (the server's answer before the first write) is no pins. A
// blob that does not decrypt — tampered with, another account's, or sealed
// under the KEK of an earlier password — is refused with decrypt_failed.
func OpenPins(kek *KEK, account privateline.Address, blob []byte) (Pins, error) {
	const op = "e2ee.OpenPins"
	if len(blob) == 0 {
		return Pins{}, nil
	}
	if len(blob) > MaxPinnedBlob {
		return nil, refuse(op, ErrTooLarge, "pinned-keys blob is too large")
	}
	if len(blob) < NonceSize+PadBlock+16 {
		return nil, refuse(op, ErrMalformed, "pinned-keys blob is too short")
	}
	padded, err := newGCM(kek.k).Open(nil, blob[:NonceSize], blob[NonceSize:], pinsAAD(account))
	if err != nil {
		return nil, refuse(op, ErrDecrypt, "the pinned-keys blob does not decrypt (tampered with, or sealed under another password)")
	}
	pt, err := Unpad(padded)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	p, err := DecodePins(pt)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	return p, nil
}
