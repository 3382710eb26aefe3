package storage

import (
	"time"

	"github.com/privateline/privateline"
)

// Types of the federation outbox and inbound path (FED2.md). This file holds
// the type declarations only; the methods that use them are in the storage
// helper's branch.

// OutboxItem is one queued entry for a remote server.
type OutboxItem struct {
	Seq      uint64
	Type     string // "envelopes" (the wire type; later "read_marks", …)
	ID       string // entry id: the envelope id for "envelopes"
	Payload  []byte // "envelopes": the envelope exactly as posted
	QueuedAt time.Time
}

// OutboxTxn is a destination's pending transaction: its id and its items in
// outbox order.
type OutboxTxn struct {
	TxnID string
	Type  string
	Items []OutboxItem // outbox order
}

// OutboxResult is a receipt's answer for one item.
type OutboxResult struct {
	ID        string
	Delivered bool   // accepted or duplicate
	Error     string // refusal code when !Delivered
}

// InboundEntry is one entry of a verified inbound transaction, after the
// per-entry checks that need no lock; Refused != "" carries their code.
type InboundEntry struct {
	ID         string
	Raw        []byte              // the envelope bytes
	From       privateline.Address // the remote sender (on origin)
	Recipients []Recipient         // local recipients that exist
	ExpiresAt  time.Time           // zero: never
	Files      []string            // file ids the header lists (on origin; fetched later, not checked now)
	Refused    string              // pre-decided refusal code, or ""
}

// InboundResult is the receiver's answer for one entry.
type InboundResult struct {
	ID     string
	Status string // "accepted", "duplicate", "refused"
	Error  string // with "refused"
}
