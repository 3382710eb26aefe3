package e2ee

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/privateline/privateline"
)

// Tamper tests: every change an attacker can make to a sealed envelope must
// make opening fail, and must never yield a plaintext.
//
// Two attackers are modelled:
//
//   - layer 1, the server or the network: it can change any byte of the
//     envelope but cannot sign as the sender. Every such change must be
//     refused no later than the signature check (spec/e2ee.md §7.6, §12:
//     the signature is verified before anything is decrypted), i.e. with
//     malformed, non_canonical, unknown_suite, too_large, wrong_sender or
//     bad_signature (group form: also wrong_group, wrong_epoch).
//   - layer 2, someone who can sign as the sender (a compromised or buggy
//     sender, or a bypassed signature check): the envelope is re-signed
//     after the change, so what must still catch it is the AEAD binding of
//     the header, the OAEP wrap, or the recipient checks.
//
// Every change goes through the wire: the sealed envelope's JSON is
// decoded into a generic value, changed, encoded again and given to
// ParseEnvelope, exactly what a receiver gets from a server. Positive
// controls check that this path, unchanged, opens.

// ---------------------------------------------------------------- JSON tools

type jobj = map[string]any

func decodeJSON(t testing.TB, js []byte) jobj {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(js))
	d.UseNumber()
	var m jobj
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func cloneJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = cloneJSON(e)
		}
		return m
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = cloneJSON(e)
		}
		return a
	default:
		return x
	}
}

func encodeJSON(t testing.TB, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// requireMembers makes sure a fixture's header has every member the sweeps
// are meant to cover (and no other).
func requireMembers(t testing.TB, h jobj, names ...string) {
	t.Helper()
	if got := slices.Sorted(maps.Keys(h)); !slices.Equal(got, slices.Sorted(slices.Values(names))) {
		t.Fatalf("fixture header has members %v, want %v", got, names)
	}
}

// mutation is one change to a decoded envelope.
type mutation struct {
	name  string
	apply func(m jobj)
}

func (mu mutation) json(t testing.TB, base jobj) []byte {
	m := cloneJSON(base).(jobj)
	mu.apply(m)
	return encodeJSON(t, m)
}

// binField names a base64 member of an envelope: a top-level member or,
// with keyID set, one wrapped key.
type binField struct{ name, keyID string }

func (f binField) String() string {
	if f.keyID != "" {
		return "keys[" + f.keyID[:8] + "…]"
	}
	return f.name
}

func (f binField) get(m jobj) string {
	if f.keyID != "" {
		return m["keys"].(jobj)[f.keyID].(string)
	}
	return m[f.name].(string)
}

func (f binField) set(m jobj, s string) {
	if f.keyID != "" {
		m["keys"].(jobj)[f.keyID] = s
		return
	}
	m[f.name] = s
}

func (f binField) bytes(t testing.TB, m jobj) []byte {
	t.Helper()
	b, err := base64.StdEncoding.Strict().DecodeString(f.get(m))
	if err != nil {
		t.Fatalf("%s: %v", f, err)
	}
	return b
}

func b64std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// flipMutations flips bits of the decoded value of f: for every byte
// position, every bit if allBits, else bit (position mod 8), so that every
// byte and every bit position is hit.
func flipMutations(t testing.TB, base jobj, f binField, allBits bool, keep func(i int) bool) []mutation {
	raw := f.bytes(t, base)
	var muts []mutation
	for i := range raw {
		if keep != nil && !keep(i) {
			continue
		}
		bits := []int{i % 8}
		if allBits {
			bits = []int{0, 1, 2, 3, 4, 5, 6, 7}
		}
		for _, bit := range bits {
			muts = append(muts, mutation{fmt.Sprintf("%s[%d]^%#02x", f, i, 1<<bit), func(m jobj) {
				b := bytes.Clone(raw)
				b[i] ^= 1 << bit
				f.set(m, b64std(b))
			}})
		}
	}
	return muts
}

// representationMutations keep the decoded bytes of f (where possible) but
// change their base64 text; decoders must refuse anything but the
// canonical encoding (spec/e2ee.md §1).
func representationMutations(base jobj, f binField) []mutation {
	s := f.get(base)
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	muts := []mutation{
		{f.String() + " with a line break", func(m jobj) { f.set(m, s[:len(s)/2]+"\n"+s[len(s)/2:]) }},
		{f.String() + " with a leading space", func(m jobj) { f.set(m, " "+s) }},
		{f.String() + " in base64url", func(m jobj) {
			f.set(m, strings.NewReplacer("+", "-", "/", "_").Replace(s)+"-")
		}},
	}
	if p := strings.TrimRight(s, "="); p != s {
		muts = append(muts, mutation{f.String() + " without padding", func(m jobj) { f.set(m, p) }})
		// The last character before the padding carries zero bits; setting
		// one of them decodes (leniently) to the same bytes.
		last := strings.IndexByte(alphabet, p[len(p)-1])
		np := p[:len(p)-1] + string(alphabet[last|1]) + s[len(p):]
		muts = append(muts, mutation{f.String() + " with non-zero pad bits", func(m jobj) { f.set(m, np) }})
	}
	return muts
}

// lengthMutations change the size of f's decoded value.
func lengthMutations(t testing.TB, base jobj, f binField, extra ...int) []mutation {
	raw := f.bytes(t, base)
	var muts []mutation
	for _, d := range append([]int{-1, +1}, extra...) {
		muts = append(muts, mutation{fmt.Sprintf("%s length %+d", f, d), func(m jobj) {
			b := bytes.Clone(raw)
			if d < 0 {
				b = b[:len(b)+d]
			} else {
				b = append(b, make([]byte, d)...)
			}
			f.set(m, b64std(b))
		}})
	}
	muts = append(muts, mutation{f.String() + " empty", func(m jobj) { f.set(m, "") }})
	return muts
}

// shiftMutation moves one byte across the boundary of two adjacent signed
// fields (a ‖ b): the concatenation, and so its hash, stays the same.
func shiftMutation(t testing.TB, base jobj, a, b binField, toB bool) mutation {
	ra, rb := a.bytes(t, base), b.bytes(t, base)
	name := fmt.Sprintf("last byte of %s moved to the front of %s", a, b)
	if !toB {
		name = fmt.Sprintf("first byte of %s moved to the end of %s", b, a)
	}
	return mutation{name, func(m jobj) {
		na, nb := bytes.Clone(ra), bytes.Clone(rb)
		if toB {
			na, nb = ra[:len(ra)-1], append([]byte{ra[len(ra)-1]}, rb...)
		} else {
			na, nb = append(na, rb[0]), rb[1:]
		}
		a.set(m, b64std(na))
		b.set(m, b64std(nb))
	}}
}

// headerMutations changes every header value: for strings (and every
// string of the arrays) each of the 7 low bits of every byte, for integers
// each of the 53 bits, and then whole-value changes: other types, null,
// removal, truncation and extension, and an unknown member.
func headerMutations(base jobj) []mutation {
	h := base["header"].(jobj)
	var muts []mutation
	add := func(name string, f func(h jobj)) {
		muts = append(muts, mutation{"header." + name, func(m jobj) { f(m["header"].(jobj)) }})
	}
	flipString := func(s string, i, bit int) string {
		b := []byte(s)
		b[i] ^= 1 << bit
		return string(b)
	}
	for _, k := range slices.Sorted(maps.Keys(h)) {
		switch v := h[k].(type) {
		case string:
			for i := range len(v) {
				for bit := range 7 {
					add(fmt.Sprintf("%s[%d]^%#02x", k, i, 1<<bit), func(h jobj) { h[k] = flipString(v, i, bit) })
				}
			}
			add(k+" truncated", func(h jobj) { h[k] = v[:len(v)-1] })
			add(k+" extended", func(h jobj) { h[k] = v + "x" })
			add(k+" upper-cased", func(h jobj) { h[k] = strings.ToUpper(v) })
			add(k+" empty", func(h jobj) { h[k] = "" })
			add(k+" as array", func(h jobj) { h[k] = []any{v} })
		case json.Number:
			n, err := v.Int64()
			if err != nil {
				panic(err)
			}
			for bit := range 53 {
				add(fmt.Sprintf("%s^2^%d", k, bit), func(h jobj) { h[k] = json.Number(strconv.FormatInt(n^(1<<bit), 10)) })
			}
			add(k+"+1", func(h jobj) { h[k] = json.Number(strconv.FormatInt(n+1, 10)) })
			add(k+"-1", func(h jobj) { h[k] = json.Number(strconv.FormatInt(n-1, 10)) })
			add(k+" negated", func(h jobj) { h[k] = json.Number(strconv.FormatInt(-n, 10)) })
			add(k+" = 2^53", func(h jobj) { h[k] = json.Number("9007199254740992") })
			add(k+" as fraction", func(h jobj) { h[k] = json.Number(v.String() + ".0") })
			add(k+" as string", func(h jobj) { h[k] = v.String() })
		case []any:
			for j, e := range v {
				s := e.(string)
				for i := range len(s) {
					for bit := range 7 {
						add(fmt.Sprintf("%s[%d][%d]^%#02x", k, j, i, 1<<bit), func(h jobj) {
							a := slices.Clone(v)
							a[j] = flipString(s, i, bit)
							h[k] = a
						})
					}
				}
				add(fmt.Sprintf("%s[%d] dropped", k, j), func(h jobj) { h[k] = slices.Delete(slices.Clone(v), j, j+1) })
				add(fmt.Sprintf("%s[%d] repeated", k, j), func(h jobj) { h[k] = slices.Insert(slices.Clone(v), j, e) })
			}
			add(k+" extended", func(h jobj) { h[k] = append(slices.Clone(v), "x"+v[len(v)-1].(string)) })
			add(k+" reversed", func(h jobj) {
				a := slices.Clone(v)
				slices.Reverse(a)
				a = append(a, "0"+v[0].(string)) // unsorted even with one element
				h[k] = a
			})
			add(k+" empty", func(h jobj) { h[k] = []any{} })
			add(k+" as string", func(h jobj) { h[k] = v[0] })
		default:
			panic(fmt.Sprintf("header member %s of type %T", k, v))
		}
		add(k+" removed", func(h jobj) { delete(h, k) })
		add(k+" null", func(h jobj) { h[k] = nil })
	}
	add("unknown member", func(h jobj) { h["x"] = "y" })
	add("unknown member null", func(h jobj) { h["reply_to"] = nil })
	return muts
}

// structureMutations change the envelope's own members: removal, null,
// unknown members, and the base64 form and size of every binary member.
func structureMutations(t testing.TB, base jobj, bins []binField) []mutation {
	var muts []mutation
	for _, k := range slices.Sorted(maps.Keys(base)) {
		muts = append(muts,
			mutation{k + " removed", func(m jobj) { delete(m, k) }},
			mutation{k + " null", func(m jobj) { m[k] = nil }},
		)
	}
	muts = append(muts,
		mutation{"unknown member", func(m jobj) { m["x"] = "y" }},
		mutation{"header as string", func(m jobj) { m["header"] = string(encodeJSON(t, m["header"])) }},
	)
	for _, f := range bins {
		muts = append(muts, representationMutations(base, f)...)
		extra := []int(nil)
		if f.name == "ciphertext" {
			extra = []int{-16, -256, +16, +256}
		}
		muts = append(muts, lengthMutations(t, base, f, extra...)...)
	}
	return muts
}

// ------------------------------------------------------------- refusals

// tally checks refusals and counts their reasons.
type tally struct {
	t      *testing.T
	counts map[Reason]int
	fails  int
}

func newTally(t *testing.T) *tally { return &tally{t: t, counts: map[Reason]int{}} }

// refused checks that an open (or parse) failed with a reason in want (any
// reason if want is nil) and returned no message.
func (ty *tally) refused(what string, m *Message, err error, want ...Reason) {
	ty.t.Helper()
	r := ReasonOf(err)
	switch {
	case err == nil || m != nil:
		body := ""
		if m != nil {
			body = m.Body
		}
		ty.failf("%s: ACCEPTED (plaintext %q, err %v)", what, body, err)
	case r == "":
		ty.failf("%s: refused without a reason code: %v", what, err)
	case len(want) > 0 && !slices.Contains(want, r):
		ty.failf("%s: refused with %s (%v), want one of %v", what, r, err, want)
	}
	ty.counts[r]++
}

func (ty *tally) failf(format string, args ...any) {
	ty.t.Helper()
	ty.fails++
	ty.t.Errorf(format, args...)
	if ty.fails >= 30 {
		ty.t.Fatal("too many failures; stopping")
	}
}

func (ty *tally) log(label string) {
	var parts []string
	for _, r := range slices.Sorted(maps.Keys(ty.counts)) {
		parts = append(parts, fmt.Sprintf("%s=%d", string(r), ty.counts[r]))
	}
	ty.t.Logf("%s: refusals %s", label, strings.Join(parts, " "))
}

// Reasons an attacker without the sender's identity key may get: the
// structural refusals and everything up to the signature check.
var (
	beforeDecryptDirect = []Reason{ErrMalformed, ErrNonCanonical, ErrUnknownSuite, ErrTooLarge, ErrWrongSender, ErrBadSignature}
	beforeDecryptGroup  = append(slices.Clone(beforeDecryptDirect), ErrWrongGroup, ErrWrongEpoch)
)

// ------------------------------------------------------- direct envelopes

type directFixture struct {
	A, B, C *testParty // alice sends to bob and carol
	js      []byte     // the sealed envelope's canonical JSON
	base    jobj       // js decoded
	owner   map[string]*testParty
}

func newDirectFixture(t *testing.T) *directFixture {
	t.Helper()
	ps := vectorParties(t)
	fx := &directFixture{A: ps["alice"], B: ps["bob"], C: ps["carol"]}
	fx.owner = map[string]*testParty{}
	for _, p := range []*testParty{fx.A, fx.B, fx.C} {
		fx.owner[p.keys.enc.ID()] = p
	}
	_, att, err := EncryptAttachment(nil, []byte("file"))
	if err != nil {
		t.Fatal(err)
	}
	att.FileID, att.Name, att.MIME = "f.1", "a.txt", "text/plain"
	msg := &Message{Type: MessageTypeText, Body: "meet at noon", Attachments: []Attachment{att}}
	// Every optional header member is present: expires_at and files.
	e, err := SealDirect(nil, fx.A.keys, []*KeyBundle{fx.B.bundle, fx.C.bundle},
		Draft{Conversation: "c.1", SentAt: t0, ExpiresAt: t0.Add(time.Hour), Message: msg})
	if err != nil {
		t.Fatal(err)
	}
	if fx.js, err = e.MarshalJSON(); err != nil {
		t.Fatal(err)
	}
	fx.base = decodeJSON(t, fx.js)
	requireMembers(t, fx.base["header"].(jobj), "v", "suite", "id", "from", "to", "conversation", "sent_at", "expires_at", "files")
	// Positive controls: the envelope opens for all three parties, directly,
	// after the decode/encode path every tamper goes through, and after
	// the re-signing of layer 2.
	again := encodeJSON(t, cloneJSON(fx.base))
	if !bytes.Equal(again, fx.js) {
		t.Fatalf("the JSON round trip changes the envelope:\n%s\n%s", fx.js, again)
	}
	for _, resign := range []bool{false, true} {
		e := fx.parse(t, again)
		if resign {
			fx.resign(e)
		}
		for _, me := range fx.parties() {
			m, err := OpenDirect(e, me.keys, fx.A.bundle, OpenOptions{Now: t0, Recipients: []*KeyBundle{fx.B.bundle, fx.C.bundle}})
			if err != nil || m.Body != "meet at noon" {
				t.Fatalf("control (resigned %v): %s cannot open: %v", resign, me.keys.address, err)
			}
		}
	}
	return fx
}

func (fx *directFixture) parties() []*testParty { return []*testParty{fx.B, fx.C, fx.A} }

func (fx *directFixture) parse(t testing.TB, js []byte) *Envelope {
	t.Helper()
	e, err := ParseEnvelope(js)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return e
}

// resign makes the envelope's signature valid again, as alice.
func (fx *directFixture) resign(e *Envelope) { resignDirect(fx.A, e) }

func resignDirect(p *testParty, e *Envelope) {
	aad, err := e.Header.AAD()
	if err != nil {
		panic(err)
	}
	e.Signature = p.keys.sign(directSigned(aad, e.Nonce, e.Ciphertext, e.Keys))
}

// wire sends an envelope changed in memory through JSON, as a server would.
func wire(t testing.TB, e *Envelope) *Envelope {
	t.Helper()
	js, err := e.MarshalJSON()
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	e2, err := ParseEnvelope(js)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return e2
}

// unsigned checks a layer-1 change: every party refuses, with a reason in
// want (default: no later than the signature check).
func (fx *directFixture) unsigned(ty *tally, name string, js []byte, want ...Reason) {
	ty.t.Helper()
	if len(want) == 0 {
		want = beforeDecryptDirect
	}
	e, err := ParseEnvelope(js)
	if err != nil {
		ty.refused(name+" (parse)", nil, err, want...)
		return
	}
	for _, me := range fx.parties() {
		m, err := OpenDirect(e, me.keys, fx.A.bundle, OpenOptions{})
		ty.refused(fmt.Sprintf("%s (opened by %s)", name, me.keys.address), m, err, want...)
	}
}

// resigned checks a layer-2 change: alice re-signs, and each of openers
// must still refuse.
func (fx *directFixture) resigned(ty *tally, name string, js []byte, openers []*testParty, want ...Reason) {
	ty.t.Helper()
	e, err := ParseEnvelope(js)
	if err != nil {
		ty.refused(name+" (parse, re-signed)", nil, err)
		return
	}
	fx.resign(e)
	for _, me := range openers {
		m, err := OpenDirect(e, me.keys, fx.A.bundle, OpenOptions{})
		ty.refused(fmt.Sprintf("%s (re-signed, opened by %s)", name, me.keys.address), m, err, want...)
	}
}

func (fx *directFixture) binFields() []binField {
	fs := []binField{{name: "nonce"}, {name: "ciphertext"}, {name: "signature"}}
	for _, id := range slices.Sorted(maps.Keys(fx.base["keys"].(jobj))) {
		fs = append(fs, binField{name: "keys", keyID: id})
	}
	return fs
}

// TestTamperDirectEveryByte flips bits in every byte of every binary field
// of a direct envelope to two recipients: nonce, ciphertext, the three
// wrapped keys (sender, bob, carol) and the signature.
func TestTamperDirectEveryByte(t *testing.T) {
	fx := newDirectFixture(t)
	ty := newTally(t)
	n := 0
	for _, f := range fx.binFields() {
		small := f.name == "nonce" || f.name == "signature"
		for _, mu := range flipMutations(t, fx.base, f, small, nil) {
			// Lengths are unchanged and any bytes are valid base64, so
			// only the signature can catch these.
			fx.unsigned(ty, mu.name, mu.json(t, fx.base), ErrBadSignature)
			n++
		}
	}
	ty.log(fmt.Sprintf("layer 1, %d bit flips", n))
	if ty.counts[ErrBadSignature] != 3*n {
		t.Errorf("%d bad_signature refusals for %d flips and 3 openers", ty.counts[ErrBadSignature], n)
	}

	// Layer 2: with a valid signature, AES-GCM still catches every flip
	// of the nonce or ciphertext, and RSA-OAEP every flip of the opener's
	// own wrapped key.
	ty2 := newTally(t)
	for _, f := range fx.binFields() {
		switch {
		case f.name == "nonce" || f.name == "ciphertext":
			for _, mu := range flipMutations(t, fx.base, f, f.name == "nonce", nil) {
				fx.resigned(ty2, mu.name, mu.json(t, fx.base), fx.parties(), ErrDecrypt)
			}
		case f.keyID != "":
			// 6 ms of RSA-4096 per flip: every byte of bob's wrap (the
			// intended recipient; a sample with -short), a sample of the
			// others' (the same code path with another key).
			owner := fx.owner[f.keyID]
			keep := func(i int) bool { return i%37 == 0 || i == rsaCiphertextSize-1 }
			if owner == fx.B && !testing.Short() {
				keep = nil
			}
			for _, mu := range flipMutations(t, fx.base, f, false, keep) {
				fx.resigned(ty2, mu.name, mu.json(t, fx.base), []*testParty{owner}, ErrDecrypt)
			}
		}
	}
	ty2.log("layer 2 (re-signed by the sender)")
}

// TestTamperDirectEveryHeaderValue changes every header value, the key ids
// and the envelope's structure.
func TestTamperDirectEveryHeaderValue(t *testing.T) {
	fx := newDirectFixture(t)
	hm := headerMutations(fx.base)
	direct := []mutation{
		{"header.to includes from", func(m jobj) {
			m["header"].(jobj)["to"] = []any{string(fx.A.keys.address), string(fx.B.keys.address), string(fx.C.keys.address)}
		}},
		{"header.to replaced by [bob]", func(m jobj) { m["header"].(jobj)["to"] = []any{string(fx.B.keys.address)} }},
		{"header.to replaced by [bob, dave]", func(m jobj) {
			m["header"].(jobj)["to"] = []any{string(fx.B.keys.address), "dave@example.org"}
		}},
		{"header in group form", func(m jobj) {
			h := m["header"].(jobj)
			delete(h, "to")
			h["group"], h["epoch"] = h["conversation"], json.Number("1")
		}},
		{"header with group and to", func(m jobj) {
			h := m["header"].(jobj)
			h["group"], h["epoch"] = h["conversation"], json.Number("1")
		}},
		{"header.epoch added", func(m jobj) { m["header"].(jobj)["epoch"] = json.Number("1") }},
		{"header.files empty array", func(m jobj) { m["header"].(jobj)["files"] = []any{} }},
		{"header.expires_at = sent_at", func(m jobj) {
			h := m["header"].(jobj)
			h["expires_at"] = h["sent_at"]
		}},
	}
	hm = append(hm, direct...)

	ty := newTally(t)
	for _, mu := range hm {
		fx.unsigned(ty, mu.name, mu.json(t, fx.base))
	}
	ty.log(fmt.Sprintf("layer 1, %d header changes", len(hm)))

	// Layer 2: the sender re-signs the changed header over the old
	// ciphertext; the AES-GCM associated data (the canonical header) or
	// the recipient checks must refuse it.
	ty2 := newTally(t)
	for _, mu := range hm {
		fx.resigned(ty2, mu.name, mu.json(t, fx.base), fx.parties())
	}
	ty2.log("layer 2 (re-signed by the sender)")
	if ty2.counts[ErrDecrypt] == 0 {
		t.Error("no re-signed header change reached AES-GCM; the layer-2 check is not exercising the header binding")
	}

	// Key ids, the envelope's members, base64 forms and sizes.
	ty3 := newTally(t)
	var sm []mutation
	for _, id := range slices.Sorted(maps.Keys(fx.base["keys"].(jobj))) {
		rename := func(name, to string) {
			sm = append(sm, mutation{fmt.Sprintf("key id %s… %s", id[:8], name), func(m jobj) {
				k := m["keys"].(jobj)
				k[to] = k[id]
				delete(k, id)
			}})
		}
		for i := range len(id) {
			d, _ := strconv.ParseUint(id[i:i+1], 16, 8)
			rename(fmt.Sprintf("digit %d changed", i), id[:i]+strconv.FormatUint((d+1)%16, 16)+id[i+1:])
		}
		rename("upper-cased", strings.ToUpper(id))
		rename("truncated", id[:len(id)-1])
		rename("extended", id+"0")
		sm = append(sm, mutation{fmt.Sprintf("key %s… removed", id[:8]), func(m jobj) { delete(m["keys"].(jobj), id) }})
		sm = append(sm, mutation{fmt.Sprintf("key %s… copied under a new id", id[:8]), func(m jobj) {
			k := m["keys"].(jobj)
			k[strings.Repeat("0", 32)] = k[id]
		}})
		sm = append(sm, mutation{fmt.Sprintf("key %s… as number", id[:8]), func(m jobj) { m["keys"].(jobj)[id] = json.Number("1") }})
	}
	sm = append(sm,
		mutation{"keys empty", func(m jobj) { m["keys"] = jobj{} }},
		mutation{"keys as array", func(m jobj) { m["keys"] = []any{m["keys"]} }},
		mutation{"group salt added", func(m jobj) { m["salt"] = b64std(make([]byte, GroupSaltSize)) }},
		shiftMutation(t, fx.base, binField{name: "nonce"}, binField{name: "ciphertext"}, true),
		shiftMutation(t, fx.base, binField{name: "nonce"}, binField{name: "ciphertext"}, false),
	)
	sm = append(sm, structureMutations(t, fx.base, fx.binFields())...)
	for _, mu := range sm {
		fx.unsigned(ty3, mu.name, mu.json(t, fx.base))
	}
	ty3.log(fmt.Sprintf("layer 1, %d key-id and structure changes", len(sm)))

	// Raw-JSON changes no decoded value can express.
	ty4 := newTally(t)
	s := string(fx.js)
	id := slices.Sorted(maps.Keys(fx.base["keys"].(jobj)))[0]
	for _, c := range []struct{ name, js string }{
		{"duplicate header member", strings.Replace(s, `"header":{`, `"header":{"conversation":"c.2",`, 1)},
		{"duplicate key id", strings.Replace(s, `"keys":{`, `"keys":{"`+id+`":"`+fx.base["keys"].(jobj)[id].(string)+`",`, 1)},
		{"duplicate nonce", strings.Replace(s, `"nonce":`, `"nonce":"AAAAAAAAAAAAAAAA","nonce":`, 1)},
		{"trailing data", s + "{}"},
		{"truncated", s[:len(s)-1]},
		{"sent_at with exponent", strings.Replace(s, `"sent_at":1767312000000`, `"sent_at":1.767312e12`, 1)},
		{"string with escaped character", strings.Replace(s, `"conversation":"c.1"`, `"conversation":"c\u002e1"`, 1)},
	} {
		if c.js == s {
			t.Fatalf("%s: the raw change did not apply", c.name)
		}
		// An escape that denotes the same value is a re-serialization the
		// spec allows (§2); it must open, everything else must not.
		if c.name == "string with escaped character" {
			e, err := ParseEnvelope([]byte(c.js))
			if err == nil {
				_, err = OpenDirect(e, fx.B.keys, fx.A.bundle, OpenOptions{})
			}
			if err != nil {
				t.Errorf("%s: a re-serialized envelope must open: %v", c.name, err)
			}
			continue
		}
		fx.unsigned(ty4, c.name, []byte(c.js))
	}
	ty4.log("layer 1, raw JSON changes")
}

// TestTamperDirectHeaderBinding moves an envelope to another conversation
// or recipient set, and delivers it to someone it was not sent to.
func TestTamperDirectHeaderBinding(t *testing.T) {
	fx := newDirectFixture(t)
	A, B, C := fx.A, fx.B, fx.C
	all := fx.parties()
	for _, c := range []struct {
		name   string
		change func(h *Header)
	}{
		{"moved to another conversation", func(h *Header) { h.Conversation = "c.2" }},
		{"to replaced by [bob]", func(h *Header) { h.To = []privateline.Address{B.keys.address} }},
		{"to replaced by [bob, dave]", func(h *Header) { h.To = []privateline.Address{B.keys.address, "dave@example.org"} }},
		{"to replaced by [bob, carol, dave]", func(h *Header) {
			h.To = []privateline.Address{B.keys.address, C.keys.address, "dave@example.org"}
		}},
		{"expiry removed", func(h *Header) { h.ExpiresAt = time.Time{} }},
		{"expiry extended", func(h *Header) { h.ExpiresAt = h.ExpiresAt.Add(24 * time.Hour) }},
		{"sent earlier", func(h *Header) { h.SentAt = h.SentAt.Add(-time.Minute) }},
		{"new message id (replay under a fresh id)", func(h *Header) { h.ID = strings.Repeat("ab", 16) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			ty := newTally(t)
			e := fx.parse(t, fx.js)
			c.change(&e.Header)
			e = wire(t, e)
			for _, me := range all {
				m, err := OpenDirect(e, me.keys, A.bundle, OpenOptions{})
				ty.refused("server ("+string(me.keys.address)+")", m, err, ErrBadSignature)
			}
			fx.resign(e)
			e = wire(t, e)
			for _, me := range all {
				m, err := OpenDirect(e, me.keys, A.bundle, OpenOptions{})
				ty.refused("re-signed ("+string(me.keys.address)+")", m, err, ErrDecrypt, ErrRecipients, ErrNotRecipient)
			}
		})
	}

	t.Run("delivered to someone not in to", func(t *testing.T) {
		ty := newTally(t)
		e, err := SealDirect(nil, A.keys, []*KeyBundle{B.bundle}, Draft{Conversation: "c.1", SentAt: t0, Message: text("for bob")})
		if err != nil {
			t.Fatal(err)
		}
		e = wire(t, e)
		if m, err := OpenDirect(e, B.keys, A.bundle, OpenOptions{}); err != nil || m.Body != "for bob" {
			t.Fatalf("control: %v", err)
		}
		for _, opts := range []OpenOptions{{}, {Recipients: []*KeyBundle{B.bundle}}} {
			m, err := OpenDirect(e, C.keys, A.bundle, opts)
			ty.refused("carol opens bob's message", m, err, ErrNotRecipient)
		}
		// The server adds carol to "to".
		e2 := fx.parse(t, mustJSON(t, e))
		e2.Header.To = []privateline.Address{B.keys.address, C.keys.address}
		e2 = wire(t, e2)
		m, err := OpenDirect(e2, C.keys, A.bundle, OpenOptions{})
		ty.refused("server adds carol to to", m, err, ErrBadSignature)
		// Re-signed, without and with a wrap under carol's key id (bob's).
		resignDirect(A, e2)
		m, err = OpenDirect(e2, C.keys, A.bundle, OpenOptions{})
		ty.refused("re-signed with carol in to, no wrap for her", m, err, ErrNotRecipient)
		e2.Keys[C.keys.enc.ID()] = e2.Keys[B.keys.enc.ID()]
		resignDirect(A, e2)
		m, err = OpenDirect(wire(t, e2), C.keys, A.bundle, OpenOptions{})
		ty.refused("re-signed with bob's wrap under carol's key id", m, err, ErrDecrypt)
	})
}

func mustJSON(t testing.TB, e *Envelope) []byte {
	t.Helper()
	js, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// edL is the order of the Ed25519 base point, 2^252 + 27742317777372353535851937790883648493.
var edL, _ = new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)

// malleate returns sig with S replaced by S + L: the same point equation,
// refused by RFC 8032 §5.1.7 (S must be < L).
func malleate(sig []byte) []byte {
	le := func(b []byte) []byte { c := bytes.Clone(b); slices.Reverse(c); return c }
	s := new(big.Int).SetBytes(le(sig[32:]))
	s.Add(s, edL)
	out := bytes.Clone(sig)
	sb := make([]byte, 32)
	s.FillBytes(sb)
	copy(out[32:], le(sb))
	return out
}

// TestTamperDirectForeignSignature re-signs envelopes with identities other
// than the claimed sender's.
func TestTamperDirectForeignSignature(t *testing.T) {
	fx := newDirectFixture(t)
	A, B, C := fx.A, fx.B, fx.C
	all := fx.parties()
	ty := newTally(t)
	openAll := func(name string, e *Envelope, sender *KeyBundle, want ...Reason) {
		t.Helper()
		e = wire(t, e)
		for _, me := range all {
			m, err := OpenDirect(e, me.keys, sender, OpenOptions{})
			ty.refused(fmt.Sprintf("%s (opened by %s)", name, me.keys.address), m, err, want...)
		}
	}
	for _, signer := range []*testParty{C, B} {
		e := fx.parse(t, fx.js)
		resignDirect(signer, e)
		openAll(string(signer.keys.address)+" signs alice's envelope", e, A.bundle, ErrBadSignature)
		// A receiver given the signer's bundle instead of the pinned one
		// for "from" still refuses: from names alice.
		openAll(string(signer.keys.address)+" signs, opened with the signer's bundle", e, signer.bundle, ErrWrongSender)
	}

	// carol, a recipient, re-attributes alice's message to herself: she can
	// sign as carol and (knowing the content key) keep every wrap valid,
	// but the old ciphertext is bound to alice's header.
	e := fx.parse(t, fx.js)
	e.Header.From = C.keys.address
	e.Header.To = []privateline.Address{A.keys.address, B.keys.address}
	resignDirect(C, e)
	for _, me := range []*testParty{A, B} {
		m, err := OpenDirect(wire(t, e), me.keys, C.bundle, OpenOptions{})
		ty.refused("carol re-sends alice's ciphertext as hers (opened by "+string(me.keys.address)+")", m, err, ErrDecrypt)
	}

	// A valid signature by alice over another envelope, pasted in.
	other, err := SealDirect(nil, A.keys, []*KeyBundle{B.bundle, C.bundle}, Draft{Conversation: "c.1", SentAt: t0, Message: text("other")})
	if err != nil {
		t.Fatal(err)
	}
	e = fx.parse(t, fx.js)
	e.Signature = other.Signature
	openAll("alice's signature of another envelope", e, A.bundle, ErrBadSignature)
	// Mix and match the parts of two valid envelopes from alice to the
	// same recipients.
	for _, c := range []struct {
		name string
		mix  func(e *Envelope)
	}{
		{"other envelope's nonce and ciphertext", func(e *Envelope) { e.Nonce, e.Ciphertext = other.Nonce, other.Ciphertext }},
		{"other envelope's keys", func(e *Envelope) { e.Keys = other.Keys }},
		{"other envelope's header", func(e *Envelope) { e.Header = other.Header }},
		{"other envelope's keys and signature", func(e *Envelope) { e.Keys, e.Signature = other.Keys, other.Signature }},
	} {
		e := fx.parse(t, fx.js)
		c.mix(e)
		openAll(c.name, e, A.bundle, ErrBadSignature)
	}

	// Malleated and degenerate signatures.
	for _, c := range []struct {
		name string
		sig  []byte
	}{
		{"S + L", malleate(fx.parse(t, fx.js).Signature)},
		{"all zero", make([]byte, SignatureSize)},
		{"identity R, S = 0", append([]byte{1}, make([]byte, SignatureSize-1)...)},
		{"R and S swapped", func() []byte { s := fx.parse(t, fx.js).Signature; return append(bytes.Clone(s[32:]), s[:32]...) }()},
	} {
		e := fx.parse(t, fx.js)
		e.Signature = c.sig
		openAll("signature "+c.name, e, A.bundle, ErrBadSignature)
	}
	// Sanity: ed25519 itself refuses the malleated form of a signature it made.
	msg := []byte("x")
	sig := A.keys.sign(msg)
	if !A.keys.pub.Verify(msg, sig) || A.keys.pub.Verify(msg, malleate(sig)) || ed25519.Verify(A.keys.pub[:], msg, malleate(sig)) {
		t.Error("S + L signature verifies")
	}
	ty.log("foreign and pasted signatures")
}

// TestTamperDirectWrappedKeys swaps and replaces wrapped content keys.
func TestTamperDirectWrappedKeys(t *testing.T) {
	fx := newDirectFixture(t)
	A, B, C := fx.A, fx.B, fx.C
	ida, idb, idc := A.keys.enc.ID(), B.keys.enc.ID(), C.keys.enc.ID()
	base := fx.parse(t, fx.js)
	ck, err := A.keys.unwrap(base.Keys[ida], labelContentKey) // alice can read her own wrap
	if err != nil || len(ck) != KeySize {
		t.Fatalf("alice cannot unwrap her own copy: %v", err)
	}
	wrap := func(k *EncryptionKey, key []byte, label string) []byte {
		w, err := wrapKey(k, nil, key, label)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	// Control: a fresh, correct wrap for bob opens once re-signed.
	e := fx.parse(t, fx.js)
	e.Keys[idb] = wrap(B.keys.enc, ck, labelContentKey)
	fx.resign(e)
	if m, err := OpenDirect(wire(t, e), B.keys, A.bundle, OpenOptions{}); err != nil || m.Body != "meet at noon" {
		t.Fatalf("control: re-wrapped envelope does not open: %v", err)
	}

	other := make([]byte, KeySize)
	other[0] = 1
	for _, c := range []struct {
		name    string
		change  func(k map[string][]byte)
		victims []*testParty // who must fail once alice re-signs
	}{
		{"bob's and carol's wraps swapped", func(k map[string][]byte) { k[idb], k[idc] = k[idc], k[idb] }, []*testParty{B, C}},
		{"carol's wrap copied under bob's key id", func(k map[string][]byte) { k[idb] = k[idc] }, []*testParty{B}},
		{"alice's wrap copied under bob's key id", func(k map[string][]byte) { k[idb] = k[ida] }, []*testParty{B}},
		{"bob's wrap copied under alice's key id", func(k map[string][]byte) { k[ida] = k[idb] }, []*testParty{A}},
		{"bob's wrap under the group-key OAEP label", func(k map[string][]byte) { k[idb] = wrap(B.keys.enc, ck, labelGroupKey) }, []*testParty{B}},
		{"bob's wrap under an empty OAEP label", func(k map[string][]byte) { k[idb] = wrap(B.keys.enc, ck, "") }, []*testParty{B}},
		{"bob's wrap of another content key", func(k map[string][]byte) { k[idb] = wrap(B.keys.enc, other, labelContentKey) }, []*testParty{B}},
		{"bob's wrap of a 31-byte key", func(k map[string][]byte) { k[idb] = wrap(B.keys.enc, ck[:31], labelContentKey) }, []*testParty{B}},
		{"bob's wrap of a 33-byte key", func(k map[string][]byte) {
			k[idb] = wrap(B.keys.enc, append(bytes.Clone(ck), 0), labelContentKey)
		}, []*testParty{B}},
		{"bob's wrap all zero", func(k map[string][]byte) { k[idb] = make([]byte, rsaCiphertextSize) }, []*testParty{B}},
		{"bob's wrap all ones", func(k map[string][]byte) { k[idb] = bytes.Repeat([]byte{0xff}, rsaCiphertextSize) }, []*testParty{B}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ty := newTally(t)
			e := fx.parse(t, fx.js)
			c.change(e.Keys)
			e = wire(t, e)
			for _, me := range fx.parties() {
				m, err := OpenDirect(e, me.keys, A.bundle, OpenOptions{})
				ty.refused("server ("+string(me.keys.address)+")", m, err, ErrBadSignature)
			}
			fx.resign(e)
			e = wire(t, e)
			for _, me := range c.victims {
				m, err := OpenDirect(e, me.keys, A.bundle, OpenOptions{})
				ty.refused("re-signed ("+string(me.keys.address)+")", m, err, ErrDecrypt)
			}
		})
	}

	// The sender adds a wrap for someone the header does not name: the
	// ciphertext stays valid (same content key), so only the recipient
	// checks can refuse it (§12.1 step 6).
	t.Run("hidden recipient", func(t *testing.T) {
		ty := newTally(t)
		eb, err := SealDirect(nil, A.keys, []*KeyBundle{B.bundle}, Draft{Conversation: "c.1", SentAt: t0, Message: text("for bob")})
		if err != nil {
			t.Fatal(err)
		}
		ckb, err := A.keys.unwrap(eb.Keys[ida], labelContentKey)
		if err != nil {
			t.Fatal(err)
		}
		extra := wire(t, eb)
		extra.Keys[idc] = wrap(C.keys.enc, ckb, labelContentKey)
		resignDirect(A, extra)
		extra = wire(t, extra)
		for _, opts := range []OpenOptions{{}, {Recipients: []*KeyBundle{B.bundle}}} {
			m, err := OpenDirect(extra, B.keys, A.bundle, opts)
			ty.refused("extra wrap for carol, opened by bob", m, err, ErrRecipients)
		}
		m, err := OpenDirect(extra, C.keys, A.bundle, OpenOptions{})
		ty.refused("extra wrap for carol, opened by carol", m, err, ErrNotRecipient)

		// bob's wrap replaced by one for carol; "to" still names bob only.
		swapped := wire(t, eb)
		delete(swapped.Keys, idb)
		swapped.Keys[idc] = wrap(C.keys.enc, ckb, labelContentKey)
		resignDirect(A, swapped)
		swapped = wire(t, swapped)
		for _, me := range []*testParty{B, C} {
			m, err := OpenDirect(swapped, me.keys, A.bundle, OpenOptions{})
			ty.refused("carol's wrap instead of bob's, opened by "+string(me.keys.address), m, err, ErrNotRecipient)
		}
		m, err = OpenDirect(swapped, A.keys, A.bundle, OpenOptions{Recipients: []*KeyBundle{B.bundle}})
		ty.refused("carol's wrap instead of bob's, alice's other device with bob's bundle", m, err, ErrRecipients)
	})

	// A wrap to a key that is not a recipient's, instead of carol's: only a
	// receiver that holds every recipient's bundle can tell (§12.1 step 6).
	t.Run("carol's wrap under an unknown key id", func(t *testing.T) {
		ty := newTally(t)
		e := fx.parse(t, fx.js)
		e.Keys[strings.Repeat("0", 32)] = e.Keys[idc]
		delete(e.Keys, idc)
		fx.resign(e)
		e = wire(t, e)
		m, err := OpenDirect(e, C.keys, A.bundle, OpenOptions{})
		ty.refused("carol", m, err, ErrNotRecipient)
		m, err = OpenDirect(e, B.keys, A.bundle, OpenOptions{Recipients: []*KeyBundle{B.bundle, C.bundle}})
		ty.refused("bob, with every recipient's bundle", m, err, ErrRecipients)
	})
}

// ---------------------------------------------------------------- groups

type groupFixture struct {
	A, B, C   *testParty // alice and bob are members of g.1; carol is not
	gkA, gkB  *GroupKey  // epoch 1 of g.1, as alice (distributor) and bob hold it
	gk2       *GroupKey  // epoch 2 of g.1, begun an hour after t0
	gkOther   *GroupKey  // epoch 1 of g.2, same members
	js        []byte     // bob's message to g.1, epoch 1
	base      jobj
	sentAt    time.Time
	plaintext string
}

func newGroupFixture(t *testing.T) *groupFixture {
	t.Helper()
	ps := vectorParties(t)
	fx := &groupFixture{A: ps["alice"], B: ps["bob"], C: ps["carol"], plaintext: "group hello"}
	members := []*KeyBundle{fx.A.bundle, fx.B.bundle}
	var doc []byte
	var err error
	if fx.gkA, doc, err = SealGroupKey(nil, fx.A.keys, "g.1", 1, t0, members); err != nil {
		t.Fatal(err)
	}
	if fx.gkB, err = OpenGroupKey(doc, fx.B.keys, fx.A.bundle, GroupKeyOptions{Members: members}); err != nil {
		t.Fatal(err)
	}
	if fx.gk2, _, err = SealGroupKey(nil, fx.A.keys, "g.1", 2, t0.Add(time.Hour), members); err != nil {
		t.Fatal(err)
	}
	if fx.gkOther, _, err = SealGroupKey(nil, fx.A.keys, "g.2", 1, t0, members); err != nil {
		t.Fatal(err)
	}
	_, att, err := EncryptAttachment(nil, []byte("file"))
	if err != nil {
		t.Fatal(err)
	}
	att.FileID, att.Name, att.MIME = "f.1", "a.txt", "text/plain"
	fx.sentAt = t0.Add(time.Minute)
	e, err := SealGroup(nil, fx.B.keys, fx.gkB, Draft{SentAt: fx.sentAt, ExpiresAt: t0.Add(2 * time.Hour),
		Message: &Message{Type: MessageTypeText, Body: fx.plaintext, Attachments: []Attachment{att}}})
	if err != nil {
		t.Fatal(err)
	}
	fx.js = mustJSON(t, e)
	fx.base = decodeJSON(t, fx.js)
	requireMembers(t, fx.base["header"].(jobj), "v", "suite", "id", "from", "group", "epoch", "conversation", "sent_at", "expires_at", "files")
	again := encodeJSON(t, cloneJSON(fx.base))
	if !bytes.Equal(again, fx.js) {
		t.Fatalf("the JSON round trip changes the envelope")
	}
	for _, resign := range []bool{false, true} {
		e := fx.parse(t, again)
		if resign {
			fx.resign(e)
		}
		for _, gk := range fx.keys() {
			m, err := OpenGroup(e, gk, fx.B.bundle, GroupOpenOptions{Now: t0, Latest: fx.gk2})
			if err != nil || m.Body != fx.plaintext {
				t.Fatalf("control (resigned %v): cannot open: %v", resign, err)
			}
		}
	}
	return fx
}

// keys are the openers: alice's and bob's copies of epoch 1.
func (fx *groupFixture) keys() []*GroupKey { return []*GroupKey{fx.gkA, fx.gkB} }

var groupOpener = []string{"alice", "bob"}

func (fx *groupFixture) parse(t testing.TB, js []byte) *Envelope {
	t.Helper()
	e, err := ParseEnvelope(js)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return e
}

func (fx *groupFixture) resign(e *Envelope) { resignGroup(fx.B, e) }

func resignGroup(p *testParty, e *Envelope) {
	aad, err := e.Header.AAD()
	if err != nil {
		panic(err)
	}
	e.Signature = p.keys.sign(groupSigned(aad, e.Salt, e.Nonce, e.Ciphertext))
}

func (fx *groupFixture) unsigned(ty *tally, name string, js []byte, want ...Reason) {
	ty.t.Helper()
	if len(want) == 0 {
		want = beforeDecryptGroup
	}
	e, err := ParseEnvelope(js)
	if err != nil {
		ty.refused(name+" (parse)", nil, err, want...)
		return
	}
	for i, gk := range fx.keys() {
		m, err := OpenGroup(e, gk, fx.B.bundle, GroupOpenOptions{})
		ty.refused(fmt.Sprintf("%s (opened by %s)", name, groupOpener[i]), m, err, want...)
	}
}

func (fx *groupFixture) resigned(ty *tally, name string, js []byte, want ...Reason) {
	ty.t.Helper()
	e, err := ParseEnvelope(js)
	if err != nil {
		ty.refused(name+" (parse, re-signed)", nil, err)
		return
	}
	fx.resign(e)
	for i, gk := range fx.keys() {
		m, err := OpenGroup(e, gk, fx.B.bundle, GroupOpenOptions{})
		ty.refused(fmt.Sprintf("%s (re-signed, opened by %s)", name, groupOpener[i]), m, err, want...)
	}
}

var groupBins = []binField{{name: "salt"}, {name: "nonce"}, {name: "ciphertext"}, {name: "signature"}}

// TestTamperGroupEveryByte flips bits in every byte of the salt, nonce,
// ciphertext and signature of a group envelope.
func TestTamperGroupEveryByte(t *testing.T) {
	fx := newGroupFixture(t)
	ty, ty2 := newTally(t), newTally(t)
	n := 0
	for _, f := range groupBins {
		for _, mu := range flipMutations(t, fx.base, f, f.name != "ciphertext", nil) {
			js := mu.json(t, fx.base)
			fx.unsigned(ty, mu.name, js, ErrBadSignature)
			n++
			if f.name != "signature" {
				// With a valid signature the derived key (salt) or
				// AES-GCM (nonce, ciphertext) still refuses.
				fx.resigned(ty2, mu.name, js, ErrDecrypt)
			}
		}
	}
	ty.log(fmt.Sprintf("layer 1, %d bit flips", n))
	ty2.log("layer 2 (re-signed by the sender)")
	if ty.counts[ErrBadSignature] != 2*n {
		t.Errorf("%d bad_signature refusals for %d flips and 2 openers", ty.counts[ErrBadSignature], n)
	}
}

// TestTamperGroupEveryHeaderValue changes every header value of a group
// envelope and its structure.
func TestTamperGroupEveryHeaderValue(t *testing.T) {
	fx := newGroupFixture(t)
	hm := headerMutations(fx.base)
	hm = append(hm,
		mutation{"header.to added", func(m jobj) { m["header"].(jobj)["to"] = []any{string(fx.C.keys.address)} }},
		mutation{"header.group and conversation moved to g.2", func(m jobj) {
			h := m["header"].(jobj)
			h["group"], h["conversation"] = "g.2", "g.2"
		}},
		mutation{"header in direct form", func(m jobj) {
			h := m["header"].(jobj)
			delete(h, "group")
			delete(h, "epoch")
			h["to"] = []any{string(fx.A.keys.address)}
		}},
	)
	ty, ty2 := newTally(t), newTally(t)
	for _, mu := range hm {
		js := mu.json(t, fx.base)
		fx.unsigned(ty, mu.name, js)
		fx.resigned(ty2, mu.name, js)
	}
	ty.log(fmt.Sprintf("layer 1, %d header changes", len(hm)))
	ty2.log("layer 2 (re-signed by the sender)")
	if ty2.counts[ErrDecrypt] == 0 {
		t.Error("no re-signed header change reached AES-GCM")
	}

	ty3 := newTally(t)
	sm := structureMutations(t, fx.base, groupBins)
	sm = append(sm,
		mutation{"direct keys added", func(m jobj) { m["keys"] = jobj{fx.A.keys.enc.ID(): b64std(make([]byte, rsaCiphertextSize))} }},
		shiftMutation(t, fx.base, binField{name: "salt"}, binField{name: "nonce"}, true),
		shiftMutation(t, fx.base, binField{name: "salt"}, binField{name: "nonce"}, false),
		shiftMutation(t, fx.base, binField{name: "nonce"}, binField{name: "ciphertext"}, true),
		shiftMutation(t, fx.base, binField{name: "nonce"}, binField{name: "ciphertext"}, false),
	)
	for _, mu := range sm {
		fx.unsigned(ty3, mu.name, mu.json(t, fx.base))
	}
	ty3.log(fmt.Sprintf("layer 1, %d structure changes", len(sm)))
}

// TestTamperGroupEpochsAndGroups: stale epochs, other groups and epochs,
// non-members and foreign signatures.
func TestTamperGroupEpochsAndGroups(t *testing.T) {
	fx := newGroupFixture(t)
	A, B, C := fx.A, fx.B, fx.C
	ty := newTally(t)
	open := func(name string, e *Envelope, gk *GroupKey, sender *KeyBundle, opts GroupOpenOptions, want ...Reason) {
		t.Helper()
		m, err := OpenGroup(wire(t, e), gk, sender, opts)
		ty.refused(name, m, err, want...)
	}

	// Stale epoch: bob keeps using epoch 1 after epoch 2 began (t0+1h).
	for _, at := range []time.Duration{time.Hour, time.Hour + time.Millisecond, 90 * time.Minute} {
		stale, err := SealGroup(nil, B.keys, fx.gkB, Draft{SentAt: t0.Add(at), Message: text("late")})
		if err != nil {
			t.Fatal(err)
		}
		open(fmt.Sprintf("epoch 1 used %v after t0, epoch 2 began at +1h", at), stale, fx.gkA, B.bundle, GroupOpenOptions{Latest: fx.gk2}, ErrStaleEpoch)
		// The server backdates it: the signature covers sent_at.
		e := fx.parse(t, mustJSON(t, stale))
		e.Header.SentAt = t0
		open("stale message backdated by the server", e, fx.gkA, B.bundle, GroupOpenOptions{Latest: fx.gk2}, ErrBadSignature)
		// Backdated and re-signed by bob: AES-GCM binds sent_at.
		resignGroup(B, e)
		open("stale message backdated and re-signed", e, fx.gkA, B.bundle, GroupOpenOptions{Latest: fx.gk2}, ErrDecrypt)
	}
	// Control: a message sent before epoch 2 began still opens.
	if m, err := OpenGroup(fx.parse(t, fx.js), fx.gkA, B.bundle, GroupOpenOptions{Latest: fx.gk2}); err != nil || m.Body != fx.plaintext {
		t.Fatalf("control: epoch-1 message sent before epoch 2: %v", err)
	}

	e := fx.parse(t, fx.js)
	open("opened with another group's key", e, fx.gkOther, B.bundle, GroupOpenOptions{}, ErrWrongGroup)
	open("opened with another epoch's key", e, fx.gk2, B.bundle, GroupOpenOptions{}, ErrWrongEpoch)

	// Moved to another group or epoch by the server, then re-signed.
	for _, c := range []struct {
		name   string
		change func(h *Header)
		gk     *GroupKey
	}{
		{"moved to g.2", func(h *Header) { h.Group, h.Conversation = "g.2", "g.2" }, fx.gkOther},
		{"moved to epoch 2", func(h *Header) { h.Epoch = 2 }, fx.gk2},
	} {
		e := fx.parse(t, fx.js)
		c.change(&e.Header)
		open(c.name, e, c.gk, B.bundle, GroupOpenOptions{}, ErrBadSignature)
		resignGroup(B, e)
		open(c.name+", re-signed", e, c.gk, B.bundle, GroupOpenOptions{}, ErrDecrypt)
	}

	// Signatures by other identities.
	for _, signer := range []*testParty{A, C} {
		e := fx.parse(t, fx.js)
		resignGroup(signer, e)
		for i, gk := range fx.keys() {
			open(fmt.Sprintf("%s signs bob's message (opened by %s)", signer.keys.address, groupOpener[i]), e, gk, B.bundle, GroupOpenOptions{}, ErrBadSignature)
			open(fmt.Sprintf("%s signs bob's message, opened with the signer's bundle (by %s)", signer.keys.address, groupOpener[i]), e, gk, signer.bundle, GroupOpenOptions{}, ErrWrongSender)
		}
	}
	// carol, not a member, claims the message as hers and signs it.
	e = fx.parse(t, fx.js)
	e.Header.From = C.keys.address
	resignGroup(C, e)
	open("a non-member signs as sender", e, fx.gkA, C.bundle, GroupOpenOptions{}, ErrNotMember)
	// alice, a member, re-attributes bob's message to herself.
	e = fx.parse(t, fx.js)
	e.Header.From = A.keys.address
	resignGroup(A, e)
	open("alice re-sends bob's ciphertext as hers", e, fx.gkB, A.bundle, GroupOpenOptions{}, ErrDecrypt)
	// Signatures malleated or pasted from another message of bob's.
	other, err := SealGroup(nil, B.keys, fx.gkB, Draft{SentAt: fx.sentAt, Message: text("other")})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		mix  func(e *Envelope)
	}{
		{"S + L", func(e *Envelope) { e.Signature = malleate(e.Signature) }},
		{"other message's signature", func(e *Envelope) { e.Signature = other.Signature }},
		{"other message's salt", func(e *Envelope) { e.Salt = other.Salt }},
		{"other message's salt, nonce and ciphertext", func(e *Envelope) { e.Salt, e.Nonce, e.Ciphertext = other.Salt, other.Nonce, other.Ciphertext }},
		{"other message's header", func(e *Envelope) { e.Header = other.Header }},
	} {
		e := fx.parse(t, fx.js)
		c.mix(e)
		open(c.name, e, fx.gkA, B.bundle, GroupOpenOptions{}, ErrBadSignature)
	}

	// The two forms do not mix.
	dfx := newDirectFixture(t)
	direct := dfx.parse(t, dfx.js)
	m, err := OpenGroup(direct, fx.gkA, A.bundle, GroupOpenOptions{})
	ty.refused("direct envelope opened as a group message", m, err, ErrMalformed)
	m2, err := OpenDirect(fx.parse(t, fx.js), A.keys, B.bundle, OpenOptions{})
	ty.refused("group envelope opened as a direct message", m2, err, ErrMalformed)
	ty.log("epochs, groups and signers")
}

// ---------------------------------------------------------- safety numbers

func rotatedIdentity(label string) IdentityKey {
	seed := sha256.Sum256([]byte("privateline tamper test/" + label))
	var k IdentityKey
	copy(k[:], ed25519.NewKeyFromSeed(seed[:]).Public().(ed25519.PublicKey))
	return k
}

// TestTamperSafetyNumbers: both sides compute the same number and accept
// each other's QR code, and a key change on either side breaks both.
func TestTamperSafetyNumbers(t *testing.T) {
	ps := vectorParties(t)
	a, b, c := ps["alice"].bundle, ps["bob"].bundle, ps["carol"].bundle
	ka, kb := a.Identity, b.Identity
	ka2, kb2 := rotatedIdentity("alice"), rotatedIdentity("bob")

	sn := SafetyNumber(a.Address, ka, b.Address, kb)
	if sn != SafetyNumber(b.Address, kb, a.Address, ka) {
		t.Fatal("alice and bob compute different safety numbers")
	}
	for _, ch := range []struct {
		name       string
		ka, kb     IdentityKey
		addrA      privateline.Address
		sameDigits bool
	}{
		{"alice's key changed", ka2, kb, a.Address, false},
		{"bob's key changed", ka, kb2, a.Address, false},
		{"both keys changed", ka2, kb2, a.Address, false},
		{"alice's key under carol's address", ka, kb, c.Address, false},
		{"keys swapped between the addresses", kb, ka, a.Address, false},
	} {
		x := SafetyNumber(ch.addrA, ch.ka, b.Address, ch.kb)
		y := SafetyNumber(b.Address, ch.kb, ch.addrA, ch.ka)
		if x != y {
			t.Errorf("%s: the two sides differ", ch.name)
		}
		if x == sn {
			t.Errorf("%s: safety number unchanged", ch.name)
		}
	}
	// Every single-bit change of either key changes the number (one bit
	// per byte, rotating, to keep 5,200 SHA-512 rounds per side affordable).
	for i := range 32 {
		for who, k := range map[string]IdentityKey{"alice": ka, "bob": kb} {
			k[i] ^= 1 << (i % 8)
			var x string
			if who == "alice" {
				x = SafetyNumber(a.Address, k, b.Address, kb)
			} else {
				x = SafetyNumber(a.Address, ka, b.Address, k)
			}
			if x == sn {
				t.Errorf("%s's key with byte %d flipped: safety number unchanged", who, i)
			}
		}
	}

	// QR: each side's code verifies on the other side.
	codeA := QRPayload(a.Address, ka, b.Address, kb) // alice shows, bob scans
	codeB := QRPayload(b.Address, kb, a.Address, ka) // bob shows, alice scans
	if err := CompareQRPayload(codeA, b.Address, kb, a.Address, ka); err != nil {
		t.Fatalf("bob scanning alice's code: %v", err)
	}
	if err := CompareQRPayload(codeB, a.Address, ka, b.Address, kb); err != nil {
		t.Fatalf("alice scanning bob's code: %v", err)
	}
	for _, c := range []struct {
		name     string
		code     string
		me       privateline.Address
		myKey    IdentityKey
		peer     privateline.Address
		peerKey  IdentityKey
		wantCode Reason
	}{
		{"alice's key changed; bob scans her new code with the old pin", QRPayload(a.Address, ka2, b.Address, kb), b.Address, kb, a.Address, ka, ErrFingerprint},
		{"alice's key changed; bob pinned the new key, scans her old code", codeA, b.Address, kb, a.Address, ka2, ErrFingerprint},
		{"alice's key changed; alice scans bob's code (made with her old key)", codeB, a.Address, ka2, b.Address, kb, ErrFingerprint},
		{"bob's key changed; bob scans alice's code (made with his old key)", codeA, b.Address, kb2, a.Address, ka, ErrFingerprint},
		{"bob's key changed; alice scans his new code with the old pin", QRPayload(b.Address, kb2, a.Address, ka), a.Address, ka, b.Address, kb, ErrFingerprint},
		{"alice scans her own code", codeA, a.Address, ka, b.Address, kb, ErrFingerprint},
		{"carol scans alice's code for bob", codeA, c.Address, c.Identity, a.Address, ka, ErrFingerprint},
		{"halves swapped", "PLSN1:" + codeA[6+64:] + codeA[6:6+64], b.Address, kb, a.Address, ka, ErrFingerprint},
		{"lower-case hex", "PLSN1:" + strings.ToLower(codeA[6:]), b.Address, kb, a.Address, ka, ErrMalformed},
		{"truncated", codeA[:len(codeA)-1], b.Address, kb, a.Address, ka, ErrMalformed},
		{"extended", codeA + "0", b.Address, kb, a.Address, ka, ErrMalformed},
		{"version 2", "PLSN2:" + codeA[6:], b.Address, kb, a.Address, ka, ErrUnknownSuite},
		{"no prefix", codeA[6:], b.Address, kb, a.Address, ka, ErrMalformed},
	} {
		if err := CompareQRPayload(c.code, c.me, c.myKey, c.peer, c.peerKey); ReasonOf(err) != c.wantCode {
			t.Errorf("%s: %v, want %s", c.name, err, c.wantCode)
		}
	}
	// Every hex digit of the payload changed to another one.
	const hexDigits = "0123456789ABCDEF"
	for i := 6; i < len(codeA); i++ {
		d := strings.IndexByte(hexDigits, codeA[i])
		code := codeA[:i] + string(hexDigits[(d+1+i%15)%16]) + codeA[i+1:]
		if err := CompareQRPayload(code, b.Address, kb, a.Address, ka); ReasonOf(err) != ErrFingerprint {
			t.Errorf("digit %d changed: %v", i, err)
		}
	}
}
