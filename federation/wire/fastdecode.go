package wire

import (
	"bytes"
	"crypto/ed25519"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/cjson"
)

// decodeEnvelopes is decode's fast path for the bulk of the traffic: an
// envelopes transaction in the one layout its canonical JSON has (the
// members in order, as signEnvelopes writes them). It reads raw in one
// pass and decodes every envelope from raw into one buffer, without the
// generic value tree, the string copies and an allocation per envelope.
// Anything else — another type, a member missing or out of place, any
// rule broken — makes it give up (ok false) and the generic path decides,
// with its refusal. So the two accept the same frames and return the same
// transaction (FuzzDecodeEnvelopes holds them to it); raw must already be
// within the size limit.
func decodeEnvelopes(raw []byte) (t *Transaction, ok bool) {
	c := cursor{b: raw}
	t = &Transaction{Type: TypeEnvelopes}
	if !c.lit(`{`) {
		return nil, false
	}
	if c.lit(`"after":"`) {
		if t.After, ok = c.id(); !ok || !c.lit(`,`) {
			return nil, false
		}
	}
	if !c.lit(`"created_at":`) {
		return nil, false
	}
	if t.CreatedAt, ok = c.uint(); !ok || !c.lit(`,"destination":"`) {
		return nil, false
	}
	if t.Destination, ok = c.serverName(); !ok || !c.lit(`,"entries":[`) {
		return nil, false
	}
	// Every envelope fits in the decoded length of the whole frame.
	buf := make([]byte, 0, b64.DecodedLen(len(raw)))
	seen := make(map[string]bool)
	for {
		if !c.lit(`{"envelope":"`) {
			return nil, false
		}
		s, ok := c.until('"')
		n := b64.DecodedLen(len(s))
		if !ok || n == 0 || len(buf)+n > cap(buf) {
			return nil, false
		}
		// Strict decoding refuses non-zero pad bits, and the length check
		// the line breaks it skips: only the one canonical form is left
		// (and no byte that JSON would escape is in the alphabet).
		m, err := b64.Decode(buf[len(buf):len(buf)+n], s)
		if err != nil || m == 0 || m > MaxFrame || len(s) != b64.EncodedLen(m) {
			return nil, false
		}
		env := buf[len(buf) : len(buf)+m : len(buf)+m]
		buf = buf[:len(buf)+m]
		if !c.lit(`,"id":"`) {
			return nil, false
		}
		id, ok := c.id()
		if !ok || seen[id] || !c.lit(`}`) {
			return nil, false
		}
		seen[id] = true
		t.Entries = append(t.Entries, Entry{ID: id, Envelope: env})
		if c.lit(`]`) {
			break
		}
		if !c.lit(`,`) {
			return nil, false
		}
	}
	if !c.lit(`,"origin":"`) {
		return nil, false
	}
	if t.Origin, ok = c.serverName(); !ok || !c.lit(`,"signature":"`) {
		return nil, false
	}
	s, ok := c.until('"')
	if !ok || len(s) != b64.EncodedLen(ed25519.SignatureSize) {
		return nil, false
	}
	sig := make([]byte, b64.DecodedLen(len(s))) // 66: unpadded, 88 digits could be
	if n, err := b64.Decode(sig, s); err != nil || n != ed25519.SignatureSize {
		return nil, false
	}
	t.Signature = sig[:ed25519.SignatureSize:ed25519.SignatureSize]
	if !c.lit(`,"txn_id":"`) {
		return nil, false
	}
	if t.TxnID, ok = c.id(); !ok || t.TxnID == t.After || !c.lit(`,"type":"envelopes","v":1}`) || c.i != len(raw) {
		return nil, false
	}
	return t, true
}

// cursor reads raw's fixed layout.
type cursor struct {
	b []byte
	i int
}

// lit consumes s if it comes next.
func (c *cursor) lit(s string) bool {
	if bytes.HasPrefix(c.b[c.i:], []byte(s)) {
		c.i += len(s)
		return true
	}
	return false
}

// until returns the bytes up to the next q and consumes them and q.
func (c *cursor) until(q byte) ([]byte, bool) {
	n := bytes.IndexByte(c.b[c.i:], q)
	if n < 0 {
		return nil, false
	}
	s := c.b[c.i : c.i+n]
	c.i += n + 1
	return s, true
}

// id reads the rest of a string that is an id (its opening quote read).
func (c *cursor) id() (string, bool) {
	s, ok := c.until('"')
	if !ok || !IsID(string(s)) {
		return "", false
	}
	return string(s), true
}

// serverName reads the rest of a string that is a server name, whose
// characters JSON never escapes (its opening quote read).
func (c *cursor) serverName() (privateline.ServerName, bool) {
	s, ok := c.until('"')
	if !ok {
		return "", false
	}
	n, err := privateline.ParseServerName(string(s))
	if err != nil || string(n) != string(s) {
		return "", false
	}
	return n, true
}

// uint reads a non-negative integer in canonical form (no leading zero)
// of at most cjson.MaxSafeInt.
func (c *cursor) uint() (int64, bool) {
	start := c.i
	var n int64
	for c.i < len(c.b) && c.b[c.i] >= '0' && c.b[c.i] <= '9' && c.i-start < 16 {
		n = n*10 + int64(c.b[c.i]-'0')
		c.i++
	}
	digits := c.i - start
	if digits == 0 || digits > 1 && c.b[start] == '0' || n > cjson.MaxSafeInt ||
		c.i < len(c.b) && c.b[c.i] >= '0' && c.b[c.i] <= '9' {
		return 0, false
	}
	return n, true
}
