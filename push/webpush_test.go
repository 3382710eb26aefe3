package push

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// browser is a fake user agent's push subscription: its ECDH key pair and
// auth secret (RFC 8291 §2).
type browser struct {
	key  *ecdh.PrivateKey
	auth []byte
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 16)
	rand.Read(auth)
	return &browser{key: k, auth: auth}
}

// token is the subscription in the form the homeserver stores.
func (b *browser) token(endpoint string) string {
	j, _ := json.Marshal(map[string]any{"endpoint": endpoint, "keys": map[string]string{
		"auth":   base64.RawURLEncoding.EncodeToString(b.auth),
		"p256dh": base64.RawURLEncoding.EncodeToString(b.key.PublicKey().Bytes()),
	}})
	return string(j)
}

// decrypt opens an aes128gcm body (RFC 8188 §2, keys from RFC 8291 §3.3,
// §3.4), written independently of the sender's library.
func (b *browser) decrypt(body []byte) ([]byte, error) {
	if len(body) < 21 {
		return nil, errors.New("short body")
	}
	salt, rs, idlen := body[:16], binary.BigEndian.Uint32(body[16:20]), int(body[20])
	if idlen != 65 || len(body) < 21+idlen {
		return nil, fmt.Errorf("key id length %d", idlen)
	}
	asPub := body[21 : 21+idlen]
	ct := body[21+idlen:]
	if uint32(len(ct)) > rs {
		return nil, errors.New("more than one record")
	}
	peer, err := ecdh.P256().NewPublicKey(asPub)
	if err != nil {
		return nil, err
	}
	secret, err := b.key.ECDH(peer)
	if err != nil {
		return nil, err
	}
	prkKey, _ := hkdf.Extract(sha256.New, secret, b.auth)
	info := append(append([]byte("WebPush: info\x00"), b.key.PublicKey().Bytes()...), asPub...)
	ikm, _ := hkdf.Expand(sha256.New, prkKey, string(info), 32)
	prk, _ := hkdf.Extract(sha256.New, ikm, salt)
	cek, _ := hkdf.Expand(sha256.New, prk, "Content-Encoding: aes128gcm\x00", 16)
	nonce, _ := hkdf.Expand(sha256.New, prk, "Content-Encoding: nonce\x00", 12)
	blk, _ := aes.NewCipher(cek)
	gcm, _ := cipher.NewGCM(blk)
	pt, err := gcm.Open(nil, nonce, ct, nil)
	if err != nil {
		return nil, err
	}
	// The last record ends with the delimiter 0x02, then zero padding.
	i := bytes.LastIndexFunc(pt, func(r rune) bool { return r != 0 })
	if i < 0 || pt[i] != 2 {
		return nil, errors.New("no last-record delimiter")
	}
	return pt[:i], nil
}

// fakePushService is a Web Push endpoint that checks VAPID and decrypts.
type fakePushService struct {
	t       *testing.T
	srv     *httptest.Server
	browser *browser
	vapid   *ecdsa.PublicKey
	mu      sync.Mutex
	status  []int // answers, in order; 201 once used up
	got     []map[string]any
	headers []http.Header
	hits    int
}

func newFakePushService(t *testing.T, b *browser, vapid *ecdsa.PublicKey) *fakePushService {
	f := &fakePushService{t: t, browser: b, vapid: vapid}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakePushService) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hits++
	if err := f.check(r); err != nil {
		f.t.Errorf("push service: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if len(f.status) > 0 {
		st := f.status[0]
		f.status = f.status[1:]
		if st == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "7")
		}
		w.WriteHeader(st)
		return
	}
	w.WriteHeader(http.StatusCreated)
}

func (f *fakePushService) check(r *http.Request) error {
	if r.Method != http.MethodPost || r.URL.Path != "/wpush/sub-1" {
		return fmt.Errorf("%s %s", r.Method, r.URL.Path)
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "aes128gcm" {
		return fmt.Errorf("Content-Encoding %q", ce)
	}
	// RFC 8292 §3: "vapid t=<JWT>, k=<public key>".
	auth := r.Header.Get("Authorization")
	tok, k, ok := strings.Cut(strings.TrimPrefix(auth, "vapid t="), ", k=")
	if !ok || !strings.HasPrefix(auth, "vapid t=") {
		return fmt.Errorf("Authorization %q", auth)
	}
	want, _ := f.vapid.ECDH()
	if k != base64.RawURLEncoding.EncodeToString(want.Bytes()) {
		return errors.New("k is not the VAPID public key")
	}
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return f.vapid, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithExpirationRequired()); err != nil {
		return fmt.Errorf("VAPID JWT: %w", err)
	}
	if claims["aud"] != "https://push.example.test" || claims["sub"] != "mailto:ops@example.org" {
		return fmt.Errorf("VAPID claims %v", claims)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	pt, err := f.browser.decrypt(body)
	if err != nil {
		return fmt.Errorf("decrypting: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(pt, &m); err != nil {
		return fmt.Errorf("payload %q: %w", pt, err)
	}
	f.got = append(f.got, m)
	f.headers = append(f.headers, r.Header.Clone())
	return nil
}

// toFake is a client that reaches the fake whatever host the endpoint
// names (push.example.test), trusting its certificate.
func toFake(f *fakePushService) *http.Client {
	c := f.srv.Client()
	tr := c.Transport.(*http.Transport).Clone()
	addr := f.srv.Listener.Addr().String()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	tr.TLSClientConfig.ServerName = "example.com" // httptest's certificate
	return &http.Client{Transport: tr}
}

func vapidKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestWebPushEncryptsAndSigns(t *testing.T) {
	b := newBrowser(t)
	k := vapidKey(t)
	f := newFakePushService(t, b, &k.PublicKey)
	w, err := NewWebPush(WebPushConfig{Key: k, Subject: "mailto:ops@example.org", Hosts: []string{"push.example.test"}, Client: toFake(f)})
	if err != nil {
		t.Fatal(err)
	}
	tok := b.token("https://push.example.test/wpush/sub-1")
	if err := w.Send(context.Background(), tok, Notification{Unread: 4}); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.got) != 1 {
		t.Fatalf("%d pushes decrypted", len(f.got))
	}
	// Only that something arrived and the count: no sender, text or
	// conversation, whatever the message was.
	if len(f.got[0]) != 2 || f.got[0]["type"] != "new_message" || f.got[0]["unread"] != float64(4) {
		t.Fatalf("payload %v, want exactly {type: new_message, unread: 4}", f.got[0])
	}
	h := f.headers[0]
	if h.Get("Topic") != Collapse || h.Get("Urgency") != "high" || h.Get("TTL") != "86400" {
		t.Fatalf("headers Topic %q Urgency %q TTL %q", h.Get("Topic"), h.Get("Urgency"), h.Get("TTL"))
	}
}

func TestWebPushAnswers(t *testing.T) {
	b := newBrowser(t)
	k := vapidKey(t)
	f := newFakePushService(t, b, &k.PublicKey)
	w, err := NewWebPush(WebPushConfig{Key: k, Subject: "mailto:ops@example.org", Hosts: []string{".example.test"}, Client: toFake(f)})
	if err != nil {
		t.Fatal(err)
	}
	tok := b.token("https://push.example.test/wpush/sub-1")
	for _, c := range []struct {
		status      int
		reason      string
		gone, retry bool
		after       time.Duration
	}{
		{404, "gone", true, false, 0},
		{410, "gone", true, false, 0},
		{429, "rate_limited", false, true, 7 * time.Second},
		{503, "unavailable", false, true, 0},
		{400, "rejected", false, false, 0},
	} {
		f.mu.Lock()
		f.status = []int{c.status}
		f.mu.Unlock()
		err := w.Send(context.Background(), tok, Notification{Unread: 1})
		var se *SendError
		if !errors.As(err, &se) || se.Reason != c.reason || se.Gone != c.gone || se.Retry != c.retry || se.After != c.after {
			t.Errorf("HTTP %d: %#v, want reason %s gone %v retry %v after %v", c.status, err, c.reason, c.gone, c.retry, c.after)
		}
	}
}

// The SSRF guard: only allowlisted https hosts, and never a loopback,
// private or link-local address, whatever the name resolves to.
func TestWebPushRefusesPrivateAndUnlisted(t *testing.T) {
	b := newBrowser(t)
	k := vapidKey(t)
	var hits int
	var mu sync.Mutex
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	// The operator allowlisted "localhost": the guarded client still
	// refuses to connect, because it resolves to loopback.
	w, err := NewWebPush(WebPushConfig{Key: k, Subject: "https://example.org/contact", Hosts: []string{"localhost", "127.0.0.1", ".example.test"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range []string{
		fmt.Sprintf("https://localhost:%d/x", port),
		fmt.Sprintf("https://127.0.0.1:%d/x", port),
	} {
		err := w.Send(context.Background(), b.token(ep), Notification{Unread: 1})
		var se *SendError
		if !errors.As(err, &se) || se.Reason != "refused_address" || se.Retry || se.Gone {
			t.Errorf("%s: %v, want refused_address, not retried, not gone", ep, err)
		}
	}
	for _, ep := range []string{
		fmt.Sprintf("https://elsewhere.test:%d/x", port), // not on the list
		"http://push.example.test/x",                     // not https
		"https://user:pw@push.example.test/x",            // credentials
	} {
		err := w.Send(context.Background(), b.token(ep), Notification{Unread: 1})
		var se *SendError
		if !errors.As(err, &se) || se.Reason != "not_allowed" {
			t.Errorf("%s: %v, want not_allowed", ep, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if hits != 0 {
		t.Fatalf("the private endpoint was reached %d times", hits)
	}
}

func TestPublicAddr(t *testing.T) {
	for s, want := range map[string]bool{
		"8.8.8.8": true, "2a00:1450:4001:800::200e": true, "142.250.185.74": true,
		"127.0.0.1": false, "::1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false,
		"169.254.169.254": false, "fe80::1": false, "fc00::1": false, "fd12::1": false, "100.64.0.1": false,
		"0.0.0.0": false, "::": false, "::ffff:127.0.0.1": false, "::ffff:10.0.0.1": false, "224.0.0.1": false,
		"64:ff9b::a00:1": false, "255.255.255.255": false,
	} {
		if got := publicAddr(netip.MustParseAddr(s)); got != want {
			t.Errorf("publicAddr(%s) = %v, want %v", s, got, want)
		}
	}
}

func TestHostAllowed(t *testing.T) {
	list := []string{"fcm.googleapis.com", ".notify.windows.com"}
	for h, want := range map[string]bool{
		"fcm.googleapis.com": true, "FCM.googleapis.com.": true, "wns2-by3p.notify.windows.com": true,
		"notify.windows.com": false, "evil-fcm.googleapis.com": false, "fcm.googleapis.com.evil": false,
	} {
		if got := hostAllowed(h, list); got != want {
			t.Errorf("hostAllowed(%q) = %v, want %v", h, got, want)
		}
	}
}

func TestNewWebPushChecks(t *testing.T) {
	k := vapidKey(t)
	if _, err := NewWebPush(WebPushConfig{Key: k, Subject: "ops@example.org"}); err == nil {
		t.Error("a subject without mailto: or https:// was taken")
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := NewWebPush(WebPushConfig{Key: p384, Subject: "mailto:a@b"}); err == nil {
		t.Error("a P-384 key was taken")
	}
}

func TestVAPIDKeys(t *testing.T) {
	priv, pub, err := GenerateVAPID()
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseVAPIDKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWebPush(WebPushConfig{Key: k, Subject: "mailto:a@b.example"})
	if err != nil {
		t.Fatal(err)
	}
	if w.PublicKey() != pub {
		t.Fatalf("public key %s, generated %s", w.PublicKey(), pub)
	}
	if raw, _ := base64.RawURLEncoding.DecodeString(pub); len(raw) != 65 || raw[0] != 4 {
		t.Fatalf("public key is not an uncompressed point: %d bytes", len(raw))
	}
	// The same key as a file path, as SEC 1 PEM, and as a raw base64url scalar.
	path := filepath.Join(t.TempDir(), "vapid.pem")
	if err := os.WriteFile(path, []byte(priv), 0o600); err != nil {
		t.Fatal(err)
	}
	ek, _ := k.ECDH()
	sec1, _ := x509MarshalEC(k)
	for name, v := range map[string]string{
		"path": path, "sec1": sec1, "raw": base64.RawURLEncoding.EncodeToString(ek.Bytes()),
	} {
		k2, err := ParseVAPIDKey(v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !k2.Equal(k) {
			t.Fatalf("%s: a different key", name)
		}
	}
	for _, bad := range []string{"", "/nonexistent/vapid.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", base64.RawURLEncoding.EncodeToString(make([]byte, 32))} {
		if _, err := ParseVAPIDKey(bad); err == nil {
			t.Errorf("ParseVAPIDKey(%q) took it", bad)
		}
	}
}

func x509MarshalEC(k *ecdsa.PrivateKey) (string, error) {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})), nil
}
