package homeserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/privateline/privateline/clients/go/e2ee"
)

// ack is a send the server acknowledged.
type ack struct {
	from, to *keyAccount
	id       string
	seq      uint64
}

// TestCrashKeepsAcknowledgedMessages kills the homeserver with SIGKILL in
// the middle of concurrent sends and restarts it: every acknowledged
// message is in its sender's and recipients' mailboxes exactly once with
// the sequence number it was acknowledged with; sends that were in flight
// either landed once or can be retried (same id) to land once; and a
// reader who resumes with the last sequence number it saw gets exactly
// what it missed, over REST and over the WebSocket: bob's socket
// (GET /api/ws?after=) is open during the sends, and after the restart he
// reconnects with the last number it delivered and gets every event he
// had not seen, in order, without a gap or a duplicate, then ready.
func TestCrashKeepsAcknowledgedMessages(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := startChild(t, dir)
	ts := &testServer{t: t, cfg: testConfig(t), URL: "http://" + c.addr}
	ts.cfg.ServerName = "hs.test"
	users := []*keyAccount{
		ts.registerWithKeys("crasha", "alice"),
		ts.registerWithKeys("crashb", "bob"),
		ts.registerWithKeys("crashc", "carol"),
	}
	alice, bob, carol := users[0], users[1], users[2]

	// Envelopes are sealed before the clock starts.
	const perSender = 400
	type job struct {
		from, to *keyAccount
		msg      sealed
	}
	pairs := [][2]*keyAccount{{alice, bob}, {carol, bob}, {bob, alice}, {alice, carol}}
	queues := make([][]job, len(pairs))
	for i, p := range pairs {
		for n := range perSender {
			queues[i] = append(queues[i], job{p[0], p[1], sealTo(t, p[0], p[1], fmt.Sprint(i, "/", n))})
		}
	}

	client := &http.Client{Timeout: 30 * time.Second}
	post := func(j job) (uint64, int, error) {
		req, _ := http.NewRequest("POST", ts.URL+"/api/messages", bytes.NewReader(j.msg.Raw))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+j.from.Access)
		resp, err := client.Do(req)
		if err != nil {
			return 0, 0, err
		}
		defer resp.Body.Close()
		var a struct {
			Seq uint64 `json:"seq"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
			return 0, resp.StatusCode, err
		}
		return a.Seq, resp.StatusCode, nil
	}

	var (
		mu       sync.Mutex
		acked    []ack
		inFlight []job // sent, not acknowledged
		nAcked   atomic.Int64
		killed   = make(chan struct{})
	)
	var wg sync.WaitGroup
	for i := range pairs {
		wg.Go(func() {
			for _, j := range queues[i] {
				seq, status, err := post(j)
				mu.Lock()
				switch {
				case err == nil && status == http.StatusCreated:
					acked = append(acked, ack{j.from, j.to, j.msg.ID(), seq})
					nAcked.Add(1)
				case err == nil:
					t.Errorf("send: status %d", status)
				default:
					inFlight = append(inFlight, j)
				}
				mu.Unlock()
				if err != nil {
					return // the server is gone
				}
			}
			t.Error("a sender finished before the kill: raise perSender")
		})
	}
	// bob listens on the WebSocket too, resuming after the last event it
	// delivered if the server drops him (a slow reader) before the kill.
	var (
		wsSeen = map[string]uint64{} // message id → seq, before the kill
		wsLast uint64
	)
	wg.Go(func() {
		for {
			conn, _, err := websocket.DefaultDialer.Dial(wsBase(ts.URL)+"?after="+strconv.FormatUint(wsLast, 10), bearer(bob.Access))
			if err != nil {
				return // the server is gone
			}
			for {
				_, data, err := conn.ReadMessage()
				if err != nil {
					break
				}
				var f wsFrame
				if err := json.Unmarshal(data, &f); err != nil {
					t.Errorf("frame is not JSON: %q", data)
					break
				}
				switch {
				case f.Type == "ready" && f.Seq == wsLast:
				case f.Type == "message" && f.Seq == wsLast+1 && frameOf(f) == f.ID:
					if _, dup := wsSeen[f.ID]; dup {
						t.Errorf("socket: message %s twice", f.ID)
					}
					wsSeen[f.ID], wsLast = f.Seq, f.Seq
				default:
					t.Errorf("socket before the kill: frame %s after seq %d", data, wsLast)
				}
			}
			conn.Close()
			select {
			case <-killed:
				return
			default: // dropped by a live server: resume
			}
		}
	})
	// bob reads as the messages arrive, remembering the last number.
	var bobSeen []string
	var bobLast uint64
	wg.Go(func() {
		for {
			select {
			case <-killed:
				return
			default:
			}
			items, err := pollMailbox(client, ts.URL, bob.Access, bobLast)
			if err != nil {
				return
			}
			for _, it := range items {
				e, err := e2ee.ParseEnvelope(it.Envelope)
				if err != nil {
					t.Errorf("served envelope does not parse: %v", err)
					return
				}
				bobSeen = append(bobSeen, e.Header.ID)
				bobLast = it.Seq
			}
		}
	})
	deadline := time.Now().Add(2 * time.Minute)
	for nAcked.Load() < 150 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // polling a counter, not ordering
	}
	if nAcked.Load() < 150 {
		t.Fatalf("only %d sends acknowledged in two minutes", nAcked.Load())
	}
	c.kill(t)
	close(killed)
	wg.Wait()
	t.Logf("killed after %d acknowledged sends, %d in flight; bob had read up to seq %d", len(acked), len(inFlight), bobLast)

	c = startChild(t, dir)
	ts.URL = "http://" + c.addr

	// Every acknowledged message is there, once, with its number.
	boxes := map[*keyAccount]map[string][]mailItem{}
	for _, u := range users {
		boxes[u] = fullMailbox(t, ts, u)
	}
	for _, a := range acked {
		out := boxes[a.from][a.id]
		if len(out) != 1 || out[0].Direction != "out" || out[0].Seq != a.seq {
			t.Errorf("acknowledged message %s (seq %d): sender's copies %+v", a.id, a.seq, out)
		}
		if in := boxes[a.to][a.id]; len(in) != 1 || in[0].Direction != "in" {
			t.Errorf("acknowledged message %s: recipient's copies %+v", a.id, in)
		}
	}
	// bob's socket resumes after the last event it delivered: exactly
	// the events of the messages he had not seen on it, numbered on from
	// there, then ready. Together they are his whole mailbox, once each.
	if len(wsSeen) == 0 {
		t.Fatal("bob's socket delivered nothing before the kill")
	}
	resumed := ts.openWS(bob.Access, "?after="+strconv.FormatUint(wsLast, 10))
	next := wsLast
	for {
		f := resumed.next()
		if f.Type == "ready" {
			if f.Seq != next {
				t.Fatalf("ready at %d after the replay up to %d", f.Seq, next)
			}
			break
		}
		if f.Type != "message" || f.Seq != next+1 || frameOf(f) != f.ID {
			t.Fatalf("replay after %d: frame %+v, want message %d", wsLast, f, next+1)
		}
		if seq, ok := wsSeen[f.ID]; ok {
			t.Fatalf("replay: message %s again (seen at seq %d before the kill)", f.ID, seq)
		}
		wsSeen[f.ID], next = f.Seq, f.Seq
	}
	t.Logf("bob's socket had seen up to seq %d; the replay went to %d", wsLast, next)
	for id, items := range boxes[bob] {
		if seq, ok := wsSeen[id]; !ok || seq != items[0].Seq {
			t.Errorf("message %s (seq %d in bob's mailbox): over the socket at %d, seen %v", id, items[0].Seq, seq, ok)
		}
	}
	if len(wsSeen) != len(boxes[bob]) {
		t.Errorf("bob's socket delivered %d messages, his mailbox holds %d", len(wsSeen), len(boxes[bob]))
	}
	for _, a := range acked {
		if _, ok := wsSeen[a.id]; (a.to == bob || a.from == bob) && !ok {
			t.Errorf("acknowledged message %s of bob's never came over his socket", a.id)
		}
	}

	// In-flight sends landed at most once; a retry makes them land once.
	for _, j := range inFlight {
		if n := len(boxes[j.to][j.msg.ID()]); n > 1 {
			t.Errorf("in-flight message stored %d times", n)
		}
		if _, status, err := post(j); err != nil || (status != http.StatusOK && status != http.StatusCreated) {
			t.Errorf("retrying an in-flight send: %d %v", status, err)
		}
	}
	for _, j := range inFlight {
		if n := len(fullMailbox(t, ts, j.to)[j.msg.ID()]); n != 1 {
			t.Errorf("after the retry the in-flight message is stored %d times", n)
		}
	}
	// bob resumes after the last number he saw: exactly what he missed.
	rest, err := pollMailbox(client, ts.URL, bob.Access, bobLast)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, id := range bobSeen {
		got[id]++
	}
	for _, it := range rest {
		got[it.id(t)]++
	}
	for id, items := range fullMailbox(t, ts, bob) {
		if items[0].Direction == "in" && got[id] != 1 {
			t.Errorf("bob saw message %s %d times across the crash", id, got[id])
		}
	}
}

// pollMailbox returns the mailbox items after seq (every page).
func pollMailbox(client *http.Client, base, token string, after uint64) ([]mailItem, error) {
	var all []mailItem
	for {
		req, _ := http.NewRequestWithContext(context.Background(), "GET", base+"/api/messages?limit=100&after="+strconv.FormatUint(after, 10), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		var page struct {
			Messages []mailItem `json:"messages"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET /api/messages: %d %v", resp.StatusCode, err)
		}
		all = append(all, page.Messages...)
		if len(page.Messages) < 100 {
			return all, nil
		}
		after = page.Messages[len(page.Messages)-1].Seq
	}
}

// fullMailbox returns every item of u's mailbox by message id, checking
// that sequence numbers ascend.
func fullMailbox(t *testing.T, ts *testServer, u *keyAccount) map[string][]mailItem {
	t.Helper()
	items, err := pollMailbox(http.DefaultClient, ts.URL, u.Access, 0)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]mailItem{}
	for i, it := range items {
		if i > 0 && it.Seq <= items[i-1].Seq {
			t.Errorf("%s's mailbox: seq %d after %d", u.Username, it.Seq, items[i-1].Seq)
		}
		m[it.id(t)] = append(m[it.id(t)], it)
	}
	return m
}

// wsBase is the WebSocket URL of the server at base (http://host:port).
func wsBase(base string) string { return "ws" + strings.TrimPrefix(base, "http") + "/api/ws" }

// frameOf is the id in the header of a message frame's envelope, or "".
func frameOf(f wsFrame) string {
	if f.Message == nil {
		return ""
	}
	e, err := e2ee.ParseEnvelope(f.Message.Envelope)
	if err != nil {
		return ""
	}
	return e.Header.ID
}
