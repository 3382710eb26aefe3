// Package cli is the privateline command: a terminal and scripting client
// of a PrivateLine homeserver on the Go SDK (clients/go/client). main
// parses nothing; Main does everything, so that tests run it in-process
// against a real homeserver.
//
// State lives in a configuration directory (os.UserConfigDir()/privateline,
// or --config-dir, or PRIVATELINE_CONFIG_DIR); see state.go for its files.
// The private keys are kept only wrapped under the password's KEK, as the
// server stores them: commands that need them (keys rotate, verify --mark,
// pins, send, history, listen) ask for the password and unwrap the keys in memory. Passwords are
// read as password.go describes. Output is for people by default and JSON
// with --json. Exit status: 0 success, 1 failure, 2 usage error.
//
// Direct messages: send, history, read, unread (messages.go); groups:
// group create|list|show|add|remove|leave|send|history (groups.go); listen
// (listen.go) prints events as they happen over the server's WebSocket.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/client"
	"github.com/privateline/privateline/clients/go/e2ee"
)

// Exit statuses.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

// Env is the world the command runs in; System is the real one.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// UserConfigDir is os.UserConfigDir.
	UserConfigDir func() (string, error)
	// HTTPClient sends the requests; nil means the SDK's default.
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// System returns the process's environment.
func System() Env {
	return Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, UserConfigDir: os.UserConfigDir}
}

// usageError is a mistake in the command line (exit status 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// command is one subcommand.
type command struct {
	name    string
	args    string // synopsis of the arguments
	summary string
	flags   func(fs *flag.FlagSet, r *runner)
	run     func(ctx context.Context, r *runner, args []string) error
}

var commands []*command

func init() {
	commands = []*command{
		{name: "register", args: "[--email ADDRESS] [--server URL] USERNAME", summary: "create an account (new keys) and log in", flags: registerFlags, run: runRegister},
		{name: "login", args: "[--server URL] USERNAME", summary: "log in on this device (unwraps the keys to check the password)", run: runLogin},
		{name: "logout", args: "[--all]", summary: "end this session (--all: every session of the account)", flags: logoutFlags, run: runLogout},
		{name: "whoami", summary: "show the account", run: runWhoami},
		{name: "account", summary: "the same as whoami", run: runWhoami},
		{name: "keys", args: "[rotate]", summary: "show this account's keys and check them in the key directory; rotate: new keys", run: runKeys},
		{name: "verify", args: "[--mark] ADDRESS", summary: "show the safety number with a contact; --mark: record the contact as verified", flags: verifyFlags, run: runVerify},
		{name: "pins", summary: "list the pinned contacts and whether they are verified", run: runPins},
		{name: "send", args: "[--file F] [--attach PATH]... ADDRESS [TEXT...] | ADDRESS... -- TEXT...", summary: "send an end-to-end-encrypted message (text from the arguments, --file or standard input; files with --attach)", flags: sendFlags, run: runSend},
		{name: "history", args: "[--with ADDRESS] [--limit N] [--after SEQ]", summary: "show messages, decrypted and verified (oldest first)", flags: historyFlags, run: runHistory},
		{name: "get-file", args: "[--out PATH] MESSAGE_ID [FILE_ID|NAME]", summary: "download, check and decrypt a message's attachment", flags: getFileFlags, run: runGetFile},
		{name: "read", args: "ID", summary: "mark a received message read", run: runRead},
		{name: "unread", summary: "show the number of unread messages", run: runUnread},
		{name: "listen", args: "[--after SEQ]", summary: "print messages, read receipts, deletions and key changes as they happen, until interrupted", flags: listenFlags, run: runListen},
		{name: "group", args: "create|list|show|add|remove|leave|send|history ...", summary: "end-to-end-encrypted groups: " + groupUsage, run: runGroup},
		{name: "help", args: "[COMMAND]", summary: "show help", run: runHelp},
	}
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// runner holds one invocation's settings and state.
type runner struct {
	env Env
	out io.Writer

	// global flags
	configDir    string
	server       string
	jsonOut      bool
	passwordFile string

	// command flags
	email string
	all   bool
	mark  bool
	msg   messageFlags

	dir     *stateDir
	saveErr error // the first failure to save the session from OnChange
}

func (r *runner) globalFlags(fs *flag.FlagSet) {
	fs.StringVar(&r.configDir, "config-dir", r.configDir, "the state directory (default: $PRIVATELINE_CONFIG_DIR, or the user config directory's privateline)")
	fs.StringVar(&r.server, "server", r.server, "the homeserver's URL (default: $PRIVATELINE_SERVER, or the one saved at login)")
	fs.BoolVar(&r.jsonOut, "json", r.jsonOut, "print JSON for scripts")
	fs.StringVar(&r.passwordFile, "password-file", r.passwordFile, "read the password from this file's first line (default: $PRIVATELINE_PASSWORD_FILE, or standard input)")
}

func (r *runner) stdin() io.Reader { return r.env.Stdin }

func (r *runner) now() time.Time {
	if r.env.Now != nil {
		return r.env.Now()
	}
	return time.Now()
}

// Main runs the command line args (without the program name) and returns
// the exit status.
func Main(ctx context.Context, args []string, env Env) int {
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	if env.UserConfigDir == nil {
		env.UserConfigDir = os.UserConfigDir
	}
	if env.Stdin == nil {
		env.Stdin = strings.NewReader("")
	}
	r := &runner{env: env, out: env.Stdout}
	err := r.main(ctx, args)
	var ue *usageError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.As(err, &ue):
		fmt.Fprintf(env.Stderr, "privateline: %s\nRun 'privateline help' for usage.\n", ue.msg)
		return ExitUsage
	default:
		r.printError(err)
		return ExitError
	}
}

func (r *runner) main(ctx context.Context, args []string) error {
	top := flag.NewFlagSet("privateline", flag.ContinueOnError)
	top.SetOutput(io.Discard)
	r.globalFlags(top)
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			r.usage(r.env.Stdout)
			return err
		}
		return usagef("%v", err)
	}
	args = top.Args()
	if len(args) == 0 {
		r.usage(r.env.Stderr)
		return usagef("no command given")
	}
	cmd := lookup(args[0])
	if cmd == nil {
		return usagef("unknown command %q", args[0])
	}
	fs := flag.NewFlagSet("privateline "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	r.globalFlags(fs)
	if cmd.flags != nil {
		cmd.flags(fs, r)
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			r.commandUsage(r.env.Stdout, cmd)
			return err
		}
		return usagef("%s: %v", cmd.name, err)
	}
	if err := r.openState(); err != nil {
		return err
	}
	err := cmd.run(ctx, r, fs.Args())
	if err == nil && r.saveErr != nil {
		err = privateline.E("cli", "the session's new state could not be saved; log in again", r.saveErr)
	}
	return err
}

// openState settles the configuration directory.
func (r *runner) openState() error {
	path := r.configDir
	if path == "" {
		path = r.env.Getenv("PRIVATELINE_CONFIG_DIR")
	}
	if path == "" {
		base, err := r.env.UserConfigDir()
		if err != nil {
			return privateline.E("cli", privateline.Invalid, "no user config directory; give --config-dir", err)
		}
		path = filepath.Join(base, "privateline")
	}
	r.dir = &stateDir{path: path}
	return nil
}

func (r *runner) usage(w io.Writer) {
	fmt.Fprint(w, `privateline — a PrivateLine client for the terminal and for scripts

Usage: privateline [global flags] COMMAND [flags] [arguments]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Global flags (before or after the command):
  --config-dir DIR      state directory (default $PRIVATELINE_CONFIG_DIR, or <user config dir>/privateline)
  --server URL          homeserver URL for register and login (default $PRIVATELINE_SERVER, or the saved one)
  --password-file FILE  read the password from FILE's first line (default $PRIVATELINE_PASSWORD_FILE,
                        else standard input: a prompt without echo on a terminal, else its first line)
  --json                print JSON

Exit status: 0 success, 1 failure, 2 usage error. See docs/cli.md.
`)
}

func (r *runner) commandUsage(w io.Writer, c *command) {
	fmt.Fprintf(w, "Usage: privateline %s %s\n\n%s\n", c.name, c.args, c.summary)
}

func runHelp(_ context.Context, r *runner, args []string) error {
	if len(args) == 0 {
		r.usage(r.env.Stdout)
		return nil
	}
	c := lookup(args[0])
	if c == nil {
		return usagef("unknown command %q", args[0])
	}
	r.commandUsage(r.env.Stdout, c)
	return nil
}

// printError reports err on standard error: its message for people, or a
// JSON object with --json.
func (r *runner) printError(err error) {
	msg := privateline.MessageOf(err)
	if msg == "" {
		msg = err.Error()
	}
	if r.jsonOut {
		e := map[string]string{"kind": privateline.KindOf(err).String(), "message": msg}
		if reason := e2ee.ReasonOf(err); reason != "" {
			e["reason"] = string(reason)
		}
		if code := client.CodeOf(err); code != "" {
			e["code"] = code
		}
		writeJSON(r.env.Stderr, map[string]any{"error": e})
		return
	}
	if reason := e2ee.ReasonOf(err); reason != "" {
		msg += " (" + string(reason) + ")"
	}
	fmt.Fprintf(r.env.Stderr, "privateline: %s\n", msg)
}
