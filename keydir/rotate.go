package keydir

import (
	"slices"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/keylog"
)

// After a rotation of the server's identity key (homeserver rotate-key,
// spec/federation.md §2.2), the directory signs with the new key and its
// answers carry the key-change statements, so that clients that pinned an
// earlier key follow them to the new one (spec/e2ee.md §6.4 step 2).

// SetKeyChanges makes the directory's answers (lookups, heads) carry
// changes, oldest first, which must lead to the directory's key
// (keylog.VerifyServerKeyChain). Call it once, before serving.
func (d *Directory) SetKeyChanges(changes []keylog.ServerKeyChange) error {
	if err := keylog.VerifyServerKeyChain(d.server, changes, d.pub); err != nil {
		return privateline.E("keydir.SetKeyChanges", privateline.Invalid, err.Error())
	}
	d.changes = slices.Clone(changes)
	return nil
}

// Resigner is the store's part of re-signing (*storage.DB).
type Resigner interface {
	ResignKeyLog(signer []byte, sign func(leaf []byte) []byte) (uint64, error)
}

// ResignEntries makes every entry of the log carry the directory key's
// signature, once per key (the store records which key signed them all):
// after a rotation the entries signed by the old key are signed again.
// The leaves, so the tree and its heads' roots, do not change. It returns
// how many entries were signed.
func (d *Directory) ResignEntries() (uint64, error) {
	r, ok := d.store.(Resigner)
	if !ok {
		return 0, privateline.E("keydir.ResignEntries", privateline.Internal, "the store cannot re-sign the log")
	}
	n, err := r.ResignKeyLog(d.pub, func(leaf []byte) []byte {
		return d.key.Sign(keylog.EntrySigningInput(leaf))
	})
	if err != nil {
		return n, privateline.E("keydir.ResignEntries", err)
	}
	return n, nil
}

// KeyChanges returns the statements set by SetKeyChanges.
func (d *Directory) KeyChanges() []keylog.ServerKeyChange {
	if d == nil { // a server without a directory (configuration tests)
		return nil
	}
	return slices.Clone(d.changes)
}
