package homeserver

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/federation"
	"github.com/privateline/privateline/keylog"
	"github.com/privateline/privateline/serverkey"
	"github.com/privateline/privateline/storage"
)

// Rotating the server's identity key (homeserver rotate-key; docs/
// federation.md "Rotating a key"). The files in DATA_DIR:
//
//	server_identity.pem                the current key
//	server_key_changes.json            the key-change statements, oldest first (spec/federation.md §2.2)
//	server_identity.next.pem           the new key while a rotation is under way
//	server_identity.retired-<fp>.pem   each replaced key, kept (mode 0600)
//
// A rotation makes the new key durable (next) before the statement that
// names it, and keeps the old key (retired) before the current file is
// replaced, each step a synced write, rename or link; a crash at any point
// leaves either the old state (next is then dropped) or a state that the
// next start, or rotate-key, finishes (finishRotation). The new key is
// never lost once the statement names it, and the old one never lost.

const (
	keyChangesFile = "server_key_changes.json"
	nextKeyFile    = "server_identity.next.pem"
)

func retiredKeyFile(pub []byte) string {
	return "server_identity.retired-" + serverkey.Fingerprint(pub) + ".pem"
}

// readKeyChanges reads DATA_DIR/server_key_changes.json; none is no file.
func readKeyChanges(dataDir string) ([]keylog.ServerKeyChange, error) {
	path := filepath.Join(dataDir, keyChangesFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	cs, err := keylog.ParseServerKeyChanges(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cs, nil
}

// finishRotation completes a rotation a crash interrupted: when the new
// key (next) is what the last statement leads to and the current key is
// where it starts, the current key is kept aside and next takes its
// place. A next that no statement names is from a rotation that never got
// that far: it is removed (the old key is still the server's).
func finishRotation(dataDir string, log *slog.Logger) error {
	nextPath := filepath.Join(dataDir, nextKeyFile)
	next, err := serverkey.Load(nextPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	changes, err := readKeyChanges(dataDir)
	if err != nil {
		return err
	}
	curPath := filepath.Join(dataDir, serverkey.FileName)
	cur, err := serverkey.Load(curPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	n := len(changes)
	if n == 0 || !changes[n-1].NewKey.Equal(next.Public()) {
		if cur == nil {
			return fmt.Errorf("%s is missing and no key-change statement names the key in %s; restore the key file from a backup", curPath, nextPath)
		}
		log.Warn("removing the new key of a key rotation that was interrupted before its statement was written; the server keeps its key",
			"file", nextPath, "fingerprint", serverkey.Fingerprint(cur.Public()))
		if err := os.Remove(nextPath); err != nil {
			return err
		}
		return serverkey.SyncDir(dataDir)
	}
	if cur != nil {
		if !changes[n-1].OldKey.Equal(cur.Public()) {
			return fmt.Errorf("%s (%s) is neither the key the last key-change statement replaces nor the one it names; restore the key file from a backup", curPath, serverkey.Fingerprint(cur.Public()))
		}
		if err := keepRetired(dataDir, curPath, cur); err != nil {
			return err
		}
	}
	if err := os.Rename(nextPath, curPath); err != nil {
		return err
	}
	if err := serverkey.SyncDir(dataDir); err != nil {
		return err
	}
	log.Warn("finished a key rotation that was interrupted", "fingerprint", serverkey.Fingerprint(next.Public()))
	return nil
}

// keepRetired links the key file at curPath (holding cur) to its retired
// name, unless a file with the same key is there already.
func keepRetired(dataDir, curPath string, cur *serverkey.PrivateKey) error {
	path := filepath.Join(dataDir, retiredKeyFile(cur.Public()))
	err := os.Link(curPath, path)
	if errors.Is(err, os.ErrExist) {
		k, lerr := serverkey.Load(path)
		if lerr != nil || !bytes.Equal(k.Public(), cur.Public()) {
			return fmt.Errorf("%s exists and does not hold the key being retired", path)
		}
		return nil
	}
	if err != nil {
		return err
	}
	return serverkey.SyncDir(dataDir)
}

// rotateStep, if not nil, is called after each durable step of a rotation
// (tests: a non-nil error stops the rotation there, as a crash would).
var rotateStep func(step string) error

func step(name string) error {
	if rotateStep != nil {
		return rotateStep(name)
	}
	return nil
}

// rotation is what rotateKeyFiles did.
type rotation struct {
	Old, New []byte // public keys
	Dropped  int    // oldest statements dropped to keep keylog.MaxServerKeyChanges
	Changes  int    // statements kept
}

// rotateKeyFiles replaces the identity key in dataDir by a new one, for
// server; see the file comment for the order. The caller holds the store's
// lock.
func rotateKeyFiles(dataDir string, server privateline.ServerName, log *slog.Logger) (*rotation, error) {
	if err := finishRotation(dataDir, log); err != nil {
		return nil, err
	}
	curPath := filepath.Join(dataDir, serverkey.FileName)
	cur, err := serverkey.Load(curPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("there is no server identity key in %s (%s): nothing to rotate; check DATA_DIR (a server started there creates one)", dataDir, serverkey.FileName)
	}
	if err != nil {
		return nil, err
	}
	changes, err := readKeyChanges(dataDir)
	if err != nil {
		return nil, err
	}
	if err := keylog.VerifyServerKeyChain(server, changes, cur.Public()); err != nil {
		return nil, fmt.Errorf("the key-change statements in %s do not verify for %s and the current key: %v; not rotating", filepath.Join(dataDir, keyChangesFile), server, err)
	}
	next, err := serverkey.Generate()
	if err != nil {
		return nil, err
	}
	st, err := keylog.NewServerKeyChange(server, cur, next.Public())
	if err != nil {
		return nil, err
	}
	changes = append(changes, st)
	r := &rotation{Old: cur.Public(), New: next.Public()}
	if n := len(changes); n > keylog.MaxServerKeyChanges {
		r.Dropped = n - keylog.MaxServerKeyChanges
		changes = changes[r.Dropped:]
	}
	r.Changes = len(changes)
	// 1. The new key, durable, before anything names it.
	if err := serverkey.Save(filepath.Join(dataDir, nextKeyFile), next); err != nil {
		return nil, err
	}
	if err := step("next"); err != nil {
		return nil, err
	}
	// 2. The statements naming it.
	if err := serverkey.WriteFileAtomic(filepath.Join(dataDir, keyChangesFile), keylog.MarshalServerKeyChanges(changes)); err != nil {
		return nil, err
	}
	if err := step("changes"); err != nil {
		return nil, err
	}
	// 3. The old key, kept aside.
	if err := keepRetired(dataDir, curPath, cur); err != nil {
		return nil, err
	}
	if err := step("retired"); err != nil {
		return nil, err
	}
	// 4. The new key in place.
	if err := os.Rename(filepath.Join(dataDir, nextKeyFile), curPath); err != nil {
		return nil, err
	}
	if err := serverkey.SyncDir(dataDir); err != nil {
		return nil, err
	}
	return r, nil
}

// rotateKey is the rotate-key command: with the server stopped, it
// replaces the identity key in DATA_DIR and says what happens next.
func rotateKey(cfg Config, stdout, stderr io.Writer) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "homeserver rotate-key: "+format+"\n", args...)
		return 1
	}
	if fi, err := os.Stat(cfg.DataDir); err != nil || !fi.IsDir() {
		return fail("the data directory %s does not exist (DATA_DIR)", cfg.DataDir)
	}
	storeDir := filepath.Join(cfg.DataDir, "store")
	if _, err := os.Stat(filepath.Join(cfg.DataDir, serverkey.FileName)); errors.Is(err, os.ErrNotExist) {
		return fail("there is no server identity key in %s (%s): nothing to rotate; check DATA_DIR (a server started there creates one)", cfg.DataDir, serverkey.FileName)
	}
	if err := os.MkdirAll(storeDir, 0o700); err != nil {
		return fail("%v", err)
	}
	lock, err := storage.LockDir(storeDir)
	if err != nil {
		return fail("the store in %s is locked: the server seems to be running; stop it first (%v)", storeDir, err)
	}
	defer lock.Close()
	log := slog.New(slog.NewTextHandler(stderr, nil))
	r, err := rotateKeyFiles(cfg.DataDir, cfg.ServerName, log)
	if err != nil {
		return fail("%v", err)
	}
	fmt.Fprintf(stdout, "Rotated the identity key of %s.\n", cfg.ServerName)
	fmt.Fprintf(stdout, "  old key: %s (fingerprint %s), kept in %s\n", std64(r.Old), serverkey.Fingerprint(r.Old), filepath.Join(cfg.DataDir, retiredKeyFile(r.Old)))
	fmt.Fprintf(stdout, "  new key: %s (fingerprint %s), in %s\n", std64(r.New), serverkey.Fingerprint(r.New), filepath.Join(cfg.DataDir, serverkey.FileName))
	fmt.Fprintf(stdout, "  key-change statements: %d, in %s\n", r.Changes, filepath.Join(cfg.DataDir, keyChangesFile))
	if r.Changes > federation.CertKeyChanges {
		fmt.Fprintf(stdout, "  the certificate carries the newest %d statements: peers that pin an older key fetch the others from %s%s, which must reach this server.\n", federation.CertKeyChanges, cfg.ServerName, federation.DocumentPath)
	}
	if r.Dropped > 0 {
		fmt.Fprintf(stdout, "  dropped the %d oldest statement(s) (at most %d are kept): peers and clients that still pin a key older than the kept chain must be given the new key by hand.\n", r.Dropped, keylog.MaxServerKeyChanges)
	}
	fmt.Fprintf(stdout, `Next:
  1. Start the server. It presents the statement in its federation certificate and
     server document, and its key directory answers carry it: peers that pinned the
     old key, and clients that pinned it, follow it to the new key by themselves.
  2. Peers that configured the old key in FEDERATION_PEERS (name=host:port,KEY) refuse
     the new one until their operators replace it with the new key above.
  3. Back up the data directory (the new key and %s).
  4. If the old key was compromised, a statement signed by it proves nothing: tell
     every peer operator the new key out of band (FEDERATION_PEERS) and ask your users
     to verify their contacts again (docs/federation.md "Rotating a key").
`, keyChangesFile)
	return 0
}

// adoptKeyChanges makes the key directory sign with the current key and
// carry the statements: its entries signed by an earlier key are signed
// again (once; the log's leaves and hashes do not change) and its answers
// carry the chain for clients that pinned an earlier key.
func (s *Server) adoptKeyChanges() error {
	if err := s.dir.SetKeyChanges(s.keyChanges); err != nil {
		return err
	}
	n, err := s.dir.ResignEntries()
	if err != nil {
		return fmt.Errorf("signing the key directory with the server key: %w", err)
	}
	if n > 0 && len(s.keyChanges) > 0 {
		s.log.Warn("signed the key directory's entries with the new server key", "entries", n, "fingerprint", serverkey.Fingerprint(s.identity.Public()))
	}
	return nil
}

func std64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
