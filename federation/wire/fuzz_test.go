package wire

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/privateline/privateline/cjson"
)

// FuzzDecode feeds arbitrary bytes to the parser of Verify: it must never
// panic, and whatever it accepts must encode back to exactly the same bytes
// (so what is verified is what is stored and relayed).
func FuzzDecode(f *testing.F) {
	fx := newFixture(f)
	tx := sampleTx(2)
	f.Add(mustSign(f, tx, fx.ka))
	f.Add(mustSign(f, &Receipt{Header: Header{Origin: srvB, Destination: srvA, TxnID: tx.TxnID, CreatedAt: 7},
		Results: []Result{{ID: tx.Entries[0].ID, Status: Accepted, Error: ""}, {ID: tx.Entries[1].ID, Status: Refused, Error: "expired"}}}, fx.kb))
	kr := keyRequest(2)
	f.Add(mustSign(f, kr, fx.ka))
	f.Add(mustSign(f, &Receipt{Type: TypeKeyAnswer, Header: Header{Origin: srvB, Destination: srvA, TxnID: kr.TxnID, CreatedAt: 7},
		Results: []Result{{ID: kr.Entries[0].ID, Lookup: []byte(`{"a":[1]}`), Consistency: [][]byte{make([]byte, 32)}}, {ID: kr.Entries[1].ID, Error: "unknown_user"}}}, fx.kb))
	for _, typ := range []Type{TypeReadMarks, TypeDeletes} {
		f.Add(mustSign(f, &Transaction{Type: typ, Header: Header{Origin: srvA, Destination: srvB, TxnID: NewTxnID(), CreatedAt: 7},
			Entries: []Entry{{ID: NewTxnID(), Message: NewTxnID(), Reader: "rob@a.example", From: "rob@a.example", At: 9}}}, fx.ka))
	}
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`{"type":"envelopes","v":2}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, _, err := decode(raw, DefaultLimits())
		if err != nil {
			if ReasonOf(err) == "" {
				t.Fatalf("decode error is not a refusal: %v", err)
			}
			return
		}
		body := m.body()
		body["signature"] = b64.EncodeToString(m.header().Signature)
		again, err := cjson.Marshal(body)
		if err != nil || string(again) != string(raw) {
			t.Fatalf("accepted %q, re-encodes to %q (%v)", raw, again, err)
		}
	})
}

// FuzzDecodeEnvelopes holds decode's fast path to the generic one: what
// decodeEnvelopes accepts, decodeGeneric accepts as the same transaction
// (it gives up on everything else, which the generic path then decides).
func FuzzDecodeEnvelopes(f *testing.F) {
	fx := newFixture(f)
	for _, n := range []int{1, 3} {
		tx := sampleTx(n)
		f.Add(mustSign(f, tx, fx.ka))
		tx.After = NewTxnID()
		f.Add(mustSign(f, tx, fx.ka))
	}
	f.Add([]byte(`{"created_at":0,"destination":"b","entries":[{"envelope":"QQ==","id":"00000000000000000000000000000001"}],"origin":"a","signature":"` +
		b64.EncodeToString(make([]byte, 64)) + `","txn_id":"00000000000000000000000000000002","type":"envelopes","v":1}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		fast, ok := decodeEnvelopes(raw)
		if !ok {
			return
		}
		m, _, err := decodeGeneric(raw)
		if err != nil {
			t.Fatalf("%q: the fast path accepts, the generic one refuses: %v", raw, err)
		}
		if !reflect.DeepEqual(m, Message(fast)) {
			t.Fatalf("%q: fast path %+v, generic %+v", raw, fast, m)
		}
	})
}

// The frames signEnvelopes writes take decode's fast path, with and
// without "after", and a change anywhere in one sends it to the generic
// path, which refuses it as the fast path never could.
func TestDecodeEnvelopesFastPath(t *testing.T) {
	fx := newFixture(t)
	for _, n := range []int{1, 2, 256} {
		for _, after := range []bool{false, true} {
			tx := sampleTx(n)
			if after {
				tx.After = NewTxnID()
			}
			raw := mustSign(t, tx, fx.ka)
			got, ok := decodeEnvelopes(raw)
			if !ok {
				t.Fatalf("%d entries, after %v: the fast path gives up on a frame signEnvelopes wrote", n, after)
			}
			if !reflect.DeepEqual(got, tx) {
				t.Fatalf("%d entries: decoded %+v, sent %+v", n, got, tx)
			}
		}
	}
	raw := mustSign(t, sampleTx(2), fx.ka)
	for i := range raw {
		bad := bytes.Clone(raw)
		bad[i] ^= 0x01
		if m, ok := decodeEnvelopes(bad); ok {
			if g, _, err := decodeGeneric(bad); err != nil || !reflect.DeepEqual(g, Message(m)) {
				t.Fatalf("byte %d changed: the fast path accepts what the generic one reads as %+v, %v", i, g, err)
			}
		}
	}
}
