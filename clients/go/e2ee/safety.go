package e2ee

import (
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/privateline/privateline"
)

// Safety numbers follow Signal's numeric fingerprint (spec/e2ee.md §10):
// per party, SHA-512 iterated 5,200 times over version ‖ key ‖ identifier
// and then prev ‖ key; 30 digits from the first 30 bytes; the two parties'
// digits sorted and joined give 60 digits. PrivateLine feeds the raw
// 32-byte Ed25519 key (Signal: 33 bytes with a 0x05 type prefix) and the
// UTF-8 address as the stable identifier.
const (
	FingerprintIterations = 5200
	fingerprintVersion    = 0 // the 2-byte version Signal's hash starts with
	QRVersion             = 1
	qrPrefix              = "PLSN1:"
)

// FingerprintHash returns one party's iterated SHA-512 (64 bytes) over an
// arbitrary key encoding and identifier; PartyFingerprint fixes those for
// PrivateLine. Exposed so the Signal vectors can check the construction.
func FingerprintHash(iterations int, key, identifier []byte) []byte {
	h := sha512.New()
	h.Write([]byte{fingerprintVersion >> 8, fingerprintVersion & 0xff})
	h.Write(key)
	h.Write(identifier)
	h.Write(key)
	buf := h.Sum(nil)
	for i := 1; i < iterations; i++ {
		h.Reset()
		h.Write(buf)
		h.Write(key)
		buf = h.Sum(buf[:0])
	}
	return buf
}

// PartyFingerprint is FingerprintHash of a PrivateLine account.
func PartyFingerprint(a privateline.Address, k IdentityKey) []byte {
	return FingerprintHash(FingerprintIterations, k[:], []byte(a))
}

// FingerprintDigits renders the first 30 bytes of a party's hash as 30
// digits: six 5-byte big-endian chunks, each mod 100000, zero-padded.
func FingerprintDigits(fp []byte) string {
	var b strings.Builder
	for i := 0; i < 6; i++ {
		var x uint64
		for _, c := range fp[i*5 : i*5+5] {
			x = x<<8 | uint64(c)
		}
		fmt.Fprintf(&b, "%05d", x%100000)
	}
	return b.String()
}

// SafetyNumber returns the 60-digit safety number of two accounts; both
// sides compute the same string. Show it as 12 groups of 5 digits.
func SafetyNumber(a privateline.Address, ka IdentityKey, b privateline.Address, kb IdentityKey) string {
	da := FingerprintDigits(PartyFingerprint(a, ka))
	db := FingerprintDigits(PartyFingerprint(b, kb))
	if da <= db {
		return da + db
	}
	return db + da
}

// QRPayload is the text a client shows as a QR code: "PLSN1:" followed by
// upper-case hex of the first 32 bytes of the shower's own party hash and
// then of the peer's (134 characters, QR alphanumeric mode).
func QRPayload(own privateline.Address, ownKey IdentityKey, peer privateline.Address, peerKey IdentityKey) string {
	o := PartyFingerprint(own, ownKey)[:32]
	p := PartyFingerprint(peer, peerKey)[:32]
	return qrPrefix + strings.ToUpper(hex.EncodeToString(concat(o, p)))
}

// ParseQRPayload splits a scanned payload into the shower's own and peer
// fingerprint material (32 bytes each).
func ParseQRPayload(s string) (own, peer []byte, err error) {
	const op = "e2ee.ParseQRPayload"
	if !strings.HasPrefix(s, "PLSN") {
		return nil, nil, refuse(op, ErrMalformed, "not a PrivateLine safety-number code")
	}
	if !strings.HasPrefix(s, qrPrefix) {
		return nil, nil, refuse(op, ErrUnknownSuite, "unsupported safety-number code version")
	}
	h := s[len(qrPrefix):]
	if len(h) != 128 || strings.ToUpper(h) != h {
		return nil, nil, refuse(op, ErrMalformed, "safety-number code must hold 128 upper-case hex digits")
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return nil, nil, refuse(op, ErrMalformed, "safety-number code must hold 128 upper-case hex digits")
	}
	return b[:32], b[32:], nil
}

// CompareQRPayload checks a code scanned from the peer's screen: its "own"
// half must be the peer's fingerprint as this client computes it from the
// pinned key, and its "peer" half this account's own.
func CompareQRPayload(scanned string, me privateline.Address, myKey IdentityKey, peer privateline.Address, peerKey IdentityKey) error {
	theirOwn, theirPeer, err := ParseQRPayload(scanned)
	if err != nil {
		return err
	}
	wantOwn := PartyFingerprint(peer, peerKey)[:32]
	wantPeer := PartyFingerprint(me, myKey)[:32]
	if subtle.ConstantTimeCompare(theirOwn, wantOwn)&subtle.ConstantTimeCompare(theirPeer, wantPeer) != 1 {
		return refuse("e2ee.CompareQRPayload", ErrFingerprint, "the safety numbers do not match")
	}
	return nil
}
