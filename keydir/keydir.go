// Package keydir is the homeserver's public-key directory: its users' key
// bundles (identity key and encryption key, self-signed by the client),
// and an append-only log of every bundle and every change, with signed
// tree heads, inclusion and consistency proofs (spec/e2ee.md §6.4). It
// also keeps the users' pinned-keys blobs, which roam between a user's
// devices encrypted by the client.
//
// # What the directory does
//
//   - Registration: the bundle is verified by the same code a client uses
//     (package keybundle: self-signature, RSA-4096/65537 and Ed25519 key
//     sizes, canonical encodings) and its address must be the new account's,
//     username@SERVER_NAME. The account and the bundle's log entry are
//     written in one synced batch.
//   - Key change (PUT /api/keys): the new bundle must be a later bundle of
//     the same address, authorised by the current identity key's signature
//     over "privateline/v1/key-change" ‖ 0x00 ‖ SHA-256(old) ‖ SHA-256(new)
//     or by a fresh proof of the password; the change and its log entry are
//     one batch. (Contacts learn of the change from the messaging hub's
//     key_changed event, which it emits when it exists.)
//   - Account deletion appends a deletion entry in the batch that erases
//     the account.
//   - Lookups answer the bundle, the directory's signed entry for it, an
//     inclusion proof and the current signed tree head; clients verify all
//     of it (clients/go/directory) and check each head against the last one
//     they saw with a consistency proof, so a forked or rolled-back log is
//     detected.
//
// # The log and erasure
//
// The log is append-only, but account deletion must leave nothing of the
// user. The two are reconciled by what a leaf holds: not the bundle or the
// address but a commitment to them, HMAC-SHA256 under a fresh random
// 32-byte salt per entry (package keylog). The salt of a user's current
// entry is stored with the user (storage table 'K') and handed out with
// lookups, so clients can open the commitment; a key change replaces it and
// account deletion erases it. What remains is a leaf that is a random-
// looking hash among others: proofs and consistency still verify (they
// need only leaf hashes), a client that cached an entry can still check it,
// and nothing left names the user. A deletion entry commits, under a salt
// that is never stored, to the address and the hash of its last bundle.
//
// What the log proves: that the directory committed, at a position and
// time it signed and cannot later deny or rewrite, to the bundle it serves;
// a client that keeps the last head it saw notices any attempt to rewrite
// history or to show it a different log. It does not by itself prove that
// the served entry is the newest one for the address; that needs monitors
// (the account's own devices checking their entries) and witnesses
// (federation peers co-signing heads), which come with federation.
//
// # Signing
//
// Entries and tree heads are signed by the homeserver's Ed25519 identity
// key (package serverkey, DATA_DIR/server_identity.pem), the key
// federation will also use. The directory's public key is in every head and
// lookup answer (server_key); clients pin it on first use.
package keydir

import (
	"bytes"
	"encoding/json"

	"github.com/privateline/privateline"
)

// MaxBundleSize caps a key bundle's JSON encoding.
const MaxBundleSize = 16 << 10

// CheckBundleShape accepts a key bundle that is a JSON object of at most
// MaxBundleSize bytes and returns it compacted. It is the cheap first
// check of a registration; VerifyBundle then checks the bundle itself.
func CheckBundleShape(raw json.RawMessage) (json.RawMessage, error) {
	const op = "keydir.CheckBundleShape"
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, privateline.E(op, privateline.Invalid, `field "key_bundle" is required`)
	}
	if len(raw) > MaxBundleSize {
		return nil, privateline.E(op, privateline.Invalid, "key_bundle is larger than 16 KiB")
	}
	if raw[0] != '{' {
		return nil, privateline.E(op, privateline.Invalid, "key_bundle must be a JSON object")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, privateline.E(op, privateline.Invalid, "key_bundle must be a JSON object")
	}
	return buf.Bytes(), nil
}
