package homeserver

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clientapi"
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

	EncryptedLogKey  privateline.Secret // ENCRYPTED_LOG_KEY (32 bytes) or nil
	LogPath          string             // LOG_PATH
	LogRetentionDays int                // LOG_RETENTION_DAYS; 0 disables rotation
	LoggingDisabled  bool               // LOGGING_DISABLED
	SentryDSN        string             // SENTRY_DSN

	// Push settings, used by the push service.
	APNSCert        string // APNS_CERT
	APNSTopic       string // APNS_TOPIC
	APNSUseSandbox  bool   // APNS_USE_SANDBOX
	VAPIDPrivateKey string // VAPID_PRIVATE_KEY
	VAPIDSubject    string // VAPID_SUBJECT
	FCMServerKey    string // FCM_SERVER_KEY

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

	// Notices are messages about the configuration for the log at start-up
	// (deprecated variables, ignored settings).
	Notices []string
}

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
	p.strTo("APNS_TOPIC", &c.APNSTopic)
	p.boolTo("APNS_USE_SANDBOX", &c.APNSUseSandbox)
	p.strTo("VAPID_PRIVATE_KEY", &c.VAPIDPrivateKey)
	p.strTo("VAPID_SUBJECT", &c.VAPIDSubject)
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
	for _, legacy := range []string{"DATABASE_URI", "REDIS_URL"} {
		if _, ok := p.str(legacy); ok {
			c.Notices = append(c.Notices, legacy+" is set but is not used: the homeserver keeps everything in its embedded store in DATA_DIR, so no external database or Redis is needed; you can remove "+legacy)
		}
	}
	if c.APNSCert != "" || c.VAPIDPrivateKey != "" || c.FCMServerKey != "" {
		c.Notices = append(c.Notices, "push settings (APNS_*, VAPID_*, FCM_SERVER_KEY) are recognised but this version does not send push notifications yet")
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
	return nil
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
