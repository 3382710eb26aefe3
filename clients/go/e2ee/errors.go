package e2ee

import "github.com/privateline/privateline/keybundle"

// Reason is a refusal code of spec/e2ee.md §12. Every error this package
// returns for untrusted input wraps exactly one Reason, so callers (and the
// vector tests) can tell refusals apart with errors.Is or ReasonOf. The
// codes are defined in the shared package keybundle (the homeserver speaks
// them too) and re-exported here.
type Reason = keybundle.Reason

// The refusal codes, wire-stable; spec/e2ee.md §12 lists when each applies
// and the privateline.Kind it carries.
const (
	ErrMalformed          = keybundle.ErrMalformed          // Invalid
	ErrNonCanonical       = keybundle.ErrNonCanonical       // Invalid
	ErrUnknownSuite       = keybundle.ErrUnknownSuite       // Invalid
	ErrTooLarge           = keybundle.ErrTooLarge           // TooLarge
	ErrWrongSender        = keybundle.ErrWrongSender        // Forbidden
	ErrBadSignature       = keybundle.ErrBadSignature       // Forbidden
	ErrNotRecipient       = keybundle.ErrNotRecipient       // Forbidden
	ErrRecipients         = keybundle.ErrRecipients         // Forbidden
	ErrKeyChanged         = keybundle.ErrKeyChanged         // Forbidden
	ErrWrongGroup         = keybundle.ErrWrongGroup         // Forbidden
	ErrWrongEpoch         = keybundle.ErrWrongEpoch         // Forbidden
	ErrStaleEpoch         = keybundle.ErrStaleEpoch         // Forbidden
	ErrNotMember          = keybundle.ErrNotMember          // Forbidden
	ErrExpired            = keybundle.ErrExpired            // NotExist
	ErrDecrypt            = keybundle.ErrDecrypt            // Forbidden
	ErrBadPadding         = keybundle.ErrBadPadding         // Invalid
	ErrFilesMismatch      = keybundle.ErrFilesMismatch      // Invalid
	ErrHashMismatch       = keybundle.ErrHashMismatch       // Forbidden
	ErrFingerprint        = keybundle.ErrFingerprint        // Forbidden
	ErrWeakKDF            = keybundle.ErrWeakKDF            // Invalid
	ErrBadKey             = keybundle.ErrBadKey             // Invalid
	ErrWrongPasswordOrKey = keybundle.ErrWrongPasswordOrKey // Unauthenticated
	ErrStaleBundle        = keybundle.ErrStaleBundle        // Forbidden
	ErrWrapMismatch       = keybundle.ErrWrapMismatch       // Forbidden
)

// refuse builds the error for a refusal: op, the reason's kind, a message
// safe to show, and the reason as the cause.
func refuse(op string, r Reason, msg string) error { return keybundle.Refuse(op, r, msg) }

// ReasonOf returns the refusal code wrapped in err, or "" if there is none.
func ReasonOf(err error) Reason { return keybundle.ReasonOf(err) }
