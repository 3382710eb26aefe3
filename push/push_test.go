package push

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/privateline/privateline/storage"
)

// fakeStore holds tokens and unread counts in memory.
type fakeStore struct {
	mu      sync.Mutex
	tokens  map[storage.ID][]storage.PushToken
	unread  map[storage.ID]int64
	removed []string
}

func newFakeStore() *fakeStore {
	return &fakeStore{tokens: map[storage.ID][]storage.PushToken{}, unread: map[storage.ID]int64{}}
}

func (f *fakeStore) add(u storage.ID, platform, token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens[u] = append(f.tokens[u], storage.PushToken{Token: token, Platform: platform})
}

func (f *fakeStore) setUnread(u storage.ID, n int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unread[u] = n
}

func (f *fakeStore) PushTokens(u storage.ID) ([]storage.PushToken, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.tokens[u]), nil
}

func (f *fakeStore) RemovePushToken(u storage.ID, token string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens[u] = slices.DeleteFunc(f.tokens[u], func(t storage.PushToken) bool { return t.Token == token })
	f.removed = append(f.removed, token)
	return nil
}

func (f *fakeStore) UnreadCounts(u storage.ID) (storage.Counters, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return storage.Counters{Unread: f.unread[u]}, nil
}

func (f *fakeStore) removedTokens() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.removed)
}

// sent is one call of a fake sender.
type sent struct {
	token  string
	unread int64
}

// fakeSender records sends and answers from a script (per token, in
// order; nil once the script is used up). gate, if not nil, blocks every
// send until it is closed or the context ends.
type fakeSender struct {
	mu     sync.Mutex
	calls  []sent
	script map[string][]error
	gate   chan struct{}
	called chan sent
}

func newFakeSender() *fakeSender {
	return &fakeSender{script: map[string][]error{}, called: make(chan sent, 100)}
}

func (s *fakeSender) Send(ctx context.Context, token string, n Notification) error {
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	s.calls = append(s.calls, sent{token, n.Unread})
	var err error
	if sc := s.script[token]; len(sc) > 0 {
		err, s.script[token] = sc[0], sc[1:]
	}
	s.mu.Unlock()
	s.called <- sent{token, n.Unread}
	return err
}

func (s *fakeSender) snapshot() []sent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

func waitCall(t *testing.T, s *fakeSender) sent {
	t.Helper()
	select {
	case c := <-s.called:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no send within 10 s")
		return sent{}
	}
}

func noCall(t *testing.T, s *fakeSender, d time.Duration) {
	t.Helper()
	select {
	case c := <-s.called:
		t.Fatalf("unexpected send %+v", c)
	case <-time.After(d):
	}
}

func user(b byte) storage.ID { return storage.ID{b} }

func newService(t *testing.T, st Store, senders map[string]Sender, mod func(*Config)) (*Service, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := Config{Senders: senders, BaseBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Registry: reg}
	if mod != nil {
		mod(&cfg)
	}
	s := New(cfg, st)
	t.Cleanup(s.Close)
	return s, reg
}

// Every device of the user gets one notification with the unread count;
// platforms without a sender are left out.
func TestNotifyEveryDevice(t *testing.T) {
	st := newFakeStore()
	u := user(1)
	st.add(u, PlatformIOS, "ios-1")
	st.add(u, PlatformIOS, "ios-2")
	st.add(u, PlatformWeb, "web-1")
	st.setUnread(u, 3)
	ios := newFakeSender()
	s, reg := newService(t, st, map[string]Sender{PlatformIOS: ios}, nil)
	s.Notify(u)
	got := []sent{waitCall(t, ios), waitCall(t, ios)}
	slices.SortFunc(got, func(a, b sent) int { return cmpStr(a.token, b.token) })
	if want := []sent{{"ios-1", 3}, {"ios-2", 3}}; !slices.Equal(got, want) {
		t.Fatalf("sends = %+v, want %+v", got, want)
	}
	noCall(t, ios, 50*time.Millisecond)
	if n := testutil.ToFloat64(s.met.sent.WithLabelValues(PlatformIOS)); n != 2 {
		t.Fatalf("sent metric = %v, want 2", n)
	}
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// A burst while a user is already waiting becomes one notification with
// the newest count.
func TestNotifyCoalesces(t *testing.T) {
	st := newFakeStore()
	u := user(2)
	st.add(u, PlatformAndroid, "a-1")
	snd := newFakeSender()
	snd.gate = make(chan struct{})
	// One worker, busy with another user, so u's notifications wait.
	other := user(3)
	st.add(other, PlatformAndroid, "other")
	s, _ := newService(t, st, map[string]Sender{PlatformAndroid: snd}, func(c *Config) { c.Workers = 1 })
	s.Notify(other)
	for i := int64(1); i <= 5; i++ {
		st.setUnread(u, i)
		s.Notify(u)
	}
	if d := s.Depth(); d != 2 {
		t.Fatalf("depth = %d, want 2 (one in flight, one waiting)", d)
	}
	close(snd.gate)
	if c := waitCall(t, snd); c.token != "other" {
		t.Fatalf("first send %+v", c)
	}
	if c := waitCall(t, snd); c != (sent{"a-1", 5}) {
		t.Fatalf("send = %+v, want a-1 with 5 unread", c)
	}
	noCall(t, snd, 50*time.Millisecond)
	if n := testutil.ToFloat64(s.met.coalesced); n != 4 {
		t.Fatalf("coalesced = %v, want 4", n)
	}
}

// A token the service reports gone is deleted and not tried again.
func TestGoneTokenRemoved(t *testing.T) {
	st := newFakeStore()
	u := user(4)
	st.add(u, PlatformWeb, "dead")
	st.add(u, PlatformWeb, "alive")
	snd := newFakeSender()
	snd.script["dead"] = []error{&SendError{Reason: "gone", Gone: true, Err: errors.New("HTTP 410")}}
	s, _ := newService(t, st, map[string]Sender{PlatformWeb: snd}, nil)
	s.Notify(u)
	waitCall(t, snd)
	waitCall(t, snd)
	waitFor(t, func() bool { return len(st.removedTokens()) == 1 })
	if r := st.removedTokens(); r[0] != "dead" {
		t.Fatalf("removed %v", r)
	}
	if n := testutil.ToFloat64(s.met.removed.WithLabelValues(PlatformWeb)); n != 1 {
		t.Fatalf("removed metric = %v", n)
	}
	s.Notify(u)
	if c := waitCall(t, snd); c.token != "alive" {
		t.Fatalf("send after removal went to %q", c.token)
	}
	noCall(t, snd, 50*time.Millisecond)
}

// Temporary failures are retried with backoff until one succeeds; only
// the failing device is retried.
func TestRetryTemporary(t *testing.T) {
	st := newFakeStore()
	u := user(5)
	st.add(u, PlatformIOS, "flaky")
	st.add(u, PlatformIOS, "fine")
	snd := newFakeSender()
	snd.script["flaky"] = []error{
		&SendError{Reason: "rate_limited", Retry: true, After: 30 * time.Millisecond, Err: errors.New("HTTP 429")},
		&SendError{Reason: "unavailable", Retry: true, Err: errors.New("HTTP 503")},
	}
	s, _ := newService(t, st, map[string]Sender{PlatformIOS: snd}, nil)
	start := time.Now()
	s.Notify(u)
	var flaky []time.Time
	for len(flaky) < 3 {
		c := waitCall(t, snd)
		if c.token == "flaky" {
			flaky = append(flaky, time.Now())
		}
	}
	if d := flaky[1].Sub(start); d < 30*time.Millisecond {
		t.Fatalf("retried after %v, before the service's Retry-After of 30ms", d)
	}
	noCall(t, snd, 100*time.Millisecond)
	calls := snd.snapshot()
	fine := 0
	for _, c := range calls {
		if c.token == "fine" {
			fine++
		}
	}
	if fine != 1 {
		t.Fatalf("the healthy device got %d notifications, want 1", fine)
	}
	if n := testutil.ToFloat64(s.met.sent.WithLabelValues(PlatformIOS)); n != 2 {
		t.Fatalf("sent = %v, want 2", n)
	}
}

// A device that keeps failing is given up after MaxAttempts; a refusal
// that retrying cannot fix is not retried at all.
func TestGiveUp(t *testing.T) {
	st := newFakeStore()
	u := user(6)
	st.add(u, PlatformAndroid, "down")
	st.add(u, PlatformAndroid, "bad")
	snd := newFakeSender()
	for range 10 {
		snd.script["down"] = append(snd.script["down"], &SendError{Reason: "unavailable", Retry: true, Err: errors.New("HTTP 500")})
	}
	snd.script["bad"] = []error{&SendError{Reason: "rejected", Err: errors.New("HTTP 400")}}
	s, _ := newService(t, st, map[string]Sender{PlatformAndroid: snd}, func(c *Config) { c.MaxAttempts = 3 })
	s.Notify(u)
	for range 4 {
		waitCall(t, snd)
	}
	noCall(t, snd, 150*time.Millisecond)
	down, bad := 0, 0
	for _, c := range snd.snapshot() {
		switch c.token {
		case "down":
			down++
		case "bad":
			bad++
		}
	}
	if down != 3 || bad != 1 {
		t.Fatalf("attempts: down %d (want 3), bad %d (want 1)", down, bad)
	}
	if n := testutil.ToFloat64(s.met.failed.WithLabelValues(PlatformAndroid, "gave_up")); n != 1 {
		t.Fatalf("gave_up = %v", n)
	}
	if len(st.removedTokens()) != 0 {
		t.Fatal("a failing token was deleted")
	}
}

// Notify never waits for a push service, however slow: measured while
// every worker is stuck in a send.
func TestNotifyNeverBlocks(t *testing.T) {
	st := newFakeStore()
	snd := newFakeSender()
	snd.gate = make(chan struct{}) // never opened: every send hangs until Close
	s, _ := newService(t, st, map[string]Sender{PlatformWeb: snd}, func(c *Config) { c.Workers = 2; c.MaxPending = 100 })
	for i := range 300 {
		u := storage.ID{byte(i), byte(i >> 8)}
		st.add(u, PlatformWeb, "t")
	}
	start := time.Now()
	for i := range 300 {
		s.Notify(storage.ID{byte(i), byte(i >> 8)})
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("300 Notify calls took %v with the push service stuck", d)
	}
	if n := testutil.ToFloat64(s.met.dropped); n < 190 {
		t.Fatalf("dropped = %v, want ≥ 190 beyond the 100 pending and 2 in flight", n)
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end sends in progress")
	}
}

// Close stops scheduled retries.
func TestCloseStopsRetries(t *testing.T) {
	st := newFakeStore()
	u := user(7)
	st.add(u, PlatformIOS, "x")
	snd := newFakeSender()
	snd.script["x"] = []error{&SendError{Reason: "unavailable", Retry: true, After: 200 * time.Millisecond, Err: errors.New("503")}}
	s, _ := newService(t, st, map[string]Sender{PlatformIOS: snd}, func(c *Config) { c.MaxBackoff = time.Second })
	s.Notify(u)
	waitCall(t, snd)
	waitFor(t, func() bool { return s.Depth() == 1 })
	s.Close()
	if d := s.Depth(); d != 0 {
		t.Fatalf("depth after Close = %d", d)
	}
	noCall(t, snd, 300*time.Millisecond)
	s.Notify(u) // ignored after Close
	noCall(t, snd, 50*time.Millisecond)
}

func TestBackoff(t *testing.T) {
	s := &Service{cfg: Config{BaseBackoff: time.Second, MaxBackoff: time.Minute}}
	for attempt, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 10: time.Minute, 60: time.Minute} {
		for range 20 {
			d := s.backoff(attempt, 0)
			if d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", attempt, d, want/2, want)
			}
		}
	}
	if d := s.backoff(1, 30*time.Second); d != 30*time.Second {
		t.Fatalf("Retry-After 30s gave %v", d)
	}
	if d := s.backoff(1, time.Hour); d != time.Minute {
		t.Fatalf("Retry-After 1h gave %v, want the 1m cap", d)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}
