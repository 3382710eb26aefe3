package homeserver_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/client"
	"github.com/privateline/privateline/clients/go/e2ee"
	"github.com/privateline/privateline/homeserver"
	"github.com/privateline/privateline/internal/fakeclock"
)

// Real time, end to end: SDK users on one real homeserver, each with
// Listen running, see each other's direct and group messages, files,
// read receipts, membership changes and expiries as they happen, opened
// with real keys. Every expectation reads the listener's next event, so
// an event that should not be there (a group message for a removed
// member) fails the test rather than being skipped.

// rtWait bounds every wait for an event.
const rtWait = 30 * time.Second

// rtListener is one session's Listen, feeding a channel.
type rtListener struct {
	t      *testing.T
	who    privateline.Address
	events chan *client.Event
	done   chan error
	last   uint64
}

// startListening runs s.Listen for live events and waits for ready.
func startListening(t *testing.T, s *client.Session) *rtListener {
	t.Helper()
	l := &rtListener{t: t, who: s.Address(), events: make(chan *client.Event, 256), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		l.done <- s.Listen(ctx, client.ListenOptions{LiveOnly: true, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond},
			func(ev *client.Event) error {
				select {
				case l.events <- ev:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-l.done; !errors.Is(err, context.Canceled) {
			t.Errorf("%s's Listen ended with %v", l.who, err)
		}
	})
	select {
	case ev := <-l.events:
		if ev.Type != client.EventReady {
			t.Fatalf("%s's first event %+v, want ready", l.who, ev)
		}
		l.last = ev.Seq
	case err := <-l.done:
		t.Fatalf("%s's Listen returned %v", l.who, err)
	case <-time.After(rtWait):
		t.Fatalf("%s's Listen is not ready", l.who)
	}
	return l
}

// next returns the next event other than ready (a reconnection), which
// must have a higher sequence number than the one before.
func (l *rtListener) next(what string) *client.Event {
	l.t.Helper()
	deadline := time.After(rtWait)
	for {
		select {
		case ev := <-l.events:
			if ev.Type == client.EventReady {
				continue
			}
			if ev.Seq <= l.last {
				l.t.Fatalf("%s, waiting for %s: event %+v after seq %d", l.who, what, ev, l.last)
			}
			l.last = ev.Seq
			return ev
		case err := <-l.done:
			l.t.Fatalf("%s, waiting for %s: Listen returned %v", l.who, what, err)
		case <-deadline:
			l.t.Fatalf("%s: no event within %v, waiting for %s", l.who, rtWait, what)
		}
	}
}

// message expects the next event to be a message (typ: direct or group)
// with this id, opened, with the body, from the sender.
func (l *rtListener) message(typ, id string, from privateline.Address, body string) *client.Item {
	l.t.Helper()
	ev := l.next(typ + " " + body)
	it := ev.Item
	if ev.Type != typ || it == nil || it.Err != nil || it.ID != id || it.From != from || it.Body() != body ||
		it.Seq != ev.Seq || it.Outgoing != (from == l.who) {
		l.t.Fatalf("%s: %+v (item %+v), want %s %s %q from %s", l.who, ev, it, typ, id, body, from)
	}
	return it
}

// groupChanged expects the next event to be group_changed of id: with
// the epoch and members, or (epoch 0) this account removed.
func (l *rtListener) groupChanged(id string, epoch int64, members ...privateline.Address) {
	l.t.Helper()
	ev := l.next("group_changed")
	if ev.Type != client.EventGroupChanged || ev.Group != id {
		l.t.Fatalf("%s: %+v, want group_changed of %s", l.who, ev, id)
	}
	if epoch == 0 {
		if !ev.Removed || ev.Info != nil {
			l.t.Fatalf("%s: %+v (info %+v), want removed", l.who, ev, ev.Info)
		}
		return
	}
	slices.Sort(members)
	if ev.Removed || ev.Info == nil || ev.Info.ID != id || ev.Info.Epoch != epoch || !slices.Equal(ev.Info.Addresses(), members) {
		l.t.Fatalf("%s: %+v (info %+v), want epoch %d with %v", l.who, ev, ev.Info, epoch, members)
	}
}

// simple expects the next event to be of typ about message id.
func (l *rtListener) simple(typ, id string, by privateline.Address) {
	l.t.Helper()
	ev := l.next(typ)
	if ev.Type != typ || ev.ID != id || ev.By != by || ev.Item != nil {
		l.t.Fatalf("%s: %+v, want %s of %s by %q", l.who, ev, typ, id, by)
	}
}

// clockedUser registers a user (the party's fixed RSA key) and logs in
// through a client whose clock is the server's fake one.
func clockedUser(t *testing.T, ts *testServer, clock *fakeclock.Clock, prefix, party string) *client.Session {
	t.Helper()
	c, err := client.New(client.Options{BaseURL: ts.URL, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return sdkRegister(t, ts, c, prefix, party).login(t)
}

func sendOpts(t *testing.T, s *client.Session, to []privateline.Address, msg *e2ee.Message, o client.SendOptions) *client.SendResult {
	t.Helper()
	res, err := s.Send(context.Background(), to, msg, o)
	if err != nil {
		t.Fatalf("%s sends: %v", s.Address(), err)
	}
	return res
}

func sendGroup(t *testing.T, s *client.Session, id, body string) *client.SendResult {
	t.Helper()
	res, err := s.SendGroup(context.Background(), id, text(body), client.SendOptions{})
	if err != nil {
		t.Fatalf("%s sends to the group: %v", s.Address(), err)
	}
	return res
}

// TestRealtimeEndToEnd is the "done when" in real time.
func TestRealtimeEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := newStepClock()
	ts := startServer(t, wsConfig(t), withStepClock(clock))
	alice := clockedUser(t, ts, clock, "rtalice", "alice")
	bob := clockedUser(t, ts, clock, "rtbob", "bob")
	carol := clockedUser(t, ts, clock, "rtcarol", "carol")
	A, B, C := alice.Address(), bob.Address(), carol.Address()
	la, lb, lc := startListening(t, alice), startListening(t, bob), startListening(t, carol)

	// Direct messages both ways, and to two recipients at once.
	m1 := mustSend(t, alice, B, "hello bob")
	lb.message(client.EventMessage, m1.ID, A, "hello bob")
	la.message(client.EventMessage, m1.ID, A, "hello bob") // her own copy
	m2 := mustSend(t, bob, A, "hello alice")
	la.message(client.EventMessage, m2.ID, B, "hello alice")
	lb.message(client.EventMessage, m2.ID, B, "hello alice")
	m3 := sendOpts(t, carol, []privateline.Address{A, B}, text("hello both"), client.SendOptions{})
	for _, l := range []*rtListener{la, lb, lc} {
		if it := l.message(client.EventMessage, m3.ID, C, "hello both"); !slices.Equal(it.To, []privateline.Address{A, B}) && !slices.Equal(it.To, []privateline.Address{B, A}) {
			t.Fatalf("%s: recipients %v", l.who, it.To)
		}
	}

	// Read receipts reach the sender (and the reader's other devices).
	if err := bob.MarkRead(ctx, m1.ID); err != nil {
		t.Fatal(err)
	}
	la.simple(client.EventRead, m1.ID, B)
	lb.simple(client.EventRead, m1.ID, B)

	// A group: created, everyone talks, carol is removed.
	g, err := alice.CreateGroup(ctx, []privateline.Address{B, C})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []*rtListener{la, lb, lc} {
		l.groupChanged(g.ID, 1, A, B, C)
	}
	for _, s := range []*client.Session{alice, bob, carol} {
		body := "group hello from " + string(s.Address())
		res := sendGroup(t, s, g.ID, body)
		for _, l := range []*rtListener{la, lb, lc} {
			if it := l.message(client.EventGroupMessage, res.ID, s.Address(), body); it.Group != g.ID || it.Epoch != 1 {
				t.Fatalf("%s: group message %+v", l.who, it)
			}
		}
	}
	if err := alice.RemoveMember(ctx, g.ID, C); err != nil {
		t.Fatal(err)
	}
	la.groupChanged(g.ID, 2, A, B)
	lb.groupChanged(g.ID, 2, A, B)
	lc.groupChanged(g.ID, 0)
	for _, s := range []*client.Session{alice, bob} {
		body := "without carol, from " + string(s.Address())
		res := sendGroup(t, s, g.ID, body)
		for _, l := range []*rtListener{la, lb} {
			if it := l.message(client.EventGroupMessage, res.ID, s.Address(), body); it.Group != g.ID || it.Epoch != 2 {
				t.Fatalf("%s: new-epoch message %+v", l.who, it)
			}
		}
	}
	// Carol reads nothing new: no key, no page, and the next event on her
	// socket is a direct message sent after the group's.
	for _, path := range []string{"/key?epoch=2", "/messages", ""} {
		expectAPIError(t, ts.do("GET", "/api/groups/"+g.ID+path, access(carol), nil), http.StatusNotFound, "not_found", "carol GET "+path)
	}
	if _, err := carol.GroupMessages(ctx, g.ID, client.MessagesQuery{}); !privateline.Is(privateline.NotExist, err) {
		t.Fatalf("carol reads the group: %v", err)
	}
	mark := mustSend(t, alice, C, "only direct for you now")
	lc.message(client.EventMessage, mark.ID, A, "only direct for you now")
	la.message(client.EventMessage, mark.ID, A, "only direct for you now")

	// A file: alice uploads a 1 MiB encrypted attachment and sends it to
	// bob; his listener gets the message and he downloads and decrypts
	// the file; carol, not a recipient, gets 404.
	data := randBytes(1 << 20)
	att, err := alice.UploadFile(ctx, data, "big.bin", "application/octet-stream")
	if err != nil {
		t.Fatal(err)
	}
	fm := sendOpts(t, alice, []privateline.Address{B}, &e2ee.Message{Type: e2ee.MessageTypeText, Body: "a file", Attachments: []e2ee.Attachment{*att}}, client.SendOptions{})
	it := lb.message(client.EventMessage, fm.ID, A, "a file")
	la.message(client.EventMessage, fm.ID, A, "a file")
	if len(it.Message.Attachments) != 1 || it.Message.Attachments[0].FileID != att.FileID || it.Message.Attachments[0].Name != "big.bin" {
		t.Fatalf("bob's attachments: %+v", it.Message.Attachments)
	}
	got, err := bob.DownloadFile(ctx, it.Message.Attachments[0])
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("bob's download: %d bytes, %v", len(got), err)
	}
	if _, err := carol.DownloadFile(ctx, *att); !privateline.Is(privateline.NotExist, err) {
		t.Fatalf("carol downloads bob's file: %v", err)
	}
	expectAPIError(t, ts.do("GET", "/api/files/"+att.FileID, access(carol), nil), http.StatusNotFound, "not_found", "carol GET the file")

	// An expiring message with a file disappears everywhere: both
	// listeners hear of it, REST no longer serves it, the file goes.
	small := randBytes(4096)
	eatt, err := alice.UploadFile(ctx, small, "brief.txt", "text/plain")
	if err != nil {
		t.Fatal(err)
	}
	exp := clock.Now().Add(time.Minute)
	em := sendOpts(t, alice, []privateline.Address{B}, &e2ee.Message{Type: e2ee.MessageTypeText, Body: "self-destructs", Attachments: []e2ee.Attachment{*eatt}},
		client.SendOptions{ExpiresAt: exp})
	lb.message(client.EventMessage, em.ID, A, "self-destructs")
	la.message(client.EventMessage, em.ID, A, "self-destructs")
	if got, err := bob.DownloadFile(ctx, *eatt); err != nil || !bytes.Equal(got, small) {
		t.Fatalf("bob's download before the expiry: %v", err)
	}
	_, blobsBefore := ts.fileDirs()
	recordsBefore := ts.fileRecords()
	clock.Advance(time.Minute)
	// The background sweep may have run already (it ticks each minute of
	// real time); the events below are the proof either way.
	if n := homeserver.SweepMessages(ts.srv); n > 1 {
		t.Fatalf("swept %d envelopes, want at most the one", n)
	}
	la.simple(client.EventExpired, em.ID, "")
	lb.simple(client.EventExpired, em.ID, "")
	for _, s := range []*client.Session{alice, bob} {
		items, err := s.Messages(ctx, client.MessagesQuery{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if findItem(items, em.ID) != nil || findItem(items, fm.ID) == nil {
			t.Fatalf("%s's mailbox after the expiry: expired present %v, file message present %v", s.Address(), findItem(items, em.ID) != nil, findItem(items, fm.ID) != nil)
		}
		if r := ts.do("GET", "/api/messages?after=0&limit=100", access(s), nil); r.Status != http.StatusOK || strings.Contains(string(r.Body), em.ID) {
			t.Fatalf("%s's GET /api/messages serves the expired message: %d", s.Address(), r.Status)
		}
		if _, err := s.DownloadFile(ctx, *eatt); !privateline.Is(privateline.NotExist, err) {
			t.Fatalf("%s downloads the expired message's file: %v", s.Address(), err)
		}
	}
	if _, blobs := ts.fileDirs(); blobs != blobsBefore-1 || ts.fileRecords() != recordsBefore-1 {
		t.Fatalf("after the expiry: %d blobs (was %d), %d file records (was %d)", blobs, blobsBefore, ts.fileRecords(), recordsBefore)
	}
	if got, err := bob.DownloadFile(ctx, it.Message.Attachments[0]); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the other file went too: %v", err)
	}
	// Nothing else arrived on any socket.
	for _, l := range []*rtListener{la, lb, lc} {
		select {
		case ev := <-l.events:
			if ev.Type != client.EventReady {
				t.Fatalf("%s: unexpected event %+v", l.who, ev)
			}
		default:
		}
	}
}
