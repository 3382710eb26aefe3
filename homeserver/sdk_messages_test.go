package homeserver_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/client"
	"github.com/privateline/privateline/clients/go/e2ee"
)

// faultTransport loses the answers of POST /api/messages (after the
// server handled the request) and tampers with the envelopes of GET
// /api/messages answers, on demand.
type faultTransport struct {
	dropPosts atomic.Int32 // answers to lose
	tamper    atomic.Bool  // flip a ciphertext byte of every envelope
}

func (f *faultTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || r.URL.Path != "/api/messages" {
		return resp, err
	}
	if r.Method == http.MethodPost && f.dropPosts.Add(-1) >= 0 {
		resp.Body.Close()
		return nil, errors.New("connection reset (test)")
	}
	if r.Method != http.MethodGet || !f.tamper.Load() || resp.StatusCode != http.StatusOK {
		return resp, nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	var page map[string][]map[string]any
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, err
	}
	for _, m := range page["messages"] {
		env := m["envelope"].(map[string]any)
		ct, _ := base64.StdEncoding.DecodeString(env["ciphertext"].(string))
		ct[len(ct)/2] ^= 1
		env["ciphertext"] = base64.StdEncoding.EncodeToString(ct)
	}
	body, _ = json.Marshal(page)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return resp, nil
}

func text(s string) *e2ee.Message { return &e2ee.Message{Type: e2ee.MessageTypeText, Body: s} }

func mustSend(t *testing.T, s *client.Session, to privateline.Address, body string) *client.SendResult {
	t.Helper()
	res, err := s.Send(context.Background(), []privateline.Address{to}, text(body), client.SendOptions{})
	if err != nil {
		t.Fatalf("%s sends to %s: %v", s.Address(), to, err)
	}
	return res
}

func mustMessages(t *testing.T, s *client.Session, q client.MessagesQuery) []client.Item {
	t.Helper()
	items, err := s.Messages(context.Background(), q)
	if err != nil {
		t.Fatalf("%s's messages: %v", s.Address(), err)
	}
	return items
}

func findItem(items []client.Item, id string) *client.Item {
	for i := range items {
		if items[i].ID == id {
			return &items[i]
		}
	}
	return nil
}

// TestSDKMessages: alice and bob exchange direct messages through the real
// homeserver with the SDK; carol, a third user, sees nothing of them; a
// lost answer is retried idempotently; a tampered envelope is shown as an
// error, never as text; key changes are pinned, reported and, for a
// verified contact, refused.
func TestSDKMessages(t *testing.T) {
	ctx := context.Background()
	ts := startServer(t, testConfig(t))
	aliceT, bobT := &faultTransport{}, &faultTransport{}
	aliceU := sdkRegister(t, ts, sdkClient(t, ts, aliceT), "alice", "alice")
	bobU := sdkRegister(t, ts, sdkClient(t, ts, bobT), "bob", "bob")
	carolU := sdkRegister(t, ts, sdkClient(t, ts, nil), "carol", "carol")
	alice, bob, carol := aliceU.login(t), bobU.login(t), carolU.login(t)

	// Alice's first message pins bob on first use.
	hello := mustSend(t, alice, bob.Address(), "hello bob ☃")
	if hello.Seq == 0 || len(hello.ID) != 32 || hello.Replayed || len(hello.KeyChanged) != 0 ||
		len(hello.Pinned) != 1 || hello.Pinned[0] != bob.Address() {
		t.Fatalf("first send: %+v", hello)
	}
	if p, err := alice.GetPins(ctx); err != nil || p.Pins[bob.Address()].IdentityKey != bob.Bundle().Identity {
		t.Fatalf("alice's pin of bob after the first send: %+v %v", p, err)
	}

	// Bob's history decrypts it (and pins alice); unread until read.
	items := mustMessages(t, bob, client.MessagesQuery{})
	it := findItem(items, hello.ID)
	if len(items) != 1 || it == nil || it.Err != nil || it.Body() != "hello bob ☃" || it.From != alice.Address() ||
		it.Outgoing || it.Read || it.KeyChanged || it.Seq == 0 || !it.SentAt.Equal(hello.SentAt) {
		t.Fatalf("bob's history: %+v", items)
	}
	if p, err := bob.GetPins(ctx); err != nil || p.Pins[alice.Address()].IdentityKey != alice.Bundle().Identity {
		t.Fatalf("bob's pin of alice after reading: %+v %v", p, err)
	}
	if u, err := bob.UnreadCount(ctx); err != nil || u.Unread != 1 || u.Direct != 1 {
		t.Fatalf("bob's unread count: %+v %v", u, err)
	}
	if err := bob.MarkRead(ctx, hello.ID); err != nil {
		t.Fatal(err)
	}
	if u, err := bob.UnreadCount(ctx); err != nil || u.Unread != 0 {
		t.Fatalf("bob's unread count after reading: %+v %v", u, err)
	}
	// Alice's own copy opens too, and shows bob read it.
	mine := findItem(mustMessages(t, alice, client.MessagesQuery{With: bob.Address()}), hello.ID)
	if mine == nil || mine.Err != nil || !mine.Outgoing || mine.Body() != "hello bob ☃" ||
		len(mine.ReadBy) != 1 || mine.ReadBy[0] != bob.Address() {
		t.Fatalf("alice's copy: %+v", mine)
	}

	// Carol can neither list, mark nor delete it.
	if items := mustMessages(t, carol, client.MessagesQuery{}); len(items) != 0 {
		t.Fatalf("carol sees %+v", items)
	}
	if err := carol.MarkRead(ctx, hello.ID); !privateline.Is(privateline.NotExist, err) {
		t.Fatalf("carol marks alice's message read: %v, want NotExist", err)
	}
	if err := carol.Delete(ctx, hello.ID); !privateline.Is(privateline.NotExist, err) {
		t.Fatalf("carol deletes alice's message: %v, want NotExist", err)
	}

	// A lost answer: Send retries the same bytes, the server answers with
	// the first delivery, and bob gets the message once.
	aliceT.dropPosts.Store(1)
	retry := mustSend(t, alice, bob.Address(), "sent twice, delivered once")
	if !retry.Replayed || retry.Seq == 0 || len(retry.Pinned) != 0 {
		t.Fatalf("retried send: %+v", retry)
	}
	n := 0
	for _, it := range mustMessages(t, bob, client.MessagesQuery{HasAfter: true, After: it.Seq}) {
		if it.ID == retry.ID {
			n++
			if it.Body() != "sent twice, delivered once" {
				t.Fatalf("retried message: %+v", it)
			}
		}
	}
	if n != 1 {
		t.Fatalf("bob got the retried message %d times", n)
	}

	// A tampered envelope comes back with Err and no plaintext.
	bobT.tamper.Store(true)
	items = mustMessages(t, bob, client.MessagesQuery{})
	bobT.tamper.Store(false)
	if len(items) != 2 {
		t.Fatalf("tampered page: %d items", len(items))
	}
	for _, it := range items {
		if it.Err == nil || it.Message != nil || it.Body() != "" || e2ee.ReasonOf(it.Err) != e2ee.ErrBadSignature {
			t.Fatalf("tampered envelope: %+v (%v)", it, it.Err)
		}
	}

	// Bob changes his keys. Alice has not verified him: her send goes
	// through and reports the change; bob reads it with his new keys.
	if _, err := bob.ChangeKeys(ctx, newTestKeys(t, bob.Address(), "carol", time.Now()).Keys); err != nil {
		t.Fatal(err)
	}
	changed := mustSend(t, alice, bob.Address(), "after your key change")
	if len(changed.KeyChanged) != 1 || changed.KeyChanged[0] != bob.Address() {
		t.Fatalf("send after an unverified contact's key change: %+v", changed)
	}
	if it := findItem(mustMessages(t, bob, client.MessagesQuery{}), changed.ID); it == nil || it.Err != nil || it.Body() != "after your key change" {
		t.Fatalf("bob reads with his new keys: %+v", it)
	}
	// What bob sends now is not shown to alice, who pinned his old key.
	fromNew := mustSend(t, bob, alice.Address(), "from my new key")
	it = findItem(mustMessages(t, alice, client.MessagesQuery{With: bob.Address()}), fromNew.ID)
	if it == nil || !it.KeyChanged || !client.IsKeyChanged(it.Err) || it.Message != nil {
		t.Fatalf("a message from a sender whose key changed: %+v", it)
	}

	// Alice verifies bob's new key: his messages open, sending works.
	newBob := mustLookup(t, alice, bob.Address())
	if _, err := alice.UpdatePins(ctx, func(p e2ee.Pins) error { p.MarkVerified(newBob, time.Now()); return nil }); err != nil {
		t.Fatal(err)
	}
	it = findItem(mustMessages(t, alice, client.MessagesQuery{With: bob.Address()}), fromNew.ID)
	if it == nil || it.Err != nil || it.Body() != "from my new key" {
		t.Fatalf("after verifying: %+v", it)
	}
	if res := mustSend(t, alice, bob.Address(), "verified"); len(res.KeyChanged) != 0 {
		t.Fatalf("send to a verified contact: %+v", res)
	}
	// His key changes again: alice refuses to send until she verifies.
	if _, err := bob.ChangeKeys(ctx, newTestKeys(t, bob.Address(), "bob", time.Now()).Keys); err != nil {
		t.Fatal(err)
	}
	_, err := alice.Send(ctx, []privateline.Address{bob.Address()}, text("must not go"), client.SendOptions{})
	if !privateline.Is(privateline.Forbidden, err) || !client.IsKeyChanged(err) {
		t.Fatalf("send to a verified contact whose key changed: %v, want Forbidden key_changed", err)
	}

	// Deleting: alice deletes her first message for everyone.
	if err := alice.Delete(ctx, hello.ID); err != nil {
		t.Fatal(err)
	}
	if it := findItem(mustMessages(t, alice, client.MessagesQuery{}), hello.ID); it != nil {
		t.Fatalf("deleted message still listed: %+v", it)
	}
}
