package wire

import (
	"fmt"

	"github.com/privateline/privateline"
)

// TxnReused is the refusal of Dedupe for a txn id that an origin used
// before for other entries (spec/federation.md §10).
const TxnReused Reason = "txn_id_reused"

// Replay is the receiver's record of what it committed, kept by the caller
// in the same synced batch as the entries (spec/federation.md §13): the
// results of each (origin, txn id) and each (origin, envelope id), for at
// least the retention time.
type Replay interface {
	// Seen returns the results committed for origin's transaction txnID,
	// and false if there are none.
	Seen(origin privateline.ServerName, txnID string) ([]Result, bool, error)
	// SeenEnvelopes reports, for each of origin's envelope ids, whether
	// it was committed.
	SeenEnvelopes(origin privateline.ServerName, ids []string) ([]bool, error)
}

// Dedupe runs the replay checks on a verified transaction. If its
// (origin, txn id) was committed before, it returns those results (the
// receiver answers with them again, re-signed, and commits nothing) — or a
// txn_id_reused refusal if they name other entries. Otherwise prior is nil
// and dup[i] reports that entry i's envelope was committed before (its
// result is Duplicate, and it is not stored again).
func Dedupe(tx *Transaction, r Replay) (prior []Result, dup []bool, err error) {
	prior, ok, err := r.Seen(tx.Origin, tx.TxnID)
	if err != nil {
		return nil, nil, err
	}
	if ok {
		ids := len(prior) == len(tx.Entries)
		for i := 0; ids && i < len(prior); i++ {
			ids = prior[i].ID == tx.Entries[i].ID
		}
		if !ids {
			return nil, nil, refuse(TxnReused, "txn %s was committed with other entries", tx.TxnID)
		}
		return prior, nil, nil
	}
	ids := make([]string, len(tx.Entries))
	for i, e := range tx.Entries {
		ids[i] = e.ID
	}
	if dup, err = r.SeenEnvelopes(tx.Origin, ids); err != nil {
		return nil, nil, err
	}
	if len(dup) != len(ids) {
		return nil, nil, fmt.Errorf("federation: replay answered %d of %d envelope ids", len(dup), len(ids))
	}
	return nil, dup, nil
}
