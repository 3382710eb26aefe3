package federation

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/federation/transport"
	"github.com/privateline/privateline/federation/wire"
	"github.com/privateline/privateline/storage"
)

// sender delivers one destination's outbox (spec/federation.md §14): one
// goroutine, at most two transactions in flight (the second names the
// first, which the destination commits first), outbox order, backoff
// after failures, a cached link that is redialled when it breaks.
type sender struct {
	s     *Service
	dest  privateline.ServerName
	wake  chan bool    // capacity 1: an attempt is wanted
	reset atomic.Bool  // the next wake-up also resets the backoff
	fails atomic.Int64 // failed attempts since the last success (tests read it)
	// downUntil (Unix ms) is set when dialling failed: until then key
	// look-ups do not wait for another handshake timeout but answer from
	// what was verified before. A wake-up with reset clears it and moves
	// resets on, so that a dial begun before it (perhaps to an address
	// the peer has left) does not mark the peer down when it fails.
	downUntil atomic.Int64
	resets    atomic.Uint64

	// told (run's goroutine only): the highest outbox sequence number
	// whose sender was told it waits for the destination (OutboxWaiting).
	told uint64
	// inflight (run's goroutine only): the transaction that follows the
	// last one, recorded (OutboxPend) and sent while that one was in
	// flight; its exchange runs on. It is the next step's transaction.
	inflight *txnFlight
	// prep (run's goroutine only): where the transaction that follows
	// inflight's arrives, read and signed while the two before were in
	// flight (nil: not prepared).
	prep <-chan *signedTxn
	// waiting (run's goroutine only): the last attempt failed in a way
	// that announced the outbox as waiting (not reached, unavailable), so
	// items queued during the backoff are announced when queued.
	waiting bool

	mu      sync.Mutex
	conn    *transport.Conn // the link, nil until dialled
	docAddr string          // address from the peer's server document
}

// poke asks for an attempt at once; reset also forgets the failures.
func (sd *sender) poke(reset bool) {
	if reset {
		sd.reset.Store(true)
		sd.mu.Lock()
		sd.resets.Add(1)
		sd.downUntil.Store(0)
		sd.mu.Unlock()
	}
	select {
	case sd.wake <- true:
	default:
	}
}

// dropLink closes the cached link.
func (sd *sender) dropLink() {
	sd.mu.Lock()
	c := sd.conn
	sd.conn = nil
	sd.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// dropStaleLink closes the link if it leads to another process of the
// destination than instance (transport.Conn.PeerInstance): one that has
// ended. An exchange waiting on it fails at once.
func (sd *sender) dropStaleLink(instance [32]byte) {
	sd.mu.Lock()
	c := sd.conn
	if c == nil || c.PeerInstance() == instance {
		sd.mu.Unlock()
		return
	}
	sd.conn = nil
	sd.mu.Unlock()
	sd.s.log.Info("federation: the destination restarted; dropping the link to its previous process", "destination", string(sd.dest))
	c.Close()
}

// backoff is the wait after attempt n (from 0) failed: d·u with
// d = min(300 s, base·2ⁿ) and u the jitter in [0.5, 1) (spec §14).
func backoff(base time.Duration, n int, u float64) time.Duration {
	d := maxBackoff
	if n < 30 {
		if x := base << n; x < maxBackoff {
			d = x
		}
	}
	return time.Duration(float64(d) * u)
}

// permanentFailures is the failure count that puts the backoff at its cap.
const permanentFailures = 30

func (sd *sender) run() {
	s := sd.s
	defer s.wg.Done()
	defer sd.dropLink()
	n := 0       // failed attempts since the last success
	wait := idle // before the next step
	for {
		if wait != 0 {
			d := wait
			if wait == idle {
				d = s.idleAfter
			}
			timer := time.NewTimer(d)
		waiting:
			for {
				select {
				case <-s.ctx.Done():
					timer.Stop()
					return
				case <-sd.wake:
					// New work ends an idle wait; only a reset (the
					// destination is back) cuts a backoff short.
					if wait == idle || sd.reset.Load() {
						timer.Stop()
						break waiting
					}
					// Backing off from a server that is not reached: the
					// new items' senders learn at once that they wait,
					// not at the next attempt (up to maxBackoff away);
					// the backoff runs on.
					if sd.waiting {
						sd.announceWaiting()
					}
				case <-timer.C:
					if wait == idle && sd.retire() {
						return
					}
					break waiting
				}
			}
		}
		if sd.reset.Swap(false) {
			n = 0
		}
		if s.ctx.Err() != nil {
			return
		}
		if n == 0 && sd.down() {
			// Dialling failed moments ago (a key look-up): announce
			// before an attempt that may wait out a handshake timeout.
			sd.announceWaiting()
		}
		wait, n = sd.step(n)
		if n == 0 {
			sd.waiting = false
		}
		sd.fails.Store(int64(n))
	}
}

// announceWaiting tells the senders of the envelope items queued since the
// last announcement that they wait for the destination (OutboxWaiting).
// run's goroutine only.
func (sd *sender) announceWaiting() {
	last, err := sd.s.store.OutboxWaiting(sd.dest, sd.told)
	if err != nil {
		sd.s.log.Error("federation: telling senders their messages wait", "destination", string(sd.dest), "err", err)
		return
	}
	sd.told = last
}

// downHold is how long after a failed dial key look-ups answer from what
// was verified before instead of dialling again.
const downHold = 30 * time.Second

// down reports that dialling failed moments ago.
func (sd *sender) down() bool { return sd.s.now().UnixMilli() < sd.downUntil.Load() }

// idle is the wait of a sender with nothing queued: until woken, or
// idleExit, after which the sender ends (and its link closes).
const idle time.Duration = -1

// idleExit is how long a sender with nothing to send keeps its goroutine
// and link; Wake starts a new one.
const idleExit = 2 * time.Minute

// retire removes an idle sender from the service unless a wake-up is
// pending; Wake and SetPeerAddr hold s.mu, so none is lost.
func (sd *sender) retire() bool {
	s := sd.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(sd.wake) > 0 || s.senders[sd.dest] != sd {
		return false
	}
	delete(s.senders, sd.dest)
	return true
}

// outcome is the result of one attempt.
type outcome struct {
	err        error
	reason     string        // for metrics: a wire reason, "unreachable", "link", "storage", …
	permanent  bool          // the same bytes will never be accepted (spec §10.1)
	skew       bool          // stale, future or out_of_order: re-sign and retry at once
	retryAfter time.Duration // rate_limited: wait this, not a failure
}

// step expires old items, sends the next transaction and returns how long
// to wait before the next step and the new failure count.
func (sd *sender) step(n int) (time.Duration, int) {
	s := sd.s
	if k, err := s.store.OutboxExpire(sd.dest, s.now().Add(-s.cfg.DeliveryTimeout)); err != nil {
		s.log.Error("federation: expiring the outbox", "destination", string(sd.dest), "err", err)
	} else if k > 0 {
		s.met.expired.Add(float64(k))
		s.log.Warn("federation: entries not delivered within the delivery timeout were dropped; their senders were told",
			"destination", string(sd.dest), "entries", k)
	}
	var txn *storage.OutboxTxn
	fl := sd.inflight // the pending transaction since the last receipt was settled
	sd.inflight = nil
	if fl != nil {
		txn = fl.st.txn
	} else {
		var err error
		txn, err = s.store.OutboxNext(sd.dest, MaxTxnEntries, MaxTxnPayload, wire.NewTxnID)
		if err != nil {
			s.log.Error("federation: reading the outbox", "destination", string(sd.dest), "err", err)
			return backoff(s.base, n, s.jitter()), n + 1
		}
	}
	if txn == nil || len(txn.Items) == 0 {
		return idle, 0
	}
	if hold := s.cfg.HoldDelivery; hold != nil {
		hold(s.ctx, sd.dest) // tests only (Config.HoldDelivery)
		if s.ctx.Err() != nil {
			return idle, n
		}
	}
	var o outcome
	for try := 0; try < 2; try++ {
		o = sd.attempt(txn, fl)
		fl = nil // a retry is signed again: a new created_at, no "after"
		if o.err == nil || !o.skew {
			break
		}
	}
	if o.err == nil {
		return 0, 0 // the next transaction at once
	}
	if s.ctx.Err() != nil {
		return idle, n
	}
	s.met.failures.WithLabelValues(labelCode(o.reason)).Inc()
	detail := o.err.Error()
	if len(detail) > 512 {
		detail = truncate(detail, 512)
	}
	if err := s.store.OutboxAttemptFailed(sd.dest, detail); err != nil {
		s.log.Error("federation: recording a failed attempt", "destination", string(sd.dest), "err", err)
	}
	if o.retryAfter > 0 {
		// rate_limited is not a failure (§14): the destination asks for a
		// pause of retry_after and gets exactly that; the backoff does not
		// grow. (Waiting the backoff instead made every envelope behind a
		// refusal wait about a second for a pause of a few milliseconds.)
		s.log.Debug("federation: the destination asks to slow down", "destination", string(sd.dest), "retry_after", o.retryAfter)
		return o.retryAfter, n
	}
	sd.waiting = !o.permanent
	if sd.waiting {
		// Not reached (or unavailable): the senders of what is queued
		// learn that their messages wait for this server.
		if last, err := s.store.OutboxWaiting(sd.dest, sd.told); err != nil {
			s.log.Error("federation: telling senders their messages wait", "destination", string(sd.dest), "err", err)
		} else {
			sd.told = last
		}
	}
	if o.permanent {
		n = max(n, permanentFailures)
		s.log.Error("federation: the destination refuses this transaction permanently; retrying at the backoff cap until the delivery timeout",
			"destination", string(sd.dest), "txn", txn.TxnID, "reason", o.reason, "err", o.err)
	} else {
		s.log.Warn("federation: delivery attempt failed", "destination", string(sd.dest), "txn", txn.TxnID,
			"reason", o.reason, "attempt", n+1, "err", o.err)
	}
	return max(backoff(s.base, n, s.jitter()), time.Nanosecond), n + 1
}

// signedTxn is an outbox transaction signed into its frame.
type signedTxn struct {
	txn *storage.OutboxTxn
	tx  *wire.Transaction
	raw []byte
}

// sign builds and signs txn's frame; after, if not empty, is the txn id of
// the transaction it follows, still unanswered when it is sent (§14).
func (sd *sender) sign(txn *storage.OutboxTxn, after string) (*signedTxn, error) {
	s := sd.s
	tx := &wire.Transaction{
		Header: wire.Header{Origin: s.cfg.Name, Destination: sd.dest, TxnID: txn.TxnID, CreatedAt: s.now().UnixMilli()},
		Type:   wire.Type(txn.Type),
		After:  after,
	}
	for _, it := range txn.Items {
		e, err := outboxEntry(txn.Type, it)
		if err != nil {
			return nil, err
		}
		tx.Entries = append(tx.Entries, e)
	}
	raw, err := wire.Sign(tx, s.cfg.Key)
	if err != nil {
		return nil, err
	}
	if len(raw) > wire.MaxFrame {
		return nil, fmt.Errorf("transaction of %d bytes, over the frame cap", len(raw))
	}
	return &signedTxn{txn: txn, tx: tx, raw: raw}, nil
}

// txnFlight is one exchange of a signed transaction, running on its own
// goroutine: resp and err are set when done is closed.
type txnFlight struct {
	st     *signedTxn
	conn   *transport.Conn
	done   chan struct{}
	cancel context.CancelFunc
	resp   []byte
	err    error
}

// launch starts the exchange of st on conn.
func (sd *sender) launch(conn *transport.Conn, st *signedTxn) *txnFlight {
	s := sd.s
	s.met.attempts.Inc()
	ctx, cancel := context.WithTimeout(s.ctx, attemptTimeout)
	fl := &txnFlight{st: st, conn: conn, done: make(chan struct{}), cancel: cancel}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(fl.done)
		fl.resp, fl.err = exchange(ctx, conn, st.raw)
	}()
	return fl
}

// abandon stops fl's exchange and waits for its end; the destination may
// still commit it, and answers a resend from its replay records.
func (fl *txnFlight) abandon() {
	fl.cancel()
	<-fl.done
}

// prepare reads the transaction that follows txn (OutboxPeek) and signs
// it to follow txn; nil if there is none or it cannot be read now.
func (sd *sender) prepare(txn *storage.OutboxTxn) *signedTxn {
	last := txn.Items[len(txn.Items)-1].Seq
	next, err := sd.s.store.OutboxPeek(sd.dest, last, MaxTxnEntries, MaxTxnPayload, wire.NewTxnID)
	if err != nil || next == nil {
		return nil
	}
	st, err := sd.sign(next, txn.TxnID)
	if err != nil {
		return nil // OutboxNext and attempt meet the error again
	}
	return st
}

// pipeline runs while fl's transaction is in flight (§14): it records the
// transaction that follows (prepared by the last step's pipeline, from
// prep, or else read and signed now) to follow it (OutboxPend), sends it
// at once on fl's link and sends its flight on launched (nil if there is
// none, or it cannot be read or recorded now: the next step takes it
// with OutboxNext). Then it prepares the one after that, for the next
// step, and sends it on prepared (nil: none).
func (sd *sender) pipeline(fl *txnFlight, prep <-chan *signedTxn, launched chan<- *txnFlight, prepared chan<- *signedTxn) {
	s := sd.s
	txn := fl.st.txn
	if s.cfg.HoldDelivery != nil {
		// Tests that hold deliveries see every transaction pass the hook
		// (step): none goes out ahead of its turn.
		launched <- nil
		prepared <- nil
		return
	}
	var st *signedTxn
	if prep != nil {
		st = <-prep
	}
	if st == nil || st.tx.After != txn.TxnID {
		st = sd.prepare(txn)
	}
	if st == nil {
		launched <- nil
		prepared <- nil
		return
	}
	if ok, err := s.store.OutboxPend(sd.dest, txn.TxnID, st.txn); err != nil || !ok {
		s.met.readAhead.WithLabelValues("stale").Inc()
		launched <- nil
		prepared <- nil
		return
	}
	s.met.readAhead.WithLabelValues("sent").Inc()
	launched <- sd.launch(fl.conn, st)
	// Let the exchange start writing before preparing takes this core
	// for a time slice (a machine with few cores is busy here).
	runtime.Gosched()
	prepared <- sd.prepare(st.txn)
}

// attempt sends txn once over the link (fl: already sent, by the last
// step's pipeline) and settles the outbox on a receipt that answers it.
// Meanwhile the transaction that follows is recorded and sent, and the
// one after it prepared (pipeline); they are kept in sd.inflight and
// sd.prep for the next step when this one was delivered, and abandoned
// otherwise.
func (sd *sender) attempt(txn *storage.OutboxTxn, fl *txnFlight) outcome {
	prep := sd.prep
	sd.prep = nil
	if fl == nil {
		st, err := sd.sign(txn, "")
		if err != nil {
			return outcome{err: err, reason: "internal", permanent: true}
		}
		ctx, cancel := context.WithTimeout(sd.s.ctx, attemptTimeout)
		conn, err := sd.link(ctx)
		cancel()
		if err != nil {
			return outcome{err: err, reason: "unreachable"}
		}
		fl = sd.launch(conn, st)
		prep = nil // prepared to follow another transaction
	}
	launched, prepared := make(chan *txnFlight, 1), make(chan *signedTxn, 1)
	sd.s.wg.Add(1) // it reads the store after attempt returns: Close waits
	go func() {
		defer sd.s.wg.Done()
		sd.pipeline(fl, prep, launched, prepared)
	}()
	o, results := sd.answer(fl)
	next := <-launched // recorded to follow (or not) before txn is settled
	if o.err == nil {
		if err := sd.s.store.OutboxDone(sd.dest, txn.TxnID, results); err != nil {
			o = outcome{err: fmt.Errorf("settling the outbox: %w", err), reason: "storage"}
		} else {
			sd.delivered(txn, results)
		}
	}
	if next != nil {
		if o.err == nil {
			sd.inflight, sd.prep = next, prepared
		} else {
			next.abandon() // recorded: sent again once txn is settled
			sd.s.met.readAhead.WithLabelValues("abandoned").Inc()
		}
	}
	return o
}

// answer waits for fl's exchange and checks the answer: a receipt that
// answers it gives each item's result.
func (sd *sender) answer(fl *txnFlight) (outcome, []storage.OutboxResult) {
	s := sd.s
	<-fl.done
	if fl.err != nil {
		sd.dropLink()
		return outcome{err: fl.err, reason: "link"}, nil
	}
	resp := fl.resp
	if ef, ok := parseErrorFrame(resp); ok {
		o := outcome{err: fmt.Errorf("refused by %s: %s: %s", sd.dest, ef.code, ef.message), reason: ef.code}
		switch wire.Reason(ef.code) {
		case wire.Stale, wire.Future, codeOutOfOrder:
			o.skew = true
		case codeRateLimited:
			o.retryAfter = ef.retryAfter
			if o.retryAfter == 0 {
				o.retryAfter = time.Second // §10.1: 1 s when absent
			}
		case codeUnavailable, codeInternal:
		default:
			o.permanent = true
		}
		return o, nil
	}
	peer := wire.Peer{Name: fl.conn.PeerName(), Key: fl.conn.PeerKey()}
	rc, err := wire.VerifyReceipt(resp, peer, s.cfg.Name, s.now(), wire.DefaultLimits(), fl.st.tx)
	if err != nil {
		r := string(wire.ReasonOf(err))
		if r == "" {
			r = "bad_receipt"
		}
		s.met.rejected.WithLabelValues(r).Inc()
		return outcome{err: fmt.Errorf("receipt from %s: %w", sd.dest, err), reason: r, permanent: true}, nil
	}
	results := make([]storage.OutboxResult, len(rc.Results))
	for i, r := range rc.Results {
		results[i] = storage.OutboxResult{ID: r.ID, Delivered: r.Status == wire.Accepted || r.Status == wire.Duplicate, Error: r.Error}
	}
	return outcome{}, results
}

// delivered counts a settled transaction's results.
func (sd *sender) delivered(txn *storage.OutboxTxn, results []storage.OutboxResult) {
	s := sd.s
	now := s.now()
	for i, it := range txn.Items {
		if results[i].Delivered {
			s.met.delivered.Inc()
			s.met.latency.Observe(now.Sub(it.QueuedAt).Seconds())
		} else {
			s.met.refusedEntries.WithLabelValues(labelCode(results[i].Error)).Inc()
		}
	}
}

// exchange sends one frame on a new stream of conn and returns the answer.
func exchange(ctx context.Context, conn *transport.Conn, raw []byte) ([]byte, error) {
	st, err := conn.OpenStream(ctx)
	if err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	st.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, st.Cancel) // Close interrupts the exchange
	defer stop()
	if err := st.Send(raw); err != nil {
		st.Cancel()
		return nil, err
	}
	resp, err := st.Receive()
	if err != nil {
		st.Cancel()
		return nil, err
	}
	return resp, nil
}

// link returns the cached connection to the destination, dialling it if
// there is none or it closed.
func (sd *sender) link(ctx context.Context) (*transport.Conn, error) {
	s := sd.s
	sd.mu.Lock()
	c := sd.conn
	sd.mu.Unlock()
	if c != nil {
		select {
		case <-c.Done():
			sd.dropLink()
		default:
			return c, nil
		}
	}
	resets := sd.resets.Load()
	addr, err := sd.address(ctx)
	if err != nil {
		return nil, err
	}
	c, err = transport.Dial(ctx, sd.dest, addr, s.id, s.policy, s.lim)
	if err != nil {
		sd.mu.Lock()
		sd.docAddr = "" // resolve again next time
		if sd.resets.Load() == resets {
			sd.downUntil.Store(s.now().Add(downHold).UnixMilli())
		}
		sd.mu.Unlock()
		return nil, fmt.Errorf("dialling %s at %s: %w", sd.dest, addr, err)
	}
	sd.downUntil.Store(0)
	s.peerProcess(sd.dest, c.PeerInstance()) // groupsync.go
	sd.mu.Lock()
	defer sd.mu.Unlock()
	if s.ctx.Err() != nil { // Close ran while dialling
		c.Close()
		return nil, errClosed
	}
	if old := sd.conn; old != nil {
		select {
		case <-old.Done():
		default:
			// Another exchange (a key look-up, a group request) dialled
			// at the same time and its link is up: share it rather than
			// closing it under that exchange.
			c.Close()
			return old, nil
		}
	}
	sd.conn = c
	return c, nil
}

// address is where the destination listens: configured or learnt
// (SetPeerAddr), else the "federation" member of its server document.
func (sd *sender) address(ctx context.Context) (string, error) {
	if a := sd.s.addrOf(sd.dest); a != "" {
		return a, nil
	}
	sd.mu.Lock()
	a := sd.docAddr
	sd.mu.Unlock()
	if a != "" {
		return a, nil
	}
	doc, err := sd.s.fetchDocument(ctx, sd.dest)
	if err != nil {
		return "", err
	}
	sd.mu.Lock()
	sd.docAddr = doc.Federation
	sd.mu.Unlock()
	return doc.Federation, nil
}

// truncate cuts s to at most n bytes on a UTF-8 boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// outboxEntry is the wire entry of an outbox item of type typ.
func outboxEntry(typ string, it storage.OutboxItem) (wire.Entry, error) {
	switch typ {
	case storage.OutboxEnvelopes:
		return wire.Entry{ID: it.ID, Envelope: it.Payload}, nil
	case storage.OutboxReadMarks:
		var p storage.ReadMarkPayload
		if err := json.Unmarshal(it.Payload, &p); err != nil {
			return wire.Entry{}, fmt.Errorf("outbox read mark %s: %w", it.ID, err)
		}
		return wire.Entry{ID: it.ID, Message: p.Message, Reader: p.Reader, At: p.ReadAt}, nil
	case storage.OutboxDeletes:
		var p storage.DeletePayload
		if err := json.Unmarshal(it.Payload, &p); err != nil {
			return wire.Entry{}, fmt.Errorf("outbox delete %s: %w", it.ID, err)
		}
		return wire.Entry{ID: it.ID, Message: p.Message, From: p.From, At: p.DeletedAt}, nil
	case storage.OutboxGroupEnvelopes, storage.OutboxGroupUpdates:
		return groupOutboxEntry(typ, it) // groups.go
	case storage.OutboxGroupLeaves:
		return leaveOutboxEntry(it) // leave.go
	}
	return wire.Entry{}, fmt.Errorf("outbox items of type %q cannot be sent by this version", typ)
}
