package homeserver_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/client"
)

// The partition test runs two homeservers in two network namespaces of
// their own (ip netns), joined by a veth pair, and cuts that link.

// netnsInnerEnv marks this test binary re-executed under unshare.
const netnsInnerEnv = "PRIVATELINE_TEST_NETNS_INNER"

// netnsPrefix starts the names of the namespaces and links a run makes;
// the test process's pid follows, so that runs at the same time do not
// collide and leftovers of a run that died can be told apart.
const netnsPrefix = "plt"

// TestFederationPartition: alice on a.test and bob on b.test, each
// homeserver a process in its own network namespace, send each other
// messages with the Go SDK while the link between the two servers is cut
// (ip link set … down, on both ends) and healed; they keep sending during
// the cut. Every message arrives exactly once and in order on both
// sides: 0 missing, 0 duplicates.
//
// It needs root (CAP_NET_ADMIN) and ip(8). As root (CI) it works in the
// machine's network namespace: the test process reaches each server's
// HTTP API over a veth pair from it (10.231.X.0/24, with X picked free),
// and deletes what it made when it ends, and at its start the namespaces
// and links of earlier runs whose process is gone. Not as root it runs
// itself again under `unshare --user --map-root-user --net --mount` (root
// in a user namespace of its own, with a network namespace and a /run of
// its own; nothing outside changes), so that `make test` works for a
// developer too. Where neither is possible (no ip, user namespaces
// disabled) it fails, saying so: it is never skipped.
func TestFederationPartition(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		if os.Getenv(netnsInnerEnv) == "1" {
			t.Fatal("not root inside the user namespace")
		}
		runUnshared(t)
		return
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("the partition test needs ip(8) (Debian: apt-get install iproute2): %v", err)
	}
	if os.Getenv(netnsInnerEnv) == "1" {
		// Our own /run, for ip netns's /run/netns; the mount namespace is
		// ours (unshare --mount), so nothing outside sees it.
		if err := syscall.Mount("tmpfs", "/run", "tmpfs", 0, "mode=0755"); err != nil {
			t.Fatalf("mounting a tmpfs on /run in the test's mount namespace: %v", err)
		}
	}
	t0 := time.Now()
	pn := setupPartitionNet(t)
	t.Logf("namespaces up after %v", time.Since(t0))

	const fedPort = "4433" // the namespaces are new: nothing else listens there
	a := newFedNode(t, "a.test", pn.abA+":"+fedPort)
	b := newFedNode(t, "b.test", pn.abB+":"+fedPort)
	a.host, b.host = pn.rootA, pn.rootB
	a.wrap, b.wrap = []string{"ip", "netns", "exec", pn.nsA}, []string{"ip", "netns", "exec", pn.nsB}
	a.peers, b.peers = "b.test="+b.fed, "a.test="+a.fed
	a.start()
	b.start()
	alice := sdkRegister(t, a.ts, sdkClient(t, a.ts, nil), "palice", "alice").login(t)
	bob := sdkRegister(t, b.ts, sdkClient(t, b.ts, nil), "pbob", "bob").login(t)
	mustLookup(t, alice, bob.Address())
	mustLookup(t, bob, alice.Address())
	t.Logf("servers and users up after %v", time.Since(t0))

	// Both send in order, up to a limit the test raises phase by phase.
	type side struct {
		s     *client.Session
		to    privateline.Address
		limit chan int   // the number to have sent
		sent  []string   // ids, in order
		bad   error      // a send that failed
		recv  *convWatch // the recipient's view
		depth func() int // the sender's outbox depth for the recipient's server
	}
	sides := []*side{
		{s: alice, to: bob.Address(), recv: &convWatch{t: t, s: bob, peer: alice.Address()}, depth: func() int { return a.outboxDepth("b.test") }},
		{s: bob, to: alice.Address(), recv: &convWatch{t: t, s: alice, peer: bob.Address()}, depth: func() int { return b.outboxDepth("a.test") }},
	}
	var mu sync.Mutex
	stop := make(chan struct{})
	var senders sync.WaitGroup
	defer func() {
		close(stop)
		senders.Wait()
	}()
	for _, sd := range sides {
		sd.limit = make(chan int, 1)
		senders.Go(func() {
			lim := 0
			for k := 0; ; {
				if k >= lim {
					select {
					case lim = <-sd.limit:
					case <-stop:
						return
					}
					continue
				}
				res, err := sd.s.Send(context.Background(), []privateline.Address{sd.to}, text(fmt.Sprintf("%s #%04d", sd.s.Address(), k)), client.SendOptions{})
				mu.Lock()
				if err != nil {
					sd.bad = err
					mu.Unlock()
					return
				}
				sd.sent = append(sd.sent, res.ID)
				mu.Unlock()
				k++
			}
		})
	}
	sentBy := func(sd *side) int {
		mu.Lock()
		defer mu.Unlock()
		if sd.bad != nil {
			t.Fatalf("%s could not send: %v", sd.s.Address(), sd.bad)
		}
		return len(sd.sent)
	}
	// phase raises both limits to n and waits until both have sent n and
	// cond holds.
	phase := func(n int, d time.Duration, what string, cond func() bool) {
		t.Helper()
		for _, sd := range sides {
			sd.limit <- n
		}
		deadline := time.Now().Add(d)
		for sentBy(sides[0]) < n || sentBy(sides[1]) < n || !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %v (%d and %d sent, %d and %d arrived)", what, d,
					sentBy(sides[0]), sentBy(sides[1]), len(sides[0].recv.items), len(sides[1].recv.items))
			}
			time.Sleep(50 * time.Millisecond) // polling a condition
		}
	}
	arrivedAll := func(n int) func() bool {
		return func() bool { return sides[0].recv.poll() >= n && sides[1].recv.poll() >= n }
	}

	// Messages flow both ways; then the link between the servers goes.
	const before, during, after = 10, 40, 20
	phase(before, 30*time.Second, "messages flow both ways", arrivedAll(before))
	pn.cut(t)
	t.Logf("link cut after %v", time.Since(t0))
	// While it is cut, both keep sending (their own servers accept and
	// queue them) for a few seconds: a short cut keeps the senders'
	// backoff short (spec §14).
	cutEnd := time.Now().Add(4 * time.Second)
	phase(before+during, 40*time.Second, "sends during the cut", func() bool { return time.Now().After(cutEnd) })
	for _, sd := range sides {
		if n := sd.recv.poll(); n != before {
			t.Fatalf("%d of %s's messages arrived while the link was cut, want %d: the cut is not a cut", n, sd.s.Address(), before)
		}
	}
	pn.heal(t)
	t.Logf("link healed after %v", time.Since(t0))
	total := before + during + after
	phase(total, 60*time.Second, "every message arrives after the cut", arrivedAll(total))
	t.Logf("everything arrived after %v", time.Since(t0))
	// Nothing is left to send, and nothing more arrives.
	deadline := time.Now().Add(30 * time.Second)
	for sides[0].depth() > 0 || sides[1].depth() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("outboxes still hold %d and %d entries", sides[0].depth(), sides[1].depth())
		}
		time.Sleep(50 * time.Millisecond) // polling a condition
	}
	for _, sd := range sides {
		sd.recv.poll()
		count := map[string]int{}
		var order []string
		for _, it := range sd.recv.items {
			if it.Err != nil {
				t.Errorf("%s: message %s does not open: %v", sd.to, it.ID, it.Err)
			}
			if count[it.ID]++; count[it.ID] == 1 {
				order = append(order, it.ID)
			}
		}
		missing, dups := 0, 0
		for _, id := range sd.sent {
			if count[id] == 0 {
				missing++
			}
		}
		for _, k := range count {
			dups += k - 1
		}
		t.Logf("%s → %s: %d sent (%d during the cut), %d missing, %d duplicates", sd.s.Address(), sd.to, len(sd.sent), during, missing, dups)
		if missing != 0 || dups != 0 || len(count) != len(sd.sent) {
			t.Errorf("%s → %s: %d missing, %d duplicates, %d distinct received of %d sent", sd.s.Address(), sd.to, missing, dups, len(count), len(sd.sent))
		}
		if fmt.Sprint(order) != fmt.Sprint(sd.sent) {
			t.Errorf("%s → %s: not in the order sent:\n got %q\nsent %q", sd.s.Address(), sd.to, order, sd.sent)
		}
	}
	t.Logf("done after %v", time.Since(t0))
}

// convWatch follows the messages from peer in s's mailbox, reading only
// what is new at each poll.
type convWatch struct {
	t     *testing.T
	s     *client.Session
	peer  privateline.Address
	after uint64
	items []client.Item // from peer, in mailbox order
}

// poll reads what arrived since the last poll and returns how many
// messages from peer there are.
func (w *convWatch) poll() int {
	w.t.Helper()
	for {
		q := client.MessagesQuery{With: w.peer, Limit: 100, After: w.after, HasAfter: true}
		items := mustMessages(w.t, w.s, q)
		for _, it := range items {
			if !it.Outgoing && it.From == w.peer {
				w.items = append(w.items, it)
			}
			w.after = it.Seq
		}
		if len(items) < q.Limit {
			return len(w.items)
		}
	}
}

// partitionNet is two network namespaces, each joined to the test's by a
// veth pair and to each other by a third.
type partitionNet struct {
	nsA, nsB     string // namespace names
	rootA, rootB string // the servers' addresses on the links to the test
	abA, abB     string // the servers' addresses on the link between them
	linkA, linkB string // the two ends of that link (in nsA, nsB)
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// setupPartitionNet makes the namespaces and links (after removing those
// of earlier runs that are gone) and deletes them when the test ends.
func setupPartitionNet(t *testing.T) *partitionNet {
	t.Helper()
	removeNetnsLeftovers(t)
	pid := strconv.Itoa(os.Getpid())
	n := &partitionNet{
		nsA: netnsPrefix + "-" + pid + "-a", nsB: netnsPrefix + "-" + pid + "-b",
		// Interface names: at most 15 bytes (pids have at most 7 digits).
		linkA: netnsPrefix + pid + "ab", linkB: netnsPrefix + pid + "ba",
	}
	rootA, rootB := netnsPrefix+pid+"ra", netnsPrefix+pid+"rb"
	inA, inB := netnsPrefix+pid+"a0", netnsPrefix+pid+"b0"
	t.Cleanup(func() {
		// Deleting a namespace deletes its interfaces and so the veth
		// pairs; the root ends go too, or are deleted here if the
		// namespace was never made.
		for _, args := range [][]string{{"netns", "del", n.nsA}, {"netns", "del", n.nsB}, {"link", "del", rootA}, {"link", "del", rootB}} {
			exec.Command("ip", args...).Run()
		}
		if out, _ := exec.Command("ip", "-o", "link", "show").Output(); strings.Contains(string(out), netnsPrefix+pid) {
			t.Errorf("links of this run are left over:\n%s", out)
		}
	})
	x, y := freeSubnets(t)
	n.rootA, n.rootB = fmt.Sprintf("10.231.%d.2", x), fmt.Sprintf("10.231.%d.2", y)
	n.abA, n.abB = "10.231.0.1", "10.231.0.2" // only inside the namespaces
	ipCmd(t, "netns", "add", n.nsA)
	ipCmd(t, "netns", "add", n.nsB)
	ipCmd(t, "link", "add", rootA, "type", "veth", "peer", "name", inA, "netns", n.nsA)
	ipCmd(t, "link", "add", rootB, "type", "veth", "peer", "name", inB, "netns", n.nsB)
	ipCmd(t, "link", "add", n.linkA, "netns", n.nsA, "type", "veth", "peer", "name", n.linkB, "netns", n.nsB)
	ipCmd(t, "addr", "add", fmt.Sprintf("10.231.%d.1/24", x), "dev", rootA)
	ipCmd(t, "addr", "add", fmt.Sprintf("10.231.%d.1/24", y), "dev", rootB)
	ipCmd(t, "link", "set", rootA, "up")
	ipCmd(t, "link", "set", rootB, "up")
	for _, c := range []struct{ ns, in, rootAddr, link, abAddr string }{
		{n.nsA, inA, n.rootA, n.linkA, n.abA}, {n.nsB, inB, n.rootB, n.linkB, n.abB},
	} {
		ipCmd(t, "-n", c.ns, "link", "set", "lo", "up")
		ipCmd(t, "-n", c.ns, "addr", "add", c.rootAddr+"/24", "dev", c.in)
		ipCmd(t, "-n", c.ns, "link", "set", c.in, "up")
		ipCmd(t, "-n", c.ns, "addr", "add", c.abAddr+"/24", "dev", c.link)
		ipCmd(t, "-n", c.ns, "link", "set", c.link, "up")
	}
	return n
}

// cut takes both ends of the link between the servers down.
func (n *partitionNet) cut(t *testing.T) {
	t.Helper()
	ipCmd(t, "-n", n.nsA, "link", "set", n.linkA, "down")
	ipCmd(t, "-n", n.nsB, "link", "set", n.linkB, "down")
}

// heal brings them up again.
func (n *partitionNet) heal(t *testing.T) {
	t.Helper()
	ipCmd(t, "-n", n.nsA, "link", "set", n.linkA, "up")
	ipCmd(t, "-n", n.nsB, "link", "set", n.linkB, "up")
}

var (
	leftoverNetnsRE = regexp.MustCompile(`^` + netnsPrefix + `-(\d+)-[ab]$`)
	leftoverLinkRE  = regexp.MustCompile(`^\d+: (` + netnsPrefix + `(\d+)r[ab])[@:]`)
)

// removeNetnsLeftovers deletes the namespaces and links of earlier runs
// whose process is gone (a run killed before its cleanup).
func removeNetnsLeftovers(t *testing.T) {
	t.Helper()
	gone := func(pid string) bool {
		p, err := strconv.Atoi(pid)
		return err == nil && p != os.Getpid() && syscall.Kill(p, 0) == syscall.ESRCH
	}
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if m := leftoverNetnsRE.FindStringSubmatch(name); m != nil && gone(m[1]) {
			t.Logf("removing namespace %s of an earlier run", name)
			ipCmd(t, "netns", "del", name)
		}
	}
	out, err = exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatalf("ip link show: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if m := leftoverLinkRE.FindStringSubmatch(line); m != nil && gone(m[2]) {
			t.Logf("removing link %s of an earlier run", m[1])
			ipCmd(t, "link", "del", m[1])
		}
	}
}

// freeSubnets picks two 10.231.N.0/24 subnets (N from 1 to 249) that no
// interface of the test's namespace uses, starting at a place given by
// the pid so that runs at the same time tend to pick different ones.
func freeSubnets(t *testing.T) (int, int) {
	t.Helper()
	out, err := exec.Command("ip", "-o", "-4", "addr", "show").Output()
	if err != nil {
		t.Fatalf("ip addr show: %v", err)
	}
	var free []int
	start := os.Getpid() % 249
	for i := range 249 {
		n := (start+i)%249 + 1
		if !strings.Contains(string(out), fmt.Sprintf(" 10.231.%d.", n)) {
			free = append(free, n)
			if len(free) == 2 {
				return free[0], free[1]
			}
		}
	}
	t.Fatal("no free 10.231.N.0/24 subnets")
	return 0, 0
}

// runUnshared runs TestFederationPartition again in this test binary,
// under unshare as root of a user namespace of its own, and fails with its
// output if it fails.
func runUnshared(t *testing.T) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatalf("the partition test needs root (it makes network namespaces), or unshare(1) to run as root of a user namespace; run `sudo make test`: %v", err)
	}
	args := []string{"--user", "--map-root-user", "--net", "--mount", exe,
		"-test.run=^TestFederationPartition$", "-test.count=1", "-test.v"}
	if d, ok := t.Deadline(); ok {
		args = append(args, "-test.timeout="+time.Until(d).Round(time.Second).String())
	}
	cmd := exec.Command("unshare", args...)
	cmd.Env = append(os.Environ(), netnsInnerEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "=== RUN") {
			t.Fatalf("the partition test failed in a user namespace (unshare --user --map-root-user --net --mount):\n%s", out)
		}
		t.Fatalf("the partition test needs root (it makes network namespaces) or unprivileged user namespaces, and unshare --user --map-root-user --net --mount failed (%v); run `sudo make test`, or allow user namespaces (sysctl kernel.unprivileged_userns_clone=1, or on Ubuntu kernel.apparmor_restrict_unprivileged_userns=0):\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestFederationPartition") {
		t.Fatalf("the partition test under unshare did not report a pass:\n%s", out)
	}
	t.Logf("ran as root of a user namespace (unshare --user --map-root-user --net --mount):\n%s", out)
}
