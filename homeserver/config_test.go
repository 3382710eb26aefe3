package homeserver

import (
	"bytes"
	"encoding/base64"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func lookupMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

var key32 = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))

func TestLoadConfigDefaults(t *testing.T) {
	c, err := LoadConfig(lookupMap(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.ListenAddr != ":8080" || c.DataDir != "./data" || c.MaxFileSize != 100<<20+28 || c.FileQuotaBytes != 1<<30 || c.FileUnreferencedGrace != 24*time.Hour || c.Env != "development" ||
		c.ServerName != "localhost" || c.CSP != DefaultCSP || !c.CookieCSRF || c.CookieSameSite != http.SameSiteStrictMode {
		t.Fatalf("defaults: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

// An empty METRICS_ADDR turns the metrics listener off, as documented;
// leaving it unset keeps the default.
func TestMetricsAddrEmptyDisables(t *testing.T) {
	c, err := LoadConfig(lookupMap(map[string]string{"METRICS_ADDR": ""}))
	if err != nil {
		t.Fatal(err)
	}
	if c.MetricsAddr != "" {
		t.Fatalf("METRICS_ADDR= gives %q, want the listener off", c.MetricsAddr)
	}
	c, err = LoadConfig(lookupMap(map[string]string{}))
	if err != nil {
		t.Fatal(err)
	}
	if c.MetricsAddr != "127.0.0.1:9464" {
		t.Fatalf("unset METRICS_ADDR gives %q", c.MetricsAddr)
	}
}

func TestLoadConfigEveryVariable(t *testing.T) {
	env := map[string]string{
		"PRIVATELINE_ENV": "production", "SERVER_NAME": "chat.example.org", "LISTEN_ADDR": ":9000",
		"DATA_DIR": "/var/lib/pl", "METRICS_ADDR": "127.0.0.1:9999",
		"JWT_SECRET_KEY": strings.Repeat("j", 44), "AES_KEY": key32,
		"CORS_ORIGINS":      "https://a.example.org, https://b.example.org/",
		"JWT_COOKIE_SECURE": "true", "JWT_COOKIE_SAMESITE": "None", "JWT_COOKIE_CSRF_PROTECT": "false",
		"MAX_FILE_SIZE": "1048576", "FILE_QUOTA_BYTES": "2097152", "FILE_UPLOAD_RATE_PER_MINUTE": "5", "FILE_UPLOAD_BURST": "2",
		"FILE_UNREFERENCED_GRACE_HOURS": "48", "CONTENT_SECURITY_POLICY": "default-src 'none'", "HSTS_ENABLED": "true",
		"ENCRYPTED_LOG_KEY": key32, "LOG_PATH": "/var/log/pl.log", "LOG_RETENTION_DAYS": "0",
		"LOGGING_DISABLED": "true", "SENTRY_DSN": "https://k@sentry.example.org/1",
		"APNS_CERT": "/etc/apns.pem", "APNS_TOPIC": "org.example.pl", "APNS_USE_SANDBOX": "true",
		"VAPID_PRIVATE_KEY": "/etc/vapid.pem", "VAPID_SUBJECT": "mailto:ops@example.org", "FCM_SERVER_KEY": "legacy",
		"DATABASE_URI": "postgres://x", "REDIS_URL": "redis://y", "REFRESH_TOKEN_DAYS": "7",
	}
	c, err := LoadConfig(lookupMap(env))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"production", c.Production() && c.CookieSecure},
		{"server name", c.ServerName == "chat.example.org"},
		{"listen", c.ListenAddr == ":9000" && c.DataDir == "/var/lib/pl" && c.MetricsAddr == "127.0.0.1:9999"},
		{"secrets", len(c.JWTSecret) == 44 && len(c.AESKey) == 32 && len(c.EncryptedLogKey) == 32},
		{"cors", len(c.CORSOrigins) == 2 && c.CORSOrigins[1] == "https://b.example.org"},
		{"cookies", c.CookieSameSite == http.SameSiteNoneMode && !c.CookieCSRF},
		{"files", c.MaxFileSize == 1<<20 && c.FileQuotaBytes == 2<<20 && c.FileUploadRatePerMin == 5 && c.FileUploadBurst == 2 && c.FileUnreferencedGrace == 48*time.Hour},
		{"headers", c.CSP == "default-src 'none'" && c.HSTS},
		{"logs", c.LogPath == "/var/log/pl.log" && c.LogRetentionDays == 0 && c.LoggingDisabled && c.SentryDSN != ""},
		{"push", c.APNSCert != "" && c.APNSTopic != "" && c.APNSUseSandbox && c.VAPIDPrivateKey != "" && c.VAPIDSubject != "" && c.FCMServerKey != ""},
		{"refresh", c.RefreshTokenTTL == 7*24*time.Hour},
	}
	for _, ch := range checks {
		if !ch.ok {
			t.Errorf("%s not loaded: %+v", ch.name, c)
		}
	}
	notices := strings.Join(c.Notices, "\n")
	for _, want := range []string{"DATABASE_URI", "REDIS_URL", "embedded store"} {
		if !strings.Contains(notices, want) {
			t.Errorf("notices do not mention %s: %s", want, notices)
		}
	}
}

func TestConfigErrorsNameTheVariable(t *testing.T) {
	for _, tc := range []struct {
		env      map[string]string
		variable string
	}{
		{map[string]string{"AES_KEY": "short"}, "AES_KEY"},
		{map[string]string{"AES_KEY": base64.StdEncoding.EncodeToString(make([]byte, 16))}, "AES_KEY"},
		{map[string]string{"ENCRYPTED_LOG_KEY": "!!"}, "ENCRYPTED_LOG_KEY"},
		{map[string]string{"JWT_SECRET_KEY": "too-short"}, "JWT_SECRET_KEY"},
		{map[string]string{"PRIVATELINE_ENV": "production", "AES_KEY": key32}, "JWT_SECRET_KEY"},
		{map[string]string{"PRIVATELINE_ENV": "production", "JWT_SECRET_KEY": strings.Repeat("j", 32)}, "AES_KEY"},
		{map[string]string{"PRIVATELINE_ENV": "staging"}, "PRIVATELINE_ENV"},
		{map[string]string{"JWT_COOKIE_SAMESITE": "sometimes"}, "JWT_COOKIE_SAMESITE"},
		{map[string]string{"JWT_COOKIE_SAMESITE": "None"}, "JWT_COOKIE_SAMESITE"}, // without Secure
		{map[string]string{"JWT_COOKIE_SECURE": "yes please"}, "JWT_COOKIE_SECURE"},
		{map[string]string{"MAX_FILE_SIZE": "-1"}, "MAX_FILE_SIZE"},
		{map[string]string{"MAX_FILE_SIZE": "5MB"}, "MAX_FILE_SIZE"},
		{map[string]string{"MAX_FILE_SIZE": "104857629"}, "MAX_FILE_SIZE"},
		{map[string]string{"FILE_QUOTA_BYTES": "1000"}, "FILE_QUOTA_BYTES"},
		{map[string]string{"FILE_QUOTA_BYTES": "0"}, "FILE_QUOTA_BYTES"},
		{map[string]string{"FILE_UPLOAD_RATE_PER_MINUTE": "-1"}, "FILE_UPLOAD_RATE_PER_MINUTE"},
		{map[string]string{"FILE_UPLOAD_BURST": "0"}, "FILE_UPLOAD_BURST"},
		{map[string]string{"FILE_UNREFERENCED_GRACE_HOURS": "0"}, "FILE_UNREFERENCED_GRACE_HOURS"},
		{map[string]string{"FILE_UNREFERENCED_GRACE_HOURS": "721"}, "FILE_UNREFERENCED_GRACE_HOURS"},
		{map[string]string{"LOG_RETENTION_DAYS": "-3"}, "LOG_RETENTION_DAYS"},
		{map[string]string{"LOG_RETENTION_DAYS": "a week"}, "LOG_RETENTION_DAYS"},
		{map[string]string{"CORS_ORIGINS": "*"}, "CORS_ORIGINS"},
		{map[string]string{"CORS_ORIGINS": "https://x.org/app"}, "CORS_ORIGINS"},
		{map[string]string{"SERVER_NAME": "Bad Name"}, "SERVER_NAME"},
		{map[string]string{"SENTRY_DSN": "not a dsn"}, "SENTRY_DSN"},
	} {
		c, err := LoadConfig(lookupMap(tc.env))
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tc.variable) {
			t.Errorf("%v: error %v does not name %s", tc.env, err, tc.variable)
		}
		if strings.Contains(tc.variable, "KEY") && err != nil && !strings.Contains(err.Error(), "openssl rand -base64 32") {
			t.Errorf("%v: error %v does not say how to make a key", tc.env, err)
		}
	}
}

func TestDotEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".env")
	os.WriteFile(path, []byte("# comment\n\nexport SERVER_NAME=dotenv.example\nLISTEN_ADDR=\":7000\"\nDATA_DIR='/srv/pl' \nMAX_FILE_SIZE=100 # bytes\n"), 0o600)
	vars, err := ReadDotEnv(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("LISTEN_ADDR", ":7001") // the environment wins
	c, err := LoadConfig(EnvLookup(vars))
	if err != nil {
		t.Fatal(err)
	}
	if c.ServerName != "dotenv.example" || c.ListenAddr != ":7001" || c.DataDir != "/srv/pl" || c.MaxFileSize != 100 {
		t.Fatalf("got %+v", c)
	}
	if vars, err := ReadDotEnv(filepath.Join(t.TempDir(), "missing")); err != nil || vars != nil {
		t.Fatalf("missing .env: %v %v", vars, err)
	}
	os.WriteFile(path, []byte("NOT A LINE\n"), 0o600)
	if _, err := ReadDotEnv(path); err == nil || !strings.Contains(err.Error(), ":1:") {
		t.Fatalf("bad line not reported with its number: %v", err)
	}
}

func TestDevelopmentSecretsGeneratedOnce(t *testing.T) {
	c := Default()
	c.DataDir = filepath.Join(t.TempDir(), "data")
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	if err := ensureSecrets(&c, log); err != nil {
		t.Fatal(err)
	}
	if len(c.JWTSecret) < 32 || len(c.AESKey) != 32 {
		t.Fatalf("secrets not filled: %d %d", len(c.JWTSecret), len(c.AESKey))
	}
	if !strings.Contains(logs.String(), "JWT_SECRET_KEY") || !strings.Contains(logs.String(), "AES_KEY") {
		t.Fatalf("no warning: %s", logs.String())
	}
	for _, f := range []string{"jwt_secret_key", "aes_key"} {
		st, err := os.Stat(filepath.Join(c.DataDir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, st.Mode(), err)
		}
	}
	c2 := Default()
	c2.DataDir = c.DataDir
	if err := ensureSecrets(&c2, log); err != nil {
		t.Fatal(err)
	}
	if !c2.JWTSecret.Equal(c.JWTSecret) || !c2.AESKey.Equal(c.AESKey) {
		t.Fatal("secrets regenerated on the second start")
	}
	// A secret given in the environment is used and nothing is generated.
	c3 := Default()
	c3.DataDir = filepath.Join(t.TempDir(), "other")
	c3.AESKey = bytes.Repeat([]byte{9}, 32)
	if err := ensureSecrets(&c3, log); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(c3.DataDir, "aes_key")); !os.IsNotExist(err) {
		t.Fatal("aes_key generated although AES_KEY was set")
	}
}

// TestEnvExampleListsEveryVariable keeps .env.example in step with
// LoadConfig: every variable it reads is documented there.
func TestEnvExampleListsEveryVariable(t *testing.T) {
	example, err := os.ReadFile("../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	var read []string
	if _, err := LoadConfig(func(k string) (string, bool) { read = append(read, k); return "", false }); err != nil {
		t.Fatal(err)
	}
	if len(read) < 30 {
		t.Fatalf("LoadConfig read only %d variables", len(read))
	}
	for _, k := range read {
		if !strings.Contains(string(example), k+"=") {
			t.Errorf(".env.example does not list %s", k)
		}
	}
}

func TestTrustedProxiesConfig(t *testing.T) {
	c, err := LoadConfig(lookupMap(map[string]string{"TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7,::1"}))
	if err != nil || len(c.TrustedProxies) != 3 || c.TrustedProxies[1].String() != "192.168.1.7/32" {
		t.Fatalf("%v %v", c.TrustedProxies, err)
	}
	if _, err := LoadConfig(lookupMap(map[string]string{"TRUSTED_PROXIES": "proxy.internal"})); err == nil || !strings.Contains(err.Error(), "TRUSTED_PROXIES") {
		t.Fatalf("bad entry: %v", err)
	}
}
