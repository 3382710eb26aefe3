package e2ee

import (
	"errors"

	"github.com/privateline/privateline"
)

// Reason is a refusal code of spec/e2ee.md §12. Every error this package
// returns for untrusted input wraps exactly one Reason, so callers (and the
// vector tests) can tell refusals apart with errors.Is or ReasonOf.
type Reason string

func (r Reason) Error() string { return "e2ee: " + string(r) }

// The refusal codes, wire-stable; spec/e2ee.md §12 lists when each applies
// and the privateline.Kind it carries.
const (
	ErrMalformed          Reason = "malformed"            // Invalid
	ErrNonCanonical       Reason = "non_canonical"        // Invalid
	ErrUnknownSuite       Reason = "unknown_suite"        // Invalid
	ErrTooLarge           Reason = "too_large"            // TooLarge
	ErrWrongSender        Reason = "wrong_sender"         // Forbidden
	ErrBadSignature       Reason = "bad_signature"        // Forbidden
	ErrNotRecipient       Reason = "not_recipient"        // Forbidden
	ErrRecipients         Reason = "recipients_mismatch"  // Forbidden
	ErrKeyChanged         Reason = "key_changed"          // Forbidden
	ErrWrongGroup         Reason = "wrong_group"          // Forbidden
	ErrWrongEpoch         Reason = "wrong_epoch"          // Forbidden
	ErrStaleEpoch         Reason = "stale_epoch"          // Forbidden
	ErrNotMember          Reason = "not_member"           // Forbidden
	ErrExpired            Reason = "expired"              // NotExist
	ErrDecrypt            Reason = "decrypt_failed"       // Forbidden
	ErrBadPadding         Reason = "bad_padding"          // Invalid
	ErrFilesMismatch      Reason = "files_mismatch"       // Invalid
	ErrHashMismatch       Reason = "hash_mismatch"        // Forbidden
	ErrFingerprint        Reason = "fingerprint_mismatch" // Forbidden
	ErrWeakKDF            Reason = "weak_kdf"             // Invalid
	ErrBadKey             Reason = "bad_key"              // Invalid
	ErrWrongPasswordOrKey Reason = "unwrap_failed"        // Unauthenticated
)

var reasonKind = map[Reason]privateline.Kind{
	ErrMalformed:          privateline.Invalid,
	ErrNonCanonical:       privateline.Invalid,
	ErrUnknownSuite:       privateline.Invalid,
	ErrTooLarge:           privateline.TooLarge,
	ErrWrongSender:        privateline.Forbidden,
	ErrBadSignature:       privateline.Forbidden,
	ErrNotRecipient:       privateline.Forbidden,
	ErrRecipients:         privateline.Forbidden,
	ErrKeyChanged:         privateline.Forbidden,
	ErrWrongGroup:         privateline.Forbidden,
	ErrWrongEpoch:         privateline.Forbidden,
	ErrStaleEpoch:         privateline.Forbidden,
	ErrNotMember:          privateline.Forbidden,
	ErrExpired:            privateline.NotExist,
	ErrDecrypt:            privateline.Forbidden,
	ErrBadPadding:         privateline.Invalid,
	ErrFilesMismatch:      privateline.Invalid,
	ErrHashMismatch:       privateline.Forbidden,
	ErrFingerprint:        privateline.Forbidden,
	ErrWeakKDF:            privateline.Invalid,
	ErrBadKey:             privateline.Invalid,
	ErrWrongPasswordOrKey: privateline.Unauthenticated,
}

// refuse builds the error for a refusal: op, the reason's kind, a message
// safe to show, and the reason as the cause.
func refuse(op string, r Reason, msg string) error {
	return privateline.E(op, reasonKind[r], msg, r)
}

// ReasonOf returns the refusal code wrapped in err, or "" if there is none.
func ReasonOf(err error) Reason {
	var r Reason
	if errors.As(err, &r) {
		return r
	}
	return ""
}
