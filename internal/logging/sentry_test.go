package logging

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeSentry is a Sentry ingestion endpoint on loopback that keeps the
// envelopes it receives.
type fakeSentry struct {
	dsn string

	mu     sync.Mutex
	bodies [][]byte
}

func newFakeSentry(t *testing.T) *fakeSentry {
	t.Helper()
	f := &fakeSentry{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/42/envelope/" {
			t.Errorf("Sentry request to %s", r.URL.Path)
			http.NotFound(w, r)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				t.Errorf("gzip: %v", err)
				return
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		if err != nil {
			t.Errorf("reading envelope: %v", err)
		}
		f.mu.Lock()
		f.bodies = append(f.bodies, b)
		f.mu.Unlock()
		w.Write([]byte(`{}`))
	}))
	t.Cleanup(srv.Close)
	f.dsn = "http://public@" + srv.Listener.Addr().String() + "/42"
	return f
}

func (f *fakeSentry) envelopes() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.bodies...)
}

// sentryEvent is the part of an event payload the tests look at.
type sentryEvent struct {
	Message     string                    `json:"message"`
	Level       string                    `json:"level"`
	Environment string                    `json:"environment"`
	Release     string                    `json:"release"`
	Contexts    map[string]map[string]any `json:"contexts"`
}

// events parses an envelope: a header line, then item headers each followed
// by a payload line. It returns the payloads of "event" items.
func events(t *testing.T, envelope []byte) []sentryEvent {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(envelope))
	sc.Buffer(nil, 1<<20)
	sc.Scan() // envelope header
	var evs []sentryEvent
	for sc.Scan() {
		var item struct{ Type string }
		if err := json.Unmarshal(sc.Bytes(), &item); err != nil {
			t.Fatalf("item header %q: %v", sc.Text(), err)
		}
		if !sc.Scan() {
			t.Fatalf("item %q without payload", item.Type)
		}
		if item.Type != "event" {
			t.Errorf("unexpected %q item", item.Type)
			continue
		}
		var ev sentryEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("event payload: %v", err)
		}
		evs = append(evs, ev)
	}
	return evs
}

func TestSentryGetsRedactedErrorsOnly(t *testing.T) {
	srv := newFakeSentry(t)
	var buf bytes.Buffer
	log, c := mustNew(t, Options{
		Stderr: &buf, SentryDSN: srv.dsn, Environment: "test", Release: "v0.0.0-test",
	})
	log.With("route", "/v1/send").WithGroup("req").Error("storage write failed",
		"token", "tok-secret-1",
		"user_id", 7,
		slog.Group("session", "refresh_token", "refresh-secret-2"),
	)
	log.Info("all is well", "password", "pw-secret-3")
	mustClose(t, c)

	if n := countLines(buf.Bytes()); n != 2 {
		t.Errorf("base handler wrote %d lines, want 2", n)
	}
	envs := srv.envelopes()
	if len(envs) != 1 {
		t.Fatalf("Sentry got %d envelopes, want 1", len(envs))
	}
	for _, s := range []string{"tok-secret-1", "refresh-secret-2", "pw-secret-3", "all is well"} {
		if bytes.Contains(envs[0], []byte(s)) {
			t.Errorf("envelope contains %q", s)
		}
	}
	evs := events(t, envs[0])
	if len(evs) != 1 {
		t.Fatalf("%d events, want 1", len(evs))
	}
	ev := evs[0]
	if ev.Message != "storage write failed" || ev.Level != "error" || ev.Environment != "test" || ev.Release != "v0.0.0-test" {
		t.Errorf("event = %+v", ev)
	}
	attrs := ev.Contexts["attributes"]
	want := map[string]any{
		"route":                     "/v1/send",
		"req.user_id":               float64(7),
		"req.token":                 "[REDACTED]",
		"req.session.refresh_token": "[REDACTED]",
	}
	for k, v := range want {
		if attrs[k] != v {
			t.Errorf("attributes[%q] = %v, want %v (all: %v)", k, attrs[k], v, attrs)
		}
	}
}

func TestSentryLevels(t *testing.T) {
	tests := []struct {
		level slog.Level
		want  string // "" means no event
	}{
		{slog.LevelWarn, ""},
		{slog.LevelError, "error"},
		{slog.LevelError + 4, "fatal"},
	}
	for _, tt := range tests {
		t.Run(tt.level.String(), func(t *testing.T) {
			srv := newFakeSentry(t)
			log, c := mustNew(t, Options{Stderr: io.Discard, SentryDSN: srv.dsn})
			log.Log(t.Context(), tt.level, "something")
			mustClose(t, c)
			var levels []string
			for _, env := range srv.envelopes() {
				for _, ev := range events(t, env) {
					levels = append(levels, ev.Level)
				}
			}
			if got := strings.Join(levels, ","); got != tt.want {
				t.Errorf("event levels %q, want %q", got, tt.want)
			}
		})
	}
}
