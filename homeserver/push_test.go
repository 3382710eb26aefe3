package homeserver_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/privateline/privateline/homeserver"
	"github.com/privateline/privateline/push"
	"github.com/privateline/privateline/push/pushtest"
)

// Push notifications end to end: a homeserver configured from its
// variables for all three platforms, each pointed at a local fake.

// pushFakes are the three fake push services one server talks to.
type pushFakes struct {
	apns  *pushtest.APNs
	fcm   *pushtest.FCM
	web   *pushtest.WebPush
	vapid string // the VAPID public key the server should serve
}

// pushServer starts a homeserver with APNs (token auth), FCM and Web Push
// configured through Config as an operator would, the senders pointed at
// fakes.
func pushServer(t *testing.T) (*testServer, *pushFakes) {
	t.Helper()
	cfg := testConfig(t)
	dir := t.TempDir()

	p8, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(p8)
	p8File := filepath.Join(dir, "AuthKey_KEY123.p8")
	os.WriteFile(p8File, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	cfg.APNSKey, cfg.APNSKeyID, cfg.APNSTeamID, cfg.APNSTopic = p8File, "KEY123", "TEAM456", "org.example.privateline"

	f := &pushFakes{apns: pushtest.NewAPNs(t, false), fcm: pushtest.NewFCM(t)}
	credFile := filepath.Join(dir, "service-account.json")
	os.WriteFile(credFile, f.fcm.Credentials, 0o600)
	cfg.FCMCredentialsFile = credFile

	priv, pub, err := push.GenerateVAPID()
	if err != nil {
		t.Fatal(err)
	}
	cfg.VAPIDPrivateKey, cfg.VAPIDSubject, f.vapid = priv, "mailto:ops@hs.test", pub
	cfg.WebPushHosts = []string{"push.example.test"}
	vk, err := push.ParseVAPIDKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	f.web = pushtest.NewWebPush(t, &vk.PublicKey, "https://push.example.test", "mailto:ops@hs.test")

	ts := startServer(t, cfg, func(o *homeserver.Options) {
		o.Push = homeserver.PushHooks{
			APNs:    func(c *push.APNsConfig) { c.Host, c.RootCAs = f.apns.URL(), f.apns.Roots() },
			FCM:     func(c *push.FCMConfig) { c.Endpoint, c.Client = f.fcm.URL(), f.fcm.Client() },
			WebPush: func(c *push.WebPushConfig) { c.Client = f.web.Client() },
		}
	})
	return ts, f
}

// counts is how many notifications each fake has received.
func (f *pushFakes) counts() [3]int {
	return [3]int{len(f.apns.Received()), len(f.fcm.Received()), len(f.web.Received())}
}

// waitCounts waits until the fakes have received want, then checks that
// nothing more arrives for a moment (exactly, not at least).
func (f *pushFakes) waitCounts(t *testing.T, want [3]int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for f.counts() != want {
		if time.Now().After(deadline) {
			t.Fatalf("notifications (APNs, FCM, Web Push) = %v, want %v", f.counts(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // a duplicate would come within this
	if got := f.counts(); got != want {
		t.Fatalf("notifications (APNs, FCM, Web Push) = %v after settling, want exactly %v", got, want)
	}
}

func TestPushNotifications(t *testing.T) {
	t.Parallel()
	ts, f := pushServer(t)
	alice := ts.registerWithKeys("pushalice", "alice")
	bob := ts.registerWithKeys("pushbob", "bob")

	// The web client learns the VAPID key from the server.
	r := ts.do("GET", "/api/push/vapid-public-key", "", nil)
	if r.Status != http.StatusOK || r.json(t)["public_key"] != f.vapid || r.json(t)["available"] != true {
		t.Fatalf("GET /api/push/vapid-public-key: %d %s, want %s", r.Status, r.Body, f.vapid)
	}

	// Bob's three devices register; a subscription to a push service not
	// on the allowlist is refused.
	iosToken := strings.Repeat("ab", 32)
	androidToken := "bob-android-" + strings.Repeat("x", 40)
	webSub := f.web.Subscribe("https://push.example.test/wpush/bob-laptop")
	for _, reg := range [][2]string{{iosToken, "ios"}, {androidToken, "android"}, {webSub, "web"}} {
		expectHTTPStatus(t, ts.do("POST", "/api/push-token", bob.Access, map[string]any{"token": reg[0], "platform": reg[1]}), http.StatusCreated, "bob registers "+reg[1])
	}
	expectAPIError(t, ts.do("POST", "/api/push-token", bob.Access, map[string]any{"token": webSubscription("https://evil.example/wpush/x"), "platform": "web"}),
		http.StatusBadRequest, "invalid_request", "a push service not on the allowlist")
	// Alice's phone: she must not be woken by her own messages.
	aliceIOS := strings.Repeat("cd", 32)
	expectHTTPStatus(t, ts.do("POST", "/api/push-token", alice.Access, map[string]any{"token": aliceIOS, "platform": "ios"}), http.StatusCreated, "alice registers")

	// Bob is offline: one message gives exactly one notification per
	// device, none for alice, and none says anything about the message.
	const secret = "meet me at the harbour at nine"
	msg := sealTo(t, alice, bob, secret)
	ts.sendOK(alice, msg)
	f.waitCounts(t, [3]int{1, 1, 1})
	a := f.apns.Received()[0]
	if a.Token != iosToken {
		t.Fatalf("APNs notification for %s, want bob's device %s", a.Token, iosToken)
	}
	if got := string(f.web.Received()[0].Payload); got != `{"type":"new_message","unread":1}` {
		t.Fatalf("Web Push payload (decrypted) %s", got)
	}
	for name, payload := range map[string][]byte{"APNs": a.Payload, "FCM": f.fcm.Received()[0], "Web Push": f.web.Received()[0].Payload} {
		for _, leak := range []string{secret, "harbour", alice.Username, string(alice.Address), bob.Username, msg.ID(), "dm"} {
			if strings.Contains(string(payload), leak) {
				t.Errorf("%s notification holds %q: %s", name, leak, payload)
			}
		}
	}
	var aps struct {
		Aps struct {
			Badge int `json:"badge"`
		} `json:"aps"`
	}
	if err := json.Unmarshal(a.Payload, &aps); err != nil || aps.Aps.Badge != 1 {
		t.Fatalf("APNs badge %d (%v), want the unread count 1", aps.Aps.Badge, err)
	}

	// Bob online: his socket gets the message, and no device is woken.
	ws, _ := ts.openReady(bob.Access)
	ts.sendOK(alice, sealTo(t, alice, bob, "are you there?"))
	ws.nextOf("message")
	f.waitCounts(t, [3]int{1, 1, 1})
	ws.c.Close()

	// Offline again; Apple reports his phone gone: its token is deleted,
	// the other devices hear of both unread messages.
	waitFor(t, "bob's socket to close", func() bool { return ts.srv.API().OpenSockets() == 0 })
	f.apns.Answer(iosToken, http.StatusGone, "Unregistered")
	ts.sendOK(alice, sealTo(t, alice, bob, "third"))
	f.waitCounts(t, [3]int{2, 2, 2})
	if got := string(f.web.Received()[1].Payload); got != `{"type":"new_message","unread":3}` {
		t.Fatalf("second Web Push payload %s, want unread 3", got)
	}
	waitFor(t, "the gone token to be deleted", func() bool { return len(pushTokens(t, ts, bob.account)) == 2 })
	for _, tk := range pushTokens(t, ts, bob.account) {
		if tk["token"] == iosToken {
			t.Fatal("the token APNs reported gone is still registered")
		}
	}
	ts.sendOK(alice, sealTo(t, alice, bob, "fourth"))
	f.waitCounts(t, [3]int{2, 3, 3}) // nothing more to the gone device
}

// A push service that takes seconds to answer does not slow sending:
// measured on the sender's requests while every service hangs.
// TestWebPushNotConfigured: a server without a VAPID key says so with a
// 200 the web client reads ({"available": false}, no key), not a 404 that
// every browser would log as an error.
func TestWebPushNotConfigured(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig(t))
	r := ts.do("GET", "/api/push/vapid-public-key", "", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET /api/push/vapid-public-key without Web Push: %d %s, want 200", r.Status, r.Body)
	}
	if m := r.json(t); len(m) != 1 || m["available"] != false {
		t.Fatalf("GET /api/push/vapid-public-key without Web Push: %s, want {\"available\":false}", r.Body)
	}
}

func TestPushSlowServiceDoesNotDelayDelivery(t *testing.T) {
	t.Parallel()
	ts, f := pushServer(t)
	alice := ts.registerWithKeys("slowalice", "alice")
	bob := ts.registerWithKeys("slowbob", "bob")
	for _, reg := range [][2]string{{strings.Repeat("ef", 32), "ios"}, {"slow-android-" + strings.Repeat("y", 40), "android"},
		{f.web.Subscribe("https://push.example.test/wpush/slow"), "web"}} {
		expectHTTPStatus(t, ts.do("POST", "/api/push-token", bob.Access, map[string]any{"token": reg[0], "platform": reg[1]}), http.StatusCreated, "register "+reg[1])
	}
	const hang = 5 * time.Second
	f.apns.SetDelay(hang)
	f.fcm.SetDelay(hang)
	f.web.SetDelay(hang)
	var slowest time.Duration
	for i := range 10 {
		start := time.Now()
		ts.sendOK(alice, sealTo(t, alice, bob, "message "+string(rune('0'+i))))
		slowest = max(slowest, time.Since(start))
	}
	if slowest > time.Second {
		t.Fatalf("the slowest send took %v while the push services hang for %v", slowest, hang)
	}
	t.Logf("slowest of 10 sends: %v (push services answering after %v)", slowest, hang)
	if n := len(ts.mailbox(bob, "")); n != 10 {
		t.Fatalf("bob's mailbox holds %d messages, want 10", n)
	}
	// The hanging requests were made (the services were really slow, not
	// skipped), one per device: the burst coalesced behind them.
	waitFor(t, "the push requests to start", func() bool { return f.apns.Hits() >= 1 && f.fcm.Hits() >= 1 && f.web.Hits() >= 1 })
}

// Configuration mistakes stop the server with the variable to fix.
func TestPushConfigErrors(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		edit func(*homeserver.Config)
		want string
	}{
		"legacy FCM key": {func(c *homeserver.Config) { c.FCMServerKey = "AAAA-legacy" }, "FCM_CREDENTIALS_FILE"},
		"VAPID without subject": {func(c *homeserver.Config) {
			c.VAPIDPrivateKey, _, _ = push.GenerateVAPID()
		}, "VAPID_SUBJECT"},
		"bad VAPID key": {func(c *homeserver.Config) { c.VAPIDPrivateKey, c.VAPIDSubject = "not a key", "mailto:a@b.example" }, "homeserver gen-vapid"},
		"bad APNs certificate": {func(c *homeserver.Config) {
			c.APNSCert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
		}, "APNS_CERT"},
		"APNs key without id": {func(c *homeserver.Config) {
			k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			der, _ := x509.MarshalPKCS8PrivateKey(k)
			c.APNSKey, c.APNSTopic = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), "org.example.app"
		}, "APNS_KEY_ID"},
		"FCM file missing": {func(c *homeserver.Config) { c.FCMCredentialsFile = "/nonexistent/sa.json" }, "FCM_CREDENTIALS_FILE"},
	} {
		cfg := testConfig(t)
		c.edit(&cfg)
		_, err := homeserver.New(cfg, homeserver.Options{InMemoryStore: true})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %s", name, err, c.want)
		}
	}
}

// waitFor polls cond until it holds (15 s at most).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
