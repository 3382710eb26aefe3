package push

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// fakeAPNs speaks the APNs provider API over HTTP/2 and TLS: it checks
// the request and answers from a script.
type fakeAPNs struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	answer map[string]apnsAnswer // by device token; 200 otherwise
	got    []apnsRequest
	auth   func(r *http.Request) error
}

type apnsAnswer struct {
	status int
	reason string
}

type apnsRequest struct {
	token   string
	header  http.Header
	payload map[string]any
}

func newFakeAPNs(t *testing.T, clientCert bool) *fakeAPNs {
	f := &fakeAPNs{t: t, answer: map[string]apnsAnswer{}}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.EnableHTTP2 = true
	if clientCert {
		f.srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	}
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPNs) serve(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor != 2 {
		http.Error(w, "HTTP/2 only", http.StatusBadRequest)
		f.t.Errorf("APNs request over HTTP/%d", r.ProtoMajor)
		return
	}
	tok, ok := strings.CutPrefix(r.URL.Path, "/3/device/")
	if r.Method != http.MethodPost || !ok {
		f.t.Errorf("APNs request %s %s", r.Method, r.URL.Path)
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if f.auth != nil {
		if err := f.auth(r); err != nil {
			f.t.Errorf("APNs auth: %v", err)
			w.WriteHeader(http.StatusForbidden)
			return
		}
	}
	body, _ := io.ReadAll(r.Body)
	var p map[string]any
	if err := json.Unmarshal(body, &p); err != nil {
		f.t.Errorf("APNs payload %q: %v", body, err)
	}
	f.mu.Lock()
	f.got = append(f.got, apnsRequest{tok, r.Header.Clone(), p})
	a, ok := f.answer[tok]
	f.mu.Unlock()
	w.Header().Set("apns-id", "00000000-0000-0000-0000-000000000001")
	if !ok {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.WriteHeader(a.status)
	json.NewEncoder(w).Encode(map[string]any{"reason": a.reason})
}

func (f *fakeAPNs) roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(f.srv.Certificate())
	return p
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Apple Push Services: org.example.app"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
}

const deviceA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

func TestAPNsCertificate(t *testing.T) {
	f := newFakeAPNs(t, true)
	cert := selfSigned(t)
	f.auth = func(r *http.Request) error {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 || !r.TLS.PeerCertificates[0].Equal(mustParse(t, cert.Certificate[0])) {
			return errors.New("not the provider certificate")
		}
		if r.Header.Get("authorization") != "" {
			return errors.New("a bearer token with certificate authentication")
		}
		return nil
	}
	a, err := NewAPNs(APNsConfig{Cert: &cert, Topic: "org.example.app", Host: f.srv.URL, RootCAs: f.roots()})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Send(context.Background(), deviceA, Notification{Unread: 9}); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.got) != 1 {
		t.Fatalf("%d requests", len(f.got))
	}
	r := f.got[0]
	if r.token != deviceA || r.header.Get("apns-topic") != "org.example.app" || r.header.Get("apns-collapse-id") != Collapse ||
		r.header.Get("apns-push-type") != "alert" || r.header.Get("apns-priority") != "10" {
		t.Fatalf("request %s %v", r.token, r.header)
	}
	// Nothing but the fixed text and the count.
	want := `{"aps":{"alert":{"body":"New message","title":"PrivateLine"},"badge":9,"sound":"default"},"privateline":{"unread":9}}`
	if got, _ := json.Marshal(r.payload); string(got) != want {
		t.Fatalf("payload %s\nwant    %s", got, want)
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAPNsToken(t *testing.T) {
	f := newFakeAPNs(t, false)
	k := vapidKey(t) // any P-256 key stands for the .p8 key
	f.auth = func(r *http.Request) error {
		tok, ok := strings.CutPrefix(r.Header.Get("authorization"), "bearer ")
		if !ok {
			return errors.New("no bearer token")
		}
		claims := jwt.MapClaims{}
		parsed, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return &k.PublicKey, nil }, jwt.WithValidMethods([]string{"ES256"}))
		if err != nil {
			return err
		}
		if parsed.Header["kid"] != "KEY123" || claims["iss"] != "TEAM456" {
			return errors.New("wrong kid or iss")
		}
		return nil
	}
	a, err := NewAPNs(APNsConfig{Key: k, KeyID: "KEY123", TeamID: "TEAM456", Topic: "org.example.app", Host: f.srv.URL, RootCAs: f.roots()})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Send(context.Background(), deviceA, Notification{Unread: 1}); err != nil {
		t.Fatal(err)
	}
}

func TestAPNsAnswers(t *testing.T) {
	f := newFakeAPNs(t, false)
	k := vapidKey(t)
	a, err := NewAPNs(APNsConfig{Key: k, KeyID: "K", TeamID: "T", Topic: "org.example.app", Host: f.srv.URL, RootCAs: f.roots()})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		answer      apnsAnswer
		reason      string
		gone, retry bool
	}{
		{apnsAnswer{410, "Unregistered"}, "gone", true, false},
		{apnsAnswer{429, "TooManyProviderTokenUpdates"}, "rate_limited", false, true},
		{apnsAnswer{503, "ServiceUnavailable"}, "unavailable", false, true},
		{apnsAnswer{400, "BadDeviceToken"}, "rejected", false, false},
	} {
		tok := strings.Repeat(string(rune('b'+i)), 64)
		f.mu.Lock()
		f.answer[tok] = c.answer
		f.mu.Unlock()
		err := a.Send(context.Background(), tok, Notification{Unread: 1})
		var se *SendError
		if !errors.As(err, &se) || se.Reason != c.reason || se.Gone != c.gone || se.Retry != c.retry || !strings.Contains(se.Error(), c.answer.reason) {
			t.Errorf("%d %s: %v, want %s gone %v retry %v", c.answer.status, c.answer.reason, err, c.reason, c.gone, c.retry)
		}
	}
}

func TestNewAPNsChecks(t *testing.T) {
	cert := selfSigned(t)
	k, _ := ecdsa.GenerateKey(vapidKey(t).Curve, rand.Reader)
	for name, cfg := range map[string]APNsConfig{
		"no topic":      {Cert: &cert},
		"neither":       {Topic: "x"},
		"both":          {Cert: &cert, Key: k, KeyID: "k", TeamID: "t", Topic: "x"},
		"key no key id": {Key: k, TeamID: "t", Topic: "x"},
	} {
		if _, err := NewAPNs(cfg); err == nil {
			t.Errorf("%s: taken", name)
		}
	}
}
