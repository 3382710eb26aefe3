package wire

import (
	"errors"
	"fmt"

	"github.com/privateline/privateline"
)

// Reason is a wire-stable refusal code of spec/federation.md §10. The
// receiver of a transaction sends it back in an error frame; metrics count
// rejected frames by it.
type Reason string

// The refusals of Verify, in the order of its checks (spec/federation.md §9).
const (
	TooLarge       Reason = "too_large"        // frame, transaction or entry over a cap
	Malformed      Reason = "malformed"        // not JSON, truncated, wrong member types, unknown members
	NonCanonical   Reason = "non_canonical"    // valid JSON that is not its own canonical form
	UnknownVersion Reason = "unknown_version"  // "v" other than Version
	UnknownType    Reason = "unknown_type"     // a "type" this version does not know
	WrongOrigin    Reason = "wrong_origin"     // "origin" is not the authenticated peer
	Misaddressed   Reason = "misaddressed"     // "destination" is not this server
	Stale          Reason = "stale"            // "created_at" older than the freshness window
	Future         Reason = "future"           // "created_at" later than the freshness window
	TooManyEntries Reason = "too_many_entries" // more entries than MaxEntries
	BadSignature   Reason = "bad_signature"    // the origin's signature does not verify
	// ReceiptMismatch: a well-signed receipt that does not answer the
	// transaction it was returned for (Receipt.Answers).
	ReceiptMismatch Reason = "receipt_mismatch"
)

// Refusal is the error Verify returns: a reason and a detail for logs.
// Details name members and sizes, never entry contents.
type Refusal struct {
	Reason Reason
	Detail string
}

func (r *Refusal) Error() string {
	if r.Detail == "" {
		return "federation: refused: " + string(r.Reason)
	}
	return fmt.Sprintf("federation: refused: %s: %s", r.Reason, r.Detail)
}

// Kind maps the refusal to the project's error kinds (spec/federation.md §10).
func (r *Refusal) Kind() privateline.Kind {
	switch r.Reason {
	case TooLarge, TooManyEntries:
		return privateline.TooLarge
	case Malformed, NonCanonical, UnknownVersion, UnknownType:
		return privateline.Invalid
	default:
		return privateline.Forbidden
	}
}

// ReasonOf returns the refusal reason of err, or "" if err is not a refusal.
func ReasonOf(err error) Reason {
	var r *Refusal
	if errors.As(err, &r) {
		return r.Reason
	}
	return ""
}

func refuse(r Reason, format string, args ...any) error {
	return &Refusal{Reason: r, Detail: fmt.Sprintf(format, args...)}
}
