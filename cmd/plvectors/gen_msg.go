package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"time"

	"github.com/privateline/privateline/clients/go/e2ee"
)

var (
	sentAt1 = time.UnixMilli(1767312000123) // 2026-01-02T00:00:00.123Z
	sentAt2 = time.UnixMilli(1767312060456)
	expires = time.UnixMilli(1767398460456)
)

// directCase seals d from sender to recipients and describes every step.
func directCase(name string, ps map[string]*party, sender string, recipients []string, d e2ee.Draft) (obj, *e2ee.Envelope, error) {
	rec := newStream("envelope/" + name + "/seal")
	var bs []*e2ee.KeyBundle
	for _, r := range recipients {
		bs = append(bs, ps[r].bundle)
	}
	env, err := e2ee.SealDirect(rec, ps[sender].keys, bs, d)
	if err != nil {
		return nil, nil, err
	}
	aad, _ := env.Header.AAD()
	pt, _ := e2ee.EncodeMessage(d.Message)
	keys := obj{}
	for id, w := range env.Keys {
		keys[id] = b64(w)
	}
	js, err := env.MarshalJSON()
	if err != nil {
		return nil, nil, err
	}
	c := obj{
		"name": name, "result": "valid", "sender": sender, "recipients": recipients,
		"openers":              append([]string{sender}, recipients...),
		"id":                   env.Header.ID,
		"conversation":         d.Conversation,
		"sent_at_ms":           d.SentAt.UnixMilli(),
		"plaintext":            string(pt),
		"padded_plaintext_hex": hx(e2ee.Pad(pt)),
		"content_key_hex":      hx(rec.reads[0]),
		"nonce_hex":            hx(rec.reads[1]),
		"aad":                  string(aad),
		"ciphertext_hex":       hx(env.Ciphertext),
		"keys":                 keys,
		"canonical_keys":       string(mustCJSON(keys)),
		"signed_hex":           hx(cat([]byte("privateline/v1/envelope\x00"), sum(aad), sum(env.Nonce, env.Ciphertext), sum(mustCJSON(keys)))),
		"signature_hex":        hx(env.Signature),
		"envelope":             string(js),
	}
	if !d.ExpiresAt.IsZero() {
		c["expires_at_ms"] = d.ExpiresAt.UnixMilli()
	}
	return c, env, nil
}

func flipB64(s string, i int) string {
	b, _ := base64.StdEncoding.DecodeString(s)
	b[i%len(b)] ^= 0x01
	return b64(b)
}

func genEnvelope(ps map[string]*party) (obj, error) {
	ids := newStream("envelope/ids")
	d1 := e2ee.Draft{ID: hx(ids.bytes(16)), Conversation: "dm.alice.bob", SentAt: sentAt1,
		Message: &e2ee.Message{Type: "text", Body: "Hello Bob! \U0001F44B"}}
	c1, _, err := directCase("alice-to-bob", ps, "alice", []string{"bob"}, d1)
	if err != nil {
		return nil, err
	}
	blob, att, err := e2ee.EncryptAttachment(newStream("envelope/attachment"), []byte("the attachment's bytes\n"))
	if err != nil {
		return nil, err
	}
	att.FileID, att.Name, att.MIME = "f.0001", "notes.txt", "text/plain"
	d2 := e2ee.Draft{ID: hx(ids.bytes(16)), Conversation: "c.team-1", SentAt: sentAt2, ExpiresAt: expires,
		Message: &e2ee.Message{Type: "text", Body: "Notes attached — \"quoted\" <b>not html</b>\n", ReplyTo: d1.ID, Attachments: []e2ee.Attachment{att}}}
	c2, _, err := directCase("alice-to-bob-and-carol", ps, "alice", []string{"carol", "bob"}, d2)
	if err != nil {
		return nil, err
	}
	c2["attachment_blob_hex"] = hx(blob)
	cases := []obj{c1, c2}

	e1 := c1["envelope"].(string)
	neg := func(name, errCode, env, opener, sender string, extra obj) {
		c := obj{"name": name, "result": "invalid", "error": errCode, "envelope": env, "opener": opener, "sender": sender}
		for k, v := range extra {
			c[k] = v
		}
		cases = append(cases, c)
	}
	mut := func(base string, f func(o obj)) string {
		o := parseObj(base)
		f(o)
		return string(mustCJSON(o))
	}
	hdr := func(o obj) obj { return o["header"].(obj) }
	neg("tampered-ciphertext", "bad_signature", mut(e1, func(o obj) { o["ciphertext"] = flipB64(o["ciphertext"].(string), 3) }), "bob", "alice", nil)
	neg("tampered-nonce", "bad_signature", mut(e1, func(o obj) { o["nonce"] = flipB64(o["nonce"].(string), 0) }), "bob", "alice", nil)
	neg("tampered-header", "bad_signature", mut(e1, func(o obj) { hdr(o)["sent_at"] = hdr(o)["sent_at"].(int64) + 1 }), "bob", "alice", nil)
	neg("tampered-keys", "bad_signature", mut(e1, func(o obj) {
		k := o["keys"].(obj)
		k[keyID(ps["bob"])] = k[keyID(ps["alice"])]
	}), "bob", "alice", nil)
	neg("tampered-signature", "bad_signature", mut(e1, func(o obj) { o["signature"] = flipB64(o["signature"].(string), 10) }), "bob", "alice", nil)
	neg("signed-by-someone-else", "wrong_sender", e1, "bob", "carol", obj{"note": "the header says alice; the caller resolved the sender to carol's pinned bundle"})
	neg("not-a-recipient", "not_recipient", e1, "carol", "alice", nil)
	neg("unknown-suite", "unknown_suite", mut(e1, func(o obj) { hdr(o)["suite"] = "pl2" }), "bob", "alice", nil)
	neg("unknown-version", "unknown_suite", mut(e1, func(o obj) { hdr(o)["v"] = int64(2) }), "bob", "alice", nil)
	neg("to-not-sorted", "non_canonical", mut(c2["envelope"].(string), func(o obj) {
		hdr(o)["to"] = []any{"carol@chat.other.example", "bob@example.org"}
	}), "bob", "alice", nil)
	neg("to-repeated", "non_canonical", mut(e1, func(o obj) { hdr(o)["to"] = []any{"bob@example.org", "bob@example.org"} }), "bob", "alice", nil)
	neg("files-empty-array", "non_canonical", mut(e1, func(o obj) { hdr(o)["files"] = []any{} }), "bob", "alice", nil)
	neg("expires-at-null", "malformed", mut(e1, func(o obj) { hdr(o)["expires_at"] = nil }), "bob", "alice", nil)
	neg("unknown-header-member", "malformed", mut(e1, func(o obj) { hdr(o)["subject"] = "hi" }), "bob", "alice", nil)
	neg("short-nonce", "malformed", mut(e1, func(o obj) { o["nonce"] = b64(make([]byte, 11)) }), "bob", "alice", nil)
	neg("nonce-not-canonical-base64", "malformed", mut(e1, func(o obj) { o["nonce"] = o["nonce"].(string)[:15] + "=" }), "bob", "alice", nil)
	neg("expired", "expired", c2["envelope"].(string), "bob", "alice", obj{"now_ms": expires.UnixMilli()})
	neg("too-large", "too_large", mut(e1, func(o obj) { o["ciphertext"] = b64(make([]byte, e2ee.MaxPlaintext+16+256)) }), "bob", "alice", nil)

	// Validly signed by alice, wrong inside.
	s := newStream("envelope/evil")
	h1 := parseObj(e1)["header"].(obj)
	pt1 := []byte(c1["plaintext"].(string))
	A, B, C := ps["alice"], ps["bob"], ps["carol"]
	neg("sender-key-missing", "recipients_mismatch", evilDirect(s, A, clone(h1), pad(pt1), []*party{B}, nil), "bob", "alice", nil)
	neg("extra-wrapped-key", "recipients_mismatch", evilDirect(s, A, clone(h1), pad(pt1), []*party{A, B, C}, nil), "bob", "alice",
		obj{"note": "carol is not in to, yet can read the message"})
	neg("encrypted-under-other-aad", "decrypt_failed", evilDirect(s, A, clone(h1), pad(pt1), []*party{A, B}, []byte("{}")), "bob", "alice", nil)
	noMarker := make([]byte, 256)
	copy(noMarker, pt1)
	neg("bad-padding", "bad_padding", evilDirect(s, A, clone(h1), noMarker, []*party{A, B}, nil), "bob", "alice", nil)
	neg("plaintext-not-canonical", "non_canonical", evilDirect(s, A, clone(h1), pad([]byte(`{"type":"text","body":"hi","attachments":[]}`)), []*party{A, B}, nil), "bob", "alice", nil)
	neg("plaintext-not-json", "malformed", evilDirect(s, A, clone(h1), pad([]byte(`hello`)), []*party{A, B}, nil), "bob", "alice", nil)
	hf := clone(h1)
	hf["files"] = []any{"f.0001"}
	neg("files-without-attachment", "files_mismatch", evilDirect(s, A, hf, pad(pt1), []*party{A, B}, nil), "bob", "alice", nil)

	return vectorFile("direct envelope, suite pl1", "§7", []string{
		"Valid cases list every intermediate: the canonical header (aad), padded plaintext, content key, nonce, keys, the signed byte string and the envelope. RSA-OAEP is randomized: a WebCrypto implementation cannot reproduce keys, so it checks them by decryption, and reproduces ciphertext, signed_hex, signature and the envelope from the given keys.",
		"OAEP seeds in Go come from the generator's deterministic stream (Go's rsa.EncryptOAEP honours a non-default random reader), so the files are reproducible byte for byte.",
		"Every valid case opens for each of its openers (the sender included). Invalid cases: open envelope as opener with sender's pinned bundle (parties.json); the first failing check of spec/e2ee.md §12 names the error. now_ms, if present, is the opener's clock.",
		"Cases under 'Validly signed by alice, wrong inside' are signed correctly, so they test the checks after the signature.",
	}, cases), nil
}

func genAttachment(ps map[string]*party) (obj, error) {
	var cases []obj
	var first obj
	s := newStream("attachment/data")
	for _, in := range []struct {
		name string
		data []byte
	}{{"text", []byte("hello, attachment\n")}, {"empty", nil}, {"binary-1000", s.bytes(1000)}} {
		rec := newStream("attachment/" + in.name)
		blob, _, err := e2ee.EncryptAttachment(rec, in.data)
		if err != nil {
			return nil, err
		}
		h := sha256.Sum256(blob)
		c := obj{"name": in.name, "result": "valid", "data_hex": hx(in.data), "key_hex": hx(rec.reads[0]), "nonce_hex": hx(rec.reads[1]),
			"aad": "privateline/v1/attachment", "blob_hex": hx(blob), "sha256_hex": hx(h[:]), "size": len(in.data)}
		cases = append(cases, c)
		if first == nil {
			first = c
		}
	}
	blob, _ := hexDecode(first["blob_hex"].(string))
	tampered := append([]byte(nil), blob...)
	tampered[len(tampered)-1] ^= 1
	th := sha256.Sum256(tampered)
	bad := func(name, errCode string, blob []byte, sha []byte, size int, key string) {
		cases = append(cases, obj{"name": name, "result": "invalid", "error": errCode, "key_hex": key, "blob_hex": hx(blob), "sha256_hex": hx(sha), "size": size})
	}
	fh, _ := hexDecode(first["sha256_hex"].(string))
	bad("blob-changed", "hash_mismatch", tampered, fh, first["size"].(int), first["key_hex"].(string))
	bad("blob-and-hash-changed", "decrypt_failed", tampered, th[:], first["size"].(int), first["key_hex"].(string))
	bad("wrong-size", "malformed", blob, fh, first["size"].(int)+1, first["key_hex"].(string))
	bad("wrong-key", "decrypt_failed", blob, fh, first["size"].(int), hx(make([]byte, 32)))
	return vectorFile("attachment", "§9", []string{
		"blob = nonce ‖ AES-256-GCM(key, nonce, data, aad = UTF-8 \"privateline/v1/attachment\"); sha256 = SHA-256(blob), checked before decrypting; size = len(data).",
	}, cases), nil
}

func hexDecode(s string) ([]byte, error) { return hex.DecodeString(s) }
