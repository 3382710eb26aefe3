// Package push wakes a user's devices when something arrives while none of
// them is connected: APNs (iOS), FCM HTTP v1 (Android) and Web Push
// (RFC 8291 payload encryption, RFC 8292 VAPID).
//
// A notification says only that something arrived and how many messages
// are unread: no sender, no text, no conversation. The client fetches and
// decrypts the rest. Every platform collapses a burst into one visible
// notification (APNs collapse id, FCM collapse key and tag, Web Push Topic).
//
// Delivery never waits for a push service: Notify only marks the user as
// pending (non-blocking, coalescing: a user already waiting is not queued
// twice) and workers send in the background. Per device, a temporary
// failure (429, 5xx, network) is retried with capped exponential backoff
// (honouring Retry-After); a token the service reports gone (APNs 410,
// FCM UNREGISTERED, Web Push 404/410) is deleted. Pushes are best effort
// and not durable: a notification lost to a restart costs nothing but a
// buzz, because the messages themselves are.
package push

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/privateline/privateline/storage"
)

// Platforms, as stored with push tokens (POST /api/push-token).
const (
	PlatformIOS     = "ios"
	PlatformAndroid = "android"
	PlatformWeb     = "web"
)

// Notification is everything a push carries.
type Notification struct {
	Unread int64 // the user's unread messages (direct and group)
}

// Collapse is the collapse key / topic / tag of every notification, so that
// a burst shows as one.
const Collapse = "new-message"

// Title and Body are the visible text of every notification: nothing about
// the message.
const (
	Title = "PrivateLine"
	Body  = "New message"
)

// Sender sends one notification to one device of its platform. It returns
// nil when the service accepted it, or a *SendError.
type Sender interface {
	Send(ctx context.Context, token string, n Notification) error
}

// SendError is a failed send, classified.
type SendError struct {
	Reason string        // metric label: gone, rate_limited, unavailable, network, rejected, refused_address, not_allowed
	Gone   bool          // the token is dead: delete it
	Retry  bool          // temporary: try again later
	After  time.Duration // the service's Retry-After (0: our backoff)
	Err    error
}

func (e *SendError) Error() string { return fmt.Sprintf("push: %s: %v", e.Reason, e.Err) }
func (e *SendError) Unwrap() error { return e.Err }

// Store is what push needs from storage; *storage.DB implements it.
type Store interface {
	PushTokens(user storage.ID) ([]storage.PushToken, error)
	RemovePushToken(user storage.ID, token string) error
	UnreadCounts(user storage.ID) (storage.Counters, error)
}

var _ Store = (*storage.DB)(nil)

// Config configures a Service.
type Config struct {
	Senders     map[string]Sender // by platform; a platform without one is not pushed to
	Workers     int               // concurrent sends, default 4
	MaxPending  int               // users waiting to be notified, default 10000; more are dropped (counted)
	MaxAttempts int               // sends per notification and device, default 6
	BaseBackoff time.Duration     // first retry delay, default 1 s (doubling, with jitter)
	MaxBackoff  time.Duration     // default 5 min; also caps a service's Retry-After
	SendTimeout time.Duration     // one send, default 30 s
	Log         *slog.Logger
	Registry    prometheus.Registerer // metrics (nil: none)
}

// Defaults.
const (
	DefaultWorkers     = 4
	DefaultMaxPending  = 10000
	DefaultMaxAttempts = 6
	DefaultBaseBackoff = time.Second
	DefaultMaxBackoff  = 5 * time.Minute
	DefaultSendTimeout = 30 * time.Second
)

// retry is one device's notification waiting for another attempt.
type retry struct {
	user     storage.ID
	token    string
	platform string
	attempt  int // attempts made so far
}

// Service queues and sends notifications.
type Service struct {
	cfg   Config
	store Store
	log   *slog.Logger
	met   *metrics

	mu       sync.Mutex
	pending  map[storage.ID]struct{} // users queued in users and not yet taken
	users    chan storage.ID         // capacity MaxPending
	retries  chan retry
	timers   map[*time.Timer]struct{} // scheduled retries, stopped on Close
	closed   bool
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	inFlight int // users being sent to (for the depth gauge)
}

// New starts a Service with cfg's workers.
func New(cfg Config, st Store) *Service {
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.BaseBackoff <= 0 {
		cfg.BaseBackoff = DefaultBaseBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = DefaultSendTimeout
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		cfg:     cfg,
		store:   st,
		log:     cfg.Log,
		pending: map[storage.ID]struct{}{},
		users:   make(chan storage.ID, cfg.MaxPending),
		retries: make(chan retry, cfg.Workers),
		timers:  map[*time.Timer]struct{}{},
		ctx:     ctx,
		cancel:  cancel,
	}
	s.met = newMetrics(cfg.Registry, s)
	for range cfg.Workers {
		s.wg.Add(1)
		go s.work()
	}
	return s
}

// Platforms reports which platforms have a sender.
func (s *Service) Platforms() []string {
	var out []string
	for _, p := range []string{PlatformIOS, PlatformAndroid, PlatformWeb} {
		if s.cfg.Senders[p] != nil {
			out = append(out, p)
		}
	}
	return out
}

// Notify queues a notification for user's devices. It never blocks: a user
// already waiting is not queued again (the notification that goes will
// carry the newest unread count), and beyond MaxPending users the
// notification is dropped and counted.
func (s *Service) Notify(user storage.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if _, ok := s.pending[user]; ok {
		s.met.coalesced.Inc()
		return
	}
	select {
	case s.users <- user:
		s.pending[user] = struct{}{}
	default:
		s.met.dropped.Inc()
	}
}

// Depth is the number of notifications waiting: users queued or being
// sent to, and device retries scheduled.
func (s *Service) Depth() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending) + s.inFlight + len(s.timers)
}

// Close stops the workers and scheduled retries and waits for sends in
// progress (their contexts are cancelled).
func (s *Service) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	for t := range s.timers {
		t.Stop()
	}
	clear(s.timers)
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
}

func (s *Service) work() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case u := <-s.users:
			s.mu.Lock()
			delete(s.pending, u) // from now on a new message queues a new notification
			s.inFlight++
			s.mu.Unlock()
			s.notifyUser(u)
			s.mu.Lock()
			s.inFlight--
			s.mu.Unlock()
		case r := <-s.retries:
			s.retryDevice(r)
		}
	}
}

// notifyUser sends the current count to every device of user.
func (s *Service) notifyUser(user storage.ID) {
	tokens, err := s.store.PushTokens(user)
	if err != nil {
		s.log.Warn("push: reading push tokens", "err", err)
		return
	}
	if len(tokens) == 0 {
		return
	}
	n, err := s.notification(user)
	if err != nil {
		s.log.Warn("push: reading unread counts", "err", err)
		return
	}
	for _, t := range tokens {
		if s.cfg.Senders[t.Platform] == nil {
			continue
		}
		s.send(retry{user: user, token: t.Token, platform: t.Platform}, n)
	}
}

func (s *Service) notification(user storage.ID) (Notification, error) {
	c, err := s.store.UnreadCounts(user)
	if err != nil {
		return Notification{}, err
	}
	return Notification{Unread: c.Unread}, nil
}

// retryDevice makes another attempt for one device, unless its token has
// gone meanwhile.
func (s *Service) retryDevice(r retry) {
	tokens, err := s.store.PushTokens(r.user)
	if err != nil {
		s.log.Warn("push: reading push tokens", "err", err)
		return
	}
	found := false
	for _, t := range tokens {
		found = found || t.Token == r.token
	}
	if !found {
		return
	}
	n, err := s.notification(r.user)
	if err != nil {
		s.log.Warn("push: reading unread counts", "err", err)
		return
	}
	s.send(r, n)
}

// send makes one attempt and deals with its outcome.
func (s *Service) send(r retry, n Notification) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.SendTimeout)
	err := s.cfg.Senders[r.platform].Send(ctx, r.token, n)
	cancel()
	r.attempt++
	if err == nil {
		s.met.sent.WithLabelValues(r.platform).Inc()
		return
	}
	if s.ctx.Err() != nil {
		return // shutting down
	}
	var se *SendError
	if !errors.As(err, &se) {
		se = &SendError{Reason: "network", Retry: true, Err: err}
	}
	s.met.failed.WithLabelValues(r.platform, se.Reason).Inc()
	switch {
	case se.Gone:
		if err := s.store.RemovePushToken(r.user, r.token); err != nil {
			s.log.Warn("push: removing a gone token", "platform", r.platform, "err", err)
			return
		}
		s.met.removed.WithLabelValues(r.platform).Inc()
		s.log.Info("push: the service reports a device gone; its token is deleted", "platform", r.platform)
	case se.Retry && r.attempt < s.cfg.MaxAttempts:
		s.schedule(r, s.backoff(r.attempt, se.After))
	case se.Retry:
		s.met.failed.WithLabelValues(r.platform, "gave_up").Inc()
		s.log.Warn("push: giving up on a notification after repeated failures", "platform", r.platform, "attempts", r.attempt, "err", err)
	default:
		s.log.Warn("push: a notification was refused", "platform", r.platform, "err", err)
	}
}

// backoff is the delay before attempt+1: base·2^(attempt−1) with full
// jitter in its upper half, capped, and never shorter than the service's
// Retry-After (itself capped).
func (s *Service) backoff(attempt int, after time.Duration) time.Duration {
	d := s.cfg.BaseBackoff << min(attempt-1, 20)
	if d > s.cfg.MaxBackoff || d <= 0 {
		d = s.cfg.MaxBackoff
	}
	d = d/2 + rand.N(d/2+1)
	return max(d, min(after, s.cfg.MaxBackoff))
}

func (s *Service) schedule(r retry, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		s.mu.Lock()
		_, live := s.timers[t]
		delete(s.timers, t)
		s.mu.Unlock()
		if !live {
			return
		}
		select {
		case s.retries <- r:
		case <-s.ctx.Done():
		}
	})
	s.timers[t] = struct{}{}
}
