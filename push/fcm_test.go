package push

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// fakeFCM is Google's OAuth token endpoint and the FCM HTTP v1 API in one
// TLS server.
type fakeFCM struct {
	t       *testing.T
	srv     *httptest.Server
	key     *rsa.PublicKey
	mu      sync.Mutex
	issued  int               // access tokens handed out
	revoked map[string]bool   // access tokens answered 401
	answer  map[string]string // device token → error code (404 UNREGISTERED, 429 QUOTA_EXCEEDED, 503 UNAVAILABLE)
	got     []map[string]any
}

func newFakeFCM(t *testing.T) (*fakeFCM, []byte) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeFCM{t: t, key: &k.PublicKey, revoked: map[string]bool{}, answer: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", f.token)
	mux.HandleFunc("POST /v1/projects/demo-project/messages:send", f.send)
	f.srv = httptest.NewTLSServer(mux)
	t.Cleanup(f.srv.Close)
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	creds, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "demo-project", "client_email": "push@demo-project.example",
		"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"token_uri":   f.srv.URL + "/token",
	})
	return f, creds
}

func (f *fakeFCM) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		f.t.Errorf("token request %v", r.PostForm)
		http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
		return
	}
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(r.PostForm.Get("assertion"), claims, func(*jwt.Token) (any, error) { return f.key, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithAudience(f.srv.URL+"/token"), jwt.WithIssuer("push@demo-project.example"),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt()); err != nil {
		f.t.Errorf("assertion: %v", err)
		http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
		return
	}
	if claims["scope"] != "https://www.googleapis.com/auth/firebase.messaging" {
		f.t.Errorf("scope %v", claims["scope"])
	}
	f.mu.Lock()
	f.issued++
	tok := fmt.Sprintf("access-%d", f.issued)
	f.mu.Unlock()
	json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "expires_in": 3599, "token_type": "Bearer"})
}

func (f *fakeFCM) send(w http.ResponseWriter, r *http.Request) {
	at, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	defer f.mu.Unlock()
	if !strings.HasPrefix(at, "access-") || f.revoked[at] {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}`)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		f.t.Errorf("FCM body %q", body)
	}
	f.got = append(f.got, m)
	tok, _ := m["message"].(map[string]any)["token"].(string)
	status := map[string]int{"UNREGISTERED": 404, "QUOTA_EXCEEDED": 429, "UNAVAILABLE": 503, "INVALID_ARGUMENT": 400}
	if code, ok := f.answer[tok]; ok {
		w.WriteHeader(status[code])
		fmt.Fprintf(w, `{"error":{"code":%d,"message":"%s","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"%s"}]}}`, status[code], strings.ToLower(code), code)
		return
	}
	io.WriteString(w, `{"name":"projects/demo-project/messages/1"}`)
}

const androidToken = "fcm-registration-token-000000000000000000"

func TestFCMSend(t *testing.T) {
	f, creds := newFakeFCM(t)
	s, err := NewFCM(FCMConfig{Credentials: creds, Endpoint: f.srv.URL, Client: f.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := s.Send(context.Background(), androidToken, Notification{Unread: 2}); err != nil {
			t.Fatal(err)
		}
	}
	f.mu.Lock()
	if f.issued != 1 {
		t.Errorf("%d access tokens for 3 sends, want 1 (cached)", f.issued)
	}
	got, _ := json.Marshal(f.got[0])
	f.revoked["access-1"] = true
	f.mu.Unlock()
	want := `{"message":{"android":{"collapse_key":"new-message","notification":{"body":"New message","notification_count":2,"tag":"new-message","title":"PrivateLine"},"priority":"HIGH","ttl":"86400s"},"data":{"type":"new_message","unread":"2"},"token":"` + androidToken + `"}}`
	if string(got) != want {
		t.Fatalf("message %s\nwant    %s", got, want)
	}
	// A token revoked early: one fresh token, and the send goes through.
	if err := s.Send(context.Background(), androidToken, Notification{Unread: 3}); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.issued != 2 || len(f.got) != 4 {
		t.Fatalf("issued %d tokens, %d messages; want 2 and 4", f.issued, len(f.got))
	}
}

func TestFCMAnswers(t *testing.T) {
	f, creds := newFakeFCM(t)
	s, err := NewFCM(FCMConfig{Credentials: creds, Endpoint: f.srv.URL, Client: f.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		code        string
		reason      string
		gone, retry bool
	}{
		{"UNREGISTERED", "gone", true, false},
		{"QUOTA_EXCEEDED", "rate_limited", false, true},
		{"UNAVAILABLE", "unavailable", false, true},
		{"INVALID_ARGUMENT", "rejected", false, false},
	} {
		tok := "tok-" + c.code + strings.Repeat("0", 32)
		f.mu.Lock()
		f.answer[tok] = c.code
		f.mu.Unlock()
		err := s.Send(context.Background(), tok, Notification{Unread: 1})
		var se *SendError
		if !errors.As(err, &se) || se.Reason != c.reason || se.Gone != c.gone || se.Retry != c.retry {
			t.Errorf("%s: %v, want %s gone %v retry %v", c.code, err, c.reason, c.gone, c.retry)
		}
	}
}

func TestNewFCMChecks(t *testing.T) {
	_, creds := newFakeFCM(t)
	var m map[string]string
	json.Unmarshal(creds, &m)
	mod := func(k, v string) []byte {
		c := map[string]string{}
		for a, b := range m {
			c[a] = b
		}
		c[k] = v
		j, _ := json.Marshal(c)
		return j
	}
	for name, c := range map[string][]byte{
		"not json":      []byte("AIzaSy-legacy-server-key"),
		"not a service": mod("type", "authorized_user"),
		"no project":    mod("project_id", ""),
		"http token":    mod("token_uri", "http://oauth.example/token"),
		"bad key":       mod("private_key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
	} {
		if _, err := NewFCM(FCMConfig{Credentials: c}); err == nil {
			t.Errorf("%s: taken", name)
		}
	}
}
