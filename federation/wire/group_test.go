package wire

import (
	"reflect"
	"testing"

	"github.com/privateline/privateline"
)

const gid = "0123456789abcdef0123456789abcdef@a.example"

func groupTx(typ Type, es ...Entry) *Transaction {
	return &Transaction{Header: Header{Origin: srvA, Destination: srvB, TxnID: NewTxnID(), CreatedAt: now.UnixMilli()}, Type: typ, Entries: es}
}

// TestGroupTypesRoundTrip: the three group types and the answer survive
// Sign and Verify unchanged.
func TestGroupTypesRoundTrip(t *testing.T) {
	f := newFixture(t)
	for _, tx := range []*Transaction{
		groupTx(TypeGroupEnvelopes, Entry{ID: NewTxnID(), Group: gid, Envelope: []byte(`{"x":1}`), To: []privateline.Address{"alice@localhost:8449", "bobby@localhost:8449"}}),
		groupTx(TypeGroupUpdates, Entry{ID: NewTxnID(), Group: gid, State: []byte(`{"group":"` + gid + `","members":[],"version":3}`)}),
		groupTx(TypeGroupRequest, Entry{ID: NewTxnID(), Group: gid, Op: "remove", Requester: "bobby@a.example", Target: "carol@x.example"}),
		groupTx(TypeGroupRequest, Entry{ID: NewTxnID(), Group: gid, Op: "send", Requester: "bobby@a.example", Body: []byte(`{"header":{}}`)}),
		groupTx(TypeGroupRequest, Entry{ID: NewTxnID(), Group: gid, Op: GroupOpState}),
		groupTx(TypeGroupRequest, Entry{ID: NewTxnID(), Group: gid, Op: GroupOpState, SeenEpoch: 3, SeenEra: 1_800_000_000_000}),
	} {
		raw := mustSign(t, tx, f.ka)
		got, err := VerifyTransaction(raw, f.peerA, srvB, now, DefaultLimits())
		if err != nil {
			t.Fatalf("%s: %v", tx.Type, err)
		}
		if !reflect.DeepEqual(got, tx) {
			t.Fatalf("%s: round trip changed it:\n got %+v\nwant %+v", tx.Type, got, tx)
		}
	}
	req := groupTx(TypeGroupRequest, Entry{ID: NewTxnID(), Group: gid, Op: "meta", Requester: "bobby@a.example", Body: []byte(`{}`)})
	mustSign(t, req, f.ka)
	for _, res := range []Result{
		{ID: req.Entries[0].ID, HTTPStatus: 200, State: []byte(`{"version":1}`), Recipients: []privateline.Address{}, Replayed: true},
		{ID: req.Entries[0].ID, HTTPStatus: 409, Error: "stale_epoch", Message: "moved on"},
	} {
		ans := &Receipt{Header: Header{Origin: srvB, Destination: srvA, TxnID: req.TxnID, CreatedAt: now.UnixMilli()}, Type: TypeGroupAnswer, Results: []Result{res}}
		raw := mustSign(t, ans, f.kb)
		got, err := VerifyReceipt(raw, f.peerB, srvA, now, DefaultLimits(), req)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Results, ans.Results) {
			t.Fatalf("answer changed:\n got %+v\nwant %+v", got.Results, ans.Results)
		}
		// An answer's signature is under its own label.
		if _, err := VerifyReceipt(signMap(t, members(t, raw), LabelReceipt, f.kb), f.peerB, srvA, now, DefaultLimits(), req); ReasonOf(err) != BadSignature {
			t.Fatalf("an answer signed under the receipt label: %v", err)
		}
	}
}

// TestGroupEntryShapes: what a receiver refuses as malformed, or for size.
func TestGroupEntryShapes(t *testing.T) {
	f := newFixture(t)
	env := []byte(`{"x":1}`)
	cases := map[string]struct {
		tx   *Transaction
		want Reason
	}{
		"to unsorted":                  {groupTx(TypeGroupEnvelopes, Entry{ID: NewTxnID(), Group: gid, Envelope: env, To: []privateline.Address{"bobby@x.example", "alice@x.example"}}), Malformed},
		"to repeated":                  {groupTx(TypeGroupEnvelopes, Entry{ID: NewTxnID(), Group: gid, Envelope: env, To: []privateline.Address{"alice@x.example", "alice@x.example"}}), Malformed},
		"to empty":                     {groupTx(TypeGroupEnvelopes, Entry{ID: NewTxnID(), Group: gid, Envelope: env, To: []privateline.Address{}}), Malformed},
		"bad group id":                 {groupTx(TypeGroupUpdates, Entry{ID: NewTxnID(), Group: "g1@a.example", State: []byte(`{}`)}), Malformed},
		"unknown op":                   {groupTx(TypeGroupRequest, Entry{ID: NewTxnID(), Group: gid, Op: "delete", Requester: "bobby@a.example"}), Malformed},
		"two requests":                 {groupTx(TypeGroupRequest, Entry{ID: NewTxnID(), Group: gid, Op: "meta", Requester: "bobby@a.example"}, Entry{ID: NewTxnID(), Group: gid, Op: "meta", Requester: "bobby@a.example"}), TooManyEntries},
		"body too big":                 {groupTx(TypeGroupRequest, Entry{ID: NewTxnID(), Group: gid, Op: "key", Requester: "bobby@a.example", Body: make([]byte, MaxGroupBody+1)}), TooLarge},
		"no requester":                 {groupTx(TypeGroupRequest, Entry{ID: NewTxnID(), Group: gid, Op: "meta"}), Malformed},
		"state missing":                {groupTx(TypeGroupUpdates, Entry{ID: NewTxnID(), Group: gid}), Malformed},
		"state pull with a requester":  {groupTx(TypeGroupRequest, Entry{ID: NewTxnID(), Group: gid, Op: GroupOpState, Requester: "bobby@a.example"}), Malformed},
		"state pull with a target":     {groupTx(TypeGroupRequest, Entry{ID: NewTxnID(), Group: gid, Op: GroupOpState, Target: "bobby@a.example"}), Malformed},
		"state pull with a body":       {groupTx(TypeGroupRequest, Entry{ID: NewTxnID(), Group: gid, Op: GroupOpState, Body: []byte(`{}`)}), Malformed},
		"seen epoch in a meta request": {groupTx(TypeGroupRequest, Entry{ID: NewTxnID(), Group: gid, Op: "meta", Requester: "bobby@a.example", SeenEpoch: 2}), Malformed},
	}
	for name, c := range cases {
		m := c.tx.body()
		raw := signMap(t, m, LabelTransaction, f.ka)
		if _, err := VerifyTransaction(raw, f.peerA, srvB, now, DefaultLimits()); ReasonOf(err) != c.want {
			t.Errorf("%s: %v, want %s", name, err, c.want)
		}
	}
	// A state request's seen epoch: 1 or more, with its era, and the era
	// not alone.
	for name, set := range map[string]map[string]any{
		"seen epoch 0":            {"seen_epoch": int64(0), "seen_era": int64(1)},
		"seen epoch without era":  {"seen_epoch": int64(2)},
		"seen era alone":          {"seen_era": int64(1)},
		"seen epoch not a number": {"seen_epoch": "2", "seen_era": int64(1)},
	} {
		m := groupTx(TypeGroupRequest, Entry{ID: NewTxnID(), Group: gid, Op: GroupOpState}).body()
		for k, v := range set {
			m["entries"].([]any)[0].(map[string]any)[k] = v
		}
		raw := signMap(t, m, LabelTransaction, f.ka)
		if _, err := VerifyTransaction(raw, f.peerA, srvB, now, DefaultLimits()); ReasonOf(err) != Malformed {
			t.Errorf("%s: %v, want malformed", name, err)
		}
	}
}
