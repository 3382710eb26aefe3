package main

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/e2ee"
	"github.com/privateline/privateline/keybundle"
	"github.com/privateline/privateline/keylog"
	"github.com/privateline/privateline/merkle"
)

// genDirectory writes the key change and the key directory's log (§6.3,
// §6.4): a small log of example.org (alice registers, bob registers, alice
// changes her keys, bob's account is deleted) signed by a fixed server key,
// with every leaf, commitment, entry signature, tree head, lookup answer
// and consistency proof, and tampered answers a client must refuse.
func genDirectory(ps map[string]*party) (obj, error) {
	const server = privateline.ServerName("example.org")
	seed := sha256.Sum256([]byte("privateline vectors/server/" + string(server)))
	sk := ed25519.NewKeyFromSeed(seed[:])
	pub := sk.Public().(ed25519.PublicKey)
	alice, bob := ps["alice"], ps["bob"]

	// Alice's key change: a new identity key, the same encryption key.
	seed2 := sha256.Sum256([]byte("privateline vectors/identity/alice/2"))
	keys2, err := e2ee.NewPrivateKeys(alice.address, seed2[:], alice.rsaDER)
	if err != nil {
		return nil, err
	}
	next, err := e2ee.NewKeyBundle(keys2, bundleTime.Add(24*time.Hour))
	if err != nil {
		return nil, err
	}
	changeSig, err := e2ee.SignKeyChange(alice.keys, alice.bundle, next)
	if err != nil {
		return nil, err
	}
	if err := keybundle.VerifyKeyChange(alice.bundle, next, changeSig); err != nil {
		return nil, fmt.Errorf("SDK and keybundle disagree on the key change: %w", err)
	}
	cases := []obj{{
		"name": "server-key", "result": "valid", "kind": "server_key", "server": string(server),
		"server_seed_hex": hx(seed[:]), "server_key_b64": b64(pub),
	}, {
		"name": "key-change", "result": "valid", "kind": "key_change",
		"identity_seed_hex":     hx(seed2[:]),
		"old_bundle":            string(alice.bundle.JSON()),
		"new_bundle":            string(next.JSON()),
		"signed_hex":            hx(keybundle.KeyChangeInput(alice.bundle, next)),
		"old_key_signature_b64": b64(changeSig),
	}, {
		"name": "key-change-signed-by-new-key", "result": "invalid", "error": "bad_signature", "kind": "key_change",
		"old_bundle": string(alice.bundle.JSON()), "new_bundle": string(next.JSON()),
		"old_key_signature_b64": b64(ed25519.Sign(ed25519.NewKeyFromSeed(seed2[:]), keybundle.KeyChangeInput(alice.bundle, next))),
	}, {
		"name": "key-change-back-to-older", "result": "invalid", "error": "stale_bundle", "kind": "key_change",
		"old_bundle": string(next.JSON()), "new_bundle": string(alice.bundle.JSON()),
		"old_key_signature_b64": b64(ed25519.Sign(ed25519.NewKeyFromSeed(seed2[:]), keybundle.KeyChangeInput(next, alice.bundle))),
	}}

	// The log.
	var tree merkle.Tree
	type entry struct {
		leaf   keylog.Leaf
		salt   []byte
		sig    []byte
		bundle *keybundle.KeyBundle
	}
	var entries []entry
	add := func(kind keylog.Kind, b *keybundle.KeyBundle, deleted privateline.Address, last *keybundle.KeyBundle) {
		i := uint64(len(entries))
		salt := newStream(fmt.Sprintf("directory/salt/%d", i)).bytes(keylog.SaltSize)
		l := keylog.Leaf{Server: server, Index: i, Kind: kind, Timestamp: bundleTime.UnixMilli() + int64(i)*1000}
		if kind == keylog.KindKey {
			l.Commitment = keylog.KeyCommitment(salt, b)
		} else {
			l.Commitment = keylog.DeleteCommitment(salt, deleted, last.Hash())
		}
		tree.Append(l.Canonical())
		entries = append(entries, entry{leaf: l, salt: salt, sig: ed25519.Sign(sk, l.SigningInput()), bundle: b})
	}
	add(keylog.KindKey, alice.bundle, "", nil)
	add(keylog.KindKey, bob.bundle, "", nil)
	add(keylog.KindKey, next, "", nil)
	add(keylog.KindDelete, nil, bob.address, bob.bundle)

	for _, e := range entries {
		c := obj{
			"name": fmt.Sprintf("leaf-%d-%s", e.leaf.Index, e.leaf.Kind), "result": "valid", "kind": "leaf",
			"salt_b64":       b64(e.salt),
			"commitment_b64": b64(e.leaf.Commitment[:]),
			"leaf":           string(e.leaf.Canonical()),
			"leaf_hash_hex":  hx(hashBytes(merkle.LeafHash(e.leaf.Canonical()))),
			"signed_hex":     hx(e.leaf.SigningInput()),
			"signature_b64":  b64(e.sig),
		}
		if e.bundle != nil {
			c["bundle"] = string(e.bundle.JSON())
		} else {
			c["address"] = string(bob.address)
			c["last_bundle_sha256_hex"] = hx(hashBytes(bob.bundle.Hash()))
		}
		cases = append(cases, c)
	}
	heads := map[uint64]keylog.TreeHead{}
	for size := uint64(1); size <= tree.Size(); size++ {
		root, _ := merkle.Root(&tree, size)
		h := keylog.TreeHead{Server: server, TreeSize: size, RootHash: root, Timestamp: bundleTime.UnixMilli() + int64(size)*1000 + 500}
		h.Signature = ed25519.Sign(sk, h.SigningInput())
		heads[size] = h
		hj, _ := h.MarshalJSON()
		cases = append(cases, obj{
			"name": fmt.Sprintf("tree-head-%d", size), "result": "valid", "kind": "tree_head",
			"root_hash_b64": b64(root[:]), "signed_hex": hx(h.SigningInput()), "tree_head": string(hj),
		})
	}
	for from := uint64(1); from < tree.Size(); from++ {
		p, _ := merkle.ConsistencyProof(&tree, from, tree.Size())
		c := keylog.Consistency{From: from, To: tree.Size(), Proof: p}
		cj, _ := c.MarshalJSON()
		cases = append(cases, obj{"name": fmt.Sprintf("consistency-%d-%d", from, tree.Size()), "result": "valid", "kind": "consistency", "consistency": string(cj)})
	}

	lookup := func(e entry, size uint64) *keylog.Lookup {
		p, _ := merkle.InclusionProof(&tree, e.leaf.Index, size)
		return &keylog.Lookup{Address: e.bundle.Address, Bundle: e.bundle, Entry: keylog.Entry{Leaf: e.leaf, Salt: e.salt, Signature: e.sig}, InclusionProof: p, Head: heads[size], ServerKey: pub}
	}
	for _, l := range []struct {
		name string
		e    entry
		size uint64
	}{{"lookup-alice-first", entries[0], 2}, {"lookup-bob", entries[1], 2}, {"lookup-alice-after-change", entries[2], 4}} {
		lj, _ := lookup(l.e, l.size).MarshalJSON()
		cases = append(cases, obj{"name": l.name, "result": "valid", "kind": "lookup", "address": string(l.e.bundle.Address), "lookup": string(lj)})
	}
	bad := func(name, errCode string, f func(o obj)) {
		lj, _ := lookup(entries[2], 4).MarshalJSON()
		o := parseObj(string(lj))
		f(o)
		cases = append(cases, obj{"name": name, "result": "invalid", "error": errCode, "kind": "lookup", "address": string(alice.address), "lookup": string(mustCJSON(o))})
	}
	other := parseObj(func() string { j, _ := lookup(entries[1], 4).MarshalJSON(); return string(j) }())
	bad("root-hash-changed", "bad_signature", func(o obj) { o["tree_head"].(obj)["root_hash"] = other["entry"].(obj)["salt"] })
	bad("salt-changed", "bad_proof", func(o obj) { o["entry"].(obj)["salt"] = other["entry"].(obj)["salt"] })
	bad("entry-of-another-leaf", "bad_proof", func(o obj) { o["entry"] = other["entry"] })
	bad("inclusion-proof-of-another-leaf", "bad_proof", func(o obj) { o["inclusion_proof"] = other["inclusion_proof"] })
	bad("bundle-of-another-account", "bad_proof", func(o obj) { o["key_bundle"] = other["key_bundle"]; o["address"] = other["address"] })
	bad("old-bundle-with-new-entry", "bad_proof", func(o obj) { o["key_bundle"] = parseObj(string(alice.bundle.JSON())) })

	return vectorFile("key change and key directory", "§6.3–§6.4", []string{
		"The directory is example.org; its Ed25519 key (case server-key) has seed SHA-256(\"privateline vectors/server/example.org\"); every lookup carries its public key as server_key.",
		"The log: 0 alice's bundle, 1 bob's bundle, 2 alice's new bundle (key change), 3 bob's account deleted. Salts are fixed; a server draws them at random.",
		"key_change: signed_hex = \"privateline/v1/key-change\" ‖ 0x00 ‖ SHA-256(old bundle) ‖ SHA-256(new bundle), signed by the old identity key; the new identity key's seed is SHA-256(\"privateline vectors/identity/alice/2\").",
		"leaf: commitment = HMAC-SHA256(salt, label ‖ 0x00 ‖ …) as in §6.4; leaf_hash = SHA-256(0x00 ‖ leaf); signature over signed_hex by the server key.",
		"lookup: verify as §6.4 steps 1–6 for the given address on example.org with the server key; invalid ones name the first failing step's code.",
	}, cases), nil
}

func hashBytes(h [32]byte) []byte { return h[:] }
