package main

import (
	"crypto/hkdf"
	"crypto/pbkdf2"
	"crypto/sha256"
	"fmt"
	"os"

	"golang.org/x/text/unicode/norm"

	"github.com/privateline/privateline/cjson"
	"github.com/privateline/privateline/clients/go/e2ee"
)

// Files lists the generated vector files in the order they are written.
var Files = []string{
	"parties.json", "kdf.json", "keywrap.json", "keybundle.json", "canonical_json.json",
	"padding.json", "envelope.json", "attachment.json", "groupkey.json", "groupmessage.json",
	"safetynumber.json", "qr.json", "directory.json", "pinned.json",
}

func generate(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ps, err := loadParties()
	if err != nil {
		return err
	}
	gens := map[string]func(map[string]*party) (obj, error){
		"parties.json":        genParties,
		"kdf.json":            genKDF,
		"keywrap.json":        genKeyWrap,
		"keybundle.json":      genKeyBundle,
		"canonical_json.json": genCanonical,
		"padding.json":        genPadding,
		"envelope.json":       genEnvelope,
		"attachment.json":     genAttachment,
		"groupkey.json":       genGroupKey,
		"groupmessage.json":   genGroupMessage,
		"safetynumber.json":   genSafety,
		"qr.json":             genQR,
		"directory.json":      genDirectory,
		"pinned.json":         genPins,
	}
	for _, name := range Files {
		v, err := gens[name](ps)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := writeFile(dir, name, v); err != nil {
			return err
		}
	}
	return nil
}

func hkdfKey(ikm, salt []byte, info string) []byte {
	k, err := hkdf.Key(sha256.New, ikm, salt, info, 32)
	if err != nil {
		panic(err)
	}
	return k
}

func genParties(ps map[string]*party) (obj, error) {
	var cases []obj
	for _, n := range partyNames {
		p := ps[n]
		id := p.keys.IdentityKey()
		cases = append(cases, obj{
			"name":                 n,
			"address":              string(p.address),
			"identity_seed_hex":    hx(p.seed),
			"identity_public_hex":  hx(id[:]),
			"identity_pkcs8_hex":   hx(cat([]byte{0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20}, p.seed)),
			"encryption_pkcs8_b64": b64(p.rsaDER),
			"encryption_spki_b64":  b64(p.keys.EncryptionKey().SPKI()),
			"key_id":               p.keys.EncryptionKey().ID(),
			"key_bundle":           string(p.bundle.JSON()),
		})
	}
	return vectorFile("fixed test accounts", "§5–§6", []string{
		"identity_seed = SHA-256(\"privateline vectors/identity/\" ‖ name); the RSA-4096 keys were generated once (cmd/plvectors/rsakeys.json).",
		"identity_pkcs8 is the 48-byte RFC 8410 PKCS #8 form that WebCrypto importKey('pkcs8', …, 'Ed25519') accepts.",
		"key_bundle is each party's signed bundle, created_at 2026-01-01T00:00:00Z; keybundle.json details its construction.",
		"These keys are public test data: never use them for anything else.",
	}, cases), nil
}

func genKDF(ps map[string]*party) (obj, error) {
	type in struct{ name, password string }
	ins := []in{
		{"ascii", "correct horse battery staple"},
		{"nfd-input-normalized-to-nfc", "Cafe\u0301 cre\u0300me bru\u0302le\u0301e"},
		{"non-bmp", "p\u00e4ssw\u00f6rd \U0001F510 \u5bc6\u7801"},
	}
	var cases []obj
	for _, c := range ins {
		salt := newStream("kdf/" + c.name).bytes(16)
		pk, err := e2ee.DerivePasswordKeys(c.password, e2ee.KDFName, e2ee.Iterations, salt)
		if err != nil {
			return nil, err
		}
		nfc := norm.NFC.String(c.password)
		master, _ := pbkdf2.Key(sha256.New, nfc, salt, e2ee.Iterations, 32)
		auth := hkdfKey(master, nil, "privateline/v1/auth")
		kek := hkdfKey(master, nil, "privateline/v1/key-wrap")
		if hx(auth) != hx(pk.AuthKey.Bytes()) {
			return nil, fmt.Errorf("SDK and generator disagree on auth_key")
		}
		cases = append(cases, obj{
			"name":           c.name,
			"result":         "valid",
			"password":       c.password,
			"password_hex":   hx([]byte(c.password)),
			"normalized_hex": hx([]byte(nfc)),
			"kdf":            e2ee.KDFName,
			"iterations":     e2ee.Iterations,
			"salt_hex":       hx(salt),
			"master_hex":     hx(master),
			"auth_key_hex":   hx(auth),
			"auth_key_b64":   b64(auth),
			"kek_hex":        hx(kek),
		})
	}
	for _, bad := range []obj{
		{"name": "too-few-iterations", "kdf": "pbkdf2-sha256", "iterations": 100000, "error": "weak_kdf"},
		{"name": "unknown-kdf", "kdf": "argon2id", "iterations": 600000, "error": "weak_kdf"},
	} {
		bad["result"] = "invalid"
		bad["password"] = "correct horse battery staple"
		bad["salt_hex"] = hx(newStream("kdf/ascii").bytes(16))
		cases = append(cases, bad)
	}
	return vectorFile("password derivation", "§4", []string{
		"master = PBKDF2-HMAC-SHA256(UTF-8(NFC(password)), salt, iterations, 32 bytes).",
		"auth_key = HKDF-SHA256(ikm = master, salt = empty, info = \"privateline/v1/auth\", 32); kek likewise with info \"privateline/v1/key-wrap\".",
		"auth_key_b64 is the registration/login field auth_key. Invalid cases are announcements from a server that a client must refuse before deriving anything.",
	}, cases), nil
}

func genKeyWrap(ps map[string]*party) (obj, error) {
	var cases []obj
	for _, n := range []string{"alice", "bob"} {
		p := ps[n]
		s := newStream("keywrap/" + n)
		salt := s.bytes(16)
		pw := "vector password of " + n
		pk, err := e2ee.DerivePasswordKeys(pw, e2ee.KDFName, e2ee.Iterations, salt)
		if err != nil {
			return nil, err
		}
		w, err := e2ee.WrapPrivateKeys(s, pk.KEK, p.keys)
		if err != nil {
			return nil, err
		}
		master, _ := pbkdf2.Key(sha256.New, pw, salt, e2ee.Iterations, 32)
		kek := hkdfKey(master, nil, "privateline/v1/key-wrap")
		edDER := cat([]byte{0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20}, p.seed)
		pt := cat([]byte{1, 0, byte(len(edDER))}, edDER, []byte{byte(len(p.rsaDER) >> 8), byte(len(p.rsaDER))}, p.rsaDER)
		aad := cat([]byte("privateline/v1/private-keys\x00"), []byte(p.address))
		if hx(gcmSeal(kek, w.Nonce, pt, aad)) != hx(w.Ciphertext) {
			return nil, fmt.Errorf("SDK and generator disagree on the wrapped keys")
		}
		cases = append(cases, obj{
			"name": n, "result": "valid", "party": n, "address": string(p.address),
			"password": pw, "salt_hex": hx(salt), "kek_hex": hx(kek),
			"aad_hex": hx(aad), "nonce_hex": hx(w.Nonce), "plaintext_hex": hx(pt),
			"encrypted_private_key_b64": b64(w.Ciphertext), "nonce_b64": b64(w.Nonce), "salt_b64": b64(salt),
		})
		if n == "alice" {
			tampered := append([]byte(nil), w.Ciphertext...)
			tampered[100] ^= 1
			base := obj{"party": n, "kek_hex": hx(kek), "nonce_hex": hx(w.Nonce), "result": "invalid", "error": "unwrap_failed"}
			c1 := clone(base)
			c1["name"], c1["address"], c1["encrypted_private_key_b64"] = "wrong-address-in-aad", "mallory@example.org", b64(w.Ciphertext)
			c2 := clone(base)
			c2["name"], c2["address"], c2["encrypted_private_key_b64"] = "tampered-ciphertext", string(p.address), b64(tampered)
			cases = append(cases, c1, c2)
		}
	}
	return vectorFile("private-key wrapping", "§5", []string{
		"plaintext = 0x01 ‖ u16be(48) ‖ Ed25519 PKCS #8 (48 bytes) ‖ u16be(n) ‖ RSA PKCS #8 DER (n bytes).",
		"encrypted_private_key = AES-256-GCM(kek, nonce, plaintext, aad) with aad = \"privateline/v1/private-keys\" ‖ 0x00 ‖ address; ciphertext includes the 16-byte tag.",
		"kek is derived from password and salt as in kdf.json (600,000 iterations).",
	}, cases), nil
}

func genKeyBundle(ps map[string]*party) (obj, error) {
	var cases []obj
	for _, n := range partyNames {
		p := ps[n]
		full := parseObj(string(p.bundle.JSON()))
		body := clone(full)
		delete(body, "signature")
		cases = append(cases, obj{
			"name": n, "result": "valid", "party": n,
			"signed_hex": hx(cat([]byte("privateline/v1/key-bundle\x00"), mustCJSON(body))),
			"bundle":     string(p.bundle.JSON()),
		})
	}
	alice := parseObj(string(ps["alice"].bundle.JSON()))
	mut := func(name, errCode string, f func(o obj)) {
		o := clone(alice)
		f(o)
		cases = append(cases, obj{"name": name, "result": "invalid", "error": errCode, "bundle": string(mustCJSON(o))})
	}
	mut("address-changed", "bad_signature", func(o obj) { o["address"] = "mallory@example.org" })
	mut("identity-key-swapped", "bad_signature", func(o obj) { o["identity_key"] = parseObj(string(ps["bob"].bundle.JSON()))["identity_key"] })
	mut("encryption-key-swapped", "bad_signature", func(o obj) {
		o["encryption_key"] = parseObj(string(ps["bob"].bundle.JSON()))["encryption_key"]
	})
	mut("created-at-changed", "bad_signature", func(o obj) { o["created_at"] = o["created_at"].(int64) + 1 })
	mut("unknown-version", "unknown_suite", func(o obj) { o["version"] = int64(2) })
	mut("unknown-member", "malformed", func(o obj) { o["extra"] = true })
	mut("signature-not-base64", "malformed", func(o obj) { o["signature"] = "!!" })
	bobID := ps["bob"].keys.IdentityKey()
	// A bundle re-signed by its own (attacker's) key is valid but differs
	// from the pin: the pin check must catch it.
	cases = append(cases, obj{
		"name": "pinned-key-changed", "result": "invalid", "error": "key_changed",
		"pinned_identity_hex": hx(bobID[:]),
		"bundle":              string(ps["alice"].bundle.JSON()),
		"note":                "the bundle verifies, but its identity key is not the one pinned for this contact",
	})
	return vectorFile("key bundle", "§6", []string{
		"signature = Ed25519(identity key, \"privateline/v1/key-bundle\" ‖ 0x00 ‖ canonical JSON of the bundle without \"signature\").",
		"signed_hex is that whole signed byte string; Ed25519 is deterministic, so signatures reproduce exactly.",
	}, cases), nil
}

func genCanonical(ps map[string]*party) (obj, error) {
	inputs := []struct{ name, in string }{
		{"sorted-members", `{"b":1,"a":{"d":[],"c":{}},"A":null}`},
		{"whitespace", "{ \"a\" : [ 1 , true , false , null ] }\n"},
		{"already-canonical", `{"a":"x","b":[1,-2,3]}`},
		{"escapes", `"quote\" backslash\\ slash/ \b\f\n\r\t \u0000\u001f \u007f"`},
		{"escaped-slash", `"\/"`},
		{"escaped-ascii", `"\u0041"`},
		{"upper-case-hex-escape", `"\u001F"`},
		{"non-ascii-literal", "\"caf\u00e9 \u2028 \U0001F600\""},
		{"non-ascii-escaped", `"caf\u00e9 \ud83d\ude00"`},
		{"safe-integers", `[0,-1,9007199254740991,-9007199254740991]`},
		{"member-order-by-bytes", `{"aa":1,"a":2,"a_":3,"aA":4,"Z":5}`},
		{"fraction", `1.5`},
		{"integral-fraction", `1.0`},
		{"exponent", `1e3`},
		{"unsafe-integer", `9007199254740992`},
		{"minus-zero", `-0`},
		{"leading-zero", `01`},
		{"duplicate-member", `{"a":1,"a":2}`},
		{"lone-surrogate", `"\ud800"`},
		{"non-ascii-member-name", "{\"\u00e9\":1}"},
		{"trailing-comma", `[1,]`},
		{"trailing-data", `{} {}`},
		{"control-character-raw", "\"a\tb\""},
	}
	var cases []obj
	for _, c := range inputs {
		o := obj{"name": c.name, "input": c.in, "input_hex": hx([]byte(c.in))}
		canon, err := cjson.Canonicalize([]byte(c.in))
		if err != nil {
			o["result"] = "invalid"
			o["is_canonical"] = false
			o["note"] = "outside the canonical subset: " + err.Error()
		} else {
			o["result"] = "valid"
			o["canonical"] = string(canon)
			o["canonical_hex"] = hx(canon)
			o["is_canonical"] = string(canon) == c.in
		}
		cases = append(cases, o)
	}
	return vectorFile("canonical JSON", "§2", []string{
		"valid: the input is inside the subset; canonical is its canonical form (what a signer hashes).",
		"invalid: a strict parser refuses the input. A client whose parser is laxer (JSON.parse accepts 1.0, duplicates) must still report is_canonical = false: re-encode the parsed value and compare bytes.",
		"is_canonical: whether the input bytes equal the canonical encoding of their value — the check applied to plaintexts and signed documents.",
	}, cases), nil
}

func genPadding(ps map[string]*party) (obj, error) {
	var cases []obj
	s := newStream("padding")
	for _, n := range []int{0, 1, 255, 256, 257, 511} {
		p := s.bytes(n)
		cases = append(cases, obj{"name": fmt.Sprintf("length-%d", n), "result": "valid", "plaintext_hex": hx(p), "padded_hex": hx(e2ee.Pad(p))})
	}
	bad := func(name string, b []byte) {
		cases = append(cases, obj{"name": name, "result": "invalid", "error": "bad_padding", "padded_hex": hx(b)})
	}
	bad("empty", nil)
	bad("not-a-multiple-of-256", append(make([]byte, 254), 0x80))
	bad("all-zero", make([]byte, 256))
	bad("no-marker", append(make([]byte, 255), 0x01))
	bad("marker-then-256-zeros", append(append(make([]byte, 255), 0x80), make([]byte, 256)...))
	bad("wrong-marker", append(append(make([]byte, 200), 0x81), make([]byte, 55)...))
	return vectorFile("plaintext padding", "§7.5", []string{
		"padded = plaintext ‖ 0x80 ‖ 0x00 × k, with the smallest k ≥ 0 making the length a multiple of 256 (ISO/IEC 7816-4 padding; always at least one byte).",
		"Unpadding refuses lengths that are 0 or not multiples of 256, a missing 0x80, and padding longer than 256 bytes.",
	}, cases), nil
}
