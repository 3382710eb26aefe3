package homeserver

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/privateline/privateline/keylog"
	"github.com/privateline/privateline/serverkey"
)

// loadIdentity reads the server's Ed25519 identity from
// DATA_DIR/server_identity.pem, creating it on first start, and the
// key-change statements of its earlier keys from
// DATA_DIR/server_key_changes.json (none before the first rotate-key). It
// finishes a rotation that a crash interrupted (rotate.go) and refuses to
// start when the statements do not lead to the key. The key signs the key
// directory's entries and tree heads, and federation presents it to peers,
// so it must survive restarts and moves of the data directory.
func loadIdentity(cfg Config, log *slog.Logger) (*serverkey.PrivateKey, []keylog.ServerKeyChange, error) {
	if err := finishRotation(cfg.DataDir, log); err != nil {
		return nil, nil, fmt.Errorf("server identity: %w", err)
	}
	path := filepath.Join(cfg.DataDir, serverkey.FileName)
	changes, err := readKeyChanges(cfg.DataDir)
	if err != nil {
		return nil, nil, fmt.Errorf("server identity: %w", err)
	}
	var k *serverkey.PrivateKey
	created := false
	if len(changes) > 0 {
		// A rotated key is never made afresh: a missing file is an error.
		k, err = serverkey.Load(path)
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("server identity: %s is missing, but %s names the key it must hold (%s); restore the key file from a backup", path, keyChangesFile, serverkey.Fingerprint(changes[len(changes)-1].NewKey))
		}
	} else {
		k, created, err = serverkey.LoadOrCreate(path)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("server identity: %w", err)
	}
	if err := keylog.VerifyServerKeyChain(cfg.ServerName, changes, k.Public()); err != nil {
		return nil, nil, fmt.Errorf("server identity: the key-change statements in %s do not verify for %s and the key in %s (%s): %v; restore the key and statements from the same backup",
			filepath.Join(cfg.DataDir, keyChangesFile), cfg.ServerName, path, serverkey.Fingerprint(k.Public()), err)
	}
	switch {
	case created:
		log.Warn("generated the server identity key; back it up with the data directory: peers and clients pin it", "file", path, "fingerprint", serverkey.Fingerprint(k.Public()))
	case len(changes) > 0:
		log.Info("loaded the server identity key", "fingerprint", serverkey.Fingerprint(k.Public()),
			"key_changes", len(changes), "previous", serverkey.Fingerprint(changes[len(changes)-1].OldKey))
	default:
		log.Info("loaded the server identity key", "fingerprint", serverkey.Fingerprint(k.Public()))
	}
	return k, changes, nil
}

// IdentityKey returns the server's Ed25519 public identity key, which signs
// its key directory.
func (s *Server) IdentityKey() ed25519.PublicKey { return s.identity.Public() }
