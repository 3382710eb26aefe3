package federation

import (
	"context"
	"fmt"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/keylog"
	"github.com/privateline/privateline/serverkey"
)

// Fork evidence about a server made before it rotated its key has heads
// signed by an earlier key. A client that trusts only the server's
// current key checks them under the earlier keys that current key names
// in the server document it signed (keylog.EarlierKeysFromDocument); the
// witness passes that document on (spec §12.6 "Forks", GET
// /api/keys/forks/document). It carries no trust of its own: the client
// checks its signature under the key it pinned.

// ForkServerDocument returns the current server document of name, a
// server this server keeps fork evidence about, as name serves it:
// fetched at most once per chainReuse per name (the fetch and its failure
// are shared with documentChain). NotExist when no evidence about name is
// kept (so clients cannot make this server fetch documents of any name);
// Unavailable when the document cannot be fetched, does not verify, or
// names a key this server's trusted key for name does not lead to.
func (s *Service) ForkServerDocument(name privateline.ServerName) ([]byte, error) {
	const op = "federation.ForkServerDocument"
	raws, err := s.store.DirectoryForks()
	if err != nil {
		return nil, privateline.E(op, err)
	}
	kept := false
	for _, raw := range raws {
		f, err := keylog.ParseForkEvidence(raw)
		if err != nil {
			return nil, privateline.E(op, privateline.Internal, err)
		}
		kept = kept || f.Server == name
	}
	if !kept {
		return nil, privateline.E(op, privateline.NotExist, fmt.Sprintf("this server keeps no fork evidence about %s", name))
	}
	d, err := s.chains.get(name, func() (*Document, error) {
		ctx, cancel := context.WithTimeout(s.ctx, chainFetchTimeout)
		defer cancel()
		return s.getDocument(ctx, name, nil)
	})
	if err != nil {
		return nil, privateline.E(op, privateline.Unavailable, fmt.Sprintf("the server document of %s could not be fetched", name), err)
	}
	known := s.configuredKey(name)
	if known == nil {
		if known, err = s.store.PeerPin(name); err != nil {
			return nil, privateline.E(op, err)
		}
	}
	if _, err := VerifyDocument(d.Raw, name, known); err != nil {
		return nil, privateline.E(op, privateline.Unavailable, fmt.Sprintf("the server document of %s names a key (%s) this server does not trust for it", name, serverkey.Fingerprint(d.Key)), err)
	}
	return d.Raw, nil
}
