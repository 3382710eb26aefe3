//go:build linux || darwin

package cli

import (
	"io"
	"os"
	"syscall"
	"unsafe"
)

// Turning off a terminal's echo with the standard library only: the
// termios ioctls (ioctlGetTermios, ioctlSetTermios per system).

func getTermios(fd uintptr) (*syscall.Termios, bool) {
	var t syscall.Termios
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, ioctlGetTermios, uintptr(unsafe.Pointer(&t))); e != 0 {
		return nil, false
	}
	return &t, true
}

func setTermios(fd uintptr, t *syscall.Termios) error {
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, ioctlSetTermios, uintptr(unsafe.Pointer(t))); e != 0 {
		return e
	}
	return nil
}

// isTerminal reports whether r is a terminal.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	_, ok = getTermios(f.Fd())
	return ok
}

// readNoEcho reads a line from the terminal f with echo off, and restores
// the terminal's settings afterwards. echoed is always false here.
func readNoEcho(f *os.File) (pw string, echoed bool, err error) {
	fd := f.Fd()
	old, ok := getTermios(fd)
	if !ok {
		pw, err = readLine(f)
		return pw, true, err
	}
	t := *old
	t.Lflag &^= syscall.ECHO
	t.Lflag |= syscall.ICANON | syscall.ISIG
	t.Iflag |= syscall.ICRNL
	if err := setTermios(fd, &t); err != nil {
		return "", false, err
	}
	defer setTermios(fd, old)
	pw, err = readTerminalLine(f)
	return pw, false, err
}

// readTerminalLine reads byte by byte up to "\n", so nothing after the
// line is consumed.
func readTerminalLine(f *os.File) (string, error) {
	var line []byte
	var b [1]byte
	for len(line) <= maxPasswordBytes {
		n, err := f.Read(b[:])
		if n == 1 {
			if b[0] == '\n' {
				break
			}
			line = append(line, b[0])
			continue
		}
		if err == io.EOF {
			if len(line) == 0 {
				return "", io.ErrUnexpectedEOF
			}
			break
		}
		if err != nil {
			return "", err
		}
	}
	if len(line) > maxPasswordBytes {
		return "", io.ErrShortBuffer
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return string(line), nil
}
