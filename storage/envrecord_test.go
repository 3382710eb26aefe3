package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/privateline/privateline"
)

// TestEnvelopeRecordForms: every field of a record survives the binary
// form, which is smaller than the JSON form and carries the envelope's
// bytes as they are; a damaged record is an error, not a half-read record.
func TestEnvelopeRecordForms(t *testing.T) {
	raw := bytes.Repeat([]byte(`{"x":"ciphertext"}`), 200)
	full := &envelopeRecord{
		Raw: raw, Sum: bytes.Repeat([]byte{7}, 32),
		Sender:        Recipient{ID: NewID(), Address: "ann@here.example"},
		Recipients:    []Recipient{{ID: NewID(), Address: "ben@here.example"}, {Address: ""}},
		ExpiresAt:     1_900_000_000_000,
		SenderSeq:     42,
		ReadBy:        []privateline.Address{"ben@here.example", "rob@other.example"},
		Files:         []string{"f1", "f2"},
		Group:         "g1@here.example",
		Remote:        []privateline.Address{"rob@other.example"},
		OriginFiles:   []string{"o1"},
		Fanout:        []privateline.Address{"sue@third.example"},
		RemoteReaders: []privateline.Address{"rob@other.example"},
	}
	remote := &envelopeRecord{Raw: raw, Sum: []byte{1, 2, 3}, Sender: Recipient{Address: "rob@other.example"},
		Recipients: []Recipient{{ID: NewID(), Address: "ben@here.example"}}}
	for name, r := range map[string]*envelopeRecord{"full": full, "remote sender": remote} {
		b := marshalEnvelopeRecord(r)
		var got envelopeRecord
		if err := unmarshalEnvelopeRecord(b, &got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(&got, r) {
			t.Errorf("%s: decoded\n%+v\nwant\n%+v", name, got, *r)
		}
		if !bytes.Contains(b, raw) {
			t.Errorf("%s: the envelope's bytes are not in the record as they are", name)
		}
		j, _ := json.Marshal(r)
		if len(b) >= len(j)*4/5 {
			t.Errorf("%s: binary record of %d bytes, JSON %d: want it at least a fifth smaller", name, len(b), len(j))
		}
		// Every truncation fails (a field cut short) or, cut exactly
		// between fields, decodes to a different record.
		for n := 1; n < len(b); n++ {
			var x envelopeRecord
			if err := unmarshalEnvelopeRecord(b[:n], &x); err == nil && reflect.DeepEqual(&x, r) {
				t.Fatalf("%s: the record cut to %d of %d bytes decodes as the whole", name, n, len(b))
			}
		}
	}
	for _, bad := range [][]byte{nil, {}, {0x02}, {envRecordV1, 99, 0}, {envRecordV1, erRaw, 5, 'a'}, {envRecordV1, erSenderSeq, 2, 0, 1}, {envRecordV1, erSender, 3, 1, 2, 3}} {
		var x envelopeRecord
		if err := unmarshalEnvelopeRecord(bad, &x); err == nil {
			t.Errorf("%x decoded without error: %+v", bad, x)
		}
	}
}

// TestOldJSONEnvelopeRecords: a data directory written by an earlier
// version holds JSON envelope records; they are still read — the mailbox,
// the outbox and a read mark (which rewrites the record in the binary
// form) all work on them.
func TestOldJSONEnvelopeRecords(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		us := createUsers(t, e.db, "ann", "ben")
		ann, ben := us[0], us[1]
		id := sendRemote(t, e.db, ann, []*User{ben}, []privateline.Address{rob}, time.Time{})
		mid := mustID(t, id)
		rec, err := e.db.envelope(mid)
		if err != nil {
			t.Fatal(err)
		}
		want := append([]byte(nil), rec.Raw...)
		// Rewrite it as an earlier version did: JSON, the envelope in base64.
		b := e.db.db.NewBatch()
		if err := e.db.setJSON(b, tEnvelope.key(mid), rec); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(pebble.Sync); err != nil {
			t.Fatal(err)
		}
		if pt, err := e.db.get(tEnvelope.key(mid)); err != nil || pt[0] != '{' {
			t.Fatalf("the record is not in the old form: %.20q, %v", pt, err)
		}
		items, err := e.db.Mailbox(ben.ID, MailQuery{Limit: 10, Now: time.Now()})
		if err != nil || len(items) != 1 || !bytes.Equal(items[0].Envelope, want) {
			t.Fatalf("ben's mailbox from an old record: %+v, %v", items, err)
		}
		var c ids
		txn, err := e.db.OutboxNext(other, 10, 1<<20, c.next)
		if err != nil || txn == nil || len(txn.Items) != 1 || !bytes.Equal(txn.Items[0].Payload, want) {
			t.Fatalf("outbox from an old record: %+v, %v", txn, err)
		}
		if err := e.db.MarkRead(ben.ID, id, time.Now()); err != nil {
			t.Fatal(err)
		}
		pt, err := e.db.get(tEnvelope.key(mid))
		if err != nil || pt[0] != envRecordV1 {
			t.Fatalf("the record changed but was not rewritten in the binary form: %.20q, %v", pt, err)
		}
		items, err = e.db.Mailbox(ann.ID, MailQuery{Limit: 10, Now: time.Now()})
		if err != nil || len(items) != 1 || !bytes.Equal(items[0].Envelope, want) || !reflect.DeepEqual(items[0].ReadBy, []privateline.Address{rcpt(ben).Address}) {
			t.Fatalf("ann's sent copy after the read mark: %+v, %v", items, err)
		}
	})
}

// BenchmarkEnvelopeRecord: decoding and encoding a received message's
// record (a 3.5 KB envelope) in the binary form and in the JSON form of
// earlier versions.
func BenchmarkEnvelopeRecord(b *testing.B) {
	r := &envelopeRecord{Raw: bytes.Repeat([]byte(`{"ciphertext":"QUJD"}`), 167), Sum: bytes.Repeat([]byte{7}, 32),
		Sender: Recipient{Address: "rob@other.example"}, Recipients: []Recipient{{ID: NewID(), Address: "ben@here.example"}}}
	bin := marshalEnvelopeRecord(r)
	js, _ := json.Marshal(r)
	for _, c := range []struct {
		name string
		pt   []byte
	}{{"binary", bin}, {"json", js}} {
		b.Run("decode/"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var x envelopeRecord
				if err := unmarshalEnvelopeRecord(c.pt, &x); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("encode/binary", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			marshalEnvelopeRecord(r)
		}
	})
	b.Run("encode/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkLookupAbsent: looking up keys that are not there in a store
// whose data is in its last level, with DB.Get (get) and with every
// level's Bloom filter (getNew), as a new message's id is looked up.
func BenchmarkLookupAbsent(b *testing.B) {
	db, err := Open(Options{Dir: b.TempDir(), Key: testKey(), CacheBytes: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	val := bytes.Repeat([]byte{1}, 3500)
	newKey := func() []byte { id := NewID(); return tEnvelope.key(id[:]) }
	for range 8 {
		batch := db.db.NewBatch()
		for range 1000 {
			db.setSealed(batch, newKey(), val)
		}
		if err := batch.Commit(pebble.NoSync); err != nil {
			b.Fatal(err)
		}
	}
	if err := db.db.Compact(context.Background(), []byte{0}, []byte{0xff}, false); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		fn   func([]byte) ([]byte, error)
	}{{"get", db.get}, {"getNew", db.getNew}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.fn(newKey()); !privateline.Is(privateline.NotExist, err) {
					b.Fatal(err)
				}
			}
		})
	}
}
