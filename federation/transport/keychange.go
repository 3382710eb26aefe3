package transport

import (
	"crypto/ed25519"
	"encoding/base64"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/keylog"
)

// KeyChangeLabel is the domain label of a key-change statement's signing
// input (spec/federation.md §2.2, §3).
const KeyChangeLabel = keylog.LabelServerKeyChange

// KeyChange is a statement by a homeserver that its identity key changed:
// NewKey replaces OldKey for Server, signed by OldKey. The type lives in
// keylog, which clients share (they follow the same statements when a
// directory's key changes, spec/e2ee.md §6.4).
type KeyChange = keylog.ServerKeyChange

// Signer signs with a server's identity key (*serverkey.PrivateKey).
type Signer = keylog.ServerKeySigner

// NewKeyChange makes the statement that newKey replaces old's key for
// server, signed by old.
func NewKeyChange(server privateline.ServerName, old Signer, newKey ed25519.PublicKey) (KeyChange, error) {
	return keylog.NewServerKeyChange(server, old, newKey)
}

// std64 is standard base64 (keys and signatures in statements).
var std64 = base64.StdEncoding

// ParseKeyChange reads a statement written by Marshal: canonical JSON, no
// other members. It does not verify the signature (Verify does).
func ParseKeyChange(data []byte) (KeyChange, error) { return keylog.ParseServerKeyChange(data) }
