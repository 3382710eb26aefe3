package homeserver_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/client"
	"github.com/privateline/privateline/homeserver"
)

// deliveryHold holds a server's deliveries to one destination back while
// held (homeserver.Config.FederationHoldDelivery): reached is closed when
// a delivery attempt first waits on it.
type deliveryHold struct {
	to      privateline.ServerName
	held    atomic.Bool
	mu      sync.Mutex
	release chan struct{}
	reached chan struct{}
	once    sync.Once
}

func newDeliveryHold(to privateline.ServerName) *deliveryHold {
	return &deliveryHold{to: to, release: make(chan struct{}), reached: make(chan struct{})}
}

func (h *deliveryHold) wait(ctx context.Context, to privateline.ServerName) {
	if to != h.to || !h.held.Load() {
		return
	}
	h.once.Do(func() { close(h.reached) })
	h.mu.Lock()
	release := h.release
	h.mu.Unlock()
	select {
	case <-release:
	case <-ctx.Done():
	}
}

// let lets the held deliveries go on.
func (h *deliveryHold) let() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.held.Swap(false) {
		close(h.release)
	}
}

// switchGate holds a client's requests that match while armed: seen is
// closed at the first held one, open lets them go.
type switchGate struct {
	match func(*http.Request) bool
	armed atomic.Bool
	seen  chan struct{}
	open  chan struct{}
	once  sync.Once
}

func (g *switchGate) RoundTrip(r *http.Request) (*http.Response, error) {
	if g.match(r) && g.armed.Load() {
		g.once.Do(func() { close(g.seen) })
		select {
		case <-g.open:
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
	return http.DefaultTransport.RoundTrip(r)
}

// keyCalls records a client's key look-ups (their statuses) and key
// uploads.
type keyCalls struct {
	mu      sync.Mutex
	lookups []int
	uploads int
}

func (k *keyCalls) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if strings.HasSuffix(r.URL.Path, "/key") && strings.HasPrefix(r.URL.Path, "/api/groups/") {
		k.mu.Lock()
		defer k.mu.Unlock()
		switch {
		case r.Method == http.MethodGet && err == nil:
			k.lookups = append(k.lookups, resp.StatusCode)
		case r.Method == http.MethodPut:
			k.uploads++
		}
	}
	return resp, err
}

// TestFederationAdminKeyLookupAsksGroupServer: alice@a.test is an admin
// of bob@b.test's group. Bob adds carol: a's replica hears of the new
// epoch, but the epoch's key, uploaded on b after that, is held in b's
// outbox for a. Alice sends in the group: her key look-up on a (an
// admin's, answered at once, never waited for) gets bob's key, which a
// asks b for first; her app does not distribute a key of its own.
func TestFederationAdminKeyLookupAsksGroupServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	hold := newDeliveryHold("a.test")
	servers := startFederationWith(t, func(c *homeserver.Config) { c.FederationHoldDelivery = hold.wait }, "a.test", "b.test")
	a, b := servers[0], servers[1]
	t.Cleanup(hold.let)
	calls := &keyCalls{}
	alice := sdkRegister(t, a, sdkClient(t, a, calls), "akalice", "alice").login(t)
	bobPut := &switchGate{seen: make(chan struct{}), open: make(chan struct{}),
		match: func(r *http.Request) bool { return r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/key") }}
	bob := sdkRegister(t, b, sdkClient(t, b, bobPut), "akbob", "bob").login(t)
	carol := sdkRegister(t, b, sdkClient(t, b, nil), "akcarol", "carol").login(t)
	bobEv := listen(t, bob)

	g, err := bob.CreateGroup(ctx, []privateline.Address{alice.Address()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.SetRole(ctx, g.ID, alice.Address(), "admin"); err != nil {
		t.Fatal(err)
	}
	first := waitGroup(t, alice, g.ID, "alice is an admin on a", func(g *client.Group) bool { return g.Role(alice.Address()) == "admin" })

	// Bob adds carol; his app's upload of the new epoch's key waits until
	// a has heard of the epoch and b's deliveries to a are held.
	bobPut.armed.Store(true)
	added := make(chan error, 1)
	go func() {
		_, err := bob.AddMember(ctx, g.ID, carol.Address(), "")
		added <- err
	}()
	waitClosed(t, bobPut.seen, "bob's upload of the new epoch's key")
	waitGroup(t, alice, g.ID, "a has the new epoch", func(g *client.Group) bool { return g.Epoch > first.Epoch })
	hold.held.Store(true)
	close(bobPut.open)
	if err := <-added; err != nil {
		t.Fatalf("bob adds carol: %v", err)
	}
	waitClosed(t, hold.reached, "b's delivery of the key to a, held")

	r := mustSendGroup(t, alice, g.ID, "alice, admin, right away")
	if got := bobEv.groupMessage(r.ID); got != "alice, admin, right away" {
		t.Fatalf("bob read %q", got)
	}
	calls.mu.Lock()
	defer calls.mu.Unlock()
	if len(calls.lookups) == 0 || slices.ContainsFunc(calls.lookups, func(s int) bool { return s != http.StatusOK }) {
		t.Fatalf("alice's key look-ups on a answered %v; want the key b holds", calls.lookups)
	}
	if calls.uploads != 0 {
		t.Fatalf("alice's app distributed a key of its own (%d uploads) instead of getting bob's", calls.uploads)
	}
}
