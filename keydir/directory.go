package keydir

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/keybundle"
	"github.com/privateline/privateline/keylog"
	"github.com/privateline/privateline/merkle"
	"github.com/privateline/privateline/storage"
)

// Store is what the directory needs from storage (*storage.DB).
type Store interface {
	CreateUserLogged(u *storage.User, app storage.LogAppend) error
	UpdateUserKeys(id storage.ID, mutate func(*storage.User) error, app storage.LogAppend) (*storage.User, error)
	DeleteUserLogged(id storage.ID, app storage.LogAppend) error
	UserByName(privateline.Username) (*storage.User, error)
	UserKeyEntry(storage.ID) ([]byte, error)
	KeyLogSize() (uint64, error)
	KeyLogLeaf(index uint64) (leaf, sig []byte, err error)
	KeyLogNodes() merkle.NodeSource
	PinnedKeys(storage.ID) ([]byte, uint64, error)
	PutPinnedKeys(id storage.ID, blob []byte, ifVersion uint64) (uint64, error)
}

// Signer is the homeserver's identity key (*serverkey.PrivateKey).
type Signer interface {
	Public() ed25519.PublicKey
	Sign(msg []byte) []byte
}

// Directory is the key directory of one homeserver. Its methods are safe
// for concurrent use.
type Directory struct {
	server privateline.ServerName
	store  Store
	key    Signer
	pub    ed25519.PublicKey
	now    func() time.Time

	mu   sync.Mutex
	head *keylog.TreeHead // guarded by mu: the newest head signed

	// changes lead from the server's earlier identity keys to key (set
	// once at start by SetKeyChanges; read-only after).
	changes []keylog.ServerKeyChange
}

// New returns the directory of server, kept in store and signed by key.
// now is the clock (nil: time.Now).
func New(server privateline.ServerName, store Store, key Signer, now func() time.Time) *Directory {
	if now == nil {
		now = time.Now
	}
	return &Directory{server: server, store: store, key: key, pub: key.Public(), now: now}
}

// ServerKey returns the directory's public key.
func (d *Directory) ServerKey() ed25519.PublicKey { return append(ed25519.PublicKey(nil), d.pub...) }

// entryRecord is what the store keeps under a user's id about their
// current entry: enough to answer a lookup in one read.
type entryRecord struct {
	Index  uint64          `json:"index"`
	Salt   []byte          `json:"salt"`
	Bundle json.RawMessage `json:"bundle"` // canonical
}

// VerifyBundle checks a registration's bundle for the account username:
// the bundle's own checks (keybundle.Parse) and its address, which must be
// username@SERVER_NAME. Every failure is Invalid, with a message that
// says what is wrong.
func (d *Directory) VerifyBundle(raw json.RawMessage, username privateline.Username) (*keybundle.KeyBundle, error) {
	const op = "keydir.VerifyBundle"
	b, err := keybundle.Parse(raw)
	if err != nil {
		return nil, privateline.E(op, privateline.Invalid, bundleMessage(err), err)
	}
	if want := privateline.MakeAddress(username, d.server); b.Address != want {
		return nil, privateline.E(op, privateline.Invalid, "key_bundle: the address must be "+string(want))
	}
	return b, nil
}

// bundleMessage names the field in a refusal of keybundle.Parse, for the
// client: "key_bundle: signature is invalid (bad_signature)".
func bundleMessage(err error) string {
	msg := strings.TrimPrefix(strings.TrimPrefix(privateline.MessageOf(err), "key bundle: "), "key bundle ")
	if r := keybundle.ReasonOf(err); r != "" {
		msg += " (" + string(r) + ")"
	}
	return "key_bundle: " + msg
}

// keyAppend makes the log record of a key entry for b.
func (d *Directory) keyAppend(b *keybundle.KeyBundle) storage.LogAppend {
	return func(_ *storage.User, index uint64) (*storage.LogRecord, error) {
		salt := make([]byte, keylog.SaltSize)
		rand.Read(salt)
		leaf := &keylog.Leaf{
			Server:     d.server,
			Index:      index,
			Kind:       keylog.KindKey,
			Commitment: keylog.KeyCommitment(salt, b),
			Timestamp:  d.now().UnixMilli(),
		}
		rec, err := json.Marshal(entryRecord{Index: index, Salt: salt, Bundle: b.JSON()})
		if err != nil {
			return nil, privateline.E("keydir.keyAppend", privateline.Internal, err)
		}
		return &storage.LogRecord{Leaf: leaf.Canonical(), Signature: d.key.Sign(leaf.SigningInput()), Entry: rec}, nil
	}
}

// deleteAppend makes the log record of a deletion entry for u. Its salt is
// never stored: the entry records that a deletion happened and nothing
// left in the store can tie it to the user.
func (d *Directory) deleteAppend(u *storage.User, index uint64) (*storage.LogRecord, error) {
	salt := make([]byte, keylog.SaltSize)
	rand.Read(salt)
	leaf := &keylog.Leaf{
		Server:     d.server,
		Index:      index,
		Kind:       keylog.KindDelete,
		Commitment: keylog.DeleteCommitment(salt, privateline.MakeAddress(u.Username, d.server), sha256.Sum256(u.KeyBundle)),
		Timestamp:  d.now().UnixMilli(),
	}
	clear(salt)
	return &storage.LogRecord{Leaf: leaf.Canonical(), Signature: d.key.Sign(leaf.SigningInput())}, nil
}

// Register stores a new account whose bundle VerifyBundle accepted, and
// logs the bundle, in one synced batch. A taken username is an Exist
// error.
func (d *Directory) Register(u *storage.User, b *keybundle.KeyBundle) error {
	u.KeyBundle = b.JSON()
	if err := d.store.CreateUserLogged(u, d.keyAppend(b)); err != nil {
		return privateline.E("keydir.Register", err)
	}
	return nil
}

// KeyChange is a request to replace an account's bundle (PUT /api/keys).
type KeyChange struct {
	// Bundle is the new bundle (already parsed, so self-signed).
	Bundle *keybundle.KeyBundle
	// OldKeySignature is the current identity key's signature over
	// keybundle.KeyChangeInput(current, Bundle). Nil when the caller
	// proved the password instead (FreshAuth).
	OldKeySignature []byte
	// FreshAuth is set when the caller re-entered the password for this
	// request and it checked out.
	FreshAuth bool
	// EncryptedPrivateKey and Nonce are the new private keys, wrapped by
	// the client under its key-wrapping key (spec/e2ee.md §5.3).
	EncryptedPrivateKey, Nonce []byte
}

// ChangeKeys replaces the account's bundle and wrapped private keys and
// logs the new bundle, in one synced batch, and answers the account's new
// lookup. The new bundle must be the account's address (Invalid), later
// than the current one (Exist: it is stale, or another device changed the
// keys first), and authorised by the current identity key (Forbidden) or a
// fresh password proof.
func (d *Directory) ChangeKeys(id storage.ID, c KeyChange) (*keylog.Lookup, error) {
	const op = "keydir.ChangeKeys"
	if c.OldKeySignature == nil && !c.FreshAuth {
		return nil, privateline.E(op, privateline.Forbidden, "a key change needs old_key_signature or auth_key")
	}
	u, err := d.store.UpdateUserKeys(id, func(u *storage.User) error {
		if want := privateline.MakeAddress(u.Username, d.server); c.Bundle.Address != want {
			return privateline.E(op, privateline.Invalid, "key_bundle: the address must be "+string(want))
		}
		old, err := keybundle.Parse(u.KeyBundle)
		if err != nil {
			// An account registered before bundles were verified: only a
			// password proof can replace its bundle.
			if c.FreshAuth {
				old = nil
			} else {
				return privateline.E(op, privateline.Forbidden, "the current key bundle cannot sign a key change; prove the password with auth_key")
			}
		}
		if old != nil {
			if err := keybundle.CheckSuccessor(old, c.Bundle); err != nil {
				if keybundle.ReasonOf(err) == keybundle.ErrStaleBundle {
					return privateline.E(op, privateline.Exist, privateline.MessageOf(err), err)
				}
				return privateline.E(op, privateline.Invalid, bundleMessage(err), err)
			}
			if c.OldKeySignature != nil {
				if err := keybundle.VerifyKeyChange(old, c.Bundle, c.OldKeySignature); err != nil {
					return privateline.E(op, privateline.Forbidden, "old_key_signature does not verify against the current key bundle", err)
				}
			}
		}
		u.KeyBundle = c.Bundle.JSON()
		u.EncryptedPrivateKey, u.Nonce = c.EncryptedPrivateKey, c.Nonce
		return nil
	}, d.keyAppend(c.Bundle))
	if err != nil {
		return nil, privateline.E(op, err)
	}
	return d.Lookup(u.Username)
}

// DeleteUser erases the account and appends its deletion entry, in one
// synced batch.
func (d *Directory) DeleteUser(id storage.ID) error {
	if err := d.store.DeleteUserLogged(id, d.deleteAppend); err != nil {
		return privateline.E("keydir.DeleteUser", err)
	}
	return nil
}

var errNoEntry = privateline.E("keydir.Lookup", privateline.NotExist, "no such user in the directory")

// Lookup answers the account's bundle, the directory's signed entry for
// it, an inclusion proof and the current tree head. An unknown account, or
// one without an entry, is NotExist.
func (d *Directory) Lookup(name privateline.Username) (*keylog.Lookup, error) {
	ls, err := d.Lookups([]privateline.Username{name})
	if err != nil {
		return nil, err
	}
	if ls[0] == nil {
		return nil, errNoEntry
	}
	return ls[0], nil
}

// Lookups answers several accounts against ONE tree head (a federation
// key request, spec/federation.md §12.5): element i is names[i]'s answer,
// or nil for an unknown account or one without an entry.
func (d *Directory) Lookups(names []privateline.Username) ([]*keylog.Lookup, error) {
	const op = "keydir.Lookup"
	out := make([]*keylog.Lookup, len(names))
	index := make([]uint64, len(names))
	for i, name := range names {
		u, err := d.store.UserByName(name)
		if privateline.Is(privateline.NotExist, err) {
			continue
		} else if err != nil {
			return nil, privateline.E(op, err)
		}
		raw, err := d.store.UserKeyEntry(u.ID)
		if privateline.Is(privateline.NotExist, err) {
			continue
		} else if err != nil {
			return nil, privateline.E(op, err)
		}
		var rec entryRecord
		if err := json.Unmarshal(raw, &rec); err != nil {
			return nil, privateline.E(op, privateline.Internal, err)
		}
		b, err := keybundle.Parse(rec.Bundle)
		if err != nil {
			return nil, privateline.E(op, privateline.Internal, err)
		}
		leafData, sig, err := d.store.KeyLogLeaf(rec.Index)
		if err != nil {
			return nil, privateline.E(op, err)
		}
		leaf, err := keylog.ParseLeaf(leafData)
		if err != nil {
			return nil, privateline.E(op, privateline.Internal, err)
		}
		index[i] = rec.Index
		out[i] = &keylog.Lookup{
			Address:    b.Address,
			Bundle:     b,
			Entry:      keylog.Entry{Leaf: *leaf, Salt: rec.Salt, Signature: sig},
			ServerKey:  d.ServerKey(),
			KeyChanges: d.changes,
		}
	}
	// Each entry was committed with the size that covers it, so the head
	// read now, after all of them, includes them all.
	head, err := d.Head()
	if err != nil {
		return nil, err
	}
	for i, l := range out {
		if l == nil {
			continue
		}
		if l.InclusionProof, err = merkle.InclusionProof(d.store.KeyLogNodes(), index[i], head.TreeSize); err != nil {
			return nil, privateline.E(op, privateline.Internal, err)
		}
		l.Head = *head
	}
	return out, nil
}

// HeadRefresh is how long a signed head is reused while the log does not
// grow; after that the same tree is signed again with a fresh timestamp,
// so a client can tell a current head from a replayed old one.
const HeadRefresh = 10 * time.Minute

// Head returns the signed head of the log as it is now. A head is signed
// when the log has grown or the last one is HeadRefresh old, and reused
// otherwise; timestamps never go backwards.
func (d *Directory) Head() (*keylog.TreeHead, error) {
	const op = "keydir.Head"
	d.mu.Lock()
	defer d.mu.Unlock()
	size, err := d.store.KeyLogSize()
	if err != nil {
		return nil, privateline.E(op, err)
	}
	if d.head != nil && d.head.TreeSize == size && d.now().UnixMilli()-d.head.Timestamp < HeadRefresh.Milliseconds() {
		h := *d.head
		return &h, nil
	}
	root, err := merkle.Root(d.store.KeyLogNodes(), size)
	if err != nil {
		return nil, privateline.E(op, privateline.Internal, err)
	}
	h := &keylog.TreeHead{Server: d.server, TreeSize: size, RootHash: root, Timestamp: d.now().UnixMilli()}
	if d.head != nil && h.Timestamp < d.head.Timestamp {
		h.Timestamp = d.head.Timestamp
	}
	h.Signature = d.key.Sign(h.SigningInput())
	if d.head == nil || size >= d.head.TreeSize {
		d.head = h
	}
	out := *h
	return &out, nil
}

// HeadAnswer is Head with the directory's key, as GET /api/keys/head
// answers.
func (d *Directory) HeadAnswer() (*keylog.HeadAnswer, error) {
	h, err := d.Head()
	if err != nil {
		return nil, err
	}
	return &keylog.HeadAnswer{Head: *h, ServerKey: d.ServerKey(), KeyChanges: d.changes}, nil
}

// Consistency returns the proof that the log at size from is a prefix of
// the log at size to; 1 ≤ from ≤ to ≤ the current size, or Invalid.
func (d *Directory) Consistency(from, to uint64) (*keylog.Consistency, error) {
	const op = "keydir.Consistency"
	size, err := d.store.KeyLogSize()
	if err != nil {
		return nil, privateline.E(op, err)
	}
	if from < 1 || from > to || to > size {
		return nil, privateline.E(op, privateline.Invalid, "from and to must satisfy 1 ≤ from ≤ to ≤ the current tree size")
	}
	p, err := merkle.ConsistencyProof(d.store.KeyLogNodes(), from, to)
	if err != nil {
		return nil, privateline.E(op, privateline.Internal, err)
	}
	return &keylog.Consistency{From: from, To: to, Proof: p}, nil
}

// MaxPinnedKeys caps a pinned-keys blob.
const MaxPinnedKeys = 256 << 10

// PinnedKeys returns the user's pinned-keys blob and its version (0 and
// none before the first PutPinnedKeys).
func (d *Directory) PinnedKeys(id storage.ID) ([]byte, uint64, error) {
	return d.store.PinnedKeys(id)
}

// PutPinnedKeys replaces the user's blob if its version is still
// ifVersion and returns the new version; otherwise it is an Exist error
// wrapping storage.ErrVersionMismatch.
func (d *Directory) PutPinnedKeys(id storage.ID, blob []byte, ifVersion uint64) (uint64, error) {
	if len(blob) == 0 || len(blob) > MaxPinnedKeys {
		return 0, privateline.E("keydir.PutPinnedKeys", privateline.Invalid, "the pinned-keys blob must be 1 byte to 256 KiB")
	}
	return d.store.PutPinnedKeys(id, blob, ifVersion)
}
