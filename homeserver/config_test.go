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
		"APNS_CERT": "/etc/apns.pem", "APNS_CERT_PASSWORD": "pw", "APNS_KEY": "/etc/AuthKey.p8", "APNS_KEY_ID": "K1", "APNS_TEAM_ID": "T1",
		"APNS_TOPIC": "org.example.pl", "APNS_USE_SANDBOX": "true",
		"VAPID_PRIVATE_KEY": "/etc/vapid.pem", "VAPID_SUBJECT": "mailto:ops@example.org", "WEB_PUSH_ALLOWED_HOSTS": " Push.Example.net, .notify.example ,",
		"FCM_CREDENTIALS_FILE": "/etc/fcm.json", "FCM_SERVER_KEY": "legacy",
		"DATABASE_URI": "postgres://x", "REDIS_URL": "redis://y", "REFRESH_TOKEN_DAYS": "7",
		"STORE_MEMTABLE_BYTES": "67108864",
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
		{"push", c.APNSCert == "/etc/apns.pem" && c.APNSCertPassword == "pw" && c.APNSKey == "/etc/AuthKey.p8" && c.APNSKeyID == "K1" && c.APNSTeamID == "T1" &&
			c.APNSTopic != "" && c.APNSUseSandbox && c.VAPIDPrivateKey != "" && c.VAPIDSubject != "" && c.FCMCredentialsFile == "/etc/fcm.json" && c.FCMServerKey != "" &&
			strings.Join(c.WebPushHosts, " ") == "push.example.net .notify.example"},
		{"refresh", c.RefreshTokenTTL == 7*24*time.Hour},
		{"store", c.StoreMemTableBytes == 64<<20},
	}
	for _, ch := range checks {
		if !ch.ok {
			t.Errorf("%s not loaded: %+v", ch.name, c)
		}
	}
	notices := strings.Join(c.Notices, "\n")
	for _, want := range []string{"DATABASE_URI", "REDIS_URL", "embedded store", "FCM_SERVER_KEY is ignored"} {
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
		{map[string]string{"WEB_PUSH_ALLOWED_HOSTS": " , "}, "WEB_PUSH_ALLOWED_HOSTS"},
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
		{map[string]string{"STORE_MEMTABLE_BYTES": "1000"}, "STORE_MEMTABLE_BYTES"},
		{map[string]string{"STORE_MEMTABLE_BYTES": "2147483648"}, "STORE_MEMTABLE_BYTES"},
		{map[string]string{"STORE_MEMTABLE_BYTES": "64MiB"}, "STORE_MEMTABLE_BYTES"},
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

// Two identity keys in the b64 of FEDERATION_PEERS.
var (
	peerKeyB = bytes.Repeat([]byte{0xb}, 32)
	peerKeyC = bytes.Repeat([]byte{0xc}, 32)
	peerB64B = base64.StdEncoding.EncodeToString(peerKeyB)
	peerB64C = base64.StdEncoding.EncodeToString(peerKeyC)
)

func TestFederationConfigDefaultsOff(t *testing.T) {
	c, err := LoadConfig(lookupMap(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.FederationListenAddr != "" || c.FederationPeers != nil || c.FederationGossipAddr != "" || c.FederationGossipKey != nil {
		t.Fatalf("federation is on by default: %+v", c)
	}
	if c.FederationDeliveryTimeout != 72*time.Hour || c.FederationRatePerOrigin != 200 || c.FederationWitnessInterval != 10*time.Minute {
		t.Fatalf("federation defaults: timeout %v, rate %v, witness interval %v", c.FederationDeliveryTimeout, c.FederationRatePerOrigin, c.FederationWitnessInterval)
	}
	if len(c.Notices) != 0 {
		t.Fatalf("notices without any setting: %q", c.Notices)
	}
}

func TestLoadConfigFederation(t *testing.T) {
	gossipKey := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{5}, 16))
	env := map[string]string{
		"SERVER_NAME":               "a.example.org",
		"FEDERATION_LISTEN_ADDR":    "0.0.0.0:8448",
		"FEDERATION_ADVERTISE_ADDR": "a.example.org:8448",
		// §5.1: whitespace or ';' between entries, optional key, IPv6 in brackets.
		"FEDERATION_PEERS": " b.example.org=b.example.org:8448," + peerB64B + ";localhost:8082=127.0.0.1:9082\n\t" +
			"c.example.org=[2001:db8::c]:8448," + peerB64C + " ; ;",
		"FEDERATION_ALLOW":                 "b.example.org, c.example.org,localhost:8082",
		"FEDERATION_DENY":                  "evil.example",
		"FEDERATION_DELIVERY_TIMEOUT":      "36h30m",
		"FEDERATION_RATE_PER_ORIGIN":       "12.5",
		"FEDERATION_WITNESS_INTERVAL":      "2m30s",
		"FEDERATION_GOSSIP_ADDR":           "0.0.0.0:7946",
		"FEDERATION_SEEDS":                 "b.example.org:7946, [2001:db8::c]:7946",
		"FEDERATION_GOSSIP_KEY":            gossipKey,
		"FEDERATION_GOSSIP_ADVERTISE_ADDR": "a.example.org:7946",
	}
	c, err := LoadConfig(lookupMap(env))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []FederationPeer{
		{Name: "b.example.org", Addr: "b.example.org:8448", Key: peerKeyB},
		{Name: "localhost:8082", Addr: "127.0.0.1:9082"},
		{Name: "c.example.org", Addr: "[2001:db8::c]:8448", Key: peerKeyC},
	}
	if len(c.FederationPeers) != len(want) {
		t.Fatalf("peers: %v", c.FederationPeers)
	}
	for i, p := range c.FederationPeers {
		if p.Name != want[i].Name || p.Addr != want[i].Addr || !bytes.Equal(p.Key, want[i].Key) || (p.Key == nil) != (want[i].Key == nil) {
			t.Errorf("peer %d = %v, want %v", i, p, want[i])
		}
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"listen", c.FederationListenAddr == "0.0.0.0:8448" && c.FederationAdvertiseAddr == "a.example.org:8448"},
		{"allow", len(c.FederationAllow) == 3 && c.FederationAllow[1] == "c.example.org" && c.FederationAllow[2] == "localhost:8082"},
		{"deny", len(c.FederationDeny) == 1 && c.FederationDeny[0] == "evil.example"},
		{"timeout", c.FederationDeliveryTimeout == 36*time.Hour+30*time.Minute},
		{"rate", c.FederationRatePerOrigin == 12.5},
		{"witness interval", c.FederationWitnessInterval == 2*time.Minute+30*time.Second},
		{"gossip", c.FederationGossipAddr == "0.0.0.0:7946" && len(c.FederationSeeds) == 2 && c.FederationSeeds[1] == "[2001:db8::c]:7946"},
		{"gossip key", bytes.Equal(c.FederationGossipKey, bytes.Repeat([]byte{5}, 16))},
		{"gossip advertise", c.FederationGossipAdvertise == "a.example.org:7946"},
	}
	for _, ch := range checks {
		if !ch.ok {
			t.Errorf("%s not loaded: %+v", ch.name, c)
		}
	}
	// The interval reaches the federation service.
	if fc := federationConfig(c, nil, nil, slog.New(slog.DiscardHandler), time.Now, nil); fc.WitnessInterval != c.FederationWitnessInterval {
		t.Errorf("the federation service's witness interval is %v, want %v", fc.WitnessInterval, c.FederationWitnessInterval)
	}
	// A consistent configuration with an encrypted gossip gives no notice.
	if len(c.Notices) != 0 {
		t.Errorf("a consistent federation configuration gives notices: %q", c.Notices)
	}
	// A peer's String is its FEDERATION_PEERS entry.
	if s := c.FederationPeers[0].String(); s != "b.example.org=b.example.org:8448,"+peerB64B {
		t.Errorf("String() = %q", s)
	}
	for _, n := range []int{24, 32} {
		c, err := LoadConfig(lookupMap(map[string]string{"FEDERATION_GOSSIP_KEY": base64.StdEncoding.EncodeToString(make([]byte, n))}))
		if err == nil {
			err = c.Validate()
		}
		if err != nil {
			t.Errorf("gossip key of %d bytes: %v", n, err)
		}
	}
}

// Every federation mistake is refused with a message that names the
// variable and the entry at fault.
func TestFederationConfigErrors(t *testing.T) {
	short := base64.StdEncoding.EncodeToString(make([]byte, 31))
	for _, tc := range []struct {
		value    string // FEDERATION_PEERS unless variable differs
		variable string
		mention  string // the entry or value the message must quote
	}{
		{"b.example", "FEDERATION_PEERS", `"b.example"`},
		{"=b.example:8448", "FEDERATION_PEERS", `"=b.example:8448"`},
		{"b.example=", "FEDERATION_PEERS", `"b.example="`},
		{"b.example=,", "FEDERATION_PEERS", `"b.example=,"`},
		{"b.example=b.example:8448,", "FEDERATION_PEERS", "must be name=host:port"},
		{"b.example=b.example:8448," + peerB64B + "," + peerB64C, "FEDERATION_PEERS", "must be name=host:port"},
		{"b.example=b.example:8448," + strings.TrimRight(peerB64B, "="), "FEDERATION_PEERS", "standard base64 with padding"},
		{"b.example=b.example:8448," + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32)), "FEDERATION_PEERS", "standard base64 with padding"},
		{"b.example=b.example:8448," + short, "FEDERATION_PEERS", "31 bytes"},
		{"B.Example=b.example:8448", "FEDERATION_PEERS", `"B.Example"`},
		{"b.example=b.example", "FEDERATION_PEERS", `"b.example"`},
		{"b.example=b.example:0", "FEDERATION_PEERS", "port"},
		{"b.example=b.example:99999", "FEDERATION_PEERS", "port"},
		{"b.example=b.example:https", "FEDERATION_PEERS", "port"},
		{"b.example=2001:db8::b:8448", "FEDERATION_PEERS", "brackets"},
		{"b.example=[b.example]:8448", "FEDERATION_PEERS", "not an IPv6"},
		{"b.example=0.0.0.0:8448", "FEDERATION_PEERS", "reach"},
		{"b.example=:8448", "FEDERATION_PEERS", "reach"},
		{"b.example=b_ex/ample:8448", "FEDERATION_PEERS", "neither an IP address nor a DNS name"},
		{"a.example=a.example:8448", "FEDERATION_PEERS", "SERVER_NAME"},
		{"b.example=b.example:8448;c.example=c.example:8448 b.example=10.0.0.2:8448", "FEDERATION_PEERS", "b.example is listed twice"},
		{"8448", "FEDERATION_LISTEN_ADDR", `"8448"`},
		{"0.0.0.0:http", "FEDERATION_LISTEN_ADDR", "port"},
		{"0.0.0.0:8448", "FEDERATION_ADVERTISE_ADDR", "reach"},
		{"a.example", "FEDERATION_ADVERTISE_ADDR", `"a.example"`},
		{"b.example, Bad Name", "FEDERATION_ALLOW", `"Bad Name"`},
		{"b.example,x@y", "FEDERATION_DENY", `"x@y"`},
		{"3 days", "FEDERATION_DELIVERY_TIMEOUT", "72h"},
		{"0s", "FEDERATION_DELIVERY_TIMEOUT", "more than 0"},
		{"-1h", "FEDERATION_DELIVERY_TIMEOUT", "more than 0"},
		{"168h", "FEDERATION_DELIVERY_TIMEOUT", "less than 168h"},
		{"ten minutes", "FEDERATION_WITNESS_INTERVAL", "10m"},
		{"0", "FEDERATION_WITNESS_INTERVAL", "at least 1s"},
		{"0s", "FEDERATION_WITNESS_INTERVAL", "at least 1s"},
		{"-5m", "FEDERATION_WITNESS_INTERVAL", "at least 1s"},
		{"500ms", "FEDERATION_WITNESS_INTERVAL", "at least 1s"},
		{"200/s", "FEDERATION_RATE_PER_ORIGIN", "number"},
		{"0", "FEDERATION_RATE_PER_ORIGIN", "positive"},
		{"NaN", "FEDERATION_RATE_PER_ORIGIN", "positive"},
		{"+Inf", "FEDERATION_RATE_PER_ORIGIN", "positive"},
		{"7946", "FEDERATION_GOSSIP_ADDR", `"7946"`},
		{"b.example:7946,c.example", "FEDERATION_SEEDS", `"c.example"`},
		{"b.example:7946,0.0.0.0:7946", "FEDERATION_SEEDS", `"0.0.0.0:7946"`},
		{"gossip.example:7946", "FEDERATION_GOSSIP_ADDR", "IP address, not a host name"},
		{"0.0.0.0:7946", "FEDERATION_GOSSIP_ADVERTISE_ADDR", "unspecified"},
		{"a.example", "FEDERATION_GOSSIP_ADVERTISE_ADDR", `"a.example"`},
		{"not base64!", "FEDERATION_GOSSIP_KEY", "16, 24 or 32 bytes"},
		{strings.TrimRight(key32, "="), "FEDERATION_GOSSIP_KEY", "with padding"},
		{base64.StdEncoding.EncodeToString(make([]byte, 20)), "FEDERATION_GOSSIP_KEY", "decodes to 20"},
	} {
		variable := tc.variable
		env := map[string]string{"SERVER_NAME": "a.example", "FEDERATION_LISTEN_ADDR": "0.0.0.0:8448", variable: tc.value}
		c, err := LoadConfig(lookupMap(env))
		if err == nil {
			err = c.Validate()
		}
		if err == nil {
			t.Errorf("%s=%q accepted", variable, tc.value)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, variable) || !strings.Contains(msg, tc.mention) {
			t.Errorf("%s=%q: error %q does not name %s and %s", variable, tc.value, msg, variable, tc.mention)
		}
		if strings.HasSuffix(variable, "_KEY") && !strings.Contains(msg, "openssl rand -base64 32") {
			t.Errorf("%s=%q: error %q does not say how to make a key", variable, tc.value, msg)
		}
	}
}

// A Config built in code (not from the environment) is checked as well.
func TestValidateFederationPeersInCode(t *testing.T) {
	c := Default()
	c.FederationPeers = []FederationPeer{{Name: "b.example", Addr: "b.example:8448", Key: make([]byte, 16)}}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "FEDERATION_PEERS") || !strings.Contains(err.Error(), "32-byte") {
		t.Fatalf("short key: %v", err)
	}
	c.FederationPeers[0].Key = nil
	if err := c.Validate(); err != nil {
		t.Fatalf("a peer without a key (pinned on first contact): %v", err)
	}
	c.FederationDeliveryTimeout = 0
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "FEDERATION_DELIVERY_TIMEOUT") {
		t.Fatalf("zero timeout: %v", err)
	}
}

// Settings that do nothing, or that contradict each other without being
// wrong, are reported as notices at start.
func TestFederationConfigNotices(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want []string // substrings, one notice each; nil: no notice
	}{
		{map[string]string{"FEDERATION_PEERS": "b.example=b.example:8448"}, []string{"FEDERATION_PEERS is set but FEDERATION_LISTEN_ADDR is empty"}},
		{map[string]string{"FEDERATION_LISTEN_ADDR": "0.0.0.0:8448"}, []string{"FEDERATION_ADVERTISE_ADDR"}},
		{map[string]string{"FEDERATION_LISTEN_ADDR": ":8448"}, []string{"FEDERATION_ADVERTISE_ADDR"}},
		{map[string]string{"FEDERATION_LISTEN_ADDR": "127.0.0.1:8448"}, nil},
		{map[string]string{"FEDERATION_LISTEN_ADDR": "127.0.0.1:8448", "FEDERATION_SEEDS": "b.example:7946"}, []string{"FEDERATION_SEEDS is set but FEDERATION_GOSSIP_ADDR is empty"}},
		{map[string]string{"FEDERATION_LISTEN_ADDR": "127.0.0.1:8448", "FEDERATION_GOSSIP_ADVERTISE_ADDR": "a.example:7946"}, []string{"FEDERATION_GOSSIP_ADVERTISE_ADDR is set but FEDERATION_GOSSIP_ADDR is empty"}},
		{map[string]string{"FEDERATION_LISTEN_ADDR": "127.0.0.1:8448", "FEDERATION_GOSSIP_ADDR": "127.0.0.1:7946"}, []string{"without FEDERATION_GOSSIP_KEY: gossip is not encrypted"}},
		{map[string]string{"FEDERATION_GOSSIP_ADDR": "127.0.0.1:7946"}, []string{"FEDERATION_GOSSIP_ADDR is set but FEDERATION_LISTEN_ADDR is empty"}},
		{map[string]string{"FEDERATION_LISTEN_ADDR": "127.0.0.1:8448", "FEDERATION_PEERS": "b.example=b.example:8448", "FEDERATION_DENY": "b.example"}, []string{"b.example, which FEDERATION_DENY refuses"}},
		{map[string]string{"FEDERATION_LISTEN_ADDR": "127.0.0.1:8448", "FEDERATION_PEERS": "b.example=b.example:8448 c.example=c.example:8448", "FEDERATION_ALLOW": "c.example"}, []string{"b.example, which is not on FEDERATION_ALLOW"}},
	} {
		c, err := LoadConfig(lookupMap(tc.env))
		if err == nil {
			err = c.Validate()
		}
		if err != nil {
			t.Errorf("%v: %v", tc.env, err)
			continue
		}
		if len(c.Notices) != len(tc.want) {
			t.Errorf("%v: notices %q, want %d", tc.env, c.Notices, len(tc.want))
			continue
		}
		for i, w := range tc.want {
			if !strings.Contains(c.Notices[i], w) {
				t.Errorf("%v: notice %q does not say %q", tc.env, c.Notices[i], w)
			}
		}
	}
}
