package homeserver

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/privateline/privateline/keylog"
	"github.com/privateline/privateline/serverkey"
)

var errCrash = errors.New("crash")

func rotateTestConfig(t *testing.T) Config {
	cfg := Default()
	cfg.DataDir = t.TempDir()
	cfg.ServerName = "rot.test"
	return cfg
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// firstKey makes the data directory's first identity key, as a first
// start does.
func firstKey(t *testing.T, cfg Config) ed25519Key {
	t.Helper()
	k, _, err := loadIdentity(cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

type ed25519Key = []byte

// TestRotateKeyCrashes stops a rotation after each durable step, as a
// crash would, and starts the server's loading of the identity: before
// the statement is written the old key stays (the orphaned new key is
// removed); from then on the rotation is finished, the old key kept
// aside. Either way the key loaded is the one the statements lead to.
func TestRotateKeyCrashes(t *testing.T) {
	for _, tc := range []struct {
		step    string
		rotated bool
	}{{"next", false}, {"changes", true}, {"retired", true}} {
		t.Run(tc.step, func(t *testing.T) {
			cfg := rotateTestConfig(t)
			old := firstKey(t, cfg)
			rotateStep = func(s string) error {
				if s == tc.step {
					return errCrash
				}
				return nil
			}
			_, err := rotateKeyFiles(cfg.DataDir, cfg.ServerName, quiet())
			rotateStep = nil
			if !errors.Is(err, errCrash) {
				t.Fatalf("rotation: %v", err)
			}
			k, changes, err := loadIdentity(cfg, quiet())
			if err != nil {
				t.Fatalf("start after a crash at %q: %v", tc.step, err)
			}
			if got := bytes.Equal(k.Public(), old); got == tc.rotated {
				t.Fatalf("crash at %q: rotated %v, want %v", tc.step, !got, tc.rotated)
			}
			if tc.rotated != (len(changes) == 1) {
				t.Fatalf("crash at %q: %d statements", tc.step, len(changes))
			}
			if tc.rotated {
				retired, err := serverkey.Load(filepath.Join(cfg.DataDir, retiredKeyFile(old)))
				if err != nil || !bytes.Equal(retired.Public(), old) {
					t.Fatalf("the old key is not kept: %v", err)
				}
			}
			if _, err := os.Stat(filepath.Join(cfg.DataDir, nextKeyFile)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s left behind: %v", nextKeyFile, err)
			}
			// A later rotation continues the chain.
			if _, err := rotateKeyFiles(cfg.DataDir, cfg.ServerName, quiet()); err != nil {
				t.Fatal(err)
			}
			k2, changes2, err := loadIdentity(cfg, quiet())
			if err != nil || len(changes2) != len(changes)+1 || !bytes.Equal(changes2[len(changes2)-1].OldKey, k.Public()) || bytes.Equal(k2.Public(), k.Public()) {
				t.Fatalf("the next rotation: %v, %d statements", err, len(changes2))
			}
		})
	}
}

// TestRotateKeyChainLimit: beyond keylog.MaxServerKeyChanges rotations
// the oldest statements are dropped; what is kept still verifies.
func TestRotateKeyChainLimit(t *testing.T) {
	cfg := rotateTestConfig(t)
	firstKey(t, cfg)
	var last *rotation
	for range keylog.MaxServerKeyChanges + 2 {
		r, err := rotateKeyFiles(cfg.DataDir, cfg.ServerName, quiet())
		if err != nil {
			t.Fatal(err)
		}
		last = r
	}
	if last.Dropped != 1 || last.Changes != keylog.MaxServerKeyChanges {
		t.Fatalf("last rotation: %+v", last)
	}
	k, changes, err := loadIdentity(cfg, quiet())
	if err != nil || len(changes) != keylog.MaxServerKeyChanges || !bytes.Equal(k.Public(), last.New) {
		t.Fatalf("after %d rotations: %v, %d statements", keylog.MaxServerKeyChanges+2, err, len(changes))
	}
}

// TestRotateKeyRefusals: no key to rotate, a running server (the store's
// lock), and statements that do not lead to the key (also refused at
// start, with a message naming the file).
func TestRotateKeyRefusals(t *testing.T) {
	run := func(cfg Config) (int, string) {
		var out bytes.Buffer
		rc := rotateKey(cfg, io.Discard, &out)
		return rc, out.String()
	}
	cfg := rotateTestConfig(t)
	if rc, msg := run(cfg); rc != 1 || !strings.Contains(msg, "no server identity key") {
		t.Fatalf("no key: %d %q", rc, msg)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, serverkey.FileName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the refused command made a key")
	}

	cfg.ListenAddr, cfg.MetricsAddr = "127.0.0.1:0", "127.0.0.1:0"
	srv, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	old := srv.IdentityKey()
	if rc, msg := run(cfg); rc != 1 || !strings.Contains(msg, "seems to be running") {
		t.Fatalf("while running: %d %q", rc, msg)
	}
	if k, _ := serverkey.Load(filepath.Join(cfg.DataDir, serverkey.FileName)); !bytes.Equal(k.Public(), old) {
		t.Fatal("the key changed while the server ran")
	}
	srv.db.Close()
	if rc, msg := run(cfg); rc != 0 {
		t.Fatalf("stopped: %d %q", rc, msg)
	}

	// Statements that do not lead to the key: refused by the command and
	// at start.
	other, _ := serverkey.Generate()
	if err := serverkey.Save(filepath.Join(cfg.DataDir, serverkey.FileName), other); err != nil {
		t.Fatal(err)
	}
	if rc, msg := run(cfg); rc != 1 || !strings.Contains(msg, "do not verify") {
		t.Fatalf("broken chain: %d %q", rc, msg)
	}
	if _, err := New(cfg, Options{}); err == nil || !strings.Contains(err.Error(), keyChangesFile) {
		t.Fatalf("start with a broken chain: %v", err)
	}
	// A lost key file is not replaced by a fresh key once statements exist.
	os.Remove(filepath.Join(cfg.DataDir, serverkey.FileName))
	if _, err := New(cfg, Options{}); err == nil || !strings.Contains(err.Error(), "restore the key file") {
		t.Fatalf("start without the key: %v", err)
	}
}
