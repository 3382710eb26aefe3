// Package keybundle is the public half of PrivateLine's account keys, shared
// by the client SDK (clients/go/e2ee) and the homeserver (keydir): the
// Ed25519 identity key and RSA-OAEP-4096 encryption key in their public
// forms, the signed key bundle (spec/e2ee.md §6) and its verification, the
// key-change signature by which an old identity key hands over to a new
// bundle (§6.3), and the refusal codes of §12.
//
// It holds no private keys and never signs: signing lives with the private
// keys in clients/go/e2ee. Keeping parsing and verification here means the
// server checks a bundle by exactly the rules a client does.
//
// A bundle is
//
//	{"address", "created_at", "encryption_key", "identity_key", "signature", "version"}
//
// signed by its own identity key over "privateline/v1/key-bundle" ‖ 0x00 ‖
// canonical JSON of the bundle without "signature". A *KeyBundle exists
// only after that signature, the key sizes and the address have been
// checked.
package keybundle
