// Package e2ee is PrivateLine's end-to-end encryption, suite "pl1", as
// specified normatively in spec/e2ee.md and pinned by spec/vectors. It is
// the only place on the client side where private keys are used; they live
// in *PrivateKeys, *KEK and *GroupKey, which never print, log or marshal.
//
// The protocol in brief:
//
//   - Password (§4). master = PBKDF2-HMAC-SHA256(NFC(password), salt,
//     600,000, 32); auth_key = HKDF-SHA256(master, "", "privateline/v1/auth")
//     goes to the server; kek = HKDF-SHA256(master, "", "privateline/v1/key-wrap")
//     never leaves the client.
//   - Keys (§5). An Ed25519 identity key signs; an RSA-OAEP-4096 (SHA-256)
//     key receives content keys. Both private keys, as PKCS #8, are wrapped
//     with AES-256-GCM under kek, associated data
//     "privateline/v1/private-keys" ‖ 0x00 ‖ address.
//   - Key bundle (§6). {address, created_at, encryption_key (SPKI),
//     identity_key (raw 32 bytes), version, signature}, self-signed over
//     "privateline/v1/key-bundle" ‖ 0x00 ‖ canonical JSON. Contacts pin the
//     identity key on first use (CheckPinned).
//   - Direct envelope (§7). A canonical-JSON header is the AES-GCM associated
//     data; a fresh content key is RSA-OAEP-wrapped to every recipient and to
//     the sender; the sender signs "privateline/v1/envelope" ‖ 0x00 ‖
//     SHA-256(aad) ‖ SHA-256(nonce ‖ ciphertext) ‖ SHA-256(canonical keys).
//     Plaintext is canonical JSON {type, body, attachments, reply_to?} padded
//     with 0x80 0x00… to a multiple of 256 bytes.
//   - Groups (§8). A member's client makes each epoch's 32-byte key and
//     distributes it, wrapped per member and signed. Each message derives
//     mk = HKDF-SHA256(group key, 32-byte salt, "privateline/v1/group-message").
//   - Attachments (§9) have their own AES-256-GCM key; the blob's SHA-256
//     travels in the plaintext and is checked before decryption.
//   - Safety numbers (§10) follow Signal's numeric fingerprint over the raw
//     Ed25519 key and the address; the QR payload is "PLSN1:" and 128 hex
//     digits.
//
// Openers verify the signature before decrypting anything and refuse with
// one of the Reason codes of spec/e2ee.md §12, wrapped in a privateline
// error whose kind is Invalid (malformed, non-canonical, unknown suite, bad
// padding), TooLarge, Forbidden (any authenticity or membership failure:
// bad signature, wrong sender or recipient, changed key, wrong or stale
// epoch, failed decryption, hash mismatch), NotExist (expired) or
// Unauthenticated (the private keys do not unwrap: wrong password).
//
// Functions that need randomness take an io.Reader; nil means crypto/rand.
// A non-nil reader exists only so cmd/plvectors can write reproducible
// vectors. RSA key generation always uses the system source (Go 1.26).
package e2ee
