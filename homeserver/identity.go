package homeserver

import (
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/privateline/privateline/serverkey"
)

// loadIdentity reads the server's Ed25519 identity from
// DATA_DIR/server_identity.pem, creating it on first start. It signs the
// key directory's entries and tree heads, and federation will present it
// to peers, so it must survive restarts and moves of the data directory.
func loadIdentity(cfg Config, log *slog.Logger) (*serverkey.PrivateKey, error) {
	path := filepath.Join(cfg.DataDir, serverkey.FileName)
	k, created, err := serverkey.LoadOrCreate(path)
	if err != nil {
		return nil, fmt.Errorf("server identity: %w", err)
	}
	if created {
		log.Warn("generated the server identity key; back it up with the data directory: peers and clients pin it", "file", path, "fingerprint", serverkey.Fingerprint(k.Public()))
	} else {
		log.Info("loaded the server identity key", "fingerprint", serverkey.Fingerprint(k.Public()))
	}
	return k, nil
}

// IdentityKey returns the server's Ed25519 public identity key, which signs
// its key directory.
func (s *Server) IdentityKey() ed25519.PublicKey { return s.identity.Public() }
