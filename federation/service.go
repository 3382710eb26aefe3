// Package federation carries messages between homeservers
// (spec/federation.md): a QUIC listener that receives signed transactions
// from peers, stores their entries for local users and answers with signed
// receipts; one sender per destination that delivers the durable outbox in
// order, at most two transactions in flight (the second committed after the
// first), with backoff; and the server document.
//
// The byte format and its one verification function are federation/wire;
// the authenticated links are federation/transport. Storage is the Store
// interface (implemented by *storage.DB).
package federation

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/federation/transport"
	"github.com/privateline/privateline/federation/wire"
	"github.com/privateline/privateline/serverkey"
	"github.com/privateline/privateline/storage"
)

// Store is what the federation service needs from storage (FED2.md);
// *storage.DB implements it.
type Store interface {
	// Outbox (the sender).
	OutboxDestinations() ([]privateline.ServerName, error)
	OutboxNext(dest privateline.ServerName, maxItems, maxBytes int, newID func() string) (*storage.OutboxTxn, error)
	// OutboxDone settles a receipt; the transaction recorded to follow
	// (OutboxPend) becomes the pending one. OutboxPeek reads the next
	// transaction ahead while one is in flight, and OutboxPend records it
	// to follow, to be sent at once (storage/outboxahead.go); either may
	// decline (nil, false) at any time.
	OutboxDone(dest privateline.ServerName, txnID string, results []storage.OutboxResult) error
	OutboxPeek(dest privateline.ServerName, after uint64, maxItems, maxBytes int, newID func() string) (*storage.OutboxTxn, error)
	OutboxPend(dest privateline.ServerName, after string, next *storage.OutboxTxn) (bool, error)
	OutboxAttemptFailed(dest privateline.ServerName, errText string) error
	OutboxExpire(dest privateline.ServerName, cutoff time.Time) (int, error)
	OutboxDepth() (map[privateline.ServerName]int, error)
	// Waiting for a destination (helper G): tell the senders of dest's
	// queued envelopes above sequence number after that they wait for it.
	OutboxWaiting(dest privateline.ServerName, after uint64) (uint64, error)

	// Inbound (the receiver).
	ReceiveTransaction(origin privateline.ServerName, txnID string, entries []storage.InboundEntry, now time.Time) (results []storage.InboundResult, replayed bool, err error)
	TransactionResults(origin privateline.ServerName, txnID string) ([]storage.InboundResult, bool, error)
	SeenEnvelopes(origin privateline.ServerName, ids []string) ([]bool, error)
	UserByName(name privateline.Username) (*storage.User, error)

	// Peer pins (trust on first contact).
	PeerPin(name privateline.ServerName) (ed25519.PublicKey, error)
	SetPeerPin(name privateline.ServerName, key ed25519.PublicKey) error

	// Key look-ups: the last verified head of each peer's key directory,
	// and the last verified answer per remote user (served again while
	// their server cannot be reached).
	PeerDirectoryHead(name privateline.ServerName) ([]byte, error)
	SetPeerDirectoryHead(name privateline.ServerName, head []byte) error
	RemoteLookup(a privateline.Address) ([]byte, error)
	SetRemoteLookup(a privateline.Address, lookup []byte) error
	DeleteRemoteLookup(a privateline.Address) error
	// RemoteKeyChanged tells the local contacts of a that a's keys changed.
	RemoteKeyChanged(a privateline.Address) (int, error)

	// Files across servers (files.go, spec §12.4): this server's file for
	// a peer's user (NotExist: unknown_file), and keeping a file fetched
	// from its origin after checking its size and SHA-256.
	FileForPeer(origin privateline.ServerName, requester privateline.Address, message, file string, now time.Time) (*storage.FileInfo, *os.File, error)
	StoreRemoteFile(origin privateline.ServerName, file string, body io.Reader, size int64, sum []byte, now time.Time) (*storage.FileInfo, error)
	// Tree-head witnessing (spec §12.6, witness.go): the latest
	// co-signature each witness made of this server's directory, and
	// fork evidence about peers' directories (kept at most
	// storage.MaxForksPerServer per server; added is false past that).
	Cosignature(witness privateline.ServerName) ([]byte, error)
	SetCosignature(witness privateline.ServerName, c []byte) error
	Cosignatures() ([][]byte, error)
	AddDirectoryFork(server privateline.ServerName, evidence []byte) (added bool, err error)
	DirectoryForks() ([][]byte, error)
	// Groups across servers (groups.go): a group's state for a member's
	// server, and the replica of a group of another server.
	GroupStateFor(id string, dest privateline.ServerName) ([]byte, error)
	ApplyGroupReplica(r *storage.GroupReplica) (bool, error)
	// A deleted user of another server leaves a group of this server
	// (leave.go, spec §12.1 group_leaves).
	RemoveDeletedMember(id string, member privateline.Address, joined uint64) error
	// Replica resync (groupsync.go, spec §12.1): the replicas kept here,
	// one of them, a group's state for a server with members of it (else
	// NotExist), and deleting a replica still at an era and version.
	GroupReplicas() ([]storage.ReplicaVersion, error)
	GroupReplicaOf(id string) (*storage.Group, error)
	GroupSyncState(id string, dest privateline.ServerName) ([]byte, error)
	DropGroupReplica(id string, era, version uint64) (bool, error)
	SweepGroupLastQueued() (int, error)
	// Lost epochs (groupsync.go, storage/fedepochs.go, spec §12.1): move
	// a group of this server past an epoch a replica on from held.
	RaiseGroupEpoch(id string, from privateline.ServerName, seen int64, seenEra uint64) (bool, error)
}

var _ Store = (*storage.DB)(nil)

// Peer is a configured peer (FEDERATION_PEERS, spec §5.1).
type Peer struct {
	Name privateline.ServerName
	Addr string            // host:port of its QUIC listener; "" = from its server document
	Key  ed25519.PublicKey // nil: pin on first contact
}

// Config configures a Service.
type Config struct {
	Name            privateline.ServerName
	Key             *serverkey.PrivateKey
	ListenAddr      string // UDP host:port of the QUIC listener ("127.0.0.1:0" in tests)
	AdvertiseAddr   string // host:port put in the server document; "" = the listener's address
	Peers           []Peer
	Allow, Deny     []privateline.ServerName
	DeliveryTimeout time.Duration // default 72h
	RatePerOrigin   float64       // transactions/s per origin, default 200
	Log             *slog.Logger
	Now             func() time.Time
	Registry        prometheus.Registerer // metrics (nil: none)
	HTTPClient      *http.Client          // fetching peers' server documents when no address is configured
	// Keys, if not nil, answers peers' key_request transactions (spec
	// §12.5) from the key directory (*keydir.Directory); nil refuses them
	// as unknown_type.
	Keys KeyDirectory
	// MaxFileSize is the largest file fetched from another server: the
	// client API's file limit (default wire.MaxFileSize).
	MaxFileSize int64
	// Gossip, if not nil, finds peers' QUIC addresses and liveness with
	// memberlist (spec §5.2, gossip.go); it never grants trust.
	Gossip *GossipConfig
	// Witness, if not nil, is this server's key directory, whose head the
	// peers are asked to co-sign (spec §12.6); nil asks no one. Witness
	// requests of peers are answered either way.
	Witness WitnessDirectory
	// WitnessInterval is how old a co-signature of the current tree may
	// get before the witness is asked again (default 10 min).
	WitnessInterval time.Duration
	// KeyChanges, oldest first, lead from the server's earlier identity
	// keys to Key (homeserver rotate-key, spec §2.2): the certificate
	// carries the last transport.MaxKeyChanges of them, the server
	// document all (at most 16), so peers that pinned an earlier key
	// follow them (rotate.go).
	KeyChanges []transport.KeyChange
	// RetryBase is the first wait after a failed delivery attempt (0:
	// spec §14's 1 s); tests lengthen it.
	RetryBase time.Duration
	// HoldDelivery, if not nil, is called before each delivery attempt
	// with the destination and returns when the attempt may go on (or
	// ctx, the service's, ends). Tests only: they hold deliveries to a
	// server back with it; nil (production) holds nothing.
	HoldDelivery func(ctx context.Context, to privateline.ServerName)
}

// Defaults and fixed settings (spec/federation.md §6.4, §11, §14).
const (
	DefaultDeliveryTimeout = 72 * time.Hour
	DefaultRatePerOrigin   = 200.0
	// ReplayRetention is how long a receiver keeps its replay records
	// (spec §13); the delivery timeout must be shorter.
	ReplayRetention = 7 * 24 * time.Hour

	// MaxConcurrentPerOrigin bounds the exchanges one origin may have in
	// progress at once, over all its connections (spec §11).
	MaxConcurrentPerOrigin = 32
	// ReadTimeout is the time a peer has to send its frame after opening a
	// stream (spec §6.4).
	ReadTimeout = 30 * time.Second
	// replyTimeout bounds the receiver's commit and answer.
	replyTimeout = 30 * time.Second
	// attemptTimeout bounds one delivery attempt after the link is up: the
	// peer's read window, its synced commit and its answer.
	attemptTimeout = 90 * time.Second
	// maxBackoff and baseBackoff are the retry schedule of spec §14.
	maxBackoff  = 300 * time.Second
	baseBackoff = time.Second
	// MaxTxnEntries is how many entries a transaction takes at most.
	MaxTxnEntries = wire.MaxEntries
	// MaxTxnPayload is the sum of envelope sizes one transaction takes at
	// most, so that the signed frame stays within wire.MaxFrame: base64
	// grows 3 bytes into 4 (plus padding), and each entry and the header
	// add their members (at most ~64 bytes per entry, ~1 KiB of header with
	// 255-byte server names). One largest envelope always fits.
	MaxTxnPayload = (wire.MaxFrame - 1024 - MaxTxnEntries*64) / 4 * 3
)

// Service is a homeserver's federation: the listener, the senders and the
// server document.
type Service struct {
	cfg    Config
	store  Store
	log    *slog.Logger
	now    func() time.Time
	id     *transport.Identity
	policy *transport.Policy
	lim    transport.Limits
	met    *metrics
	http   *http.Client

	// Test hooks: jitter returns U in [0.5, 1); base is the first backoff;
	// idleAfter is how long an idle sender lives.
	jitter    func() float64
	base      time.Duration
	idleAfter time.Duration
	// witnessPoll is how often the directory's head is checked for growth.
	witnessPoll time.Duration
	// lookupGrace: how long a key look-up with a kept answer waits for a
	// peer it has no link to (keygrace.go).
	lookupGrace time.Duration
	// headMu serializes updates of the last verified head per peer (key
	// look-ups and witness requests, spec §12.5, §12.6).
	headMu sync.Mutex
	// chains: peers' server documents fetched for their key-change
	// statements (rotate.go).
	chains docChains

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	started  bool
	closed   bool
	ln       *transport.Listener
	addrs    map[privateline.ServerName]string // configured or learnt addresses
	gaddrs   map[privateline.ServerName]string // addresses from gossip (below addrs, spec §5.2)
	gossip   *gossip                           // nil: no gossip
	senders  map[privateline.ServerName]*sender
	inbound  map[*transport.Conn]bool
	limiters map[privateline.ServerName]*bucket
	busy     map[privateline.ServerName]int // exchanges in progress per origin
	order    *order                         // commit order of queued transactions (order.go)
	doc      []byte
	docAt    int64 // created_at of doc, ms

	flights lookupFlights // key look-ups in progress in the background (keygrace.go)

	files  fileState    // file transfers (files.go)
	groups GroupHandler // forwarded group requests (groups.go); nil: refused
	rs     resync       // replica resyncs (groupsync.go)
}

// New checks cfg and returns a Service; Start makes it run.
func New(cfg Config, store Store) (*Service, error) {
	const op = "federation.New"
	if _, err := privateline.ParseServerName(string(cfg.Name)); err != nil {
		return nil, privateline.E(op, err)
	}
	if cfg.Key == nil {
		return nil, privateline.E(op, privateline.Invalid, "no identity key")
	}
	if store == nil {
		return nil, privateline.E(op, privateline.Invalid, "no store")
	}
	if cfg.DeliveryTimeout <= 0 {
		cfg.DeliveryTimeout = DefaultDeliveryTimeout
	}
	if cfg.DeliveryTimeout >= ReplayRetention {
		return nil, privateline.E(op, privateline.Invalid, "the delivery timeout must be shorter than the 7-day replay retention")
	}
	if cfg.RatePerOrigin <= 0 {
		cfg.RatePerOrigin = DefaultRatePerOrigin
	}
	if cfg.MaxFileSize <= 0 {
		cfg.MaxFileSize = wire.MaxFileSize
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.WitnessInterval <= 0 {
		cfg.WitnessInterval = DefaultWitnessInterval
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	id, err := newIdentity(cfg)
	if err != nil {
		return nil, privateline.E(op, privateline.Invalid, err)
	}
	s := &Service{
		cfg:       cfg,
		store:     store,
		log:       cfg.Log,
		now:       cfg.Now,
		id:        id,
		http:      cfg.HTTPClient,
		jitter:    func() float64 { return 0.5 + rand.Float64()/2 },
		base:      baseBackoff,
		idleAfter: idleExit,
		addrs:     map[privateline.ServerName]string{},
		gaddrs:    map[privateline.ServerName]string{},
		senders:   map[privateline.ServerName]*sender{},
		inbound:   map[*transport.Conn]bool{},
		limiters:  map[privateline.ServerName]*bucket{},
		busy:      map[privateline.ServerName]int{},
		order:     newOrder(),
	}
	if cfg.RetryBase > 0 {
		s.base = cfg.RetryBase
	}
	s.witnessPoll = witnessPoll
	s.lookupGrace, s.flights = lookupGrace, lookupFlights{}
	keys := map[privateline.ServerName]ed25519.PublicKey{}
	for _, p := range cfg.Peers {
		if _, err := privateline.ParseServerName(string(p.Name)); err != nil {
			return nil, privateline.E(op, err)
		}
		if p.Name == cfg.Name {
			return nil, privateline.E(op, privateline.Invalid, fmt.Sprintf("peer %s is this server", p.Name))
		}
		if p.Addr != "" {
			s.addrs[p.Name] = p.Addr
		}
		if p.Key != nil {
			keys[p.Name] = p.Key
		}
	}
	s.policy, err = transport.NewPolicy(transport.PolicyConfig{
		Peers:  keys,
		Pins:   pins{store},
		Allow:  cfg.Allow,
		Deny:   cfg.Deny,
		Logger: cfg.Log,
		Chain:  s.documentChain, // rotate.go
	})
	if err != nil {
		return nil, privateline.E(op, privateline.Invalid, err)
	}
	s.met = newMetrics(cfg.Registry, store)
	if cfg.Gossip != nil {
		if err := checkGossipConfig(cfg.Gossip); err != nil {
			return nil, privateline.E(op, privateline.Invalid, err)
		}
		s.gossip = newGossip(s, *cfg.Gossip)
	}
	if err := s.resignCosignedHeads(); err != nil {
		return nil, privateline.E(op, err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// pins keeps first-contact pins in the Store (transport.PinStore).
type pins struct{ st Store }

func (p pins) Pin(name privateline.ServerName) (ed25519.PublicKey, error) { return p.st.PeerPin(name) }
func (p pins) SetPin(name privateline.ServerName, key ed25519.PublicKey) error {
	return p.st.SetPeerPin(name, key)
}

// Start binds the listener, starts the accept loop and a sender for every
// destination with queued work.
func (s *Service) Start() error {
	const op = "federation.Start"
	s.mu.Lock()
	if s.started || s.closed {
		s.mu.Unlock()
		return privateline.E(op, privateline.Invalid, "already started or closed")
	}
	ln, err := transport.Listen(s.cfg.ListenAddr, s.id, s.policy, s.lim)
	if err != nil {
		s.mu.Unlock()
		return privateline.E(op, privateline.Unavailable, err)
	}
	s.ln = ln
	if _, err := s.documentLocked(); err != nil {
		s.ln = nil
		s.mu.Unlock()
		ln.Close()
		return privateline.E(op, err)
	}
	if s.gossip != nil {
		quic := s.cfg.AdvertiseAddr
		if quic == "" {
			quic = ln.Addr().String()
		}
		// Memberlist calls back into s (gossipSeen) before start
		// returns; those calls do nothing until started is set.
		s.mu.Unlock()
		err := s.gossip.start(quic)
		s.mu.Lock()
		if err == nil && s.closed { // Close ran meanwhile and closed ln
			s.mu.Unlock()
			s.gossip.close()
			return privateline.E(op, privateline.Unavailable, errClosed)
		}
		if err != nil {
			s.ln = nil
			s.mu.Unlock()
			ln.Close()
			return privateline.E(op, privateline.Unavailable, err)
		}
	}
	// From here Wake starts senders; the destinations read below include
	// every item queued before, so none is missed.
	s.started = true
	s.wg.Add(1)
	go s.acceptLoop(ln)
	if s.cfg.Witness != nil {
		s.wg.Add(1)
		go s.witnessLoop()
	}
	s.wg.Add(1)
	go s.resyncAll() // groupsync.go
	s.mu.Unlock()

	dests, err := s.store.OutboxDestinations() // without s.mu: the store may call Wake
	if err != nil {
		s.Close()
		return privateline.E(op, err)
	}
	s.mu.Lock()
	if !s.closed {
		for _, d := range dests {
			s.senderLocked(d).poke(false)
		}
	}
	s.mu.Unlock()
	s.log.Info("federation: listening", "addr", ln.Addr().String(), "server", string(s.cfg.Name),
		"key", serverkey.Fingerprint(s.cfg.Key.Public()), "destinations", len(dests))
	return nil
}

// Addr returns the listener's UDP address ("" before Start).
func (s *Service) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Wake tells the sender for dest that it has new work (the storage's outbox
// notifier calls it): an idle sender attempts a delivery at once; one that
// is backing off after failures keeps its backoff (spec §14), so new
// messages to a server that is down do not make attempts more frequent.
func (s *Service) Wake(dest privateline.ServerName) { s.wake(dest, false) }

// Retry tells the sender for dest that the destination is back (an
// operator, a test, gossip): it resets the backoff and attempts at once.
func (s *Service) Retry(dest privateline.ServerName) { s.wake(dest, true) }

func (s *Service) wake(dest privateline.ServerName, reset bool) {
	if dest == s.cfg.Name {
		return
	}
	if _, err := privateline.ParseServerName(string(dest)); err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started || s.closed {
		return
	}
	s.senderLocked(dest).poke(reset)
	if reset {
		s.resyncPoke(dest) // groupsync.go
	}
}

// SetPeerAddr sets the QUIC address of a peer learnt after New (tests,
// gossip). The peer's sender drops its link and, with the backoff reset,
// tries the new address at once: a peer that moved is a peer come back.
func (s *Service) SetPeerAddr(name privateline.ServerName, addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addrs[name] = addr
	if sd := s.senders[name]; sd != nil {
		sd.dropLink()
		sd.poke(true)
	}
	s.resyncPoke(name) // groupsync.go
}

// Close stops the senders and the listener, closes every link and waits
// for the service's goroutines. Queued and pending work stays in the
// outbox for the next start.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	leave := s.started && s.gossip != nil
	s.mu.Unlock()
	if leave {
		s.gossip.close() // without s.mu: memberlist's callbacks take it
	}
	s.mu.Lock()
	s.cancel()
	ln := s.ln
	for c := range s.inbound {
		c.Close()
	}
	for _, sd := range s.senders {
		sd.dropLink()
	}
	s.mu.Unlock()
	var err error
	if ln != nil {
		err = ln.Close()
	}
	s.wg.Wait()
	return err
}

// senderLocked returns dest's sender, starting it if needed. s.mu is held.
func (s *Service) senderLocked(dest privateline.ServerName) *sender {
	sd := s.senders[dest]
	if sd == nil {
		sd = &sender{s: s, dest: dest, wake: make(chan bool, 1)}
		s.senders[dest] = sd
		s.wg.Add(1)
		go sd.run()
	}
	return sd
}

// addrOf returns the address of dest, if any: configured or set
// (SetPeerAddr), else learnt from gossip (spec §5.2).
func (s *Service) addrOf(dest privateline.ServerName) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.addrs[dest]; a != "" {
		return a
	}
	return s.gaddrs[dest]
}

// errClosed is returned by operations interrupted by Close.
var errClosed = errors.New("federation: the service is closed")
