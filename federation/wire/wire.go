// Package wire is the byte format of PrivateLine federation
// (spec/federation.md §7–§10): the canonical encoding of transactions and
// receipts, their signing by the origin server's identity key, and Verify,
// the one function that decides whether bytes received from a peer are a
// transaction or receipt this server accepts. Every federation entry point
// calls Verify; nothing else parses federation frames.
//
// Replay protection needs storage and is the caller's (Replay, Dedupe),
// after Verify and in the same synced commit as the entries.
package wire

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/cjson"
	"github.com/privateline/privateline/serverkey"
)

// Version is the protocol version of this package; ALPN is its TLS
// application protocol (spec/federation.md §5).
const (
	Version = 1
	ALPN    = "privateline-fed/1"
)

// Signature labels (spec/federation.md §3). The signed bytes are
// UTF-8(label) ‖ 0x00 ‖ canonical JSON of the message without "signature",
// except under LabelTransaction: there the SHA-256 digest of that JSON
// takes its place (signedInput).
const (
	LabelTransaction = "privateline/v1/federation-transaction-sha256"
	LabelReceipt     = "privateline/v1/federation-receipt"
	LabelKeyAnswer   = "privateline/v1/federation-key-answer"
	LabelFileAnswer  = "privateline/v1/federation-file-answer"
	// Tree-head witnessing (§12.6): the witness_answer frame. The
	// co-signature inside it has its own label, keylog.LabelWitness.
	LabelWitnessAnswer = "privateline/v1/federation-witness-answer"
	// LabelGroupAnswer signs a group_answer (spec/federation.md §12.1).
	LabelGroupAnswer = "privateline/v1/federation-group-answer"
)

// Type is a message's "type" member.
type Type string

// The types this version implements. spec/federation.md §12 defines the
// shapes of later types; Verify refuses them (unknown_type) until they are
// implemented here.
const (
	TypeEnvelopes  Type = "envelopes"   // direct envelopes for users of the destination
	TypeReceipt    Type = "receipt"     // the destination's answer to a transaction
	TypeKeyRequest Type = "key_request" // key look-ups of the destination's users (§12.5)
	TypeKeyAnswer  Type = "key_answer"  // the answer to a key_request
	TypeReadMarks  Type = "read_marks"  // origin's users read messages of destination's users (§12.2)
	TypeDeletes    Type = "deletes"     // origin's users deleted their messages for everyone (§12.3)
	// Files across servers (§12.4): a request for one file, answered by a
	// signed file_answer followed by the file's raw bytes on the stream.
	TypeFileRequest Type = "file_request"
	TypeFileAnswer  Type = "file_answer"
	// Tree-head witnessing (§12.6): origin asks destination to co-sign
	// origin's directory head; answered by a witness_answer.
	TypeWitness       Type = "witness"
	TypeWitnessAnswer Type = "witness_answer"

	// Groups across servers (spec/federation.md §12.1).
	TypeGroupEnvelopes Type = "group_envelopes" // the group's server fans a group envelope out to members' servers
	TypeGroupUpdates   Type = "group_updates"   // the group's server sends its state to members' servers
	TypeGroupRequest   Type = "group_request"   // a member's server asks the group's server to make a change (request)
	TypeGroupAnswer    Type = "group_answer"    // the answer to a group_request
	// TypeGroupLeaves: origin's users whose accounts were deleted leave
	// groups of the destination (§12.1, leave.go); answered by a receipt.
	TypeGroupLeaves Type = "group_leaves"
)

// Group limits of spec/federation.md §12.1.
const (
	// MaxGroupTo caps the "to" of a group_envelopes entry (a group's
	// members, spec/e2ee.md §11).
	MaxGroupTo = 512
	// MaxGroupBody caps the decoded "body" of a group_request: the largest
	// client request forwarded, a group key document (spec/e2ee.md §8.1).
	MaxGroupBody = 512 << 10
	// MaxGroupMessage caps an answer's "message".
	MaxGroupMessage = 512
)

// Group request operations (spec/federation.md §12.1). GroupOpState is
// a server's pull of the group's state for its replica: no requester,
// target or body.
var GroupOps = []string{"add", "key", "meta", "remove", "retention", "role", "send", GroupOpState}

// GroupOpState is the op of a replica's resync (spec §12.1).
const GroupOpState = "state"

// MaxKeyRequests caps the entries of a key_request (spec/federation.md
// §12.5).
const MaxKeyRequests = 64

// answerType is the type that answers a transaction of type t.
func answerType(t Type) Type {
	switch t {
	case TypeKeyRequest:
		return TypeKeyAnswer
	case TypeFileRequest:
		return TypeFileAnswer
	}
	if t == TypeWitness {
		return TypeWitnessAnswer
	}
	if t == TypeGroupRequest {
		return TypeGroupAnswer
	}
	return TypeReceipt
}

// Limits are the caps Verify enforces (spec/federation.md §11).
type Limits struct {
	MaxFrame    int           // bytes of one frame's payload (a whole transaction or receipt)
	MaxEntries  int           // entries of a transaction, results of a receipt
	MaxEnvelope int           // decoded bytes of one envelope: the client API's limit
	MaxSkew     time.Duration // freshness window either side of the receiver's clock
}

// The protocol's limits for version 1.
const (
	MaxFrame    = 4 << 20
	MaxEntries  = 256
	MaxEnvelope = 256 << 10 // = envelope.MaxSize, spec/e2ee.md §11
	MaxSkew     = 5 * time.Minute
)

// DefaultLimits returns the limits of spec/federation.md §11.
func DefaultLimits() Limits {
	return Limits{MaxFrame: MaxFrame, MaxEntries: MaxEntries, MaxEnvelope: MaxEnvelope, MaxSkew: MaxSkew}
}

// Header holds the members every signed federation message has.
type Header struct {
	Origin      privateline.ServerName // the signer
	Destination privateline.ServerName // the server it is for
	TxnID       string                 // 32 lower-case hex digits
	CreatedAt   int64                  // Unix ms, set by the signer
	Signature   []byte                 // 64 bytes; set by Sign, checked by Verify
}

// Entry is one entry of a transaction. In "envelopes": the envelope's id
// (its header "id") and the envelope exactly as the client sent it. In
// "key_request": the address looked up and, if not zero, the tree size
// the consistency proof is to start from. In "read_marks": Reader read
// Message at At; in "deletes": From deleted Message at At (Unix ms).
type Entry struct {
	ID       string
	Envelope []byte

	Address privateline.Address
	Since   uint64

	Message string
	Reader  privateline.Address
	From    privateline.Address
	At      int64

	// file_request (§12.4): File, listed by envelope Message, for
	// Requester (a user of the origin).
	File      string
	Requester privateline.Address
	// "witness" (§12.6): Head is the canonical JSON of origin's signed
	// tree head; with Since > 0, Consistency is the proof from Since to
	// the head's size (32-byte hashes).
	Head        []byte
	Consistency [][]byte

	// Groups (spec §12.1). group_envelopes: Group, Envelope and To (the
	// members on the destination); group_updates: Group and State (the
	// canonical JSON of the group's state object); group_request: Group,
	// Op, Requester (a user of origin), Target (the member a "remove" or
	// "role" names) and Body (the client's request body as it sent it).
	Group  string
	To     []privateline.Address
	State  []byte
	Op     string
	Target privateline.Address
	Body   []byte

	// group_leaves (§12.1, leave.go): Member, a user of origin whose
	// account was deleted, leaves Group, where it joined at Joined.
	Member privateline.Address
	Joined int64

	// group_request "state" (§12.1, "Lost epochs"): SeenEpoch, if not
	// zero, is the highest epoch of the group the requesting replica
	// ever held, and SeenEra the era of the state it first held it in.
	SeenEpoch int64
	SeenEra   uint64
}

// Transaction is a signed batch from Origin to Destination.
type Transaction struct {
	Header
	Type    Type
	Entries []Entry
	// After (optional, outbox types only: Queued) is the txn id of the
	// transaction this one follows, still unanswered when this one was
	// sent; the receiver commits this one only after it (spec §14).
	After string
}

// Queued reports whether transactions of type t come from an outbox
// (spec §14): the types that may name the transaction they follow.
func (t Type) Queued() bool {
	switch t {
	case TypeEnvelopes, TypeReadMarks, TypeDeletes, TypeGroupEnvelopes, TypeGroupUpdates, TypeGroupLeaves:
		return true
	}
	return false
}

// Status is the outcome of one entry in a receipt.
type Status string

// The statuses of spec/federation.md §8.
const (
	Accepted  Status = "accepted"  // committed for its recipients
	Duplicate Status = "duplicate" // committed earlier (same origin and envelope id)
	Refused   Status = "refused"   // will never be accepted; Error says why
)

// Result is the destination's answer for one entry.
//
// In a receipt: Status, and Error (an entry refusal code, spec §10.2) only
// with Refused. In a key_answer: either Error ("unknown_user", "bad_since")
// or Lookup, the canonical JSON of the client API's lookup answer, and,
// when the entry asked with Since, Consistency, the proof from Since to
// the lookup's tree size.
type Result struct {
	ID     string
	Status Status
	Error  string

	Lookup      []byte
	Consistency [][]byte // 32-byte hashes; non-nil (maybe empty) only when asked

	// file_answer (§12.4): either Error ("unknown_file") or the file's id,
	// its size in bytes (≥ 1) and its SHA-256; the bytes follow the frame.
	File   string
	Size   int64
	SHA256 []byte
	// In a witness_answer (§12.6): either Cosignature, the canonical JSON
	// of the co-signature, or Error, with TreeSize (> 0) the size of the
	// head the witness holds for "need_proof" and "log_rollback".
	Cosignature []byte
	TreeSize    uint64

	// In a group_answer: HTTPStatus, the client API's status for the
	// request (200–599); with a status ≥ 400 Error (the client API's
	// error code) and Message; State, the group's state after the change
	// (canonical JSON), Recipients (the members on the requester's server
	// a "send" is for) and Replayed (the request was applied before).
	HTTPStatus int
	Message    string
	State      []byte
	Recipients []privateline.Address
	Replayed   bool
}

// Receipt is the destination's signed answer to a transaction: Type
// "receipt" for "envelopes", "key_answer" for "key_request" (its zero
// value is "receipt"). Its Origin is the signer, the transaction's
// destination; its Destination is the transaction's origin; TxnID is the
// transaction's.
type Receipt struct {
	Header
	Type    Type
	Results []Result
}

func (r *Receipt) typ() Type {
	if r.Type == "" {
		return TypeReceipt
	}
	return r.Type
}

// Message is a *Transaction or a *Receipt.
type Message interface {
	header() *Header
	label() string
	body() map[string]any
}

func (t *Transaction) header() *Header { return &t.Header }
func (t *Transaction) label() string   { return LabelTransaction }
func (t *Transaction) body() map[string]any {
	entries := make([]any, len(t.Entries))
	for i, e := range t.Entries {
		switch t.Type {
		case TypeReadMarks:
			entries[i] = map[string]any{"id": e.ID, "message": e.Message, "read_at": e.At, "reader": string(e.Reader)}
			continue
		case TypeDeletes:
			entries[i] = map[string]any{"deleted_at": e.At, "from": string(e.From), "id": e.ID, "message": e.Message}
			continue
		case TypeFileRequest:
			entries[i] = map[string]any{"file": e.File, "id": e.ID, "message": e.Message, "requester": string(e.Requester)}
			continue
		}
		if t.Type == TypeWitness {
			entries[i] = witnessEntry(e)
			continue
		}
		if t.Type == TypeGroupLeaves {
			entries[i] = leaveEntryBody(e) // leave.go
			continue
		}
		if t.Type == TypeGroupEnvelopes || t.Type == TypeGroupUpdates || t.Type == TypeGroupRequest {
			entries[i] = groupEntryBody(t.Type, e)
			continue
		}
		if t.Type == TypeKeyRequest {
			m := map[string]any{"address": string(e.Address), "id": e.ID}
			if e.Since > 0 {
				m["since"] = int64(e.Since)
			}
			entries[i] = m
			continue
		}
		entries[i] = map[string]any{"envelope": b64.EncodeToString(e.Envelope), "id": e.ID}
	}
	m := t.Header.members(t.Type)
	m["entries"] = entries
	if t.After != "" {
		m["after"] = t.After
	}
	return m
}

func (r *Receipt) header() *Header { return &r.Header }
func (r *Receipt) label() string {
	switch r.typ() {
	case TypeKeyAnswer:
		return LabelKeyAnswer
	case TypeFileAnswer:
		return LabelFileAnswer
	}
	if r.typ() == TypeWitnessAnswer {
		return LabelWitnessAnswer
	}
	if r.typ() == TypeGroupAnswer {
		return LabelGroupAnswer
	}
	return LabelReceipt
}
func (r *Receipt) body() map[string]any {
	results := make([]any, len(r.Results))
	for i, x := range r.Results {
		if r.typ() == TypeGroupAnswer {
			results[i] = groupResultBody(x)
			continue
		}
		m := map[string]any{"id": x.ID}
		if r.typ() == TypeReceipt {
			m["status"] = string(x.Status)
		}
		if x.Error != "" {
			m["error"] = x.Error
		}
		if x.Lookup != nil {
			// Not canonical JSON here fails in Sign's own decode.
			lv, err := cjson.Parse(x.Lookup)
			if err != nil {
				lv = string(x.Lookup)
			}
			m["lookup"] = lv
		}
		if r.typ() == TypeFileAnswer && x.Error == "" {
			m["file"] = x.File
			m["size"] = x.Size
			m["sha256"] = b64.EncodeToString(x.SHA256)
		}
		if x.Consistency != nil {
			hs := make([]any, len(x.Consistency))
			for j, h := range x.Consistency {
				hs[j] = b64.EncodeToString(h)
			}
			m["consistency"] = hs
		}
		if x.Cosignature != nil {
			m["cosignature"] = rawObject(x.Cosignature)
		}
		if x.TreeSize > 0 {
			m["tree_size"] = int64(x.TreeSize)
		}
		results[i] = m
	}
	m := r.Header.members(r.typ())
	m["results"] = results
	return m
}

func (h *Header) members(t Type) map[string]any {
	return map[string]any{
		"v":           int64(Version),
		"type":        string(t),
		"origin":      string(h.Origin),
		"destination": string(h.Destination),
		"txn_id":      h.TxnID,
		"created_at":  h.CreatedAt,
	}
}

var b64 = base64.StdEncoding.Strict()

// signingInput is the signed bytes of body (which has no "signature"
// member): signedInput of its canonical JSON.
func signingInput(label string, body map[string]any) ([]byte, error) {
	c, err := cjson.Marshal(body)
	if err != nil {
		return nil, err
	}
	return signedInput(label, c), nil
}

// signedInput is UTF-8(label) ‖ 0x00 ‖ the canonical JSON given in parts,
// or for a transaction UTF-8(label) ‖ 0x00 ‖ SHA-256(that JSON)
// (spec/federation.md §7.2). A transaction carries up to 4 MiB of
// envelopes, and Ed25519 hashes what it signs twice with SHA-512 and what
// it verifies once; the digest makes that one SHA-256 pass on each side,
// which hardware does at several times the speed. Every other message is
// small and signed whole.
func signedInput(label string, parts ...[]byte) []byte {
	in := append([]byte(label), 0)
	if label == LabelTransaction {
		h := sha256.New()
		for _, p := range parts {
			h.Write(p)
		}
		return h.Sum(in)
	}
	for _, p := range parts {
		in = append(in, p...)
	}
	return in
}

// Sign signs m with the origin server's identity key, sets its Signature
// and returns the frame payload: the canonical JSON of the signed message.
// It refuses a message that a receiver would refuse for its shape (the
// checks of Verify that need no peer, clock or key).
func Sign(m Message, k *serverkey.PrivateKey) ([]byte, error) {
	if t, ok := m.(*Transaction); ok && t.Type == TypeEnvelopes {
		return signEnvelopes(t, k)
	}
	if r, ok := m.(*Receipt); ok {
		r.Type = r.typ()
	}
	body := m.body()
	in, err := signingInput(m.label(), body)
	if err != nil {
		return nil, fmt.Errorf("federation: sign: %w", err)
	}
	sig := k.Sign(in)
	body["signature"] = b64.EncodeToString(sig)
	raw, err := cjson.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("federation: sign: %w", err)
	}
	if _, _, err := decode(raw, Limits{MaxFrame: len(raw)}); err != nil {
		return nil, fmt.Errorf("federation: sign: %w", err)
	}
	m.header().Signature = sig
	return raw, nil
}

// Peer is the authenticated server at the other end of a link: the name
// and key its TLS certificate was checked against (spec/federation.md §4).
type Peer struct {
	Name privateline.ServerName
	Key  ed25519.PublicKey
}

// Verify checks that raw is a transaction or receipt from peer to me that
// is acceptable at now, in this order, and returns it (*Transaction or
// *Receipt); the first failing check names the *Refusal
// (spec/federation.md §9):
//
//  1. size of raw > MaxFrame → too_large;
//  2. not canonical JSON → malformed (not JSON, truncated) or non_canonical;
//  3. "v" ≠ Version → unknown_version;
//  4. "type" not implemented → unknown_type; then member shapes → malformed;
//  5. "origin" ≠ peer.Name → wrong_origin;
//  6. "destination" ≠ me → misaddressed;
//  7. "created_at" outside now ± MaxSkew → stale / future;
//  8. more than MaxEntries entries or results → too_many_entries; an
//     envelope over MaxEnvelope → too_large;
//  9. the signature under peer.Key → bad_signature.
//
// Replay (the same origin and txn id or envelope id again) is the caller's
// check, after Verify: see Dedupe.
func Verify(raw []byte, peer Peer, me privateline.ServerName, now time.Time, lim Limits) (Message, error) {
	m, body, err := decode(raw, lim)
	if err != nil {
		return nil, err
	}
	h := m.header()
	if h.Origin != peer.Name {
		return nil, refuse(WrongOrigin, "origin %q is not the authenticated peer %q", h.Origin, peer.Name)
	}
	if h.Destination != me {
		return nil, refuse(Misaddressed, "destination %q is not this server (%q)", h.Destination, me)
	}
	created := time.UnixMilli(h.CreatedAt)
	if created.Before(now.Add(-lim.MaxSkew)) {
		return nil, refuse(Stale, "created %v before now", now.Sub(created).Round(time.Millisecond))
	}
	if created.After(now.Add(lim.MaxSkew)) {
		return nil, refuse(Future, "created %v after now", created.Sub(now).Round(time.Millisecond))
	}
	switch m := m.(type) {
	case *Transaction:
		if len(m.Entries) > lim.MaxEntries || m.Type == TypeKeyRequest && len(m.Entries) > MaxKeyRequests ||
			m.Type == TypeFileRequest && len(m.Entries) > 1 || m.Type == TypeGroupRequest && len(m.Entries) > 1 {
			return nil, refuse(TooManyEntries, "%d entries", len(m.Entries))
		}
		for i, e := range m.Entries {
			if len(e.Envelope) > lim.MaxEnvelope {
				return nil, refuse(TooLarge, "entry %d: envelope of %d bytes, at most %d", i, len(e.Envelope), lim.MaxEnvelope)
			}
			if len(e.Body) > MaxGroupBody {
				return nil, refuse(TooLarge, "entry %d: body of %d bytes, at most %d", i, len(e.Body), MaxGroupBody)
			}
		}
	case *Receipt:
		if len(m.Results) > lim.MaxEntries {
			return nil, refuse(TooManyEntries, "%d results, at most %d", len(m.Results), lim.MaxEntries)
		}
	}
	in, ok := unsignedInput(m.label(), raw, h.Signature)
	if !ok && body == nil { // cannot happen either: decodeEnvelopes read it there
		return nil, refuse(Malformed, "no signature member where the canonical form has it")
	}
	if !ok { // cannot happen: raw is canonical and has a signature member
		delete(body, "signature")
		if in, err = signingInput(m.label(), body); err != nil {
			return nil, refuse(Malformed, "%v", err)
		}
	}
	if len(peer.Key) != ed25519.PublicKeySize || !ed25519.Verify(peer.Key, in, h.Signature) {
		return nil, refuse(BadSignature, "signature does not verify under %s's key", peer.Name)
	}
	return m, nil
}

// sigMember opens the signature member of a canonical message. The
// top-level "signature" comes after "entries" or "results" and "origin",
// and before "txn_id", "type" and "v", whose values (32 hex digits, a type
// name, an integer) cannot contain it: in a canonical frame its last
// occurrence is the top-level member.
const sigMember = `,"signature":"`

// unsignedInput returns the signed bytes of raw, a canonical message
// (decode accepted it) signed with sig: signedInput of raw without its
// signature member — what signingInput computes from the decoded
// members, without encoding them again. ok is false if raw does not have
// that member where it must be.
func unsignedInput(label string, raw, sig []byte) (in []byte, ok bool) {
	i := bytes.LastIndex(raw, []byte(sigMember))
	if i < 0 {
		return nil, false
	}
	enc := b64.EncodeToString(sig)
	j := i + len(sigMember) + len(enc) // the closing quote
	if j >= len(raw) || string(raw[i+len(sigMember):j]) != enc || raw[j] != '"' {
		return nil, false
	}
	return signedInput(label, raw[:i], raw[j+1:]), true
}

// signEnvelopes is Sign for an envelopes transaction, the bulk of the
// traffic: the canonical members are written directly (each envelope
// base64-encoded into the output once), the signature is spliced in, and
// the checks a receiver's decode makes are made on the fields instead of
// parsing the output again. TestSignEnvelopesCanonical holds it to the
// generic encoding.
func signEnvelopes(t *Transaction, k *serverkey.PrivateKey) ([]byte, error) {
	fail := func(format string, args ...any) ([]byte, error) {
		return nil, fmt.Errorf("federation: sign: %w", refuse(Malformed, format, args...))
	}
	if _, err := privateline.ParseServerName(string(t.Origin)); err != nil {
		return fail("origin %q is not a server name", t.Origin)
	}
	if _, err := privateline.ParseServerName(string(t.Destination)); err != nil {
		return fail("destination %q is not a server name", t.Destination)
	}
	if !IsID(t.TxnID) {
		return fail("txn_id %q is not 32 lower-case hex digits", t.TxnID)
	}
	if t.CreatedAt < 0 || t.CreatedAt > cjson.MaxSafeInt {
		return fail("created_at %d out of range", t.CreatedAt)
	}
	if len(t.Entries) == 0 {
		return fail("no entries")
	}
	size := 320 + len(t.Origin) + len(t.Destination) // the members around the entries (≤ 289 bytes besides the names)
	seen := make(map[string]bool, len(t.Entries))
	for i, e := range t.Entries {
		if !IsID(e.ID) || seen[e.ID] {
			return fail("entries[%d]: id %q is not 32 lower-case hex digits used once", i, e.ID)
		}
		if len(e.Envelope) == 0 || len(e.Envelope) > MaxFrame {
			return fail("entries[%d]: envelope of %d bytes", i, len(e.Envelope))
		}
		seen[e.ID] = true
		size += b64.EncodedLen(len(e.Envelope)) + 64
	}
	if t.After != "" && (!IsID(t.After) || t.After == t.TxnID) {
		return fail("after %q is not another txn id", t.After)
	}
	b := make([]byte, 0, size)
	b = append(b, '{')
	if t.After != "" {
		b = append(b, `"after":"`...)
		b = append(b, t.After...)
		b = append(b, `",`...)
	}
	b = append(b, `"created_at":`...)
	b = strconv.AppendInt(b, t.CreatedAt, 10)
	b = append(b, `,"destination":`...)
	b, _ = cjson.AppendString(b, string(t.Destination)) // a server name: valid UTF-8
	b = append(b, `,"entries":[`...)
	for i, e := range t.Entries {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"envelope":"`...)
		b = b64.AppendEncode(b, e.Envelope)
		b = append(b, `","id":"`...)
		b = append(b, e.ID...)
		b = append(b, `"}`...)
	}
	b = append(b, `],"origin":`...)
	b, _ = cjson.AppendString(b, string(t.Origin))
	// The signature member goes here: its room is kept, the bytes around
	// it are signed, and it is filled in — the frame is written once.
	at := len(b)
	b = append(b, sigMember...)
	b = b64.AppendEncode(b, make([]byte, ed25519.SignatureSize))
	b = append(b, '"')
	end := len(b)
	b = append(b, `,"txn_id":"`...)
	b = append(b, t.TxnID...)
	b = append(b, `","type":"envelopes","v":`...)
	b = strconv.AppendInt(b, Version, 10)
	b = append(b, '}')

	sig := k.Sign(signedInput(LabelTransaction, b[:at], b[end:]))
	b64.Encode(b[at+len(sigMember):end-1], sig)
	t.Signature = sig
	return b, nil
}

// decode performs checks 1–4 of Verify and returns the message and its
// parsed members (nil for an envelopes transaction read by its fast path,
// decodeEnvelopes).
func decode(raw []byte, lim Limits) (Message, map[string]any, error) {
	if len(raw) > lim.MaxFrame {
		return nil, nil, refuse(TooLarge, "%d bytes, at most %d", len(raw), lim.MaxFrame)
	}
	if t, ok := decodeEnvelopes(raw); ok { // fastdecode.go
		return t, nil, nil
	}
	return decodeGeneric(raw)
}

// decodeGeneric is decode for any message: checks 2–4 on the parsed
// value.
func decodeGeneric(raw []byte) (Message, map[string]any, error) {
	// One pass parses and checks the canonical form (no re-encoding).
	v, err := cjson.ParseCanonical(raw)
	if err == cjson.ErrNotCanonical {
		return nil, nil, refuse(NonCanonical, "not in canonical JSON form")
	} else if err != nil {
		return nil, nil, refuse(Malformed, "%v", err)
	}
	body, ok := v.(map[string]any)
	if !ok {
		return nil, nil, refuse(Malformed, "not a JSON object")
	}
	o := cjson.NewObject(body)
	ver := o.Int("v", true, 0, cjson.MaxSafeInt)
	if err := o.Err(); err != nil {
		return nil, nil, refuse(Malformed, "%v", err)
	}
	if ver != Version {
		return nil, nil, refuse(UnknownVersion, "version %d, this server speaks %d", ver, Version)
	}
	typ := Type(o.String("type", true))
	if err := o.Err(); err != nil {
		return nil, nil, refuse(Malformed, "%v", err)
	}
	var h Header
	var m Message
	switch typ {
	case TypeEnvelopes, TypeKeyRequest, TypeReadMarks, TypeDeletes, TypeFileRequest, TypeWitness,
		TypeGroupEnvelopes, TypeGroupUpdates, TypeGroupRequest, TypeGroupLeaves:
		t := &Transaction{Type: typ}
		t.Entries = readEntries(o, typ)
		if typ == TypeWitness && o.Err() == nil && len(t.Entries) != 1 {
			o.Fail("entries", "exactly one entry in a witness request")
		}
		if o.Err() == nil && o.Has("after") {
			if !typ.Queued() {
				o.Fail("after", "absent: only queued types name the transaction they follow")
			} else {
				t.After = hexID(o, "after")
			}
		}
		m = t
	case TypeReceipt, TypeKeyAnswer, TypeFileAnswer, TypeWitnessAnswer, TypeGroupAnswer:
		r := &Receipt{Type: typ}
		r.Results = readResults(o, typ)
		m = r
	default:
		return nil, nil, refuse(UnknownType, "type %q", typ)
	}
	h.Origin = serverName(o, "origin")
	h.Destination = serverName(o, "destination")
	h.TxnID = hexID(o, "txn_id")
	if t, ok := m.(*Transaction); ok && t.After != "" && t.After == h.TxnID && o.Err() == nil {
		o.Fail("after", "another transaction's txn_id")
	}
	h.CreatedAt = o.Int("created_at", true, 0, cjson.MaxSafeInt)
	h.Signature = o.Bytes("signature", true, ed25519.SignatureSize, ed25519.SignatureSize)
	if err := o.Done(false); err != nil {
		return nil, nil, refuse(Malformed, "%v", err)
	}
	*m.header() = h
	return m, body, nil
}

func serverName(o *cjson.Object, name string) privateline.ServerName {
	s := o.String(name, true)
	if o.Err() != nil {
		return ""
	}
	n, err := privateline.ParseServerName(s)
	if err != nil {
		o.Fail(name, "a server name")
	}
	return n
}

// IsID reports whether s is an id of the protocol: 32 lower-case hex digits.
func IsID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func hexID(o *cjson.Object, name string) string {
	s := o.String(name, true)
	if o.Err() == nil && !IsID(s) {
		o.Fail(name, "32 lower-case hex digits")
	}
	return s
}

// items reads a non-empty array member of objects with unique "id"s and
// calls each for every element's reader.
func items(o *cjson.Object, name string, each func(*cjson.Object)) {
	a := o.Array(name, true)
	if o.Err() != nil {
		return
	}
	if len(a) == 0 {
		o.Fail(name, "a non-empty array")
		return
	}
	seen := make(map[string]bool, len(a))
	for i, v := range a {
		e := cjson.NewObject(v)
		id := hexID(e, "id")
		each(e)
		if err := e.Done(false); err != nil {
			o.Fail(fmt.Sprintf("%s[%d]", name, i), fmt.Sprintf("well formed (%v)", err))
			return
		}
		if seen[id] {
			o.Fail(fmt.Sprintf("%s[%d]", name, i), "an entry with an id not used before in the message")
			return
		}
		seen[id] = true
	}
}

func readEntries(o *cjson.Object, t Type) []Entry {
	var es []Entry
	items(o, "entries", func(e *cjson.Object) {
		switch t {
		case TypeReadMarks:
			es = append(es, Entry{ID: e.String("id", true), Message: hexID(e, "message"),
				At: e.Int("read_at", true, 0, cjson.MaxSafeInt), Reader: address(e, "reader")})
			return
		case TypeDeletes:
			es = append(es, Entry{ID: e.String("id", true), Message: hexID(e, "message"),
				At: e.Int("deleted_at", true, 0, cjson.MaxSafeInt), From: address(e, "from")})
			return
		case TypeFileRequest:
			es = append(es, Entry{ID: e.String("id", true), File: hexID(e, "file"), Message: hexID(e, "message"),
				Requester: address(e, "requester")})
			return
		}
		if t == TypeWitness {
			es = append(es, readWitnessEntry(e))
			return
		}
		if t == TypeGroupLeaves {
			es = append(es, readLeaveEntry(e)) // leave.go
			return
		}
		if t == TypeGroupEnvelopes || t == TypeGroupUpdates || t == TypeGroupRequest {
			es = append(es, readGroupEntry(e, t))
			return
		}
		if t == TypeKeyRequest {
			x := Entry{ID: e.String("id", true), Address: address(e, "address")}
			x.Since = uint64(e.Int("since", false, 1, cjson.MaxSafeInt))
			es = append(es, x)
			return
		}
		// The size cap is checked by Verify after addressing and freshness.
		env := e.Bytes("envelope", true, 1, MaxFrame)
		es = append(es, Entry{ID: e.String("id", true), Envelope: env})
	})
	return es
}

// address reads a member that must be a user's address.
func address(o *cjson.Object, name string) privateline.Address {
	a := privateline.Address(o.String(name, true))
	if o.Err() == nil {
		if _, _, err := a.Split(); err != nil {
			o.Fail(name, "a user's address")
		}
	}
	return a
}

// IsCode reports whether s is a refusal code: 1–32 of [a-z_]
// (spec/federation.md §10).
func IsCode(s string) bool {
	if len(s) < 1 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c == '_') {
			return false
		}
	}
	return true
}

func readResults(o *cjson.Object, t Type) []Result {
	var rs []Result
	items(o, "results", func(e *cjson.Object) {
		if t == TypeKeyAnswer {
			rs = append(rs, readKeyResult(e))
			return
		}
		if t == TypeFileAnswer {
			rs = append(rs, readFileResult(e))
			return
		}
		if t == TypeWitnessAnswer {
			rs = append(rs, readWitnessResult(e))
			return
		}
		if t == TypeGroupAnswer {
			rs = append(rs, readGroupResult(e))
			return
		}
		r := Result{ID: e.String("id", true), Status: Status(e.String("status", true))}
		switch r.Status {
		case Accepted, Duplicate:
		case Refused:
			r.Error = readCode(e)
		default:
			e.Fail("status", `"accepted", "duplicate" or "refused"`)
		}
		rs = append(rs, r)
	})
	return rs
}

// readCode reads a result's "error": a refusal code.
func readCode(e *cjson.Object) string {
	code := e.String("error", true)
	if e.Err() == nil && !IsCode(code) {
		e.Fail("error", "a refusal code (1 to 32 of a-z and _)")
	}
	return code
}

// readKeyResult reads one result of a key_answer: {"id", "error"} or
// {"id", "lookup": {…}, "consistency": [b64, …] optional}. The lookup's own
// members are the caller's to check (keylog.ParseLookup).
func readKeyResult(e *cjson.Object) Result {
	r := Result{ID: e.String("id", true)}
	if e.Has("error") {
		r.Error = readCode(e)
		return r
	}
	lv := e.Object("lookup", true)
	if e.Err() == nil {
		b, err := cjson.Marshal(lv)
		if err != nil {
			e.Fail("lookup", "an object")
		}
		r.Lookup = b
	}
	if e.Has("consistency") {
		a := e.Array("consistency", true)
		r.Consistency = make([][]byte, 0, len(a))
		for _, v := range a {
			s, ok := v.(string)
			h, err := b64.DecodeString(s)
			if !ok || err != nil || len(h) != 32 {
				e.Fail("consistency", "an array of base64 SHA-256 hashes")
				break
			}
			r.Consistency = append(r.Consistency, h)
		}
	}
	return r
}

// MaxFileSize bounds a file_answer's size: the largest file a client API
// of this implementation takes (spec/e2ee.md §9: 100 MiB plus nonce and
// tag); a requester may refuse less (its own limit).
const MaxFileSize = 100<<20 + 28

// readFileResult reads one result of a file_answer: {"id", "error"} or
// {"file", "id", "sha256", "size"}.
func readFileResult(e *cjson.Object) Result {
	r := Result{ID: e.String("id", true)}
	if e.Has("error") {
		r.Error = readCode(e)
		return r
	}
	r.File = hexID(e, "file")
	r.Size = e.Int("size", true, 1, cjson.MaxSafeInt)
	r.SHA256 = e.Bytes("sha256", true, 32, 32)
	return r
}

// NewTxnID returns a fresh transaction id: 16 random bytes as 32 lower-case
// hex digits.
func NewTxnID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b[:])
}

// Answers checks that r, already verified, is the receipt for tx, which
// this server sent: the same txn id, the same two servers the other way
// round, and one result per entry, in the entries' order
// (spec/federation.md §8). Only then may the sender delete the entries.
func (r *Receipt) Answers(tx *Transaction) error {
	if r.typ() != answerType(tx.Type) {
		return refuse(ReceiptMismatch, "a %s does not answer a %s", r.typ(), tx.Type)
	}
	if r.TxnID != tx.TxnID || r.Origin != tx.Destination || r.Destination != tx.Origin {
		return refuse(ReceiptMismatch, "receipt for %s→%s txn %s, sent %s→%s txn %s",
			r.Destination, r.Origin, r.TxnID, tx.Origin, tx.Destination, tx.TxnID)
	}
	if len(r.Results) != len(tx.Entries) {
		return refuse(ReceiptMismatch, "%d results for %d entries", len(r.Results), len(tx.Entries))
	}
	for i, e := range tx.Entries {
		if r.Results[i].ID != e.ID {
			return refuse(ReceiptMismatch, "result %d is for %s, entry %d is %s", i, r.Results[i].ID, i, e.ID)
		}
	}
	return nil
}

// VerifyTransaction is Verify for the accepting side: a receipt where a
// transaction is expected is refused as unknown_type.
func VerifyTransaction(raw []byte, peer Peer, me privateline.ServerName, now time.Time, lim Limits) (*Transaction, error) {
	m, err := Verify(raw, peer, me, now, lim)
	if err != nil {
		return nil, err
	}
	tx, ok := m.(*Transaction)
	if !ok {
		return nil, refuse(UnknownType, "a receipt where a transaction was expected")
	}
	return tx, nil
}

// VerifyReceipt is Verify for the sending side, followed by
// Receipt.Answers(sent): a transaction where a receipt is expected is
// refused as unknown_type, a receipt for another transaction as
// receipt_mismatch.
func VerifyReceipt(raw []byte, peer Peer, me privateline.ServerName, now time.Time, lim Limits, sent *Transaction) (*Receipt, error) {
	m, err := Verify(raw, peer, me, now, lim)
	if err != nil {
		return nil, err
	}
	r, ok := m.(*Receipt)
	if !ok {
		return nil, refuse(UnknownType, "a transaction where a receipt was expected")
	}
	if err := r.Answers(sent); err != nil {
		return nil, err
	}
	return r, nil
}
