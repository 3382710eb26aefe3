package push

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/privateline/privateline/push/pushtest"
)

const androidToken = "fcm-registration-token-000000000000000000"

func TestFCMSend(t *testing.T) {
	f := pushtest.NewFCM(t)
	s, err := NewFCM(FCMConfig{Credentials: f.Credentials, Endpoint: f.URL(), Client: f.Client()})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := s.Send(context.Background(), androidToken, Notification{Unread: 2}); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.Issued(); n != 1 {
		t.Errorf("%d access tokens for 3 sends, want 1 (cached)", n)
	}
	got := f.Received()[0]
	f.Revoke("access-1")
	want := `{"message":{"android":{"collapse_key":"new-message","notification":{"body":"New message","notification_count":2,"tag":"new-message","title":"PrivateLine"},"priority":"HIGH","ttl":"86400s"},"data":{"type":"new_message","unread":"2"},"token":"` + androidToken + `"}}`
	if !jsonEqual(t, got, want) {
		t.Fatalf("message %s\nwant    %s", got, want)
	}
	// A token revoked early: one fresh token, and the send goes through.
	if err := s.Send(context.Background(), androidToken, Notification{Unread: 3}); err != nil {
		t.Fatal(err)
	}
	if n, m := f.Issued(), len(f.Received()); n != 2 || m != 4 {
		t.Fatalf("issued %d tokens, %d messages; want 2 and 4", n, m)
	}
}

func TestFCMAnswers(t *testing.T) {
	f := pushtest.NewFCM(t)
	s, err := NewFCM(FCMConfig{Credentials: f.Credentials, Endpoint: f.URL(), Client: f.Client()})
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
		f.Answer(tok, c.code)
		err := s.Send(context.Background(), tok, Notification{Unread: 1})
		var se *SendError
		if !errors.As(err, &se) || se.Reason != c.reason || se.Gone != c.gone || se.Retry != c.retry {
			t.Errorf("%s: %v, want %s gone %v retry %v", c.code, err, c.reason, c.gone, c.retry)
		}
	}
}

func TestNewFCMChecks(t *testing.T) {
	var m map[string]string
	json.Unmarshal(pushtest.NewFCM(t).Credentials, &m)
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
