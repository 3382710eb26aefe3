package federation

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/envelope"
	"github.com/privateline/privateline/federation/wire"
	"github.com/privateline/privateline/storage"
)

// Replica resync (spec/federation.md §12.1, "Resync"). A replica follows
// the group_updates its group's server G queues, and those never expire
// from G's outbox; but a replica can still be behind — this server was
// restored from a backup, lost data, or G's updates could not be had — so
// this server asks G for the group's current state (a group_request of
// op "state", answered like any group request with the state for this
// server, or not_found when none of the group's members is here any more):
//
//   - at start, for every replica, one after the other per server, again
//     with backoff while the server cannot be reached, and at once when it
//     is back (an inbound connection from it, or Retry);
//   - before committing a group_envelopes transaction with an entry that
//     shows the replica behind (no replica, the sender not a member, or an
//     epoch newer than the replica's): the entry is not taken against a
//     stale replica. If the state cannot be had, the whole transaction is
//     refused as `unavailable`, so G keeps it and sends it again: nothing
//     is lost, and nothing was stored, so nothing is duplicated.
//
// Reads never wait for any of this: they answer from the replica.

// resyncFresh is how long after a replica was brought up to date an
// envelope's evidence does not make this server ask again (the state it
// got is as new as G's updates; a message still refused after it is
// refused for good).
const resyncFresh = 30 * time.Second

// maxResyncPerTxn bounds the groups one inbound transaction makes this
// server ask about; past it the transaction is refused as unavailable
// and the rest are asked on its retry.
const maxResyncPerTxn = 16

// maxSyncedKept is how many recently synced groups are remembered before
// those older than resyncFresh are forgotten.
const maxSyncedKept = 1024

// resyncTimeout bounds one state request made while a transaction waits.
const resyncTimeout = 10 * time.Second

// resyncShare is the part of the per-origin rate (Config.RatePerOrigin,
// taken as the group's server's too: a network runs one setting) that
// this server's resync requests to one server use at most, so that its
// deliveries to that server keep the rest (spec §12.1, "Resync").
const resyncShare = 0.25

// maxResyncing bounds the resync requests in flight to all servers at
// once (those a worker makes; a transaction's resyncs are bounded by
// maxResyncPerTxn).
const maxResyncing = 4

// resyncInterval is the least time between two resync requests of a
// worker to its server.
func (s *Service) resyncInterval() time.Duration {
	rate := s.cfg.RatePerOrigin * resyncShare
	if rate <= 0 {
		return time.Second
	}
	return time.Duration(float64(time.Second) / rate)
}

// resync is the state of replica resyncs: the groups still to ask about
// per server, the worker of each server, and when each group was last
// brought up to date.
type resync struct {
	mu      sync.Mutex
	slots   chan struct{} // maxResyncing requests of workers in flight
	pending map[privateline.ServerName]map[string]bool
	workers map[privateline.ServerName]chan struct{} // a worker's wake-up (capacity 1)
	synced  map[string]time.Time
	// procs: the process (certificate) of each server last seen on a
	// link with it (peerProcess).
	procs map[privateline.ServerName][32]byte
}

// errNoReplicaChange: the state request was answered, but with a status
// that is neither a state nor not_found (a bug there); not retried.
var errNoReplicaChange = privateline.E(privateline.Invalid, "the group's server answered a state request with neither a state nor not_found")

// SyncGroup asks the group's server for the current state of group id
// and applies it to the replica here (not_found deletes the replica, if
// it has not moved on meanwhile). A rate_limited refusal is waited out
// (its retry_after) while ctx allows. A server that cannot be reached is
// an Unavailable error; nothing changes then.
func (s *Service) SyncGroup(ctx context.Context, id string) error {
	return s.syncGroupWaiting(ctx, id)
}

// syncGroupWaiting is syncGroup asked again after each rate_limited
// refusal's retry_after, until ctx ends.
func (s *Service) syncGroupWaiting(ctx context.Context, id string) error {
	for {
		after, err := s.syncGroup(ctx, id)
		if err == nil || after <= 0 {
			return err
		}
		s.met.resyncs.WithLabelValues("rate_limited").Inc()
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < after {
			return err
		}
		timer := time.NewTimer(after)
		select {
		case <-ctx.Done():
			timer.Stop()
			return err
		case <-timer.C:
		}
	}
}

func (s *Service) syncGroup(ctx context.Context, id string) (time.Duration, error) {
	const op = "federation.SyncGroup"
	server, err := wire.GroupServer(id)
	if err != nil {
		return 0, privateline.E(op, privateline.Invalid, err)
	}
	if server == s.cfg.Name {
		return 0, privateline.E(op, privateline.Invalid, "a group of this server")
	}
	var known, knownEra uint64
	have := false
	req := wire.Entry{ID: wire.NewTxnID(), Group: id, Op: wire.GroupOpState}
	switch g, err := s.store.GroupReplicaOf(id); {
	case err == nil:
		known, knownEra, have = g.Version, g.Era, true
		// The highest epoch this replica held (storage/fedepochs.go):
		// a group's server restored from a backup moves past it.
		req.SeenEpoch, req.SeenEra = g.SeenEpoch, g.SeenEra
		if req.SeenEpoch == 0 { // a record of an older version: the era is not known
			req.SeenEpoch, req.SeenEra = g.Epoch, 0
		}
	case !privateline.Is(privateline.NotExist, err):
		return 0, privateline.E(op, err)
	}
	r, after, err := s.groupExchange(ctx, server, req)
	if err != nil {
		if after <= 0 { // rate_limited is counted by the caller that waits
			s.met.resyncs.WithLabelValues("unreachable").Inc()
		}
		return after, privateline.E(op, err)
	}
	switch {
	case r.HTTPStatus == http.StatusOK && r.State != nil:
		rep, err := s.parseGroupState(r.State, id)
		if err != nil {
			s.met.resyncs.WithLabelValues("bad_state").Inc()
			s.log.Warn("federation: a group's state from its server does not parse", "group", id, "err", err)
			return 0, privateline.E(op, privateline.Invalid, err)
		}
		applied, err := s.store.ApplyGroupReplica(rep)
		if err != nil {
			return 0, privateline.E(op, err)
		}
		if applied {
			s.met.resyncs.WithLabelValues("updated").Inc()
			s.log.Info("federation: a group replica was behind; brought up to date", "group", id, "from", known, "to", rep.Group.Version)
		} else {
			s.met.resyncs.WithLabelValues("current").Inc()
		}
	case r.HTTPStatus == http.StatusNotFound:
		if have {
			gone, err := s.store.DropGroupReplica(id, knownEra, known)
			if err != nil {
				return 0, privateline.E(op, err)
			}
			if gone {
				s.log.Info("federation: the group's server has no such group for this server any more; its replica is gone", "group", id)
			}
		}
		s.met.resyncs.WithLabelValues("not_found").Inc()
	case r.HTTPStatus >= 500:
		s.met.resyncs.WithLabelValues("unreachable").Inc()
		return 0, privateline.E(op, privateline.Unavailable, "the group's server cannot answer now ("+r.Error+")")
	default:
		s.met.resyncs.WithLabelValues("bad_state").Inc()
		s.log.Warn("federation: a state request was answered with neither a state nor not_found", "group", id, "status", r.HTTPStatus, "error", r.Error)
		return 0, privateline.E(op, errNoReplicaChange)
	}
	now := s.now()
	s.rs.mu.Lock()
	if s.rs.synced == nil {
		s.rs.synced = map[string]time.Time{}
	}
	if len(s.rs.synced) >= maxSyncedKept {
		for g, at := range s.rs.synced {
			if now.Sub(at) >= resyncFresh {
				delete(s.rs.synced, g)
			}
		}
	}
	s.rs.synced[id] = now
	s.rs.mu.Unlock()
	return 0, nil
}

// answerGroupState answers a verified state request: the group's state
// for origin if it is one of this server's groups with a member on
// origin, otherwise not_found.
func (s *Service) answerGroupState(tx *wire.Transaction) wire.Result {
	e := tx.Entries[0]
	res := wire.Result{ID: e.ID, HTTPStatus: http.StatusNotFound, Error: groupNotFound, Message: "no such group with members on your server"}
	if srv, _ := wire.GroupServer(e.Group); srv != s.cfg.Name {
		return res
	}
	if e.SeenEpoch > 0 {
		// The asking replica held an epoch this server's group does not
		// (it was restored from a backup, or made the number again
		// since): the group moves past it, so that no epoch number gets
		// a second key (storage/fedepochs.go).
		switch raised, err := s.store.RaiseGroupEpoch(e.Group, tx.Origin, e.SeenEpoch, e.SeenEra); {
		case raised:
			s.met.epochRaises.Inc()
			s.log.Warn("federation: a member's server held a later epoch of a group than this server (restored from a backup?); the group moves past it and is rekeyed by the next admin who acts",
				"group", e.Group, "server", string(tx.Origin), "epoch", e.SeenEpoch+1)
		case err != nil && privateline.Is(privateline.Invalid, err):
			s.log.Warn("federation: a member's server claims an epoch of a group too far ahead; not followed", "group", e.Group, "server", string(tx.Origin), "epoch", e.SeenEpoch)
		case err != nil && !privateline.Is(privateline.NotExist, err):
			s.log.Error("federation: raising a group's epoch past a replica's", "group", e.Group, "err", err)
			return wire.Result{ID: e.ID, HTTPStatus: http.StatusServiceUnavailable, Error: codeUnavailable, Message: "the group's state cannot be written now"}
		}
	}
	st, err := s.store.GroupSyncState(e.Group, tx.Origin)
	switch {
	case err == nil:
		return wire.Result{ID: e.ID, HTTPStatus: http.StatusOK, State: st}
	case privateline.Is(privateline.NotExist, err):
		return res
	default:
		s.log.Error("federation: reading a group's state for a state request", "group", e.Group, "err", err)
		return wire.Result{ID: e.ID, HTTPStatus: http.StatusServiceUnavailable, Error: codeUnavailable, Message: "the group's state cannot be read now"}
	}
}

// resyncAll queues a resync of every replica (at start), after removing
// the records of queued group states that older versions left.
func (s *Service) resyncAll() {
	defer s.wg.Done()
	if n, err := s.store.SweepGroupLastQueued(); err != nil {
		s.log.Warn("federation: removing stale records of queued group states", "err", err)
	} else if n > 0 {
		s.log.Info("federation: removed stale records of queued group states", "records", n)
	}
	reps, err := s.store.GroupReplicas()
	if err != nil {
		s.log.Error("federation: listing group replicas to bring up to date", "err", err)
		return
	}
	for _, r := range reps {
		s.resyncLater(r.Group)
	}
}

// peerProcess notes that server name's process is instance (the
// certificate of a link with it, transport.Conn.PeerInstance). A server
// makes a new certificate at every start; when it differs from the one
// seen before, the server has restarted — perhaps restored from a backup,
// with its groups' states gone back to older versions in a new era — so
// this server asks it again for the state of each of its groups it keeps
// a replica of (spec §12.1, "Resync"). The first one seen since this
// server started asks nothing: resyncAll did at start. Not called with
// s.mu held.
func (s *Service) peerProcess(name privateline.ServerName, instance [32]byte) {
	if name == s.cfg.Name {
		return
	}
	s.rs.mu.Lock()
	if s.rs.procs == nil {
		s.rs.procs = map[privateline.ServerName][32]byte{}
	}
	prev, seen := s.rs.procs[name]
	s.rs.procs[name] = instance
	s.rs.mu.Unlock()
	if !seen || prev == instance {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started || s.closed {
		return
	}
	s.wg.Add(1)
	go s.resyncServer(name)
}

// resyncServer queues a resync of every replica of a group of server.
func (s *Service) resyncServer(server privateline.ServerName) {
	defer s.wg.Done()
	reps, err := s.store.GroupReplicas()
	if err != nil {
		s.log.Error("federation: listing group replicas to bring up to date", "err", err)
		return
	}
	n := 0
	for _, r := range reps {
		if srv, err := wire.GroupServer(r.Group); err == nil && srv == server {
			s.resyncLater(r.Group)
			n++
		}
	}
	if n > 0 {
		s.log.Info("federation: a group's server restarted; asking it again for the state of its groups", "server", string(server), "groups", n)
	}
}

// resyncLater queues a resync of group id with its server's worker,
// starting it if needed.
func (s *Service) resyncLater(id string) {
	server, err := wire.GroupServer(id)
	if err != nil || server == s.cfg.Name {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started || s.closed {
		return
	}
	s.rs.mu.Lock()
	defer s.rs.mu.Unlock()
	if s.rs.pending == nil {
		s.rs.pending = map[privateline.ServerName]map[string]bool{}
		s.rs.workers = map[privateline.ServerName]chan struct{}{}
	}
	if s.rs.pending[server] == nil {
		s.rs.pending[server] = map[string]bool{}
	}
	s.rs.pending[server][id] = true
	if s.rs.workers[server] == nil {
		wake := make(chan struct{}, 1)
		s.rs.workers[server] = wake
		s.wg.Add(1)
		go s.resyncWorker(server, wake)
	}
}

// resyncPoke tells server's resync worker, if any, that the server is
// back: it asks again at once.
func (s *Service) resyncPoke(server privateline.ServerName) {
	s.rs.mu.Lock()
	defer s.rs.mu.Unlock()
	if w := s.rs.workers[server]; w != nil {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}

// resyncWorker asks server for the state of its groups queued by
// resyncLater, one after the other, at most one each resyncInterval and
// while one of maxResyncing slots is free, waiting a rate_limited
// refusal's retry_after, with the senders' backoff while the server cannot
// be reached; it ends when none is left.
func (s *Service) resyncWorker(server privateline.ServerName, wake chan struct{}) {
	defer s.wg.Done()
	s.rs.mu.Lock()
	if s.rs.slots == nil {
		s.rs.slots = make(chan struct{}, maxResyncing)
	}
	slots := s.rs.slots
	s.rs.mu.Unlock()
	n := 0
	var last time.Time // of the last request
	for {
		if wait := s.resyncInterval() - time.Since(last); wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-s.ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
		}
		s.rs.mu.Lock()
		var id string
		for g := range s.rs.pending[server] {
			id = g
			break
		}
		if id == "" {
			delete(s.rs.pending, server)
			delete(s.rs.workers, server)
			s.rs.mu.Unlock()
			return
		}
		s.rs.mu.Unlock()
		select {
		case slots <- struct{}{}:
		case <-s.ctx.Done():
			return
		}
		last = time.Now()
		after, err := s.syncGroup(s.ctx, id)
		<-slots
		if s.ctx.Err() != nil {
			return
		}
		if err != nil && after > 0 {
			// rate_limited: the server is busy, not gone; ask again
			// after its retry_after, without backing off further.
			s.met.resyncs.WithLabelValues("rate_limited").Inc()
			s.log.Debug("federation: the group's server asks to wait before the next state request", "server", string(server), "after", after)
			timer := time.NewTimer(after)
			select {
			case <-s.ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
			continue
		}
		if err == nil || !privateline.Is(privateline.Unavailable, err) {
			if err != nil {
				s.log.Warn("federation: bringing a group replica up to date", "group", id, "err", err)
			}
			s.rs.mu.Lock()
			delete(s.rs.pending[server], id)
			s.rs.mu.Unlock()
			n = 0
			continue
		}
		s.log.Debug("federation: the group's server cannot be asked for a replica's state now", "server", string(server), "err", err)
		d := backoff(s.base, n, s.jitter())
		n++
		timer := time.NewTimer(d)
		select {
		case <-s.ctx.Done():
			timer.Stop()
			return
		case <-wake:
			timer.Stop()
			n = 0
		case <-timer.C:
		}
	}
}

// replicaBehind brings the replicas of the groups of a verified
// group_envelopes transaction up to date where an entry shows that the
// replica is behind: no replica, its sender not a member, or its epoch
// newer than the replica's (spec §12.1, "Resync"). It returns an error
// frame when the transaction is to be refused (unavailable: its sender
// keeps it and sends it again), nil to go on with the commit.
func (s *Service) replicaBehind(tx *wire.Transaction, entries []storage.InboundEntry) []byte {
	var ask []string
	reps := map[string]*storage.Group{} // read once per transaction; nil: none
	for i, in := range entries {
		if in.Refused != "" || in.Raw == nil || in.Replica != nil || slices.Contains(ask, in.Group) {
			continue
		}
		h, err := envelope.ParseGroup(tx.Entries[i].Envelope)
		if err != nil {
			continue
		}
		g, seen := reps[in.Group]
		if !seen {
			g, err = s.store.GroupReplicaOf(in.Group)
			if err != nil && !privateline.Is(privateline.NotExist, err) {
				return s.storeFailure(tx.Origin, tx, err)
			}
			reps[in.Group] = g
		}
		if g != nil && g.MemberAt(h.From) != nil && g.Epoch >= h.Epoch {
			continue // the replica knows what this entry needs
		}
		s.rs.mu.Lock()
		at, ok := s.rs.synced[in.Group]
		s.rs.mu.Unlock()
		if ok && s.now().Sub(at) < resyncFresh {
			continue // as new as the group's server says: the commit decides
		}
		ask = append(ask, in.Group)
	}
	for i, id := range ask {
		if i == maxResyncPerTxn {
			return s.refuse(tx.Origin, codeUnavailable, "bringing group replicas up to date; send again", 0)
		}
		ctx, cancel := context.WithTimeout(s.ctx, resyncTimeout)
		err := s.syncGroupWaiting(ctx, id)
		cancel()
		if privateline.Is(privateline.Unavailable, err) {
			s.log.Warn("federation: a group message shows the replica behind, and its state cannot be had now", "group", id, "err", err)
			return s.refuse(tx.Origin, codeUnavailable, "the group's replica here is behind and its state could not be had; send again", 0)
		}
		if err != nil { // answered, but not usefully: the commit decides with the replica as it is
			s.log.Warn("federation: bringing a group replica up to date for a message", "group", id, "err", err)
		}
	}
	return nil
}
