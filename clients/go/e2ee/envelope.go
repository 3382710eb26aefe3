package e2ee

import (
	"crypto/sha256"
	"fmt"
	"io"
	"regexp"
	"slices"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/cjson"
)

// Envelope is what travels through the servers (spec/e2ee.md §7.2):
// the cleartext header and the sealed message.
//
//	direct: {"ciphertext", "header", "keys", "nonce", "signature"}
//	group:  {"ciphertext", "header", "nonce", "salt", "signature"}
type Envelope struct {
	Header     Header
	Keys       map[string][]byte // direct: key id → RSA-OAEP wrap of the content key
	Salt       []byte            // group: the per-message HKDF salt
	Nonce      []byte
	Ciphertext []byte
	Signature  []byte
}

// Draft is what the caller decides about a message to seal.
type Draft struct {
	ID           string    // 32 lower-case hex digits; empty: a fresh random id
	Conversation string    // direct form only; a group's conversation is the group id
	SentAt       time.Time // stored with millisecond precision
	ExpiresAt    time.Time // zero: never expires
	Message      *Message
}

// OpenOptions tune the receiver's checks.
type OpenOptions struct {
	// Now, if set, refuses messages whose expires_at is not after it.
	Now time.Time
	// Recipients, if set, are the verified bundles of every address in the
	// header's "to"; the keys must then be exactly theirs and the sender's.
	Recipients []*KeyBundle
}

var keyIDRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// rsaCiphertextSize is the size of an RSA-4096 OAEP ciphertext.
const rsaCiphertextSize = RSABits / 8

func (e *Envelope) value() map[string]any {
	v := map[string]any{
		"header":     e.Header.value(),
		"nonce":      encodeB64(e.Nonce),
		"ciphertext": encodeB64(e.Ciphertext),
		"signature":  encodeB64(e.Signature),
	}
	if e.Header.IsGroup() {
		v["salt"] = encodeB64(e.Salt)
	} else {
		v["keys"] = keysValue(e.Keys)
	}
	return v
}

func keysValue(keys map[string][]byte) map[string]any {
	m := make(map[string]any, len(keys))
	for id, w := range keys {
		m[id] = encodeB64(w)
	}
	return m
}

// MarshalJSON returns the envelope's canonical JSON.
func (e *Envelope) MarshalJSON() ([]byte, error) {
	if err := e.Header.check(); err != nil {
		return nil, err
	}
	return cjson.Marshal(e.value())
}

// ParseEnvelope decodes an envelope and checks its structure; it neither
// verifies nor decrypts. Whitespace and member order may differ from the
// canonical form (a server may re-serialize); the header's canonical form
// is recomputed from its value.
func ParseEnvelope(data []byte) (*Envelope, error) {
	const op = "e2ee.ParseEnvelope"
	if len(data) > MaxEnvelope {
		return nil, refuse(op, ErrTooLarge, "envelope is too large")
	}
	f := parseFields(data)
	hv := f.object("header", true)
	if f.err != nil {
		return nil, refuse(op, ErrMalformed, "envelope: "+f.err.Error())
	}
	h, err := parseHeader(hv)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	e := &Envelope{
		Header:     *h,
		Nonce:      f.bytes("nonce", true, NonceSize, NonceSize),
		Ciphertext: f.bytes("ciphertext", true, 0, MaxEnvelope),
		Signature:  f.bytes("signature", true, SignatureSize, SignatureSize),
	}
	if h.IsGroup() {
		e.Salt = f.bytes("salt", true, GroupSaltSize, GroupSaltSize)
	} else {
		km := f.object("keys", true)
		if f.err == nil {
			e.Keys, f.err = parseKeys(km, 1, MaxRecipients+1)
		}
	}
	if err := f.done(false); err != nil {
		return nil, refuse(op, ErrMalformed, "envelope: "+err.Error())
	}
	if err := checkCiphertextSize(op, len(e.Ciphertext)); err != nil {
		return nil, err
	}
	return e, nil
}

func checkCiphertextSize(op string, n int) error {
	if n > MaxPlaintext+16 {
		return refuse(op, ErrTooLarge, "ciphertext is too large")
	}
	if n < PadBlock+16 || (n-16)%PadBlock != 0 {
		return refuse(op, ErrMalformed, "ciphertext length must be a multiple of 256 plus 16")
	}
	return nil
}

func parseKeys(m map[string]any, lo, hi int) (map[string][]byte, error) {
	if len(m) < lo || len(m) > hi {
		return nil, fmt.Errorf("keys must hold %d to %d entries", lo, hi)
	}
	keys := make(map[string][]byte, len(m))
	for id, v := range m {
		s, ok := v.(string)
		if !keyIDRE.MatchString(id) || !ok {
			return nil, fmt.Errorf("keys must map key ids to base64 strings")
		}
		w, ok := decodeB64(s)
		if !ok || len(w) != rsaCiphertextSize {
			return nil, fmt.Errorf("a wrapped key must be base64 of 512 bytes")
		}
		keys[id] = w
	}
	return keys, nil
}

// directSigned is the byte string a direct envelope's signature covers:
// "privateline/v1/envelope" ‖ 0x00 ‖ SHA-256(aad) ‖ SHA-256(nonce ‖ ciphertext)
// ‖ SHA-256(canonical keys).
func directSigned(aad, nonce, ct []byte, keys map[string][]byte) []byte {
	kc, _ := cjson.Marshal(keysValue(keys))
	h1 := sha256.Sum256(aad)
	h2 := sha256.Sum256(concat(nonce, ct))
	h3 := sha256.Sum256(kc)
	return concat(domain(labelEnvelope), h1[:], h2[:], h3[:])
}

// sealPlaintext encodes, pads and size-checks m.
func sealPlaintext(op string, m *Message) ([]byte, error) {
	if m == nil {
		return nil, refuse(op, ErrMalformed, "no message")
	}
	raw, err := EncodeMessage(m)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	pt := Pad(raw)
	if len(pt) > MaxPlaintext {
		return nil, refuse(op, ErrTooLarge, "message is too large")
	}
	return pt, nil
}

// prepare completes a header being sealed (file ids from the message, a
// fresh message id if none was given) and returns its associated data and
// the padded plaintext.
func (h *Header) prepare(op string, r io.Reader, d Draft) (aad, pt []byte, err error) {
	if d.Message != nil {
		h.Files = d.Message.fileIDs()
	}
	if h.ID == "" {
		if h.ID, err = NewMessageID(r); err != nil {
			return nil, nil, err
		}
	}
	if aad, err = h.AAD(); err != nil {
		return nil, nil, privateline.E(op, err)
	}
	if pt, err = sealPlaintext(op, d.Message); err != nil {
		return nil, nil, err
	}
	return aad, pt, nil
}

// SealDirect encrypts d.Message from sender to recipients (spec/e2ee.md §7).
// The content key is wrapped to every recipient and to the sender's own key.
// r supplies the id (if d.ID is empty), content key, nonce and OAEP seeds;
// nil means crypto/rand (pass non-nil only to make test vectors).
func SealDirect(r io.Reader, sender *PrivateKeys, recipients []*KeyBundle, d Draft) (*Envelope, error) {
	const op = "e2ee.SealDirect"
	h := Header{V: Version, Suite: SuitePL1, ID: d.ID, From: sender.address, Conversation: d.Conversation,
		SentAt: d.SentAt, ExpiresAt: d.ExpiresAt}
	encKeys := map[string]*EncryptionKey{sender.enc.ID(): sender.enc}
	for _, b := range recipients {
		if _, dup := encKeys[b.Encryption.ID()]; dup {
			return nil, refuse(op, ErrRecipients, "two recipients share an encryption key, or a recipient is repeated")
		}
		encKeys[b.Encryption.ID()] = b.Encryption
		h.To = append(h.To, b.Address)
	}
	slices.Sort(h.To)
	aad, pt, err := h.prepare(op, r, d)
	if err != nil {
		return nil, err
	}
	ck, err := readRand(r, KeySize)
	if err != nil {
		return nil, err
	}
	defer clear(ck)
	nonce, err := readRand(r, NonceSize)
	if err != nil {
		return nil, err
	}
	e := &Envelope{Header: h, Nonce: nonce, Keys: map[string][]byte{}}
	e.Ciphertext = newGCM(ck).Seal(nil, nonce, pt, aad)
	ids := make([]string, 0, len(encKeys))
	for id := range encKeys {
		ids = append(ids, id)
	}
	slices.Sort(ids) // OAEP seeds are drawn in key-id order
	for _, id := range ids {
		if e.Keys[id], err = wrapKey(encKeys[id], r, ck, labelContentKey); err != nil {
			return nil, err
		}
	}
	e.Signature = sender.sign(directSigned(aad, nonce, e.Ciphertext, e.Keys))
	return e, nil
}

// OpenDirect verifies and decrypts a direct envelope for me. sender must be
// the bundle the client pinned for the header's "from" (see CheckPinned).
// The checks run in the order of spec/e2ee.md §12, and the signature is
// verified before anything is decrypted.
func OpenDirect(e *Envelope, me *PrivateKeys, sender *KeyBundle, opts OpenOptions) (*Message, error) {
	const op = "e2ee.OpenDirect"
	h := &e.Header
	if h.IsGroup() {
		return nil, refuse(op, ErrMalformed, "not a direct envelope")
	}
	aad, err := h.AAD()
	if err != nil {
		return nil, privateline.E(op, err)
	}
	if h.From != sender.Address {
		return nil, refuse(op, ErrWrongSender, "the envelope is not from the given sender")
	}
	if !sender.Identity.Verify(directSigned(aad, e.Nonce, e.Ciphertext, e.Keys), e.Signature) {
		return nil, refuse(op, ErrBadSignature, "envelope signature is invalid")
	}
	if err := checkRecipients(op, h, e.Keys, me, sender, opts.Recipients); err != nil {
		return nil, err
	}
	if expired(h, opts.Now) {
		return nil, refuse(op, ErrExpired, "the message has expired")
	}
	ck, err := me.unwrap(e.Keys[me.enc.ID()], labelContentKey)
	if err != nil || len(ck) != KeySize {
		return nil, refuse(op, ErrDecrypt, "cannot unwrap the content key")
	}
	defer clear(ck)
	return openPlaintext(op, ck, e, aad)
}

func checkRecipients(op string, h *Header, keys map[string][]byte, me *PrivateKeys, sender *KeyBundle, all []*KeyBundle) error {
	if me.address != h.From && !slices.Contains(h.To, me.address) {
		return refuse(op, ErrNotRecipient, "this account is not a recipient")
	}
	if _, ok := keys[me.enc.ID()]; !ok {
		return refuse(op, ErrNotRecipient, "no key is wrapped to this account's encryption key")
	}
	if _, ok := keys[sender.Encryption.ID()]; !ok || len(keys) != len(h.To)+1 {
		return refuse(op, ErrRecipients, "the wrapped keys do not match the recipient list")
	}
	if all == nil {
		return nil
	}
	want := map[string]bool{sender.Encryption.ID(): true}
	var addrs []privateline.Address
	for _, b := range all {
		want[b.Encryption.ID()] = true
		addrs = append(addrs, b.Address)
	}
	slices.Sort(addrs)
	if !slices.Equal(addrs, h.To) || len(want) != len(keys) {
		return refuse(op, ErrRecipients, "the wrapped keys do not match the recipients' keys")
	}
	for id := range keys {
		if !want[id] {
			return refuse(op, ErrRecipients, "the wrapped keys do not match the recipients' keys")
		}
	}
	return nil
}

func expired(h *Header, now time.Time) bool {
	return !now.IsZero() && !h.ExpiresAt.IsZero() && Millis(now) >= Millis(h.ExpiresAt)
}

// openPlaintext decrypts, unpads and decodes, then checks the files list.
func openPlaintext(op string, key []byte, e *Envelope, aad []byte) (*Message, error) {
	pt, err := newGCM(key).Open(nil, e.Nonce, e.Ciphertext, aad)
	if err != nil {
		return nil, refuse(op, ErrDecrypt, "the message does not decrypt")
	}
	raw, err := Unpad(pt)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	m, err := DecodeMessage(raw)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	if !slices.Equal(m.fileIDs(), e.Header.Files) {
		return nil, refuse(op, ErrFilesMismatch, "the header's files differ from the attachments")
	}
	return m, nil
}
