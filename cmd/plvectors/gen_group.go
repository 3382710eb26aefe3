package main

import (
	"time"

	"github.com/privateline/privateline/clients/go/e2ee"
)

var (
	epoch1At = time.UnixMilli(1767398400000) // 2026-01-03T00:00:00Z
	epoch2At = time.UnixMilli(1767484800000) // 2026-01-04T00:00:00Z
)

const groupID = "g.team"

type epochKey struct {
	gk  *e2ee.GroupKey
	raw []byte
	doc string
}

// groupKeys makes the two epochs used by groupkey.json and groupmessage.json.
func groupKeys(ps map[string]*party) (map[int64]*epochKey, []obj, error) {
	out := map[int64]*epochKey{}
	var cases []obj
	for _, e := range []struct {
		epoch   int64
		at      time.Time
		members []string
	}{{1, epoch1At, []string{"alice", "bob", "carol"}}, {2, epoch2At, []string{"alice", "bob"}}} {
		rec := newStream("groupkey/epoch-" + string(rune('0'+e.epoch)))
		var bs []*e2ee.KeyBundle
		for _, m := range e.members {
			bs = append(bs, ps[m].bundle)
		}
		gk, doc, err := e2ee.SealGroupKey(rec, ps["alice"].keys, groupID, e.epoch, e.at, bs)
		if err != nil {
			return nil, nil, err
		}
		body := parseObj(string(doc))
		delete(body, "signature")
		delete(body, "keys")
		out[e.epoch] = &epochKey{gk: gk, raw: rec.reads[0], doc: string(doc)}
		cases = append(cases, obj{
			"name": "epoch-" + string(rune('0'+e.epoch)), "result": "valid", "distributor": "alice", "group": groupID,
			"epoch": e.epoch, "created_at_ms": e.at.UnixMilli(), "members": e.members, "openers": e.members,
			"group_key_hex": hx(rec.reads[0]),
			"signed_hex":    hx(cat([]byte("privateline/v1/group-key\x00"), mustCJSON(body))),
			"document":      string(doc),
		})
	}
	return out, cases, nil
}

func genGroupKey(ps map[string]*party) (obj, error) {
	eks, cases, err := groupKeys(ps)
	if err != nil {
		return nil, err
	}
	d1 := eks[1].doc
	neg := func(name, errCode, doc, opener, distributor string, current int64) {
		cases = append(cases, obj{"name": name, "result": "invalid", "error": errCode, "document": doc,
			"opener": opener, "distributor": distributor, "current_epoch": current})
	}
	mut := func(f func(o obj)) string {
		o := parseObj(d1)
		f(o)
		return string(mustCJSON(o))
	}
	neg("tampered-signature", "bad_signature", mut(func(o obj) { o["signature"] = flipB64(o["signature"].(string), 5) }), "bob", "alice", 0)
	neg("tampered-created-at", "bad_signature", mut(func(o obj) { o["created_at"] = o["created_at"].(int64) + 1 }), "bob", "alice", 0)
	neg("tampered-wrapped-key", "wrap_mismatch", mut(func(o obj) {
		k := o["keys"].(obj)
		k[keyID(ps["bob"])] = k[keyID(ps["carol"])]
	}), "bob", "alice", 0)
	neg("tampered-key-digest", "bad_signature", mut(func(o obj) {
		k := o["key_digests"].(obj)
		k[keyID(ps["bob"])] = k[keyID(ps["carol"])]
	}), "bob", "alice", 0)
	view := func(who string) string {
		return mut(func(o obj) { o["keys"] = obj{keyID(ps[who]): o["keys"].(obj)[keyID(ps[who])]} })
	}
	cases = append(cases, obj{"name": "epoch-1-bob-view", "result": "valid", "distributor": "alice", "group": groupID,
		"epoch": int64(1), "created_at_ms": epoch1At.UnixMilli(), "members": []string{"alice", "bob", "carol"},
		"openers": []string{"bob"}, "group_key_hex": hx(eks[1].raw), "document": view("bob")})
	neg("view-of-another-member", "not_recipient", view("carol"), "bob", "alice", 0)
	neg("wrap-without-digest", "wrap_mismatch", mut(func(o obj) {
		o["keys"].(obj)["00000000000000000000000000000000"] = o["keys"].(obj)[keyID(ps["bob"])]
	}), "bob", "alice", 0)
	neg("missing-key-digests", "malformed", mut(func(o obj) { delete(o, "key_digests") }), "bob", "alice", 0)
	neg("other-distributor", "wrong_sender", d1, "bob", "carol", 0)
	neg("stale-epoch", "stale_epoch", d1, "bob", "alice", 1)
	neg("removed-member", "not_recipient", eks[2].doc, "carol", "alice", 0)
	neg("unknown-suite", "unknown_suite", mut(func(o obj) { o["suite"] = "pl2" }), "bob", "alice", 0)
	neg("members-not-sorted", "malformed", mut(func(o obj) {
		o["members"] = []any{"bob@example.org", "alice@example.org", "carol@chat.other.example"}
	}), "bob", "alice", 0)
	s := newStream("groupkey/evil")
	A, B, C := ps["alice"], ps["bob"], ps["carol"]
	evilBody := func(members ...string) obj {
		return obj{"v": int64(1), "suite": "pl1", "group": groupID, "epoch": int64(3), "from": "alice@example.org",
			"created_at": epoch2At.UnixMilli() + 1000, "members": toAny(members)}
	}
	k := s.bytes(32)
	neg("distributor-not-member", "not_member", evilGroupKey(s, A, evilBody("bob@example.org", "carol@chat.other.example"), k, []*party{B, C}), "bob", "alice", 0)
	neg("member-without-key", "recipients_mismatch",
		evilGroupKey(s, A, evilBody("alice@example.org", "bob@example.org", "carol@chat.other.example"), k, []*party{A, B}), "bob", "alice", 0)
	return vectorFile("group key distribution", "§8.1", []string{
		"signature = Ed25519(distributor identity key, \"privateline/v1/group-key\" ‖ 0x00 ‖ canonical JSON of the document without \"signature\" and without \"keys\").",
		"key_digests[key_id] = base64(SHA-256(wrapped key bytes)), one per member; keys holds every member's wrap in the uploaded document and only the member's own in a member's view (\"-view\" cases).",
		"keys[key_id] = RSA-OAEP-SHA256(member encryption key, group key, label \"privateline/v1/group-key\"); OAEP is randomized, so check keys by decrypting.",
		"Invalid cases: open document as opener, with distributor's pinned bundle, when the client already holds current_epoch (0: none).",
	}, cases), nil
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func genGroupMessage(ps map[string]*party) (obj, error) {
	eks, _, err := groupKeys(ps)
	if err != nil {
		return nil, err
	}
	ids := newStream("groupmessage/ids")
	var cases []obj
	var envs []string
	for _, m := range []struct {
		name, sender string
		epoch        int64
		at           time.Time
		body         string
		openers      []string
	}{
		{"bob-epoch-1", "bob", 1, epoch1At.Add(time.Hour), "Hi team \u2014 epoch one", []string{"alice", "bob", "carol"}},
		{"alice-epoch-2", "alice", 2, epoch2At.Add(time.Hour), "Carol has left; new key.", []string{"alice", "bob"}},
	} {
		rec := newStream("groupmessage/" + m.name)
		d := e2ee.Draft{ID: hx(ids.bytes(16)), SentAt: m.at, Message: &e2ee.Message{Type: "text", Body: m.body}}
		ek := eks[m.epoch]
		env, err := e2ee.SealGroup(rec, ps[m.sender].keys, ek.gk, d)
		if err != nil {
			return nil, err
		}
		aad, _ := env.Header.AAD()
		pt, _ := e2ee.EncodeMessage(d.Message)
		js, _ := env.MarshalJSON()
		envs = append(envs, string(js))
		cases = append(cases, obj{
			"name": m.name, "result": "valid", "sender": m.sender, "openers": m.openers,
			"group": groupID, "epoch": m.epoch, "group_key_hex": hx(ek.raw),
			"id": d.ID, "sent_at_ms": m.at.UnixMilli(),
			"plaintext": string(pt), "padded_plaintext_hex": hx(e2ee.Pad(pt)),
			"salt_hex": hx(rec.reads[0]), "nonce_hex": hx(rec.reads[1]),
			"message_key_hex": hx(hkdfKey(ek.raw, rec.reads[0], "privateline/v1/group-message")),
			"aad":             string(aad), "ciphertext_hex": hx(env.Ciphertext),
			"signed_hex":    hx(cat([]byte("privateline/v1/group-envelope\x00"), sum(aad), sum(env.Salt, env.Nonce, env.Ciphertext))),
			"signature_hex": hx(env.Signature), "envelope": string(js),
		})
	}
	neg := func(name, errCode, env, opener, sender string, epoch, latest int64) {
		c := obj{"name": name, "result": "invalid", "error": errCode, "envelope": env, "opener": opener, "sender": sender,
			"key_epoch": epoch, "group_key_hex": hx(eks[epoch].raw)}
		if latest != 0 {
			c["latest_epoch"] = latest
		}
		cases = append(cases, c)
	}
	mut := func(base string, f func(o obj)) string {
		o := parseObj(base)
		f(o)
		return string(mustCJSON(o))
	}
	hdr := func(o obj) obj { return o["header"].(obj) }
	m1 := envs[0]
	neg("tampered-salt", "bad_signature", mut(m1, func(o obj) { o["salt"] = flipB64(o["salt"].(string), 0) }), "alice", "bob", 1, 0)
	neg("tampered-ciphertext", "bad_signature", mut(m1, func(o obj) { o["ciphertext"] = flipB64(o["ciphertext"].(string), 7) }), "alice", "bob", 1, 0)
	neg("tampered-header", "bad_signature", mut(m1, func(o obj) { hdr(o)["id"] = "00000000000000000000000000000000" }), "alice", "bob", 1, 0)
	neg("wrong-epoch-key", "wrong_epoch", m1, "alice", "bob", 2, 0)
	neg("other-group", "wrong_group", mut(m1, func(o obj) { hdr(o)["group"], hdr(o)["conversation"] = "g.other", "g.other" }), "alice", "bob", 1, 0)
	neg("wrong-sender", "wrong_sender", m1, "carol", "alice", 1, 0)
	neg("conversation-not-group", "malformed", mut(m1, func(o obj) { hdr(o)["conversation"] = "c.elsewhere" }), "alice", "bob", 1, 0)
	neg("group-header-with-to", "malformed", mut(m1, func(o obj) { hdr(o)["to"] = []any{"alice@example.org"} }), "alice", "bob", 1, 0)
	neg("old-epoch-is-fine-before-rotation", "", m1, "alice", "bob", 1, 2)
	cases[len(cases)-1]["result"] = "valid"
	delete(cases[len(cases)-1], "error")

	s := newStream("groupmessage/evil")
	h1 := parseObj(m1)["header"].(obj)
	pt1 := pad([]byte(cases[0]["plaintext"].(string)))
	stale := clone(h1)
	stale["sent_at"] = epoch2At.UnixMilli() + 5000
	neg("old-epoch-after-rotation", "stale_epoch", evilGroup(s, ps["bob"], stale, pt1, eks[1].raw), "alice", "bob", 1, 2)
	removed := clone(h1)
	removed["from"], removed["epoch"] = "carol@chat.other.example", int64(2)
	neg("removed-member-sends", "not_member", evilGroup(s, ps["carol"], removed, pt1, eks[2].raw), "bob", "carol", 2, 0)
	noMarker := make([]byte, 256)
	neg("bad-padding", "bad_padding", evilGroup(s, ps["bob"], clone(h1), noMarker, eks[1].raw), "alice", "bob", 1, 0)

	return vectorFile("group message", "§8.2", []string{
		"mk = HKDF-SHA256(ikm = group key, salt = salt (32 bytes), info = \"privateline/v1/group-message\", 32); ciphertext = AES-256-GCM(mk, nonce, padded plaintext, aad = canonical header).",
		"signature = Ed25519(sender identity key, \"privateline/v1/group-envelope\" ‖ 0x00 ‖ SHA-256(aad) ‖ SHA-256(salt ‖ nonce ‖ ciphertext)). Group messages are fully deterministic given salt and nonce.",
		"Group keys and member lists are those of groupkey.json (epoch 1: alice, bob, carol, created 2026-01-03; epoch 2: alice, bob, created 2026-01-04).",
		"Cases with opener/key_epoch: open with the key of key_epoch; latest_epoch, if present, is the newest epoch the opener holds (its created_at bounds old-epoch messages).",
	}, cases), nil
}
