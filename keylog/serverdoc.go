package keylog

import (
	"crypto/ed25519"
	"fmt"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/cjson"
	"github.com/privateline/privateline/keybundle"
)

// A server's own word on its earlier keys, for a verifier that trusts
// only its current key (spec/federation.md §2.1, spec/e2ee.md §6.4
// "Witnesses"): the server document is signed by the current key and
// carries the key-change statements, so the current key vouches for the
// keys they name as the server's before it. The direction matters: a
// statement signed by an old key naming the current one proves nothing
// to whoever trusts the current key (anyone can sign one from a key of
// their own), while the current key's signature over the list does.

// LabelServerDocument prefixes a server document's signing input
// (spec/federation.md §2.1, §3).
const LabelServerDocument = "privateline/v1/federation-server"

// EarlierServerKey is a key a server held before its current one, as the
// current key states in the server document it signed.
type EarlierServerKey struct {
	Key ed25519.PublicKey
	// ReplacedAt is the created_at of the statement that replaced Key
	// (Unix ms): rotate-key runs only while the server is stopped, so a
	// head Key signed with a later timestamp is not the server's.
	ReplacedAt int64
}

// EarlierKeysFromDocument reads server's server document (raw, as
// served) and returns the keys its "key_changes" name as the server's
// before its current key, oldest first, each with when it was replaced;
// none when the server never rotated. It requires what a verifier that
// trusts only pinned needs: canonical JSON with exactly the members of
// spec/federation.md §2.1, v = 1, "server" = server, "key" = pinned (a
// document signed with another key proves nothing to it:
// server_key_changed), the signature under pinned, and the statements a
// valid chain for server ending at pinned.
func EarlierKeysFromDocument(raw []byte, server privateline.ServerName, pinned ed25519.PublicKey) ([]EarlierServerKey, error) {
	const op = "keylog.EarlierKeysFromDocument"
	what := "the server document of " + string(server)
	if err := cjson.Check(raw); err != nil {
		return nil, keybundle.Refuse(op, keybundle.ErrNonCanonical, what+": "+err.Error())
	}
	v, _ := cjson.Parse(raw)
	o := cjson.NewObject(v)
	ver := o.Int("v", true, 0, cjson.MaxSafeInt)
	name := o.String("server", true)
	o.String("federation", true)
	o.Int("created_at", true, 0, cjson.MaxSafeInt)
	key := ed25519.PublicKey(o.Bytes("key", true, ed25519.PublicKeySize, ed25519.PublicKeySize))
	sig := o.Bytes("signature", true, ed25519.SignatureSize, ed25519.SignatureSize)
	changes, err := keyChangesMember(o, op)
	if err != nil {
		return nil, err
	}
	if err := o.Done(false); err != nil {
		return nil, malformed(op, what+": "+err.Error())
	}
	if ver != 1 {
		return nil, malformed(op, fmt.Sprintf("%s: version %d", what, ver))
	}
	if privateline.ServerName(name) != server {
		return nil, keybundle.Refuse(op, keybundle.ErrBadProof, fmt.Sprintf("%s names %q", what, name))
	}
	if len(pinned) != ed25519.PublicKeySize || !pinned.Equal(key) {
		return nil, keybundle.Refuse(op, keybundle.ErrServerKeyChanged, what+" is signed with another key than the one pinned for it")
	}
	body := v.(map[string]any)
	delete(body, "signature")
	in, err := cjson.Marshal(body)
	if err != nil || !ed25519.Verify(pinned, append(domain(LabelServerDocument), in...), sig) {
		return nil, keybundle.Refuse(op, keybundle.ErrBadSignature, what+": the signature does not verify under the pinned key")
	}
	if err := VerifyServerKeyChain(server, changes, pinned); err != nil {
		return nil, keybundle.Refuse(op, keybundle.ErrBadProof, what+": "+err.Error())
	}
	out := make([]EarlierServerKey, len(changes))
	for i, c := range changes {
		out[i] = EarlierServerKey{Key: c.OldKey, ReplacedAt: c.CreatedAt.UnixMilli()}
	}
	return out, nil
}
