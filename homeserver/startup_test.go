package homeserver_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/homeserver"
)

func randomKey32() privateline.Secret {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

// TestProductionRequiresSecrets: in production a missing or malformed
// secret stops New, with the variable's name and how to make one, and
// nothing is generated into the data directory.
func TestProductionRequiresSecrets(t *testing.T) {
	t.Parallel()
	jwtSecret := privateline.Secret(strings.Repeat("j", 44))
	cases := []struct {
		name     string
		jwt, aes privateline.Secret
		variable string // "" means New must succeed
	}{
		{"both secrets", jwtSecret, randomKey32(), ""},
		{"no JWT_SECRET_KEY", nil, randomKey32(), "JWT_SECRET_KEY"},
		{"no AES_KEY", jwtSecret, nil, "AES_KEY"},
		{"neither", nil, nil, "JWT_SECRET_KEY"},
		{"short JWT_SECRET_KEY", privateline.Secret("short"), randomKey32(), "JWT_SECRET_KEY"},
		{"16-byte AES_KEY", jwtSecret, randomKey32()[:16], "AES_KEY"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Env = "production"
			cfg.JWTSecret, cfg.AESKey = tc.jwt, tc.aes
			srv, err := homeserver.New(cfg, homeserver.Options{})
			if tc.variable == "" {
				if err != nil {
					t.Fatalf("New with both secrets: %v", err)
				}
				if err := srv.Shutdown(t.Context()); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				srv.Shutdown(t.Context())
				t.Fatalf("New started in production without a valid %s", tc.variable)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.variable) || !strings.Contains(msg, "openssl rand -base64 32") {
				t.Fatalf("error %q should name %s and say how to make one (openssl rand -base64 32)", msg, tc.variable)
			}
			for _, f := range []string{"jwt_secret_key", "aes_key"} {
				if _, err := os.Stat(filepath.Join(cfg.DataDir, f)); err == nil {
					t.Fatalf("production start wrote a generated %s", f)
				}
			}
		})
	}
}

// TestLoadConfigSecrets reads secrets through LoadConfig's lookup.
func TestLoadConfigSecrets(t *testing.T) {
	t.Parallel()
	good := base64.StdEncoding.EncodeToString(randomKey32())
	cases := []struct {
		name     string
		env      map[string]string
		variable string // "" means no error
	}{
		{"good AES_KEY", map[string]string{"AES_KEY": good}, ""},
		{"short AES_KEY", map[string]string{"AES_KEY": "short"}, "AES_KEY"},
		{"AES_KEY of 16 bytes", map[string]string{"AES_KEY": base64.StdEncoding.EncodeToString(randomKey32()[:16])}, "AES_KEY"},
		{"AES_KEY not base64", map[string]string{"AES_KEY": strings.Repeat("!", 44)}, "AES_KEY"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := homeserver.LoadConfig(func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
			if tc.variable == "" {
				if err != nil || len(cfg.AESKey) != 32 {
					t.Fatalf("LoadConfig: %v (AES key %d bytes)", err, len(cfg.AESKey))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.variable) {
				t.Fatalf("LoadConfig error %v; want one naming %s", err, tc.variable)
			}
		})
	}
}

// TestMainRefusesProductionWithoutSecrets runs the command as an operator
// would, with the environment and no secrets.
func TestMainRefusesProductionWithoutSecrets(t *testing.T) {
	dir := t.TempDir()
	for k, v := range map[string]string{
		"PRIVATELINE_ENV":   "production",
		"DATA_DIR":          dir,
		"LISTEN_ADDR":       "127.0.0.1:0",
		"METRICS_ADDR":      "127.0.0.1:0",
		"JWT_SECRET_KEY":    "", // empty counts as unset
		"AES_KEY":           "",
		"ENCRYPTED_LOG_KEY": "",
		"LOG_PATH":          "",
		"SENTRY_DSN":        "",
	} {
		t.Setenv(k, v)
	}
	var stdout, stderr bytes.Buffer
	code := make(chan int, 1)
	go func() { code <- homeserver.Main([]string{"-env-file", "/nonexistent"}, &stdout, &stderr) }()
	select {
	case c := <-code:
		if c != 1 {
			t.Fatalf("exit code %d, want 1; stderr:\n%s", c, stderr.String())
		}
	case <-time.After(time.Minute):
		// A failsafe, not an ordering: Main would serve until a signal.
		t.Fatal("Main started serving in production without secrets")
	}
	if !strings.Contains(stderr.String(), "JWT_SECRET_KEY") {
		t.Fatalf("stderr does not name JWT_SECRET_KEY:\n%s", stderr.String())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("refused start left files in DATA_DIR: %v", entries)
	}
}

// TestDevelopmentSecrets: without secrets a development server generates
// them once into DATA_DIR (mode 0600) and reuses them, so tokens and data
// survive a restart.
func TestDevelopmentSecrets(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	ts := startServer(t, cfg)
	files := map[string][]byte{}
	for _, name := range []string{"jwt_secret_key", "aes_key"} {
		path := filepath.Join(cfg.DataDir, name)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatalf("development start did not generate %s: %v", name, err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s has mode %v, want 0600", name, fi.Mode().Perm())
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	a := ts.register("devsecret")

	ts.restart()
	for name, before := range files {
		after, err := os.ReadFile(filepath.Join(cfg.DataDir, name))
		if err != nil || !bytes.Equal(before, after) {
			t.Fatalf("%s changed on restart (err %v)", name, err)
		}
	}
	if !ts.accessWorks(a.Access) {
		t.Fatal("access token issued before the restart is refused after it")
	}
	refreshPair(t, ts.postRefresh(a.Refresh))
	ts.login(a)

	// Another data directory gets other secrets.
	other := startServer(t, testConfig(t))
	if bytes.Equal(generatedJWTSecret(t, other.cfg), bytes.TrimSpace(files["jwt_secret_key"])) {
		t.Fatal("two data directories got the same generated JWT secret")
	}
	if other.accessWorks(a.Access) {
		t.Fatal("a token of one development server is accepted by another")
	}
}

// TestRestartKeepsAccountsAndRevocations: accounts, sessions and
// revocations are in the store, not in memory.
func TestRestartKeepsAccountsAndRevocations(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig(t))
	a := ts.register("durable")
	kept := ts.loginAgain(a)
	revoked := ts.loginAgain(a)
	expectHTTPStatus(t, ts.do("POST", "/api/revoke", revoked.Access, nil), http.StatusNoContent, "revoke")

	ts.restart()

	if ts.accessWorks(revoked.Access) {
		t.Fatal("revoked access token works after a restart")
	}
	expectUnauthenticated(t, ts.postRefresh(revoked.Refresh), "revoked refresh token after a restart")
	if !ts.accessWorks(kept.Access) || !ts.accessWorks(a.Access) {
		t.Fatal("an unrevoked session's access token is refused after a restart")
	}
	refreshPair(t, ts.postRefresh(kept.Refresh))
	ts.login(a)
	if r := ts.do("GET", "/api/account", a.Access, nil); r.Status != http.StatusOK || r.json(t)["email"] != a.Email {
		t.Fatalf("account after restart: %d %s", r.Status, r.Body)
	}
}
