package federation

import (
	"crypto/ed25519"
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
