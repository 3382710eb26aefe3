package federation

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/cjson"
	"github.com/privateline/privateline/federation/transport"
	"github.com/privateline/privateline/keybundle"
	"github.com/privateline/privateline/keylog"
	"github.com/privateline/privateline/serverkey"
)

// TestDocumentOneVerifier: a homeserver (VerifyDocument, on first contact
// and when following a peer's rotation) and a client (keylog.
// EarlierKeysFromDocument, fork evidence) read a server document through
// the same verifier: a document is accepted by both or refused by both,
// for the same reason and with the same message.
func TestDocumentOneVerifier(t *testing.T) {
	keys := make([]*serverkey.PrivateKey, keylog.MaxServerKeyChanges+2)
	for i := range keys {
		keys[i] = newKey(t)
	}
	cur, thief := keys[len(keys)-1], newKey(t)
	change := func(server privateline.ServerName, old *serverkey.PrivateKey, next *serverkey.PrivateKey) transport.KeyChange {
		t.Helper()
		c, err := transport.NewKeyChange(server, old, next.Public())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	chain := make([]transport.KeyChange, len(keys)-1) // keys[i] → keys[i+1], 17 of them
	for i := range chain {
		chain[i] = change(nameC, keys[i], keys[i+1])
	}
	longest := chain[1:] // 16: what a server presents at most

	// doc is c.test's document naming key and the statements, signed by
	// signer, edit applied to its members before signing.
	doc := func(key, signer *serverkey.PrivateKey, changes []transport.KeyChange, edit func(map[string]any)) []byte {
		t.Helper()
		body := map[string]any{"created_at": int64(5000), "federation": "c.test:8448", "key": std64.EncodeToString(key.Public()),
			"server": string(nameC), "v": int64(1)}
		if len(changes) > 0 {
			list := make([]any, len(changes))
			for i, c := range changes {
				list[i], _ = cjson.Parse(c.Marshal())
			}
			body["key_changes"] = list
		}
		if edit != nil {
			edit(body)
		}
		in, err := documentInput(body)
		if err != nil {
			t.Fatal(err)
		}
		body["signature"] = std64.EncodeToString(signer.Sign(in))
		raw, err := cjson.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	// after changes a signed document's members, keeping its signature.
	after := func(raw []byte, edit func(map[string]any)) []byte {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		b, _ := json.Marshal(m)
		out, err := cjson.Canonicalize(b)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	statement := func(c transport.KeyChange) any {
		v, _ := cjson.Parse(c.Marshal())
		return v
	}

	for name, raw := range map[string][]byte{
		"never rotated":                doc(cur, cur, nil, nil),
		"16 statements, the most kept": doc(cur, cur, longest, nil),
	} {
		d, err := VerifyDocument(raw, nameC, cur.Public())
		if err != nil {
			t.Fatalf("%s: VerifyDocument: %v", name, err)
		}
		earlier, err := keylog.EarlierKeysFromDocument(raw, nameC, cur.Public())
		if err != nil {
			t.Fatalf("%s: EarlierKeysFromDocument: %v", name, err)
		}
		if len(earlier) != len(d.KeyChanges) {
			t.Fatalf("%s: %d earlier keys, %d statements", name, len(earlier), len(d.KeyChanges))
		}
		for i, e := range earlier {
			if !e.Key.Equal(d.KeyChanges[i].OldKey) || !e.Key.Equal(keys[len(keys)-1-len(earlier)+i].Public()) {
				t.Fatalf("%s: earlier key %d is not the one replaced", name, i)
			}
		}
	}

	brokenLink := append([]transport.KeyChange{chain[0]}, chain[2:]...) // k0→k1, k2→k3, …
	forged := chain[len(chain)-1]
	forged.Signature = thief.Sign(forged.SigningInput()) // k16→k17, signed by another key
	for _, tc := range []struct {
		name string
		raw  []byte
		want keybundle.Reason
	}{
		{"signed by another key than the one it names", doc(cur, thief, longest, nil), keybundle.ErrBadSignature},
		{"signed by an old key of the server", doc(cur, keys[0], longest, nil), keybundle.ErrBadSignature},
		{"another server's name", doc(cur, cur, nil, func(m map[string]any) { m["server"] = string(nameB) }), keybundle.ErrBadProof},
		{"the address changed after signing", after(doc(cur, cur, longest, nil), func(m map[string]any) { m["federation"] = "evil.test:8448" }), keybundle.ErrBadSignature},
		{"created_at changed after signing", after(doc(cur, cur, nil, nil), func(m map[string]any) { m["created_at"] = 6000 }), keybundle.ErrBadSignature},
		{"a statement added after signing", after(doc(cur, cur, chain[len(chain)-1:], nil), func(m map[string]any) {
			m["key_changes"] = []any{statement(change(nameC, thief, keys[len(keys)-2])), statement(chain[len(chain)-1])}
		}), keybundle.ErrBadSignature},
		{"a broken link in the chain", doc(cur, cur, brokenLink, nil), keybundle.ErrBadProof},
		{"a statement the old key did not sign", doc(cur, cur, append(append([]transport.KeyChange{}, chain[1:len(chain)-1]...), forged), nil), keybundle.ErrBadProof},
		{"a chain that does not end at the key", doc(cur, cur, chain[:3], nil), keybundle.ErrBadProof},
		{"a statement of another server", doc(cur, cur, []transport.KeyChange{change(nameB, keys[len(keys)-2], cur)}, nil), keybundle.ErrBadProof},
		{"17 statements, one more than allowed", doc(cur, cur, chain, nil), keybundle.ErrMalformed},
		{"an empty key_changes", doc(cur, cur, nil, func(m map[string]any) { m["key_changes"] = []any{} }), keybundle.ErrMalformed},
		{"a statement with an unknown member", doc(cur, cur, nil, func(m map[string]any) {
			s := statement(chain[len(chain)-1]).(map[string]any)
			s["note"] = "x"
			m["key_changes"] = []any{s}
		}), keybundle.ErrMalformed},
		{"a statement from a key to itself", doc(cur, cur, nil, func(m map[string]any) {
			s := statement(chain[len(chain)-1]).(map[string]any)
			s["old_key"] = s["new_key"]
			m["key_changes"] = []any{s}
		}), keybundle.ErrMalformed},
		{"an unknown member, signed", doc(cur, cur, longest, func(m map[string]any) { m["earlier_keys"] = []any{std64.EncodeToString(thief.Public())} }), keybundle.ErrMalformed},
		{"a duplicate member", bytes.Replace(doc(cur, cur, nil, nil), []byte(`{"created_at":5000,`), []byte(`{"created_at":5000,"created_at":5000,`), 1), keybundle.ErrNonCanonical},
		{"no signature", after(doc(cur, cur, nil, nil), func(m map[string]any) { delete(m, "signature") }), keybundle.ErrMalformed},
		{"no address", doc(cur, cur, nil, func(m map[string]any) { delete(m, "federation") }), keybundle.ErrMalformed},
		{"an address without a port", doc(cur, cur, nil, func(m map[string]any) { m["federation"] = "c.test" }), keybundle.ErrMalformed},
		{"another version", doc(cur, cur, nil, func(m map[string]any) { m["v"] = int64(2) }), keybundle.ErrMalformed},
		{"not canonical", append(doc(cur, cur, nil, nil), '\n'), keybundle.ErrNonCanonical},
	} {
		for _, known := range []*serverkey.PrivateKey{nil, cur} {
			var k []byte
			if known != nil {
				k = known.Public()
			}
			d, fedErr := VerifyDocument(tc.raw, nameC, k)
			earlier, clientErr := keylog.EarlierKeysFromDocument(tc.raw, nameC, cur.Public())
			if d != nil || earlier != nil || keybundle.ReasonOf(fedErr) != tc.want || keybundle.ReasonOf(clientErr) != tc.want {
				t.Errorf("%s (known key %v): homeserver %v, client %v; want %s from both", tc.name, known != nil, fedErr, clientErr, tc.want)
				continue
			}
			if !privateline.Is(privateline.Invalid, fedErr) {
				t.Errorf("%s: the homeserver's refusal is %v, not invalid", tc.name, privateline.KindOf(fedErr))
			}
			if fm, cm := privateline.MessageOf(fedErr), privateline.MessageOf(clientErr); fm != cm || !strings.HasPrefix(fm, "the server document of c.test") {
				t.Errorf("%s: the homeserver says %q, the client %q", tc.name, fm, cm)
			}
		}
	}

	// A key swapped in after signing: the homeserver finds the signature
	// bad; a client that pinned cur refuses a key other than cur first.
	swapped := after(doc(cur, cur, nil, nil), func(m map[string]any) { m["key"] = std64.EncodeToString(thief.Public()) })
	if _, err := VerifyDocument(swapped, nameC, nil); keybundle.ReasonOf(err) != keybundle.ErrBadSignature {
		t.Errorf("a key swapped after signing, homeserver: %v", err)
	}
	if _, err := keylog.EarlierKeysFromDocument(swapped, nameC, cur.Public()); keybundle.ReasonOf(err) != keybundle.ErrServerKeyChanged {
		t.Errorf("a key swapped after signing, client: %v", err)
	}
	if _, err := keylog.EarlierKeysFromDocument(swapped, nameC, thief.Public()); keybundle.ReasonOf(err) != keybundle.ErrBadSignature {
		t.Errorf("a key swapped after signing, client that pinned it: %v", err)
	}
}

// documentInput is a server document's signing input
// (keylog.ServerDocumentInput), for documents tests make by hand.
func documentInput(body map[string]any) ([]byte, error) { return keylog.ServerDocumentInput(body) }
