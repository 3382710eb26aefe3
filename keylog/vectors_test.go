package keylog

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/keybundle"
	"github.com/privateline/privateline/merkle"
)

// TestVectors checks spec/vectors/directory.json (made by cmd/plvectors):
// every leaf, commitment, signature, tree head, consistency proof and
// lookup is recomputed or verified, and every invalid case is refused with
// its code.
func TestVectors(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "spec", "vectors", "directory.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Cases []map[string]string }
	// Numbers are not used by this file's cases; read everything as strings.
	var raw struct{ Cases []map[string]any }
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	for _, c := range raw.Cases {
		m := map[string]string{}
		for k, v := range c {
			if s, ok := v.(string); ok {
				m[k] = s
			}
		}
		f.Cases = append(f.Cases, m)
	}
	unb64 := func(s string) []byte { b, _ := base64.StdEncoding.DecodeString(s); return b }
	unhex := func(s string) []byte { b, _ := hex.DecodeString(s); return b }

	var sk ed25519.PrivateKey
	var server privateline.ServerName
	heads := map[uint64]*TreeHead{}
	seen := map[string]int{}
	for _, c := range f.Cases {
		seen[c["kind"]]++
		t.Run(c["name"], func(t *testing.T) {
			valid := c["result"] == "valid"
			switch c["kind"] {
			case "server_key":
				sk = ed25519.NewKeyFromSeed(unhex(c["server_seed_hex"]))
				server = privateline.ServerName(c["server"])
				if !bytes.Equal(sk.Public().(ed25519.PublicKey), unb64(c["server_key_b64"])) {
					t.Fatal("server key does not derive from its seed")
				}
			case "key_change":
				old, err1 := keybundle.Parse([]byte(c["old_bundle"]))
				next, err2 := keybundle.Parse([]byte(c["new_bundle"]))
				if err1 != nil || err2 != nil {
					t.Fatal(err1, err2)
				}
				err := keybundle.VerifyKeyChange(old, next, unb64(c["old_key_signature_b64"]))
				if !valid {
					if string(keybundle.ReasonOf(err)) != c["error"] {
						t.Fatalf("refused with %v, want %s", err, c["error"])
					}
					return
				}
				if err != nil || hex.EncodeToString(keybundle.KeyChangeInput(old, next)) != c["signed_hex"] {
					t.Fatalf("key change: %v", err)
				}
			case "leaf":
				l, err := ParseLeaf([]byte(c["leaf"]))
				if err != nil || string(l.Canonical()) != c["leaf"] {
					t.Fatalf("leaf: %v", err)
				}
				salt := unb64(c["salt_b64"])
				var want [32]byte
				if c["bundle"] != "" {
					kb, err := keybundle.Parse([]byte(c["bundle"]))
					if err != nil {
						t.Fatal(err)
					}
					want = KeyCommitment(salt, kb)
				} else {
					var last [32]byte
					copy(last[:], unhex(c["last_bundle_sha256_hex"]))
					want = DeleteCommitment(salt, privateline.Address(c["address"]), last)
				}
				h := l.Hash()
				if want != l.Commitment || base64.StdEncoding.EncodeToString(want[:]) != c["commitment_b64"] ||
					hex.EncodeToString(h[:]) != c["leaf_hash_hex"] || hex.EncodeToString(l.SigningInput()) != c["signed_hex"] {
					t.Fatal("commitment, leaf hash or signed bytes differ")
				}
				if sig := ed25519.Sign(sk, l.SigningInput()); base64.StdEncoding.EncodeToString(sig) != c["signature_b64"] {
					t.Fatal("entry signature differs")
				}
			case "tree_head":
				h, err := ParseTreeHead([]byte(c["tree_head"]))
				if err != nil || h.Verify(sk.Public().(ed25519.PublicKey)) != nil || hex.EncodeToString(h.SigningInput()) != c["signed_hex"] {
					t.Fatalf("tree head: %v", err)
				}
				heads[h.TreeSize] = h
			case "consistency":
				cp, err := ParseConsistency([]byte(c["consistency"]))
				if err != nil {
					t.Fatal(err)
				}
				from, to := heads[cp.From], heads[cp.To]
				if err := merkle.VerifyConsistency(cp.From, cp.To, from.RootHash, to.RootHash, cp.Proof); err != nil {
					t.Fatalf("consistency %d→%d: %v", cp.From, cp.To, err)
				}
			case "lookup":
				lk, err := ParseLookup([]byte(c["lookup"]), 0)
				if err == nil {
					err = lk.Verify(sk.Public().(ed25519.PublicKey), server, privateline.Address(c["address"]))
				}
				if valid && err != nil {
					t.Fatalf("lookup: %v", err)
				}
				if !valid && string(keybundle.ReasonOf(err)) != c["error"] {
					t.Fatalf("refused with %v, want %s", err, c["error"])
				}
			default:
				t.Fatalf("unknown kind %q", c["kind"])
			}
		})
	}
	for _, k := range []string{"server_key", "key_change", "leaf", "tree_head", "consistency", "lookup"} {
		if seen[k] == 0 {
			t.Errorf("no %s cases", k)
		}
	}
}
