package federation

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/federation/wire"
	"github.com/privateline/privateline/keybundle"
	"github.com/privateline/privateline/keylog"
	"github.com/privateline/privateline/merkle"
)

// Key look-ups across servers (spec/federation.md §12.5): the answering
// side (answerKeyRequest) and the checks of the asking side
// (verifyKeyAnswer), which are exactly a client's (spec/e2ee.md §6.4) with
// the peer's authenticated key as the directory key.

// KeyDirectory is what answering key requests needs (*keydir.Directory).
type KeyDirectory interface {
	// Lookups answers the names against one tree head; nil for unknown.
	Lookups(names []privateline.Username) ([]*keylog.Lookup, error)
	Consistency(from, to uint64) (*keylog.Consistency, error)
}

// Entry error codes of a key_answer.
const (
	keyUnknownUser = "unknown_user"
	keyBadSince    = "bad_since"
)

// answerKeyRequest returns the results of the key_answer to tx, a verified
// key_request addressed to me: one lookup per entry, all against one head.
func answerKeyRequest(tx *wire.Transaction, dir KeyDirectory, me privateline.ServerName) ([]wire.Result, error) {
	names := make([]privateline.Username, len(tx.Entries))
	for i, e := range tx.Entries {
		if name, server, err := e.Address.Split(); err == nil && server == me {
			names[i] = name
		}
	}
	ls, err := dir.Lookups(names)
	if err != nil {
		return nil, err
	}
	out := make([]wire.Result, len(tx.Entries))
	for i, e := range tx.Entries {
		out[i].ID = e.ID
		l := ls[i]
		if names[i] == "" || l == nil {
			out[i].Error = keyUnknownUser
			continue
		}
		if e.Since > l.Head.TreeSize {
			out[i].Error = keyBadSince
			continue
		}
		if out[i].Lookup, err = l.MarshalJSON(); err != nil {
			return nil, err
		}
		if e.Since > 0 {
			c, err := dir.Consistency(e.Since, l.Head.TreeSize)
			if err != nil {
				return nil, err
			}
			out[i].Consistency = make([][]byte, len(c.Proof))
			for j, h := range c.Proof {
				out[i].Consistency[j] = append([]byte(nil), h[:]...)
			}
		}
	}
	return out, nil
}

// keyAnswer is one verified result of a key answer.
type keyAnswer struct {
	Lookup *keylog.Lookup // nil: the user does not exist
}

// verifyKeyAnswer checks the answer ans (already verified by wire as the
// answer to req, from peer) as a client checks a lookup: every lookup is
// for its entry's address, under the peer's authenticated key, against
// one head, and that head extends last, the head this server verified
// for the peer before (nil: none), by the proof of an entry that asked
// from last's size. It returns the results in the entries' order and the
// head to keep.
func verifyKeyAnswer(peer wire.Peer, req *wire.Transaction, ans *wire.Receipt, last *keylog.TreeHead) ([]keyAnswer, *keylog.TreeHead, error) {
	const op = "federation.verifyKeyAnswer"
	out := make([]keyAnswer, len(req.Entries))
	var head *keylog.TreeHead
	var fromLast *keylog.Lookup // the lookup that proves head extends last
	for i, e := range req.Entries {
		r := ans.Results[i]
		if r.Error != "" {
			if r.Error != keyUnknownUser {
				return nil, nil, keybundle.Refuse(op, keybundle.ErrMalformed, fmt.Sprintf("%s answered %q for %s", peer.Name, r.Error, e.Address))
			}
			continue
		}
		if (e.Since > 0) != (r.Consistency != nil) {
			return nil, nil, keybundle.Refuse(op, keybundle.ErrMalformed, "a consistency proof was not asked for, or is missing")
		}
		l, err := keylog.ParseLookup(r.Lookup, 0)
		if err != nil {
			return nil, nil, err
		}
		if !ed25519.PublicKey(l.ServerKey).Equal(peer.Key) {
			return nil, nil, keybundle.Refuse(op, keybundle.ErrBadProof, fmt.Sprintf("%s's directory key is not its federation key", peer.Name))
		}
		if err := l.Verify(peer.Key, peer.Name, e.Address); err != nil {
			return nil, nil, err
		}
		if head == nil {
			head = &l.Head
		} else if !sameHead(head, &l.Head) {
			return nil, nil, keybundle.Refuse(op, keybundle.ErrBadProof, "the lookups of one answer are against different tree heads")
		}
		if e.Since > 0 {
			l.Since = e.Since
			l.Consistency = make([]merkle.Hash, len(r.Consistency))
			for j, h := range r.Consistency {
				copy(l.Consistency[j][:], h)
			}
			if last != nil && e.Since == last.TreeSize {
				fromLast = l
			}
		}
		out[i].Lookup = l
	}
	if head == nil || last == nil || last.TreeSize == 0 {
		return out, head, nil
	}
	switch {
	case head.TreeSize < last.TreeSize:
		return nil, nil, keybundle.Refuse(op, keybundle.ErrLogRollback, fmt.Sprintf("%s shows a smaller log (%d) than before (%d)", peer.Name, head.TreeSize, last.TreeSize))
	case head.TreeSize == last.TreeSize:
		if head.RootHash != last.RootHash {
			return nil, nil, keybundle.Refuse(op, keybundle.ErrLogFork, fmt.Sprintf("%s shows another log of the same size", peer.Name))
		}
		if head.Timestamp < last.Timestamp {
			head = last // keep the fresher signature of the same tree
		}
	default:
		if fromLast == nil {
			return nil, nil, keybundle.Refuse(op, keybundle.ErrMalformed, "no consistency proof from the last head verified")
		}
		if err := merkle.VerifyConsistency(last.TreeSize, head.TreeSize, last.RootHash, head.RootHash, fromLast.Consistency); err != nil {
			return nil, nil, keybundle.Refuse(op, keybundle.ErrLogFork, fmt.Sprintf("%s's log does not extend the one it showed before", peer.Name))
		}
	}
	return out, head, nil
}

func sameHead(a, b *keylog.TreeHead) bool {
	return a.Server == b.Server && a.TreeSize == b.TreeSize && a.RootHash == b.RootHash && a.Timestamp == b.Timestamp
}

// LookupRemote looks address, a user of another server, up in that
// server's key directory over federation (spec/federation.md §12.5) and
// returns the verified answer, with the consistency proof from since
// (the client's last verified size, 0: none) so the client can check it
// itself. The last verified answer is kept: while the server cannot be
// reached it is answered again if the client's since allows (its own
// head, or none), so users can keep writing to that server's users (the
// outbox delivers later). An unknown user is NotExist; a server that
// cannot be reached, or whose answer does not verify, is Unavailable.
func (s *Service) LookupRemote(ctx context.Context, address privateline.Address, since uint64) (*keylog.Lookup, error) {
	const op = "federation.LookupRemote"
	_, server, err := address.Split()
	if err != nil {
		return nil, privateline.E(op, err)
	}
	if server == s.cfg.Name {
		return nil, privateline.E(op, privateline.Invalid, "a user of this server")
	}
	l, err := s.lookupGraced(ctx, address, server, since) // keygrace.go
	switch {
	case err == nil:
		if err := s.keep(address, l); err != nil {
			return nil, privateline.E(op, err)
		}
		return l, nil
	case privateline.Is(privateline.NotExist, err):
		if err := s.store.DeleteRemoteLookup(address); err != nil {
			return nil, privateline.E(op, err)
		}
		return nil, err
	case errors.Is(err, errUnreachable):
		raw, cerr := s.store.RemoteLookup(address)
		if cerr != nil || raw == nil {
			return nil, err
		}
		kept, cerr := keylog.ParseLookup(raw, 0)
		if cerr != nil || since != 0 && since != kept.Head.TreeSize {
			return nil, err
		}
		if s.superseded(server, kept) { // rotate.go
			s.log.Info("federation: not answering a key look-up from the last verified answer: the server's key changed since", "peer", string(server), "err", err)
			return nil, privateline.E(op, privateline.Unavailable, fmt.Sprintf("%s cannot be reached, and the last answer this server kept for %s was signed with a key %s has since replaced (a key rotation): try again once %s is back", server, address, server, server), fmt.Errorf("%w: %w", ErrSupersededAnswer, err))
		}
		if since != 0 {
			kept.Since, kept.Consistency = since, []merkle.Hash{}
		}
		s.log.Info("federation: answering a key look-up from the last verified answer", "peer", string(server), "err", err)
		return kept, nil
	}
	return nil, err
}

// keep stores l, verified, as the last answer for address, and tells the
// local contacts of address when its bundle is not the one kept before.
func (s *Service) keep(address privateline.Address, l *keylog.Lookup) error {
	prev, err := s.store.RemoteLookup(address)
	if err != nil {
		return err
	}
	kept := *l
	kept.Since, kept.Consistency = 0, nil
	raw, err := kept.MarshalJSON()
	if err != nil {
		return err
	}
	if err := s.store.SetRemoteLookup(address, raw); err != nil {
		return err
	}
	if prev == nil {
		return nil
	}
	if old, err := keylog.ParseLookup(prev, 0); err == nil && old.Bundle.Equal(l.Bundle) {
		return nil
	}
	n, err := s.store.RemoteKeyChanged(address)
	if err != nil {
		return err
	}
	s.log.Info("federation: a remote user's keys changed; their contacts here are told", "address", string(address), "contacts", n)
	return nil
}

// errUnreachable marks look-ups that failed because the peer could not be
// reached or refused to answer (not because its answer was wrong).
var errUnreachable = errors.New("federation: the server cannot be reached")

// lookupRemote asks server for address; see LookupRemote.
func (s *Service) lookupRemote(ctx context.Context, address privateline.Address, server privateline.ServerName, since uint64) (*keylog.Lookup, error) {
	const op = "federation.LookupRemote"
	s.mu.Lock()
	if !s.started || s.closed {
		s.mu.Unlock()
		return nil, privateline.E(op, privateline.Unavailable, "federation is not running")
	}
	sd := s.senderLocked(server)
	s.mu.Unlock()

	var last *keylog.TreeHead
	if raw, err := s.store.PeerDirectoryHead(server); err != nil {
		return nil, privateline.E(op, err)
	} else if raw != nil {
		if last, err = keylog.ParseTreeHead(raw); err != nil {
			return nil, privateline.E(op, privateline.Internal, err)
		}
	}
	own := wire.Entry{ID: wire.NewTxnID(), Address: address}
	if last != nil {
		own.Since = last.TreeSize
	}
	req := &wire.Transaction{Type: wire.TypeKeyRequest, Entries: []wire.Entry{own},
		Header: wire.Header{Origin: s.cfg.Name, Destination: server, TxnID: wire.NewTxnID(), CreatedAt: s.now().UnixMilli()}}
	client := 0 // the entry whose proof the client gets
	if since > 0 && since != own.Since {
		req.Entries = append(req.Entries, wire.Entry{ID: wire.NewTxnID(), Address: address, Since: since})
		client = 1
	}
	raw, err := wire.Sign(req, s.cfg.Key)
	if err != nil {
		return nil, privateline.E(op, privateline.Internal, err)
	}
	if sd.down() {
		return nil, privateline.E(op, privateline.Unavailable, fmt.Sprintf("%s could not be reached moments ago", server), errUnreachable)
	}
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	conn, err := sd.link(ctx)
	if errors.Is(err, ErrUnknownServer) && !s.knownServer(server) {
		return nil, privateline.E(op, privateline.NotExist, fmt.Sprintf("there is no server %s", server), err)
	}
	if err != nil {
		return nil, privateline.E(op, privateline.Unavailable, fmt.Sprintf("%s cannot be reached", server), fmt.Errorf("%w: %w", errUnreachable, err))
	}
	resp, err := exchange(ctx, conn, raw)
	if err != nil {
		sd.dropLink()
		return nil, privateline.E(op, privateline.Unavailable, fmt.Sprintf("%s did not answer", server), fmt.Errorf("%w: %w", errUnreachable, err))
	}
	if ef, ok := parseErrorFrame(resp); ok {
		return nil, privateline.E(op, privateline.Unavailable, fmt.Sprintf("%s refused the key look-up (%s)", server, ef.code), errUnreachable)
	}
	peer := wire.Peer{Name: server, Key: conn.PeerKey()}
	ans, err := wire.VerifyReceipt(resp, peer, s.cfg.Name, s.now(), wire.DefaultLimits(), req)
	if err == nil {
		var out []keyAnswer
		var head *keylog.TreeHead
		if out, head, err = verifyKeyAnswer(peer, req, ans, last); err == nil {
			if head != nil && head != last {
				if err := s.advancePeerHead(server, head); err != nil {
					return nil, privateline.E(op, err)
				}
			}
			l := out[client].Lookup
			if l == nil {
				return nil, privateline.E(op, privateline.NotExist, "no such user: "+string(address))
			}
			if since == 0 {
				l.Since, l.Consistency = 0, nil
			}
			return l, nil
		}
	}
	if keybundle.ReasonOf(err) == keybundle.ErrLogFork && ans != nil {
		s.keepKeyAnswerFork(peer, req, ans, last) // spec §12.6: a fork seen in a look-up is evidence too
	}
	s.log.Warn("federation: a key answer does not verify", "peer", string(server), "address", string(address), "err", err)
	return nil, privateline.E(op, privateline.Unavailable, fmt.Sprintf("the key directory of %s answered with something that does not verify", server), err)
}
