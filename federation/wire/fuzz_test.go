package wire

import (
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
