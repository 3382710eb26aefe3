package wire

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

const testHead = `{"root_hash":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","server":"localhost:8448","signature":"x","timestamp":1,"tree_size":9}`

func witnessTx(since uint64, proof [][]byte) *Transaction {
	return &Transaction{Type: TypeWitness, Header: Header{Origin: srvA, Destination: srvB, TxnID: NewTxnID(), CreatedAt: now.UnixMilli()},
		Entries: []Entry{{ID: NewTxnID(), Head: []byte(testHead), Since: since, Consistency: proof}}}
}

func TestWitnessRequestAndAnswer(t *testing.T) {
	f := newFixture(t)
	lim := DefaultLimits()
	for _, tx := range []*Transaction{witnessTx(0, nil), witnessTx(4, [][]byte{bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)})} {
		raw := mustSign(t, tx, f.ka)
		got, err := VerifyTransaction(raw, f.peerA, srvB, now, lim)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, tx) {
			t.Fatalf("round trip changed the request:\n got %+v\nwant %+v", got, tx)
		}
		if (tx.Entries[0].Since == 0) == strings.Contains(string(raw), `"consistency"`) {
			t.Fatalf("consistency is sent exactly with since: %s", raw)
		}
	}
	tx := witnessTx(0, nil)
	mustSign(t, tx, f.ka)
	cosig := []byte(`{"root_hash":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","server":"localhost:8448","signature":"x","tree_size":9,"witness":"localhost:8449","witnessed_at":5}`)
	for _, r := range []Result{{ID: tx.Entries[0].ID, Cosignature: cosig}, {ID: tx.Entries[0].ID, Error: "need_proof", TreeSize: 3}, {ID: tx.Entries[0].ID, Error: "log_fork"}} {
		ans := &Receipt{Type: TypeWitnessAnswer, Header: Header{Origin: srvB, Destination: srvA, TxnID: tx.TxnID, CreatedAt: now.UnixMilli()}, Results: []Result{r}}
		raw := mustSign(t, ans, f.kb)
		back, err := VerifyReceipt(raw, f.peerB, srvA, now, lim, tx)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, ans) {
			t.Fatalf("round trip changed the answer:\n got %+v\nwant %+v", back, ans)
		}
		// Signed under its own label: the same members signed as a
		// receipt or a key answer do not verify.
		m := members(t, raw)
		for _, label := range []string{LabelReceipt, LabelKeyAnswer} {
			if _, err := VerifyReceipt(signMap(t, m, label, f.kb), f.peerB, srvA, now, lim, tx); ReasonOf(err) != BadSignature {
				t.Fatalf("witness answer signed as %s: %v", label, err)
			}
		}
	}
	// A receipt does not answer a witness request.
	rc := &Receipt{Header: Header{Origin: srvB, Destination: srvA, TxnID: tx.TxnID, CreatedAt: now.UnixMilli()}, Results: []Result{{ID: tx.Entries[0].ID, Status: Accepted}}}
	if _, err := VerifyReceipt(mustSign(t, rc, f.kb), f.peerB, srvA, now, lim, tx); ReasonOf(err) != ReceiptMismatch {
		t.Fatalf("a receipt answering a witness request: %v", err)
	}
}

func TestWitnessShapeRefusals(t *testing.T) {
	f := newFixture(t)
	base := func() map[string]any { return members(t, mustSign(t, witnessTx(0, nil), f.ka)) }
	h := members(t, []byte(testHead))
	cases := map[string]func(m map[string]any){
		"two entries": func(m map[string]any) {
			e := m["entries"].([]any)[0].(map[string]any)
			m["entries"] = []any{e, map[string]any{"head": h, "id": NewTxnID()}}
		},
		"no head":              func(m map[string]any) { delete(m["entries"].([]any)[0].(map[string]any), "head") },
		"head not an object":   func(m map[string]any) { m["entries"].([]any)[0].(map[string]any)["head"] = "x" },
		"consistency no since": func(m map[string]any) { m["entries"].([]any)[0].(map[string]any)["consistency"] = []any{} },
		"since without proof":  func(m map[string]any) { m["entries"].([]any)[0].(map[string]any)["since"] = int64(2) },
		"since zero": func(m map[string]any) {
			e := m["entries"].([]any)[0].(map[string]any)
			e["since"], e["consistency"] = int64(0), []any{}
		},
		"short hash": func(m map[string]any) {
			e := m["entries"].([]any)[0].(map[string]any)
			e["since"], e["consistency"] = int64(2), []any{"AAAA"}
		},
		"unknown member": func(m map[string]any) { m["entries"].([]any)[0].(map[string]any)["address"] = "a@b" },
		"too long a proof": func(m map[string]any) {
			e := m["entries"].([]any)[0].(map[string]any)
			p := make([]any, MaxWitnessProof+1)
			for i := range p {
				p[i] = b64.EncodeToString(make([]byte, 32))
			}
			e["since"], e["consistency"] = int64(2), p
		},
	}
	for name, mut := range cases {
		m := base()
		mut(m)
		raw := signMap(t, m, LabelTransaction, f.ka)
		if _, err := VerifyTransaction(raw, f.peerA, srvB, now, DefaultLimits()); ReasonOf(err) != Malformed {
			t.Errorf("%s: %v", name, err)
		}
	}
}
