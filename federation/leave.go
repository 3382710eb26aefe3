package federation

import (
	"encoding/json"
	"fmt"

	"github.com/privateline/privateline/federation/wire"
	"github.com/privateline/privateline/storage"
)

// group_leaves (spec/federation.md §12.1): a member's server, deleting the
// member's account, tells the group's server durably (its outbox) that
// the member is gone; the group's server removes them as if they had
// left. The entries are not replay-recorded: a leave applied again finds
// the member gone and changes nothing, so a repeated transaction is
// answered afresh, with the same results.

// answerGroupLeaves checks and applies a verified group_leaves
// transaction and answers its receipt: per entry, `member` not a user of
// origin → wrong_origin; `group` not a group of this server →
// not_for_destination; otherwise the store removes the member if it is
// one, at join order `joined` (storage.RemoveDeletedMember), and the
// entry is accepted either way. A store failure refuses the whole
// transaction (unavailable: retry).
func (s *Service) answerGroupLeaves(tx *wire.Transaction) []byte {
	results := make([]wire.Result, len(tx.Entries))
	for i, e := range tx.Entries {
		results[i] = wire.Result{ID: e.ID, Status: wire.Accepted}
		srv, _ := wire.GroupServer(e.Group) // checked by Verify
		_, msrv, _ := e.Member.Split()
		switch {
		case msrv != tx.Origin:
			results[i].Status, results[i].Error = wire.Refused, entryWrongOrigin
		case srv != s.cfg.Name:
			results[i].Status, results[i].Error = wire.Refused, entryNotForDestination
		default:
			if err := s.store.RemoveDeletedMember(e.Group, e.Member, uint64(e.Joined)); err != nil {
				return s.storeFailure(tx.Origin, tx, err)
			}
		}
		s.met.entries.WithLabelValues(string(results[i].Status)).Inc()
	}
	s.met.transactions.WithLabelValues("committed").Inc()
	rc := &wire.Receipt{
		Header:  wire.Header{Origin: s.cfg.Name, Destination: tx.Origin, TxnID: tx.TxnID, CreatedAt: s.now().UnixMilli()},
		Results: results,
	}
	out, err := wire.Sign(rc, s.cfg.Key)
	if err != nil {
		s.log.Error("federation: signing a receipt", "origin", string(tx.Origin), "txn", tx.TxnID, "err", err)
		return s.refuse(tx.Origin, codeInternal, "the receiver could not sign its receipt", 0)
	}
	return out
}

// leaveOutboxEntry is the wire entry of a group_leaves outbox item.
func leaveOutboxEntry(it storage.OutboxItem) (wire.Entry, error) {
	var p storage.GroupLeavePayload
	if err := json.Unmarshal(it.Payload, &p); err != nil {
		return wire.Entry{}, fmt.Errorf("outbox group leave %s: %w", it.ID, err)
	}
	return wire.Entry{ID: it.ID, Group: p.Group, Member: p.Member, Joined: int64(p.Joined)}, nil
}
