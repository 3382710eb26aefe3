//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package cli

import (
	"os"
	"path/filepath"
	"syscall"

	"github.com/privateline/privateline"
)

// lock takes an exclusive advisory lock on the state directory's lock
// file, so that two privateline processes sharing a config directory do
// not refresh the same single-use refresh token (which would make the
// server revoke the session). unlock releases it.
func (d *stateDir) lock() (unlock func(), err error) {
	if err := d.ensure(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(d.path, lockFile), os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return nil, privateline.E("cli.lock", privateline.Unavailable, "cannot open the lock file", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, privateline.E("cli.lock", privateline.Unavailable, "cannot lock the config directory", err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
