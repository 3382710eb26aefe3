package keylog

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/cjson"
	"github.com/privateline/privateline/keybundle"
)

// A homeserver's identity key signs its directory (entries and tree heads)
// and authenticates it to its federation peers (spec/federation.md §2).
// When the operator replaces it (homeserver rotate-key), the old key signs
// a key-change statement naming the new one (spec/federation.md §2.2);
// peers that pinned the old key follow the statements in the server's
// certificate, and clients that pinned it (spec/e2ee.md §6.4 step 2)
// follow those in the directory's answers ("key_changes"). Shared by the
// homeserver, federation/transport and the client SDK.

// LabelServerKeyChange prefixes a key-change statement's signing input
// (spec/federation.md §2.2, §3).
const LabelServerKeyChange = "privateline/v1/federation-key-change"

// MaxServerKeyChanges bounds the statements a server keeps and presents
// in its server document and directory answers (spec/federation.md §2.1).
const MaxServerKeyChanges = 16

// ServerKeyChange is a statement by a homeserver that its identity key
// changed: NewKey replaces OldKey for Server, signed by OldKey:
//
//	{"created_at": ms, "new_key": b64(32), "old_key": b64(32), "server": name, "signature": b64(64)}
//
// signature = Sign(old key, "privateline/v1/federation-key-change" ‖ 0x00 ‖
// canonical JSON without "signature").
type ServerKeyChange struct {
	Server    privateline.ServerName
	CreatedAt time.Time // when the statement was made; millisecond precision
	OldKey    ed25519.PublicKey
	NewKey    ed25519.PublicKey
	Signature []byte
}

// ServerKeySigner signs with a server's identity key (*serverkey.PrivateKey).
type ServerKeySigner interface {
	Public() ed25519.PublicKey
	Sign(msg []byte) []byte
}

// members are the statement's JSON members without the signature.
func (c ServerKeyChange) members() map[string]any {
	return map[string]any{
		"created_at": c.CreatedAt.UnixMilli(),
		"new_key":    b64.EncodeToString(c.NewKey),
		"old_key":    b64.EncodeToString(c.OldKey),
		"server":     string(c.Server),
	}
}

func mustMarshal(m map[string]any) []byte {
	b, err := cjson.Marshal(m)
	if err != nil { // strings and an integer: cannot happen
		panic(err)
	}
	return b
}

// SigningInput returns UTF-8(LabelServerKeyChange) ‖ 0x00 ‖ canonical JSON
// of {"created_at": ms, "new_key": b64, "old_key": b64, "server": name}.
func (c ServerKeyChange) SigningInput() []byte {
	return append(domain(LabelServerKeyChange), mustMarshal(c.members())...)
}

// NewServerKeyChange makes the statement that newKey replaces old's key
// for server, signed by old.
func NewServerKeyChange(server privateline.ServerName, old ServerKeySigner, newKey ed25519.PublicKey) (ServerKeyChange, error) {
	c := ServerKeyChange{Server: server, CreatedAt: time.UnixMilli(time.Now().UnixMilli()), OldKey: old.Public(), NewKey: bytes.Clone(newKey)}
	if err := c.checkShape(); err != nil {
		return ServerKeyChange{}, err
	}
	c.Signature = old.Sign(c.SigningInput())
	return c, nil
}

func (c ServerKeyChange) checkShape() error {
	if _, err := privateline.ParseServerName(string(c.Server)); err != nil {
		return fmt.Errorf("key change: %w", err)
	}
	if len(c.OldKey) != ed25519.PublicKeySize || len(c.NewKey) != ed25519.PublicKeySize {
		return errors.New("key change: keys must be 32-byte Ed25519 public keys")
	}
	if ms := c.CreatedAt.UnixMilli(); ms < 0 || ms > cjson.MaxSafeInt {
		return errors.New("key change: created_at is out of range")
	}
	if bytes.Equal(c.OldKey, c.NewKey) {
		return errors.New("key change: the new key equals the old key")
	}
	return nil
}

// Verify checks the statement's shape and that OldKey signed it.
func (c ServerKeyChange) Verify() error {
	if err := c.checkShape(); err != nil {
		return err
	}
	if len(c.Signature) != ed25519.SignatureSize || !ed25519.Verify(c.OldKey, c.SigningInput(), c.Signature) {
		return errors.New("key change: the old key's signature does not verify")
	}
	return nil
}

func (c ServerKeyChange) object() map[string]any {
	m := c.members()
	m["signature"] = b64.EncodeToString(c.Signature)
	return m
}

// Marshal returns the statement's canonical JSON: {"created_at", "new_key",
// "old_key", "server", "signature"}, keys and signature in standard base64.
func (c ServerKeyChange) Marshal() []byte { return mustMarshal(c.object()) }

// ParseServerKeyChange reads a statement written by Marshal: canonical
// JSON, no other members. It does not verify the signature (Verify does).
func ParseServerKeyChange(data []byte) (ServerKeyChange, error) {
	if err := cjson.Check(data); err != nil {
		return ServerKeyChange{}, fmt.Errorf("key change: %w", err)
	}
	v, _ := cjson.Parse(data)
	return serverKeyChangeFrom(v)
}

func serverKeyChangeFrom(v any) (ServerKeyChange, error) {
	o := cjson.NewObject(v)
	c := ServerKeyChange{
		Server:    privateline.ServerName(o.String("server", true)),
		CreatedAt: time.UnixMilli(o.Int("created_at", true, 0, cjson.MaxSafeInt)),
		OldKey:    o.Bytes("old_key", true, ed25519.PublicKeySize, ed25519.PublicKeySize),
		NewKey:    o.Bytes("new_key", true, ed25519.PublicKeySize, ed25519.PublicKeySize),
		Signature: o.Bytes("signature", true, ed25519.SignatureSize, ed25519.SignatureSize),
	}
	if err := o.Done(false); err != nil {
		return ServerKeyChange{}, fmt.Errorf("key change: %w", err)
	}
	return c, c.checkShape()
}

// MarshalServerKeyChanges returns the statements as a canonical JSON
// array (the form of DATA_DIR/server_key_changes.json).
func MarshalServerKeyChanges(cs []ServerKeyChange) []byte {
	b, err := cjson.Marshal(keyChangesList(cs))
	if err != nil {
		panic(err)
	}
	return b
}

// ParseServerKeyChanges reads an array written by MarshalServerKeyChanges.
// It checks each statement's shape, not the chain (VerifyServerKeyChain).
func ParseServerKeyChanges(data []byte) ([]ServerKeyChange, error) {
	if err := cjson.Check(data); err != nil {
		return nil, fmt.Errorf("key changes: %w", err)
	}
	v, _ := cjson.Parse(data)
	a, ok := v.([]any)
	if !ok {
		return nil, errors.New("key changes: not an array")
	}
	return keyChangesFrom(a)
}

func keyChangesList(cs []ServerKeyChange) []any {
	out := make([]any, len(cs))
	for i, c := range cs {
		out[i] = c.object()
	}
	return out
}

func keyChangesFrom(a []any) ([]ServerKeyChange, error) {
	if len(a) > MaxServerKeyChanges {
		return nil, fmt.Errorf("key changes: at most %d statements", MaxServerKeyChanges)
	}
	out := make([]ServerKeyChange, 0, len(a))
	for i, v := range a {
		c, err := serverKeyChangeFrom(v)
		if err != nil {
			return nil, fmt.Errorf("key change %d: %w", i, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// keyChangesMember reads the optional "key_changes" member of an answer:
// absent is none; present, 1 to MaxServerKeyChanges well-formed
// statements (the chain is checked by whoever follows it).
func keyChangesMember(o *cjson.Object, op string) ([]ServerKeyChange, error) {
	a := o.Array("key_changes", false)
	if o.Err() != nil || a == nil {
		return nil, nil
	}
	if len(a) == 0 {
		return nil, malformed(op, `"key_changes" must not be empty`)
	}
	cs, err := keyChangesFrom(a)
	if err != nil {
		return nil, malformed(op, err.Error())
	}
	return cs, nil
}

// VerifyServerKeyChain checks that changes, oldest first, form a chain of
// valid statements for server ending at key: each one verifies under its
// OldKey, is for server, starts at the previous one's NewKey, and the last
// one's NewKey is key. No statements is a valid (empty) chain.
func VerifyServerKeyChain(server privateline.ServerName, changes []ServerKeyChange, key ed25519.PublicKey) error {
	if len(changes) > MaxServerKeyChanges {
		return fmt.Errorf("key changes: at most %d statements", MaxServerKeyChanges)
	}
	for i, c := range changes {
		if err := c.Verify(); err != nil {
			return fmt.Errorf("key change %d: %w", i, err)
		}
		if c.Server != server {
			return fmt.Errorf("key change %d is for %q, not %q", i, c.Server, server)
		}
		if i > 0 && !c.OldKey.Equal(changes[i-1].NewKey) {
			return fmt.Errorf("key change %d does not start at the key the previous one leads to", i)
		}
	}
	if n := len(changes); n > 0 && !changes[n-1].NewKey.Equal(key) {
		return errors.New("the last key change does not lead to the current key")
	}
	return nil
}

// FollowServerKeyChain decides whether a verifier that pinned the key
// pinned for server may accept the key offered, given the statements
// changes the answer carried (spec/e2ee.md §6.4 step 2): the same key is
// accepted; another one only if a run of valid statements for server leads
// from pinned to offered, each starting at the key the previous one led
// to. Anything else is server_key_changed.
func FollowServerKeyChain(server privateline.ServerName, pinned, offered ed25519.PublicKey, changes []ServerKeyChange) error {
	_, err := ServerKeyPath(server, pinned, offered, changes)
	return err
}

// ServerKeyPath is FollowServerKeyChain that also returns the keys the
// chain went through: pinned first, offered not included (none when
// offered is pinned). They were the server's keys before offered, each
// vouched for by the one before it, from the one the verifier trusted:
// heads they signed (fork evidence, keylog.ForkEvidence.VerifyUnder) are
// the server's.
func ServerKeyPath(server privateline.ServerName, pinned, offered ed25519.PublicKey, changes []ServerKeyChange) ([]ed25519.PublicKey, error) {
	const op = "keylog.FollowServerKeyChain"
	if len(pinned) == ed25519.PublicKeySize && pinned.Equal(offered) {
		return nil, nil
	}
	start := -1
	for i, c := range changes {
		if c.OldKey.Equal(pinned) {
			start = i
			break
		}
	}
	if start < 0 {
		return nil, keybundle.Refuse(op, keybundle.ErrServerKeyChanged, "the directory's key is not the one pinned for "+string(server)+", and no key-change statement starts at the pinned key")
	}
	cur := pinned
	var path []ed25519.PublicKey
	for i := start; i < len(changes); i++ {
		c := changes[i]
		if !c.OldKey.Equal(cur) || c.Server != server || c.Verify() != nil {
			return nil, keybundle.Refuse(op, keybundle.ErrServerKeyChanged, fmt.Sprintf("the directory's key changed, but key-change statement %d does not verify for %s", i, server))
		}
		path = append(path, bytes.Clone(cur))
		cur = c.NewKey
		if cur.Equal(offered) {
			return path, nil
		}
	}
	return nil, keybundle.Refuse(op, keybundle.ErrServerKeyChanged, "the directory's key changed, but its key-change statements do not lead to it")
}
