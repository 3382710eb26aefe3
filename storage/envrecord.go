package storage

import (
	"encoding/binary"
	"encoding/json"
	"errors"

	"github.com/cockroachdb/pebble/v2"
	"github.com/privateline/privateline"
)

// Envelope records ('E', messages.go) are written in a binary form: the
// envelope's bytes as they are, not base64 inside JSON, so a record is
// about a third smaller, and reading one (every outbox read of a
// transaction, every mailbox page) decodes no JSON. Records written by
// earlier versions are JSON objects and are still read (their first byte
// is '{'); a record is rewritten in the binary form whenever it changes.
//
// The binary form (after sealing, like every value):
//
//	0x01                        the form's version
//	then fields, each: tag(1) uvarint(len) bytes(len)
//
// A field whose value is empty is left out. List fields repeat their tag,
// one element each, in order. Integers are 8 bytes big-endian; a recipient
// is its id (16 bytes) followed by its address.
const envRecordV1 = 0x01

const (
	erRaw          = 1
	erSum          = 2
	erSender       = 3
	erRecipient    = 4
	erExpiresAt    = 5
	erSenderSeq    = 6
	erReadBy       = 7
	erFile         = 8
	erGroup        = 9
	erRemote       = 10
	erOriginFile   = 11
	erFanout       = 12
	erRemoteReader = 13
)

var errBadEnvRecord = errors.New("storage: malformed envelope record")

// marshalEnvelopeRecord encodes r in the binary form.
func marshalEnvelopeRecord(r *envelopeRecord) []byte {
	n := 1 + 2*binary.MaxVarintLen64 + len(r.Raw) + len(r.Sum) + 64
	for _, p := range r.Recipients {
		n += 24 + len(p.Address)
	}
	for _, l := range [][]privateline.Address{r.ReadBy, r.Remote, r.Fanout, r.RemoteReaders} {
		for _, a := range l {
			n += 12 + len(a)
		}
	}
	for _, l := range [][]string{r.Files, r.OriginFiles} {
		for _, s := range l {
			n += 12 + len(s)
		}
	}
	n += len(r.Group) + len(r.Sender.Address) + 64
	b := make([]byte, 1, n)
	b[0] = envRecordV1
	field := func(tag byte, v []byte) {
		b = append(b, tag)
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	str := func(tag byte, s string) {
		b = append(b, tag)
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	rcpt := func(tag byte, p Recipient) {
		b = append(b, tag)
		b = binary.AppendUvarint(b, uint64(len(p.ID)+len(p.Address)))
		b = append(b, p.ID[:]...)
		b = append(b, p.Address...)
	}
	u64f := func(tag byte, v uint64) {
		b = append(b, tag, 8)
		b = binary.BigEndian.AppendUint64(b, v)
	}
	if len(r.Raw) > 0 {
		field(erRaw, r.Raw)
	}
	if len(r.Sum) > 0 {
		field(erSum, r.Sum)
	}
	if !r.Sender.ID.IsZero() || r.Sender.Address != "" {
		rcpt(erSender, r.Sender)
	}
	for _, p := range r.Recipients {
		rcpt(erRecipient, p)
	}
	if r.ExpiresAt != 0 {
		u64f(erExpiresAt, uint64(r.ExpiresAt))
	}
	if r.SenderSeq != 0 {
		u64f(erSenderSeq, r.SenderSeq)
	}
	for _, a := range r.ReadBy {
		str(erReadBy, string(a))
	}
	for _, f := range r.Files {
		str(erFile, f)
	}
	if r.Group != "" {
		str(erGroup, r.Group)
	}
	for _, a := range r.Remote {
		str(erRemote, string(a))
	}
	for _, f := range r.OriginFiles {
		str(erOriginFile, f)
	}
	for _, a := range r.Fanout {
		str(erFanout, string(a))
	}
	for _, a := range r.RemoteReaders {
		str(erRemoteReader, string(a))
	}
	return b
}

// unmarshalEnvelopeRecord decodes a record in either form. In the binary
// form Raw and Sum alias pt (the caller's freshly opened plaintext).
func unmarshalEnvelopeRecord(pt []byte, r *envelopeRecord) error {
	if len(pt) > 0 && pt[0] == '{' { // written by an earlier version
		return json.Unmarshal(pt, r)
	}
	if len(pt) == 0 || pt[0] != envRecordV1 {
		return errBadEnvRecord
	}
	*r = envelopeRecord{}
	p := pt[1:]
	for len(p) > 0 {
		tag := p[0]
		n, w := binary.Uvarint(p[1:])
		if w <= 0 || n > uint64(len(p)-1-w) {
			return errBadEnvRecord
		}
		v := p[1+w : 1+w+int(n) : 1+w+int(n)]
		p = p[1+w+int(n):]
		rcpt := func() (Recipient, error) {
			var x Recipient
			if len(v) < len(x.ID) {
				return x, errBadEnvRecord
			}
			copy(x.ID[:], v)
			x.Address = privateline.Address(v[len(x.ID):])
			return x, nil
		}
		u64v := func() (uint64, error) {
			if len(v) != 8 {
				return 0, errBadEnvRecord
			}
			return binary.BigEndian.Uint64(v), nil
		}
		var err error
		switch tag {
		case erRaw:
			r.Raw = v
		case erSum:
			r.Sum = v
		case erSender:
			r.Sender, err = rcpt()
		case erRecipient:
			var x Recipient
			if x, err = rcpt(); err == nil {
				r.Recipients = append(r.Recipients, x)
			}
		case erExpiresAt:
			var x uint64
			x, err = u64v()
			r.ExpiresAt = int64(x)
		case erSenderSeq:
			r.SenderSeq, err = u64v()
		case erReadBy:
			r.ReadBy = append(r.ReadBy, privateline.Address(v))
		case erFile:
			r.Files = append(r.Files, string(v))
		case erGroup:
			r.Group = string(v)
		case erRemote:
			r.Remote = append(r.Remote, privateline.Address(v))
		case erOriginFile:
			r.OriginFiles = append(r.OriginFiles, string(v))
		case erFanout:
			r.Fanout = append(r.Fanout, privateline.Address(v))
		case erRemoteReader:
			r.RemoteReaders = append(r.RemoteReaders, privateline.Address(v))
		default:
			return errBadEnvRecord
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// putEnvelope adds message mid's record to b, in the binary form.
func (d *DB) putEnvelope(b *pebble.Batch, mid []byte, r *envelopeRecord) {
	d.setSealed(b, tEnvelope.key(mid), marshalEnvelopeRecord(r))
}

// envelope reads message mid's record (either form); NotExist if there
// is none.
func (d *DB) envelope(mid []byte) (*envelopeRecord, error) {
	return d.envelopeFrom(d.get(tEnvelope.key(mid)))
}

// envelopeIfAny is envelope for a message id that is most likely new
// (getNew): a sent or received message's.
func (d *DB) envelopeIfAny(mid []byte) (*envelopeRecord, error) {
	return d.envelopeFrom(d.getNew(tEnvelope.key(mid)))
}

func (d *DB) envelopeFrom(pt []byte, err error) (*envelopeRecord, error) {
	if err != nil {
		return nil, err
	}
	var r envelopeRecord
	if err := unmarshalEnvelopeRecord(pt, &r); err != nil {
		return nil, privateline.E("storage.envelope", privateline.Internal, err)
	}
	return &r, nil
}
