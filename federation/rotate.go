package federation

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/federation/transport"
	"github.com/privateline/privateline/keylog"
	"github.com/privateline/privateline/serverkey"
)

// A rotated identity key (homeserver rotate-key, spec §2.2): the
// certificate and the server document present the key-change statements,
// and the heads kept with the witnesses' co-signatures are signed again
// with the new key.

// CertKeyChanges is how many of the newest key-change statements the
// certificate carries (spec §6.2); the server document carries all.
const CertKeyChanges = transport.MaxKeyChanges

// newIdentity makes the certificate for cfg's key, carrying the last
// transport.MaxKeyChanges statements of cfg.KeyChanges.
func newIdentity(cfg Config) (*transport.Identity, error) {
	if err := keylog.VerifyServerKeyChain(cfg.Name, cfg.KeyChanges, cfg.Key.Public()); err != nil {
		return nil, fmt.Errorf("the key-change statements: %w", err)
	}
	changes := cfg.KeyChanges
	if n := len(changes); n > transport.MaxKeyChanges {
		changes = changes[n-transport.MaxKeyChanges:]
	}
	return transport.NewIdentity(cfg.Name, cfg.Key, changes...)
}

// resignCosignedHeads signs again, with the current key, the heads kept
// with the witnesses' co-signatures that an earlier key signed. A
// co-signature covers the tree (size and root), not the head's signature
// (spec §12.6), so it stays valid, and clients, which check the head
// under the directory key they pinned (now the new one), keep counting it.
func (s *Service) resignCosignedHeads() error {
	raws, err := s.store.Cosignatures()
	if err != nil {
		return privateline.E("federation.resignCosignedHeads", err)
	}
	pub := s.cfg.Key.Public()
	for _, raw := range raws {
		c, err := keylog.ParseCosignature(raw)
		if err != nil {
			return privateline.E("federation.resignCosignedHeads", privateline.Internal, err)
		}
		if c.Head.Server != s.cfg.Name || c.Head.Verify(pub) == nil {
			continue
		}
		c.Head.Signature = s.cfg.Key.Sign(c.Head.SigningInput())
		b, err := c.MarshalJSON()
		if err != nil {
			return privateline.E("federation.resignCosignedHeads", privateline.Internal, err)
		}
		if err := s.store.SetCosignature(c.Witness, b); err != nil {
			return privateline.E("federation.resignCosignedHeads", err)
		}
	}
	return nil
}

// Following a peer that rotated its key more often than its certificate
// shows (spec §4.2 step 5): the certificate carries the newest
// transport.MaxKeyChanges statements, the server document all the peer
// keeps (up to keylog.MaxServerKeyChanges). When the certificate's do not
// reach the pinned key, the policy asks documentChain for the document's.

const (
	// chainFetchTimeout bounds one fetch of a server document for its
	// statements; it runs inside a TLS handshake (10 s, spec §6.4).
	chainFetchTimeout = 5 * time.Second
	// chainReuse is how long a fetched document (or the failure to fetch
	// it) answers for its server without fetching it again, so that
	// handshakes with a name cannot make this server fetch its document
	// more often than that.
	chainReuse = 10 * time.Second
	// maxDocChains bounds the documents remembered.
	maxDocChains = 256
)

// docChains remembers the last server document fetched per peer for its
// statements.
type docChains struct {
	mu sync.Mutex
	m  map[privateline.ServerName]docChain
}

type docChain struct {
	at      time.Time
	doc     *Document // nil: err
	err     error
	pending chan struct{} // closed when the fetch in progress ends
}

// documentChain returns the key-change statements of name's server
// document, whose key must be key (the one its certificate presents): the
// policy follows them from the pinned key (transport.PolicyConfig.Chain).
func (s *Service) documentChain(name privateline.ServerName, key ed25519.PublicKey) ([]transport.KeyChange, error) {
	d, err := s.chains.get(name, func() (*Document, error) {
		ctx, cancel := context.WithTimeout(s.ctx, chainFetchTimeout)
		defer cancel()
		return s.getDocument(ctx, name, nil) // checked against the pin by the policy
	})
	if err != nil {
		return nil, err
	}
	if !d.Key.Equal(key) {
		return nil, fmt.Errorf("the server document of %s names the key %s, not the presented %s", name, serverkey.Fingerprint(d.Key), serverkey.Fingerprint(key))
	}
	return d.KeyChanges, nil
}

// get returns name's document fetched at most chainReuse ago, or fetches
// it (one fetch per name at a time).
func (c *docChains) get(name privateline.ServerName, fetch func() (*Document, error)) (*Document, error) {
	c.mu.Lock()
	if c.m == nil {
		c.m = map[privateline.ServerName]docChain{}
	}
	for {
		e, ok := c.m[name]
		if !ok || e.pending == nil && time.Since(e.at) >= chainReuse {
			break
		}
		if e.pending == nil {
			c.mu.Unlock()
			return e.doc, e.err
		}
		c.mu.Unlock()
		<-e.pending
		c.mu.Lock()
	}
	if len(c.m) >= maxDocChains {
		for n, e := range c.m {
			if e.pending == nil {
				delete(c.m, n)
			}
		}
	}
	done := make(chan struct{})
	c.m[name] = docChain{pending: done}
	c.mu.Unlock()
	d, err := fetch()
	c.mu.Lock()
	c.m[name] = docChain{at: time.Now(), doc: d, err: err}
	c.mu.Unlock()
	close(done)
	return d, err
}

// ErrSupersededAnswer marks a key look-up of a server that cannot be
// reached, whose last verified answer kept here is signed with a key the
// server has replaced since (LookupRemote). Its message says so: the
// client API passes it on.
var ErrSupersededAnswer = errors.New("federation: the kept answer is signed with a superseded key")

// superseded reports whether kept, a verified answer of server's key
// directory, is signed with a key server has replaced since: the key
// this server trusts for it now (configured, or pinned and moved on by a
// chain of statements) is another one. Such an answer is not passed on
// as current while server cannot be reached: clients that followed the
// rotation refuse the old key (server_key_changed), and accepting old-key
// signatures would let a thief of that key forge answers.
func (s *Service) superseded(server privateline.ServerName, kept *keylog.Lookup) bool {
	key := s.configuredKey(server)
	if key == nil {
		k, err := s.store.PeerPin(server)
		if err != nil {
			return true // cannot tell: do not pass on what may be stale
		}
		key = k
	}
	return key != nil && !key.Equal(kept.ServerKey)
}
