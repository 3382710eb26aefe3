// Package homeserver assembles one PrivateLine homeserver: it turns a
// Config into a running server (storage, client API, metrics, background
// jobs), and owns start-up and graceful shutdown.
package homeserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clientapi"
	"github.com/privateline/privateline/federation"
	"github.com/privateline/privateline/keydir"
	"github.com/privateline/privateline/keylog"
	"github.com/privateline/privateline/push"
	"github.com/privateline/privateline/serverkey"
	"github.com/privateline/privateline/storage"
)

// Options are the parts of a server that tests replace.
type Options struct {
	Log *slog.Logger     // nil: discard
	Now func() time.Time // nil: time.Now
	// InMemoryStore keeps the store in memory (tests).
	InMemoryStore bool
	// EventWindow, if set, overrides how many events the store keeps per
	// user (storage.EventWindow), for tests of the resynchronisation path.
	EventWindow int
	// Push points the push senders at local fakes (tests).
	Push PushHooks
}

// Server is a configured homeserver.
type Server struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	db       *storage.DB
	identity *serverkey.PrivateKey
	dir      *keydir.Directory
	api      *clientapi.API
	fed      *federation.Service // nil: federation is off
	push     *push.Service       // nil: no platform is configured
	registry *prometheus.Registry

	// keyChanges lead from earlier identity keys to identity (rotate.go).
	keyChanges []keylog.ServerKeyChange

	shuttingDown atomic.Bool
	shutdownOnce sync.Once
	shutdownErr  error

	http    *http.Server
	metrics *http.Server
	ln      net.Listener
	mln     net.Listener
	stop    context.CancelFunc
	done    chan struct{}
}

// New prepares a homeserver: it validates the configuration, fills
// development secrets, and opens the store. It does not listen yet.
func New(cfg Config, o Options) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for _, n := range cfg.Notices {
		log.Warn(n)
	}
	if err := ensureSecrets(&cfg, log); err != nil {
		return nil, err
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	senders, webPush, err := pushSenders(cfg, o.Push)
	if err != nil {
		return nil, err
	}
	db, err := storage.Open(storage.Options{
		Dir:      filepath.Join(cfg.DataDir, "store"),
		InMemory: o.InMemoryStore,
		Key:      cfg.AESKey,
		Logger:   log.With("component", "storage"),
		FilesDir: filepath.Join(cfg.DataDir, "files"),
		// docs/benchmarks.md, federation: larger memtables, less CPU per message.
		MemTableBytes: uint64(cfg.StoreMemTableBytes),

		EventWindow: o.EventWindow,
	})
	if err != nil {
		return nil, fmt.Errorf("opening the store in %s: %w", cfg.DataDir, err)
	}
	// The identity is read with the store open: the store's lock keeps
	// homeserver rotate-key from changing it meanwhile (rotate.go).
	identity, keyChanges, err := loadIdentity(cfg, log)
	if err != nil {
		db.Close()
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, now: now, db: db, identity: identity, keyChanges: keyChanges, registry: prometheus.NewRegistry(), done: make(chan struct{})}
	s.dir = keydir.New(cfg.ServerName, db, identity, now)
	if err := s.adoptKeyChanges(); err != nil {
		db.Close()
		return nil, err
	}
	s.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), storageCollector{db})
	deps := clientapi.Deps{
		Store:    db,
		Log:      log.With("component", "clientapi"),
		Now:      now,
		Registry: s.registry,
		Ready:    func() bool { return !s.shuttingDown.Load() },

		Directory: s.dir,
		Messages:  db,
		Events:    db,
		Groups:    db,
	}
	if cfg.FederationListenAddr != "" {
		if s.fed, err = federation.New(federationConfig(cfg, identity, s.dir, log, now, s.registry), db); err != nil {
			db.Close()
			return nil, err
		}
		deps.Remote, deps.ServerDocument = s.fed, s.fed.Document
		deps.RemoteFiles = s.fed  // files of other servers (spec/federation.md §12.4)
		deps.Witnessing = s.fed   // tree-head witnessing (spec/federation.md §12.6)
		deps.RemoteGroups = s.fed // groups across servers
	}
	if len(senders) > 0 {
		s.push = push.New(push.Config{Senders: senders, Log: log.With("component", "push"), Registry: s.registry}, db)
		deps.Push = s.push
		log.Info("push notifications on", "platforms", s.push.Platforms())
	}
	if webPush != nil {
		deps.WebPush = webPush
	}
	s.api, err = clientapi.New(clientapi.Config{
		ServerName:            cfg.ServerName,
		JWTSecret:             cfg.JWTSecret,
		ServerSecret:          cfg.AESKey,
		CORSOrigins:           cfg.CORSOrigins,
		TrustedProxies:        cfg.TrustedProxies,
		CookieSecure:          cfg.CookieSecure,
		CookieSameSite:        cfg.CookieSameSite,
		CookieCSRF:            cfg.CookieCSRF,
		CSP:                   cfg.CSP,
		HSTS:                  cfg.HSTS,
		WebRoot:               cfg.WebRoot,
		AuthRatePerMinute:     cfg.AuthRatePerMinute,
		AuthBurst:             cfg.AuthBurst,
		UsernameRatePerMinute: cfg.UsernameRatePerMinute,
		UsernameBurst:         cfg.UsernameBurst,
		MessageRatePerMinute:  cfg.MessageRatePerMinute,
		MessageBurst:          cfg.MessageBurst,
		MaxFileSize:           cfg.MaxFileSize,
		FileQuotaBytes:        cfg.FileQuotaBytes,
		FileRatePerMinute:     cfg.FileUploadRatePerMin,
		FileBurst:             cfg.FileUploadBurst,
		WSPingInterval:        cfg.WSPingInterval,
		WSQueueLimit:          cfg.WSQueueLimit,
		AccessTokenTTL:        cfg.AccessTokenTTL,
		RefreshTokenTTL:       cfg.RefreshTokenTTL,
	}, deps)
	if err != nil {
		if s.push != nil {
			s.push.Close()
		}
		db.Close()
		return nil, err
	}
	// Committed events go to the WebSockets (clientapi's hub), committed
	// outbox items to their destination's federation sender.
	db.SetNotifier(s.api.Notify)
	if s.fed != nil {
		db.SetOutboxNotifier(s.fed.Wake)
		s.fed.SetGroupHandler(s.api) // peers' group requests run the client API's group operations
	}
	return s, nil
}

// federationConfig is the federation part of cfg.
func federationConfig(cfg Config, key *serverkey.PrivateKey, dir *keydir.Directory, log *slog.Logger, now func() time.Time, reg prometheus.Registerer) federation.Config {
	fc := federation.Config{
		Name:            cfg.ServerName,
		Key:             key,
		ListenAddr:      cfg.FederationListenAddr,
		AdvertiseAddr:   cfg.FederationAdvertiseAddr,
		Allow:           cfg.FederationAllow,
		Deny:            cfg.FederationDeny,
		DeliveryTimeout: cfg.FederationDeliveryTimeout,
		RatePerOrigin:   cfg.FederationRatePerOrigin,
		Log:             log.With("component", "federation"),
		Now:             now,
		Registry:        reg,
		Keys:            dir,
		MaxFileSize:     cfg.MaxFileSize,
		Witness:         dir, // peers co-sign this directory's head (§12.6)
		WitnessInterval: cfg.FederationWitnessInterval,
		// A rotated key's statements (rotate.go).
		KeyChanges: dir.KeyChanges(),
		// Server documents (unknown names: federation.ErrUnknownServer).
		HTTPClient: cfg.FederationHTTPClient,
		RetryBase:  cfg.FederationRetryBase,
		// Tests only: holds deliveries back (nil in production).
		HoldDelivery: cfg.FederationHoldDelivery,
	}
	for _, p := range cfg.FederationPeers {
		fc.Peers = append(fc.Peers, federation.Peer{Name: p.Name, Addr: p.Addr, Key: p.Key})
	}
	if cfg.FederationGossipAddr != "" {
		fc.Gossip = &federation.GossipConfig{
			BindAddr:      cfg.FederationGossipAddr,
			AdvertiseAddr: cfg.FederationGossipAdvertise,
			Seeds:         cfg.FederationSeeds,
			Key:           cfg.FederationGossipKey,
		}
	}
	return fc
}

// FederationAddr is the UDP address of the federation listener (after
// Start), or "" when federation is off.
func (s *Server) FederationAddr() string {
	if s.fed == nil {
		return ""
	}
	return s.fed.Addr()
}

// GossipAddr is the gossip ip:port this server advertises (after Start),
// or "" when gossip is off.
func (s *Server) GossipAddr() string {
	if s.fed == nil {
		return ""
	}
	return s.fed.GossipAddr()
}

// FederationMembers is the gossip cluster as this server sees it (nil
// when gossip is off): for operators' tools and tests.
func (s *Server) FederationMembers() []federation.Member {
	if s.fed == nil {
		return nil
	}
	return s.fed.Members()
}

// SetPeerAddr tells federation where a peer listens (tests that start
// servers on port 0 before they know each other's addresses).
func (s *Server) SetPeerAddr(name privateline.ServerName, addr string) {
	if s.fed != nil {
		s.fed.SetPeerAddr(name, addr)
	}
}

// Handler is the client API handler (for tests that serve it themselves).
func (s *Server) Handler() http.Handler { return s.api }

// API is the client API (for contract tests that list its routes).
func (s *Server) API() *clientapi.API { return s.api }

// Start listens on LISTEN_ADDR (and METRICS_ADDR) and serves in the
// background until Shutdown.
func (s *Server) Start() error {
	var err error
	if s.ln, err = net.Listen("tcp", s.cfg.ListenAddr); err != nil {
		return fmt.Errorf("LISTEN_ADDR %s: %w", s.cfg.ListenAddr, err)
	}
	if s.cfg.MetricsAddr != "" {
		if s.mln, err = net.Listen("tcp", s.cfg.MetricsAddr); err != nil {
			s.ln.Close()
			return fmt.Errorf("METRICS_ADDR %s: %w", s.cfg.MetricsAddr, err)
		}
	}
	if s.fed != nil {
		if err := s.fed.Start(); err != nil {
			s.ln.Close()
			if s.mln != nil {
				s.mln.Close()
			}
			return fmt.Errorf("FEDERATION_LISTEN_ADDR %s: %w", s.cfg.FederationListenAddr, err)
		}
	}
	s.http = &http.Server{
		Handler:           s.api,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	go s.serve(s.http, s.ln)
	if s.mln != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
		mux.Handle("GET /healthz", s.api)
		mux.Handle("GET /readyz", s.api)
		s.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
		go s.serve(s.metrics, s.mln)
	}
	go func() {
		defer close(s.done)
		s.sweep(ctx)
	}()
	s.log.Info("homeserver started", "server_name", string(s.cfg.ServerName), "addr", s.ln.Addr().String(), "metrics_addr", s.MetricsAddr(),
		"federation_addr", s.FederationAddr(), "gossip_addr", s.GossipAddr(), "env", s.cfg.Env)
	return nil
}

func (s *Server) serve(hs *http.Server, ln net.Listener) {
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.log.Error("http server stopped", "err", err)
	}
}

// Addr is the address the client API listens on (after Start).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// MetricsAddr is the address of the metrics listener, or "".
func (s *Server) MetricsAddr() string {
	if s.mln == nil {
		return ""
	}
	return s.mln.Addr().String()
}

// sweepInterval is how often expired sessions and token denials go;
// messageSweepInterval how often expired envelopes go (they are never
// served after their expiry in any case).
const (
	sweepInterval        = 10 * time.Minute
	messageSweepInterval = time.Minute
)

func (s *Server) sweep(ctx context.Context) {
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	mt := time.NewTicker(messageSweepInterval)
	defer mt.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := s.db.Sweep(s.now()); err != nil {
				s.log.Error("sweep failed", "err", err)
			} else if n > 0 {
				s.log.Debug("swept expired records", "count", n)
			}
		case <-mt.C:
			s.sweepMessages()
		}
	}
}

// sweepMessages deletes, by the injected clock's now, the envelopes that
// expired (with the files only they used), the files never referenced
// within the grace period, and the tombstones past their TTL. It returns
// how many envelopes went.
func (s *Server) sweepMessages() int {
	now := s.now()
	n, err := s.db.SweepMessages(now)
	if err != nil {
		s.log.Error("message sweep failed", "err", err)
	} else if n > 0 {
		s.log.Debug("swept expired messages", "count", n)
	}
	if f, err := s.db.SweepFiles(now, s.cfg.FileUnreferencedGrace); err != nil {
		s.log.Error("file sweep failed", "err", err)
	} else if f > 0 {
		s.log.Debug("swept unreferenced files", "count", f)
	}
	if t, err := s.db.SweepTombstones(now); err != nil {
		s.log.Error("tombstone sweep failed", "err", err)
	} else if t > 0 {
		s.log.Debug("swept tombstones", "count", t)
	}
	if r, err := s.db.SweepReplay(now.Add(-federation.ReplayRetention)); err != nil {
		s.log.Error("federation replay sweep failed", "err", err)
	} else if r > 0 {
		s.log.Debug("swept federation replay records", "count", r)
	}
	return n
}

// Shutdown stops accepting requests, lets running ones finish (up to the
// configured timeout), stops background jobs and closes the store.
// Calling it again returns the first call's result.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() { s.shutdownErr = s.shutdown(ctx) })
	return s.shutdownErr
}

func (s *Server) shutdown(ctx context.Context) error {
	s.shuttingDown.Store(true)
	var errs []error
	if s.http != nil {
		ctx, cancel := context.WithTimeout(ctx, s.cfg.ShutdownTimeout)
		defer cancel()
		errs = append(errs, s.http.Shutdown(ctx))
		if s.metrics != nil {
			errs = append(errs, s.metrics.Shutdown(ctx))
		}
		s.stop()
		<-s.done
	}
	// Hijacked WebSockets are not the HTTP server's: close them and wait
	// until none reads the store. Federation stops before the store closes;
	// its unsent work stays in the outbox.
	s.api.CloseSockets()
	if s.fed != nil {
		errs = append(errs, s.fed.Close())
	}
	if s.push != nil { // pending notifications are dropped: they are best effort
		s.push.Close()
	}
	errs = append(errs, s.db.Close())
	s.log.Info("homeserver stopped")
	return errors.Join(errs...)
}

// Run starts the server and blocks until ctx is done, then shuts down.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(); err != nil {
		s.db.Close()
		return err
	}
	<-ctx.Done()
	s.log.Info("shutting down")
	return s.Shutdown(context.Background())
}
