package e2ee

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/privateline/privateline"
)

var t0 = time.UnixMilli(1767312000000)

func TestSecretsNeverPrint(t *testing.T) {
	ps := vectorParties(t)
	k := ps["alice"].keys
	gk, _, err := SealGroupKey(nil, k, "g.x", 1, t0, []*KeyBundle{ps["alice"].bundle})
	if err != nil {
		t.Fatal(err)
	}
	pk := &PasswordKeys{AuthKey: privateline.Secret("0123456789abcdef0123456789abcdef"), KEK: &KEK{[]byte("kekkekkekkekkekkekkekkekkekkekke")}}
	secrets := []string{hexEncode(k.identity.Seed()), string(pk.KEK.k), hexEncode(pk.KEK.k), hexEncode(gk.key), k.encryption.D.String()}
	var out bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&out, nil))
	for _, v := range []any{k, *k, pk.KEK, gk, pk, *pk} {
		for _, f := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
			fmt.Fprintf(&out, f+"\n", v)
		}
		js, _ := json.Marshal(v)
		out.Write(js)
		log.Info("x", "v", v)
	}
	s := out.String()
	for _, sec := range secrets {
		if strings.Contains(s, sec) {
			t.Fatalf("secret material printed: %s", s)
		}
	}
	if !strings.Contains(s, "REDACTED") {
		t.Fatal("no redaction marker")
	}
}

func text(body string) *Message { return &Message{Type: MessageTypeText, Body: body} }

func TestDirectRoundTrip(t *testing.T) {
	ps := vectorParties(t)
	A, B, C := ps["alice"], ps["bob"], ps["carol"]
	blob, att, err := EncryptAttachment(nil, []byte("file"))
	if err != nil {
		t.Fatal(err)
	}
	att.FileID, att.Name, att.MIME = "f.1", "a.txt", "text/plain"
	msg := &Message{Type: "text", Body: "hi", Attachments: []Attachment{att}}
	e, err := SealDirect(nil, A.keys, []*KeyBundle{C.bundle, B.bundle}, Draft{Conversation: "c.1", SentAt: t0, ExpiresAt: t0.Add(time.Hour), Message: msg})
	if err != nil {
		t.Fatal(err)
	}
	js, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	e2, err := ParseEnvelope(js)
	if err != nil {
		t.Fatal(err)
	}
	all := []*KeyBundle{B.bundle, C.bundle}
	for _, me := range []*testParty{A, B, C} {
		m, err := OpenDirect(e2, me.keys, A.bundle, OpenOptions{Now: t0, Recipients: all})
		if err != nil {
			t.Fatalf("%s: %v", me.keys.address, err)
		}
		data, err := DecryptAttachment(m.Attachments[0], blob)
		if err != nil || string(data) != "file" || m.Body != "hi" {
			t.Fatalf("%s: %q %v", me.keys.address, data, err)
		}
	}
	tests := []struct {
		name string
		me   *testParty
		opts OpenOptions
		want Reason
	}{
		{"recipient list differs from given bundles", B, OpenOptions{Recipients: []*KeyBundle{B.bundle}}, ErrRecipients},
		{"expired", B, OpenOptions{Now: t0.Add(time.Hour)}, ErrExpired},
	}
	for _, tc := range tests {
		_, err := OpenDirect(e2, tc.me.keys, A.bundle, tc.opts)
		if ReasonOf(err) != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.want)
		}
	}
}

func TestSealRefuses(t *testing.T) {
	ps := vectorParties(t)
	A, B := ps["alice"], ps["bob"]
	tests := []struct {
		name  string
		recip []*KeyBundle
		d     Draft
		want  Reason
	}{
		{"repeated recipient", []*KeyBundle{B.bundle, B.bundle}, Draft{Conversation: "c", SentAt: t0, Message: text("x")}, ErrRecipients},
		{"self as recipient", []*KeyBundle{A.bundle}, Draft{Conversation: "c", SentAt: t0, Message: text("x")}, ErrRecipients},
		{"no recipient", nil, Draft{Conversation: "c", SentAt: t0, Message: text("x")}, ErrMalformed},
		{"too large", []*KeyBundle{B.bundle}, Draft{Conversation: "c", SentAt: t0, Message: text(strings.Repeat("x", MaxPlaintext))}, ErrTooLarge},
		{"bad type", []*KeyBundle{B.bundle}, Draft{Conversation: "c", SentAt: t0, Message: &Message{Type: "Text!"}}, ErrMalformed},
		{"bad conversation", []*KeyBundle{B.bundle}, Draft{Conversation: "a b", Message: text("x")}, ErrMalformed},
		{"bad id", []*KeyBundle{B.bundle}, Draft{ID: "XYZ", Conversation: "c", SentAt: t0, Message: text("x")}, ErrMalformed},
		{"expiry before sending", []*KeyBundle{B.bundle}, Draft{Conversation: "c", SentAt: t0, ExpiresAt: t0, Message: text("x")}, ErrMalformed},
	}
	for _, tc := range tests {
		_, err := SealDirect(nil, A.keys, tc.recip, tc.d)
		if ReasonOf(err) != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.want)
		}
	}
}

func TestPasswordAndWrap(t *testing.T) {
	ps := vectorParties(t)
	salt := bytes.Repeat([]byte{7}, SaltSize)
	pk, err := DerivePasswordKeys("Cafe\u0301", KDFName, Iterations, salt)
	if err != nil {
		t.Fatal(err)
	}
	nfc, err := DerivePasswordKeys("Caf\u00e9", KDFName, Iterations, salt)
	if err != nil || !pk.AuthKey.Equal(nfc.AuthKey) {
		t.Fatal("NFD and NFC spellings of a password must derive the same keys")
	}
	w, err := WrapPrivateKeys(nil, pk.KEK, ps["alice"].keys)
	if err != nil {
		t.Fatal(err)
	}
	k, err := UnwrapPrivateKeys(pk.KEK, ps["alice"].keys.address, w)
	if err != nil || !k.Matches(ps["alice"].bundle) {
		t.Fatalf("round trip: %v", err)
	}
	other, _ := DerivePasswordKeys("cafe", KDFName, Iterations, salt)
	if _, err := UnwrapPrivateKeys(other.KEK, ps["alice"].keys.address, w); ReasonOf(err) != ErrWrongPasswordOrKey || !privateline.Is(privateline.Unauthenticated, err) {
		t.Fatalf("wrong password: %v", err)
	}
	for _, tc := range []struct {
		pw, kdf string
		it      int
		salt    []byte
		want    Reason
	}{
		{"", KDFName, Iterations, salt, ErrMalformed},
		{"\xff", KDFName, Iterations, salt, ErrMalformed},
		{"x", KDFName, Iterations, salt[:8], ErrMalformed},
		{"x", KDFName, Iterations - 1, salt, ErrWeakKDF},
		{"x", "pbkdf2-sha1", Iterations, salt, ErrWeakKDF},
	} {
		if _, err := DerivePasswordKeys(tc.pw, tc.kdf, tc.it, tc.salt); ReasonOf(err) != tc.want {
			t.Errorf("%q/%s/%d: %v, want %s", tc.pw, tc.kdf, tc.it, err, tc.want)
		}
	}
}

func TestGroupRoundTrip(t *testing.T) {
	ps := vectorParties(t)
	A, B, C := ps["alice"], ps["bob"], ps["carol"]
	_, doc, err := SealGroupKey(nil, A.keys, "g.1", 4, t0, []*KeyBundle{A.bundle, B.bundle})
	if err != nil {
		t.Fatal(err)
	}
	gk, err := OpenGroupKey(doc, B.keys, A.bundle, GroupKeyOptions{Current: 3, Members: []*KeyBundle{B.bundle, A.bundle}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := SealGroup(nil, B.keys, gk, Draft{SentAt: t0.Add(time.Minute), Message: text("yo")})
	if err != nil {
		t.Fatal(err)
	}
	js, _ := e.MarshalJSON()
	e, err = ParseEnvelope(js)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := OpenGroup(e, gk, B.bundle, GroupOpenOptions{}); err != nil || m.Body != "yo" {
		t.Fatalf("%v", err)
	}
	if _, err := SealGroup(nil, C.keys, gk, Draft{SentAt: t0, Message: text("x")}); ReasonOf(err) != ErrNotMember {
		t.Fatalf("non-member sealed: %v", err)
	}
	if _, err := OpenGroupKey(doc, B.keys, A.bundle, GroupKeyOptions{Members: []*KeyBundle{B.bundle}}); ReasonOf(err) != ErrRecipients {
		t.Fatalf("member list: %v", err)
	}
	if _, _, err := SealGroupKey(nil, A.keys, "g.1", 1, t0, []*KeyBundle{B.bundle}); ReasonOf(err) != ErrNotMember {
		t.Fatalf("distributor outside the group: %v", err)
	}
	if _, err := OpenDirect(e, B.keys, B.bundle, OpenOptions{}); ReasonOf(err) != ErrMalformed {
		t.Fatalf("group envelope opened as direct: %v", err)
	}
}

func TestPadRoundTrip(t *testing.T) {
	for n := 0; n < 3*PadBlock; n++ {
		p := bytes.Repeat([]byte{0x80}, n) // worst case: the data looks like padding
		q := Pad(p)
		if len(q)%PadBlock != 0 || len(q) <= n || len(q)-n > PadBlock {
			t.Fatalf("n=%d: padded to %d", n, len(q))
		}
		r, err := Unpad(q)
		if err != nil || !bytes.Equal(r, p) {
			t.Fatalf("n=%d: %v", n, err)
		}
	}
}

func TestQRRoundTrip(t *testing.T) {
	ps := vectorParties(t)
	a, b := ps["alice"].bundle, ps["bob"].bundle
	code := QRPayload(a.Address, a.Identity, b.Address, b.Identity)
	if len(code) != 134 {
		t.Fatalf("payload of %d characters", len(code))
	}
	if err := CompareQRPayload(code, b.Address, b.Identity, a.Address, a.Identity); err != nil {
		t.Fatal(err)
	}
	if sn := SafetyNumber(a.Address, a.Identity, b.Address, b.Identity); len(sn) != 60 || strings.Trim(sn, "0123456789") != "" {
		t.Fatalf("safety number %q", sn)
	}
}

func TestReasonKinds(t *testing.T) {
	for _, r := range []Reason{ErrMalformed, ErrBadSignature, ErrExpired, ErrTooLarge, ErrWrongPasswordOrKey} {
		err := refuse("op", r, "m")
		if !errors.Is(err, r) || privateline.KindOf(err) != r.Kind() || r.Kind() == privateline.Other || ReasonOf(err) != r {
			t.Errorf("%s: %v", r, err)
		}
	}
	if !privateline.Is(privateline.Forbidden, refuse("op", ErrBadSignature, "")) {
		t.Error("a bad signature must be Forbidden")
	}
}

func FuzzParseEnvelope(f *testing.F) {
	f.Add([]byte(`{"header":{"v":1,"suite":"pl1"}}`))
	f.Add([]byte(`{"ciphertext":"","header":{"conversation":"c","from":"a@b","id":"00000000000000000000000000000000","sent_at":1,"suite":"pl1","to":["c@d"],"v":1},"keys":{},"nonce":"","signature":""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseEnvelope(data)
		if err != nil {
			if ReasonOf(err) == "" {
				t.Fatalf("refusal without a reason: %v", err)
			}
			return
		}
		if _, err := e.MarshalJSON(); err != nil {
			t.Fatalf("parsed envelope does not encode: %v", err)
		}
	})
}

// A member's view carries only its own wrap and still verifies; the wraps
// are bound to the signature through key_digests.
func TestGroupKeyMemberView(t *testing.T) {
	ps := vectorParties(t)
	A, B, C := ps["alice"], ps["bob"], ps["carol"]
	members := []*KeyBundle{A.bundle, B.bundle, C.bundle}
	_, doc, err := SealGroupKey(nil, A.keys, "g.v", 1, t0, members)
	if err != nil {
		t.Fatal(err)
	}
	bv, err := GroupKeyView(doc, B.bundle.Encryption.ID())
	if err != nil {
		t.Fatal(err)
	}
	if len(bv) >= len(doc)-1000 {
		t.Fatal("the view still holds other members' wraps")
	}
	if _, err := OpenGroupKey(bv, B.keys, A.bundle, GroupKeyOptions{Members: members}); err != nil {
		t.Fatalf("bob's view: %v", err)
	}
	if _, err := OpenGroupKey(bv, C.keys, A.bundle, GroupKeyOptions{}); ReasonOf(err) != ErrNotRecipient {
		t.Fatalf("carol with bob's view: %v", err)
	}
	if _, err := GroupKeyView(doc, "00000000000000000000000000000000"); ReasonOf(err) != ErrNotRecipient {
		t.Fatalf("view for a stranger: %v", err)
	}
	// Replacing bob's wrap (the server could) is caught by its digest.
	cv, _ := GroupKeyView(doc, C.bundle.Encryption.ID())
	var m map[string]any
	if err := json.Unmarshal(cv, &m); err != nil {
		t.Fatal(err)
	}
	m["keys"] = map[string]any{B.bundle.Encryption.ID(): m["keys"].(map[string]any)[C.bundle.Encryption.ID()]}
	forged, _ := json.Marshal(m)
	if _, err := OpenGroupKey(forged, B.keys, A.bundle, GroupKeyOptions{}); ReasonOf(err) != ErrWrapMismatch {
		t.Fatalf("swapped wrap: %v", err)
	}
}
