package clientapi

import (
	"crypto/hkdf"
	"crypto/sha256"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime"
	"time"

	"github.com/gorilla/websocket"
	"github.com/julienschmidt/httprouter"
	"github.com/privateline/privateline"
	"github.com/privateline/privateline/storage"
	"github.com/prometheus/client_golang/prometheus"
)

// Store is what the client API needs from storage.
type Store interface {
	UserByID(storage.ID) (*storage.User, error)
	UserByName(privateline.Username) (*storage.User, error)
	UpdateUser(u *storage.User, revokeOthers bool, keep storage.ID) error
	CreateSession(*storage.Session) error
	SessionByID(storage.ID) (*storage.Session, error)
	RotateSession(id storage.ID, gen uint64, expires time.Time) (*storage.Session, error)
	RevokeSession(id storage.ID, tokenID string, tokenExpiry time.Time) error
	RevokeUserSessions(userID storage.ID, tokenID string, tokenExpiry time.Time) error
	TokenDenied(tokenID string) (bool, error)
	UserSessions(userID storage.ID) ([]storage.ID, error)
	Ping() error
}

// Config is the client API's part of the homeserver configuration.
type Config struct {
	ServerName privateline.ServerName
	JWTSecret  privateline.Secret // signs access tokens; CSRF key derived from it
	// ServerSecret seeds the fake prelogin salts (the homeserver passes
	// AES_KEY; a subkey is derived with HKDF).
	ServerSecret privateline.Secret

	CORSOrigins []string
	// TrustedProxies are the reverse proxies whose X-Forwarded-For is
	// believed when keying rate limits by client address.
	TrustedProxies []netip.Prefix
	CookieSecure   bool
	CookieSameSite http.SameSite
	CookieCSRF     bool
	CSP            string
	HSTS           bool
	// WebRoot is the built web client, served at / (webapp.go); empty:
	// none.
	WebRoot string

	AuthRatePerMinute     float64
	AuthBurst             int
	UsernameRatePerMinute float64
	UsernameBurst         int
	// MessageRatePerMinute and MessageBurst limit sending per user
	// (defaults DefaultMessageRatePerMinute, DefaultMessageBurst).
	MessageRatePerMinute float64
	MessageBurst         int
	// MaxFileSize caps an uploaded blob (default DefaultMaxFileSize);
	// FileQuotaBytes caps the bytes of a user's live files (default
	// DefaultFileQuotaBytes); FileRatePerMinute and FileBurst limit
	// uploads per user.
	MaxFileSize       int64
	FileQuotaBytes    int64
	FileRatePerMinute float64
	FileBurst         int
	// WSPingInterval is how often WebSockets are pinged; one silent for
	// twice as long is closed (default DefaultWSPingInterval).
	WSPingInterval time.Duration
	// WSQueueLimit is how many frames may wait for a WebSocket before it is
	// closed as too slow (default DefaultWSQueueLimit).
	WSQueueLimit int

	AccessTokenTTL  time.Duration
	RefreshTokenTTL time.Duration
	// MaxBodyBytes caps JSON request bodies (default 64 KiB).
	MaxBodyBytes int64
	// Argon2Concurrency bounds simultaneous Argon2id computations (default
	// the number of CPUs); each uses 19 MiB.
	Argon2Concurrency int
}

// Deps are the client API's collaborators.
type Deps struct {
	Store    Store
	Log      *slog.Logger
	Now      func() time.Time      // the clock; default time.Now
	Registry prometheus.Registerer // request metrics; nil skips them
	// Ready reports whether the server accepts traffic (false while
	// shutting down); nil means always.
	Ready func() bool
	// Directory is the key directory; nil makes registration, account
	// deletion and the key routes answer 503.
	Directory Directory
	// Messages stores direct messages; nil uses Store if it is one, else
	// the message routes answer 503.
	Messages MessageStore
	// Files, Retention and PushTokens, like Messages: nil uses Store if
	// it is one, else their routes answer 503.
	Files      FileStore
	Retention  RetentionStore
	PushTokens PushTokenStore
	// Events is the event log for the WebSocket; nil uses Messages or
	// Store if either is one, else the WebSocket answers 503.
	Events EventStore
	// Groups stores groups; nil uses Store if it is one, else the group
	// routes answer 503.
	Groups GroupStore
	// Remote looks up other servers' users; nil: this server does not
	// federate (their addresses are refused with 400).
	Remote RemoteKeys
	// RemoteGroups forwards changes of groups of other servers to them
	// (fedgroups.go); nil: such changes answer 503, and groups take no
	// members of other servers.
	RemoteGroups RemoteGroups
	// ServerDocument returns the signed federation server document
	// (spec/federation.md §2.1); nil: this server does not federate.
	ServerDocument func() ([]byte, error)
	// RemoteFiles fetches files of other servers for their recipients
	// here (spec/federation.md §12.4; files.go); nil: GET /api/files/{id}
	// serves only this server's files.
	RemoteFiles RemoteFiles
	// Witnessing serves co-signatures of the directory's head and fork
	// evidence (witness.go); nil answers empty lists.
	Witnessing Witnessing
	// Push hears of every user who should be woken by a push notification
	// (a message arrived and none of the user's sockets is open); nil: no
	// push notifications.
	Push Pusher
	// WebPush is this server's Web Push identity; nil: Web Push is off
	// (GET /api/push/vapid-public-key answers {"available": false}).
	WebPush WebPushInfo
}

// Pusher queues push notifications (*push.Service). Notify must never
// block: it is called from the store's notifier.
type Pusher interface {
	Notify(user storage.ID)
}

// WebPushInfo is what the routes need of the Web Push sender (*push.WebPush).
type WebPushInfo interface {
	PublicKey() string                   // the VAPID public key, base64url
	CheckEndpoint(endpoint string) error // nil if subscriptions to it may be pushed to
}

// API serves the client routes.
type API struct {
	cfg       Config
	store     Store
	dir       Directory
	msgs      MessageStore
	files     FileStore
	retention RetentionStore
	push      PushTokenStore
	events    EventStore
	grps      GroupStore
	remote    RemoteKeys
	serverDoc func() ([]byte, error)
	rfiles    RemoteFiles
	witness   Witnessing
	webPush   WebPushInfo
	log       *slog.Logger
	now       func() time.Time
	ready     func() bool

	remoteGroups RemoteGroups  // changes of groups of other servers (fedgroups.go)
	keyWaiters   chan struct{} // key look-ups waiting for their epoch's key (groupkeywait.go)
	keyWait      time.Duration // how long one waits (keyWait; tests shorten it)

	router      *httprouter.Router
	handler     http.Handler
	metrics     *metrics
	csrfKey     []byte
	preloginKey []byte
	argon2      chan struct{} // semaphore
	ipLimit     *limiter
	nameLimit   *limiter
	msgLimit    *limiter // per user id
	fileLimit   *limiter // uploads per user id

	hub      *hub
	tickets  *wsTickets
	upgrader websocket.Upgrader
}

// New returns the client API.
func New(cfg Config, d Deps) (*API, error) {
	const op = "clientapi.New"
	if len(cfg.JWTSecret) < 32 || len(cfg.ServerSecret) < 32 {
		return nil, privateline.E(op, privateline.Invalid, "JWT secret and server secret must be at least 32 bytes")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 64 << 10
	}
	if cfg.Argon2Concurrency <= 0 {
		cfg.Argon2Concurrency = runtime.NumCPU()
	}
	a := &API{cfg: cfg, store: d.Store, dir: d.Directory, remote: d.Remote, serverDoc: d.ServerDocument, rfiles: d.RemoteFiles, webPush: d.WebPush, log: d.Log, now: d.Now, ready: d.Ready}
	a.remoteGroups = d.RemoteGroups
	a.keyWaiters, a.keyWait = make(chan struct{}, maxKeyWaiters), keyWait
	if a.dir == nil {
		a.dir = noDirectory{}
	}
	a.witness = d.Witnessing
	a.msgs = d.Messages
	if a.msgs == nil {
		if ms, ok := d.Store.(MessageStore); ok {
			a.msgs = ms
		} else {
			a.msgs = noMessages{}
		}
	}
	a.files, a.retention, a.push = d.Files, d.Retention, d.PushTokens
	if a.files == nil {
		a.files = pick[FileStore](d.Store, noFiles{})
	}
	if a.retention == nil {
		a.retention = pick[RetentionStore](d.Store, noRetention{})
	}
	if a.push == nil {
		a.push = pick[PushTokenStore](d.Store, noPushTokens{})
	}
	if cfg.MaxFileSize <= 0 {
		cfg.MaxFileSize = DefaultMaxFileSize
	}
	if cfg.FileQuotaBytes <= 0 {
		cfg.FileQuotaBytes = DefaultFileQuotaBytes
	}
	if cfg.FileRatePerMinute <= 0 {
		cfg.FileRatePerMinute = DefaultFileRatePerMin
	}
	if cfg.FileBurst <= 0 {
		cfg.FileBurst = DefaultFileBurst
	}
	a.events = d.Events
	if a.events == nil {
		if es, ok := a.msgs.(EventStore); ok {
			a.events = es
		} else if es, ok := d.Store.(EventStore); ok {
			a.events = es
		} else {
			a.events = noEvents{}
		}
	}
	if cfg.WSPingInterval <= 0 {
		cfg.WSPingInterval = DefaultWSPingInterval
	}
	if cfg.WSQueueLimit <= 0 {
		cfg.WSQueueLimit = DefaultWSQueueLimit
	}
	a.grps = d.Groups
	if a.grps == nil {
		a.grps = pick[GroupStore](d.Store, noGroups{})
	}
	if cfg.MessageRatePerMinute <= 0 {
		cfg.MessageRatePerMinute = DefaultMessageRatePerMinute
	}
	if cfg.MessageBurst <= 0 {
		cfg.MessageBurst = DefaultMessageBurst
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.ready == nil {
		a.ready = func() bool { return true }
	}
	var err error
	if a.csrfKey, err = hkdf.Key(sha256.New, cfg.JWTSecret.Bytes(), nil, "privateline/v1/csrf", 32); err != nil {
		return nil, privateline.E(op, err)
	}
	if a.preloginKey, err = hkdf.Key(sha256.New, cfg.ServerSecret.Bytes(), nil, "privateline/v1/prelogin-salt", 32); err != nil {
		return nil, privateline.E(op, err)
	}
	a.argon2 = make(chan struct{}, cfg.Argon2Concurrency)
	a.ipLimit = newLimiter(cfg.AuthRatePerMinute/60, cfg.AuthBurst, a.now)
	a.nameLimit = newLimiter(cfg.UsernameRatePerMinute/60, cfg.UsernameBurst, a.now)
	a.msgLimit = newLimiter(cfg.MessageRatePerMinute/60, cfg.MessageBurst, a.now)
	a.fileLimit = newLimiter(cfg.FileRatePerMinute/60, cfg.FileBurst, a.now)
	a.cfg = cfg
	a.metrics = newMetrics(d.Registry)
	a.hub = newHub(d.Push)
	a.tickets = newWSTickets()
	a.upgrader = a.newUpgrader()
	a.router = a.newRouter()
	a.handler = a.middleware(a.router)
	return a, nil
}

// pick returns s as a T if it is one, else def.
func pick[T any](s any, def T) T {
	if v, ok := s.(T); ok {
		return v
	}
	return def
}

// ServeHTTP serves the client API.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.handler.ServeHTTP(w, r) }

// Notify hands committed events to the WebSockets of their users; it is
// the store's notifier (storage.DB.SetNotifier) and never blocks.
func (a *API) Notify(evs []storage.UserEvent) { a.hub.notify(evs) }

// OpenSockets is the number of WebSockets open now.
func (a *API) OpenSockets() int { return a.hub.count() }

// CloseSockets closes every WebSocket (the server is going away) and
// waits until none uses the store; no new one is accepted. Call it after
// the HTTP server stopped and before the store closes.
func (a *API) CloseSockets() { a.hub.shutdown() }
