package transport

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/serverkey"
)

// Trust decides whether a key may speak for a server name.
type Trust interface {
	// Check returns nil if key may speak for name. changes are the
	// key-change statements the peer presented in its certificate (none,
	// usually); an implementation may use them to accept a key that
	// replaced one it knew. A non-nil error refuses the link.
	Check(name privateline.ServerName, key ed25519.PublicKey, changes []KeyChange) error
}

// ErrUntrusted is wrapped by every refusal of Policy.Check.
var ErrUntrusted = errors.New("untrusted peer")

// PinStore keeps the keys pinned on first contact. The caller provides a
// durable one; MemoryPins is for tests.
type PinStore interface {
	// Pin returns the key pinned for name, or nil if there is none.
	Pin(name privateline.ServerName) (ed25519.PublicKey, error)
	// SetPin records key for name, replacing any earlier pin; it returns
	// once the pin is durable.
	SetPin(name privateline.ServerName, key ed25519.PublicKey) error
}

// MemoryPins is a PinStore in memory.
type MemoryPins struct {
	mu sync.Mutex
	m  map[privateline.ServerName]ed25519.PublicKey
}

// Pin implements PinStore.
func (p *MemoryPins) Pin(name privateline.ServerName) (ed25519.PublicKey, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[name], nil
}

// SetPin implements PinStore.
func (p *MemoryPins) SetPin(name privateline.ServerName, key ed25519.PublicKey) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[privateline.ServerName]ed25519.PublicKey{}
	}
	p.m[name] = append(ed25519.PublicKey(nil), key...)
	return nil
}

// PolicyConfig configures a Policy.
type PolicyConfig struct {
	// Peers are the configured peers and their keys (FEDERATION_PEERS);
	// the configured key is authoritative for its name: another key is
	// refused even with key-change statements (the operator updates it).
	Peers map[privateline.ServerName]ed25519.PublicKey
	// Pins, if not nil, enables trust on first use for names that are not
	// configured: the first key seen is pinned, later keys must equal it.
	// Nil refuses every name that is not configured.
	Pins PinStore
	// Allow, if not empty, is the only names a link may be made with
	// (FEDERATION_ALLOW); configured peers must be on it too.
	Allow []privateline.ServerName
	// Deny names are always refused (FEDERATION_DENY), configured or not.
	Deny []privateline.ServerName
	// Logger receives the warnings of pinning and key changes; nil is
	// slog.Default().
	Logger *slog.Logger
	// Chain, if not nil, returns the longer chain of key-change statements
	// of name, whose current key is key: its server document's (spec
	// §2.1, all it keeps). Check asks it when the statements of the
	// certificate (the newest MaxKeyChanges) do not lead from the pinned
	// key to the presented one — a peer that rotated its key more often
	// than that while this server did not talk to it. It is called with no
	// lock held, inside the TLS handshake: it must return well within the
	// handshake timeout. The statements are checked by Check.
	Chain func(name privateline.ServerName, key ed25519.PublicKey) ([]KeyChange, error)
}

// Policy is the Trust of a homeserver: deny list, allow list, configured
// peers, then trust on first use with key changes signed by the old key.
type Policy struct {
	peers       map[privateline.ServerName]ed25519.PublicKey
	pins        PinStore
	allow, deny map[privateline.ServerName]bool
	log         *slog.Logger
	chain       func(privateline.ServerName, ed25519.PublicKey) ([]KeyChange, error)
	mu          sync.Mutex      // serialises pin reads and writes
	stuck       map[string]bool // name ‖ key refused for a chain gap, logged once (guarded by mu)
}

// NewPolicy checks c and returns its Policy.
func NewPolicy(c PolicyConfig) (*Policy, error) {
	p := &Policy{
		peers: map[privateline.ServerName]ed25519.PublicKey{},
		pins:  c.Pins,
		allow: map[privateline.ServerName]bool{},
		deny:  map[privateline.ServerName]bool{},
		log:   c.Logger,
		chain: c.Chain,
		stuck: map[string]bool{},
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	for name, key := range c.Peers {
		if _, err := privateline.ParseServerName(string(name)); err != nil {
			return nil, err
		}
		if len(key) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("transport: configured key for %s is not a 32-byte Ed25519 key", name)
		}
		p.peers[name] = append(ed25519.PublicKey(nil), key...)
	}
	for _, l := range []struct {
		names []privateline.ServerName
		set   map[privateline.ServerName]bool
	}{{c.Allow, p.allow}, {c.Deny, p.deny}} {
		for _, name := range l.names {
			if _, err := privateline.ParseServerName(string(name)); err != nil {
				return nil, err
			}
			l.set[name] = true
		}
	}
	return p, nil
}

// Check implements Trust.
func (p *Policy) Check(name privateline.ServerName, key ed25519.PublicKey, changes []KeyChange) error {
	if p.deny[name] {
		return fmt.Errorf("%w: %s is on the deny list", ErrUntrusted, name)
	}
	if len(p.allow) > 0 && !p.allow[name] {
		return fmt.Errorf("%w: %s is not on the allow list", ErrUntrusted, name)
	}
	fp := serverkey.Fingerprint(key)
	if want, ok := p.peers[name]; ok {
		if sameKey(key, want) {
			return nil
		}
		return fmt.Errorf("%w: the key of %s (%s) is not its configured key (%s)", ErrUntrusted, name, fp, serverkey.Fingerprint(want))
	}
	if p.pins == nil {
		return fmt.Errorf("%w: %s is not a configured peer", ErrUntrusted, name)
	}
	p.mu.Lock()
	pinned, err := p.pins.Pin(name)
	if err != nil {
		p.mu.Unlock()
		return fmt.Errorf("%w: reading the pin of %s: %v", ErrUntrusted, name, err)
	}
	switch {
	case pinned == nil:
		defer p.mu.Unlock()
		return p.pinFirst(name, key, fp)
	case sameKey(key, pinned):
		p.mu.Unlock()
		return nil
	case follows(name, pinned, key, changes):
		defer p.mu.Unlock()
		return p.repin(name, pinned, key, "its certificate")
	case p.chain == nil:
		defer p.mu.Unlock()
		return p.refuseChanged(name, pinned, key, nil)
	}
	p.mu.Unlock()

	// The certificate carries only the newest statements: the server
	// document has all the peer keeps (spec §2.1, §4.2 step 5).
	more, ferr := p.chain(name, key)
	p.mu.Lock()
	defer p.mu.Unlock()
	if pinned, err = p.pins.Pin(name); err != nil { // another handshake may have moved it meanwhile
		return fmt.Errorf("%w: reading the pin of %s: %v", ErrUntrusted, name, err)
	}
	switch {
	case pinned == nil: // the pin was removed meanwhile: first contact again
		return p.pinFirst(name, key, fp)
	case sameKey(key, pinned):
		return nil // another handshake followed the same chain meanwhile
	case ferr == nil && follows(name, pinned, key, append(slices.Clip(changes), more...)):
		return p.repin(name, pinned, key, "its server document")
	}
	return p.refuseChanged(name, pinned, key, ferr)
}

// pinFirst pins key for name on first contact (fp: its fingerprint).
// p.mu is held.
func (p *Policy) pinFirst(name privateline.ServerName, key ed25519.PublicKey, fp string) error {
	if err := p.pins.SetPin(name, key); err != nil {
		return fmt.Errorf("%w: pinning %s: %v", ErrUntrusted, name, err)
	}
	p.log.Warn("federation: first contact with a server; its key is now pinned (verify it out of band)",
		"peer", string(name), "key", fp)
	return nil
}

// repin replaces name's pin by key, reached from pinned by statements
// found in where. p.mu is held.
func (p *Policy) repin(name privateline.ServerName, pinned, key ed25519.PublicKey, where string) error {
	if err := p.pins.SetPin(name, key); err != nil {
		return fmt.Errorf("%w: re-pinning %s: %v", ErrUntrusted, name, err)
	}
	p.log.Warn("federation: a peer changed its key with a statement signed by the pinned key; the new key is pinned",
		"peer", string(name), "old", serverkey.Fingerprint(pinned), "new", serverkey.Fingerprint(key), "statements_from", where)
	return nil
}

// refuseChanged refuses name's key, which no statement it showed leads
// to from the pinned one (fetchErr: why its server document could not be
// had, if it was asked for), and tells the operator, once per key, what
// to do about it. p.mu is held.
func (p *Policy) refuseChanged(name privateline.ServerName, pinned, key ed25519.PublicKey, fetchErr error) error {
	fp, pfp := serverkey.Fingerprint(key), serverkey.Fingerprint(pinned)
	if p.chain != nil {
		logged := p.stuck[string(name)+"\x00"+string(key)]
		if !logged && len(p.stuck) < maxStuck {
			p.stuck[string(name)+"\x00"+string(key)] = true
		}
		if !logged {
			attrs := []any{"peer", string(name), "pinned", pfp, "presented", fp, "presented_key", std64.EncodeToString(key)}
			if fetchErr != nil {
				attrs = append(attrs, "server_document_err", fetchErr.Error())
			}
			p.log.Error("federation: a peer presents a new key that no key-change statement it keeps (certificate or server document) leads to from the pinned key; it is refused. "+
				"If its operator confirms the new key (compare the fingerprint with them out of band), configure it in FEDERATION_PEERS as name=host:port,KEY and restart", attrs...)
		}
	}
	return fmt.Errorf("%w: the key of %s changed (pinned %s, presented %s) without a valid key-change statement; if its operator confirms the new key, configure it in FEDERATION_PEERS",
		ErrUntrusted, name, pfp, fp)
}

// maxStuck bounds the refused keys remembered so that each is logged once.
const maxStuck = 1024

// follows reports whether changes hold a chain of valid statements for
// name from the key from to the key to. Each statement is used once, so
// the walk ends.
func follows(name privateline.ServerName, from, to ed25519.PublicKey, changes []KeyChange) bool {
	cur := from
	used := make([]bool, len(changes))
	for range len(changes) {
		i := -1
		for j, c := range changes {
			if !used[j] && c.Server == name && sameKey(c.OldKey, cur) && c.Verify() == nil {
				i = j
				break
			}
		}
		if i < 0 {
			return false
		}
		used[i] = true
		cur = changes[i].NewKey
		if sameKey(cur, to) {
			return true
		}
	}
	return false
}
