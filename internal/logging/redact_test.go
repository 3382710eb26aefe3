package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestIsSecretKey(t *testing.T) {
	tests := []struct {
		key  string
		want bool
	}{
		{"token", true},
		{"Authorization", true},
		{"EMAIL", true},
		{"auth_key", true},
		{"current_auth_key", true},
		{"encrypted_private_key", true},
		{"key", true},
		{"nonce", true},
		{"x_key", true},
		{"Session_Token", true},
		{"client_secret", true},
		{"user_id", false},
		{"route", false},
		{"status", false},
		{"monkey", false},
		{"keyboard", false},
		{"tokens", false},
		{"key_id", false},
		{"msg", false},
	}
	for _, tt := range tests {
		if got := isSecretKey(tt.key); got != tt.want {
			t.Errorf("isSecretKey(%q) = %v, want %v", tt.key, got, tt.want)
		}
	}
}

// opaque is how callers mark a value secret whatever its key.
type opaque string

func (opaque) LogValue() slog.Value { return slog.StringValue("[REDACTED]") }

func TestRedaction(t *testing.T) {
	var buf bytes.Buffer
	log, _ := mustNew(t, Options{Stderr: &buf})
	secrets := []string{
		"tok-111", "alice@example.org", "authkey-222", "refresh-333", "xkey-444",
		"bearer-555", "withtoken-666", "groupsecret-777", "valuer-888", "pw-999",
	}
	log.With("Authorization", "Bearer bearer-555", "user_id", "u-42").
		WithGroup("req").
		With("csrf_token", "withtoken-666").
		Info("request done",
			"token", "tok-111",
			"email", "alice@example.org",
			"auth_key", "authkey-222",
			slog.Group("session", "refresh_token", "refresh-333", "status", 200),
			"x_key", "xkey-444",
			slog.Group("secret", "inner", "groupsecret-777"),
			"note", opaque("valuer-888"),
			"route", "/v1/messages",
		)
	log.WithGroup("Password").Warn("bad login", "attempt", "pw-999")

	out := buf.String()
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("output contains secret %q:\n%s", s, out)
		}
	}
	for _, s := range []string{`"user_id":"u-42"`, `"route":"/v1/messages"`, `"status":200`, `"token":"[REDACTED]"`, `"x_key":"[REDACTED]"`} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %s:\n%s", s, out)
		}
	}
	// Every line is still well-formed JSON.
	for line := range strings.Lines(out) {
		if !json.Valid([]byte(line)) {
			t.Errorf("invalid JSON line %q", line)
		}
	}
}
