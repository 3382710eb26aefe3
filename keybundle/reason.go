package keybundle

import (
	"errors"

	"github.com/privateline/privateline"
)

// Reason is a refusal code of spec/e2ee.md §12. Every error the end-to-end
// packages return for untrusted input wraps exactly one Reason, so callers
// (and the vector tests) can tell refusals apart with errors.Is or
// ReasonOf. The codes are wire-stable. They are defined here, the lowest
// package both the SDK and the server share; clients/go/e2ee re-exports
// them.
type Reason string

func (r Reason) Error() string { return "e2ee: " + string(r) }

// The refusal codes; spec/e2ee.md §12 lists when each applies and the
// privateline.Kind it carries.
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
	ErrWrapMismatch       Reason = "wrap_mismatch"        // Forbidden: a group-key wrap that does not match its signed digest

	// Key changes and the key directory (spec/e2ee.md §6.3, §6.4).
	ErrStaleBundle      Reason = "stale_bundle"       // Forbidden: a bundle not newer than the one it replaces
	ErrBadProof         Reason = "bad_proof"          // Forbidden: a directory entry or inclusion proof that does not check out
	ErrLogFork          Reason = "log_fork"           // Forbidden: a tree head that does not extend the last one seen
	ErrLogRollback      Reason = "log_rollback"       // Forbidden: a tree head smaller than the last one seen
	ErrServerKeyChanged Reason = "server_key_changed" // Forbidden: the directory signs with another key than the pinned one
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
	ErrWrapMismatch:       privateline.Forbidden,
	ErrStaleBundle:        privateline.Forbidden,
	ErrBadProof:           privateline.Forbidden,
	ErrLogFork:            privateline.Forbidden,
	ErrLogRollback:        privateline.Forbidden,
	ErrServerKeyChanged:   privateline.Forbidden,
}

// Kind returns the privateline.Kind a refusal carries.
func (r Reason) Kind() privateline.Kind { return reasonKind[r] }

// Refuse builds the error for a refusal: op, the reason's kind, a message
// safe to show, and the reason as the cause.
func Refuse(op string, r Reason, msg string) error {
	return privateline.E(op, r.Kind(), msg, r)
}

// ReasonOf returns the refusal code wrapped in err, or "" if there is none.
func ReasonOf(err error) Reason {
	var r Reason
	if errors.As(err, &r) {
		return r
	}
	return ""
}
