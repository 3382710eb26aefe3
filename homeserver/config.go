package homeserver

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clientapi"
	"github.com/privateline/privateline/federation"
)

// Config is everything a homeserver is told by its operator. LoadConfig
// fills it from the environment (and .env); Validate checks it.
type Config struct {
	Env        string                 // PRIVATELINE_ENV: "development" (default) or "production"
	ServerName privateline.ServerName // SERVER_NAME
	ListenAddr string                 // LISTEN_ADDR
	DataDir    string                 // DATA_DIR
	// MetricsAddr serves /metrics, /healthz and /readyz; "" disables it.
	MetricsAddr string // METRICS_ADDR

	JWTSecret privateline.Secret // JWT_SECRET_KEY
	AESKey    privateline.Secret // AES_KEY (32 bytes)

	CORSOrigins    []string       // CORS_ORIGINS, comma-separated
	TrustedProxies []netip.Prefix // TRUSTED_PROXIES, comma-separated IPs or CIDRs
	CookieSecure   bool           // JWT_COOKIE_SECURE
	CookieSameSite http.SameSite  // JWT_COOKIE_SAMESITE
	CookieCSRF     bool           // JWT_COOKIE_CSRF_PROTECT
	MaxFileSize    int64          // MAX_FILE_SIZE, bytes of one encrypted blob
	CSP            string         // CONTENT_SECURITY_POLICY
	HSTS           bool           // HSTS_ENABLED
	WebRoot        string         // WEB_ROOT: the built web client served at /; empty: none
	// StoreMemTableBytes sizes the store's Pebble memtables (0:
	// storage.DefaultMemTableBytes, 16 MiB). Larger ones cost less CPU per
	// message written up to a point (fewer flushes and compactions;
	// docs/benchmarks.md) and add up to about twice their size to the
	// resident memory of a busy server.
	StoreMemTableBytes int64 // STORE_MEMTABLE_BYTES

	EncryptedLogKey  privateline.Secret // ENCRYPTED_LOG_KEY (32 bytes) or nil
	LogPath          string             // LOG_PATH
	LogRetentionDays int                // LOG_RETENTION_DAYS; 0 disables rotation
	LoggingDisabled  bool               // LOGGING_DISABLED
	SentryDSN        string             // SENTRY_DSN

	// Push notifications (package push). A platform is on when its
	// credentials are set. Values marked "PEM" take the PEM text itself or
	// the path of a file holding it.
	APNSCert           string   // APNS_CERT: PEM, the provider certificate and its key, or
	APNSCertPassword   string   // APNS_CERT_PASSWORD: for an encrypted key in APNS_CERT
	APNSKey            string   // APNS_KEY: PEM, the .p8 signing key (token authentication)
	APNSKeyID          string   // APNS_KEY_ID: the signing key's id
	APNSTeamID         string   // APNS_TEAM_ID
	APNSTopic          string   // APNS_TOPIC: the app's bundle id
	APNSUseSandbox     bool     // APNS_USE_SANDBOX: the development environment
	VAPIDPrivateKey    string   // VAPID_PRIVATE_KEY: PEM, or base64url of the raw key
	VAPIDSubject       string   // VAPID_SUBJECT: mailto: or https: contact of the operator
	WebPushHosts       []string // WEB_PUSH_ALLOWED_HOSTS: push services allowed ("host" or ".suffix"); nil: push.DefaultWebPushHosts
	FCMCredentialsFile string   // FCM_CREDENTIALS_FILE: a service-account key file
	FCMServerKey       string   // FCM_SERVER_KEY: the retired legacy API's key, refused with advice

	// AuthRatePerMinute and AuthBurst limit prelogin/register/login per
	// client IP; UsernameRatePerMinute and UsernameBurst per username.
	AuthRatePerMinute     float64 // AUTH_RATE_PER_MINUTE
	AuthBurst             int     // AUTH_RATE_BURST
	UsernameRatePerMinute float64 // LOGIN_RATE_PER_MINUTE
	UsernameBurst         int     // LOGIN_RATE_BURST
	// MessageRatePerMinute and MessageBurst limit sending per user.
	MessageRatePerMinute float64 // MESSAGE_RATE_PER_MINUTE
	MessageBurst         int     // MESSAGE_RATE_BURST
	// Files: the bytes of a user's live files, uploads per minute and
	// burst per user, and how long a file no message references is kept.
	FileQuotaBytes        int64         // FILE_QUOTA_BYTES
	FileUploadRatePerMin  float64       // FILE_UPLOAD_RATE_PER_MINUTE
	FileUploadBurst       int           // FILE_UPLOAD_BURST
	FileUnreferencedGrace time.Duration // FILE_UNREFERENCED_GRACE_HOURS

	// WSPingInterval is how often WebSockets are pinged; a socket silent
	// for twice as long is closed. WSQueueLimit is how many frames may
	// wait for one socket before it is closed as too slow.
	WSPingInterval time.Duration // WS_PING_INTERVAL, e.g. 25s
	WSQueueLimit   int           // WS_QUEUE_LIMIT

	AccessTokenTTL  time.Duration // 15 minutes
	RefreshTokenTTL time.Duration // REFRESH_TOKEN_DAYS, default 30 days
	ShutdownTimeout time.Duration

	// Federation (spec/federation.md). An empty FederationListenAddr turns
	// federation off; the other settings are then checked but unused.
	FederationListenAddr      string                   // FEDERATION_LISTEN_ADDR, UDP host:port of the QUIC listener
	FederationAdvertiseAddr   string                   // FEDERATION_ADVERTISE_ADDR, host:port in the server document; "" = the listener's
	FederationPeers           []FederationPeer         // FEDERATION_PEERS, spec/federation.md §5.1
	FederationAllow           []privateline.ServerName // FEDERATION_ALLOW: if not empty, the only peers accepted
	FederationDeny            []privateline.ServerName // FEDERATION_DENY: peers always refused (wins over allow)
	FederationDeliveryTimeout time.Duration            // FEDERATION_DELIVERY_TIMEOUT, default 72h, < 7 days
	FederationRatePerOrigin   float64                  // FEDERATION_RATE_PER_ORIGIN, transactions/s, default 200
	FederationWitnessInterval time.Duration            // FEDERATION_WITNESS_INTERVAL, default 10m, ≥ 1s: a co-signature this old is asked for again
	FederationGossipAddr      string                   // FEDERATION_GOSSIP_ADDR, memberlist ip:port (TCP and UDP); "" = no gossip
	FederationGossipAdvertise string                   // FEDERATION_GOSSIP_ADVERTISE_ADDR, host:port other members reach; "" = the bound address
	FederationSeeds           []string                 // FEDERATION_SEEDS, comma-separated host:port
	FederationGossipKey       []byte                   // FEDERATION_GOSSIP_KEY, 16, 24 or 32 bytes, or nil
	// FederationHTTPClient fetches peers' server documents (nil: the
	// default client); not from the environment — tests give one whose
	// dialer answers name resolution themselves.
	FederationHTTPClient *http.Client
	// FederationRetryBase is the first wait after a failed delivery
	// attempt (0: spec/federation.md §14's 1 s); not from the environment
	// — tests lengthen it to see what happens while a sender backs off.
	FederationRetryBase time.Duration
	// FederationHoldDelivery, if not nil, is called before each delivery
	// attempt (federation.Config.HoldDelivery); not from the environment —
	// tests hold deliveries to a server back with it.
	FederationHoldDelivery func(ctx context.Context, to privateline.ServerName)

	// Notices are messages about the configuration for the log at start-up
	// (deprecated variables, ignored settings).
	Notices []string
}

// FederationPeer is one static peer of FEDERATION_PEERS.
type FederationPeer struct {
	Name privateline.ServerName
	Addr string            // the peer's QUIC address, host:port (IPv6 in brackets)
	Key  ed25519.PublicKey // configured identity key; nil: pinned on first contact
}

// String is the peer's FEDERATION_PEERS entry.
func (p FederationPeer) String() string {
	s := string(p.Name) + "=" + p.Addr
	if p.Key != nil {
		s += "," + base64.StdEncoding.EncodeToString(p.Key)
	}
	return s
}

// MaxStoreMemTableBytes bounds STORE_MEMTABLE_BYTES.
const MaxStoreMemTableBytes = 1 << 30

// Federation defaults and bounds (spec/federation.md §11, §13, §14).
const (
	DefaultFederationDeliveryTimeout = 72 * time.Hour
	DefaultFederationRatePerOrigin   = 200
	// federationReplayRetention is how long a receiver keeps replay records;
	// the delivery timeout must be shorter (spec/federation.md §14).
	federationReplayRetention = 7 * 24 * time.Hour
)

// Production reports whether PRIVATELINE_ENV=production.
func (c *Config) Production() bool { return c.Env == "production" }

// Default returns the configuration that works on a laptop, without secrets.
func Default() Config {
	return Config{
		Env:                   "development",
		ServerName:            "localhost",
		ListenAddr:            ":8080",
		DataDir:               "./data",
		MetricsAddr:           "127.0.0.1:9464",
		CookieSecure:          false,
		CookieSameSite:        http.SameSiteStrictMode,
		CookieCSRF:            true,
		MaxFileSize:           clientapi.DefaultMaxFileSize,
		FileQuotaBytes:        clientapi.DefaultFileQuotaBytes,
		FileUploadRatePerMin:  clientapi.DefaultFileRatePerMin,
		FileUploadBurst:       clientapi.DefaultFileBurst,
		FileUnreferencedGrace: 24 * time.Hour,
		CSP:                   DefaultCSP,
		LogRetentionDays:      14,
		AuthRatePerMinute:     30,
		AuthBurst:             20,
		UsernameRatePerMinute: 6,
		UsernameBurst:         10,
		MessageRatePerMinute:  120,
		MessageBurst:          60,
		WSPingInterval:        25 * time.Second,
		WSQueueLimit:          256,
		AccessTokenTTL:        15 * time.Minute,
		RefreshTokenTTL:       30 * 24 * time.Hour,
		ShutdownTimeout:       10 * time.Second,

		FederationDeliveryTimeout: DefaultFederationDeliveryTimeout,
		FederationRatePerOrigin:   DefaultFederationRatePerOrigin,
		FederationWitnessInterval: federation.DefaultWitnessInterval,
	}
}

// DefaultCSP is the Content-Security-Policy unless CONTENT_SECURITY_POLICY
// overrides it: only the homeserver's own origin; inline styles for the UI
// library's runtime styling; blob:/data: images for decrypted previews.
const DefaultCSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; font-src 'self'; " +
	"worker-src 'self'; manifest-src 'self'; object-src 'none'; base-uri 'none'; " +
	"frame-ancestors 'none'; form-action 'self'"

// secretHint says how to make a secret.
const secretHint = "make one with `openssl rand -base64 32`"

// LoadConfig reads the configuration through lookup (os.LookupEnv merged
// with .env in production use). Errors name the variable and the fix.
func LoadConfig(lookup func(string) (string, bool)) (Config, error) {
	c := Default()
	p := parser{lookup: lookup}
	if v, ok := p.str("PRIVATELINE_ENV"); ok {
		c.Env = strings.ToLower(v)
	}
	if c.Env == "production" {
		c.CookieSecure = true
	}
	if v, ok := p.str("SERVER_NAME"); ok {
		c.ServerName = privateline.ServerName(v)
	}
	p.strTo("LISTEN_ADDR", &c.ListenAddr)
	p.strTo("DATA_DIR", &c.DataDir)
	// Set but empty disables the metrics listener (unset keeps the default).
	if v, ok := p.lookup("METRICS_ADDR"); ok {
		c.MetricsAddr = strings.TrimSpace(v)
	}
	if v, ok := p.str("JWT_SECRET_KEY"); ok {
		c.JWTSecret = privateline.Secret(v)
	}
	if v, ok := p.str("AES_KEY"); ok {
		c.AESKey = p.key32("AES_KEY", v)
	}
	if v, ok := p.str("CORS_ORIGINS"); ok {
		for _, o := range strings.Split(v, ",") {
			if o = strings.TrimSpace(o); o != "" {
				c.CORSOrigins = append(c.CORSOrigins, strings.TrimSuffix(o, "/"))
			}
		}
	}
	if v, ok := p.str("TRUSTED_PROXIES"); ok {
		for _, e := range strings.Split(v, ",") {
			if e = strings.TrimSpace(e); e == "" {
				continue
			}
			pfx, err := netip.ParsePrefix(e)
			if err != nil {
				ip, err2 := netip.ParseAddr(e)
				if err2 != nil {
					p.fail("TRUSTED_PROXIES", fmt.Sprintf("entry %q must be an IP address or a CIDR such as 10.0.0.0/8", e))
					break
				}
				pfx = netip.PrefixFrom(ip, ip.BitLen())
			}
			c.TrustedProxies = append(c.TrustedProxies, pfx.Masked())
		}
	}
	p.boolTo("JWT_COOKIE_SECURE", &c.CookieSecure)
	if v, ok := p.str("JWT_COOKIE_SAMESITE"); ok {
		switch strings.ToLower(v) {
		case "strict":
			c.CookieSameSite = http.SameSiteStrictMode
		case "lax":
			c.CookieSameSite = http.SameSiteLaxMode
		case "none":
			c.CookieSameSite = http.SameSiteNoneMode
		default:
			p.fail("JWT_COOKIE_SAMESITE", "must be Strict, Lax or None")
		}
	}
	p.boolTo("JWT_COOKIE_CSRF_PROTECT", &c.CookieCSRF)
	p.bytesTo("MAX_FILE_SIZE", &c.MaxFileSize)
	p.bytesTo("FILE_QUOTA_BYTES", &c.FileQuotaBytes)
	p.bytesTo("STORE_MEMTABLE_BYTES", &c.StoreMemTableBytes)
	p.floatTo("FILE_UPLOAD_RATE_PER_MINUTE", &c.FileUploadRatePerMin)
	p.intTo("FILE_UPLOAD_BURST", &c.FileUploadBurst)
	var graceHours int
	if p.intTo("FILE_UNREFERENCED_GRACE_HOURS", &graceHours) {
		c.FileUnreferencedGrace = time.Duration(graceHours) * time.Hour
	}
	p.strTo("CONTENT_SECURITY_POLICY", &c.CSP)
	p.boolTo("HSTS_ENABLED", &c.HSTS)
	p.strTo("WEB_ROOT", &c.WebRoot)
	if v, ok := p.str("ENCRYPTED_LOG_KEY"); ok {
		c.EncryptedLogKey = p.key32("ENCRYPTED_LOG_KEY", v)
	}
	p.strTo("LOG_PATH", &c.LogPath)
	p.intTo("LOG_RETENTION_DAYS", &c.LogRetentionDays)
	p.boolTo("LOGGING_DISABLED", &c.LoggingDisabled)
	p.strTo("SENTRY_DSN", &c.SentryDSN)
	p.strTo("APNS_CERT", &c.APNSCert)
	p.strTo("APNS_CERT_PASSWORD", &c.APNSCertPassword)
	p.strTo("APNS_KEY", &c.APNSKey)
	p.strTo("APNS_KEY_ID", &c.APNSKeyID)
	p.strTo("APNS_TEAM_ID", &c.APNSTeamID)
	p.strTo("APNS_TOPIC", &c.APNSTopic)
	p.boolTo("APNS_USE_SANDBOX", &c.APNSUseSandbox)
	p.strTo("VAPID_PRIVATE_KEY", &c.VAPIDPrivateKey)
	p.strTo("VAPID_SUBJECT", &c.VAPIDSubject)
	if v, ok := p.str("WEB_PUSH_ALLOWED_HOSTS"); ok {
		c.WebPushHosts = []string{}
		for _, h := range strings.Split(v, ",") {
			if h = strings.ToLower(strings.TrimSpace(h)); h != "" {
				c.WebPushHosts = append(c.WebPushHosts, h)
			}
		}
		if len(c.WebPushHosts) == 0 {
			p.fail("WEB_PUSH_ALLOWED_HOSTS", "lists no host: give push-service hosts such as fcm.googleapis.com or .notify.windows.com, or leave it empty for the browsers' usual services")
		}
	}
	p.strTo("FCM_CREDENTIALS_FILE", &c.FCMCredentialsFile)
	p.strTo("FCM_SERVER_KEY", &c.FCMServerKey)
	p.floatTo("AUTH_RATE_PER_MINUTE", &c.AuthRatePerMinute)
	p.intTo("AUTH_RATE_BURST", &c.AuthBurst)
	p.floatTo("LOGIN_RATE_PER_MINUTE", &c.UsernameRatePerMinute)
	p.intTo("LOGIN_RATE_BURST", &c.UsernameBurst)
	p.floatTo("MESSAGE_RATE_PER_MINUTE", &c.MessageRatePerMinute)
	p.intTo("MESSAGE_RATE_BURST", &c.MessageBurst)
	if v, ok := p.str("WS_PING_INTERVAL"); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			p.fail("WS_PING_INTERVAL", "must be a duration such as 25s")
		}
		c.WSPingInterval = d
	}
	p.intTo("WS_QUEUE_LIMIT", &c.WSQueueLimit)
	var days int
	if p.intTo("REFRESH_TOKEN_DAYS", &days) {
		c.RefreshTokenTTL = time.Duration(days) * 24 * time.Hour
	}
	p.federation(&c)
	for _, legacy := range []string{"DATABASE_URI", "REDIS_URL"} {
		if _, ok := p.str(legacy); ok {
			c.Notices = append(c.Notices, legacy+" is set but is not used: the homeserver keeps everything in its embedded store in DATA_DIR, so no external database or Redis is needed; you can remove "+legacy)
		}
	}
	if c.FCMServerKey != "" && c.FCMCredentialsFile != "" {
		c.Notices = append(c.Notices, "FCM_SERVER_KEY is ignored: it belongs to FCM's retired legacy API, and FCM_CREDENTIALS_FILE is set; you can remove FCM_SERVER_KEY")
	}
	if p.err != nil {
		return c, p.err
	}
	return c, nil
}

// Validate checks the configuration. Missing secrets are allowed here in
// development (the homeserver generates them into DATA_DIR); in production
// they are required.
func (c *Config) Validate() error {
	const op = "homeserver.Config.Validate"
	bad := func(variable, msg string) error {
		return privateline.E(op, privateline.Invalid, variable+" "+msg)
	}
	if c.Env != "development" && c.Env != "production" {
		return bad("PRIVATELINE_ENV", "must be development or production (or unset)")
	}
	if _, err := privateline.ParseServerName(string(c.ServerName)); err != nil {
		return bad("SERVER_NAME", "must be a host name such as chat.example.org or localhost:8081")
	}
	if c.WebRoot != "" {
		if fi, err := os.Stat(filepath.Join(c.WebRoot, "index.html")); err != nil || fi.IsDir() {
			return bad("WEB_ROOT", "must be a built web client (a directory with index.html): run `npm ci && npm run build` in clients/web, or leave WEB_ROOT empty")
		}
	}
	if c.ListenAddr == "" {
		return bad("LISTEN_ADDR", "must be an address such as :8080")
	}
	if c.DataDir == "" {
		return bad("DATA_DIR", "must name a directory")
	}
	if c.JWTSecret != nil && len(c.JWTSecret) < 32 {
		return bad("JWT_SECRET_KEY", "must be at least 32 characters; "+secretHint)
	}
	if c.AESKey != nil && len(c.AESKey) != 32 {
		return bad("AES_KEY", "must be the base64 of exactly 32 bytes; "+secretHint)
	}
	if c.Production() {
		if c.JWTSecret == nil {
			return bad("JWT_SECRET_KEY", "is required in production; "+secretHint)
		}
		if c.AESKey == nil {
			return bad("AES_KEY", "is required in production; "+secretHint)
		}
	}
	if c.EncryptedLogKey != nil && len(c.EncryptedLogKey) != 32 {
		return bad("ENCRYPTED_LOG_KEY", "must be the base64 of exactly 32 bytes; "+secretHint)
	}
	for _, o := range c.CORSOrigins {
		u, err := url.Parse(o)
		if o == "*" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
			return bad("CORS_ORIGINS", fmt.Sprintf("entry %q must be an origin such as https://chat.example.org (no wildcard, no path)", o))
		}
	}
	if c.CookieSameSite == http.SameSiteNoneMode && !c.CookieSecure {
		return bad("JWT_COOKIE_SAMESITE", "None requires JWT_COOKIE_SECURE=true (browsers reject it otherwise)")
	}
	if c.MaxFileSize <= 0 || c.MaxFileSize > clientapi.DefaultMaxFileSize {
		return bad("MAX_FILE_SIZE", fmt.Sprintf("must be 1 to %d bytes (a 100 MiB attachment with its nonce and tag)", clientapi.DefaultMaxFileSize))
	}
	if c.FileQuotaBytes < c.MaxFileSize {
		return bad("FILE_QUOTA_BYTES", "must be at least MAX_FILE_SIZE")
	}
	if c.StoreMemTableBytes != 0 && (c.StoreMemTableBytes < 1<<20 || c.StoreMemTableBytes > MaxStoreMemTableBytes) {
		return bad("STORE_MEMTABLE_BYTES", fmt.Sprintf("must be 1048576 (1 MiB) to %d (1 GiB) bytes", MaxStoreMemTableBytes))
	}
	if c.FileUploadRatePerMin <= 0 || c.FileUploadBurst <= 0 {
		return bad("FILE_UPLOAD_RATE_PER_MINUTE", "and FILE_UPLOAD_BURST must be positive")
	}
	if c.FileUnreferencedGrace < time.Hour || c.FileUnreferencedGrace > 30*24*time.Hour {
		return bad("FILE_UNREFERENCED_GRACE_HOURS", "must be 1 to 720")
	}
	if c.LogRetentionDays < 0 {
		return bad("LOG_RETENTION_DAYS", "must be 0 (no rotation) or more")
	}
	if c.SentryDSN != "" {
		if u, err := url.Parse(c.SentryDSN); err != nil || u.User == nil || u.Host == "" {
			return bad("SENTRY_DSN", "must be a DSN such as https://key@sentry.example.org/1")
		}
	}
	if c.AuthRatePerMinute <= 0 || c.AuthBurst <= 0 {
		return bad("AUTH_RATE_PER_MINUTE", "and AUTH_RATE_BURST must be positive")
	}
	if c.UsernameRatePerMinute <= 0 || c.UsernameBurst <= 0 {
		return bad("LOGIN_RATE_PER_MINUTE", "and LOGIN_RATE_BURST must be positive")
	}
	if c.MessageRatePerMinute <= 0 || c.MessageBurst <= 0 {
		return bad("MESSAGE_RATE_PER_MINUTE", "and MESSAGE_RATE_BURST must be positive")
	}
	if c.WSPingInterval < 10*time.Millisecond || c.WSPingInterval > time.Hour {
		return bad("WS_PING_INTERVAL", "must be between 10ms and 1h (default 25s)")
	}
	if c.WSQueueLimit < 1 {
		return bad("WS_QUEUE_LIMIT", "must be at least 1 (default 256)")
	}
	if c.AccessTokenTTL <= 0 || c.RefreshTokenTTL < c.AccessTokenTTL {
		return bad("REFRESH_TOKEN_DAYS", "must be at least 1")
	}
	return c.validateFederation(bad)
}

// parser reads typed variables and keeps the first error.
type parser struct {
	lookup func(string) (string, bool)
	err    error
}

func (p *parser) fail(variable, msg string) {
	if p.err == nil {
		p.err = privateline.E("homeserver.LoadConfig", privateline.Invalid, variable+" "+msg)
	}
}

// str returns a variable's trimmed value; empty counts as unset.
func (p *parser) str(name string) (string, bool) {
	v, ok := p.lookup(name)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

func (p *parser) strTo(name string, dst *string) {
	if v, ok := p.str(name); ok {
		*dst = v
	}
}

func (p *parser) boolTo(name string, dst *bool) {
	v, ok := p.str(name)
	if !ok {
		return
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		p.fail(name, "must be true or false")
		return
	}
	*dst = b
}

func (p *parser) intTo(name string, dst *int) bool {
	v, ok := p.str(name)
	if !ok {
		return false
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		p.fail(name, "must be a whole number")
		return false
	}
	*dst = n
	return true
}

func (p *parser) floatTo(name string, dst *float64) {
	v, ok := p.str(name)
	if !ok {
		return
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		p.fail(name, "must be a number")
		return
	}
	*dst = f
}

// bytesTo reads a positive number of bytes.
func (p *parser) bytesTo(name string, dst *int64) {
	v, ok := p.str(name)
	if !ok {
		return
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		p.fail(name, "must be a positive number of bytes")
		return
	}
	*dst = n
}

// key32 decodes a base64 key; a wrong length is reported by Validate.
func (p *parser) key32(name, v string) privateline.Secret {
	k, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		if k, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(v, "=")); err != nil {
			p.fail(name, "must be base64 of 32 bytes; "+secretHint)
			return nil
		}
	}
	if len(k) != 32 {
		p.fail(name, fmt.Sprintf("must be base64 of exactly 32 bytes (it decodes to %d); %s", len(k), secretHint))
		return nil
	}
	return k
}

// federation reads the FEDERATION_* variables. Syntax errors are reported
// here with the offending entry; Validate checks the values.
func (p *parser) federation(c *Config) {
	p.strTo("FEDERATION_LISTEN_ADDR", &c.FederationListenAddr)
	p.strTo("FEDERATION_ADVERTISE_ADDR", &c.FederationAdvertiseAddr)
	if v, ok := p.str("FEDERATION_PEERS"); ok {
		entries := strings.FieldsFunc(v, func(r rune) bool { return r == ';' || unicode.IsSpace(r) })
		for _, e := range entries {
			peer, msg := parsePeerEntry(e)
			if msg != "" {
				p.fail("FEDERATION_PEERS", fmt.Sprintf("entry %q %s", e, msg))
				break
			}
			c.FederationPeers = append(c.FederationPeers, peer)
		}
	}
	c.FederationAllow = p.serverNames("FEDERATION_ALLOW")
	c.FederationDeny = p.serverNames("FEDERATION_DENY")
	if v, ok := p.str("FEDERATION_DELIVERY_TIMEOUT"); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			p.fail("FEDERATION_DELIVERY_TIMEOUT", "must be a duration such as 72h (less than 168h)")
		}
		c.FederationDeliveryTimeout = d
	}
	p.floatTo("FEDERATION_RATE_PER_ORIGIN", &c.FederationRatePerOrigin)
	if v, ok := p.str("FEDERATION_WITNESS_INTERVAL"); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			p.fail("FEDERATION_WITNESS_INTERVAL", "must be a duration such as 10m (at least 1s)")
		}
		c.FederationWitnessInterval = d
	}
	p.strTo("FEDERATION_GOSSIP_ADDR", &c.FederationGossipAddr)
	p.strTo("FEDERATION_GOSSIP_ADVERTISE_ADDR", &c.FederationGossipAdvertise)
	if v, ok := p.str("FEDERATION_SEEDS"); ok {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				c.FederationSeeds = append(c.FederationSeeds, s)
			}
		}
	}
	if v, ok := p.str("FEDERATION_GOSSIP_KEY"); ok {
		k, err := decodeStd64(v)
		if err != nil {
			p.fail("FEDERATION_GOSSIP_KEY", "must be standard base64 (with padding) of 16, 24 or 32 bytes; "+secretHint)
		} else {
			c.FederationGossipKey = k
		}
	}

	// Settings that are valid but have no effect are worth a word at start.
	if c.FederationListenAddr == "" {
		for _, name := range []string{"FEDERATION_ADVERTISE_ADDR", "FEDERATION_PEERS", "FEDERATION_ALLOW", "FEDERATION_DENY", "FEDERATION_GOSSIP_ADDR", "FEDERATION_SEEDS", "FEDERATION_GOSSIP_ADVERTISE_ADDR"} {
			if _, ok := p.str(name); ok {
				c.Notices = append(c.Notices, name+" is set but FEDERATION_LISTEN_ADDR is empty, so federation is off and "+name+" has no effect")
			}
		}
	} else if c.FederationAdvertiseAddr == "" {
		if host, _, err := net.SplitHostPort(c.FederationListenAddr); err == nil && unspecifiedHost(host) {
			c.Notices = append(c.Notices, "FEDERATION_LISTEN_ADDR "+c.FederationListenAddr+" listens on every interface and FEDERATION_ADVERTISE_ADDR is empty: the server document will not tell peers a reachable address; set FEDERATION_ADVERTISE_ADDR to the public host:port")
		}
	}
	if c.FederationGossipAddr != "" && c.FederationListenAddr != "" && c.FederationGossipKey == nil {
		c.Notices = append(c.Notices, "FEDERATION_GOSSIP_ADDR is set without FEDERATION_GOSSIP_KEY: gossip is not encrypted, so anyone who reaches the gossip port can join and announce addresses (never trust: the TLS handshake decides); set a key unless the network is yours")
	}
	if c.FederationGossipAddr == "" {
		for _, name := range []string{"FEDERATION_SEEDS", "FEDERATION_GOSSIP_KEY", "FEDERATION_GOSSIP_ADVERTISE_ADDR"} {
			if _, ok := p.str(name); ok && c.FederationListenAddr != "" {
				c.Notices = append(c.Notices, name+" is set but FEDERATION_GOSSIP_ADDR is empty, so gossip is off and "+name+" has no effect")
			}
		}
	}
	denied := map[privateline.ServerName]bool{}
	for _, n := range c.FederationDeny {
		denied[n] = true
	}
	allowed := map[privateline.ServerName]bool{}
	for _, n := range c.FederationAllow {
		allowed[n] = true
	}
	for _, peer := range c.FederationPeers {
		switch {
		case denied[peer.Name]:
			c.Notices = append(c.Notices, fmt.Sprintf("FEDERATION_PEERS names %s, which FEDERATION_DENY refuses: the deny list wins, no link is made with it", peer.Name))
		case len(allowed) > 0 && !allowed[peer.Name]:
			c.Notices = append(c.Notices, fmt.Sprintf("FEDERATION_PEERS names %s, which is not on FEDERATION_ALLOW: it is refused", peer.Name))
		}
	}
}

// parsePeerEntry parses one FEDERATION_PEERS entry, name=host:port[,key]
// (spec/federation.md §5.1). The message says what is wrong, or is "".
// Names and addresses are checked by Validate.
func parsePeerEntry(e string) (FederationPeer, string) {
	const syntax = "must be name=host:port or name=host:port,key (spec/federation.md §5.1), e.g. b.example=b.example:8448"
	name, rest, ok := strings.Cut(e, "=")
	if !ok || name == "" || rest == "" {
		return FederationPeer{}, syntax
	}
	addr, key, hasKey := strings.Cut(rest, ",")
	if addr == "" || (hasKey && key == "") || strings.Contains(key, ",") {
		return FederationPeer{}, syntax
	}
	peer := FederationPeer{Name: privateline.ServerName(name), Addr: addr}
	if hasKey {
		k, err := decodeStd64(key)
		if err != nil {
			return FederationPeer{}, "has a key that is not standard base64 with padding (44 characters ending in =, as GET /api/keys/head shows it in server_key)"
		}
		if len(k) != ed25519.PublicKeySize {
			return FederationPeer{}, fmt.Sprintf("has a key of %d bytes; an identity key is a 32-byte Ed25519 public key (44 base64 characters)", len(k))
		}
		peer.Key = k
	}
	return peer, ""
}

// decodeStd64 decodes standard base64 with padding, canonical only.
func decodeStd64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, err
	}
	if base64.StdEncoding.EncodeToString(b) != s {
		return nil, fmt.Errorf("not canonical base64")
	}
	return b, nil
}

// serverNames reads a comma-separated list of server names; Validate
// checks each.
func (p *parser) serverNames(name string) []privateline.ServerName {
	v, ok := p.str(name)
	if !ok {
		return nil
	}
	var out []privateline.ServerName
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, privateline.ServerName(s))
		}
	}
	return out
}

// unspecifiedHost reports whether a listener on host listens on every
// interface ("", 0.0.0.0, ::).
func unspecifiedHost(host string) bool {
	if host == "" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsUnspecified()
}

// checkHostPort checks a host:port; listen allows an empty or unspecified
// host and port 0 (a listener), otherwise the address must be dialable.
func checkHostPort(addr string, listen bool) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "must be host:port (an IPv6 address in brackets, e.g. [2001:db8::1]:8448)"
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || (n == 0 && !listen) {
		return "has no valid port (1 to 65535)"
	}
	if strings.Contains(addr, "[") && !strings.Contains(host, ":") {
		return "puts brackets around something that is not an IPv6 address"
	}
	if unspecifiedHost(host) {
		if listen {
			return ""
		}
		return "must name a host others can reach, not an empty or unspecified (0.0.0.0, ::) address"
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return ""
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return "has a host that is neither an IP address nor a DNS name"
		}
	}
	return ""
}

// validateFederation checks the FEDERATION_* settings (also when
// federation is off, so that a mistake shows before it is switched on).
func (c *Config) validateFederation(bad func(variable, msg string) error) error {
	if c.FederationListenAddr != "" {
		if msg := checkHostPort(c.FederationListenAddr, true); msg != "" {
			return bad("FEDERATION_LISTEN_ADDR", fmt.Sprintf("%q %s; a UDP address such as 0.0.0.0:8448", c.FederationListenAddr, msg))
		}
	}
	if c.FederationAdvertiseAddr != "" {
		if msg := checkHostPort(c.FederationAdvertiseAddr, false); msg != "" {
			return bad("FEDERATION_ADVERTISE_ADDR", fmt.Sprintf("%q %s; the address peers dial, such as chat.example.org:8448", c.FederationAdvertiseAddr, msg))
		}
	}
	seen := map[privateline.ServerName]bool{}
	for _, peer := range c.FederationPeers {
		entry := peer.String()
		if _, err := privateline.ParseServerName(string(peer.Name)); err != nil {
			return bad("FEDERATION_PEERS", fmt.Sprintf("entry %q: %q is not a server name (lower-case host or host:port, e.g. b.example.org or localhost:8082)", entry, peer.Name))
		}
		if peer.Name == c.ServerName {
			return bad("FEDERATION_PEERS", fmt.Sprintf("entry %q names this server (SERVER_NAME); list only other servers", entry))
		}
		if seen[peer.Name] {
			return bad("FEDERATION_PEERS", fmt.Sprintf("entry %q: %s is listed twice", entry, peer.Name))
		}
		seen[peer.Name] = true
		if msg := checkHostPort(peer.Addr, false); msg != "" {
			return bad("FEDERATION_PEERS", fmt.Sprintf("entry %q: the address %q %s", entry, peer.Addr, msg))
		}
		if peer.Key != nil && len(peer.Key) != ed25519.PublicKeySize {
			return bad("FEDERATION_PEERS", fmt.Sprintf("entry %q: the key must be a 32-byte Ed25519 public key", entry))
		}
	}
	for _, l := range []struct {
		variable string
		names    []privateline.ServerName
	}{{"FEDERATION_ALLOW", c.FederationAllow}, {"FEDERATION_DENY", c.FederationDeny}} {
		for _, n := range l.names {
			if _, err := privateline.ParseServerName(string(n)); err != nil {
				return bad(l.variable, fmt.Sprintf("entry %q is not a server name (comma-separated lower-case names such as b.example.org, localhost:8082)", n))
			}
		}
	}
	if c.FederationDeliveryTimeout <= 0 || c.FederationDeliveryTimeout >= federationReplayRetention {
		return bad("FEDERATION_DELIVERY_TIMEOUT", fmt.Sprintf("is %v; it must be more than 0 and less than 168h (7 days, how long receivers remember transactions); default 72h", c.FederationDeliveryTimeout))
	}
	if c.FederationWitnessInterval < time.Second {
		return bad("FEDERATION_WITNESS_INTERVAL", fmt.Sprintf("is %v; it must be at least 1s (how old a peer's co-signature of this server's key directory may get before the peer is asked again); default 10m", c.FederationWitnessInterval))
	}
	if !(c.FederationRatePerOrigin > 0) || math.IsInf(c.FederationRatePerOrigin, 0) {
		return bad("FEDERATION_RATE_PER_ORIGIN", "must be a positive number of transactions per second (default 200)")
	}
	if c.FederationGossipAddr != "" {
		msg := checkHostPort(c.FederationGossipAddr, true)
		if host, _, err := net.SplitHostPort(c.FederationGossipAddr); msg == "" && err == nil && host != "" {
			if _, err := netip.ParseAddr(host); err != nil {
				msg = "must bind an IP address, not a host name"
			}
		}
		if msg != "" {
			return bad("FEDERATION_GOSSIP_ADDR", fmt.Sprintf("%q %s; e.g. 0.0.0.0:7946", c.FederationGossipAddr, msg))
		}
	}
	if c.FederationGossipAdvertise != "" {
		if msg := checkHostPort(c.FederationGossipAdvertise, false); msg != "" {
			return bad("FEDERATION_GOSSIP_ADVERTISE_ADDR", fmt.Sprintf("%q %s; the gossip address other members reach, e.g. 203.0.113.7:7946", c.FederationGossipAdvertise, msg))
		}
	}
	for _, s := range c.FederationSeeds {
		if msg := checkHostPort(s, false); msg != "" {
			return bad("FEDERATION_SEEDS", fmt.Sprintf("entry %q %s; comma-separated gossip addresses such as b.example.org:7946", s, msg))
		}
	}
	if k := c.FederationGossipKey; k != nil && len(k) != 16 && len(k) != 24 && len(k) != 32 {
		return bad("FEDERATION_GOSSIP_KEY", fmt.Sprintf("must be the base64 of 16, 24 or 32 bytes (it decodes to %d); %s", len(k), secretHint))
	}
	return nil
}
