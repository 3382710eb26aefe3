package federation

import (
	"context"
	"fmt"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/keylog"
)

// Key look-ups of a peer this server has no link to (spec §12.5). A
// client looks its recipients up before every send, so a peer that went
// down would hold each first send after it for a whole handshake timeout
// (10 s) before the look-up fell back to the last verified answer, while
// the envelope itself only needs the durable outbox. So when a verified
// answer is kept that the client may be given again (LookupRemote's
// fallback rule), a look-up with no link up waits at most lookupGrace
// for the peer: a peer that is up answers within it (a handshake and one
// exchange) and the answer is fresh; otherwise the kept answer is given
// — verified once as always, and verified again by the client — and the
// look-up goes on in the background, keeping its answer (key_changed
// included) for the next one. While one such look-up of a server is in
// progress, others of that server answer from what is kept at once.

// lookupGrace is how long a look-up with a kept answer waits for a peer
// it has no link to.
const lookupGrace = time.Second

// lookupFlights are the servers with a look-up in progress in the
// background (guarded by Service.mu).
type lookupFlights map[privateline.ServerName]bool

// lookupGraced runs lookupRemote, or, when nothing is linked to server
// and a kept answer may be given (kept), runs it in the background and
// waits at most s.lookupGrace: then it reports server unreachable, so
// LookupRemote answers from what it keeps, and the background look-up
// settles its own answer (settle) when it comes.
func (s *Service) lookupGraced(ctx context.Context, address privateline.Address, server privateline.ServerName, since uint64) (*keylog.Lookup, error) {
	const op = "federation.LookupRemote"
	if s.lookupGrace <= 0 || !s.keptUsable(address, since) {
		return s.lookupRemote(ctx, address, server, since)
	}
	s.mu.Lock()
	sd := s.senders[server]
	if s.closed || !s.started || sd != nil && sd.linked() {
		s.mu.Unlock()
		return s.lookupRemote(ctx, address, server, since)
	}
	if s.flights[server] {
		s.mu.Unlock()
		return nil, privateline.E(op, privateline.Unavailable, fmt.Sprintf("%s is being dialled", server), errUnreachable)
	}
	s.flights[server] = true
	s.wg.Add(1)
	s.mu.Unlock()

	type result struct {
		l   *keylog.Lookup
		err error
	}
	ch := make(chan result)
	abandoned := make(chan struct{})
	defer close(abandoned)
	go func() {
		defer s.wg.Done()
		l, err := s.lookupRemote(s.ctx, address, server, since)
		s.mu.Lock()
		delete(s.flights, server)
		s.mu.Unlock()
		select {
		case ch <- result{l, err}:
		case <-abandoned:
			s.settle(address, l, err)
		}
	}()
	t := time.NewTimer(s.lookupGrace)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.l, r.err
	case <-t.C:
		return nil, privateline.E(op, privateline.Unavailable, fmt.Sprintf("%s has not answered within %v", server, s.lookupGrace), errUnreachable)
	case <-ctx.Done():
		return nil, privateline.E(op, privateline.Unavailable, ctx.Err())
	}
}

// keptUsable reports whether LookupRemote could answer address from its
// kept answer for a client that sent since.
func (s *Service) keptUsable(address privateline.Address, since uint64) bool {
	raw, err := s.store.RemoteLookup(address)
	if err != nil || raw == nil {
		return false
	}
	kept, err := keylog.ParseLookup(raw, 0)
	if err != nil || since != 0 && since != kept.Head.TreeSize {
		return false
	}
	_, server, err := address.Split()
	return err == nil && !s.superseded(server, kept)
}

// settle keeps the outcome of a background look-up nobody waits for any
// more, as LookupRemote does with one it answers.
func (s *Service) settle(address privateline.Address, l *keylog.Lookup, err error) {
	switch {
	case err == nil:
		err = s.keep(address, l)
	case privateline.Is(privateline.NotExist, err):
		err = s.store.DeleteRemoteLookup(address)
	default:
		return // unreachable, or did not verify: nothing to keep
	}
	if err != nil {
		s.log.Warn("federation: keeping a key look-up's answer", "address", string(address), "err", err)
	}
}

// linked reports whether sd has a link up.
func (sd *sender) linked() bool {
	sd.mu.Lock()
	c := sd.conn
	sd.mu.Unlock()
	if c == nil {
		return false
	}
	select {
	case <-c.Done():
		return false
	default:
		return true
	}
}
