package clientapi

import (
	"fmt"
	"github.com/privateline/privateline/internal/fakeclock"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

func newFakeClock() *fakeclock.Clock {
	return fakeclock.New(time.Date(2031, 3, 14, 15, 9, 26, 0, time.UTC))
}

// mustAllow takes n tokens for key, failing if any is refused.
func mustAllow(t testing.TB, l *limiter, key string, n int) {
	t.Helper()
	for i := range n {
		if ok, after := l.allow(key); !ok {
			t.Fatalf("request %d for %q refused (retry after %v)", i+1, key, after)
		}
	}
}

func mustRefuse(t testing.TB, l *limiter, key string) time.Duration {
	t.Helper()
	ok, after := l.allow(key)
	if ok {
		t.Fatalf("request for %q allowed; want it limited", key)
	}
	if after <= 0 {
		t.Fatalf("refused with retry-after %v; want > 0", after)
	}
	return after
}

func TestLimiterBurst(t *testing.T) {
	clk := newFakeClock()
	l := newLimiter(1, 3, clk.Now) // 1 token/s, burst 3
	mustAllow(t, l, "10.0.0.1", 3)
	if after := mustRefuse(t, l, "10.0.0.1"); after != time.Second {
		t.Errorf("retry after %v, want 1s", after)
	}
	// Refused requests take nothing.
	mustRefuse(t, l, "10.0.0.1")
	// Keys are independent.
	mustAllow(t, l, "10.0.0.2", 3)
	mustRefuse(t, l, "10.0.0.2")
}

// near reports whether d is within a microsecond of want (the limiter
// computes in floating point).
func near(d, want time.Duration) bool { return d > want-time.Microsecond && d < want+time.Microsecond }

func TestLimiterRefill(t *testing.T) {
	clk := newFakeClock()
	l := newLimiter(0.1, 2, clk.Now) // 6 per minute, burst 2
	mustAllow(t, l, "k", 2)
	if after := mustRefuse(t, l, "k"); !near(after, 10*time.Second) {
		t.Fatalf("retry after %v, want 10s", after)
	}
	clk.Advance(4 * time.Second)
	if after := mustRefuse(t, l, "k"); !near(after, 6*time.Second) {
		t.Fatalf("after 4s: retry after %v, want 6s", after)
	}
	clk.Advance(6 * time.Second)
	mustAllow(t, l, "k", 1)
	mustRefuse(t, l, "k")
	// A long idle refills to the burst and no further.
	clk.Advance(24 * time.Hour)
	mustAllow(t, l, "k", 2)
	mustRefuse(t, l, "k")
	// A clock that goes backwards neither refills nor panics.
	clk.Advance(-time.Hour)
	mustRefuse(t, l, "k")
}

// TestLimiterRetryAfterIsEnough: waiting exactly the reported duration is
// always enough to get the next token.
func TestLimiterRetryAfterIsEnough(t *testing.T) {
	var failures []string
	for _, perMinute := range []float64{1, 3, 6, 7, 10, 13, 30, 60, 97, 600} {
		for _, burst := range []int{1, 2, 5} {
			clk := newFakeClock()
			l := newLimiter(perMinute/60, burst, clk.Now)
			key := fmt.Sprint(perMinute, "/", burst)
			mustAllow(t, l, key, burst)
			for step := range 50 {
				// Come back at an odd moment, then after the reported wait.
				clk.Advance(time.Duration(step*7919) * time.Microsecond)
				ok, after := l.allow(key)
				if ok {
					continue
				}
				if after <= 0 {
					failures = append(failures, fmt.Sprintf("%v/min burst %d: refused with a wait of %v", perMinute, burst, after))
				}
				clk.Advance(after)
				if ok, again := l.allow(key); !ok {
					failures = append(failures, fmt.Sprintf("%v/min burst %d: refused again (%v) after waiting the reported %v", perMinute, burst, again, after))
					clk.Advance(time.Millisecond)
					mustAllow(t, l, key, 1) // a moment later it is there
				}
			}
		}
	}
	if len(failures) > 0 {
		t.Errorf("%d waits too short, e.g. %q", len(failures), failures[:min(3, len(failures))])
	}
}

// retryAfterHeader is the Retry-After writeError sends for a limiter's
// refusal, in whole seconds.
func retryAfterHeader(t testing.TB, a *API, after time.Duration) int {
	t.Helper()
	w := httptest.NewRecorder()
	a.writeError(w, httptest.NewRequest("POST", "/api/login", nil), &rateLimitError{after})
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429", w.Code)
	}
	secs, err := strconv.Atoi(w.Header().Get("Retry-After"))
	if err != nil || secs < 1 {
		t.Fatalf("Retry-After %q, want an integer ≥ 1", w.Header().Get("Retry-After"))
	}
	return secs
}

func TestRetryAfterHeader(t *testing.T) {
	a := newTestAPI(t, nil)
	for _, tc := range []struct {
		after time.Duration
		want  int
	}{
		{time.Nanosecond, 1},
		{300 * time.Millisecond, 1},
		{time.Second, 1},
		{1500 * time.Millisecond, 2},
		{10 * time.Second, 10},
		{59*time.Second + 998*time.Millisecond, 60},
	} {
		if got := retryAfterHeader(t, a, tc.after); got != tc.want {
			t.Errorf("Retry-After for %v = %d, want %d", tc.after, got, tc.want)
		}
	}
	got := retryAfterHeader(t, a, 2*time.Second+500*time.Microsecond)
	if got < 3 {
		t.Errorf("Retry-After for 2.0005s = %d, want 3", got)
	}
}

// TestRetryAfterHeaderIsEnough: a client that waits the Retry-After it was
// given is let through.
func TestRetryAfterHeaderIsEnough(t *testing.T) {
	a := newTestAPI(t, nil)
	var failures []string
	for _, perMinute := range []float64{6, 30, 60} {
		clk := newFakeClock()
		l := newLimiter(perMinute/60, 1, clk.Now)
		var offsets []time.Duration
		for i := range 400 {
			offsets = append(offsets, time.Duration(i)*2500*time.Microsecond)
		}
		for i := range 100 {
			// These leave a wait just over a whole second.
			offsets = append(offsets, time.Second-time.Duration(i+1)*7*time.Microsecond)
		}
		for step, offset := range offsets {
			key := fmt.Sprint(step)
			mustAllow(t, l, key, 1)
			clk.Advance(offset)
			ok, after := l.allow(key)
			if ok {
				continue
			}
			secs := retryAfterHeader(t, a, after)
			clk.Advance(time.Duration(secs) * time.Second)
			if ok, _ := l.allow(key); !ok {
				failures = append(failures, fmt.Sprintf("%v/min: waited Retry-After %d for %v", perMinute, secs, after))
			}
		}
	}
	if len(failures) > 0 {
		t.Errorf("%d refusals after waiting Retry-After, e.g. %q", len(failures), failures[:min(3, len(failures))])
	}
}

func TestLimiterConcurrent(t *testing.T) {
	clk := newFakeClock()
	l := newLimiter(1, 50, clk.Now)
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := map[string]int{}
	for g := range 16 {
		wg.Go(func() {
			for i := range 40 {
				key := fmt.Sprint("k", (g+i)%4)
				if ok, _ := l.allow(key); ok {
					mu.Lock()
					allowed[key]++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	for k := range 4 {
		if n := allowed[fmt.Sprint("k", k)]; n != 50 {
			t.Errorf("key k%d: %d requests allowed with a stopped clock, want the burst, 50", k, n)
		}
	}
}

func TestLimiterSweepDropsRefilledBuckets(t *testing.T) {
	clk := newFakeClock()
	l := newLimiter(1, 3, clk.Now)
	for i := range maxBuckets - 1 {
		mustAllow(t, l, strconv.Itoa(i), 1)
	}
	clk.Advance(time.Second) // the first buckets are full again
	mustAllow(t, l, "busy", 3)
	// The map is at its cap: a new key makes room by forgetting full buckets.
	mustAllow(t, l, "new", 1)
	if n := len(l.buckets); n != 2 {
		t.Fatalf("%d buckets after the sweep, want 2 (busy and new)", n)
	}
	// The bucket that was not full kept its state.
	mustRefuse(t, l, "busy")
	// A forgotten key starts with a full burst, as it would have anyway.
	mustAllow(t, l, "7", 3)
}

func TestLimiterMemoryBounded(t *testing.T) {
	clk := newFakeClock()
	l := newLimiter(6.0/60, 10, clk.Now) // the username limiter's defaults
	for i := range maxBuckets + 5000 {
		l.allow("user" + strconv.Itoa(i))
		if i%1000 == 0 {
			// 20,000 new names a second: faster than a bucket refills (10 s).
			clk.Advance(50 * time.Millisecond)
		}
	}
	n := len(l.buckets)
	if n > maxBuckets {
		t.Errorf("%d buckets, cap %d", n, maxBuckets)
	}
}
