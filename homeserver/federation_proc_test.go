package homeserver_test

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/e2ee"
)

// Federation with homeservers as child processes: killed with SIGKILL
// while a destination's outbox drains.

// fedNode is a federated homeserver process with a fixed federation
// address, so that its peers find it again after a restart.
type fedNode struct {
	t     *testing.T
	name  privateline.ServerName
	dir   string
	host  string   // where its HTTP API and metrics listen (port 0)
	fed   string   // UDP host:port of its federation listener
	peers string   // FEDERATION_PEERS
	wrap  []string // the command it runs under (startChildWith)
	c     *child
	ts    *testServer // its HTTP API (the URL changes with each start)
}

func newFedNode(t *testing.T, name privateline.ServerName, fed string) *fedNode {
	ts := &testServer{t: t, cfg: testConfig(t)}
	ts.cfg.ServerName = name
	return &fedNode{t: t, name: name, dir: t.TempDir(), host: "127.0.0.1", fed: fed, ts: ts}
}

// start starts the process (again) on the node's data directory.
func (n *fedNode) start(env ...string) {
	n.t.Helper()
	n.c = startChildWith(n.t, n.dir, childOptions{wrap: n.wrap, env: append([]string{
		"SERVER_NAME=" + string(n.name),
		"FEDERATION_LISTEN_ADDR=" + n.fed,
		"FEDERATION_PEERS=" + n.peers,
		"LISTEN_ADDR=" + n.host + ":0",
		"METRICS_ADDR=" + n.host + ":0",
	}, env...)})
	n.ts.URL = "http://" + n.c.addr
	c := n.c
	// The end of its log when the test fails (or always with PLT_DEBUG
	// set, to see where the time goes).
	n.t.Cleanup(func() {
		if n.t.Failed() || os.Getenv("PLT_DEBUG") != "" {
			n.t.Logf("%s (%s) logged last:\n%s", n.name, c.addr, c.logTail())
		}
	})
}

// outboxDepth is the number of entries queued for dest, from the
// process's metrics.
func (n *fedNode) outboxDepth(dest privateline.ServerName) int {
	n.t.Helper()
	resp, err := http.Get("http://" + n.c.metrics + "/metrics")
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	prefix := `privateline_federation_outbox_depth{destination="` + string(dest) + `"} `
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			d, err := strconv.Atoi(v)
			if err != nil {
				n.t.Fatalf("metrics: %q", sc.Text())
			}
			return d
		}
	}
	return 0 // no line: nothing queued
}

// mailboxWatch follows the incoming mailboxes of users on one server.
type mailboxWatch struct {
	t     *testing.T
	ts    *testServer
	users []*keyAccount
	after map[*keyAccount]uint64
	n     int // messages seen
}

// poll reads what arrived since the last poll and returns how many
// messages the users have received in all.
func (w *mailboxWatch) poll() int {
	w.t.Helper()
	if w.after == nil {
		w.after = map[*keyAccount]uint64{}
	}
	for _, u := range w.users {
		items, err := pollMailbox(http.DefaultClient, w.ts.URL, u.Access, w.after[u])
		if err != nil {
			w.t.Fatal(err)
		}
		for _, it := range items {
			if it.Direction == "in" {
				w.n++
			}
			w.after[u] = it.Seq
		}
	}
	return w.n
}

// until polls until cond holds for the count, or fails after d.
func (w *mailboxWatch) until(d time.Duration, what string, cond func(int) bool) int {
	w.t.Helper()
	deadline := time.Now().Add(d)
	for {
		n := w.poll()
		if cond(n) {
			return n
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("%s: not within %v (%d messages arrived)", what, d, n)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition
	}
}

// conv is one sender → recipient conversation: its message ids in the
// order they were sent.
type conv struct {
	from, to *keyAccount
	ids      []string
}

// checkArrivals reads every recipient's whole mailbox and checks that each
// conversation's messages are there exactly once and in the order they
// were sent; it reports the number missing and duplicated.
func checkArrivals(t *testing.T, ts *testServer, convs []*conv) (missing, dups int) {
	t.Helper()
	got := map[*keyAccount][]mailItem{}
	for _, c := range convs {
		if _, ok := got[c.to]; !ok {
			items, err := pollMailbox(http.DefaultClient, ts.URL, c.to.Access, 0)
			if err != nil {
				t.Fatal(err)
			}
			got[c.to] = items
		}
	}
	for _, c := range convs {
		var order []string // ids from c.from, in mailbox order
		count := map[string]int{}
		for _, it := range got[c.to] {
			e, err := e2ee.ParseEnvelope(it.Envelope)
			if err != nil {
				t.Fatalf("served envelope does not parse: %v", err)
			}
			if it.Direction == "in" && e.Header.From == c.from.Address {
				order = append(order, e.Header.ID)
				count[e.Header.ID]++
			}
		}
		sent := map[string]bool{}
		for _, id := range c.ids {
			sent[id] = true
			switch k := count[id]; {
			case k == 0:
				missing++
			case k > 1:
				dups += k - 1
			}
		}
		for id := range count {
			if !sent[id] {
				t.Errorf("%s → %s: message %s that was never sent", c.from.Address, c.to.Address, id)
			}
		}
		// In order: the first arrival of each message follows the
		// sending order.
		var firsts []string
		seen := map[string]bool{}
		for _, id := range order {
			if !seen[id] {
				seen[id] = true
				firsts = append(firsts, id)
			}
		}
		want := c.ids[:0:0]
		for _, id := range c.ids {
			if count[id] > 0 {
				want = append(want, id)
			}
		}
		if fmt.Sprint(firsts) != fmt.Sprint(want) {
			t.Errorf("%s → %s: messages out of order:\n got %q\nwant %q", c.from.Address, c.to.Address, firsts, want)
		}
	}
	return missing, dups
}

// TestFederationKilledMidDrain: 600 messages from two users of a.test to
// two users of b.test are queued while b.test is down. b.test starts and
// a.test's outbox drains; a.test is killed with SIGKILL after some but not
// all have arrived and restarted on the same data directory; then b.test,
// the receiver, is killed the same way mid-drain and restarted. Every
// message arrives exactly once and in order per conversation: the sender
// resends what it has no receipt for under the same transaction id, the
// receiver commits before it answers and recognises what it committed.
// A user of b.test answers after each start of b.test, so b.test connects
// to a.test, which then knows b.test is back (spec §14) and drops its link
// to b.test's previous process. Both servers are processes of this test
// binary (startChildWith) on fixed UDP ports on 127.0.0.1, found free at
// the start.
func TestFederationKilledMidDrain(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	a := newFedNode(t, "a.test", freeUDPPort(t))
	b := newFedNode(t, "b.test", freeUDPPort(t))
	a.peers = "b.test=" + b.fed
	b.peers = "a.test=" + a.fed
	const oneTxnPerSecond = "FEDERATION_RATE_PER_ORIGIN=1"
	a.start()
	b.start(oneTxnPerSecond)
	var senders, recipients []*keyAccount
	for i := range 2 {
		senders = append(senders, a.ts.registerWithKeys(fmt.Sprint("kms", i), "alice"))
		recipients = append(recipients, b.ts.registerWithKeys(fmt.Sprint("kmr", i), "bob"))
	}
	b.c.kill(t)

	// Envelopes of about 22 KB, so that a transaction (at most 256
	// entries and about 3 MiB) holds about 130 of them and the drain takes
	// five; and b.test accepts one transaction a second from a peer
	// (FEDERATION_RATE_PER_ORIGIN, flow control the sender waits out), so
	// the drain lasts seconds on any machine and is caught half-way twice
	// however fast the two servers are.
	const total, pad = 600, 16 << 10
	var convs []*conv
	byPair := map[[2]*keyAccount]*conv{}
	for _, s := range senders {
		for _, r := range recipients {
			c := &conv{from: s, to: r}
			convs = append(convs, c)
			byPair[[2]*keyAccount{s, r}] = c
		}
	}
	filler := strings.Repeat("x", pad)
	tq := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	for si, s := range senders {
		wg.Go(func() {
			for k := range total / len(senders) {
				r := recipients[k%len(recipients)]
				msg := sealTo(t, s, r, fmt.Sprintf("%d→%d #%03d %s", si, k%len(recipients), k, filler))
				a.ts.sendOK(s, msg)
				mu.Lock()
				byPair[[2]*keyAccount{s, r}].ids = append(byPair[[2]*keyAccount{s, r}].ids, msg.ID())
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if d := a.outboxDepth("b.test"); d != total {
		t.Fatalf("a.test's outbox for b.test holds %d entries, want %d", d, total)
	}
	t.Logf("%d messages queued after %v (%v)", total, time.Since(t0), time.Since(tq))

	// b.test comes back, and a user there answers (so b.test connects to
	// a.test, which tells a.test that b.test is back: spec §14); kill
	// a.test when some have arrived.
	replies := &conv{from: recipients[0], to: senders[0]}
	reply := func() {
		msg := sealTo(t, replies.from, replies.to, fmt.Sprint("reply ", len(replies.ids)))
		b.ts.sendOK(replies.from, msg)
		replies.ids = append(replies.ids, msg.ID())
	}
	b.start(oneTxnPerSecond)
	reply()
	w := &mailboxWatch{t: t, ts: b.ts, users: recipients}
	n := w.until(30*time.Second, "the first transactions arrive", func(n int) bool { return n > 0 })
	a.c.kill(t)
	if after := w.poll(); after >= total {
		t.Fatalf("the outbox had drained before a.test was killed (%d arrived before, %d after): use bigger or more messages", n, after)
	}
	t.Logf("a.test killed after %v with %d of %d arrived", time.Since(t0), w.n, total)
	a.start()

	// More arrive from the restarted sender; kill the receiver.
	base := w.n
	n = w.until(30*time.Second, "the restarted sender delivers", func(k int) bool { return k > base })
	b.c.kill(t)
	left := a.outboxDepth("b.test")
	if left == 0 {
		t.Fatalf("the outbox had drained before b.test was killed (%d had arrived): use bigger or more messages", n)
	}
	t.Logf("b.test killed after %v with %d arrived, %d queued at a.test", time.Since(t0), n, left)
	b.start(oneTxnPerSecond)
	reply()

	// Everything arrives; the sender's outbox empties.
	w.until(45*time.Second, "every message arrives", func(n int) bool { return n >= total })
	deadline := time.Now().Add(30 * time.Second)
	for a.outboxDepth("b.test") > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("a.test's outbox still holds %d entries", a.outboxDepth("b.test"))
		}
		time.Sleep(50 * time.Millisecond) // polling a condition
	}
	missing, dups := checkArrivals(t, b.ts, convs)
	t.Logf("done after %v: %d messages, %d missing, %d duplicates", time.Since(t0), total, missing, dups)
	if missing != 0 || dups != 0 {
		t.Errorf("%d messages missing and %d duplicated, want none", missing, dups)
	}
	// The replies reached a.test too, once each.
	for deadline := time.Now().Add(30 * time.Second); ; {
		missing, dups = checkArrivals(t, a.ts, []*conv{replies})
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling a condition
	}
	if missing != 0 || dups != 0 {
		t.Errorf("replies: %d missing and %d duplicated, want none", missing, dups)
	}
}
