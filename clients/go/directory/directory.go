// Package directory is the client side of a homeserver's key directory
// (spec/e2ee.md §6.4): it checks the directory's answers before a bundle is
// trusted, and remembers the last tree head it saw of each server so that
// a directory that forks its log (shows different clients different
// histories) or rolls it back is caught.
//
// For a lookup (GET /api/public_key/{username}) a Verifier checks, in
// order: the directory's key against the one pinned for the server (the
// first key seen is pinned, like SSH's known_hosts, unless the caller
// pinned one before; another key only with the answer's key-change
// statements leading from the pinned key to it, which re-pins it); the tree head's signature; that the answer is for
// the address asked; the entry's commitment to the bundle and the
// directory's signature on the entry; the inclusion proof of the entry in
// the tree the head describes; and that the head extends the last head
// seen, by a consistency proof fetched from the server. Only then is the
// head stored as the new last head and the bundle returned. Pinning the
// contact's identity key is a separate, later step (e2ee.CheckPinned).
//
// Failures are refusals with a code of spec/e2ee.md §12: bad_signature,
// bad_proof, log_fork, log_rollback, server_key_changed, malformed.
package directory

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"sync"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/keybundle"
	"github.com/privateline/privateline/keylog"
	"github.com/privateline/privateline/merkle"
)

// State is what a client keeps about one server's directory.
type State struct {
	// Key is the directory's pinned Ed25519 key.
	Key ed25519.PublicKey
	// Head is the last tree head verified, nil before the first.
	Head *keylog.TreeHead
	// Earlier are the directory's keys before Key that this client
	// followed to it through key-change statements (the key it pinned
	// before and those the chain went through), oldest first, at most
	// keylog.MaxServerKeyChanges: heads they signed are the server's, so
	// fork evidence made before a rotation still verifies.
	Earlier []ed25519.PublicKey
}

// Store persists State per server. Implementations must be safe for
// concurrent use; Memory is one, a client would keep it on disk with its
// session (mode 0600).
type Store interface {
	// Load returns the server's state, or nil and no error if none.
	Load(server privateline.ServerName) (*State, error)
	// Save replaces the server's state.
	Save(server privateline.ServerName, s *State) error
}

// Memory is an in-memory Store.
type Memory struct {
	mu sync.Mutex
	m  map[privateline.ServerName]State // guarded by mu
}

// Load implements Store.
func (m *Memory) Load(server privateline.ServerName) (*State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.m[server]
	if !ok {
		return nil, nil
	}
	return cloneState(&s), nil
}

// Save implements Store.
func (m *Memory) Save(server privateline.ServerName, s *State) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[privateline.ServerName]State{}
	}
	m.m[server] = *cloneState(s)
	return nil
}

func cloneState(s *State) *State {
	c := &State{Key: bytes.Clone(s.Key)}
	for _, k := range s.Earlier {
		c.Earlier = append(c.Earlier, bytes.Clone(k))
	}
	if s.Head != nil {
		h := *s.Head
		h.Signature = bytes.Clone(s.Head.Signature)
		c.Head = &h
	}
	return c
}

// ConsistencyFunc fetches the consistency proof between two tree sizes of
// a server's log (GET /api/keys/consistency?from=&to=).
type ConsistencyFunc func(ctx context.Context, server privateline.ServerName, from, to uint64) (*keylog.Consistency, error)

// Verifier checks directory answers against the state in Store. It is
// safe for concurrent use: checks of one server's heads are serialized,
// so concurrent lookups cannot move the stored head backwards.
type Verifier struct {
	store       Store
	consistency ConsistencyFunc

	mu sync.Mutex // serializes head updates
}

// NewVerifier returns a Verifier keeping its state in store and fetching
// consistency proofs with fetch.
func NewVerifier(store Store, fetch ConsistencyFunc) *Verifier {
	return &Verifier{store: store, consistency: fetch}
}

// Pin sets the server's directory key, for a key learned out of band (a
// configuration file, a QR code). A different key already pinned is
// refused: changing a pinned key is a decision for the user, by Forget.
func (v *Verifier) Pin(server privateline.ServerName, key ed25519.PublicKey) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	s, err := v.store.Load(server)
	if err != nil {
		return privateline.E("directory.Pin", privateline.Unavailable, err)
	}
	if s != nil {
		if !s.Key.Equal(key) {
			return keybundle.Refuse("directory.Pin", keybundle.ErrServerKeyChanged, "another key is pinned for this server")
		}
		return nil
	}
	return v.store.Save(server, &State{Key: bytes.Clone(key)})
}

// Forget drops what is known of a server (its key and last head). Only a
// user's explicit decision should call it.
func (v *Verifier) Forget(server privateline.ServerName) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.store.Save(server, &State{})
}

// VerifyLookup checks a lookup answer for address, whose server is
// address's server, and returns the bundle it vouches for.
func (v *Verifier) VerifyLookup(ctx context.Context, address privateline.Address, l *keylog.Lookup) (*keybundle.KeyBundle, error) {
	_, server, err := address.Split()
	if err != nil {
		return nil, keybundle.Refuse("directory.VerifyLookup", keybundle.ErrMalformed, "invalid address")
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	s, rekeyed, err := v.stateLocked(server, l.ServerKey, l.KeyChanges)
	if err != nil {
		return nil, err
	}
	if err := l.Verify(s.Key, server, address); err != nil {
		return nil, err
	}
	var proof *keylog.Consistency
	if l.Since > 0 {
		proof = &keylog.Consistency{From: l.Since, To: l.Head.TreeSize, Proof: l.Consistency}
	}
	if err := v.advanceLocked(ctx, server, s, &l.Head, proof, rekeyed); err != nil {
		return nil, err
	}
	return l.Bundle, nil
}

// VerifyHead checks a tree head of server (GET /api/keys/head) and, if it
// extends the last one seen, stores it.
func (v *Verifier) VerifyHead(ctx context.Context, server privateline.ServerName, a *keylog.HeadAnswer) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	s, rekeyed, err := v.stateLocked(server, a.ServerKey, a.KeyChanges)
	if err != nil {
		return err
	}
	if a.Head.Server != server {
		return keybundle.Refuse("directory.VerifyHead", keybundle.ErrBadProof, "the tree head is of another server")
	}
	if err := a.Head.Verify(s.Key); err != nil {
		return err
	}
	return v.advanceLocked(ctx, server, s, &a.Head, nil, rekeyed)
}

// LastHead returns the last head verified for server, or nil.
func (v *Verifier) LastHead(server privateline.ServerName) (*keylog.TreeHead, error) {
	s, err := v.store.Load(server)
	if err != nil || s == nil {
		return nil, err
	}
	return s.Head, nil
}

// stateLocked loads the server's state, pinning offered on first contact
// and refusing a key other than the pinned one unless changes, the
// answer's key-change statements, lead from the pinned key to it
// (spec/e2ee.md §6.4 step 2; the server rotated its key). Then the state
// returned has offered as its key and rekeyed is true: the caller
// verifies the answer under it and saves the state (re-pins) only if all
// of the answer's checks pass.
func (v *Verifier) stateLocked(server privateline.ServerName, offered ed25519.PublicKey, changes []keylog.ServerKeyChange) (s *State, rekeyed bool, err error) {
	const op = "directory.Verifier"
	s, err = v.store.Load(server)
	if err != nil {
		return nil, false, privateline.E(op, privateline.Unavailable, err)
	}
	if s == nil || len(s.Key) == 0 {
		if len(offered) != ed25519.PublicKeySize {
			return nil, false, keybundle.Refuse(op, keybundle.ErrMalformed, "the answer has no directory key")
		}
		// Saved with the first head that verifies under it.
		return &State{Key: bytes.Clone(offered)}, false, nil
	}
	if s.Key.Equal(offered) {
		return s, false, nil
	}
	path, err := keylog.ServerKeyPath(server, s.Key, offered, changes)
	if err != nil {
		return nil, false, err
	}
	s.Earlier = append(s.Earlier, path...)
	if n := len(s.Earlier); n > keylog.MaxServerKeyChanges {
		s.Earlier = s.Earlier[n-keylog.MaxServerKeyChanges:]
	}
	s.Key = bytes.Clone(offered)
	return s, true, nil
}

// advanceLocked checks that h (already verified under s.Key) extends the
// last head in s, and stores it. proof, if it starts at the last head's
// size, is used instead of fetching one (a lookup asked with ?since=).
// rekeyed saves s (its new key) even when h is not newer than the last
// head. The last head, signed by an earlier key, still anchors the log:
// the new key's heads must extend it.
func (v *Verifier) advanceLocked(ctx context.Context, server privateline.ServerName, s *State, h *keylog.TreeHead, proof *keylog.Consistency, rekeyed bool) error {
	const op = "directory.Verifier"
	last := s.Head
	switch {
	case last == nil || last.TreeSize == 0:
		// Nothing to compare with: every log extends the empty one.
	case h.TreeSize < last.TreeSize:
		return keybundle.Refuse(op, keybundle.ErrLogRollback, "the directory shows an older, smaller log than it showed before")
	case h.TreeSize == last.TreeSize:
		if h.RootHash != last.RootHash {
			return keybundle.Refuse(op, keybundle.ErrLogFork, "the directory shows a different log of the same size than before")
		}
		if h.Timestamp <= last.Timestamp {
			if rekeyed {
				return v.saveLocked(server, s)
			}
			return nil // nothing new
		}
		// The same tree, signed again later: keep the fresher head.
	default:
		c := proof
		if c == nil || c.From != last.TreeSize {
			var err error
			if c, err = v.consistency(ctx, server, last.TreeSize, h.TreeSize); err != nil {
				return privateline.E(op, privateline.Unavailable, "cannot fetch the directory's consistency proof", err)
			}
		}
		if c.From != last.TreeSize || c.To != h.TreeSize {
			return keybundle.Refuse(op, keybundle.ErrMalformed, "the consistency proof is for other tree sizes")
		}
		if err := merkle.VerifyConsistency(last.TreeSize, h.TreeSize, last.RootHash, h.RootHash, c.Proof); err != nil {
			return keybundle.Refuse(op, keybundle.ErrLogFork, "the directory's log does not extend the one it showed before")
		}
	}
	s.Head = h
	return v.saveLocked(server, s)
}

func (v *Verifier) saveLocked(server privateline.ServerName, s *State) error {
	if err := v.store.Save(server, s); err != nil {
		return privateline.E("directory.Verifier", privateline.Unavailable, err)
	}
	return nil
}
