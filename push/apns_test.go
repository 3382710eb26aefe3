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
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/privateline/privateline/push/pushtest"
)

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
	f := pushtest.NewAPNs(t, true)
	cert := selfSigned(t)
	f.Auth = func(r *http.Request) error {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 || !r.TLS.PeerCertificates[0].Equal(mustParse(t, cert.Certificate[0])) {
			return errors.New("not the provider certificate")
		}
		if r.Header.Get("authorization") != "" {
			return errors.New("a bearer token with certificate authentication")
		}
		return nil
	}
	a, err := NewAPNs(APNsConfig{Cert: &cert, Topic: "org.example.app", Host: f.URL(), RootCAs: f.Roots()})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Send(context.Background(), deviceA, Notification{Unread: 9}); err != nil {
		t.Fatal(err)
	}
	got := f.Received()
	if len(got) != 1 {
		t.Fatalf("%d requests", len(got))
	}
	r := got[0]
	if r.Token != deviceA || r.Header.Get("apns-topic") != "org.example.app" || r.Header.Get("apns-collapse-id") != Collapse ||
		r.Header.Get("apns-push-type") != "alert" || r.Header.Get("apns-priority") != "10" {
		t.Fatalf("request %s %v", r.Token, r.Header)
	}
	// Nothing but the fixed text and the count.
	want := `{"aps":{"alert":{"title":"PrivateLine","body":"New message"},"badge":9,"sound":"default"},"privateline":{"unread":9}}`
	if !jsonEqual(t, r.Payload, want) {
		t.Fatalf("payload %s\nwant    %s", r.Payload, want)
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
	f := pushtest.NewAPNs(t, false)
	k := vapidKey(t) // any P-256 key stands for the .p8 key
	f.Auth = func(r *http.Request) error {
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
	a, err := NewAPNs(APNsConfig{Key: k, KeyID: "KEY123", TeamID: "TEAM456", Topic: "org.example.app", Host: f.URL(), RootCAs: f.Roots()})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Send(context.Background(), deviceA, Notification{Unread: 1}); err != nil {
		t.Fatal(err)
	}
}

func TestAPNsAnswers(t *testing.T) {
	f := pushtest.NewAPNs(t, false)
	k := vapidKey(t)
	a, err := NewAPNs(APNsConfig{Key: k, KeyID: "K", TeamID: "T", Topic: "org.example.app", Host: f.URL(), RootCAs: f.Roots()})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		status      int
		apnsReason  string
		reason      string
		gone, retry bool
	}{
		{410, "Unregistered", "gone", true, false},
		{429, "TooManyProviderTokenUpdates", "rate_limited", false, true},
		{503, "ServiceUnavailable", "unavailable", false, true},
		{400, "BadDeviceToken", "rejected", false, false},
	} {
		tok := strings.Repeat(string(rune('b'+i)), 64)
		f.Answer(tok, c.status, c.apnsReason)
		err := a.Send(context.Background(), tok, Notification{Unread: 1})
		var se *SendError
		if !errors.As(err, &se) || se.Reason != c.reason || se.Gone != c.gone || se.Retry != c.retry || !strings.Contains(se.Error(), c.apnsReason) {
			t.Errorf("%d %s: %v, want %s gone %v retry %v", c.status, c.apnsReason, err, c.reason, c.gone, c.retry)
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

// jsonEqual compares JSON documents whatever their member order.
func jsonEqual(t *testing.T, got []byte, want string) bool {
	t.Helper()
	var a, b any
	if err := json.Unmarshal(got, &a); err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &b); err != nil {
		t.Fatal(err)
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
