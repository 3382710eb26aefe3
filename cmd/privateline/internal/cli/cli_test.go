package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/privateline/privateline/clients/go/client"
	"github.com/privateline/privateline/homeserver"
)

// The command against a real homeserver on loopback, run in-process.
// Every command that takes a password derives keys from it (about a
// second under -race), and register makes an RSA-4096 key, so the test
// keeps to two accounts and few password prompts.

func startHomeserver(t *testing.T) string {
	t.Helper()
	cfg := homeserver.Default()
	cfg.DataDir = t.TempDir()
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.MetricsAddr = "127.0.0.1:0"
	cfg.ServerName = "hs.test"
	cfg.AuthRatePerMinute, cfg.AuthBurst = 60000, 100000
	cfg.UsernameRatePerMinute, cfg.UsernameBurst = 60000, 100000
	srv, err := homeserver.New(cfg, homeserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return "http://" + srv.Addr()
}

// cliUser is one person with a config directory.
type cliUser struct {
	t        *testing.T
	dir      string
	env      map[string]string
	password string
}

func newCLIUser(t *testing.T, password string) *cliUser {
	return &cliUser{t: t, dir: filepath.Join(t.TempDir(), "config"), env: map[string]string{}, password: password}
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs the command with the config directory as an environment
// variable and stdin as standard input.
func (u *cliUser) run(stdin string, args ...string) result {
	u.t.Helper()
	var out, errb bytes.Buffer
	env := Env{
		Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string {
			if k == "PRIVATELINE_CONFIG_DIR" {
				return u.dir
			}
			return u.env[k]
		},
		UserConfigDir: func() (string, error) { return "", errors.New("no user config directory in tests") },
	}
	code := Main(context.Background(), args, env)
	return result{code, out.String(), errb.String()}
}

// ok runs a command that must succeed and decodes its --json output.
func (u *cliUser) ok(stdin string, v any, args ...string) result {
	u.t.Helper()
	r := u.run(stdin, append([]string{"--json"}, args...)...)
	if r.code != ExitOK {
		u.t.Fatalf("privateline %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
			u.t.Fatalf("privateline %s: output is not JSON: %v\n%s", strings.Join(args, " "), err, r.stdout)
		}
	}
	return r
}

// passwordFile writes the password to a 0600 file, with a CRLF line end.
func (u *cliUser) passwordFile() string {
	u.t.Helper()
	p := filepath.Join(u.t.TempDir(), "pw")
	if err := os.WriteFile(p, []byte(u.password+"\r\nignored second line\n"), 0o600); err != nil {
		u.t.Fatal(err)
	}
	return p
}

func TestCLI(t *testing.T) {
	url := startHomeserver(t)
	alice, bob := newCLIUser(t, "alice's long password ☃"), newCLIUser(t, "bob's password, also long")

	// Register: alice types the password on standard input, bob's comes
	// from a file named in the environment, the server from the environment.
	var acct accountOut
	alice.ok(alice.password+"\n", &acct, "--server", url, "register", "--email", "alice@mail.example", "Alice")
	if acct.Address != "alice@hs.test" || acct.Email != "alice@mail.example" || len(acct.Fingerprint) != 35 {
		t.Fatalf("register: %+v", acct)
	}
	bob.env["PRIVATELINE_SERVER"] = url
	bob.env["PRIVATELINE_PASSWORD_FILE"] = bob.passwordFile()
	bob.ok("", nil, "register", "bob")

	// whoami, in both output forms.
	alice.ok("", &acct, "whoami")
	if acct.Address != "alice@hs.test" || acct.Sessions == nil || *acct.Sessions != 1 || acct.Server != url {
		t.Fatalf("whoami: %+v", acct)
	}
	if r := alice.run("", "account"); r.code != 0 || !strings.Contains(r.stdout, "address:      alice@hs.test") {
		t.Fatalf("account: %d %s %s", r.code, r.stdout, r.stderr)
	}

	// Login on this device again, with a password file: the new session
	// replaces the old one, which is logged out.
	alice.ok("", nil, "login", "--password-file", alice.passwordFile(), "alice")
	alice.ok("", &acct, "whoami")
	if *acct.Sessions != 1 {
		t.Fatalf("sessions after a second login on one device: %d", *acct.Sessions)
	}
	// A wrong password fails clearly and keeps the saved session.
	other := newCLIUser(t, "wrong password")
	if r := other.run("wrong password\n", "--server", url, "login", "alice"); r.code != ExitError || !strings.Contains(r.stderr, "wrong username or password") {
		t.Fatalf("login with a wrong password: %d %q", r.code, r.stderr)
	}

	// Verify each other: the same safety number on both sides.
	var av, bv verifyOut
	alice.ok("", &av, "verify", "bob")
	if av.Marked || av.Address != "bob@hs.test" || !regexp.MustCompile(`^(\d{5} ){11}\d{5}$`).MatchString(av.SafetyNumber) {
		t.Fatalf("verify: %+v", av)
	}
	if !strings.HasPrefix(av.QRPayload, "PLSN1:") || len(av.QRPayload) != 134 {
		t.Fatalf("QR payload %q", av.QRPayload)
	}
	bob.ok("", &bv, "verify", "--mark", "alice@HS.TEST")
	if bv.SafetyNumber != av.SafetyNumber || !bv.Marked || bv.KeyChanged || bv.QRPayload == av.QRPayload {
		t.Fatalf("bob's verify: %+v, alice's: %+v", bv, av)
	}
	alice.ok(alice.password, &av, "verify", "--mark", "bob@hs.test")
	if !av.Marked || av.SafetyNumber != bv.SafetyNumber {
		t.Fatalf("alice marks bob: %+v", av)
	}

	// pins shows bob verified.
	var pins struct {
		Version int      `json:"version"`
		Pins    []pinOut `json:"pins"`
	}
	alice.ok(alice.password, &pins, "pins")
	if len(pins.Pins) != 1 || pins.Pins[0].Address != "bob@hs.test" || !pins.Pins[0].Verified || pins.Version != 1 {
		t.Fatalf("alice's pins: %+v", pins)
	}
	if r := alice.run(alice.password, "pins"); r.code != 0 || !strings.Contains(r.stdout, "bob@hs.test\n    verified") {
		t.Fatalf("pins: %s %s", r.stdout, r.stderr)
	}
	if r := alice.run("not it\n", "pins"); r.code != ExitError || !strings.Contains(r.stderr, "wrong password") {
		t.Fatalf("pins with a wrong password: %d %s", r.code, r.stderr)
	}

	// keys: the directory shows bob's keys; rotate them; alice sees the
	// change, and marking bob again replaces the pin.
	var k keysOut
	bob.ok("", &k, "keys")
	if k.Directory == nil || !k.Directory.Matches || k.Directory.TreeSize < 2 {
		t.Fatalf("keys: %+v", k)
	}
	var rotated keysOut
	bob.ok("", &rotated, "keys", "rotate")
	if !rotated.Rotated || bytes.Equal(rotated.IdentityKey, k.IdentityKey) || rotated.EncryptionKeyID == k.EncryptionKeyID {
		t.Fatalf("keys rotate: %+v", rotated)
	}
	bob.ok("", &k, "keys")
	if !k.Directory.Matches || !bytes.Equal(k.IdentityKey, rotated.IdentityKey) {
		t.Fatalf("keys after the rotation: %+v", k)
	}
	var again verifyOut
	alice.ok(alice.password, &again, "verify", "--mark", "bob")
	if !again.KeyChanged || !bytes.Equal(again.PreviousKey, av.IdentityKey) || again.SafetyNumber == av.SafetyNumber {
		t.Fatalf("verify after bob's key change: %+v", again)
	}

	// Usage errors exit 2.
	for _, args := range [][]string{{}, {"frobnicate"}, {"verify"}, {"whoami", "extra"}, {"keys", "shred"}, {"login", "--bogus", "x"}, {"verify", "alice"}} {
		if r := alice.run("", args...); r.code != ExitUsage {
			t.Errorf("privateline %q: exit %d, want 2 (%s)", args, r.code, r.stderr)
		}
	}
	if r := alice.run("", "help", "verify"); r.code != 0 || !strings.Contains(r.stdout, "privateline verify") {
		t.Errorf("help verify: %d %s", r.code, r.stdout)
	}

	// The saved state: private modes, no password, no unwrapped key, and
	// the wrapped keys open with the password exactly as the protocol says.
	checkStateFiles(t, alice)
	checkStateFiles(t, bob)

	// Logout ends the session; the directory state stays.
	alice.ok("", nil, "logout")
	if _, err := os.Stat(filepath.Join(alice.dir, sessionFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("session.json after logout: %v", err)
	}
	if _, err := os.Stat(filepath.Join(alice.dir, directoryFile)); err != nil {
		t.Fatalf("directory.json after logout: %v", err)
	}
	if r := alice.run("", "whoami"); r.code != ExitError || !strings.Contains(r.stderr, "not logged in") {
		t.Fatalf("whoami after logout: %d %s", r.code, r.stderr)
	}
	if r := alice.run("", "--json", "whoami"); !strings.Contains(r.stderr, `"kind": "unauthenticated"`) {
		t.Fatalf("a JSON error: %s", r.stderr)
	}
	bob.ok("", nil, "logout", "--all")
}

// checkStateFiles checks u's config directory: mode 0700, files 0600;
// neither the password nor a private key in any form; and the wrapped
// keys of session.json unwrap with the password.
func checkStateFiles(t *testing.T, u *cliUser) {
	t.Helper()
	fi, err := os.Stat(u.dir)
	if err != nil || fi.Mode().Perm() != dirMode {
		t.Fatalf("%s: %v %v, want mode 0700", u.dir, fi.Mode(), err)
	}
	var files []string
	filepath.WalkDir(u.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files = append(files, p)
		return nil
	})
	if len(files) < 3 {
		t.Fatalf("state files: %q", files)
	}
	// PKCS #8 headers of an Ed25519 and an RSA private key.
	markers := [][]byte{
		mustHex("302e020100300506032b657004220420"),
		mustHex("020100300d06092a864886f70d0101010500"),
	}
	b64re := regexp.MustCompile(`[A-Za-z0-9+/]{16,}={0,2}`)
	for _, p := range files {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != fileMode {
			t.Errorf("%s: mode %v, want 0600", p, fi.Mode())
		}
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte(u.password)) || bytes.Contains(b, []byte(strings.Split(u.password, " ")[0]+" ")) {
			t.Errorf("%s holds the password", p)
		}
		texts := [][]byte{b}
		for _, m := range b64re.FindAll(b, -1) {
			if d, err := base64.StdEncoding.DecodeString(string(m)); err == nil {
				texts = append(texts, d)
			}
		}
		for _, text := range texts {
			for _, m := range markers {
				if bytes.Contains(text, m) || bytes.Contains(text, []byte(hex.EncodeToString(m))) {
					t.Errorf("%s holds an unwrapped private key", p)
				}
			}
		}
	}
	var saved savedSession
	b, err := os.ReadFile(filepath.Join(u.dir, sessionFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &saved); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.Options{BaseURL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Resume(saved.state())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Unlock(u.password); err != nil {
		t.Fatalf("the saved wrapped keys do not unwrap with the password: %v", err)
	}
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestReadLine(t *testing.T) {
	cases := map[string]string{
		"pw\n":       "pw",
		"pw\r\nrest": "pw",
		"pw":         "pw",
		" sp ace \n": " sp ace ",
		"\n":         "",
	}
	for in, want := range cases {
		if got, err := readLine(strings.NewReader(in)); err != nil || got != want {
			t.Errorf("%q: %q %v, want %q", in, got, err, want)
		}
	}
	if _, err := readLine(strings.NewReader("")); err == nil {
		t.Error("empty input gave a password")
	}
	if _, err := readLine(strings.NewReader(strings.Repeat("x", maxPasswordBytes+1))); err == nil {
		t.Error("an overlong password was accepted")
	}
}
