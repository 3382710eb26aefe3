package federation

import (
	"fmt"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/cjson"
	"github.com/privateline/privateline/federation/transport"
	"github.com/privateline/privateline/keylog"
)

// A rotated identity key (homeserver rotate-key, spec §2.2): the
// certificate and the server document present the key-change statements,
// and the heads kept with the witnesses' co-signatures are signed again
// with the new key.

// newIdentity makes the certificate for cfg's key, carrying the last
// transport.MaxKeyChanges statements of cfg.KeyChanges.
func newIdentity(cfg Config) (*transport.Identity, error) {
	if err := keylog.VerifyServerKeyChain(cfg.Name, cfg.KeyChanges, cfg.Key.Public()); err != nil {
		return nil, fmt.Errorf("the key-change statements: %w", err)
	}
	changes := cfg.KeyChanges
	if n := len(changes); n > transport.MaxKeyChanges {
		changes = changes[n-transport.MaxKeyChanges:]
	}
	return transport.NewIdentity(cfg.Name, cfg.Key, changes...)
}

// keyChangesJSON is the server document's "key_changes" (spec §2.1).
func keyChangesJSON(cs []transport.KeyChange) []any {
	out := make([]any, len(cs))
	for i, c := range cs {
		v, err := cjson.Parse(c.Marshal())
		if err != nil {
			panic(err) // Marshal writes canonical JSON
		}
		out[i] = v
	}
	return out
}

// resignCosignedHeads signs again, with the current key, the heads kept
// with the witnesses' co-signatures that an earlier key signed. A
// co-signature covers the tree (size and root), not the head's signature
// (spec §12.6), so it stays valid, and clients, which check the head
// under the directory key they pinned (now the new one), keep counting it.
func (s *Service) resignCosignedHeads() error {
	raws, err := s.store.Cosignatures()
	if err != nil {
		return privateline.E("federation.resignCosignedHeads", err)
	}
	pub := s.cfg.Key.Public()
	for _, raw := range raws {
		c, err := keylog.ParseCosignature(raw)
		if err != nil {
			return privateline.E("federation.resignCosignedHeads", privateline.Internal, err)
		}
		if c.Head.Server != s.cfg.Name || c.Head.Verify(pub) == nil {
			continue
		}
		c.Head.Signature = s.cfg.Key.Sign(c.Head.SigningInput())
		b, err := c.MarshalJSON()
		if err != nil {
			return privateline.E("federation.resignCosignedHeads", privateline.Internal, err)
		}
		if err := s.store.SetCosignature(c.Witness, b); err != nil {
			return privateline.E("federation.resignCosignedHeads", err)
		}
	}
	return nil
}
