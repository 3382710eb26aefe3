package homeserver_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/directory"
	"github.com/privateline/privateline/clients/go/e2ee"
	"github.com/privateline/privateline/keybundle"
	"github.com/privateline/privateline/keylog"
)

// Helpers for the key-directory tests: accounts with real keys, and a
// client that fetches directory answers over HTTP and checks them with the
// SDK (clients/go/directory).

// keyAccount is a registered account whose keys the test holds.
type keyAccount struct {
	*account
	Address privateline.Address
	Keys    *testKeys
}

// registerWithKeys registers an account whose bundle holds a fresh
// identity key and the RSA key of party, and logs in.
func (ts *testServer) registerWithKeys(prefix, party string) *keyAccount {
	ts.t.Helper()
	a := &account{Username: uniqueName(prefix), AuthKey: randB64(32)}
	a.Email = a.Username + "@mail.example"
	addr := privateline.Address(a.Username + "@" + string(ts.cfg.ServerName))
	k := newTestKeys(ts.t, addr, party, time.Now())
	body := registerBody(a.Username, a.AuthKey, a.Email)
	body["key_bundle"] = rawBundle(k.Bundle)
	if r := ts.do("POST", "/api/register", "", body); r.Status != http.StatusCreated {
		ts.t.Fatalf("register %s: %d %s", a.Username, r.Status, r.Body)
	}
	ts.login(a)
	return &keyAccount{account: a, Address: addr, Keys: k}
}

// rawBundle embeds a bundle in a JSON body as its own object.
func rawBundle(b *keybundle.KeyBundle) json.RawMessage { return b.JSON() }

// keyChangeBody is PUT /api/keys's body for moving a to next, signed by
// a's current keys (or, with authKey set, authorised by the password).
func keyChangeBody(t testing.TB, a *keyAccount, next *testKeys, authKey string) map[string]any {
	t.Helper()
	body := map[string]any{
		"key_bundle":            rawBundle(next.Bundle),
		"encrypted_private_key": randB64(2400),
		"nonce":                 randB64(12),
	}
	if authKey != "" {
		body["auth_key"] = authKey
		return body
	}
	sig, err := e2ee.SignKeyChange(a.Keys.Keys, a.Keys.Bundle, next.Bundle)
	if err != nil {
		t.Fatal(err)
	}
	body["old_key_signature"] = base64.StdEncoding.EncodeToString(sig)
	return body
}

// dirClient fetches a homeserver's directory answers as one client and
// verifies them with the SDK, keeping the client's last tree head.
type dirClient struct {
	t      testing.TB
	base   string // the server (or a tampering proxy) it talks to
	access string
	v      *directory.Verifier
	store  *directory.Memory
}

func newDirClient(t testing.TB, base, access string) *dirClient {
	c := &dirClient{t: t, base: base, access: access, store: &directory.Memory{}}
	c.v = directory.NewVerifier(c.store, c.consistency)
	return c
}

// via is the same client (the same pinned key and last head) talking to
// base, as when a network attacker or another server answers for the
// server: consistency proofs come from there too.
func (c *dirClient) via(t testing.TB, base, access string) *dirClient {
	d := &dirClient{t: t, base: base, access: access, store: c.store}
	d.v = directory.NewVerifier(c.store, d.consistency)
	return d
}

// get fetches a path and returns the status and body.
func (c *dirClient) get(path string) (int, []byte) {
	c.t.Helper()
	req, err := http.NewRequest("GET", c.base+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.access != "" {
		req.Header.Set("Authorization", "Bearer "+c.access)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, b
}

func (c *dirClient) consistency(_ context.Context, _ privateline.ServerName, from, to uint64) (*keylog.Consistency, error) {
	status, b := c.get(fmt.Sprintf("/api/keys/consistency?from=%d&to=%d", from, to))
	if status != http.StatusOK {
		return nil, fmt.Errorf("consistency %d→%d: %d %s", from, to, status, b)
	}
	return keylog.ParseConsistency(b)
}

// lookup fetches an address's directory answer, unverified.
func (c *dirClient) lookup(address privateline.Address) *keylog.Lookup {
	c.t.Helper()
	name, _, _ := address.Split()
	status, b := c.get("/api/public_key/" + string(name))
	if status != http.StatusOK {
		c.t.Fatalf("GET /api/public_key/%s: %d %s", name, status, b)
	}
	l, err := keylog.ParseLookup(b, 0)
	if err != nil {
		c.t.Fatalf("parsing the lookup of %s: %v\n%s", address, err, b)
	}
	return l
}

// bundle looks address up and verifies the answer.
func (c *dirClient) bundle(address privateline.Address) (*keybundle.KeyBundle, error) {
	c.t.Helper()
	return c.v.VerifyLookup(context.Background(), address, c.lookup(address))
}

// head fetches and verifies the current tree head.
func (c *dirClient) head(server privateline.ServerName) (*keylog.HeadAnswer, error) {
	c.t.Helper()
	status, b := c.get("/api/keys/head")
	if status != http.StatusOK {
		c.t.Fatalf("GET /api/keys/head: %d %s", status, b)
	}
	a, err := keylog.ParseHeadAnswer(b)
	if err != nil {
		return nil, err
	}
	return a, c.v.VerifyHead(context.Background(), server, a)
}

// tamperingProxy is a fake homeserver: it forwards to the real one and
// lets the test rewrite each response body.
func tamperingProxy(t testing.TB, real string, rewrite func(path string, body []byte) []byte) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequest(r.Method, real+r.URL.RequestURI(), r.Body)
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if rewrite != nil {
			b = rewrite(r.URL.Path, b)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(resp.StatusCode)
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// reason returns the SDK refusal code of err, for messages.
func reason(err error) string {
	if err == nil {
		return "<nil>"
	}
	if r := keybundle.ReasonOf(err); r != "" {
		return string(r)
	}
	return "no reason: " + strings.TrimSpace(err.Error())
}
