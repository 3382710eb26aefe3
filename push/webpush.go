package push

import (
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	webpush "github.com/SherClockHolmes/webpush-go"
)

// DefaultWebPushHosts are the push services browsers use today (host, or
// ".suffix" for any host under it); WEB_PUSH_ALLOWED_HOSTS replaces them.
var DefaultWebPushHosts = []string{
	"fcm.googleapis.com",                // Chrome, Edge on Android, Opera, Brave
	"updates.push.services.mozilla.com", // Firefox
	"web.push.apple.com",                // Safari
	".notify.windows.com",               // Edge on Windows (wns2-*.notify.windows.com)
}

// WebPushConfig configures the Web Push sender.
type WebPushConfig struct {
	Key     *ecdsa.PrivateKey // the VAPID key (P-256)
	Subject string            // VAPID "sub": "mailto:…" or "https://…"
	Hosts   []string          // allowed push-service hosts; empty: DefaultWebPushHosts
	TTL     time.Duration     // how long the service keeps an undelivered push, default 24 h
	// Client, if not nil, replaces the guarded client (tests only: it is
	// how a test reaches a fake endpoint on loopback).
	Client *http.Client
}

// WebPush sends RFC 8291 encrypted, RFC 8292 (VAPID) signed pushes.
type WebPush struct {
	cfg     WebPushConfig
	pub     string // base64url of the uncompressed public point
	priv    string // base64url of the private scalar (webpush-go's form)
	subject string
	client  *http.Client
}

// NewWebPush checks cfg and returns the sender.
func NewWebPush(cfg WebPushConfig) (*WebPush, error) {
	if cfg.Key == nil || cfg.Key.Curve != elliptic.P256() {
		return nil, errors.New("push: the VAPID key must be a P-256 private key")
	}
	if !strings.HasPrefix(cfg.Subject, "mailto:") && !strings.HasPrefix(cfg.Subject, "https://") {
		return nil, errors.New(`push: VAPID_SUBJECT must be a "mailto:" address or an "https://" URL where push services can reach the operator (RFC 8292 §2.1)`)
	}
	if len(cfg.Hosts) == 0 {
		cfg.Hosts = DefaultWebPushHosts
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 24 * time.Hour
	}
	ek, err := cfg.Key.ECDH()
	if err != nil {
		return nil, fmt.Errorf("push: the VAPID key: %w", err)
	}
	w := &WebPush{
		cfg:  cfg,
		pub:  base64.RawURLEncoding.EncodeToString(ek.PublicKey().Bytes()),
		priv: base64.RawURLEncoding.EncodeToString(ek.Bytes()),
		// webpush-go adds "mailto:" itself to anything that is not an
		// https URL.
		subject: strings.TrimPrefix(cfg.Subject, "mailto:"),
		client:  cfg.Client,
	}
	if w.client == nil {
		w.client = GuardedClient()
	}
	return w, nil
}

// PublicKey is the VAPID public key as browsers take it for
// applicationServerKey: base64url (no padding) of the uncompressed point.
func (w *WebPush) PublicKey() string { return w.pub }

// CheckEndpoint reports whether a subscription's endpoint may be pushed to:
// https, no credentials, a host on the allowlist. (Its address is checked
// again at every connection: GuardedClient.)
func (w *WebPush) CheckEndpoint(endpoint string) error {
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return errors.New("a Web Push endpoint must be an https URL without credentials")
	}
	if !hostAllowed(u.Hostname(), w.cfg.Hosts) {
		return fmt.Errorf("%s is not a push service this server sends to", u.Hostname())
	}
	return nil
}

func hostAllowed(host string, allowed []string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, a := range allowed {
		a = strings.ToLower(a)
		if host == a || (strings.HasPrefix(a, ".") && strings.HasSuffix(host, a)) {
			return true
		}
	}
	return false
}

// webPayload is the decrypted body a browser's service worker receives.
type webPayload struct {
	Type   string `json:"type"` // "new_message"
	Unread int64  `json:"unread"`
}

// Send pushes n to the subscription token (the canonical JSON form
// POST /api/push-token stores).
func (w *WebPush) Send(ctx context.Context, token string, n Notification) error {
	var sub webpush.Subscription
	if err := json.Unmarshal([]byte(token), &sub); err != nil {
		return &SendError{Reason: "rejected", Err: fmt.Errorf("a stored subscription does not parse: %w", err)}
	}
	if err := w.CheckEndpoint(sub.Endpoint); err != nil {
		return &SendError{Reason: "not_allowed", Err: err}
	}
	body, err := json.Marshal(webPayload{Type: "new_message", Unread: n.Unread})
	if err != nil {
		return &SendError{Reason: "rejected", Err: err}
	}
	resp, err := webpush.SendNotificationWithContext(ctx, body, &sub, &webpush.Options{
		HTTPClient:      w.client,
		Subscriber:      w.subject,
		Topic:           Collapse,
		TTL:             int(w.cfg.TTL / time.Second),
		Urgency:         webpush.UrgencyHigh,
		VAPIDPublicKey:  w.pub,
		VAPIDPrivateKey: w.priv,
	})
	if err != nil {
		return networkErr(err)
	}
	defer resp.Body.Close()
	detail, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	// RFC 8030 §7.3: 404 and 410 mean the subscription has expired or
	// was removed.
	gone := resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone
	return classify(resp.StatusCode, resp.Header, gone, strings.TrimSpace(string(detail)))
}

// refusedAddrError is a connection the SSRF guard refused.
type refusedAddrError struct{ addr string }

func (e *refusedAddrError) Error() string {
	return "push: refusing to connect to " + e.addr + ": not a public address"
}

// publicAddr reports whether a is a global unicast address outside every
// private, loopback, link-local, shared (CGNAT) and documentation range.
func publicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsGlobalUnicast() || a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // shared address space (RFC 6598)
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"), // NAT64 can reach any IPv4 address
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("2002::/16"), // 6to4 embeds an IPv4 address
}

// GuardedClient is the HTTP client for push endpoints: it connects only to
// public addresses (checked on the resolved address of every connection,
// so DNS cannot point it inside), ignores proxy settings, and follows no
// redirects.
func GuardedClient() *http.Client {
	d := &net.Dialer{
		Timeout: 10 * time.Second,
		Control: func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !publicAddr(ap.Addr()) {
				return &refusedAddrError{addr: address}
			}
			return nil
		},
	}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         d.DialContext,
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// ParseVAPIDKey reads a VAPID private key: PEM ("EC PRIVATE KEY" or
// "PRIVATE KEY"), given as the PEM text itself or the path of a file
// holding it, or the base64url raw 32-byte scalar other Web Push tools
// print.
func ParseVAPIDKey(v string) (*ecdsa.PrivateKey, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, errors.New("empty")
	}
	data := []byte(v)
	if !strings.Contains(v, "-----BEGIN") {
		if raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(v, "=")); err == nil && len(raw) == 32 {
			k, err := ecdh.P256().NewPrivateKey(raw)
			if err != nil {
				return nil, fmt.Errorf("not a P-256 private scalar: %w", err)
			}
			return ecdsaFromECDH(k)
		}
		b, err := os.ReadFile(v)
		if err != nil {
			return nil, fmt.Errorf("neither a PEM key, a base64url key, nor a readable file: %w", err)
		}
		data = b
	}
	blk, _ := pem.Decode(data)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	var key any
	var err error
	switch blk.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(blk.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("a PEM %q block is not a private key", blk.Type)
	}
	if err != nil {
		return nil, err
	}
	ek, ok := key.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, errors.New("a VAPID key must be an ECDSA P-256 key")
	}
	return ek, nil
}

func ecdsaFromECDH(k *ecdh.PrivateKey) (*ecdsa.PrivateKey, error) {
	// Round-trip through PKCS #8, the one public way to turn an ECDH key
	// into an ECDSA key.
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, err
	}
	ek, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an ECDSA key")
	}
	return ek, nil
}

// GenerateVAPID makes a new VAPID key pair: the private key as PEM
// (PKCS #8) and the public key as base64url of the uncompressed point.
func GenerateVAPID() (privatePEM, public string, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return "", "", err
	}
	ek, err := k.ECDH()
	if err != nil {
		return "", "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		base64.RawURLEncoding.EncodeToString(ek.PublicKey().Bytes()), nil
}
