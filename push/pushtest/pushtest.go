// Package pushtest has local fakes of the push services for tests: APNs
// (HTTP/2 over TLS), FCM HTTP v1 with its OAuth token endpoint, and a Web
// Push endpoint that checks VAPID and decrypts RFC 8291 payloads with
// code written independently of the sender's library. Every fake listens
// on 127.0.0.1 with port 0 and stops when the test ends.
package pushtest

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// fake is what the three fakes share: a TLS server, a delay, scripted
// answers and what they received.
type fake struct {
	t     testing.TB
	srv   *httptest.Server
	mu    sync.Mutex
	delay time.Duration
	hits  int
}

// SetDelay makes every answer wait d first (a slow push service).
func (f *fake) SetDelay(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delay = d
}

// Hits is the number of requests received.
func (f *fake) Hits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits
}

// wait counts the request and holds it for the scripted delay; false when
// the sender gave up meanwhile (its request was cancelled or the fake is
// closing), so there is nothing to answer or check.
func (f *fake) wait(r *http.Request) bool {
	f.mu.Lock()
	f.hits++
	d := f.delay
	f.mu.Unlock()
	if d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
		}
	}
	return r.Context().Err() == nil
}

// Roots trusts the fake's certificate.
func (f *fake) Roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(f.srv.Certificate())
	return p
}

// Port is the fake's TCP port.
func (f *fake) Port() int { return f.srv.Listener.Addr().(*net.TCPAddr).Port }

// URL is the fake's base URL.
func (f *fake) URL() string { return f.srv.URL }

// Client reaches the fake whatever host a URL names, trusting its
// certificate.
func (f *fake) Client() *http.Client {
	tr := f.srv.Client().Transport.(*http.Transport).Clone()
	addr := f.srv.Listener.Addr().String()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	tr.TLSClientConfig.ServerName = "example.com" // httptest's certificate
	return &http.Client{Transport: tr}
}

// --- Web Push ---

// WebPushMessage is one push the fake received and decrypted.
type WebPushMessage struct {
	Path    string
	Header  http.Header
	Payload []byte // the decrypted payload
}

// WebPush is a push service endpoint for subscriptions it makes.
type WebPush struct {
	fake
	vapid    *ecdsa.PublicKey
	audience string // the VAPID "aud" expected: https://<endpoint host>
	subject  string // the VAPID "sub" expected
	subs     map[string]*browser
	status   []int
	got      []WebPushMessage
}

// browser is a subscription's key pair and auth secret (RFC 8291 §2).
type browser struct {
	key  *ecdh.PrivateKey
	auth []byte
}

// NewWebPush starts a Web Push endpoint that expects pushes signed by vapid
// with the given aud and sub claims.
func NewWebPush(t testing.TB, vapid *ecdsa.PublicKey, audience, subject string) *WebPush {
	f := &WebPush{vapid: vapid, audience: audience, subject: subject, subs: map[string]*browser{}}
	f.t = t
	f.srv = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// Subscribe makes a browser subscription at endpoint (whose path the fake
// serves) and returns it as the JSON a browser's PushSubscription gives.
func (f *WebPush) Subscribe(endpoint string) string {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		f.t.Fatal(err)
	}
	b := &browser{key: k, auth: make([]byte, 16)}
	rand.Read(b.auth)
	u, _ := http.NewRequest("GET", endpoint, nil)
	f.mu.Lock()
	f.subs[u.URL.Path] = b
	f.mu.Unlock()
	j, _ := json.Marshal(map[string]any{"endpoint": endpoint, "expirationTime": nil, "keys": map[string]string{
		"auth":   base64.RawURLEncoding.EncodeToString(b.auth),
		"p256dh": base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes()),
	}})
	return string(j)
}

// Answer scripts the next answers' statuses (201 once used up); 429 comes
// with Retry-After: 7.
func (f *WebPush) Answer(status ...int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status = append(f.status, status...)
}

// Received returns the pushes decrypted so far.
func (f *WebPush) Received() []WebPushMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]WebPushMessage(nil), f.got...)
}

func (f *WebPush) serve(w http.ResponseWriter, r *http.Request) {
	if !f.wait(r) {
		return // the sender gave up (it was closed): nothing to check
	}
	pt, err := f.check(r)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil && r.Context().Err() != nil {
		return // the sender went away while its body was read
	}
	if err != nil {
		f.t.Errorf("fake Web Push: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.got = append(f.got, WebPushMessage{Path: r.URL.Path, Header: r.Header.Clone(), Payload: pt})
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

func (f *WebPush) check(r *http.Request) ([]byte, error) {
	f.mu.Lock()
	b := f.subs[r.URL.Path]
	f.mu.Unlock()
	if r.Method != http.MethodPost || b == nil {
		return nil, fmt.Errorf("%s %s: no such subscription", r.Method, r.URL.Path)
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "aes128gcm" {
		return nil, fmt.Errorf("Content-Encoding %q", ce)
	}
	// RFC 8292 §3: "vapid t=<JWT>, k=<public key>".
	auth := r.Header.Get("Authorization")
	tok, k, ok := strings.Cut(strings.TrimPrefix(auth, "vapid t="), ", k=")
	if !ok || !strings.HasPrefix(auth, "vapid t=") {
		return nil, fmt.Errorf("Authorization %q", auth)
	}
	want, _ := f.vapid.ECDH()
	if k != base64.RawURLEncoding.EncodeToString(want.Bytes()) {
		return nil, errors.New("k is not the VAPID public key")
	}
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return f.vapid, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithExpirationRequired()); err != nil {
		return nil, fmt.Errorf("VAPID JWT: %w", err)
	}
	if claims["aud"] != f.audience || claims["sub"] != f.subject {
		return nil, fmt.Errorf("VAPID claims %v, want aud %s sub %s", claims, f.audience, f.subject)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	pt, err := b.decrypt(body)
	if err != nil {
		return nil, fmt.Errorf("decrypting: %w", err)
	}
	return pt, nil
}

// decrypt opens an aes128gcm body (RFC 8188 §2) with the keys of RFC 8291
// §3.3 and §3.4.
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

// --- APNs ---

// APNsRequest is one notification the fake received.
type APNsRequest struct {
	Token   string
	Header  http.Header
	Payload []byte
	TLS     *tls.ConnectionState
}

// APNs speaks the APNs provider API over HTTP/2 and TLS.
type APNs struct {
	fake
	answer map[string][2]string // token → status, reason
	got    []APNsRequest
	// Auth, if set, checks each request; an error answers 403.
	Auth func(*http.Request) error
}

// NewAPNs starts a fake APNs; with clientCert it requires a client
// certificate (certificate authentication).
func NewAPNs(t testing.TB, clientCert bool) *APNs {
	f := &APNs{answer: map[string][2]string{}}
	f.t = t
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.EnableHTTP2 = true
	if clientCert {
		f.srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	}
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

// Answer scripts the answer for a device token (200 otherwise).
func (f *APNs) Answer(token string, status int, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answer[token] = [2]string{fmt.Sprint(status), reason}
}

// Received returns the notifications received so far.
func (f *APNs) Received() []APNsRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]APNsRequest(nil), f.got...)
}

func (f *APNs) serve(w http.ResponseWriter, r *http.Request) {
	if !f.wait(r) {
		return // the sender gave up (it was closed): nothing to check
	}
	tok, ok := strings.CutPrefix(r.URL.Path, "/3/device/")
	if r.ProtoMajor != 2 || r.Method != http.MethodPost || !ok {
		f.t.Errorf("fake APNs: %s %s over HTTP/%d", r.Method, r.URL.Path, r.ProtoMajor)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if f.Auth != nil {
		if err := f.Auth(r); err != nil {
			f.t.Errorf("fake APNs: %v", err)
			w.WriteHeader(http.StatusForbidden)
			return
		}
	}
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.got = append(f.got, APNsRequest{Token: tok, Header: r.Header.Clone(), Payload: body, TLS: r.TLS})
	a, ok := f.answer[tok]
	f.mu.Unlock()
	w.Header().Set("apns-id", "00000000-0000-0000-0000-000000000001")
	if !ok {
		w.WriteHeader(http.StatusOK)
		return
	}
	var status int
	fmt.Sscan(a[0], &status)
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"reason": a[1]})
}

// --- FCM ---

// FCM is Google's OAuth token endpoint and the FCM HTTP v1 API for one
// project, "demo-project".
type FCM struct {
	fake
	key     *rsa.PublicKey
	issued  int
	revoked map[string]bool
	answer  map[string]string // registration token → error code
	got     [][]byte
	// Credentials is a service-account key file for the fake.
	Credentials []byte
}

// NewFCM starts a fake FCM with a new service account.
func NewFCM(t testing.TB) *FCM {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f := &FCM{key: &k.PublicKey, revoked: map[string]bool{}, answer: map[string]string{}}
	f.t = t
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", f.token)
	mux.HandleFunc("POST /v1/projects/demo-project/messages:send", f.send)
	f.srv = httptest.NewTLSServer(mux)
	t.Cleanup(f.srv.Close)
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	f.Credentials, _ = json.Marshal(map[string]string{
		"type": "service_account", "project_id": "demo-project", "client_email": "push@demo-project.example",
		"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"token_uri":   f.srv.URL + "/token",
	})
	return f
}

// Answer scripts an error code for a registration token: UNREGISTERED
// (404), QUOTA_EXCEEDED (429), UNAVAILABLE (503), INVALID_ARGUMENT (400).
func (f *FCM) Answer(token, code string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answer[token] = code
}

// Revoke makes an access token answer 401.
func (f *FCM) Revoke(access string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revoked[access] = true
}

// Issued is the number of access tokens handed out.
func (f *FCM) Issued() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.issued
}

// Received returns the bodies of the messages received so far.
func (f *FCM) Received() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.got...)
}

func (f *FCM) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		f.t.Errorf("fake OAuth: %v", r.PostForm)
		http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
		return
	}
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(r.PostForm.Get("assertion"), claims, func(*jwt.Token) (any, error) { return f.key, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithAudience(f.srv.URL+"/token"), jwt.WithIssuer("push@demo-project.example"),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt()); err != nil || claims["scope"] != "https://www.googleapis.com/auth/firebase.messaging" {
		f.t.Errorf("fake OAuth: assertion %v (scope %v)", err, claims["scope"])
		http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.issued++
	tok := fmt.Sprintf("access-%d", f.issued)
	f.mu.Unlock()
	json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "expires_in": 3599, "token_type": "Bearer"})
}

func (f *FCM) send(w http.ResponseWriter, r *http.Request) {
	if !f.wait(r) {
		return // the sender gave up (it was closed): nothing to check
	}
	at, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	defer f.mu.Unlock()
	if !strings.HasPrefix(at, "access-") || f.revoked[at] {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}`)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var m struct {
		Message struct {
			Token string `json:"token"`
		} `json:"message"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		f.t.Errorf("fake FCM: body %q", body)
	}
	f.got = append(f.got, body)
	status := map[string]int{"UNREGISTERED": 404, "QUOTA_EXCEEDED": 429, "UNAVAILABLE": 503, "INVALID_ARGUMENT": 400}
	if code, ok := f.answer[m.Message.Token]; ok {
		w.WriteHeader(status[code])
		fmt.Fprintf(w, `{"error":{"code":%d,"message":"%s","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"%s"}]}}`, status[code], strings.ToLower(code), code)
		return
	}
	io.WriteString(w, `{"name":"projects/demo-project/messages/1"}`)
}
