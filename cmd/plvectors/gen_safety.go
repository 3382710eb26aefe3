package main

import (
	"strings"

	"github.com/privateline/privateline/clients/go/e2ee"
)

func genSafety(ps map[string]*party) (obj, error) {
	var cases []obj
	for _, pair := range [][2]string{{"alice", "bob"}, {"alice", "carol"}, {"carol", "bob"}} {
		a, b := ps[pair[0]], ps[pair[1]]
		fa := e2ee.PartyFingerprint(a.address, a.keys.IdentityKey())
		fb := e2ee.PartyFingerprint(b.address, b.keys.IdentityKey())
		cases = append(cases, obj{
			"name": pair[0] + "-" + pair[1], "result": "valid", "a": pair[0], "b": pair[1],
			"a_hash_hex": hx(fa), "b_hash_hex": hx(fb),
			"a_digits": e2ee.FingerprintDigits(fa), "b_digits": e2ee.FingerprintDigits(fb),
			"safety_number": e2ee.SafetyNumber(a.address, a.keys.IdentityKey(), b.address, b.keys.IdentityKey()),
		})
	}
	return vectorFile("safety number", "§10.1", []string{
		"hash_0 = SHA-512(0x0000 ‖ key ‖ UTF-8(address) ‖ key); hash_i = SHA-512(hash_(i-1) ‖ key) for i = 1 … 5199, with key the raw 32-byte Ed25519 public key.",
		"digits: bytes 0–29 of the final hash in six 5-byte big-endian chunks, each mod 100000, zero-padded to 5 digits; safety_number = the two 30-digit strings sorted and joined.",
		"published/signal-fingerprint.json checks the same iteration against Signal's own vectors.",
	}, cases), nil
}

func genQR(ps map[string]*party) (obj, error) {
	A, B, C := ps["alice"], ps["bob"], ps["carol"]
	show := e2ee.QRPayload(A.address, A.keys.IdentityKey(), B.address, B.keys.IdentityKey())
	fa := e2ee.PartyFingerprint(A.address, A.keys.IdentityKey())
	fb := e2ee.PartyFingerprint(B.address, B.keys.IdentityKey())
	cases := []obj{{
		"name": "alice-shows-bob-scans", "result": "valid", "shower": "alice", "scanner": "bob", "peer_of_scanner": "alice",
		"own_hex": hx(fa[:32]), "peer_hex": hx(fb[:32]), "payload": show,
	}}
	neg := func(name, errCode, payload, scanner, peer string) {
		cases = append(cases, obj{"name": name, "result": "invalid", "error": errCode, "payload": payload, "scanner": scanner, "peer_of_scanner": peer})
	}
	neg("scanning-own-code", "fingerprint_mismatch", show, "alice", "bob")
	neg("key-substituted", "fingerprint_mismatch", e2ee.QRPayload(A.address, C.keys.IdentityKey(), B.address, B.keys.IdentityKey()), "bob", "alice")
	neg("wrong-peer", "fingerprint_mismatch", show, "carol", "alice")
	neg("future-version", "unknown_suite", "PLSN2:"+show[6:], "bob", "alice")
	neg("lower-case-hex", "malformed", "PLSN1:"+strings.ToLower(show[6:]), "bob", "alice")
	neg("truncated", "malformed", show[:len(show)-2], "bob", "alice")
	neg("not-ours", "malformed", "https://example.org/", "bob", "alice")
	return vectorFile("safety-number QR payload", "§10.2", []string{
		"payload = \"PLSN1:\" ‖ upper-case hex(own[0:32] ‖ peer[0:32]) where own/peer are the showing client's own and its peer's iterated hashes (safetynumber.json); 134 characters, all in QR alphanumeric mode.",
		"The scanner accepts iff the payload's own half equals its peer's hash (from the pinned key) and the peer half equals its own hash, compared in constant time.",
		"Invalid cases: scanner scans payload while verifying peer_of_scanner.",
	}, cases), nil
}
