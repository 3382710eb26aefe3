package storage

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/privateline/privateline"
)

// fullPending returns a pending record of n items with message ids (32
// hex digits), senders and ascending seqs from first, followed by one of
// n more.
func fullPending(n int, first uint64) *pendingTxn {
	one := func(txnID string, from uint64) *pendingTxn {
		p := &pendingTxn{TxnID: txnID, Type: OutboxEnvelopes}
		for i := range n {
			p.Seqs = append(p.Seqs, from+uint64(i))
			p.IDs = append(p.IDs, NewID().String())
			sid := NewID()
			p.Senders = append(p.Senders, sid[:]...)
		}
		return p
	}
	p := one(NewID().String(), first)
	p.Next = one(NewID().String(), first+uint64(n))
	return p
}

// normPending sets p's empty lists (and its Next's) to nil: both forms
// decode an empty list so or as empty, and nothing tells them apart.
func normPending(p *pendingTxn) {
	if p == nil {
		return
	}
	if len(p.Seqs) == 0 {
		p.Seqs = nil
	}
	if len(p.IDs) == 0 {
		p.IDs = nil
	}
	if len(p.Senders) == 0 {
		p.Senders = nil
	}
	normPending(p.Next)
}

// TestPendingRecordForms: every field of a pending record survives the
// binary form (ids packed when they are message ids, kept as they are
// otherwise), which is a fraction of the JSON form; the JSON form an
// earlier version wrote decodes to the same record; a damaged record is
// an error, not a half-read record.
func TestPendingRecordForms(t *testing.T) {
	full := fullPending(256, 1_000_000)
	odd := &pendingTxn{TxnID: "txn-1", Type: OutboxReadMarks, Seqs: []uint64{1 << 63, 5, 0, 1<<64 - 1},
		IDs: []string{"", "not hex", strings.ToUpper(NewID().String()), NewID().String()}, Senders: make([]byte, 64), Changed: true,
		Next: &pendingTxn{TxnID: "txn-2", Seqs: []uint64{6}}}
	old := &pendingTxn{TxnID: "txn-3", Type: OutboxEnvelopes, Seqs: []uint64{7, 8}} // before ids and senders were recorded
	for name, p := range map[string]*pendingTxn{"full": full, "odd": odd, "old": old, "empty": {}} {
		b, err := marshalPending(p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if b[0] == '{' {
			t.Fatalf("%s: the binary form starts with '{'", name)
		}
		var got pendingTxn
		if err := unmarshalPending(b, &got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(&got, p) {
			t.Errorf("%s: decoded\n%+v\nwant\n%+v", name, got, *p)
		}
		j, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var fromJSON pendingTxn
		if err := unmarshalPending(j, &fromJSON); err != nil {
			t.Fatalf("%s: the JSON form: %v", name, err)
		}
		normPending(&fromJSON)
		if !reflect.DeepEqual(&fromJSON, p) {
			t.Errorf("%s: the JSON form decoded\n%+v\nwant\n%+v", name, fromJSON, *p)
		}
		// Every truncation fails: the form has no optional tail.
		for n := range len(b) {
			var x pendingTxn
			if err := unmarshalPending(b[:n], &x); err == nil {
				t.Fatalf("%s: the record cut to %d of %d bytes decodes: %+v", name, n, len(b), x)
			}
		}
		if err := unmarshalPending(append(slices.Clip(b), 0), new(pendingTxn)); err == nil {
			t.Errorf("%s: a record with a byte too many decodes", name)
		}
	}
	b, _ := marshalPending(full)
	j, _ := json.Marshal(full)
	// 256 items twice: 16 bytes of id, 16 of sender and a byte of seq
	// each; JSON spells the ids in hex and the senders in base64.
	if len(b) > 2*256*(32+1)+200 || len(b) > len(j)*3/5 {
		t.Errorf("binary record of %d bytes, JSON %d", len(b), len(j))
	}
	// A Next with a Next of its own is never written (nor read).
	deep := &pendingTxn{TxnID: "a", Next: &pendingTxn{TxnID: "b", Next: &pendingTxn{TxnID: "c"}}}
	if _, err := marshalPending(deep); err == nil {
		t.Error("a record nested twice was encoded")
	}
	for name, bad := range map[string][]byte{
		"no version":    {},
		"version 2":     {2, 0, 0, 0, 0, 0, 0},
		"unknown flag":  {pendingV1, 0x80, 0, 0, 0, 0, 0},
		"huge count":    {pendingV1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"packed none":   {pendingV1, pfPackedIDs, 0, 0, 0, 0, 0},
		"nested twice":  append([]byte{pendingV1, pfNext, 0, 0, 0, 0, 0, 7}, pendingV1, pfNext, 0, 0, 0, 0, 0),
		"bad JSON":      []byte(`{"seqs":"x"}`),
		"varint overfl": {pendingV1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
	} {
		if err := unmarshalPending(bad, new(pendingTxn)); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

// FuzzPendingTxn: decoding arbitrary bytes never panics, and a record
// that decodes encodes to one that decodes the same; a record built from
// arbitrary fields survives encoding and decoding.
func FuzzPendingTxn(f *testing.F) {
	full, _ := marshalPending(fullPending(3, 10))
	fullJSON, _ := json.Marshal(fullPending(2, 1<<40))
	f.Add(full, "txn-1", []byte{0, 0, 0, 0, 0, 0, 0, 9, 0xff, 0, 0, 0, 0, 0, 0, 1}, NewID().String()+","+NewID().String(), make([]byte, 32), false, true)
	f.Add(fullJSON, "", []byte{}, "", []byte{}, true, false)
	f.Add([]byte{pendingV1, 0}, "x", []byte{1}, "a,,b", []byte{1, 2, 3}, true, true)
	f.Fuzz(func(t *testing.T, data []byte, txnID string, seqBytes []byte, ids string, senders []byte, changed, withNext bool) {
		var p pendingTxn
		if err := unmarshalPending(data, &p); err == nil {
			b, err := marshalPending(&p)
			if err == nil {
				var again pendingTxn
				if err := unmarshalPending(b, &again); err != nil {
					t.Fatalf("re-encoded %+v: %v", p, err)
				}
				normPending(&p)
				if !reflect.DeepEqual(&again, &p) {
					t.Fatalf("re-encoded\n%+v\ndecodes as\n%+v", p, again)
				}
			} else if p.Next == nil || p.Next.Next == nil {
				t.Fatalf("decoded %+v does not encode: %v", p, err)
			}
		}

		q := &pendingTxn{TxnID: txnID, Type: OutboxEnvelopes, Changed: changed}
		for len(seqBytes) >= 8 {
			q.Seqs = append(q.Seqs, binary.BigEndian.Uint64(seqBytes))
			seqBytes = seqBytes[8:]
		}
		if ids != "" {
			q.IDs = strings.Split(ids, ",")
		}
		if len(senders) > 0 {
			q.Senders = senders
		}
		if withNext {
			n := *q
			n.TxnID += "-next"
			n.Seqs = slices.Clone(q.Seqs)
			slices.Reverse(n.Seqs)
			q.Next = &n
		}
		b, err := marshalPending(q)
		if err != nil {
			t.Fatal(err)
		}
		if b[0] == '{' {
			t.Fatal("the binary form starts with '{'")
		}
		var got pendingTxn
		if err := unmarshalPending(b, &got); err != nil {
			t.Fatalf("%+v: %v", q, err)
		}
		if !reflect.DeepEqual(&got, q) {
			t.Fatalf("decoded\n%+v\nwant\n%+v", got, *q)
		}
	})
}

// oldPendingJSON is p as the previous version wrote it: a JSON object
// (field names spelled out here, not taken from pendingTxn's tags).
func oldPendingJSON(t *testing.T, p *pendingTxn) []byte {
	t.Helper()
	var obj func(p *pendingTxn) map[string]any
	obj = func(p *pendingTxn) map[string]any {
		m := map[string]any{"txn_id": p.TxnID, "type": p.Type, "seqs": p.Seqs, "ids": p.IDs, "senders": p.Senders}
		if p.Changed {
			m["changed"] = true
		}
		if p.Next != nil {
			m["next"] = obj(p.Next)
		}
		return m
	}
	b, err := json.Marshal(obj(p))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOutboxOldJSONPendingRecord: a store whose pending record was
// written by the previous version (JSON) opens and drains unchanged:
// OutboxPend records the read-ahead behind it, OutboxNext answers it
// again, OutboxDone settles it with the senders' events and makes the
// one recorded to follow pending; what is written again is in the binary
// form.
func TestOutboxOldJSONPendingRecord(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ann := createUsers(t, e.db, "ann")[0]
		var c ids
		var ms []string
		for range 4 {
			ms = append(ms, sendRemote(t, e.db, ann, nil, []privateline.Address{rob}, time.Time{}))
		}
		seq0 := lastSeq(t, e.db, ann)
		h := e.db.serverHash(other)
		// record replaces the pending record with its previous version's
		// form and checks that it reads back as p.
		record := func(p *pendingTxn) {
			t.Helper()
			b := e.db.db.NewBatch()
			e.db.setSealed(b, pendingKey(h), oldPendingJSON(t, p))
			if err := b.Commit(pebble.Sync); err != nil {
				t.Fatal(err)
			}
			if got, err := e.db.pendingTxn(h); err != nil || !reflect.DeepEqual(got, p) {
				t.Fatalf("the old form reads back as %+v, %v; want %+v", got, err, p)
			}
		}
		form := func() byte {
			t.Helper()
			pt, err := e.db.get(pendingKey(h))
			if err != nil {
				t.Fatal(err)
			}
			return pt[0]
		}
		next := func(want ...string) *OutboxTxn {
			t.Helper()
			txn, err := e.db.OutboxNext(other, 2, 1<<20, c.next)
			if err != nil || !slices.Equal(itemIDs(txn), want) {
				t.Fatalf("OutboxNext: %v, %v; want %v", itemIDs(txn), err, want)
			}
			return txn
		}

		t1 := next(ms[0], ms[1])
		p1, err := e.db.pendingTxn(h)
		if err != nil || p1 == nil || form() != pendingV1 {
			t.Fatalf("pending record %+v, %v: want one in the binary form", p1, err)
		}
		record(p1)
		ahead, err := e.db.OutboxPeek(other, t1.Items[1].Seq, 2, 1<<20, c.next)
		if err != nil || !slices.Equal(itemIDs(ahead), ms[2:]) {
			t.Fatalf("OutboxPeek: %v, %v", itemIDs(ahead), err)
		}
		if ok, err := e.db.OutboxPend(other, t1.TxnID, ahead); !ok || err != nil {
			t.Fatalf("OutboxPend behind an old record: %v, %v", ok, err)
		}
		both, err := e.db.pendingTxn(h)
		if err != nil || both.Next == nil || both.Next.TxnID != ahead.TxnID || form() != pendingV1 {
			t.Fatalf("after OutboxPend: %+v, %v, form %#x", both, err, form())
		}

		// Both transactions in the old form, in a store reopened.
		record(both)
		e.reopen()
		if got := next(ms[0], ms[1]); got.TxnID != t1.TxnID {
			t.Fatalf("OutboxNext gives %s, want the pending %s", got.TxnID, t1.TxnID)
		}
		if err := e.db.OutboxDone(other, t1.TxnID, []OutboxResult{{ID: ms[0], Delivered: true}, {ID: ms[1], Error: "unknown_recipient"}}); err != nil {
			t.Fatal(err)
		}
		if got := fedEvents(t, e.db, ann, seq0); len(got) != 2 ||
			got[0].Type != EventDelivered || got[0].ID != ms[0] ||
			got[1].Type != EventDeliveryFailed || got[1].ID != ms[1] || got[1].Error != "unknown_recipient" {
			t.Fatalf("ann's events: %+v", got)
		}
		if form() != pendingV1 {
			t.Fatalf("the promoted record is written in form %#x", form())
		}
		if got := next(ms[2], ms[3]); got.TxnID != ahead.TxnID {
			t.Fatalf("OutboxNext gives %s, want the one recorded to follow, %s", got.TxnID, ahead.TxnID)
		}

		// The one left, in the old form again, settles as well.
		p2, err := e.db.pendingTxn(h)
		if err != nil || p2 == nil {
			t.Fatalf("pending %+v, %v", p2, err)
		}
		record(p2)
		if err := e.db.OutboxDone(other, ahead.TxnID, []OutboxResult{{ID: ms[2], Delivered: true}, {ID: ms[3], Delivered: true}}); err != nil {
			t.Fatal(err)
		}
		if got := fedEvents(t, e.db, ann, seq0); len(got) != 4 || got[2].ID != ms[2] || got[3].ID != ms[3] {
			t.Fatalf("ann's events: %+v", got)
		}
		if p, err := e.db.pendingTxn(h); p != nil || err != nil {
			t.Fatalf("pending after the last receipt: %+v, %v", p, err)
		}
		if d, _ := e.db.OutboxDepth(); d[other] != 0 {
			t.Errorf("depth %d, want 0", d[other])
		}
	})
}

// TestPendingRecordDamaged: a pending record that does not decode is an
// Internal error of the operations that read it, not a panic and not an
// empty outbox.
func TestPendingRecordDamaged(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ann := createUsers(t, e.db, "ann")[0]
		sendRemote(t, e.db, ann, nil, []privateline.Address{rob}, time.Time{})
		var c ids
		txn, err := e.db.OutboxNext(other, 2, 1<<20, c.next)
		if err != nil || txn == nil {
			t.Fatalf("OutboxNext: %v, %v", txn, err)
		}
		b := e.db.db.NewBatch()
		e.db.setSealed(b, pendingKey(e.db.serverHash(other)), []byte{pendingV1, 0, 5, 'x'})
		if err := b.Commit(pebble.Sync); err != nil {
			t.Fatal(err)
		}
		if _, err := e.db.OutboxNext(other, 2, 1<<20, c.next); !privateline.Is(privateline.Internal, err) {
			t.Errorf("OutboxNext: %v, want an Internal error", err)
		}
		if err := e.db.OutboxDone(other, txn.TxnID, nil); !privateline.Is(privateline.Internal, err) {
			t.Errorf("OutboxDone: %v, want an Internal error", err)
		}
	})
}

// BenchmarkPendingRecord: encoding and decoding the pending record of a
// full transaction (256 items) with the one recorded to follow it, as
// JSON (the previous form) and in the binary form.
func BenchmarkPendingRecord(b *testing.B) {
	p := fullPending(256, 1_000_000)
	for _, form := range []struct {
		name string
		enc  func(*pendingTxn) ([]byte, error)
		dec  func([]byte, *pendingTxn) error
	}{
		{"json", func(p *pendingTxn) ([]byte, error) { return json.Marshal(p) }, func(b []byte, p *pendingTxn) error { return json.Unmarshal(b, p) }},
		{"binary", marshalPending, unmarshalPending},
	} {
		b.Run(form.name, func(b *testing.B) {
			b.ReportAllocs()
			var size int
			for b.Loop() {
				v, err := form.enc(p)
				if err != nil {
					b.Fatal(err)
				}
				var got pendingTxn
				if err := form.dec(v, &got); err != nil || len(got.Next.Seqs) != 256 {
					b.Fatal(err)
				}
				size = len(v)
			}
			b.ReportMetric(float64(size), "bytes/record")
		})
	}
}

// TestDeleteUserForgetsPendingSender: an account deletion leaves the
// account's id in no pending transaction, nor in the one recorded to
// follow it; the other senders' ids stay, and the transactions settle
// with events for them only.
func TestDeleteUserForgetsPendingSender(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		us := createUsers(t, e.db, "ann", "ben")
		ann, ben := us[0], us[1]
		var ms []string
		for _, u := range []*User{ann, ben, ann, ben} {
			ms = append(ms, sendRemote(t, e.db, u, nil, []privateline.Address{rob}, time.Time{}))
		}
		bSeq := lastSeq(t, e.db, ben)
		var c ids
		t1, err := e.db.OutboxNext(other, 2, 1<<20, c.next)
		if err != nil || !slices.Equal(itemIDs(t1), ms[:2]) {
			t.Fatalf("OutboxNext: %v, %v", itemIDs(t1), err)
		}
		ahead, err := e.db.OutboxPeek(other, t1.Items[1].Seq, 2, 1<<20, c.next)
		if err != nil || !slices.Equal(itemIDs(ahead), ms[2:]) {
			t.Fatalf("OutboxPeek: %v, %v", itemIDs(ahead), err)
		}
		if ok, err := e.db.OutboxPend(other, t1.TxnID, ahead); !ok || err != nil {
			t.Fatalf("OutboxPend: %v, %v", ok, err)
		}
		if err := e.db.DeleteUser(ann.ID); err != nil {
			t.Fatal(err)
		}
		if left := e.db.scanFor(t, ann.ID[:]); len(left) > 0 {
			t.Errorf("ann's id after account deletion: %q", left)
		}
		p, err := e.db.pendingTxn(e.db.serverHash(other))
		if err != nil || p == nil || p.Next == nil {
			t.Fatalf("pending after the deletion: %+v, %v", p, err)
		}
		for _, q := range []*pendingTxn{p, p.Next} {
			if !bytes.Equal(q.Senders[16:], ben.ID[:]) || !bytes.Equal(q.Senders[:16], make([]byte, 16)) {
				t.Errorf("senders of %s: %x, want zero then ben's", q.TxnID, q.Senders)
			}
		}
		for _, txn := range []*OutboxTxn{t1, ahead} {
			var rs []OutboxResult
			for _, it := range txn.Items {
				rs = append(rs, OutboxResult{ID: it.ID, Delivered: true})
			}
			if err := e.db.OutboxDone(other, txn.TxnID, rs); err != nil {
				t.Fatal(err)
			}
		}
		if got := fedEvents(t, e.db, ben, bSeq); len(got) != 2 || got[0].ID != ms[1] || got[1].ID != ms[3] {
			t.Errorf("ben's events: %+v", got)
		}
	})
}
