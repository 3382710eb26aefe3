package client

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/e2ee"
)

// The messaging calls' plumbing against fake servers; sealing, opening and
// pinning against the real homeserver are in homeserver/sdk_messages_test.go.

func fakeSession(t *testing.T, h http.HandlerFunc) *Session {
	t.Helper()
	c := fakeServer(t, h)
	return c.newSession("alice@example.org", Tokens{Access: privateline.Secret("a"), Refresh: privateline.Secret("r")}, WrappedKeys{}, nil)
}

func TestMessagePostRetries(t *testing.T) {
	defer func(f func(int) time.Duration) { sendBackoff = f }(sendBackoff)
	sendBackoff = func(int) time.Duration { return 0 }
	body := []byte(`{"envelope":"bytes"}`)
	cases := []struct {
		name     string
		statuses []int // answers in turn; the last repeats
		want     privateline.Kind
		requests int
	}{
		{"created", []int{201}, privateline.Other, 1},
		{"replayed after 503s", []int{503, 502, 200}, privateline.Other, 3},
		{"conflict is final", []int{409}, privateline.Exist, 1},
		{"bad request is final", []int{400}, privateline.Invalid, 1},
		{"always unavailable", []int{504}, privateline.Unavailable, maxSendAttempts},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var mu sync.Mutex
			n := 0
			s := fakeSession(t, func(w http.ResponseWriter, r *http.Request) {
				got, _ := io.ReadAll(r.Body)
				mu.Lock()
				st := c.statuses[min(n, len(c.statuses)-1)]
				n++
				mu.Unlock()
				if r.Method != http.MethodPost || r.URL.Path != "/api/messages" || !bytes.Equal(got, body) {
					t.Errorf("request %s %s %s", r.Method, r.URL.Path, got)
				}
				w.WriteHeader(st)
				w.Write([]byte(`{"id":"x","seq":1}`))
			})
			_, _, err := s.postEnvelope(context.Background(), "test", "/api/messages", "x", body)
			if c.want == privateline.Other && err != nil || c.want != privateline.Other && !privateline.Is(c.want, err) {
				t.Fatalf("err %v, want kind %v", err, c.want)
			}
			if n != c.requests {
				t.Fatalf("%d requests, want %d", n, c.requests)
			}
		})
	}
}

func TestMessagePostGivesUpWithContext(t *testing.T) {
	defer func(f func(int) time.Duration) { sendBackoff = f }(sendBackoff)
	sendBackoff = func(int) time.Duration { return time.Hour }
	ctx, cancel := context.WithCancel(context.Background())
	s := fakeSession(t, func(w http.ResponseWriter, r *http.Request) {
		cancel()
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	_, _, err := s.postEnvelope(ctx, "test", "/api/messages", "x", []byte(`{}`))
	if !privateline.Is(privateline.Unavailable, err) {
		t.Fatalf("err %v, want Unavailable", err)
	}
}

func TestMessagesNeedUnlockedKeys(t *testing.T) {
	s := fakeSession(t, func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("unexpected request %s %s", r.Method, r.URL.Path)
	})
	ctx := context.Background()
	msg := &e2ee.Message{Type: e2ee.MessageTypeText, Body: "hi"}
	if _, err := s.Send(ctx, []privateline.Address{"bob@example.org"}, msg, SendOptions{}); !privateline.Is(privateline.Unauthenticated, err) {
		t.Fatalf("Send while locked: %v", err)
	}
	if _, err := s.Messages(ctx, MessagesQuery{}); !privateline.Is(privateline.Unauthenticated, err) {
		t.Fatalf("Messages while locked: %v", err)
	}
	for _, id := range []string{"", "../keys", "ABCDEF0123456789ABCDEF0123456789", "0123456789abcdef0123456789abcde"} {
		if err := s.MarkRead(ctx, id); !privateline.Is(privateline.Invalid, err) {
			t.Fatalf("MarkRead(%q): %v", id, err)
		}
		if err := s.Delete(ctx, id); !privateline.Is(privateline.Invalid, err) {
			t.Fatalf("Delete(%q): %v", id, err)
		}
	}
}

func TestMessagesQueryAndCounters(t *testing.T) {
	s := fakeSession(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/unread_count":
			w.Write([]byte(`{"unread":3,"direct":2,"groups":1}`))
		case "/api/messages/0123456789abcdef0123456789abcdef/read":
			if r.Method != http.MethodPost {
				t.Errorf("read: %s", r.Method)
			}
			w.WriteHeader(http.StatusNoContent)
		case "/api/messages/0123456789abcdef0123456789abcdef":
			http.Error(w, `{"error":{"code":"not_found","message":"no such message"}}`, http.StatusNotFound)
		default:
			t.Errorf("unexpected %s %s", r.Method, r.URL)
		}
	})
	ctx := context.Background()
	u, err := s.UnreadCount(ctx)
	if err != nil || *u != (Unread{Unread: 3, Direct: 2, Groups: 1}) {
		t.Fatalf("UnreadCount: %+v %v", u, err)
	}
	if err := s.MarkRead(ctx, "0123456789abcdef0123456789abcdef"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "0123456789abcdef0123456789abcdef"); !privateline.Is(privateline.NotExist, err) || CodeOf(err) != CodeNotFound {
		t.Fatalf("Delete of a missing message: %v", err)
	}
}

func TestMessageConversationID(t *testing.T) {
	a, b, c := privateline.Address("alice@example.org"), privateline.Address("bob@example.org"), privateline.Address("carol@example.org")
	id := ConversationID(a, b)
	if id != ConversationID(b, a) || id != ConversationID(b, a, b) || id == ConversationID(a, c) || id == ConversationID(a, b, c) {
		t.Fatal("ConversationID is not a function of the set of participants")
	}
	if len(id) != 35 {
		t.Fatalf("ConversationID %q", id)
	}
}
