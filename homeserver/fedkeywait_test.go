package homeserver_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/client"
)

// A member's first send in a new group of another server (spec/openapi.yaml,
// GET /api/groups/{id}/key: the current epoch's key is waited for).

// gateTransport sees (and, with hold, holds) a client's requests that
// match: seen is closed at the first, which waits until hold is closed.
type gateTransport struct {
	match func(*http.Request) bool
	seen  chan struct{}
	hold  chan struct{} // nil: not held
	once  sync.Once
}

func newGate(method, suffix string, held bool) *gateTransport {
	g := &gateTransport{seen: make(chan struct{}),
		match: func(r *http.Request) bool { return r.Method == method && strings.HasSuffix(r.URL.Path, suffix) }}
	if held {
		g.hold = make(chan struct{})
	}
	return g
}

func (g *gateTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if g.match(r) {
		g.once.Do(func() { close(g.seen) })
		if g.hold != nil {
			select {
			case <-g.hold:
			case <-r.Context().Done():
				return nil, r.Context().Err()
			}
		}
	}
	return http.DefaultTransport.RoundTrip(r)
}

// waitClosed waits (generously) for ch to be closed.
func waitClosed(t *testing.T, ch chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(time.Minute):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// waitMetric waits until ts's metrics have the line want.
func waitMetric(t *testing.T, ts *testServer, want string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		m := scrapeMetrics(t, ts)
		for _, l := range strings.Split(m, "\n") {
			if l == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never had %q", want)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, not ordering
	}
}

// TestFederationFirstGroupSendWaitsForKey: bob@b.test makes a group
// with alice@a.test; alice sends in it as soon as she hears of it, while
// bob's app has not uploaded the group's key yet (its upload is held).
// Her send waits for the key instead of failing, and bob reads it.
func TestFederationFirstGroupSendWaitsForKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	servers := startFederation(t, "a.test", "b.test")
	a, b := servers[0], servers[1]
	aliceGet := newGate(http.MethodGet, "/key", false)
	alice := sdkRegister(t, a, sdkClient(t, a, aliceGet), "kwalice", "alice").login(t)
	bobPut := newGate(http.MethodPut, "/key", true)
	bob := sdkRegister(t, b, sdkClient(t, b, bobPut), "kwbob", "bob").login(t)
	aliceEv := listen(t, alice)
	bobEv := listen(t, bob)

	type made struct {
		g   *client.Group
		err error
	}
	created := make(chan made, 1)
	go func() {
		g, err := bob.CreateGroup(ctx, []privateline.Address{alice.Address()})
		created <- made{g, err}
	}()
	waitClosed(t, bobPut.seen, "bob's key upload")
	id := aliceEv.next(client.EventGroupChanged).Group

	type sent struct {
		r   *client.SendResult
		err error
	}
	done := make(chan sent, 1)
	go func() {
		r, err := alice.SendGroup(ctx, id, text("quick alice"), client.SendOptions{})
		done <- sent{r, err}
	}()
	// alice's look-up of the key is on a.test, waiting, before bob's
	// key exists anywhere.
	waitClosed(t, aliceGet.seen, "alice's key look-up")
	waitMetric(t, a, "privateline_group_key_waiting 1")
	close(bobPut.hold)

	m := <-created
	if m.err != nil {
		t.Fatalf("bob creates the group: %v", m.err)
	}
	if m.g.ID != id {
		t.Fatalf("alice heard of group %s, bob made %s", id, m.g.ID)
	}
	var s sent
	select {
	case s = <-done:
	case <-time.After(time.Minute):
		t.Fatal("alice's send did not end")
	}
	if s.err != nil {
		t.Fatalf("alice's first send in bob's new group failed: %v", s.err)
	}
	if got := bobEv.groupMessage(s.r.ID); got != "quick alice" {
		t.Fatalf("bob read %q", got)
	}
	waitMetric(t, a, `privateline_group_key_waits_total{result="key"} 1`)
}
