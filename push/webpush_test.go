package push

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/privateline/privateline/push/pushtest"
)

func vapidKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newWebPushFake(t *testing.T, hosts ...string) (*WebPush, *pushtest.WebPush) {
	t.Helper()
	k := vapidKey(t)
	f := pushtest.NewWebPush(t, &k.PublicKey, "https://push.example.test", "mailto:ops@example.org")
	w, err := NewWebPush(WebPushConfig{Key: k, Subject: "mailto:ops@example.org", Hosts: hosts, Client: f.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return w, f
}

func TestWebPushEncryptsAndSigns(t *testing.T) {
	w, f := newWebPushFake(t, "push.example.test")
	tok := f.Subscribe("https://push.example.test/wpush/sub-1")
	if err := w.Send(context.Background(), canonical(t, tok), Notification{Unread: 4}); err != nil {
		t.Fatal(err)
	}
	got := f.Received()
	if len(got) != 1 {
		t.Fatalf("%d pushes decrypted", len(got))
	}
	// Only that something arrived and the count: no sender, text or
	// conversation, whatever the message was.
	if string(got[0].Payload) != `{"type":"new_message","unread":4}` {
		t.Fatalf("payload %s, want exactly {type: new_message, unread: 4}", got[0].Payload)
	}
	h := got[0].Header
	if h.Get("Topic") != Collapse || h.Get("Urgency") != "high" || h.Get("TTL") != "86400" {
		t.Fatalf("headers Topic %q Urgency %q TTL %q", h.Get("Topic"), h.Get("Urgency"), h.Get("TTL"))
	}
}

func TestWebPushAnswers(t *testing.T) {
	w, f := newWebPushFake(t, ".example.test")
	tok := canonical(t, f.Subscribe("https://push.example.test/wpush/sub-1"))
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
		f.Answer(c.status)
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
	k := vapidKey(t)
	f := pushtest.NewWebPush(t, &k.PublicKey, "", "")
	port := f.Port()
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
		err := w.Send(context.Background(), canonical(t, f.Subscribe(ep)), Notification{Unread: 1})
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
		err := w.Send(context.Background(), canonical(t, f.Subscribe(ep)), Notification{Unread: 1})
		var se *SendError
		if !errors.As(err, &se) || se.Reason != "not_allowed" {
			t.Errorf("%s: %v, want not_allowed", ep, err)
		}
	}
	if n := f.Hits(); n != 0 {
		t.Fatalf("the private endpoint was reached %d times", n)
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

// canonical drops what a browser adds and the server does not store
// (expirationTime), as POST /api/push-token does.
func canonical(t *testing.T, sub string) string {
	t.Helper()
	var v struct {
		Endpoint string            `json:"endpoint"`
		Keys     map[string]string `json:"keys"`
	}
	if err := json.Unmarshal([]byte(sub), &v); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}
