package homeserver_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/privateline/privateline/homeserver"
	"github.com/privateline/privateline/internal/logging"
)

// secretSet collects every secret a flow handled, under a label, in the
// forms it could leak in.
type secretSet map[string][]string

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// addBytes records raw secret bytes: standard and URL-safe base64 (padded
// or not) and hex.
func (s secretSet) addBytes(label string, b []byte) {
	s[label] = append(s[label],
		base64.StdEncoding.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b),
		base64.URLEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b),
		hex.EncodeToString(b), strings.ToUpper(hex.EncodeToString(b)))
}

// addToken records a token as sent; for a JWT also its signature, which
// is as good as the token.
func (s secretSet) addToken(label, tok string) {
	if tok == "" {
		panic("empty token for " + label)
	}
	s[label] = append(s[label], tok)
	if parts := strings.Split(tok, "."); len(parts) == 3 {
		s[label] = append(s[label], parts[2])
	}
	if b, err := base64.RawURLEncoding.DecodeString(tok); err == nil {
		s.addBytes(label+" (decoded)", b)
	}
}

// find returns the labels of the secrets that occur in text.
func (s secretSet) find(text string) []string {
	var found []string
	for label, forms := range s {
		for _, f := range forms {
			if len(f) < 12 {
				panic("secret form too short to search for: " + label)
			}
			if strings.Contains(text, f) {
				found = append(found, label)
				break
			}
		}
	}
	sort.Strings(found)
	return found
}

// checkLogsClean fails if logs (JSON lines) are empty, lack the login
// record, or contain any secret, as written or once its JSON strings are
// decoded.
func checkLogsClean(t *testing.T, logs string, secrets secretSet) {
	t.Helper()
	if !strings.Contains(logs, `"msg":"login"`) || !strings.Contains(logs, `"msg":"account registered"`) {
		t.Fatalf("the logs lack the login and registration records, so the check would prove nothing:\n%.2000s", logs)
	}
	var decoded strings.Builder
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(nil, 1<<20)
	lines := 0
	for sc.Scan() {
		lines++
		var v any
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Errorf("log line %d is not JSON: %q", lines, sc.Text())
			continue
		}
		var walk func(any)
		walk = func(v any) {
			switch v := v.(type) {
			case string:
				decoded.WriteString(v)
				decoded.WriteByte('\n')
			case map[string]any:
				for k, x := range v {
					decoded.WriteString(k)
					decoded.WriteByte('\n')
					walk(x)
				}
			case []any:
				for _, x := range v {
					walk(x)
				}
			}
		}
		walk(v)
	}
	if leaked := secrets.find(logs + "\n" + decoded.String()); len(leaked) > 0 {
		t.Errorf("the logs (%d lines) contain secrets: %s", lines, strings.Join(leaked, ", "))
	}
	t.Logf("%d log lines, %d secrets checked", lines, len(secrets))
}

// cookieValue is the value of the named Set-Cookie of r.
func cookieValue(t *testing.T, r *response, name string) string {
	t.Helper()
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if c.Name == name && c.Value != "" {
			return c.Value
		}
	}
	t.Fatalf("no %s cookie in %v", name, r.Header["Set-Cookie"])
	return ""
}

// runSecretFlow walks an account through its life with failures along the
// way, and returns every secret it saw.
func runSecretFlow(t *testing.T, ts *testServer) secretSet {
	t.Helper()
	s := secretSet{}
	expect := func(r *response, status int, what string) *response {
		t.Helper()
		if r.Status != status {
			t.Fatalf("%s: %d %s, want %d", what, r.Status, r.Body, status)
		}
		return r
	}
	str := func(r *response, k string) string {
		t.Helper()
		v, _ := r.json(t)[k].(string)
		if v == "" {
			t.Fatalf("no %s in %s", k, r.Body)
		}
		return v
	}

	jwtSecret, err := os.ReadFile(filepath.Join(ts.cfg.DataDir, "jwt_secret_key"))
	if err != nil {
		t.Fatal(err)
	}
	s["JWT secret"] = []string{strings.TrimSpace(string(jwtSecret))}
	aesText, err := os.ReadFile(filepath.Join(ts.cfg.DataDir, "aes_key"))
	if err != nil {
		t.Fatal(err)
	}
	aesKey, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(aesText)))
	if err != nil {
		t.Fatal(err)
	}
	s.addBytes("AES key", aesKey)

	name := uniqueName("secretive")
	authKey, epk, salt, nonce := randBytes(32), randBytes(2400), randBytes(16), randBytes(12)
	email := "hidden-" + hex.EncodeToString(randBytes(6)) + "@mail.example"
	s.addBytes("auth key", authKey)
	s.addBytes("encrypted_private_key", epk)
	s.addBytes("salt", salt)
	s.addBytes("nonce", nonce)
	s["email"] = []string{email, strings.TrimSuffix(email, "@mail.example")}
	b64 := base64.StdEncoding.EncodeToString

	expect(ts.do("POST", "/api/register", "", map[string]any{
		"username": name, "email": email, "auth_key": b64(authKey), "encrypted_private_key": b64(epk),
		"salt": b64(salt), "nonce": b64(nonce), "key_bundle": testBundleFor(name),
	}), 201, "register")
	expect(ts.do("POST", "/api/prelogin", "", map[string]any{"username": name}), 200, "prelogin")
	r := expect(ts.do("POST", "/api/login", "", map[string]any{"username": name, "auth_key": b64(authKey)}), 200, "login")
	access1, refresh1 := str(r, "access_token"), str(r, "refresh_token")
	s.addToken("access token 1", access1)
	s.addToken("refresh token 1", refresh1)
	expect(ts.do("GET", "/api/account", access1, nil), 200, "account")

	r = expect(ts.do("POST", "/api/refresh", "", map[string]any{"refresh_token": refresh1}), 200, "refresh")
	access2, refresh2 := str(r, "access_token"), str(r, "refresh_token")
	s.addToken("access token 2", access2)
	s.addToken("refresh token 2", refresh2)

	email2 := "other-" + hex.EncodeToString(randBytes(6)) + "@mail.example"
	s["email 2"] = []string{email2}
	expect(ts.do("PUT", "/api/account-settings", access2, map[string]any{"email": email2, "default_retention_days": 30}), 200, "settings")

	authKey2, epk2, salt2, nonce2 := randBytes(32), randBytes(2000), randBytes(16), randBytes(12)
	s.addBytes("auth key 2", authKey2)
	s.addBytes("encrypted_private_key 2", epk2)
	s.addBytes("salt 2", salt2)
	s.addBytes("nonce 2", nonce2)
	expect(ts.do("PUT", "/api/account-settings", access2, map[string]any{"password": map[string]any{
		"current_auth_key": b64(authKey), "auth_key": b64(authKey2), "encrypted_private_key": b64(epk2),
		"salt": b64(salt2), "nonce": b64(nonce2),
	}}), 200, "password change")

	// A browser session.
	r = expect(ts.do("POST", "/api/login", "", map[string]any{"username": name, "auth_key": b64(authKey2), "use_cookies": true}), 200, "cookie login")
	csrf := str(r, "csrf_token")
	cAccess, cRefresh := cookieValue(t, r, "pl_access"), cookieValue(t, r, "pl_refresh")
	s.addToken("CSRF token", csrf)
	s.addToken("cookie access token", cAccess)
	s.addToken("cookie refresh token", cRefresh)
	cookies := func(access, refresh string) string { return "pl_access=" + access + "; pl_refresh=" + refresh }
	expect(ts.do("GET", "/api/account", "", nil, "Cookie", cookies(cAccess, cRefresh)), 200, "cookie account")
	expect(ts.do("PUT", "/api/account-settings", "", map[string]any{"default_retention_days": 7},
		"Cookie", cookies(cAccess, cRefresh), "X-CSRF-Token", csrf), 200, "cookie settings")
	expect(ts.do("PUT", "/api/account-settings", "", map[string]any{"default_retention_days": 8},
		"Cookie", cookies(cAccess, cRefresh), "X-CSRF-Token", csrf+"x"), 403, "cookie settings with a wrong CSRF token")
	r = expect(ts.do("POST", "/api/refresh", "", nil, "Cookie", cookies(cAccess, cRefresh), "X-CSRF-Token", csrf), 200, "cookie refresh")
	cAccess2, cRefresh2 := cookieValue(t, r, "pl_access"), cookieValue(t, r, "pl_refresh")
	s.addToken("cookie access token 2", cAccess2)
	s.addToken("cookie refresh token 2", cRefresh2)

	// Failures, each carrying secrets.
	wrong := randBytes(32)
	s.addBytes("wrong auth key", wrong)
	expect(ts.do("POST", "/api/login", "", map[string]any{"username": name, "auth_key": b64(wrong)}), 401, "wrong login")
	expect(ts.do("POST", "/api/login", "", map[string]any{"username": name, "auth_key": b64(authKey)}), 401, "login with the old key")
	email3 := "bad-" + hex.EncodeToString(randBytes(6)) + "@mail.example"
	s["invalid email"] = []string{email3}
	expect(ts.do("POST", "/api/register", "", map[string]any{
		"username": uniqueName("nope"), "email": "Name <" + email3 + ">", "auth_key": b64(authKey2),
		"encrypted_private_key": b64(epk2), "salt": b64(salt2), "nonce": b64(nonce2), "key_bundle": map[string]any{},
	}), 400, "register with a display-name email")
	expect(ts.do("POST", "/api/refresh", "", `{"refresh_token":"`+refresh2+`"`), 400, "truncated refresh")
	expect(ts.do("POST", "/api/refresh", "", `{"refresh_token":"`+refresh2+`","extra":"`+b64(authKey2)+`"}`), 400, "refresh with an unknown field")
	expect(ts.do("GET", "/api/account", access2+"x", nil), 401, "a damaged access token")
	expect(ts.do("DELETE", "/api/account", access2, map[string]any{"auth_key": b64(wrong)}), 403, "delete with a wrong key")
	expect(ts.do("PUT", "/api/account-settings", access2, map[string]any{"password": map[string]any{
		"current_auth_key": b64(wrong), "auth_key": b64(authKey), "encrypted_private_key": b64(epk),
		"salt": b64(salt), "nonce": b64(nonce),
	}}), 403, "password change with a wrong current key")
	// Replaying the first refresh token revokes its session (logged as theft).
	expect(ts.do("POST", "/api/refresh", "", map[string]any{"refresh_token": refresh1}), 401, "refresh token replay")
	expect(ts.do("GET", "/api/account", access2, nil), 401, "access after the replay")

	expect(ts.do("POST", "/api/revoke", "", nil, "Cookie", cookies(cAccess2, cRefresh2), "X-CSRF-Token", csrf), 204, "cookie revoke")
	r = expect(ts.do("POST", "/api/login", "", map[string]any{"username": name, "auth_key": b64(authKey2)}), 200, "last login")
	access3 := str(r, "access_token")
	s.addToken("access token 3", access3)
	s.addToken("refresh token 3", str(r, "refresh_token"))
	expect(ts.do("DELETE", "/api/account", access3, map[string]any{"auth_key": b64(authKey2)}), 204, "delete account")
	expect(ts.do("POST", "/api/login", "", map[string]any{"username": name, "auth_key": b64(authKey2)}), 401, "login after deletion")
	return s
}

// TestLogsHoldNoSecrets runs a whole account life on a server logging at
// Debug and searches the logs for every secret involved.
func TestLogsHoldNoSecrets(t *testing.T) {
	ts := startServer(t, testConfig(t))
	secrets := runSecretFlow(t, ts)
	checkLogsClean(t, ts.logs.String(), secrets)
}

// TestLogFileHoldsNoSecrets does the same through the logging package the
// binary uses, to a file, in plain text and encrypted.
func TestLogFileHoldsNoSecrets(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		name := "plain"
		if encrypted {
			name = "encrypted"
		}
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "logs", "homeserver.log")
			o := logging.Options{Path: path, Level: slog.LevelDebug}
			if encrypted {
				o.EncryptKey = randBytes(logging.KeySize)
			}
			logger, closer, err := logging.New(o)
			if err != nil {
				t.Fatalf("logging.New: %v", err)
			}
			t.Cleanup(func() { closer.Close() }) // if the test stops early
			ts := startServer(t, testConfig(t), func(opts *homeserver.Options) { opts.Log = logger })
			secrets := runSecretFlow(t, ts)
			ts.stop() // its last records, then nothing more
			if err := closer.Close(); err != nil {
				t.Fatalf("closing the log: %v", err)
			}

			file, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			text := string(file)
			if encrypted {
				if bytes.Contains(file, []byte(`"msg"`)) || bytes.Contains(file, []byte("login")) {
					t.Fatalf("the encrypted log file has plain text in it:\n%.500s", file)
				}
				var plain bytes.Buffer
				if err := logging.Decrypt(bytes.NewReader(file), &plain, o.EncryptKey); err != nil {
					t.Fatalf("Decrypt: %v", err)
				}
				text = plain.String()
			}
			if !strings.Contains(text, `"msg":"homeserver stopped"`) {
				t.Errorf("the log file lacks the shutdown record")
			}
			checkLogsClean(t, text, secrets)
		})
	}
}

// TestSecretScanFindsLeaks checks the checker: every recorded form of a
// secret is found once slog has written it inside a JSON line.
func TestSecretScanFindsLeaks(t *testing.T) {
	s := secretSet{}
	s.addBytes("key", randBytes(32))
	s.addToken("jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU")
	s["email"] = []string{"someone.secret@mail.example"}
	for label, forms := range s {
		for _, f := range forms {
			var buf bytes.Buffer
			slog.New(slog.NewJSONHandler(&buf, nil)).Info("oops", "detail", "<"+f+">\t&")
			if got := s.find(buf.String()); len(got) != 1 || got[0] != label {
				t.Errorf("%s written as %q: found %v in %s", label, f, got, buf.String())
			}
		}
	}
	if got := s.find(`{"msg":"login","user_id":"0123456789abcdef0123456789abcdef"}`); len(got) != 0 {
		t.Errorf("found %v in a clean line", got)
	}
}
