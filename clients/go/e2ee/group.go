package e2ee

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/cjson"
)

// GroupKey is one epoch's key of a group (spec/e2ee.md §8) with the facts
// its signed distribution states. The key itself never prints.
type GroupKey struct {
	Group     string
	Epoch     int64
	From      privateline.Address   // the member who made and signed it
	Members   []privateline.Address // sorted
	CreatedAt time.Time
	key       []byte
}

func (g GroupKey) String() string {
	return fmt.Sprintf("e2ee.GroupKey{%s epoch %d, key [REDACTED]}", g.Group, g.Epoch)
}
func (g GroupKey) GoString() string             { return g.String() }
func (g GroupKey) Format(f fmt.State, _ rune)   { io.WriteString(f, g.String()) }
func (g GroupKey) LogValue() slog.Value         { return slog.StringValue(g.String()) }
func (g GroupKey) MarshalJSON() ([]byte, error) { return []byte(`"[REDACTED]"`), nil }

// GroupKeyOptions tune the checks of OpenGroupKey.
type GroupKeyOptions struct {
	// Current is the newest epoch the client already holds for the group;
	// a distribution for an epoch ≤ Current is refused as stale. Zero
	// accepts any epoch (a new device reading the group's history).
	Current int64
	// Members, if set, are the verified bundles of every member; the keys
	// must then be exactly theirs.
	Members []*KeyBundle
}

// groupKeySignedBody is the signed part of a group-key document: every
// member except "signature" and "keys" (spec/e2ee.md §8.1). The wraps are
// bound through key_digests, so a member's view holding only its own wrap
// still verifies.
func groupKeySignedBody(group string, epoch int64, from privateline.Address, members []privateline.Address, created int64, digests map[string][]byte) map[string]any {
	ms := make([]string, len(members))
	for i, a := range members {
		ms[i] = string(a)
	}
	return map[string]any{
		"v":           int64(Version),
		"suite":       SuitePL1,
		"group":       group,
		"epoch":       epoch,
		"from":        string(from),
		"members":     ms,
		"created_at":  created,
		"key_digests": keysValue(digests),
	}
}

func groupKeySigned(body map[string]any) []byte {
	c, _ := cjson.Marshal(body)
	return concat(domain(labelGroupKey), c)
}

// wrapDigest is SHA-256 of a wrapped group key, as listed in key_digests.
func wrapDigest(wrap []byte) []byte {
	d := sha256.Sum256(wrap)
	return d[:]
}

// SealGroupKey makes a fresh key for epoch of group and its distribution:
// one RSA-OAEP wrap per member (members must include from's own bundle),
// their digests in key_digests, signed by from. The document holds every
// member's wrap (the form uploaded to the server); a member receives a
// view with only its own (GroupKeyView). r supplies the key and the OAEP
// seeds; nil means crypto/rand.
func SealGroupKey(r io.Reader, from *PrivateKeys, group string, epoch int64, createdAt time.Time, members []*KeyBundle) (*GroupKey, []byte, error) {
	const op = "e2ee.SealGroupKey"
	if !tokenRE.MatchString(group) || epoch < 1 || epoch > cjson.MaxSafeInt {
		return nil, nil, refuse(op, ErrMalformed, "invalid group id or epoch")
	}
	if len(members) == 0 || len(members) > MaxMembers {
		return nil, nil, refuse(op, ErrMalformed, fmt.Sprintf("a group has 1 to %d members", MaxMembers))
	}
	byID := map[string]*EncryptionKey{}
	var addrs []privateline.Address
	self := false
	for _, b := range members {
		if _, dup := byID[b.Encryption.ID()]; dup || slices.Contains(addrs, b.Address) {
			return nil, nil, refuse(op, ErrRecipients, "a member is repeated or shares an encryption key")
		}
		byID[b.Encryption.ID()] = b.Encryption
		addrs = append(addrs, b.Address)
		self = self || (b.Address == from.address && b.Encryption.ID() == from.enc.ID())
	}
	if !self {
		return nil, nil, refuse(op, ErrNotMember, "the distributing member must be a member")
	}
	slices.Sort(addrs)
	key, err := readRand(r, KeySize)
	if err != nil {
		return nil, nil, err
	}
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	keys, digests := map[string][]byte{}, map[string][]byte{}
	for _, id := range ids {
		if keys[id], err = wrapKey(byID[id], r, key, labelGroupKey); err != nil {
			return nil, nil, err
		}
		digests[id] = wrapDigest(keys[id])
	}
	created := Millis(createdAt)
	body := groupKeySignedBody(group, epoch, from.address, addrs, created, digests)
	body["signature"] = encodeB64(from.sign(groupKeySigned(body)))
	body["keys"] = keysValue(keys)
	doc, err := cjson.Marshal(body)
	if err != nil {
		return nil, nil, privateline.E(op, privateline.Internal, err)
	}
	gk := &GroupKey{Group: group, Epoch: epoch, From: from.address, Members: addrs, CreatedAt: fromMillis(created), key: key}
	return gk, doc, nil
}

// GroupKeyView returns the member's view of a group-key document: the
// document with only keyID's wrap in "keys" (what the server hands that
// member). It checks only the structure it touches.
func GroupKeyView(doc []byte, keyID string) ([]byte, error) {
	const op = "e2ee.GroupKeyView"
	v, err := cjson.Parse(doc)
	m, ok := v.(map[string]any)
	if err != nil || !ok {
		return nil, refuse(op, ErrMalformed, "group key: not a JSON object")
	}
	keys, _ := m["keys"].(map[string]any)
	w, ok := keys[keyID]
	if !ok {
		return nil, refuse(op, ErrNotRecipient, "no wrap for this key id")
	}
	m["keys"] = map[string]any{keyID: w}
	out, err := cjson.Marshal(m)
	if err != nil {
		return nil, refuse(op, ErrMalformed, "group key: "+err.Error())
	}
	return out, nil
}

// OpenGroupKey verifies a group-key distribution signed by distributor and
// unwraps the key for me. doc is the full document or a member's view
// (only me's wrap in "keys"). Checks run in the order of spec/e2ee.md
// §12.3.
func OpenGroupKey(doc []byte, me *PrivateKeys, distributor *KeyBundle, opts GroupKeyOptions) (*GroupKey, error) {
	const op = "e2ee.OpenGroupKey"
	if len(doc) > MaxGroupKeyDoc {
		return nil, refuse(op, ErrTooLarge, "group key distribution is too large")
	}
	f := parseFields(doc)
	v := f.integer("v", true, 0, cjson.MaxSafeInt)
	suite := f.str("suite", true)
	if f.err == nil && (v != Version || suite != SuitePL1) {
		return nil, refuse(op, ErrUnknownSuite, "unknown group key suite or version")
	}
	group := f.str("group", true)
	epoch := f.integer("epoch", true, 1, cjson.MaxSafeInt)
	from := privateline.Address(f.str("from", true))
	members := f.strings("members", true, validAddress)
	created := f.integer("created_at", true, 0, cjson.MaxSafeInt)
	dm := f.object("key_digests", true)
	km := f.object("keys", true)
	sig := f.bytes("signature", true, SignatureSize, SignatureSize)
	var keys, digests map[string][]byte
	if f.err == nil {
		keys, f.err = parseKeys(km, 1, MaxMembers)
	}
	if f.err == nil {
		digests, f.err = parseDigests(dm)
	}
	if err := f.done(false); err != nil {
		return nil, refuse(op, ErrMalformed, "group key: "+err.Error())
	}
	if !tokenRE.MatchString(group) || !validAddress(string(from)) || len(members) == 0 || len(members) > MaxMembers || !strictlyAscending(members) {
		return nil, refuse(op, ErrMalformed, "group key: invalid group, from or members (sorted, unique)")
	}
	addrs := make([]privateline.Address, len(members))
	for i, m := range members {
		addrs[i] = privateline.Address(m)
	}
	if from != distributor.Address {
		return nil, refuse(op, ErrWrongSender, "the distribution is not from the given member")
	}
	body := groupKeySignedBody(group, epoch, from, addrs, created, digests)
	if !distributor.Identity.Verify(groupKeySigned(body), sig) {
		return nil, refuse(op, ErrBadSignature, "group key signature is invalid")
	}
	if !slices.Contains(addrs, from) {
		return nil, refuse(op, ErrNotMember, "the distributing member is not a member")
	}
	if _, ok := digests[distributor.Encryption.ID()]; !ok || len(digests) != len(addrs) {
		return nil, refuse(op, ErrRecipients, "the key digests do not match the members")
	}
	if opts.Members != nil {
		var got []privateline.Address
		want := map[string]bool{}
		for _, b := range opts.Members {
			got = append(got, b.Address)
			want[b.Encryption.ID()] = true
		}
		slices.Sort(got)
		ok := slices.Equal(got, addrs) && len(want) == len(digests)
		for id := range digests {
			ok = ok && want[id]
		}
		if !ok {
			return nil, refuse(op, ErrRecipients, "the key digests do not match the members' keys")
		}
	}
	for id, w := range keys {
		if d, ok := digests[id]; !ok || !bytes.Equal(d, wrapDigest(w)) {
			return nil, refuse(op, ErrWrapMismatch, "a wrapped key does not match its signed digest")
		}
	}
	if _, ok := keys[me.enc.ID()]; !ok || !slices.Contains(addrs, me.address) {
		return nil, refuse(op, ErrNotRecipient, "this account is not a member of this epoch")
	}
	if epoch <= opts.Current {
		return nil, refuse(op, ErrStaleEpoch, "the distribution is for an epoch the client already has")
	}
	key, err := me.unwrap(keys[me.enc.ID()], labelGroupKey)
	if err != nil || len(key) != KeySize {
		return nil, refuse(op, ErrDecrypt, "cannot unwrap the group key")
	}
	return &GroupKey{Group: group, Epoch: epoch, From: from, Members: addrs, CreatedAt: fromMillis(created), key: key}, nil
}

// parseDigests reads key_digests: 1 to MaxMembers key ids, each mapped to
// base64 of a 32-byte SHA-256.
func parseDigests(m map[string]any) (map[string][]byte, error) {
	if len(m) < 1 || len(m) > MaxMembers {
		return nil, fmt.Errorf("key_digests must hold 1 to %d entries", MaxMembers)
	}
	out := make(map[string][]byte, len(m))
	for id, v := range m {
		s, ok := v.(string)
		if !keyIDRE.MatchString(id) || !ok {
			return nil, fmt.Errorf("key_digests must map key ids to base64 strings")
		}
		d, ok := decodeB64(s)
		if !ok || len(d) != sha256.Size {
			return nil, fmt.Errorf("a key digest must be base64 of 32 bytes")
		}
		out[id] = d
	}
	return out, nil
}

// GroupOpenOptions tune the checks of OpenGroup.
type GroupOpenOptions struct {
	// Now, if set, refuses messages whose expires_at is not after it.
	Now time.Time
	// Latest is the newest epoch's key the client holds, if newer than the
	// message's; a message in an older epoch sent at or after Latest's
	// created_at is refused as stale.
	Latest *GroupKey
}

// groupSigned is the byte string a group envelope's signature covers:
// "privateline/v1/group-envelope" ‖ 0x00 ‖ SHA-256(aad) ‖ SHA-256(salt ‖ nonce ‖ ciphertext).
func groupSigned(aad, salt, nonce, ct []byte) []byte {
	h1 := sha256.Sum256(aad)
	h2 := sha256.Sum256(concat(salt, nonce, ct))
	return concat(domain(labelGroupEnvelope), h1[:], h2[:])
}

func messageKey(gk *GroupKey, salt []byte) []byte {
	mk, err := hkdf.Key(sha256.New, gk.key, salt, labelGroupMessage, KeySize)
	if err != nil {
		panic(err) // fixed sizes; cannot fail
	}
	return mk
}

// SealGroup encrypts d.Message to the group of gk: mk = HKDF-SHA256(group
// key, salt, "privateline/v1/group-message", 32) with a fresh 32-byte salt.
// r supplies the id (if d.ID is empty), salt and nonce; nil means crypto/rand.
func SealGroup(r io.Reader, sender *PrivateKeys, gk *GroupKey, d Draft) (*Envelope, error) {
	const op = "e2ee.SealGroup"
	if !slices.Contains(gk.Members, sender.address) {
		return nil, refuse(op, ErrNotMember, "the sender is not a member of this epoch")
	}
	h := Header{V: Version, Suite: SuitePL1, ID: d.ID, From: sender.address, Group: gk.Group, Epoch: gk.Epoch,
		Conversation: gk.Group, SentAt: d.SentAt, ExpiresAt: d.ExpiresAt}
	aad, pt, err := h.prepare(op, r, d)
	if err != nil {
		return nil, err
	}
	salt, err := readRand(r, GroupSaltSize)
	if err != nil {
		return nil, err
	}
	nonce, err := readRand(r, NonceSize)
	if err != nil {
		return nil, err
	}
	mk := messageKey(gk, salt)
	defer clear(mk)
	e := &Envelope{Header: h, Salt: salt, Nonce: nonce}
	e.Ciphertext = newGCM(mk).Seal(nil, nonce, pt, aad)
	e.Signature = sender.sign(groupSigned(aad, salt, nonce, e.Ciphertext))
	return e, nil
}

// OpenGroup verifies and decrypts a group envelope with the key of its
// epoch. sender must be the pinned bundle of the header's "from".
func OpenGroup(e *Envelope, gk *GroupKey, sender *KeyBundle, opts GroupOpenOptions) (*Message, error) {
	const op = "e2ee.OpenGroup"
	h := &e.Header
	if !h.IsGroup() {
		return nil, refuse(op, ErrMalformed, "not a group envelope")
	}
	aad, err := h.AAD()
	if err != nil {
		return nil, privateline.E(op, err)
	}
	if h.Group != gk.Group {
		return nil, refuse(op, ErrWrongGroup, "the envelope is for another group")
	}
	if h.Epoch != gk.Epoch {
		return nil, refuse(op, ErrWrongEpoch, "the envelope is for another epoch")
	}
	if h.From != sender.Address {
		return nil, refuse(op, ErrWrongSender, "the envelope is not from the given sender")
	}
	if !sender.Identity.Verify(groupSigned(aad, e.Salt, e.Nonce, e.Ciphertext), e.Signature) {
		return nil, refuse(op, ErrBadSignature, "envelope signature is invalid")
	}
	if !slices.Contains(gk.Members, h.From) {
		return nil, refuse(op, ErrNotMember, "the sender is not a member of this epoch")
	}
	if l := opts.Latest; l != nil && l.Group == gk.Group && l.Epoch > gk.Epoch && Millis(h.SentAt) >= Millis(l.CreatedAt) {
		return nil, refuse(op, ErrStaleEpoch, "the message uses an old epoch after the group moved on")
	}
	if expired(h, opts.Now) {
		return nil, refuse(op, ErrExpired, "the message has expired")
	}
	mk := messageKey(gk, e.Salt)
	defer clear(mk)
	return openPlaintext(op, mk, e, aad)
}
