package keylog

import (
	"crypto/ed25519"
	"fmt"
	"net"
	"time"

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
//
// The document is read and checked here once, for clients
// (EarlierKeysFromDocument) and for homeservers (VerifyServerDocument,
// which federation.VerifyDocument calls); they differ only in which key
// they trust.

// LabelServerDocument prefixes a server document's signing input
// (spec/federation.md §2.1, §3).
const LabelServerDocument = "privateline/v1/federation-server"

// ServerDocumentInput returns a server document's signing input:
// UTF-8(LabelServerDocument) ‖ 0x00 ‖ canonical JSON of unsigned, its
// members without "signature".
func ServerDocumentInput(unsigned map[string]any) ([]byte, error) {
	c, err := cjson.Marshal(unsigned)
	if err != nil {
		return nil, err
	}
	return append(domain(LabelServerDocument), c...), nil
}

// ServerDocument is a server document (spec/federation.md §2.1) whose
// form, signature under its own Key and key-change chain were checked.
type ServerDocument struct {
	Server     privateline.ServerName
	Federation string // host:port of its QUIC listener
	Key        ed25519.PublicKey
	KeyChanges []ServerKeyChange // oldest first, a chain for Server ending at Key
	CreatedAt  time.Time
}

// SignServerDocument returns d as the canonical JSON of spec/federation.md
// §2.1 with v = 1, d.Key set to key's public key and the signature made
// with key: the document a server serves, which VerifyServerDocument
// reads.
func SignServerDocument(d ServerDocument, key ServerKeySigner) ([]byte, error) {
	body := map[string]any{
		"created_at": d.CreatedAt.UnixMilli(),
		"federation": d.Federation,
		"key":        b64.EncodeToString(key.Public()),
		"server":     string(d.Server),
		"v":          int64(1),
	}
	if len(d.KeyChanges) > 0 {
		body["key_changes"] = keyChangesList(d.KeyChanges)
	}
	in, err := ServerDocumentInput(body)
	if err != nil {
		return nil, err
	}
	body["signature"] = b64.EncodeToString(key.Sign(in))
	return cjson.Marshal(body)
}

// VerifyServerDocument reads raw, served as server's server document, and
// checks all a reader of it must (spec/federation.md §2.1, §2.2) but
// whether its key is to be trusted, which is the caller's to decide from
// the key it holds for server: canonical JSON with exactly the members of
// §2.1, v = 1, "server" = server, "federation" host:port, "key_changes"
// absent or 1 to MaxServerKeyChanges statements, the signature under
// "key", and the statements a valid chain for server ending at "key".
func VerifyServerDocument(raw []byte, server privateline.ServerName) (*ServerDocument, error) {
	return verifyServerDocument("keylog.VerifyServerDocument", raw, server, nil)
}

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
// none when the server never rotated. It requires what
// VerifyServerDocument does and what a verifier that trusts only pinned
// needs: "key" = pinned (a document signed with another key proves
// nothing to it: server_key_changed), so the signature is under pinned
// and the statements a valid chain for server ending at pinned.
func EarlierKeysFromDocument(raw []byte, server privateline.ServerName, pinned ed25519.PublicKey) ([]EarlierServerKey, error) {
	if pinned == nil { // nil would mean "any key" to verifyServerDocument
		pinned = ed25519.PublicKey{}
	}
	d, err := verifyServerDocument("keylog.EarlierKeysFromDocument", raw, server, pinned)
	if err != nil {
		return nil, err
	}
	out := make([]EarlierServerKey, len(d.KeyChanges))
	for i, c := range d.KeyChanges {
		out[i] = EarlierServerKey{Key: c.OldKey, ReplacedAt: c.CreatedAt.UnixMilli()}
	}
	return out, nil
}

// verifyServerDocument is VerifyServerDocument; when pinned is not nil,
// the document's key must also be pinned (server_key_changed otherwise),
// which is checked before the signature: a verifier that trusts only
// pinned is told that the key is not the one it trusts, whatever else is
// wrong with the document.
func verifyServerDocument(op string, raw []byte, server privateline.ServerName, pinned ed25519.PublicKey) (*ServerDocument, error) {
	what := "the server document of " + string(server)
	if err := cjson.Check(raw); err != nil {
		return nil, keybundle.Refuse(op, keybundle.ErrNonCanonical, what+": "+err.Error())
	}
	v, _ := cjson.Parse(raw)
	o := cjson.NewObject(v)
	ver := o.Int("v", true, 0, cjson.MaxSafeInt)
	d := &ServerDocument{
		Server:     privateline.ServerName(o.String("server", true)),
		Federation: o.String("federation", true),
		CreatedAt:  time.UnixMilli(o.Int("created_at", true, 0, cjson.MaxSafeInt)),
		Key:        o.Bytes("key", true, ed25519.PublicKeySize, ed25519.PublicKeySize),
	}
	sig := o.Bytes("signature", true, ed25519.SignatureSize, ed25519.SignatureSize)
	changes, err := keyChangesMember(o, op)
	if err != nil {
		return nil, malformed(op, what+": "+privateline.MessageOf(err))
	}
	if err := o.Done(false); err != nil {
		return nil, malformed(op, what+": "+err.Error())
	}
	if ver != 1 {
		return nil, malformed(op, fmt.Sprintf("%s: version %d", what, ver))
	}
	if d.Server != server {
		return nil, keybundle.Refuse(op, keybundle.ErrBadProof, fmt.Sprintf("%s names %q", what, d.Server))
	}
	if host, port, err := net.SplitHostPort(d.Federation); err != nil || host == "" || port == "" {
		return nil, malformed(op, what+`: "federation" is not host:port`)
	}
	if pinned != nil && (len(pinned) != ed25519.PublicKeySize || !pinned.Equal(d.Key)) {
		return nil, keybundle.Refuse(op, keybundle.ErrServerKeyChanged, what+" is signed with another key than the one pinned for it")
	}
	body := v.(map[string]any)
	delete(body, "signature")
	in, err := ServerDocumentInput(body)
	if err != nil || !ed25519.Verify(d.Key, in, sig) {
		return nil, keybundle.Refuse(op, keybundle.ErrBadSignature, what+": the signature does not verify under its key")
	}
	if err := VerifyServerKeyChain(server, changes, d.Key); err != nil {
		return nil, keybundle.Refuse(op, keybundle.ErrBadProof, what+": "+err.Error())
	}
	d.KeyChanges = changes
	return d, nil
}
