package federation

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/federation/wire"
	"github.com/privateline/privateline/keylog"
	"github.com/privateline/privateline/merkle"
)

// Tree-head witnessing (spec/federation.md §12.6). As a witness, this
// server co-signs a peer's directory tree after checking it against the
// last head of that peer it verified (the record key look-ups keep, §12.5),
// and keeps evidence when the peer shows two heads that cannot both be
// true. As a directory, it asks every peer to co-sign its current head
// soon after the log grows and every WitnessInterval, and keeps each
// witness's latest co-signature for its clients.

// WitnessDirectory is what asking for co-signatures needs from this
// server's key directory (*keydir.Directory).
type WitnessDirectory interface {
	Head() (*keylog.TreeHead, error)
	Consistency(from, to uint64) (*keylog.Consistency, error)
}

// Witness answer codes (spec §12.6).
const (
	witnessMalformed    = "malformed"     // the head does not parse, is empty, or since ≥ its size
	witnessWrongOrigin  = "wrong_origin"  // a head of another server than the requester
	witnessBadSignature = "bad_signature" // the head's signature is not the requester's
	witnessNeedProof    = "need_proof"    // the proof is not from the size the witness holds (tree_size)
	witnessRollback     = "log_rollback"  // smaller than the head the witness holds (tree_size)
	witnessFork         = "log_fork"      // conflicts with the head the witness holds: evidence kept
)

// Defaults of witnessing.
const (
	// DefaultWitnessInterval is how old a co-signature of the current tree
	// may get before the directory asks its witnesses again (the
	// directory also asks as soon as its log grows).
	DefaultWitnessInterval = 10 * time.Minute
	// witnessPoll is how often the directory checks whether its head
	// grew.
	witnessPoll = 2 * time.Second
)

// answerWitness answers a verified witness request from the peer whose
// authenticated key is key: a signed witness_answer with a co-signature
// or a code. Nothing of the request is stored but the head it proves and,
// for a fork, the evidence.
func (s *Service) answerWitness(tx *wire.Transaction, key ed25519.PublicKey) []byte {
	e := tx.Entries[0]
	r := wire.Result{ID: e.ID}
	var err error
	r.Cosignature, r.Error, r.TreeSize, err = s.witness(tx.Origin, key, e)
	if err != nil {
		s.log.Error("federation: answering a witness request", "origin", string(tx.Origin), "txn", tx.TxnID, "err", err)
		return s.refuse(tx.Origin, codeUnavailable, "the witness cannot answer now", 0)
	}
	outcome := r.Error
	if outcome == "" {
		outcome = "cosigned"
	}
	s.met.witnessAnswered.WithLabelValues(outcome).Inc()
	ans := &wire.Receipt{
		Header:  wire.Header{Origin: s.cfg.Name, Destination: tx.Origin, TxnID: tx.TxnID, CreatedAt: s.now().UnixMilli()},
		Type:    wire.TypeWitnessAnswer,
		Results: []wire.Result{r},
	}
	out, err := wire.Sign(ans, s.cfg.Key)
	if err != nil {
		s.log.Error("federation: signing a witness answer", "origin", string(tx.Origin), "txn", tx.TxnID, "err", err)
		return s.refuse(tx.Origin, codeInternal, "the witness could not sign its answer", 0)
	}
	return out
}

// witness performs the witness's checks of spec §12.6 on e, a request of
// origin (key: its authenticated key), in order, and returns the
// co-signature or the code (with the size of the head held, for
// need_proof and log_rollback). err is a storage failure.
func (s *Service) witness(origin privateline.ServerName, key ed25519.PublicKey, e wire.Entry) (cosig []byte, code string, size uint64, err error) {
	head, perr := keylog.ParseTreeHead(e.Head)
	switch {
	case perr != nil || head.TreeSize == 0 || e.Since >= head.TreeSize:
		return nil, witnessMalformed, 0, nil
	case head.Server != origin:
		return nil, witnessWrongOrigin, 0, nil
	case head.Verify(key) != nil:
		return nil, witnessBadSignature, 0, nil
	}
	proof := make([]merkle.Hash, len(e.Consistency))
	for i, h := range e.Consistency {
		copy(proof[i][:], h)
	}

	s.headMu.Lock()
	defer s.headMu.Unlock()
	held, err := s.peerHead(origin)
	if err != nil {
		return nil, "", 0, err
	}
	if held != nil && held.TreeSize > 0 {
		switch {
		case held.TreeSize > head.TreeSize:
			s.log.Warn("federation: a peer asked to witness a smaller directory head than one it showed before",
				"peer", string(origin), "size", head.TreeSize, "held", held.TreeSize)
			return nil, witnessRollback, held.TreeSize, nil
		case held.TreeSize < head.TreeSize && e.Since != held.TreeSize:
			return nil, witnessNeedProof, held.TreeSize, nil
		}
		if ev := keylog.NewForkEvidence(held, head, proof, s.cfg.Name, s.now().UnixMilli()); ev != nil {
			if err := s.keepFork(ev); err != nil {
				return nil, "", 0, err
			}
			return nil, witnessFork, held.TreeSize, nil
		}
	}
	if held == nil || head.TreeSize > held.TreeSize || head.Timestamp > held.Timestamp {
		if err := s.setPeerHead(origin, head); err != nil {
			return nil, "", 0, err
		}
	}
	c := keylog.Cosign(head, s.cfg.Name, s.now().UnixMilli(), s.cfg.Key.Public(), s.cfg.Key.Sign)
	raw, err := c.WireJSON()
	if err != nil {
		return nil, "", 0, privateline.E("federation.witness", privateline.Internal, err)
	}
	return raw, "", 0, nil
}

// keepFork stores fork evidence durably, logs it as an error and counts it.
func (s *Service) keepFork(ev *keylog.ForkEvidence) error {
	raw, err := ev.MarshalJSON()
	if err != nil {
		return privateline.E("federation.keepFork", privateline.Internal, err)
	}
	added, err := s.store.AddDirectoryFork(ev.Server, raw)
	if err != nil {
		return err
	}
	s.met.forks.WithLabelValues(ev.Kind).Inc()
	s.log.Error("federation: a peer's key directory forked: it showed two heads that cannot both be true; the evidence is kept and served at GET /api/keys/forks",
		"peer", string(ev.Server), "kind", ev.Kind, "first_size", ev.First.TreeSize, "second_size", ev.Second.TreeSize, "kept", added)
	return nil
}

// peerHead returns the last head of name's directory this server
// verified, nil if none.
func (s *Service) peerHead(name privateline.ServerName) (*keylog.TreeHead, error) {
	raw, err := s.store.PeerDirectoryHead(name)
	if err != nil || raw == nil {
		return nil, err
	}
	h, err := keylog.ParseTreeHead(raw)
	if err != nil {
		return nil, privateline.E("federation.peerHead", privateline.Internal, err)
	}
	return h, nil
}

func (s *Service) setPeerHead(name privateline.ServerName, h *keylog.TreeHead) error {
	raw, err := h.MarshalJSON()
	if err != nil {
		return privateline.E("federation.setPeerHead", privateline.Internal, err)
	}
	return s.store.SetPeerDirectoryHead(name, raw)
}

// advancePeerHead records h, verified to extend the head held when the
// check began, as the last head of name's directory unless a head at
// least as large was recorded since (a concurrent witness request or
// look-up): the record never shrinks.
func (s *Service) advancePeerHead(name privateline.ServerName, h *keylog.TreeHead) error {
	s.headMu.Lock()
	defer s.headMu.Unlock()
	held, err := s.peerHead(name)
	if err != nil {
		return err
	}
	if held != nil && (held.TreeSize > h.TreeSize || held.TreeSize == h.TreeSize && held.Timestamp >= h.Timestamp) {
		return nil
	}
	return s.setPeerHead(name, h)
}

// Cosignatures returns the latest co-signature of each witness of this
// server's directory, sorted by witness name, for the client API.
func (s *Service) Cosignatures() ([]*keylog.Cosignature, error) {
	raws, err := s.store.Cosignatures()
	if err != nil {
		return nil, privateline.E("federation.Cosignatures", err)
	}
	out := make([]*keylog.Cosignature, 0, len(raws))
	for _, raw := range raws {
		c, err := keylog.ParseCosignature(raw)
		if err != nil {
			return nil, privateline.E("federation.Cosignatures", privateline.Internal, err)
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *keylog.Cosignature) int { return strings.Compare(string(a.Witness), string(b.Witness)) })
	return out, nil
}

// DirectoryForks returns the fork evidence this server keeps about its
// peers' directories, oldest first, for the client API.
func (s *Service) DirectoryForks() ([]*keylog.ForkEvidence, error) {
	raws, err := s.store.DirectoryForks()
	if err != nil {
		return nil, privateline.E("federation.DirectoryForks", err)
	}
	out := make([]*keylog.ForkEvidence, 0, len(raws))
	for _, raw := range raws {
		f, err := keylog.ParseForkEvidence(raw)
		if err != nil {
			return nil, privateline.E("federation.DirectoryForks", privateline.Internal, err)
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b *keylog.ForkEvidence) int {
		if a.DetectedAt != b.DetectedAt {
			return int(a.DetectedAt - b.DetectedAt)
		}
		return strings.Compare(string(a.Server), string(b.Server))
	})
	return out, nil
}

// witnessState is the directory side's schedule: per witness, whether a
// request is in flight, the failures in a row and when to try again.
type witnessState struct {
	mu       sync.Mutex
	inFlight map[privateline.ServerName]bool
	fails    map[privateline.ServerName]int
	next     map[privateline.ServerName]time.Time
}

// witnessLoop asks the witnesses to co-sign the directory's head: when
// it grows, when a co-signature is WitnessInterval old, and after a
// failure with the backoff of spec §14.
func (s *Service) witnessLoop() {
	defer s.wg.Done()
	st := &witnessState{inFlight: map[privateline.ServerName]bool{}, fails: map[privateline.ServerName]int{}, next: map[privateline.ServerName]time.Time{}}
	t := time.NewTicker(s.witnessPoll)
	defer t.Stop()
	for {
		s.witnessRound(st)
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// witnesses returns the peers asked to witness: the configured ones and
// every server this one has an address for (set or from gossip) or a
// sender to.
func (s *Service) witnesses() []privateline.ServerName {
	s.mu.Lock()
	defer s.mu.Unlock()
	set := map[privateline.ServerName]bool{}
	for _, p := range s.cfg.Peers {
		set[p.Name] = true
	}
	for n := range s.addrs {
		set[n] = true
	}
	for n := range s.gaddrs { // learnt from gossip (spec §5.2)
		set[n] = true
	}
	for n := range s.senders {
		set[n] = true
	}
	delete(set, s.cfg.Name)
	out := make([]privateline.ServerName, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func (s *Service) witnessRound(st *witnessState) {
	head, err := s.cfg.Witness.Head()
	if err != nil {
		s.log.Error("federation: reading the directory head to witness", "err", err)
		return
	}
	if head.TreeSize == 0 {
		return
	}
	now := s.now()
	for _, w := range s.witnesses() {
		st.mu.Lock()
		due := !st.inFlight[w] && !now.Before(st.next[w])
		st.mu.Unlock()
		if !due || s.cosignedRecently(w, head, now) {
			continue
		}
		st.mu.Lock()
		st.inFlight[w] = true
		st.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			err := s.askWitness(s.ctx, w, head)
			st.mu.Lock()
			defer st.mu.Unlock()
			st.inFlight[w] = false
			if err == nil {
				delete(st.fails, w)
				delete(st.next, w)
				return
			}
			st.next[w] = s.now().Add(backoff(s.base, st.fails[w], s.jitter()))
			st.fails[w]++
			if s.ctx.Err() == nil {
				s.log.Info("federation: a witness did not co-sign the directory head", "witness", string(w), "size", head.TreeSize, "err", err)
			}
		}()
	}
}

// cosignedRecently reports whether w's kept co-signature covers head's
// tree and is younger than WitnessInterval.
func (s *Service) cosignedRecently(w privateline.ServerName, head *keylog.TreeHead, now time.Time) bool {
	raw, err := s.store.Cosignature(w)
	if err != nil || raw == nil {
		return false
	}
	c, err := keylog.ParseCosignature(raw)
	if err != nil {
		return false
	}
	return c.Covers(head) && now.UnixMilli()-c.WitnessedAt < s.cfg.WitnessInterval.Milliseconds()
}

// errWitness is a witness's refusal (its code is in the message).
var errWitness = errors.New("federation: the witness refused")

// AskWitness asks w to co-sign the directory's current head now and keeps
// the co-signature (operators, tests); the loop does this by itself.
func (s *Service) AskWitness(ctx context.Context, w privateline.ServerName) error {
	if s.cfg.Witness == nil {
		return privateline.E("federation.AskWitness", privateline.Invalid, "this server has no directory to witness")
	}
	head, err := s.cfg.Witness.Head()
	if err != nil {
		return err
	}
	return s.askWitness(ctx, w, head)
}

// askWitness sends w a witness request for head, with a consistency proof
// from the size w last co-signed (or, when w says it holds another size,
// from that size, once), and keeps the co-signature it answers.
func (s *Service) askWitness(ctx context.Context, w privateline.ServerName, head *keylog.TreeHead) error {
	const op = "federation.askWitness"
	s.mu.Lock()
	if !s.started || s.closed {
		s.mu.Unlock()
		return privateline.E(op, privateline.Unavailable, "federation is not running")
	}
	sd := s.senderLocked(w)
	s.mu.Unlock()

	hj, err := head.MarshalJSON()
	if err != nil {
		return privateline.E(op, privateline.Internal, err)
	}
	var since uint64
	if raw, err := s.store.Cosignature(w); err != nil {
		return privateline.E(op, err)
	} else if raw != nil {
		if c, err := keylog.ParseCosignature(raw); err == nil && c.Head.TreeSize < head.TreeSize {
			since = c.Head.TreeSize
		}
	}
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	for try := 0; ; try++ {
		e := wire.Entry{ID: wire.NewTxnID(), Head: hj}
		if since > 0 {
			p, err := s.cfg.Witness.Consistency(since, head.TreeSize)
			if err != nil {
				return privateline.E(op, err)
			}
			e.Since, e.Consistency = since, make([][]byte, len(p.Proof))
			for i, h := range p.Proof {
				e.Consistency[i] = append([]byte(nil), h[:]...)
			}
		}
		req := &wire.Transaction{Type: wire.TypeWitness, Entries: []wire.Entry{e},
			Header: wire.Header{Origin: s.cfg.Name, Destination: w, TxnID: wire.NewTxnID(), CreatedAt: s.now().UnixMilli()}}
		raw, err := wire.Sign(req, s.cfg.Key)
		if err != nil {
			return privateline.E(op, privateline.Internal, err)
		}
		conn, err := sd.link(ctx)
		if err != nil {
			s.met.witnessAsked.WithLabelValues("unreachable").Inc()
			return privateline.E(op, privateline.Unavailable, fmt.Sprintf("%s cannot be reached", w), err)
		}
		resp, err := exchange(ctx, conn, raw)
		if err != nil {
			sd.dropLink()
			s.met.witnessAsked.WithLabelValues("unreachable").Inc()
			return privateline.E(op, privateline.Unavailable, fmt.Sprintf("%s did not answer", w), err)
		}
		if ef, ok := parseErrorFrame(resp); ok {
			s.met.witnessAsked.WithLabelValues(ef.code).Inc()
			return privateline.E(op, privateline.Unavailable, fmt.Sprintf("%s refused the witness request (%s: %s)", w, ef.code, ef.message), errWitness)
		}
		peer := wire.Peer{Name: w, Key: conn.PeerKey()}
		ans, err := wire.VerifyReceipt(resp, peer, s.cfg.Name, s.now(), wire.DefaultLimits(), req)
		if err != nil {
			s.met.witnessAsked.WithLabelValues(string(wire.ReasonOf(err))).Inc()
			return privateline.E(op, privateline.Unavailable, fmt.Sprintf("the answer of %s does not verify", w), err)
		}
		r := ans.Results[0]
		switch {
		case r.Error == "" && r.Cosignature != nil:
			c, err := keylog.ParseWireCosignature(r.Cosignature, head, peer.Key)
			if err == nil && c.Witness != w {
				err = fmt.Errorf("co-signed as %s", c.Witness)
			}
			if err != nil {
				s.met.witnessAsked.WithLabelValues("bad_cosignature").Inc()
				return privateline.E(op, privateline.Unavailable, fmt.Sprintf("the co-signature of %s does not verify", w), err)
			}
			kept, err := c.MarshalJSON()
			if err != nil {
				return privateline.E(op, privateline.Internal, err)
			}
			if err := s.store.SetCosignature(w, kept); err != nil {
				return privateline.E(op, err)
			}
			s.met.witnessAsked.WithLabelValues("cosigned").Inc()
			return nil
		case r.Error == witnessNeedProof && try == 0 && r.TreeSize > 0 && r.TreeSize < head.TreeSize:
			s.met.witnessAsked.WithLabelValues(witnessNeedProof).Inc()
			since = r.TreeSize // the witness holds a head it verified otherwise (a look-up)
			continue
		case r.Error == witnessFork || r.Error == witnessRollback:
			s.log.Error("federation: a witness holds a head of this server's key directory that the current one does not extend (restored from an old backup, or the identity key is used elsewhere?)",
				"witness", string(w), "code", r.Error, "size", head.TreeSize, "held", r.TreeSize)
		}
		s.met.witnessAsked.WithLabelValues(r.Error).Inc()
		return privateline.E(op, privateline.Unavailable, fmt.Sprintf("%s did not co-sign (%s)", w, r.Error), errWitness)
	}
}

// keepKeyAnswerFork keeps fork evidence from a key answer (spec §12.5)
// that failed with log_fork against last, the head held for the peer: a
// head of the answer, signed by the peer, of last's size with another
// root, or larger with a proof from last's size that does not verify.
func (s *Service) keepKeyAnswerFork(peer wire.Peer, req *wire.Transaction, ans *wire.Receipt, last *keylog.TreeHead) {
	if last == nil || last.TreeSize == 0 {
		return
	}
	for i, r := range ans.Results {
		if r.Lookup == nil || i >= len(req.Entries) {
			continue
		}
		l, err := keylog.ParseLookup(r.Lookup, 0)
		if err != nil || l.Head.Server != peer.Name || l.Head.Verify(peer.Key) != nil {
			continue
		}
		var proof []merkle.Hash
		if req.Entries[i].Since == last.TreeSize {
			for _, h := range r.Consistency {
				proof = append(proof, merkle.Hash(h))
			}
		} else if l.Head.TreeSize != last.TreeSize {
			continue // no proof from the held head: nothing shown to conflict
		}
		if ev := keylog.NewForkEvidence(last, &l.Head, proof, s.cfg.Name, s.now().UnixMilli()); ev != nil {
			if err := s.keepFork(ev); err != nil {
				s.log.Error("federation: keeping fork evidence", "peer", string(peer.Name), "err", err)
			}
			return
		}
	}
}
