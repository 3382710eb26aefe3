//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package cli

// lock is a no-op where flock(2) is missing: do not run two privateline
// processes on one config directory at once there.
func (d *stateDir) lock() (unlock func(), err error) {
	if err := d.ensure(); err != nil {
		return nil, err
	}
	return func() {}, nil
}
