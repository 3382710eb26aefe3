// Package keydir is the homeserver's public-key directory: users' key
// bundles (identity key and encryption key, self-signed by the client).
//
// Today it checks the shape of a bundle at registration (a JSON object of
// bounded size) and stores it as given. The end-to-end-encryption work
// extends it with bundle verification, an append-only Merkle log of every
// bundle and change with signed tree heads, inclusion and consistency
// proofs, and lookups of remote users through federation.
package keydir

import (
	"bytes"
	"encoding/json"

	"github.com/privateline/privateline"
)

// MaxBundleSize caps a key bundle's JSON encoding.
const MaxBundleSize = 16 << 10

// CheckBundleShape accepts a key bundle that is a JSON object of at most
// MaxBundleSize bytes and returns it compacted.
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
