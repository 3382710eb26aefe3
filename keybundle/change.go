package keybundle

import "crypto/sha256"

// KeyChangeInput returns the bytes an account's current identity key signs
// to hand over to a new bundle (spec/e2ee.md §6.3):
//
//	"privateline/v1/key-change" ‖ 0x00 ‖ SHA-256(canonical old bundle) ‖ SHA-256(canonical new bundle)
//
// Binding the old bundle makes the signature good for one step only: it
// cannot be replayed once the account has moved on.
func KeyChangeInput(old, next *KeyBundle) []byte {
	ho, hn := sha256.Sum256(old.json), sha256.Sum256(next.json)
	msg := domain(LabelKeyChange)
	msg = append(msg, ho[:]...)
	return append(msg, hn[:]...)
}

// CheckSuccessor checks that next may replace old: the same address
// (malformed otherwise) and a later created_at (stale_bundle otherwise).
func CheckSuccessor(old, next *KeyBundle) error {
	const op = "keybundle.CheckSuccessor"
	if next.Address != old.Address {
		return Refuse(op, ErrMalformed, "the new key bundle is for another address")
	}
	if !next.CreatedAt.After(old.CreatedAt) {
		return Refuse(op, ErrStaleBundle, "the new key bundle must have a later created_at than the one it replaces")
	}
	return nil
}

// VerifyKeyChange checks that next may replace old and that sig is old's
// identity key's signature of KeyChangeInput(old, next).
func VerifyKeyChange(old, next *KeyBundle, sig []byte) error {
	if err := CheckSuccessor(old, next); err != nil {
		return err
	}
	if !old.Identity.Verify(KeyChangeInput(old, next), sig) {
		return Refuse("keybundle.VerifyKeyChange", ErrBadSignature, "the key change is not signed by the current identity key")
	}
	return nil
}
