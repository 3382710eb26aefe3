package wire

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/cjson"
	"github.com/privateline/privateline/envelope"
	"github.com/privateline/privateline/serverkey"
)

const (
	srvA = privateline.ServerName("a.example")
	srvB = privateline.ServerName("localhost:8449")
)

var now = time.UnixMilli(1_760_000_000_000)

type fixture struct {
	ka, kb *serverkey.PrivateKey
	peerA  Peer // how B sees A
	peerB  Peer // how A sees B
}

func newFixture(t testing.TB) *fixture {
	ka, err := serverkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	kb, err := serverkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{ka: ka, kb: kb, peerA: Peer{srvA, ka.Public()}, peerB: Peer{srvB, kb.Public()}}
}

func sampleTx(n int) *Transaction {
	tx := &Transaction{
		Header: Header{Origin: srvA, Destination: srvB, TxnID: NewTxnID(), CreatedAt: now.UnixMilli()},
		Type:   TypeEnvelopes,
	}
	for i := range n {
		tx.Entries = append(tx.Entries, Entry{
			ID:       fmt.Sprintf("%032x", i+1),
			Envelope: []byte(fmt.Sprintf(`{"header":{"id":"%032x"},"note":"é/\u2028 %d"}`, i+1, i)),
		})
	}
	return tx
}

func mustSign(t testing.TB, m Message, k *serverkey.PrivateKey) []byte {
	t.Helper()
	raw, err := Sign(m, k)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// signMap signs an arbitrary member map as a transaction, for inputs Sign
// would refuse to produce.
func signMap(t *testing.T, m map[string]any, label string, k *serverkey.PrivateKey) []byte {
	t.Helper()
	delete(m, "signature")
	in, err := signingInput(label, m)
	if err != nil {
		t.Fatal(err)
	}
	m["signature"] = b64.EncodeToString(k.Sign(in))
	raw, err := cjson.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func members(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	v, err := cjson.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return v.(map[string]any)
}

func TestTransactionRoundTrip(t *testing.T) {
	f := newFixture(t)
	tx := sampleTx(3)
	raw := mustSign(t, tx, f.ka)
	if err := cjson.Check(raw); err != nil {
		t.Fatalf("signed transaction is not canonical: %v", err)
	}
	if len(tx.Signature) != ed25519.SignatureSize {
		t.Fatalf("Sign did not set the signature")
	}
	m, err := Verify(raw, f.peerA, srvB, now, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	got, ok := m.(*Transaction)
	if !ok {
		t.Fatalf("Verify returned %T", m)
	}
	if !reflect.DeepEqual(got, tx) {
		t.Fatalf("round trip changed the transaction:\n got %+v\nwant %+v", got, tx)
	}
	// A transaction sent before its predecessor was answered names it
	// (§14), in the signed members, in both encoders.
	for _, typ := range []Type{TypeEnvelopes, TypeReadMarks} {
		tx2 := sampleTx(2)
		if typ == TypeReadMarks {
			tx2 = &Transaction{Header: tx2.Header, Type: typ, Entries: []Entry{{ID: NewTxnID(), Message: NewTxnID(), Reader: privateline.Address("alice@" + srvA), At: 5}}}
		}
		tx2.After = NewTxnID()
		m2, err := Verify(mustSign(t, tx2, f.ka), f.peerA, srvB, now, DefaultLimits())
		if err != nil {
			t.Fatalf("%s with after: %v", typ, err)
		}
		if !reflect.DeepEqual(m2, tx2) {
			t.Fatalf("%s: round trip changed the transaction:\n got %+v\nwant %+v", typ, m2, tx2)
		}
	}
	// The envelope bytes travel as they were, byte for byte.
	if !bytes.Equal(got.Entries[2].Envelope, tx.Entries[2].Envelope) {
		t.Fatal("envelope bytes changed")
	}
	// The signature is over the label and the SHA-256 digest of the
	// canonical members (spec/federation.md §7.2), written out here
	// rather than through signingInput.
	c, err := cjson.Marshal(tx.body())
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256(c)
	in := append([]byte("privateline/v1/federation-transaction-sha256\x00"), d[:]...)
	if !ed25519.Verify(f.ka.Public(), in, got.Signature) {
		t.Fatal("signature is not over label ‖ 0x00 ‖ SHA-256(canonical members)")
	}
}

func TestReceiptRoundTripAndAnswers(t *testing.T) {
	f := newFixture(t)
	tx := sampleTx(3)
	mustSign(t, tx, f.ka)
	r := &Receipt{
		Header: Header{Origin: srvB, Destination: srvA, TxnID: tx.TxnID, CreatedAt: now.UnixMilli() + 1500},
		Results: []Result{
			{ID: tx.Entries[0].ID, Status: Accepted},
			{ID: tx.Entries[1].ID, Status: Duplicate},
			{ID: tx.Entries[2].ID, Status: Refused, Error: "unknown_recipient"},
		},
	}
	raw := mustSign(t, r, f.kb)
	m, err := Verify(raw, f.peerB, srvA, now, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	got := m.(*Receipt)
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip changed the receipt:\n got %+v\nwant %+v", got, r)
	}
	if err := got.Answers(tx); err != nil {
		t.Fatalf("receipt does not answer its transaction: %v", err)
	}
	// A receipt signed as a transaction (label) is refused.
	body := r.body()
	forged := signMap(t, body, LabelTransaction, f.kb)
	if _, err := Verify(forged, f.peerB, srvA, now, DefaultLimits()); ReasonOf(err) != BadSignature {
		t.Fatalf("receipt under the transaction label: %v, want bad_signature", err)
	}

	other := sampleTx(3)
	other.TxnID = tx.TxnID
	other.Entries[1].ID = fmt.Sprintf("%032x", 99)
	fewer := sampleTx(2)
	fewer.TxnID = tx.TxnID
	otherTxn := *tx
	otherTxn.TxnID = NewTxnID()
	otherDest := *tx
	otherDest.Destination = "c.example"
	for name, sent := range map[string]*Transaction{"other ids": other, "fewer entries": fewer, "other txn": &otherTxn, "other destination": &otherDest} {
		if err := got.Answers(sent); ReasonOf(err) != ReceiptMismatch {
			t.Errorf("%s: Answers = %v, want receipt_mismatch", name, err)
		}
	}
}

func TestRefusals(t *testing.T) {
	f := newFixture(t)
	lim := DefaultLimits()
	stranger, _ := serverkey.Generate()

	signedWith := func(edit func(tx *Transaction), k *serverkey.PrivateKey) []byte {
		tx := sampleTx(3)
		if edit != nil {
			edit(tx)
		}
		return mustSign(t, tx, k)
	}
	valid := signedWith(nil, f.ka)
	editMembers := func(edit func(m map[string]any)) []byte {
		m := members(t, valid)
		edit(m)
		return signMap(t, m, LabelTransaction, f.ka)
	}

	cases := []struct {
		name string
		raw  []byte
		lim  func(*Limits)
		at   time.Time
		want Reason
	}{
		{name: "forged signature (another key)", raw: signedWith(nil, stranger), want: BadSignature},
		{name: "forged signature (the peer's key for another server)", raw: signedWith(nil, f.kb), want: BadSignature},
		{name: "envelope changed after signing", raw: func() []byte {
			m := members(t, valid)
			m["entries"].([]any)[1].(map[string]any)["envelope"] = b64.EncodeToString([]byte(`{"x":1}`))
			raw, _ := cjson.Marshal(m)
			return raw
		}(), want: BadSignature},
		{name: "created_at changed after signing", raw: func() []byte {
			m := members(t, valid)
			m["created_at"] = m["created_at"].(int64) + 1
			raw, _ := cjson.Marshal(m)
			return raw
		}(), want: BadSignature},
		{name: "another origin", raw: signedWith(func(tx *Transaction) { tx.Origin = "c.example" }, f.ka), want: WrongOrigin},
		{name: "misaddressed", raw: signedWith(func(tx *Transaction) { tx.Destination = "c.example" }, f.ka), want: Misaddressed},
		{name: "stale", raw: valid, at: now.Add(MaxSkew + time.Millisecond), want: Stale},
		{name: "future", raw: valid, at: now.Add(-MaxSkew - time.Millisecond), want: Future},
		{name: "oversized frame", raw: valid, lim: func(l *Limits) { l.MaxFrame = len(valid) - 1 }, want: TooLarge},
		{name: "oversized envelope", raw: signedWith(func(tx *Transaction) {
			tx.Entries[1].Envelope = bytes.Repeat([]byte("x"), MaxEnvelope+1)
		}, f.ka), want: TooLarge},
		{name: "too many entries", raw: signedWith(func(tx *Transaction) { tx.Entries = sampleTx(MaxEntries + 1).Entries }, f.ka), want: TooManyEntries},
		{name: "non-canonical: whitespace", raw: append(append([]byte{}, valid...), ' '), want: NonCanonical},
		{name: "non-canonical: member order", raw: append([]byte(`{"v":1,`), bytes.Replace(valid, []byte(`,"v":1}`), []byte(`}`), 1)[1:]...), want: NonCanonical},
		{name: "non-canonical: escaped letter", raw: bytes.Replace(valid, []byte(`"type":"envelopes"`), []byte(`"type":"envelop\u0065s"`), 1), want: NonCanonical},
		{name: "unknown version", raw: editMembers(func(m map[string]any) { m["v"] = int64(2) }), want: UnknownVersion},
		{name: "unknown version before unknown members", raw: editMembers(func(m map[string]any) { m["v"] = int64(2); m["extra"] = true }), want: UnknownVersion},
		{name: "unknown type", raw: editMembers(func(m map[string]any) { m["type"] = "read_receipts" }), want: UnknownType},
		{name: "after: not an id", raw: editMembers(func(m map[string]any) { m["after"] = "x" }), want: Malformed},
		{name: "after: its own txn id", raw: editMembers(func(m map[string]any) { m["after"] = m["txn_id"] }), want: Malformed},
		{name: "after on a type not from an outbox", raw: func() []byte {
			m := members(t, mustSign(t, keyRequest(1), f.ka))
			m["after"] = NewTxnID()
			return signMap(t, m, LabelTransaction, f.ka)
		}(), want: Malformed},
		{name: "after changed after signing", raw: func() []byte {
			m := members(t, signedWith(func(tx *Transaction) { tx.After = NewTxnID() }, f.ka))
			m["after"] = NewTxnID()
			raw, _ := cjson.Marshal(m)
			return raw
		}(), want: BadSignature},
		{name: "truncated", raw: valid[:len(valid)-1], want: Malformed},
		{name: "not an object", raw: []byte(`[1]`), want: Malformed},
		{name: "not JSON", raw: []byte("\x00"), want: Malformed},
		{name: "empty", raw: nil, want: Malformed},
		{name: "float", raw: bytes.Replace(valid, []byte(`"v":1}`), []byte(`"v":1.0}`), 1), want: Malformed},
		{name: "unknown member", raw: editMembers(func(m map[string]any) { m["priority"] = int64(1) }), want: Malformed},
		{name: "unknown entry member", raw: editMembers(func(m map[string]any) { m["entries"].([]any)[0].(map[string]any)["to"] = "x" }), want: Malformed},
		{name: "missing origin", raw: editMembers(func(m map[string]any) { delete(m, "origin") }), want: Malformed},
		{name: "bad server name", raw: editMembers(func(m map[string]any) { m["destination"] = "B.example" }), want: Malformed},
		{name: "bad txn id", raw: editMembers(func(m map[string]any) { m["txn_id"] = strings.Repeat("A", 32) }), want: Malformed},
		{name: "bad entry id", raw: editMembers(func(m map[string]any) { m["entries"].([]any)[0].(map[string]any)["id"] = "1" }), want: Malformed},
		{name: "repeated entry id", raw: editMembers(func(m map[string]any) {
			es := m["entries"].([]any)
			es[2].(map[string]any)["id"] = es[0].(map[string]any)["id"]
		}), want: Malformed},
		{name: "no entries", raw: editMembers(func(m map[string]any) { m["entries"] = []any{} }), want: Malformed},
		{name: "empty envelope", raw: editMembers(func(m map[string]any) { m["entries"].([]any)[0].(map[string]any)["envelope"] = "" }), want: Malformed},
		{name: "envelope not base64", raw: editMembers(func(m map[string]any) { m["entries"].([]any)[0].(map[string]any)["envelope"] = "e30" }), want: Malformed},
		{name: "short signature", raw: func() []byte {
			m := members(t, valid)
			m["signature"] = b64.EncodeToString(make([]byte, 63))
			raw, _ := cjson.Marshal(m)
			return raw
		}(), want: Malformed},
		{name: "negative created_at", raw: editMembers(func(m map[string]any) { m["created_at"] = int64(-1) }), want: Malformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := lim
			if c.lim != nil {
				c.lim(&l)
			}
			at := now
			if !c.at.IsZero() {
				at = c.at
			}
			m, err := Verify(c.raw, f.peerA, srvB, at, l)
			if m != nil || err == nil {
				t.Fatalf("accepted (%T), want %s", m, c.want)
			}
			if got := ReasonOf(err); got != c.want {
				t.Fatalf("refused as %q (%v), want %q", got, err, c.want)
			}
		})
	}
	// The valid input itself passes, at both ends of the window.
	for _, at := range []time.Time{now, now.Add(MaxSkew), now.Add(-MaxSkew)} {
		if _, err := Verify(valid, f.peerA, srvB, at, lim); err != nil {
			t.Fatalf("valid transaction at %v: %v", at.Sub(now), err)
		}
	}
}

func TestEveryTruncationRefused(t *testing.T) {
	f := newFixture(t)
	valid := mustSign(t, sampleTx(2), f.ka)
	for n := range len(valid) {
		if _, err := Verify(valid[:n], f.peerA, srvB, now, DefaultLimits()); ReasonOf(err) != Malformed {
			t.Fatalf("first %d of %d bytes: %v, want malformed", n, len(valid), err)
		}
	}
}

func TestSignRefusesWhatReceiversRefuse(t *testing.T) {
	f := newFixture(t)
	for name, edit := range map[string]func(*Transaction){
		"no entries":     func(tx *Transaction) { tx.Entries = nil },
		"bad txn id":     func(tx *Transaction) { tx.TxnID = "x" },
		"bad origin":     func(tx *Transaction) { tx.Origin = "A B" },
		"repeated id":    func(tx *Transaction) { tx.Entries[1].ID = tx.Entries[0].ID },
		"empty envelope": func(tx *Transaction) { tx.Entries[0].Envelope = nil },
	} {
		tx := sampleTx(2)
		edit(tx)
		if _, err := Sign(tx, f.ka); ReasonOf(err) != Malformed {
			t.Errorf("%s: Sign = %v, want a malformed refusal", name, err)
		}
	}
	r := &Receipt{Header: Header{Origin: srvB, Destination: srvA, TxnID: NewTxnID(), CreatedAt: 1},
		Results: []Result{{ID: fmt.Sprintf("%032x", 1), Status: Refused}}}
	if _, err := Sign(r, f.kb); ReasonOf(err) != Malformed {
		t.Errorf("refused result without an error code: Sign = %v", err)
	}
	r.Results[0] = Result{ID: fmt.Sprintf("%032x", 1), Status: "lost"}
	if _, err := Sign(r, f.kb); ReasonOf(err) != Malformed {
		t.Errorf("unknown status: Sign = %v", err)
	}
}

func TestLimitsMatchClientAPI(t *testing.T) {
	if MaxEnvelope != envelope.MaxSize {
		t.Fatalf("MaxEnvelope %d, the client API's envelope limit is %d", MaxEnvelope, envelope.MaxSize)
	}
	// The largest envelope fits in one transaction with room to spare.
	f := newFixture(t)
	tx := sampleTx(1)
	tx.Entries[0].Envelope = bytes.Repeat([]byte("x"), MaxEnvelope)
	raw := mustSign(t, tx, f.ka)
	if len(raw) > MaxFrame {
		t.Fatalf("a transaction with one maximal envelope is %d bytes, over the frame cap", len(raw))
	}
	if _, err := Verify(raw, f.peerA, srvB, now, DefaultLimits()); err != nil {
		t.Fatal(err)
	}
}

func TestRefusalKinds(t *testing.T) {
	for r, k := range map[Reason]privateline.Kind{
		TooLarge: privateline.TooLarge, TooManyEntries: privateline.TooLarge,
		Malformed: privateline.Invalid, NonCanonical: privateline.Invalid, UnknownVersion: privateline.Invalid,
		BadSignature: privateline.Forbidden, WrongOrigin: privateline.Forbidden, Stale: privateline.Forbidden,
	} {
		if got := (&Refusal{Reason: r}).Kind(); got != k {
			t.Errorf("%s: kind %v, want %v", r, got, k)
		}
	}
	if ReasonOf(errors.New("x")) != "" {
		t.Error("ReasonOf a plain error")
	}
}

type memReplay struct {
	txns map[string][]Result
	envs map[string]bool
	fail error
}

func (m *memReplay) Seen(o privateline.ServerName, id string) ([]Result, bool, error) {
	r, ok := m.txns[string(o)+" "+id]
	return r, ok, m.fail
}

func (m *memReplay) SeenEnvelopes(o privateline.ServerName, ids []string) ([]bool, error) {
	seen := make([]bool, len(ids))
	for i, id := range ids {
		seen[i] = m.envs[string(o)+" "+id]
	}
	return seen, m.fail
}

func TestDedupe(t *testing.T) {
	tx := sampleTx(3)
	rp := &memReplay{txns: map[string][]Result{}, envs: map[string]bool{}}
	// Nothing seen: every entry is new.
	prior, dup, err := Dedupe(tx, rp)
	if err != nil || prior != nil || !reflect.DeepEqual(dup, []bool{false, false, false}) {
		t.Fatalf("fresh: %v %v %v", prior, dup, err)
	}
	// The second envelope came before in another transaction of the same
	// origin; the same id from another origin is not a duplicate.
	rp.envs[string(srvA)+" "+tx.Entries[1].ID] = true
	rp.envs["c.example "+tx.Entries[2].ID] = true
	if _, dup, _ = Dedupe(tx, rp); !reflect.DeepEqual(dup, []bool{false, true, false}) {
		t.Fatalf("envelope dedupe: %v", dup)
	}
	// The transaction was committed: its results come back.
	results := []Result{{ID: tx.Entries[0].ID, Status: Accepted, Error: ""}, {ID: tx.Entries[1].ID, Status: Duplicate, Error: ""}, {ID: tx.Entries[2].ID, Status: Accepted, Error: ""}}
	rp.txns[string(srvA)+" "+tx.TxnID] = results
	if prior, _, err = Dedupe(tx, rp); err != nil || !reflect.DeepEqual(prior, results) {
		t.Fatalf("repeat: %v %v", prior, err)
	}
	// The same txn id for other entries is refused.
	other := sampleTx(2)
	other.TxnID = tx.TxnID
	if _, _, err = Dedupe(other, rp); ReasonOf(err) != TxnReused {
		t.Fatalf("reused txn id: %v", err)
	}
	rp.fail = errors.New("disk")
	if _, _, err = Dedupe(sampleTx(1), rp); err == nil || ReasonOf(err) != "" {
		t.Fatalf("storage error: %v", err)
	}
}

func TestWrongDirection(t *testing.T) {
	f := newFixture(t)
	tx := sampleTx(1)
	txRaw := mustSign(t, tx, f.ka)
	if _, err := VerifyTransaction(txRaw, f.peerA, srvB, now, DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	// B's receipt, given to B's own transaction reader (a reflected frame).
	r := &Receipt{Header: Header{Origin: srvA, Destination: srvB, TxnID: tx.TxnID, CreatedAt: now.UnixMilli()},
		Results: []Result{{ID: tx.Entries[0].ID, Status: Accepted, Error: ""}}}
	rRaw := mustSign(t, r, f.ka)
	if _, err := VerifyTransaction(rRaw, f.peerA, srvB, now, DefaultLimits()); ReasonOf(err) != UnknownType {
		t.Fatalf("receipt as transaction: %v", err)
	}
	if _, err := VerifyReceipt(txRaw, f.peerA, srvB, now, DefaultLimits(), tx); ReasonOf(err) != UnknownType {
		t.Fatalf("transaction as receipt: %v", err)
	}
	// The real answer: signed by B, for A, for tx.
	ans := &Receipt{Header: Header{Origin: srvB, Destination: srvA, TxnID: tx.TxnID, CreatedAt: now.UnixMilli()},
		Results: []Result{{ID: tx.Entries[0].ID, Status: Accepted, Error: ""}}}
	aRaw := mustSign(t, ans, f.kb)
	if _, err := VerifyReceipt(aRaw, f.peerB, srvA, now, DefaultLimits(), tx); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyReceipt(aRaw, f.peerB, srvA, now, DefaultLimits(), sampleTx(1)); ReasonOf(err) != ReceiptMismatch {
		t.Fatalf("receipt for another transaction: %v", err)
	}
}

func keyRequest(n int) *Transaction {
	tx := &Transaction{Header: Header{Origin: srvA, Destination: srvB, TxnID: NewTxnID(), CreatedAt: now.UnixMilli()}, Type: TypeKeyRequest}
	for i := range n {
		e := Entry{ID: fmt.Sprintf("%032x", i+1), Address: privateline.Address(fmt.Sprintf("user%d@%s", i, srvB))}
		if i%2 == 1 {
			e.Since = uint64(i)
		}
		tx.Entries = append(tx.Entries, e)
	}
	return tx
}

// TestKeyRequestAndAnswer: the key look-up exchange of spec/federation.md
// §12.5 round-trips, is answered only by a key_answer under its own label,
// and its shapes are enforced.
func TestKeyRequestAndAnswer(t *testing.T) {
	f := newFixture(t)
	lim := DefaultLimits()
	tx := keyRequest(3)
	raw := mustSign(t, tx, f.ka)
	got, err := VerifyTransaction(raw, f.peerA, srvB, now, lim)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, tx) {
		t.Fatalf("round trip changed the request:\n got %+v\nwant %+v", got, tx)
	}
	if !strings.Contains(string(raw), `"since":1`) || strings.Contains(string(raw), `"since":0`) {
		t.Fatalf("since is sent only when set: %s", raw)
	}

	lookup := []byte(`{"address":"user0@localhost:8449","tree_head":{"tree_size":3}}`)
	ans := &Receipt{Type: TypeKeyAnswer, Header: Header{Origin: srvB, Destination: srvA, TxnID: tx.TxnID, CreatedAt: now.UnixMilli()},
		Results: []Result{
			{ID: tx.Entries[0].ID, Lookup: lookup},
			{ID: tx.Entries[1].ID, Lookup: lookup, Consistency: [][]byte{bytes.Repeat([]byte{7}, 32)}},
			{ID: tx.Entries[2].ID, Error: "unknown_user"},
		}}
	aRaw := mustSign(t, ans, f.kb)
	back, err := VerifyReceipt(aRaw, f.peerB, srvA, now, lim, tx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, ans) {
		t.Fatalf("round trip changed the answer:\n got %+v\nwant %+v", back, ans)
	}
	// An empty proof (since = the head's size) stays present and empty.
	ans.Results[1].Consistency = [][]byte{}
	if back, err := VerifyReceipt(mustSign(t, ans, f.kb), f.peerB, srvA, now, lim, tx); err != nil || back.Results[1].Consistency == nil || back.Results[0].Consistency != nil {
		t.Fatalf("empty proof: %v %+v", err, back)
	}

	// A receipt does not answer a key request, nor a key answer envelopes.
	receipt := &Receipt{Header: ans.Header, Results: []Result{{ID: tx.Entries[0].ID, Status: Accepted}, {ID: tx.Entries[1].ID, Status: Accepted}, {ID: tx.Entries[2].ID, Status: Accepted}}}
	if _, err := VerifyReceipt(mustSign(t, receipt, f.kb), f.peerB, srvA, now, lim, tx); ReasonOf(err) != ReceiptMismatch {
		t.Fatalf("receipt for a key request: %v, want receipt_mismatch", err)
	}
	env := sampleTx(3)
	env.TxnID = tx.TxnID
	for i := range env.Entries {
		env.Entries[i].ID = tx.Entries[i].ID
	}
	if _, err := VerifyReceipt(aRaw, f.peerB, srvA, now, lim, env); ReasonOf(err) != ReceiptMismatch {
		t.Fatalf("key answer for envelopes: %v, want receipt_mismatch", err)
	}
	// A key answer's signature is under its own label.
	body := ans.body()
	if _, err := Verify(signMap(t, body, LabelReceipt, f.kb), f.peerB, srvA, now, lim); ReasonOf(err) != BadSignature {
		t.Fatalf("key answer under the receipt label: %v, want bad_signature", err)
	}

	// Shapes and limits.
	if _, err := VerifyTransaction(mustSign(t, keyRequest(MaxKeyRequests), f.ka), f.peerA, srvB, now, lim); err != nil {
		t.Fatalf("%d entries: %v", MaxKeyRequests, err)
	}
	big := keyRequest(MaxKeyRequests + 1)
	if _, err := VerifyTransaction(mustSign(t, big, f.ka), f.peerA, srvB, now, lim); ReasonOf(err) != TooManyEntries {
		t.Fatalf("%d entries: %v, want too_many_entries", MaxKeyRequests+1, err)
	}
	for name, edit := range map[string]func(m map[string]any){
		"address without server": func(m map[string]any) { entry(m, "entries", 0)["address"] = "user0" },
		"upper-case address":     func(m map[string]any) { entry(m, "entries", 0)["address"] = "User0@localhost:8449" },
		"since 0":                func(m map[string]any) { entry(m, "entries", 0)["since"] = int64(0) },
		"an envelope member":     func(m map[string]any) { entry(m, "entries", 0)["envelope"] = "AA==" },
	} {
		body := tx.body()
		edit(body)
		if _, err := Verify(signMap(t, body, LabelTransaction, f.ka), f.peerA, srvB, now, lim); ReasonOf(err) != Malformed {
			t.Errorf("%s: %v, want malformed", name, err)
		}
	}
	for name, edit := range map[string]func(m map[string]any){
		"error and lookup":   func(m map[string]any) { entry(m, "results", 0)["error"] = "unknown_user" },
		"lookup not object":  func(m map[string]any) { entry(m, "results", 0)["lookup"] = "x" },
		"short hash":         func(m map[string]any) { entry(m, "results", 1)["consistency"] = []any{"AAAA"} },
		"a status":           func(m map[string]any) { entry(m, "results", 0)["status"] = "accepted" },
		"neither":            func(m map[string]any) { delete(entry(m, "results", 0), "lookup") },
		"bad error code":     func(m map[string]any) { entry(m, "results", 2)["error"] = "No User" },
		"consistency string": func(m map[string]any) { entry(m, "results", 1)["consistency"] = "x" },
	} {
		ans.Results[1].Consistency = [][]byte{bytes.Repeat([]byte{7}, 32)}
		body := ans.body()
		edit(body)
		if _, err := Verify(signMap(t, body, LabelKeyAnswer, f.kb), f.peerB, srvA, now, lim); ReasonOf(err) != Malformed {
			t.Errorf("%s: %v, want malformed", name, err)
		}
	}
}

// entry returns element i of the array member name of a message body.
func entry(m map[string]any, name string, i int) map[string]any {
	return m[name].([]any)[i].(map[string]any)
}

// TestReadMarksAndDeletes: the entries of spec/federation.md §12.2 and
// §12.3 round-trip, answered by ordinary receipts, and their shapes are
// enforced.
func TestReadMarksAndDeletes(t *testing.T) {
	f := newFixture(t)
	lim := DefaultLimits()
	for _, tc := range []struct {
		typ   Type
		entry Entry
		bad   map[string]func(map[string]any)
	}{
		{TypeReadMarks, Entry{ID: fmt.Sprintf("%032x", 1), Message: fmt.Sprintf("%032x", 2), Reader: "rob@a.example", At: now.UnixMilli()},
			map[string]func(map[string]any){
				"no reader":        func(m map[string]any) { delete(m, "reader") },
				"reader not user":  func(m map[string]any) { m["reader"] = "a.example" },
				"message not id":   func(m map[string]any) { m["message"] = "x" },
				"negative time":    func(m map[string]any) { m["read_at"] = int64(-1) },
				"a deletes member": func(m map[string]any) { m["from"] = "rob@a.example" },
				"conversation":     func(m map[string]any) { m["conversation"] = "c" },
			}},
		{TypeDeletes, Entry{ID: fmt.Sprintf("%032x", 1), Message: fmt.Sprintf("%032x", 2), From: "rob@a.example", At: now.UnixMilli()},
			map[string]func(map[string]any){
				"no from":           func(m map[string]any) { delete(m, "from") },
				"no deleted_at":     func(m map[string]any) { delete(m, "deleted_at") },
				"an envelope":       func(m map[string]any) { m["envelope"] = "AA==" },
				"upper-case sender": func(m map[string]any) { m["from"] = "Rob@a.example" },
			}},
	} {
		tx := &Transaction{Header: Header{Origin: srvA, Destination: srvB, TxnID: NewTxnID(), CreatedAt: now.UnixMilli()}, Type: tc.typ, Entries: []Entry{tc.entry}}
		got, err := VerifyTransaction(mustSign(t, tx, f.ka), f.peerA, srvB, now, lim)
		if err != nil {
			t.Fatalf("%s: %v", tc.typ, err)
		}
		if !reflect.DeepEqual(got, tx) {
			t.Fatalf("%s round trip:\n got %+v\nwant %+v", tc.typ, got, tx)
		}
		r := &Receipt{Header: Header{Origin: srvB, Destination: srvA, TxnID: tx.TxnID, CreatedAt: now.UnixMilli()}, Results: []Result{{ID: tc.entry.ID, Status: Accepted}}}
		if _, err := VerifyReceipt(mustSign(t, r, f.kb), f.peerB, srvA, now, lim, tx); err != nil {
			t.Fatalf("%s receipt: %v", tc.typ, err)
		}
		for name, edit := range tc.bad {
			body := tx.body()
			edit(entry(body, "entries", 0))
			if _, err := Verify(signMap(t, body, LabelTransaction, f.ka), f.peerA, srvB, now, lim); ReasonOf(err) != Malformed {
				t.Errorf("%s, %s: %v, want malformed", tc.typ, name, err)
			}
		}
	}
}
