package wire

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/privateline/privateline"
)

func fileRequest() *Transaction {
	return &Transaction{Type: TypeFileRequest, Header: Header{Origin: srvA, Destination: srvB, TxnID: NewTxnID(), CreatedAt: now.UnixMilli()},
		Entries: []Entry{{ID: NewTxnID(), File: NewTxnID(), Message: NewTxnID(), Requester: privateline.Address("user0@" + string(srvA))}}}
}

// TestFileRequestAndAnswer: the file exchange of spec/federation.md §12.4
// round-trips, has exactly one entry, is answered only by a file_answer
// under its own label, and its shapes are enforced.
func TestFileRequestAndAnswer(t *testing.T) {
	f := newFixture(t)
	lim := DefaultLimits()
	tx := fileRequest()
	raw := mustSign(t, tx, f.ka)
	got, err := VerifyTransaction(raw, f.peerA, srvB, now, lim)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, tx) {
		t.Fatalf("round trip changed the request:\n got %+v\nwant %+v", got, tx)
	}
	want := `{"created_at":` // members in canonical order, entry exactly these four
	if !bytes.HasPrefix(raw, []byte(want)) || !bytes.Contains(raw, []byte(`"entries":[{"file":"`+tx.Entries[0].File+`","id":"`+tx.Entries[0].ID+`","message":"`+tx.Entries[0].Message+`","requester":"user0@`+string(srvA)+`"}]`)) {
		t.Fatalf("request bytes: %s", raw)
	}

	sum := bytes.Repeat([]byte{9}, 32)
	ans := &Receipt{Type: TypeFileAnswer, Header: Header{Origin: srvB, Destination: srvA, TxnID: tx.TxnID, CreatedAt: now.UnixMilli()},
		Results: []Result{{ID: tx.Entries[0].ID, File: tx.Entries[0].File, Size: 1234, SHA256: sum}}}
	aRaw := mustSign(t, ans, f.kb)
	back, err := VerifyReceipt(aRaw, f.peerB, srvA, now, lim, tx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, ans) {
		t.Fatalf("round trip changed the answer:\n got %+v\nwant %+v", back, ans)
	}
	unknown := &Receipt{Type: TypeFileAnswer, Header: ans.Header, Results: []Result{{ID: tx.Entries[0].ID, Error: "unknown_file"}}}
	if back, err := VerifyReceipt(mustSign(t, unknown, f.kb), f.peerB, srvA, now, lim, tx); err != nil || back.Results[0].Error != "unknown_file" || back.Results[0].Size != 0 {
		t.Fatalf("unknown_file: %+v %v", back, err)
	}

	// A receipt or key answer does not answer a file request; a file
	// answer is signed under its own label.
	receipt := &Receipt{Header: ans.Header, Results: []Result{{ID: tx.Entries[0].ID, Status: Accepted}}}
	if _, err := VerifyReceipt(mustSign(t, receipt, f.kb), f.peerB, srvA, now, lim, tx); ReasonOf(err) != ReceiptMismatch {
		t.Fatalf("receipt for a file request: %v, want receipt_mismatch", err)
	}
	if _, err := Verify(signMap(t, ans.body(), LabelReceipt, f.kb), f.peerB, srvA, now, lim); ReasonOf(err) != BadSignature {
		t.Fatalf("file answer under the receipt label: %v, want bad_signature", err)
	}
	if _, err := Verify(signMap(t, ans.body(), LabelKeyAnswer, f.kb), f.peerB, srvA, now, lim); ReasonOf(err) != BadSignature {
		t.Fatalf("file answer under the key answer label: %v, want bad_signature", err)
	}

	// Exactly one entry.
	two := fileRequest()
	two.Entries = append(two.Entries, Entry{ID: NewTxnID(), File: NewTxnID(), Message: NewTxnID(), Requester: privateline.Address("user1@" + string(srvA))})
	if _, err := VerifyTransaction(mustSign(t, two, f.ka), f.peerA, srvB, now, lim); ReasonOf(err) != TooManyEntries {
		t.Fatalf("two entries: %v, want too_many_entries", err)
	}
	for name, edit := range map[string]func(m map[string]any){
		"no entries":             func(m map[string]any) { m["entries"] = []any{} },
		"file not an id":         func(m map[string]any) { entry(m, "entries", 0)["file"] = "ABC" },
		"message missing":        func(m map[string]any) { delete(entry(m, "entries", 0), "message") },
		"requester not address":  func(m map[string]any) { entry(m, "entries", 0)["requester"] = "user0" },
		"an envelope member":     func(m map[string]any) { entry(m, "entries", 0)["envelope"] = "AA==" },
		"upper-case hex file id": func(m map[string]any) { entry(m, "entries", 0)["file"] = "ABCDEF0123456789ABCDEF0123456789" },
	} {
		body := tx.body()
		edit(body)
		if _, err := Verify(signMap(t, body, LabelTransaction, f.ka), f.peerA, srvB, now, lim); ReasonOf(err) != Malformed {
			t.Errorf("request %s: %v, want malformed", name, err)
		}
	}
	for name, edit := range map[string]func(m map[string]any){
		"size 0":         func(m map[string]any) { entry(m, "results", 0)["size"] = int64(0) },
		"size negative":  func(m map[string]any) { entry(m, "results", 0)["size"] = int64(-1) },
		"short digest":   func(m map[string]any) { entry(m, "results", 0)["sha256"] = "AAAA" },
		"no file":        func(m map[string]any) { delete(entry(m, "results", 0), "file") },
		"a status":       func(m map[string]any) { entry(m, "results", 0)["status"] = "accepted" },
		"error and file": func(m map[string]any) { entry(m, "results", 0)["error"] = "unknown_file" },
		"bad error code": func(m map[string]any) {
			m["results"] = []any{map[string]any{"id": tx.Entries[0].ID, "error": "No File"}}
		},
	} {
		body := ans.body()
		edit(body)
		if _, err := Verify(signMap(t, body, LabelFileAnswer, f.kb), f.peerB, srvA, now, lim); ReasonOf(err) != Malformed {
			t.Errorf("answer %s: %v, want malformed", name, err)
		}
	}
}
