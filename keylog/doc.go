// Package keylog is the wire format of a homeserver's key directory log
// (spec/e2ee.md §6.4), shared by the server that writes it (keydir) and the
// clients that check it (clients/go/directory): the leaves hashed into the
// log's Merkle tree (RFC 6962 hashing, package merkle), the directory's
// signature on each entry, the signed tree head, the answer to a key
// lookup, and the checks a client makes on them.
//
// A leaf commits to a bundle without revealing it:
//
//	{"commitment": b64(32), "index": n, "kind": "key"|"delete", "server": name, "timestamp": ms}
//	commitment("key")    = HMAC-SHA256(salt, "privateline/v1/directory-key" ‖ 0x00 ‖ canonical bundle)
//	commitment("delete") = HMAC-SHA256(salt, "privateline/v1/directory-delete" ‖ 0x00 ‖ address ‖ 0x00 ‖ SHA-256(canonical last bundle))
//
// with a fresh 32-byte random salt per entry. The server hands the salt out
// with the bundle, so a client recomputes the commitment, and erases it
// when the account is deleted (or the bundle replaced): the leaf then stays
// in the tree as an opaque hash, every proof still verifies, and nothing
// left in the log names the user.
//
// Signatures are Ed25519 by the homeserver's identity key:
//
//	entry:     "privateline/v1/directory-entry" ‖ 0x00 ‖ canonical leaf
//	tree head: "privateline/v1/tree-head" ‖ 0x00 ‖ canonical {"root_hash", "server", "timestamp", "tree_size"}
package keylog
