//go:build !linux && !darwin

package cli

import (
	"io"
	"os"
)

// On systems without the termios code of term_unix.go a terminal cannot
// be told not to echo: the password is read as typed, and the caller
// warns. (golang.org/x/term would cover them, Windows included.)

// isTerminal reports whether r is a character device.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func readNoEcho(f *os.File) (string, bool, error) {
	pw, err := readLine(f)
	return pw, true, err
}
