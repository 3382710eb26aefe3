package federation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/envelope"
	"github.com/privateline/privateline/federation/transport"
	"github.com/privateline/privateline/federation/wire"
	"github.com/privateline/privateline/storage"
)

// Entry refusal codes of spec/federation.md §10.2 decided by the receiver
// before the commit.
const (
	entryMalformed          = "malformed"
	entryTooLarge           = "too_large"
	entryIDMismatch         = "id_mismatch"
	entryWrongOrigin        = "wrong_origin"
	entryNotForDestination  = "not_for_destination"
	entryUnknownRecipient   = "unknown_recipient"
	entryExpired            = "expired"
	frameReasonTooLarge     = "too_large"       // a frame length over the cap (the stream is reset)
	frameReasonMalformed    = "malformed_frame" // an empty frame or data after it
	frameReasonTimeout      = "frame_timeout"   // no whole frame in time
	frameReasonStreamFailed = "stream_failed"   // the stream broke before a whole frame arrived
)

func (s *Service) acceptLoop(ln *transport.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept(s.ctx)
		if err != nil {
			if s.ctx.Err() == nil {
				s.log.Error("federation: the listener stopped", "err", err)
			}
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.inbound[c] = true
		s.wg.Add(1)
		// A fresh inbound connection from a destination we are backing off
		// from: it is up again (spec §14). If it comes from another
		// process of the destination than our link leads to, that
		// process is gone (restarted or crashed) and an exchange on the
		// link would wait for the idle timeout: drop it.
		if sd := s.senders[c.PeerName()]; sd != nil {
			sd.dropStaleLink(c.PeerInstance())
			sd.poke(true)
		}
		s.resyncPoke(c.PeerName()) // groupsync.go
		s.mu.Unlock()
		s.peerProcess(c.PeerName(), c.PeerInstance()) // groupsync.go
		go s.serveConn(c)
	}
}

func (s *Service) serveConn(c *transport.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.inbound, c)
		s.mu.Unlock()
		c.Close()
	}()
	for {
		st, err := c.AcceptStream(s.ctx)
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveStream(c, st)
		}()
	}
}

// serveStream answers one exchange: one transaction in, one receipt or
// error frame out.
func (s *Service) serveStream(c *transport.Conn, st *transport.Stream) {
	origin := c.PeerName()
	st.SetDeadline(time.Now().Add(ReadTimeout))
	raw, err := st.Receive()
	if err != nil {
		reason := frameReasonStreamFailed
		switch {
		case errors.Is(err, transport.ErrFrameTooLarge):
			reason = frameReasonTooLarge
		case errors.Is(err, transport.ErrProtocol):
			reason = frameReasonMalformed
		case errors.Is(err, os.ErrDeadlineExceeded):
			reason = frameReasonTimeout
		}
		s.met.rejected.WithLabelValues(reason).Inc()
		st.Cancel()
		return
	}
	st.SetDeadline(time.Now().Add(replyTimeout))
	answer := s.handle(c, st, raw)
	if answer == nil { // answered on st already (a file_answer and its bytes)
		return
	}
	if err := st.Send(answer); err != nil {
		s.log.Debug("federation: answering a transaction", "origin", string(origin), "err", err)
		st.Cancel()
	}
}

// handle decides the answer to one frame from the peer of c, received on
// st. nil: the answer was written on st (a file answer with its bytes).
func (s *Service) handle(c *transport.Conn, st *transport.Stream, raw []byte) (answer []byte) {
	origin := c.PeerName()
	now := s.now()
	if !s.acquire(origin) {
		return s.refuse(origin, codeRateLimited, "more than 32 exchanges in progress", time.Second)
	}
	defer s.release(origin)
	if ok, after := s.allow(origin, now); !ok {
		return s.refuse(origin, codeRateLimited, "over the per-origin transaction rate", after)
	}
	peer := wire.Peer{Name: origin, Key: c.PeerKey()}
	tx, err := wire.VerifyTransaction(raw, peer, s.cfg.Name, now, wire.DefaultLimits())
	if err != nil {
		return s.refuse(origin, string(wire.ReasonOf(err)), err.Error(), 0)
	}
	if tx.Type.Queued() {
		// One that names it ("after", order.go) waits for its answer.
		end := s.order.begin(origin, tx.TxnID)
		defer func() { end(answer) }()
		if tx.Type != wire.TypeEnvelopes {
			// Its entries depend on the state the one before leaves.
			if refusal := s.awaitAfter(tx); refusal != nil {
				return refusal
			}
		}
	}
	switch tx.Type {
	case wire.TypeEnvelopes, wire.TypeReadMarks, wire.TypeDeletes:
	case wire.TypeGroupEnvelopes, wire.TypeGroupUpdates: // groups.go
	case wire.TypeKeyRequest:
		return s.answerKeys(tx)
	case wire.TypeFileRequest:
		return s.answerFile(tx, st) // files.go
	case wire.TypeWitness:
		return s.answerWitness(tx, c.PeerKey())
	case wire.TypeGroupRequest:
		return s.answerGroup(tx)
	case wire.TypeGroupLeaves:
		return s.answerGroupLeaves(tx) // leave.go
	default:
		return s.refuse(origin, string(wire.UnknownType), fmt.Sprintf("this server does not take %q transactions", tx.Type), 0)
	}
	prior, dup, err := wire.Dedupe(tx, replay{s.store})
	if err != nil {
		return s.storeFailure(origin, tx, err)
	}
	var results []wire.Result
	if prior != nil { // a retry whose receipt was lost: the same answer, signed again
		results = prior
		s.met.transactions.WithLabelValues("replayed").Inc()
	} else {
		entries := make([]storage.InboundEntry, len(tx.Entries))
		for i, e := range tx.Entries {
			if tx.Type == wire.TypeGroupEnvelopes || tx.Type == wire.TypeGroupUpdates {
				if entries[i], err = s.checkGroupEntry(tx, e, dup[i], now); err != nil { // groups.go
					return s.storeFailure(origin, tx, err)
				}
				continue
			}
			if tx.Type != wire.TypeEnvelopes {
				// Read marks and deletes: the store checks them against
				// the message they name (spec §12.2, §12.3).
				entries[i] = storage.InboundEntry{Kind: string(tx.Type), ID: e.ID, Message: e.Message, Reader: e.Reader, From: e.From, At: time.UnixMilli(e.At)}
				continue
			}
			if dup[i] {
				// Committed before (replay, spec §13): the store answers
				// duplicate; the checks of §7.3 come after replay.
				entries[i] = storage.InboundEntry{ID: e.ID, Raw: e.Envelope}
				continue
			}
			entries[i], err = s.checkEntry(tx.Origin, e, now)
			if err != nil {
				return s.storeFailure(origin, tx, err)
			}
		}
		if tx.Type == wire.TypeGroupEnvelopes {
			if refusal := s.replicaBehind(tx, entries); refusal != nil { // groupsync.go
				return refusal
			}
		}
		if tx.Type == wire.TypeEnvelopes {
			// Their checks need nothing the one before commits: they
			// overlapped its commit.
			if refusal := s.awaitAfter(tx); refusal != nil {
				return refusal
			}
		}
		stored, replayed, err := s.store.ReceiveTransaction(tx.Origin, tx.TxnID, entries, now)
		if err != nil {
			return s.storeFailure(origin, tx, err)
		}
		results = make([]wire.Result, len(stored))
		for i, r := range stored {
			results[i] = wire.Result{ID: r.ID, Status: wire.Status(r.Status), Error: r.Error}
		}
		if replayed {
			s.met.transactions.WithLabelValues("replayed").Inc()
		} else {
			s.met.transactions.WithLabelValues("committed").Inc()
			for _, r := range results {
				s.met.entries.WithLabelValues(string(r.Status)).Inc()
			}
		}
	}
	rc := &wire.Receipt{
		Header:  wire.Header{Origin: s.cfg.Name, Destination: tx.Origin, TxnID: tx.TxnID, CreatedAt: s.now().UnixMilli()},
		Results: results,
	}
	if err := rc.Answers(tx); err != nil {
		s.log.Error("federation: the store's results do not answer the transaction", "origin", string(origin), "txn", tx.TxnID, "err", err)
		return s.refuse(origin, codeInternal, "the receiver's results do not match the transaction", 0)
	}
	out, err := wire.Sign(rc, s.cfg.Key)
	if err != nil {
		s.log.Error("federation: signing a receipt", "origin", string(origin), "txn", tx.TxnID, "err", err)
		return s.refuse(origin, codeInternal, "the receiver could not sign its receipt", 0)
	}
	return out
}

// awaitAfter waits until the transaction that tx names in "after" is
// committed (order.go); nil then, or if it names none, else the
// out_of_order refusal.
func (s *Service) awaitAfter(tx *wire.Transaction) []byte {
	if tx.After == "" {
		return nil
	}
	committed := func() bool {
		_, ok, err := s.store.TransactionResults(tx.Origin, tx.After)
		return err == nil && ok
	}
	if s.order.after(tx.Origin, tx.After, committed) {
		return nil
	}
	return s.refuse(tx.Origin, codeOutOfOrder, "txn "+tx.After+", which this one follows, was not committed", 0)
}

// answerKeys answers a verified key_request (spec §12.5) from the key
// directory: a signed key_answer, nothing stored or replayed.
func (s *Service) answerKeys(tx *wire.Transaction) []byte {
	if s.cfg.Keys == nil {
		return s.refuse(tx.Origin, string(wire.UnknownType), "this server does not answer key requests", 0)
	}
	results, err := answerKeyRequest(tx, s.cfg.Keys, s.cfg.Name)
	if err != nil {
		s.log.Error("federation: answering a key request", "origin", string(tx.Origin), "txn", tx.TxnID, "err", err)
		return s.refuse(tx.Origin, codeUnavailable, "the key directory cannot answer now", 0)
	}
	s.met.transactions.WithLabelValues("key_request").Inc()
	ans := &wire.Receipt{
		Header:  wire.Header{Origin: s.cfg.Name, Destination: tx.Origin, TxnID: tx.TxnID, CreatedAt: s.now().UnixMilli()},
		Type:    wire.TypeKeyAnswer,
		Results: results,
	}
	out, err := wire.Sign(ans, s.cfg.Key)
	if err != nil {
		s.log.Error("federation: signing a key answer", "origin", string(tx.Origin), "txn", tx.TxnID, "err", err)
		return s.refuse(tx.Origin, codeInternal, "the receiver could not sign its answer", 0)
	}
	return out
}

// storeFailure answers a transaction the store could not take:
// txn_id_reused if the store says so, else unavailable (retry).
func (s *Service) storeFailure(origin privateline.ServerName, tx *wire.Transaction, err error) []byte {
	if wire.ReasonOf(err) == wire.TxnReused || errors.Is(err, storage.ErrTxnReused) || strings.Contains(err.Error(), string(wire.TxnReused)) {
		return s.refuse(origin, string(wire.TxnReused), "txn "+tx.TxnID+" was committed with other entries", 0)
	}
	s.log.Error("federation: storing a transaction", "origin", string(origin), "txn", tx.TxnID, "err", err)
	return s.refuse(origin, codeUnavailable, "the receiver cannot commit now", 0)
}

// refuse counts a rejected frame and returns its error frame.
func (s *Service) refuse(origin privateline.ServerName, code, msg string, retryAfter time.Duration) []byte {
	s.met.rejected.WithLabelValues(code).Inc()
	level := slog.LevelInfo
	if code == codeRateLimited {
		level = slog.LevelDebug // a busy peer, not news
	}
	s.log.Log(context.Background(), level, "federation: refused a frame", "origin", string(origin), "reason", code, "detail", msg)
	return errorFrame(code, msg, retryAfter)
}

// checkEntry performs the per-entry checks of spec §7.3 that need no lock:
// the client API's shape and header checks, id, origin, destination,
// recipients that exist, expiry. A refused entry comes back with its code
// in Refused; err is a storage failure.
func (s *Service) checkEntry(origin privateline.ServerName, e wire.Entry, now time.Time) (storage.InboundEntry, error) {
	in := storage.InboundEntry{ID: e.ID, Raw: e.Envelope}
	// envelope.Parse reads every byte as JSON (envelope.FuzzParseFast
	// checks that it accepts only JSON); it does not check UTF-8.
	if !utf8.Valid(e.Envelope) {
		in.Refused = entryMalformed
		return in, nil
	}
	h, err := envelope.Parse(e.Envelope)
	if err != nil {
		in.Refused = entryMalformed
		if privateline.Is(privateline.TooLarge, err) {
			in.Refused = entryTooLarge
		}
		return in, nil
	}
	in.From, in.ExpiresAt, in.Files = h.From, h.ExpiresAt, h.Files
	if h.ID != e.ID {
		in.Refused = entryIDMismatch
		return in, nil
	}
	if _, server, err := h.From.Split(); err != nil || server != origin {
		in.Refused = entryWrongOrigin
		return in, nil
	}
	var local []privateline.Address
	for _, to := range h.To {
		if _, server, err := to.Split(); err == nil && server == s.cfg.Name {
			local = append(local, to)
		}
	}
	if len(local) == 0 {
		in.Refused = entryNotForDestination
		return in, nil
	}
	if in.Recipients, err = s.localRecipients(local); err != nil {
		return in, err
	}
	if len(in.Recipients) == 0 {
		in.Refused = entryUnknownRecipient
		return in, nil
	}
	if !h.ExpiresAt.IsZero() && !h.ExpiresAt.After(now) {
		in.Refused = entryExpired
	}
	return in, nil
}

// replay reads the store's replay records (wire.Replay).
type replay struct{ st Store }

func (r replay) Seen(origin privateline.ServerName, txnID string) ([]wire.Result, bool, error) {
	rs, ok, err := r.st.TransactionResults(origin, txnID)
	if err != nil || !ok {
		return nil, false, err
	}
	out := make([]wire.Result, len(rs))
	for i, x := range rs {
		out[i] = wire.Result{ID: x.ID, Status: wire.Status(x.Status), Error: x.Error}
	}
	return out, true, nil
}

func (r replay) SeenEnvelopes(origin privateline.ServerName, ids []string) ([]bool, error) {
	return r.st.SeenEnvelopes(origin, ids)
}

// acquire takes one of origin's concurrent exchange slots.
func (s *Service) acquire(origin privateline.ServerName) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy[origin] >= MaxConcurrentPerOrigin {
		return false
	}
	s.busy[origin]++
	return true
}

func (s *Service) release(origin privateline.ServerName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy[origin]--; s.busy[origin] <= 0 {
		delete(s.busy, origin)
	}
}

// bucket is a token bucket: RatePerOrigin tokens a second, at most one
// second's worth (and at least one) saved up.
type bucket struct {
	tokens float64
	last   time.Time
}

// allow takes a token of origin's bucket at now, or says how long until
// there is one.
func (s *Service) allow(origin privateline.ServerName, now time.Time) (bool, time.Duration) {
	rate := s.cfg.RatePerOrigin
	burst := math.Max(1, rate)
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.limiters[origin]
	if b == nil {
		b = &bucket{tokens: burst, last: now}
		s.limiters[origin] = b
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = math.Min(burst, b.tokens+el*rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration(math.Ceil((1 - b.tokens) / rate * float64(time.Second)))
	return false, max(wait, time.Millisecond)
}

// localRecipients resolves addresses of this server to its users; an
// address with no account here is left out.
func (s *Service) localRecipients(addrs []privateline.Address) ([]storage.Recipient, error) {
	var out []storage.Recipient
	for _, to := range addrs {
		name, _, _ := to.Split()
		u, err := s.store.UserByName(name)
		if privateline.Is(privateline.NotExist, err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, storage.Recipient{ID: u.ID, Address: to})
	}
	return out, nil
}
