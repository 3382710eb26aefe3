package main

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"

	"github.com/privateline/privateline/cjson"
)

// This file builds deliberately wrong but validly signed structures for the
// negative vectors. It uses the standard library directly, not the SDK, so
// it is also a second, independent reading of spec/e2ee.md.

func gcmSeal(key, nonce, pt, aad []byte) []byte {
	b, _ := aes.NewCipher(key)
	g, _ := cipher.NewGCM(b)
	return g.Seal(nil, nonce, pt, aad)
}

func keyID(p *party) string {
	spki, _ := x509.MarshalPKIXPublicKey(&p.rsa.PublicKey)
	h := sha256.Sum256(spki)
	return hex.EncodeToString(h[:16])
}

func oaep(s *stream, p *party, key []byte, label string) []byte {
	ct, err := rsa.EncryptOAEP(sha256.New(), s, &p.rsa.PublicKey, key, []byte(label))
	if err != nil {
		panic(err)
	}
	return ct
}

func sign(p *party, msg []byte) []byte {
	return ed25519.Sign(ed25519.NewKeyFromSeed(p.seed), msg)
}

func mustCJSON(v any) []byte {
	b, err := cjson.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func sum(parts ...[]byte) []byte {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// evilDirect seals padded plaintext pt under header hdr, wraps the content
// key to wrapTo and signs as sender. encAAD, if non-nil, replaces the AAD
// used for encryption (the signature still covers the header's).
func evilDirect(s *stream, sender *party, hdr obj, pt []byte, wrapTo []*party, encAAD []byte) string {
	aad := mustCJSON(hdr)
	ck, nonce := s.bytes(32), s.bytes(12)
	if encAAD == nil {
		encAAD = aad
	}
	ct := gcmSeal(ck, nonce, pt, encAAD)
	keys := obj{}
	for _, p := range wrapTo {
		keys[keyID(p)] = b64(oaep(s, p, ck, "privateline/v1/content-key"))
	}
	signed := cat([]byte("privateline/v1/envelope\x00"), sum(aad), sum(nonce, ct), sum(mustCJSON(keys)))
	return string(mustCJSON(obj{
		"header": hdr, "keys": keys, "nonce": b64(nonce), "ciphertext": b64(ct), "signature": b64(sign(sender, signed)),
	}))
}

// evilGroup seals padded pt under header hdr with group key gk and signs
// as sender.
func evilGroup(s *stream, sender *party, hdr obj, pt, gk []byte) string {
	aad := mustCJSON(hdr)
	salt, nonce := s.bytes(32), s.bytes(12)
	mk := hkdfKey(gk, salt, "privateline/v1/group-message")
	ct := gcmSeal(mk, nonce, pt, aad)
	signed := cat([]byte("privateline/v1/group-envelope\x00"), sum(aad), sum(salt, nonce, ct))
	return string(mustCJSON(obj{
		"header": hdr, "salt": b64(salt), "nonce": b64(nonce), "ciphertext": b64(ct), "signature": b64(sign(sender, signed)),
	}))
}

// evilGroupKey distributes gk to wrapTo with the given members list,
// signed by sender.
func evilGroupKey(s *stream, sender *party, body obj, gk []byte, wrapTo []*party) string {
	keys, digests := obj{}, obj{}
	for _, p := range wrapTo {
		w := oaep(s, p, gk, "privateline/v1/group-key")
		keys[keyID(p)], digests[keyID(p)] = b64(w), b64(sum(w))
	}
	body["key_digests"] = digests
	body["signature"] = b64(sign(sender, cat([]byte("privateline/v1/group-key\x00"), mustCJSON(body))))
	body["keys"] = keys
	return string(mustCJSON(body))
}

// pad is the padding of spec/e2ee.md §7.5, written independently.
func pad(p []byte) []byte {
	n := (len(p)/256 + 1) * 256
	out := make([]byte, n)
	copy(out, p)
	out[len(p)] = 0x80
	return out
}

// parseObj parses canonical JSON text into a mutable object.
func parseObj(s string) obj {
	v, err := cjson.Parse([]byte(s))
	if err != nil {
		panic(err)
	}
	return v.(obj)
}

func clone(o obj) obj {
	v, _ := cjson.Parse(mustCJSON(o))
	return v.(obj)
}
