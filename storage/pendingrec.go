package storage

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"

	"github.com/cockroachdb/pebble/v2"
	"github.com/privateline/privateline"
)

// Pending-transaction records ('D' dest 'p', outbox.go) are written in a
// binary form. A full transaction has 256 items, so the record with the
// one recorded to follow it was about 40 KB of JSON, and it is read
// several times a transaction (OutboxPend, OutboxDone, the senders'
// locking); decoding it as JSON was a few per cent of a federation
// drain's CPU. Records written by earlier versions are JSON objects and
// are still read (their first byte is '{'); the next write of the record
// is in the binary form.
//
// The binary form (after sealing, like every value):
//
//	0x01                      the form's version
//	flags(1)                  pfChanged, pfNext, pfPackedIDs
//	uvarint(len) TxnID
//	uvarint(len) Type
//	uvarint(n)                the number of Seqs, then n varints: each
//	                          seq's difference from the one before (the
//	                          first's from 0), zig-zag encoded, so the
//	                          ascending seqs of a transaction take a byte
//	                          or two each
//	uvarint(m)                the number of IDs, then with pfPackedIDs
//	                          m×16 bytes, each id's 32 lower-case hex
//	                          digits decoded (message ids are so), else
//	                          m × uvarint(len) bytes(len)
//	uvarint(len) Senders      as they are (16 bytes per item)
//	uvarint(len) Next         with pfNext: the record to follow, in this
//	                          same form, without a Next of its own
//
// Nothing follows. An empty list is decoded as nil.
const pendingV1 = 0x01

// Flags of a binary pending record.
const (
	pfChanged   = 1 << 0
	pfNext      = 1 << 1
	pfPackedIDs = 1 << 2
	pfAll       = pfChanged | pfNext | pfPackedIDs
)

var (
	errBadPending   = errors.New("storage: malformed pending-transaction record")
	errPendingDepth = errors.New("storage: pending transaction's Next has a Next")
)

// marshalPending encodes p in the binary form. p.Next, if any, must not
// have a Next of its own (the form has room for one level).
func marshalPending(p *pendingTxn) ([]byte, error) {
	if p.Next != nil && p.Next.Next != nil {
		return nil, errPendingDepth
	}
	return appendPending(make([]byte, 0, pendingSize(p)), p), nil
}

// pendingSize is an upper bound of the size of p's binary form.
func pendingSize(p *pendingTxn) int {
	const v = binary.MaxVarintLen64
	n := 2 + 5*v + len(p.TxnID) + len(p.Type) + len(p.Senders) + v*len(p.Seqs)
	for _, id := range p.IDs {
		n += v + len(id)
	}
	if p.Next != nil {
		n += v + pendingSize(p.Next)
	}
	return n
}

// appendPending appends p's binary form to b.
func appendPending(b []byte, p *pendingTxn) []byte {
	var flags byte
	if p.Changed {
		flags |= pfChanged
	}
	if p.Next != nil {
		flags |= pfNext
	}
	b = append(b, pendingV1, flags)
	flagsAt := len(b) - 1 // pfPackedIDs is set once the ids are written
	b = binary.AppendUvarint(b, uint64(len(p.TxnID)))
	b = append(b, p.TxnID...)
	b = binary.AppendUvarint(b, uint64(len(p.Type)))
	b = append(b, p.Type...)
	b = binary.AppendUvarint(b, uint64(len(p.Seqs)))
	var prev uint64
	for _, seq := range p.Seqs {
		b = binary.AppendVarint(b, int64(seq-prev)) // wraps: decoded by adding back
		prev = seq
	}
	b = binary.AppendUvarint(b, uint64(len(p.IDs)))
	if len(p.IDs) > 0 {
		// Packed if every id is a message id (32 lower-case hex digits,
		// which survive being packed exactly); else, from the first that
		// is not, written again as strings.
		ids := len(b)
		packed := true
		for _, id := range p.IDs {
			k, err := msgKeyID(id)
			if err != nil {
				packed = false
				break
			}
			b = append(b, k...)
		}
		if packed {
			b[flagsAt] |= pfPackedIDs
		} else {
			b = b[:ids]
			for _, id := range p.IDs {
				b = binary.AppendUvarint(b, uint64(len(id)))
				b = append(b, id...)
			}
		}
	}
	b = binary.AppendUvarint(b, uint64(len(p.Senders)))
	b = append(b, p.Senders...)
	if p.Next != nil {
		next := appendPending(nil, p.Next)
		b = binary.AppendUvarint(b, uint64(len(next)))
		b = append(b, next...)
	}
	return b
}

// unmarshalPending decodes a pending record in either form into p.
// Senders aliases pt (the caller's freshly opened plaintext).
func unmarshalPending(pt []byte, p *pendingTxn) error {
	if len(pt) > 0 && pt[0] == '{' { // written by an earlier version
		*p = pendingTxn{}
		return json.Unmarshal(pt, p)
	}
	return decodePending(pt, p, true)
}

// decodePending decodes a record in the binary form into p; next tells
// whether it may have a Next.
func decodePending(pt []byte, p *pendingTxn, next bool) error {
	*p = pendingTxn{}
	if len(pt) < 2 || pt[0] != pendingV1 {
		return errBadPending
	}
	flags := pt[1]
	if flags&^pfAll != 0 || (!next && flags&pfNext != 0) {
		return errBadPending
	}
	d := pendingDecoder{b: pt[2:]}
	p.Changed = flags&pfChanged != 0
	p.TxnID = string(d.bytes())
	p.Type = string(d.bytes())
	if n := d.count(1); n > 0 {
		p.Seqs = make([]uint64, n)
		var prev uint64
		for i := range p.Seqs {
			v, w := binary.Varint(d.b)
			if w <= 0 {
				return errBadPending
			}
			d.b = d.b[w:]
			prev += uint64(v)
			p.Seqs[i] = prev
		}
	}
	if flags&pfPackedIDs != 0 {
		m := d.count(16)
		if m == 0 && d.err == nil {
			return errBadPending // packed is written only for ids
		}
		if m > 0 {
			// One string holds every id's hex digits: one allocation, not
			// one per id.
			hx := make([]byte, 32*m)
			hex.Encode(hx, d.b[:16*m])
			d.b = d.b[16*m:]
			all := string(hx)
			p.IDs = make([]string, m)
			for i := range p.IDs {
				p.IDs[i] = all[32*i : 32*(i+1)]
			}
		}
	} else if m := d.count(1); m > 0 {
		p.IDs = make([]string, m)
		for i := range p.IDs {
			p.IDs[i] = string(d.bytes())
		}
	}
	if s := d.bytes(); len(s) > 0 {
		p.Senders = s[:len(s):len(s)]
	}
	if flags&pfNext != 0 {
		nb := d.bytes()
		if d.err != nil {
			return d.err
		}
		p.Next = &pendingTxn{}
		if err := decodePending(nb, p.Next, false); err != nil {
			return err
		}
	}
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return errBadPending
	}
	return nil
}

// pendingDecoder reads the fields of a binary pending record; once one is
// malformed, err is set and every later read returns nothing.
type pendingDecoder struct {
	b   []byte
	err error
}

// uvarint reads an unsigned varint.
func (d *pendingDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, w := binary.Uvarint(d.b)
	if w <= 0 {
		d.err = errBadPending
		return 0
	}
	d.b = d.b[w:]
	return v
}

// bytes reads a length-prefixed field; the result aliases the record.
func (d *pendingDecoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errBadPending
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

// count reads the number of elements of a list whose elements take at
// least min bytes each, refusing one that the rest of the record cannot
// hold (so that a damaged count allocates nothing).
func (d *pendingDecoder) count(min int) int {
	n := d.uvarint()
	if d.err != nil {
		return 0
	}
	if n > uint64(len(d.b)/min) {
		d.err = errBadPending
		return 0
	}
	return int(n)
}

// pendingTxn reads destination h's pending transaction (either form);
// nil, nil if there is none.
func (d *DB) pendingTxn(h []byte) (*pendingTxn, error) {
	pt, err := d.get(pendingKey(h))
	if privateline.Is(privateline.NotExist, err) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var p pendingTxn
	if err := unmarshalPending(pt, &p); err != nil {
		return nil, privateline.E("storage.pendingTxn", privateline.Internal, err)
	}
	return &p, nil
}

// putPending adds p, in the binary form, as destination h's pending
// transaction to b.
func (d *DB) putPending(b *pebble.Batch, h []byte, p *pendingTxn) error {
	v, err := marshalPending(p)
	if err != nil {
		return privateline.E("storage.putPending", privateline.Internal, err)
	}
	d.setSealed(b, pendingKey(h), v)
	return nil
}
