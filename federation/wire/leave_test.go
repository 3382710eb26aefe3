package wire

import (
	"reflect"
	"testing"
)

// TestGroupLeaves: a group_leaves transaction survives Sign and Verify
// unchanged, is answered by a receipt, and a malformed entry is refused.
func TestGroupLeaves(t *testing.T) {
	f := newFixture(t)
	tx := groupTx(TypeGroupLeaves, Entry{ID: NewTxnID(), Group: gid, Member: "bobby@a.example", Joined: 3},
		Entry{ID: NewTxnID(), Group: gid, Member: "carol@a.example"})
	raw := mustSign(t, tx, f.ka)
	got, err := VerifyTransaction(raw, f.peerA, srvB, now, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, tx) {
		t.Fatalf("round trip changed it:\n got %+v\nwant %+v", got, tx)
	}
	rc := &Receipt{Header: Header{Origin: srvB, Destination: srvA, TxnID: tx.TxnID, CreatedAt: now.UnixMilli()},
		Results: []Result{{ID: tx.Entries[0].ID, Status: Accepted}, {ID: tx.Entries[1].ID, Status: Refused, Error: "wrong_origin"}}}
	if _, err := VerifyReceipt(mustSign(t, rc, f.kb), f.peerB, srvA, now, DefaultLimits(), tx); err != nil {
		t.Fatalf("the receipt of a group_leaves: %v", err)
	}
	for name, m := range map[string]func(map[string]any){
		"no member":      func(e map[string]any) { delete(e, "member") },
		"member no user": func(e map[string]any) { e["member"] = "a.example" },
		"no joined":      func(e map[string]any) { delete(e, "joined") },
		"joined < 0":     func(e map[string]any) { e["joined"] = int64(-1) },
		"bad group":      func(e map[string]any) { e["group"] = "g@a.example" },
		"extra member":   func(e map[string]any) { e["target"] = "bobby@a.example" },
	} {
		body := tx.body()
		m(body["entries"].([]any)[0].(map[string]any))
		if _, err := VerifyTransaction(signMap(t, body, LabelTransaction, f.ka), f.peerA, srvB, now, DefaultLimits()); ReasonOf(err) != Malformed {
			t.Errorf("%s: %v, want malformed", name, err)
		}
	}
}
