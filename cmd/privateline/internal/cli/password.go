package cli

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/privateline/privateline"
)

// Passwords are read, in this order of preference, from:
//
//  1. the file named by --password-file, or else by the environment
//     variable PRIVATELINE_PASSWORD_FILE: its first line (a trailing "\n"
//     or "\r\n" is not part of the password) — for scripts;
//  2. standard input, when it is a terminal: after a prompt on standard
//     error, with echo turned off (Linux and macOS; elsewhere the
//     password is echoed, with a warning);
//  3. standard input otherwise: its first line.
//
// The password never appears in arguments or the environment (where
// other processes could read it), and it is never stored.

// maxPasswordBytes bounds what is read as a password.
const maxPasswordBytes = 4096

// minNewPassword is the shortest password register accepts.
const minNewPassword = 8

// readPassword asks for the account's password. confirm asks twice on a
// terminal (for a new password).
func (r *runner) readPassword(what string, confirm bool) (string, error) {
	const op = "cli.password"
	path := r.passwordFile
	if path == "" {
		path = r.env.Getenv("PRIVATELINE_PASSWORD_FILE")
	}
	var pw string
	var err error
	switch {
	case path != "":
		pw, err = r.passwordFromFile(path)
	case isTerminal(r.env.Stdin):
		pw, err = r.passwordFromTerminal(what, confirm)
	default:
		pw, err = readLine(r.stdin())
		if err != nil {
			err = privateline.E(op, privateline.Invalid, "cannot read the password from standard input (give --password-file, or type it)", err)
		}
	}
	if err != nil {
		return "", err
	}
	if pw == "" {
		return "", privateline.E(op, privateline.Invalid, "the password is empty")
	}
	if !utf8.ValidString(pw) {
		return "", privateline.E(op, privateline.Invalid, "the password is not valid UTF-8")
	}
	return pw, nil
}

func (r *runner) passwordFromFile(path string) (string, error) {
	const op = "cli.password"
	f, err := os.Open(path)
	if err != nil {
		return "", privateline.E(op, privateline.Invalid, "cannot open the password file", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(r.env.Stderr, "privateline: warning: the password file %s can be read by other users (chmod 600 it)\n", path)
	}
	pw, err := readLine(f)
	if err != nil {
		return "", privateline.E(op, privateline.Invalid, "cannot read the password file", err)
	}
	return pw, nil
}

func (r *runner) passwordFromTerminal(what string, confirm bool) (string, error) {
	const op = "cli.password"
	f := r.env.Stdin.(*os.File)
	ask := func(prompt string) (string, error) {
		fmt.Fprint(r.env.Stderr, prompt)
		pw, echoed, err := readNoEcho(f)
		if echoed {
			fmt.Fprintln(r.env.Stderr, "privateline: warning: this system's terminal echoes the password")
		} else {
			fmt.Fprintln(r.env.Stderr)
		}
		if err != nil {
			return "", privateline.E(op, privateline.Invalid, "cannot read the password", err)
		}
		return pw, nil
	}
	pw, err := ask(what + ": ")
	if err != nil || !confirm {
		return pw, err
	}
	again, err := ask("Repeat the password: ")
	if err != nil {
		return "", err
	}
	if again != pw {
		return "", privateline.E(op, privateline.Invalid, "the passwords differ")
	}
	return pw, nil
}

// readLine reads up to the first "\n" (or the end), without the line end.
func readLine(rd io.Reader) (string, error) {
	br := bufio.NewReader(io.LimitReader(rd, maxPasswordBytes+1))
	line, err := br.ReadBytes('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	if len(line) > maxPasswordBytes {
		return "", fmt.Errorf("the password is longer than %d bytes", maxPasswordBytes)
	}
	if len(line) == 0 && err == io.EOF {
		return "", io.ErrUnexpectedEOF
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	return strings.Clone(string(line)), nil
}
