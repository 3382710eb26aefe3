package wire

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"testing"

	"github.com/privateline/privateline/cjson"
)

// Benchmarks of the per-transaction work on both sides of a link, for a
// full transaction: 256 entries of 3,510-byte envelopes (the size of a
// pl1 direct message with a 1 KiB plaintext to one recipient, as
// cmd/plbench -federation sends). Run with
//
//	go test -run '^$' -bench . -benchmem ./federation/wire/
//
// See docs/benchmarks.md ("Federation").

const benchEnvelope = 3510

func benchTx(b *testing.B) *Transaction {
	b.Helper()
	tx := sampleTx(0)
	for i := range MaxEntries {
		// JSON with a long base64 string, like a sealed envelope.
		pad := make([]byte, benchEnvelope)
		rand.Read(pad)
		body := base64.StdEncoding.EncodeToString(pad)
		env := fmt.Appendf(nil, `{"ciphertext":"%s","header":{"id":"%032x"}}`, body[:benchEnvelope-len(`{"ciphertext":"","header":{"id":"00000000000000000000000000000000"}}`)], i+1)
		if len(env) != benchEnvelope {
			b.Fatalf("envelope of %d bytes", len(env))
		}
		tx.Entries = append(tx.Entries, Entry{ID: fmt.Sprintf("%032x", i+1), Envelope: env})
	}
	return tx
}

func reportEntries(b *testing.B, n int) {
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkSignTransaction: the sender signs a full transaction.
func BenchmarkSignTransaction(b *testing.B) {
	fx := newFixture(b)
	tx := benchTx(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Sign(tx, fx.ka); err != nil {
			b.Fatal(err)
		}
	}
	reportEntries(b, len(tx.Entries))
}

// BenchmarkVerifyTransaction: the receiver checks a full transaction
// (canonical form, limits, header, signature).
func BenchmarkVerifyTransaction(b *testing.B) {
	fx := newFixture(b)
	tx := benchTx(b)
	raw := mustSign(b, tx, fx.ka)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := VerifyTransaction(raw, fx.peerA, srvB, now, DefaultLimits()); err != nil {
			b.Fatal(err)
		}
	}
	reportEntries(b, len(tx.Entries))
}

// BenchmarkReceipt: the receiver signs the receipt of a full transaction
// and the sender verifies it.
func BenchmarkReceipt(b *testing.B) {
	fx := newFixture(b)
	tx := benchTx(b)
	rc := &Receipt{Header: Header{Origin: srvB, Destination: srvA, TxnID: tx.TxnID, CreatedAt: now.UnixMilli()}}
	for _, e := range tx.Entries {
		rc.Results = append(rc.Results, Result{ID: e.ID, Status: Accepted})
	}
	b.ReportAllocs()
	for b.Loop() {
		raw, err := Sign(rc, fx.kb)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := VerifyReceipt(raw, fx.peerB, srvA, now, DefaultLimits(), tx); err != nil {
			b.Fatal(err)
		}
	}
	reportEntries(b, len(tx.Entries))
}

// signEnvelopes writes exactly the canonical JSON of the generic
// encoding, and its signature covers the generic signing input.
func TestSignEnvelopesCanonical(t *testing.T) {
	fx := newFixture(t)
	for _, n := range []int{1, 2, 17, -3} {
		tx := sampleTx(max(n, -n))
		if n < 0 {
			tx.After = NewTxnID() // the member that sorts first
		}
		raw := mustSign(t, tx, fx.ka)
		body := tx.body()
		in, err := signingInput(LabelTransaction, body)
		if err != nil {
			t.Fatal(err)
		}
		if !ed25519.Verify(fx.ka.Public(), in, tx.Signature) {
			t.Fatalf("%d entries: the signature does not cover the generic signing input", n)
		}
		body["signature"] = b64.EncodeToString(tx.Signature)
		want, err := cjson.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(raw, want) {
			t.Fatalf("%d entries:\n got %s\nwant %s", n, raw, want)
		}
		if _, _, err := decode(raw, DefaultLimits()); err != nil {
			t.Fatalf("%d entries: own frame refused: %v", n, err)
		}
	}
}

// unsignedInput, which Verify uses, equals the signing input computed
// from the decoded members, also when a nested member is named
// "signature" (a key answer's lookup).
func TestUnsignedInput(t *testing.T) {
	fx := newFixture(t)
	kr := keyRequest(1)
	msgs := []Message{
		sampleTx(3),
		&Receipt{Header: Header{Origin: srvB, Destination: srvA, TxnID: NewTxnID(), CreatedAt: 7},
			Results: []Result{{ID: fmt.Sprintf("%032x", 1), Status: Refused, Error: "expired"}}},
		&Receipt{Type: TypeKeyAnswer, Header: Header{Origin: srvB, Destination: srvA, TxnID: kr.TxnID, CreatedAt: 7},
			Results: []Result{{ID: kr.Entries[0].ID, Lookup: []byte(`{"entry":{"signature":"AAAA"},"signature":"` + b64.EncodeToString(make([]byte, 64)) + `"}`)}}},
	}
	for _, m := range msgs {
		raw := mustSign(t, m, fx.ka)
		dm, _, err := decode(raw, DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		v, err := cjson.ParseCanonical(raw) // the members (decode's fast path has no map)
		if err != nil {
			t.Fatal(err)
		}
		body := v.(map[string]any)
		delete(body, "signature")
		want, err := signingInput(dm.label(), body)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := unsignedInput(dm.label(), raw, dm.header().Signature)
		if !ok || !bytes.Equal(got, want) {
			t.Fatalf("%T: unsignedInput %q (%v), want %q", m, got, ok, want)
		}
	}
}
