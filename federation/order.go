package federation

import (
	"bytes"
	"sync"
	"time"

	"github.com/privateline/privateline"
)

// Commit order of transactions sent two at a time (spec/federation.md
// §14): a sender may send the transaction that follows one still in
// flight, naming it in "after"; the receiver commits the second only
// once the first is committed, and refuses it with out_of_order if the
// first was not (refused, failed, or never arrived in time). So envelopes
// are committed in outbox order, hence in order per conversation, with
// two transactions in flight.

// orderWait bounds how long a transaction waits for the one it names to
// arrive and be answered.
const orderWait = 10 * time.Second

// orderKeep is how long the outcome of an answered transaction is kept
// for one that names it (the replay records answer later).
const orderKeep = time.Minute

type orderKey struct {
	origin privateline.ServerName
	txn    string
}

// orderRun is the handling of one queued transaction.
type orderRun struct {
	done chan struct{} // closed when answered
	ok   bool          // answered with a receipt: committed (or replayed)
	end  time.Time
}

// order tracks the queued transactions being handled and answered lately.
type order struct {
	wait    time.Duration // orderWait (tests shorten it)
	mu      sync.Mutex
	runs    map[orderKey]*orderRun
	changed chan struct{} // closed and replaced when a run begins
	pruned  time.Time
}

func newOrder() *order {
	return &order{wait: orderWait, runs: map[orderKey]*orderRun{}, changed: make(chan struct{})}
}

// begin records that origin's queued transaction txn is being handled;
// the returned function records its answer (called once).
func (o *order) begin(origin privateline.ServerName, txn string) func(answer []byte) {
	r := &orderRun{done: make(chan struct{})}
	now := time.Now()
	o.mu.Lock()
	if now.Sub(o.pruned) > orderKeep {
		for k, x := range o.runs {
			if !x.end.IsZero() && now.Sub(x.end) > orderKeep {
				delete(o.runs, k)
			}
		}
		o.pruned = now
	}
	o.runs[orderKey{origin, txn}] = r
	close(o.changed)
	o.changed = make(chan struct{})
	o.mu.Unlock()
	return func(answer []byte) {
		o.mu.Lock()
		r.ok = answer != nil && !isErrorFrame(answer)
		r.end = time.Now()
		o.mu.Unlock()
		close(r.done)
	}
}

// after waits until origin's transaction txn has been answered, and
// reports whether it was committed: answered here with a receipt, or
// found in the replay records (committed before this process, or long
// enough ago to be forgotten here) by committed. False after o.wait.
func (o *order) after(origin privateline.ServerName, txn string, committed func() bool) bool {
	timer := time.NewTimer(o.wait)
	defer timer.Stop()
	asked := false
	for {
		o.mu.Lock()
		r, changed := o.runs[orderKey{origin, txn}], o.changed
		o.mu.Unlock()
		if r != nil {
			select {
			case <-r.done:
				o.mu.Lock()
				ok := r.ok
				o.mu.Unlock()
				return ok
			case <-timer.C:
				return false
			}
		}
		if !asked {
			asked = true
			if committed() {
				return true
			}
		}
		select {
		case <-changed:
		case <-timer.C:
			return false
		}
	}
}

// isErrorFrame reports whether an answer is an error frame (§10.1) and
// not a signed receipt: its canonical JSON begins with the "error" member.
func isErrorFrame(answer []byte) bool {
	return bytes.HasPrefix(answer, []byte(`{"error":`))
}
