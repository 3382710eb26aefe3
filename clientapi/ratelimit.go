package clientapi

import (
	"math"
	"sync"
	"time"
)

// limiter is a set of token buckets keyed by a string (an IP address or a
// username), driven by an injected clock.
type limiter struct {
	rate  float64 // tokens per second
	burst float64
	now   func() time.Time

	mu        sync.Mutex
	buckets   map[string]*bucket // guarded by mu
	lastSweep time.Time          // guarded by mu
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxBuckets triggers dropping full buckets, so memory stays bounded.
const maxBuckets = 100_000

func newLimiter(perSecond float64, burst int, now func() time.Time) *limiter {
	return &limiter{rate: perSecond, burst: float64(burst), now: now, buckets: map[string]*bucket{}}
}

// allow takes a token for key; if none is left it reports how long until
// one is.
func (l *limiter) allow(key string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.sweepLocked(now)
			// Still full: forget arbitrary buckets (map order is random).
			// A forgotten key starts again with a full burst, which is the
			// price of bounded memory.
			for k := range l.buckets {
				if len(l.buckets) < maxBuckets {
					break
				}
				delete(l.buckets, k)
			}
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	l.refillLocked(b, now)
	const epsilon = 1e-9 // floating-point slack in the refill
	if b.tokens >= 1-epsilon {
		b.tokens = max(0, b.tokens-1)
		return true, 0
	}
	return false, time.Duration(math.Ceil((1 - b.tokens) / l.rate * float64(time.Second)))
}

func (l *limiter) refillLocked(b *bucket, now time.Time) {
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = min(l.burst, b.tokens+el*l.rate)
		b.last = now
	}
}

// sweepLocked forgets buckets that have refilled (they equal a new one).
func (l *limiter) sweepLocked(now time.Time) {
	if now.Sub(l.lastSweep) < time.Second {
		return
	}
	l.lastSweep = now
	for k, b := range l.buckets {
		l.refillLocked(b, now)
		if b.tokens >= l.burst {
			delete(l.buckets, k)
		}
	}
}
