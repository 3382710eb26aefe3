// Prints fixtures for clients/web/src/crypto/keychange.test.ts (not built by ./...).
package main

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/keybundle"
	"github.com/privateline/privateline/keylog"
	"github.com/privateline/privateline/merkle"
)

type signer struct{ k ed25519.PrivateKey }

func (s signer) Public() ed25519.PublicKey { return s.k.Public().(ed25519.PublicKey) }
func (s signer) Sign(m []byte) []byte      { return ed25519.Sign(s.k, m) }

func key(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("privateline rotate fixtures/" + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

func stmt(server string, old, next ed25519.PrivateKey, label string) keylog.ServerKeyChange {
	c := keylog.ServerKeyChange{Server: "x", CreatedAt: time.UnixMilli(1700000000000), OldKey: old.Public().(ed25519.PublicKey), NewKey: next.Public().(ed25519.PublicKey)}
	c.Server = keylogServer(server)
	in := c.SigningInput()
	if label != "" {
		in = append(append([]byte(label), 0), in[len(keylog.LabelServerKeyChange)+1:]...)
	}
	c.Signature = ed25519.Sign(old, in)
	return c
}

func main() {
	b, _ := os.ReadFile("spec/vectors/parties.json")
	var f struct{ Cases []struct{ Key_bundle string } }
	json.Unmarshal(b, &f)
	alice, err := keybundle.Parse([]byte(f.Cases[0].Key_bundle))
	if err != nil {
		panic(err)
	}
	const server = "example.org"
	k1, k2, k3 := key("k1"), key("k2"), key("k3")
	var tree merkle.Tree
	salt := make([]byte, keylog.SaltSize)
	leaf := keylog.Leaf{Server: server, Index: 0, Kind: keylog.KindKey, Commitment: keylog.KeyCommitment(salt, alice), Timestamp: 1700000000000}
	tree.Append(leaf.Canonical())
	lookup := func(k ed25519.PrivateKey, since uint64, changes []keylog.ServerKeyChange) string {
		h := keylog.TreeHead{Server: server, TreeSize: tree.Size(), RootHash: tree.Root(), Timestamp: 1700000000000 + int64(tree.Size())}
		h.Signature = ed25519.Sign(k, h.SigningInput())
		p, _ := merkle.InclusionProof(&tree, 0, h.TreeSize)
		l := &keylog.Lookup{Address: alice.Address, Bundle: alice, Entry: keylog.Entry{Leaf: leaf, Salt: salt, Signature: ed25519.Sign(k, leaf.SigningInput())},
			InclusionProof: p, Head: h, ServerKey: k.Public().(ed25519.PublicKey), KeyChanges: changes}
		if since > 0 {
			l.Since = since
			l.Consistency, _ = merkle.ConsistencyProof(&tree, since, h.TreeSize)
		}
		raw, err := l.MarshalJSON()
		if err != nil {
			panic(err)
		}
		return string(raw)
	}
	s12 := stmt(server, k1, k2, "")
	out := map[string]any{}
	out["lookup1"] = lookup(k1, 0, nil)
	tree.Append([]byte("another entry"))
	out["lookup2"] = lookup(k2, 1, []keylog.ServerKeyChange{s12})
	out["lookup2_nochain"] = lookup(k2, 1, nil)
	out["lookup3"] = lookup(k3, 1, []keylog.ServerKeyChange{s12, stmt(server, k2, k3, "")})
	out["lookup3_gap"] = lookup(k3, 1, []keylog.ServerKeyChange{stmt(server, k2, k3, "")})
	out["lookup2_label"] = lookup(k2, 1, []keylog.ServerKeyChange{stmt(server, k1, k2, "privateline/v1/federation-server")})
	out["lookup2_other_server"] = lookup(k2, 1, []keylog.ServerKeyChange{stmt("other.example", k1, k2, "")})
	out["lookup2_by_old"] = lookup(k1, 1, []keylog.ServerKeyChange{s12}) // chain present, but signed by the old key: pin must stay
	out["k1"], out["k2"], out["k3"] = k1.Public(), k2.Public(), k3.Public()
	out["s12"] = json.RawMessage(s12.Marshal())
	j, _ := json.MarshalIndent(out, "", "  ")
	fmt.Println(string(j))
}

func keylogServer(s string) privateline.ServerName { return privateline.ServerName(s) }
