package envelope

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/cjson"
)

// Limits of a group-key document (spec/e2ee.md §8.1, §11).
const (
	MaxGroupKeySize = 512 << 10 // serialized document bytes
	MaxMembers      = 512       // members of one epoch
	wrapSize        = 512       // an RSA-4096 OAEP output
)

var keyIDRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// GroupKey is the public part of an uploaded group-key document.
type GroupKey struct {
	Group      string
	Epoch      int64
	From       privateline.Address
	Members    []privateline.Address // sorted, unique
	CreatedAt  time.Time
	KeyDigests map[string]string // key id → base64 SHA-256 of its wrap
	Keys       map[string]string // key id → base64 wrap; same ids as KeyDigests
	// Signed is the canonical JSON of the document without "keys" (the
	// signed part and its signature): a member's view is Signed with that
	// member's wrap added (View).
	Signed []byte
}

// ParseGroupKey checks the structure of a group-key document as uploaded
// (every member's wrap in "keys", each matching its digest) and returns its
// public part. It does not verify the signature: members do. A too large
// document is a TooLarge error, anything else refused an Invalid one.
func ParseGroupKey(data []byte) (*GroupKey, error) {
	const op = "envelope.ParseGroupKey"
	if len(data) > MaxGroupKeySize {
		return nil, privateline.E(op, privateline.TooLarge, fmt.Sprintf("a group key document may be at most %d bytes", MaxGroupKeySize))
	}
	bad := func(msg string) error { return privateline.E(op, privateline.Invalid, "group key: "+msg) }
	v, err := cjson.Parse(data)
	if err != nil {
		return nil, bad("not JSON in the canonical subset")
	}
	o := cjson.NewObject(v)
	ver := o.Int("v", true, 0, maxSafeInt)
	suite := o.String("suite", true)
	if o.Err() == nil && (ver != 1 || suite != "pl1") {
		return nil, bad(`"v" must be 1 and "suite" "pl1"`)
	}
	g := &GroupKey{
		Group: o.String("group", true),
		Epoch: o.Int("epoch", true, 1, maxSafeInt),
		From:  privateline.Address(o.String("from", true)),
	}
	members := o.Array("members", true)
	g.CreatedAt = time.UnixMilli(o.Int("created_at", true, 0, maxSafeInt))
	digests := o.Object("key_digests", true)
	keys := o.Object("keys", true)
	o.Bytes("signature", true, 64, 64)
	if err := o.Done(false); err != nil {
		return nil, bad(err.Error())
	}
	if !tokenRE.MatchString(g.Group) {
		return nil, bad(`"group" must be 1 to 128 of [A-Za-z0-9._:@-]`)
	}
	if !validAddress(string(g.From)) {
		return nil, bad(`"from" must be an address`)
	}
	if len(members) < 1 || len(members) > MaxMembers {
		return nil, bad(fmt.Sprintf(`"members" must list 1 to %d addresses`, MaxMembers))
	}
	for i, m := range members {
		a, ok := m.(string)
		if !ok || !validAddress(a) || (i > 0 && string(g.Members[i-1]) >= a) {
			return nil, bad(`"members" must hold addresses, sorted bytewise without repeats`)
		}
		g.Members = append(g.Members, privateline.Address(a))
	}
	if !slices.Contains(g.Members, g.From) {
		return nil, bad(`"from" must be a member`)
	}
	if g.KeyDigests, err = b64Map(digests, sha256.Size); err != nil {
		return nil, bad(`"key_digests": ` + err.Error())
	}
	if g.Keys, err = b64Map(keys, wrapSize); err != nil {
		return nil, bad(`"keys": ` + err.Error())
	}
	if len(g.KeyDigests) != len(g.Members) {
		return nil, bad(`"key_digests" must have one entry per member`)
	}
	if len(g.Keys) != len(g.KeyDigests) {
		return nil, bad(`"keys" must hold every member's wrap`)
	}
	for id, w := range g.Keys {
		d, ok := g.KeyDigests[id]
		raw, _ := base64.StdEncoding.DecodeString(w)
		sum := sha256.Sum256(raw)
		if !ok || d != base64.StdEncoding.EncodeToString(sum[:]) {
			return nil, bad(`every wrap in "keys" must match its entry in "key_digests"`)
		}
	}
	m := v.(map[string]any)
	delete(m, "keys")
	if g.Signed, err = cjson.Marshal(m); err != nil {
		return nil, bad(err.Error())
	}
	return g, nil
}

// b64Map checks a map of key ids to base64 strings of n bytes.
func b64Map(m map[string]any, n int) (map[string]string, error) {
	if len(m) < 1 || len(m) > MaxMembers {
		return nil, fmt.Errorf("must hold 1 to %d entries", MaxMembers)
	}
	out := make(map[string]string, len(m))
	for id, v := range m {
		s, ok := v.(string)
		if !keyIDRE.MatchString(id) || !ok {
			return nil, fmt.Errorf("must map key ids (32 hex digits) to base64 strings")
		}
		raw, err := base64.StdEncoding.Strict().DecodeString(s)
		if err != nil || len(raw) != n || base64.StdEncoding.EncodeToString(raw) != s {
			return nil, fmt.Errorf("each value must be base64 of %d bytes", n)
		}
		out[id] = s
	}
	return out, nil
}

// View returns a member's view of a group-key document: its signed part
// (GroupKey.Signed, as stored) with "keys" holding only that member's wrap.
func View(signed []byte, keyID, wrap string) ([]byte, error) {
	v, err := cjson.Parse(signed)
	m, ok := v.(map[string]any)
	if err != nil || !ok {
		return nil, privateline.E("envelope.View", privateline.Internal, "stored group key is not a JSON object")
	}
	m["keys"] = map[string]any{keyID: wrap}
	out, err := cjson.Marshal(m)
	if err != nil {
		return nil, privateline.E("envelope.View", privateline.Internal, err)
	}
	return out, nil
}
