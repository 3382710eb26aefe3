package homeserver_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/cjson"
	"github.com/privateline/privateline/clients/go/directory"
	"github.com/privateline/privateline/clients/go/e2ee"
	"github.com/privateline/privateline/homeserver"
	"github.com/privateline/privateline/keybundle"
	"github.com/privateline/privateline/keylog"
	"github.com/privateline/privateline/merkle"
	"github.com/privateline/privateline/serverkey"
)

// The key directory through a real homeserver: registration checks
// bundles, lookups come with proofs that the SDK verifies, key changes are
// logged and stay consistent, a forged, forked or rolled-back directory is
// caught, pins roam with If-Match, and deletion erases the user but not
// the log.

// TestDirectoryEndToEnd is the "done when": two users register
// through the real homeserver with the SDK (password-derived keys, wrapped
// private keys, signed bundles), fetch and verify each other's bundles
// through the directory, and exchange an envelope only the recipient can
// open.
func TestDirectoryEndToEnd(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig(t))

	type user struct {
		name, authKey string
		keys          *e2ee.PrivateKeys
		access        string
	}
	signUp := func(prefix, party, password string) *user {
		t.Helper()
		name := uniqueName(prefix)
		addr := privateline.Address(name + "@hs.test")
		salt := make([]byte, e2ee.SaltSize)
		rand.Read(salt)
		pk, err := e2ee.DerivePasswordKeys(password, e2ee.KDFName, e2ee.Iterations, salt)
		if err != nil {
			t.Fatal(err)
		}
		k := newTestKeys(t, addr, party, time.Now())
		wrapped, err := e2ee.WrapPrivateKeys(nil, pk.KEK, k.Keys)
		if err != nil {
			t.Fatal(err)
		}
		b64 := base64.StdEncoding.EncodeToString
		r := ts.do("POST", "/api/register", "", map[string]any{
			"username": name, "auth_key": b64(pk.AuthKey.Bytes()), "salt": b64(salt),
			"encrypted_private_key": b64(wrapped.Ciphertext), "nonce": b64(wrapped.Nonce),
			"key_bundle": rawBundle(k.Bundle),
		})
		expectHTTPStatus(t, r, http.StatusCreated, "register "+name)

		// A new device: prelogin, derive, log in, unwrap, check against the bundle.
		pre := ts.do("POST", "/api/prelogin", "", map[string]any{"username": name}).json(t)
		salt2, _ := base64.StdEncoding.DecodeString(pre["salt"].(string))
		pk2, err := e2ee.DerivePasswordKeys(password, pre["kdf"].(string), int(pre["iterations"].(float64)), salt2)
		if err != nil {
			t.Fatal(err)
		}
		lr := ts.do("POST", "/api/login", "", map[string]any{"username": name, "auth_key": b64(pk2.AuthKey.Bytes())})
		expectHTTPStatus(t, lr, http.StatusOK, "login "+name)
		m := lr.json(t)
		ct, _ := base64.StdEncoding.DecodeString(m["encrypted_private_key"].(string))
		nonce, _ := base64.StdEncoding.DecodeString(m["nonce"].(string))
		keys, err := e2ee.UnwrapPrivateKeys(pk2.KEK, addr, &e2ee.WrappedKeys{Nonce: nonce, Ciphertext: ct})
		if err != nil {
			t.Fatalf("unwrapping %s's keys on a new device: %v", name, err)
		}
		bj, _ := json.Marshal(m["key_bundle"])
		served, err := e2ee.ParseKeyBundle(bj)
		if err != nil || !keys.Matches(served) {
			t.Fatalf("login returned a bundle that does not match the unwrapped keys: %v", err)
		}
		return &user{name: name, authKey: b64(pk2.AuthKey.Bytes()), keys: keys, access: m["access_token"].(string)}
	}
	alice := signUp("alice", "alice", "correct horse battery staple")
	bob := signUp("bob", "bob", "Tr0ub4dor&3")
	carol := ts.registerWithKeys("carol", "carol")

	// Each fetches and verifies the other's bundle through the directory.
	aliceDir := newDirClient(t, ts.URL, alice.access)
	bobDir := newDirClient(t, ts.URL, bob.access)
	bobBundle, err := aliceDir.bundle(bob.keys.Address())
	if err != nil {
		t.Fatalf("alice verifying bob's bundle: %v", err)
	}
	aliceBundle, err := bobDir.bundle(alice.keys.Address())
	if err != nil {
		t.Fatalf("bob verifying alice's bundle: %v", err)
	}
	if !bob.keys.Matches(bobBundle) || !alice.keys.Matches(aliceBundle) {
		t.Fatal("the directory served bundles that are not the users' keys")
	}
	// Both saw a head signed by the server's identity key.
	for _, c := range []*dirClient{aliceDir, bobDir} {
		st, _ := c.store.Load("hs.test")
		if st == nil || !st.Key.Equal(ts.srv.IdentityKey()) || st.Head == nil {
			t.Fatalf("the client pinned %+v, want the server's identity key and a head", st)
		}
	}

	env, err := e2ee.SealDirect(nil, alice.keys, []*e2ee.KeyBundle{bobBundle}, e2ee.Draft{
		Conversation: "dm:" + alice.name + ":" + bob.name, SentAt: time.Now(),
		Message: &e2ee.Message{Type: "text", Body: "meet at noon"},
	})
	if err != nil {
		t.Fatal(err)
	}
	wire, _ := env.MarshalJSON()
	got, _ := e2ee.ParseEnvelope(wire)
	msg, err := e2ee.OpenDirect(got, bob.keys, aliceBundle, e2ee.OpenOptions{Now: time.Now()})
	if err != nil || msg.Body != "meet at noon" {
		t.Fatalf("bob opening alice's envelope: %v, %+v", err, msg)
	}
	if _, err := e2ee.OpenDirect(got, carol.Keys.Keys, aliceBundle, e2ee.OpenOptions{}); e2ee.ReasonOf(err) != e2ee.ErrNotRecipient {
		t.Fatalf("carol opening an envelope for bob: %v, want not_recipient", err)
	}
}

// TestRegistrationVerifiesBundles: a bundle that is not a valid signed
// bundle of the new account's address is refused with 400 and a clear
// message, and nothing is stored or logged.
func TestRegistrationVerifiesBundles(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig(t))
	other := ts.registerWithKeys("other", "alice")

	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	spki2048, _ := x509.MarshalPKIXPublicKey(&rsa2048.PublicKey)
	idPub, idPriv, _ := ed25519.GenerateKey(rand.Reader)

	// forge re-signs a bundle object with idPriv after edit.
	forge := func(name string, edit func(m map[string]any)) json.RawMessage {
		m := map[string]any{
			"address": name + "@hs.test", "created_at": time.Now().UnixMilli(), "version": int64(1),
			"encryption_key": base64.StdEncoding.EncodeToString(newTestKeys(t, "x-x@hs.test", "alice", time.Now()).Keys.EncryptionKey().SPKI()),
			"identity_key":   base64.StdEncoding.EncodeToString(idPub),
		}
		edit(m)
		c, err := cjson.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m["signature"] = base64.StdEncoding.EncodeToString(ed25519.Sign(idPriv, append([]byte("privateline/v1/key-bundle\x00"), c...)))
		out, _ := cjson.Marshal(m)
		return out
	}
	cases := []struct {
		name   string
		bundle func(name string) json.RawMessage
		msg    string
	}{
		{"another account's bundle", func(string) json.RawMessage { return other.Keys.Bundle.JSON() }, "address must be"},
		{"another server's address", func(n string) json.RawMessage {
			return forge(n, func(m map[string]any) { m["address"] = n + "@elsewhere.example" })
		}, "address must be"},
		{"upper-case address", func(n string) json.RawMessage {
			return forge(n, func(m map[string]any) { m["address"] = strings.ToUpper(n) + "@hs.test" })
		}, "address is invalid"},
		{"a flipped signature bit", func(n string) json.RawMessage {
			b := newTestKeys(t, privateline.Address(n+"@hs.test"), "bob", time.Now()).Bundle.JSON()
			var m map[string]any
			json.Unmarshal(b, &m)
			sig, _ := base64.StdEncoding.DecodeString(m["signature"].(string))
			sig[10] ^= 1
			m["signature"] = base64.StdEncoding.EncodeToString(sig)
			out, _ := json.Marshal(m)
			return out
		}, "signature is invalid"},
		{"signed by another key", func(n string) json.RawMessage {
			b := forge(n, func(map[string]any) {})
			var m map[string]any
			json.Unmarshal(b, &m)
			m["identity_key"] = base64.StdEncoding.EncodeToString(other.Keys.Bundle.Identity[:])
			out, _ := json.Marshal(m)
			return out
		}, "signature is invalid"},
		{"an RSA-2048 key", func(n string) json.RawMessage {
			return forge(n, func(m map[string]any) { m["encryption_key"] = base64.StdEncoding.EncodeToString(spki2048) })
		}, "RSA-4096"},
		{"a 31-byte identity key", func(n string) json.RawMessage {
			return forge(n, func(m map[string]any) { m["identity_key"] = base64.StdEncoding.EncodeToString(idPub[:31]) })
		}, "identity_key"},
		{"version 2", func(n string) json.RawMessage { return forge(n, func(m map[string]any) { m["version"] = int64(2) }) }, "version"},
		{"an unknown member", func(n string) json.RawMessage { return forge(n, func(m map[string]any) { m["admin"] = true }) }, "unknown member"},
		{"a missing member", func(n string) json.RawMessage { return forge(n, func(m map[string]any) { delete(m, "created_at") }) }, "created_at"},
		{"a float", func(n string) json.RawMessage {
			return json.RawMessage(strings.Replace(string(forge(n, func(map[string]any) {})), `"version":1`, `"version":1.0`, 1))
		}, "integer"},
	}
	before, err := homeserver.StoreFingerprint(ts.srv)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := uniqueName("badbundle")
			body := registerBody(name, randB64(32), "")
			body["key_bundle"] = tc.bundle(name)
			r := ts.do("POST", "/api/register", "", body)
			expectAPIError(t, r, http.StatusBadRequest, "invalid_request", tc.name)
			if msg := r.json(t)["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "key_bundle") || !strings.Contains(msg, tc.msg) {
				t.Errorf("message %q should name key_bundle and say %q", msg, tc.msg)
			}
		})
	}
	if after, _ := homeserver.StoreFingerprint(ts.srv); after != before {
		t.Fatal("a refused registration wrote to the store")
	}
}

// TestKeyChangeConsistency rotates a user's keys both ways PUT /api/keys
// allows and checks that a contact's client follows: the new bundle
// verifies, the log grew consistently from the head it saw, and its pin
// reports the change.
func TestKeyChangeConsistency(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig(t))
	alice := ts.registerWithKeys("rotor", "alice")
	bob := ts.registerWithKeys("watcher", "bob")
	bobDir := newDirClient(t, ts.URL, bob.Access)

	first, err := bobDir.bundle(alice.Address)
	if err != nil {
		t.Fatal(err)
	}
	pinned := first.Identity
	head1, _ := bobDir.v.LastHead("hs.test")

	// 1. Signed by the old identity key.
	k2 := newTestKeys(t, alice.Address, "carol", alice.Keys.Bundle.CreatedAt.Add(time.Second))
	body := keyChangeBody(t, alice, k2, "")
	r := ts.do("PUT", "/api/keys", alice.Access, body)
	expectHTTPStatus(t, r, http.StatusOK, "key change signed by the old key")
	own, err := keylog.ParseLookup(r.Body, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Alice's own client checks her new entry at once.
	aliceDir := newDirClient(t, ts.URL, alice.Access)
	if b, err := aliceDir.v.VerifyLookup(context.Background(), alice.Address, own); err != nil || !b.Equal(k2.Bundle) {
		t.Fatalf("alice verifying her new entry: %v", err)
	}
	// Replaying the same signed change is refused: the bundle is no longer newer.
	expectAPIError(t, ts.do("PUT", "/api/keys", alice.Access, body), http.StatusConflict, "conflict", "replayed key change")
	// Signed by a key that is not the current one.
	k3 := newTestKeys(t, alice.Address, "alice", k2.Bundle.CreatedAt.Add(time.Second))
	stale := &keyAccount{account: alice.account, Address: alice.Address, Keys: alice.Keys} // the keys before the change
	expectAPIError(t, ts.do("PUT", "/api/keys", alice.Access, keyChangeBody(t, stale, k3, "")), http.StatusForbidden, "forbidden", "key change signed by the replaced key")

	second, err := bobDir.bundle(alice.Address)
	if err != nil {
		t.Fatalf("bob verifying alice's new bundle (with a consistency proof from size %d): %v", head1.TreeSize, err)
	}
	if !second.Equal(k2.Bundle) {
		t.Fatal("the directory serves the old bundle after the change")
	}
	if err := e2ee.CheckPinned(pinned, second); e2ee.ReasonOf(err) != e2ee.ErrKeyChanged {
		t.Fatalf("bob's pin after alice's key change: %v, want key_changed", err)
	}
	head2, _ := bobDir.v.LastHead("hs.test")
	if head2.TreeSize != head1.TreeSize+1 {
		t.Fatalf("the log grew from %d to %d on one key change", head1.TreeSize, head2.TreeSize)
	}

	// 2. Authorised by the password (a user who lost the old keys).
	alice.Keys = k2
	expectAPIError(t, ts.do("PUT", "/api/keys", alice.Access, keyChangeBody(t, alice, k3, randB64(32))), http.StatusForbidden, "wrong_password", "key change with a wrong auth key")
	r = ts.do("PUT", "/api/keys", alice.Access, keyChangeBody(t, alice, k3, alice.AuthKey))
	expectHTTPStatus(t, r, http.StatusOK, "key change with the auth key")
	third, err := bobDir.bundle(alice.Address)
	if err != nil || !third.Equal(k3.Bundle) {
		t.Fatalf("bob after the second change: %v", err)
	}
	// The consistency between the very first head and now holds too.
	head3, _ := bobDir.v.LastHead("hs.test")
	c, err := bobDir.consistency(context.Background(), "hs.test", head1.TreeSize, head3.TreeSize)
	if err != nil {
		t.Fatal(err)
	}
	if err := merkle.VerifyConsistency(head1.TreeSize, head3.TreeSize, head1.RootHash, head3.RootHash, c.Proof); err != nil {
		t.Fatalf("the log after two key changes does not extend the first head: %v", err)
	}

	// The account and a new device's login see the new bundle and wrapped keys.
	lr := ts.do("POST", "/api/login", "", map[string]any{"username": alice.Username, "auth_key": alice.AuthKey}).json(t)
	kb, _ := json.Marshal(lr["key_bundle"])
	if !bytes.Equal(kb, k3.Bundle.JSON()) {
		t.Fatalf("login returns bundle %s, want the new one", kb)
	}
	// A settings change cannot put an old bundle back.
	expectHTTPStatus(t, ts.do("PUT", "/api/account-settings", alice.Access, map[string]any{"email": "rotor@example.org"}), 200, "settings")
	if b, err := bobDir.bundle(alice.Address); err != nil || !b.Equal(k3.Bundle) {
		t.Fatalf("after a settings change: %v", err)
	}
}

// TestForgedDirectoryAnswers puts a tampering fake server between a client
// and the real one: every forgery is refused with its reason, and none
// moves the client's last head.
func TestForgedDirectoryAnswers(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig(t))
	alice := ts.registerWithKeys("target", "alice")
	bob := ts.registerWithKeys("client", "bob")
	_, fakeKey, _ := ed25519.GenerateKey(rand.Reader)

	type obj = map[string]any
	edit := func(b []byte, f func(m obj)) []byte {
		var m obj
		if err := json.Unmarshal(b, &m); err != nil {
			return b
		}
		f(m)
		out, _ := json.Marshal(m)
		return out
	}
	flipB64 := func(s string) string {
		b, _ := base64.StdEncoding.DecodeString(s)
		b[len(b)/2] ^= 0x40
		return base64.StdEncoding.EncodeToString(b)
	}
	// resign makes a head a fake server with its own key would sign.
	resign := func(h obj, key ed25519.PrivateKey) {
		root, _ := base64.StdEncoding.DecodeString(h["root_hash"].(string))
		th := keylog.TreeHead{Server: privateline.ServerName(h["server"].(string)), TreeSize: uint64(h["tree_size"].(float64)), Timestamp: int64(h["timestamp"].(float64))}
		copy(th.RootHash[:], root)
		h["signature"] = base64.StdEncoding.EncodeToString(ed25519.Sign(key, th.SigningInput()))
	}
	cases := []struct {
		name   string
		tamper func(m obj)
		want   keybundle.Reason
	}{
		{"root hash changed", func(m obj) { h := m["tree_head"].(obj); h["root_hash"] = flipB64(h["root_hash"].(string)) }, keybundle.ErrBadSignature},
		{"tree size changed", func(m obj) { h := m["tree_head"].(obj); h["tree_size"] = h["tree_size"].(float64) + 1 }, keybundle.ErrBadSignature},
		{"head signed by another key, same server_key", func(m obj) { resign(m["tree_head"].(obj), fakeKey) }, keybundle.ErrBadSignature},
		{"head and server_key of another key", func(m obj) {
			resign(m["tree_head"].(obj), fakeKey)
			m["server_key"] = base64.StdEncoding.EncodeToString(fakeKey.Public().(ed25519.PublicKey))
		}, keybundle.ErrServerKeyChanged},
		{"head of another server", func(m obj) { h := m["tree_head"].(obj); h["server"] = "evil.example" }, keybundle.ErrBadProof},
		{"salt changed", func(m obj) { e := m["entry"].(obj); e["salt"] = flipB64(e["salt"].(string)) }, keybundle.ErrBadProof},
		{"entry signature changed", func(m obj) { e := m["entry"].(obj); e["signature"] = flipB64(e["signature"].(string)) }, keybundle.ErrBadSignature},
		{"leaf index changed", func(m obj) { l := m["entry"].(obj)["leaf"].(obj); l["index"] = l["index"].(float64) + 1 }, keybundle.ErrBadSignature},
		{"inclusion proof changed", func(m obj) {
			p := m["inclusion_proof"].([]any)
			p[0] = flipB64(p[0].(string))
		}, keybundle.ErrBadProof},
		{"another user's bundle", func(m obj) {
			var b obj
			json.Unmarshal(bob.Keys.Bundle.JSON(), &b)
			m["key_bundle"] = b
		}, keybundle.ErrBadProof},
		{"a fresh bundle for the address", func(m obj) {
			var b obj
			json.Unmarshal(newTestKeys(t, alice.Address, "carol", time.Now()).Bundle.JSON(), &b)
			m["key_bundle"] = b
		}, keybundle.ErrBadProof},
	}

	// The client first sees the honest directory, so it has pinned the
	// key and a head.
	honest := newDirClient(t, ts.URL, bob.Access)
	if _, err := honest.bundle(alice.Address); err != nil {
		t.Fatal(err)
	}
	ts.registerWithKeys("filler", "carol") // the log grows; the proof needs ≥ 1 hash
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := honest.v.LastHead("hs.test")
			proxy := tamperingProxy(t, ts.URL, func(path string, b []byte) []byte {
				if strings.HasPrefix(path, "/api/public_key/") {
					return edit(b, tc.tamper)
				}
				return b
			})
			_, err := honest.via(t, proxy, bob.Access).bundle(alice.Address)
			if keybundle.ReasonOf(err) != tc.want {
				t.Fatalf("forged answer: %s (%v), want %s", reason(err), err, tc.want)
			}
			if after, _ := honest.v.LastHead("hs.test"); after.TreeSize != before.TreeSize || after.RootHash != before.RootHash {
				t.Fatal("a forged answer moved the client's last head")
			}
		})
	}
	// The honest answer still verifies after all that.
	if _, err := honest.bundle(alice.Address); err != nil {
		t.Fatalf("the honest directory after the forgeries: %v", err)
	}

	// A fake server's head without any lookup: refused the same way.
	proxy := tamperingProxy(t, ts.URL, func(path string, b []byte) []byte {
		return edit(b, func(m obj) { h := m["tree_head"].(obj); h["root_hash"] = flipB64(h["root_hash"].(string)) })
	})
	if _, err := honest.via(t, proxy, "").head("hs.test"); keybundle.ReasonOf(err) != keybundle.ErrBadSignature {
		t.Fatalf("forged head: %s", reason(err))
	}
}

// TestRolledBackAndForkedDirectory: a client that saw a head is shown an
// older one (rollback), or the log of a second server holding the same
// identity key and name (a fork: validly signed, different history). Both
// are caught.
func TestRolledBackAndForkedDirectory(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	ts := startServer(t, cfg)
	a := ts.registerWithKeys("early", "alice")
	// An old head, kept by an attacker.
	c := newDirClient(t, ts.URL, a.Access)
	_, oldHead := c.get("/api/keys/head")
	for range 3 {
		ts.registerWithKeys("later", "bob")
	}
	if _, err := c.head("hs.test"); err != nil {
		t.Fatal(err)
	}
	seen, _ := c.v.LastHead("hs.test")

	t.Run("rollback", func(t *testing.T) {
		old, err := keylog.ParseHeadAnswer(oldHead)
		if err != nil {
			t.Fatal(err)
		}
		if err := old.Head.Verify(ts.srv.IdentityKey()); err != nil {
			t.Fatalf("the old head is genuine: %v", err)
		}
		err = c.v.VerifyHead(context.Background(), "hs.test", old)
		if keybundle.ReasonOf(err) != keybundle.ErrLogRollback {
			t.Fatalf("an older head after a newer one: %s, want log_rollback", reason(err))
		}
		// A stale lookup answer (kept from before) is refused the same way.
		proxy := tamperingProxy(t, ts.URL, func(path string, b []byte) []byte {
			if path != "/api/keys/head" {
				return b
			}
			return oldHead
		})
		if _, err := c.via(t, proxy, "").head("hs.test"); keybundle.ReasonOf(err) != keybundle.ErrLogRollback {
			t.Fatalf("a replayed old head: %s", reason(err))
		}
	})

	t.Run("fork", func(t *testing.T) {
		// A second server with the same name and identity key but its own
		// log: every head it signs is genuine, its history is not the one
		// the client saw.
		forkCfg := testConfig(t)
		key, err := os.ReadFile(filepath.Join(cfg.DataDir, serverkey.FileName))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(forkCfg.DataDir, serverkey.FileName), key, 0o600); err != nil {
			t.Fatal(err)
		}
		fork := startServer(t, forkCfg)
		if !fork.srv.IdentityKey().Equal(ts.srv.IdentityKey()) {
			t.Fatal("the fork did not take the identity key")
		}
		// As many entries as the log the client saw: the same size, another root.
		var victim *keyAccount
		for range seen.TreeSize {
			victim = fork.registerWithKeys("forked", "carol")
		}
		fc := c.via(t, fork.URL, victim.Access)
		_, err = fc.head("hs.test")
		if keybundle.ReasonOf(err) != keybundle.ErrLogFork {
			t.Fatalf("a head of the same size and another root: %s (%v), want log_fork", reason(err), err)
		}
		// A longer forked log, with a lookup: the consistency proof fails.
		fork.registerWithKeys("forked", "carol")
		_, err = fc.bundle(victim.Address)
		if keybundle.ReasonOf(err) != keybundle.ErrLogFork {
			t.Fatalf("a forked log: %s (%v), want log_fork", reason(err), err)
		}
		// The honest server still checks out.
		if _, err := c.via(t, ts.URL, "").head("hs.test"); err != nil {
			t.Fatalf("the honest directory after the fork attempts: %v", err)
		}
	})

	t.Run("restart keeps key and log", func(t *testing.T) {
		ts.restart()
		ts.login(a.account)
		rc := c.via(t, ts.URL, a.Access)
		if _, err := rc.head("hs.test"); err != nil {
			t.Fatalf("after a restart the directory's head does not extend the last one seen: %v", err)
		}
		ts.registerWithKeys("after", "alice")
		if _, err := rc.bundle(a.Address); err != nil {
			t.Fatalf("after a restart and a registration: %v", err)
		}
	})
}

// TestPinnedKeysIfMatch: two devices of one user share the pinned-keys
// blob; the one that writes second without having seen the first write is
// refused with 412 and wins after re-reading.
func TestPinnedKeysIfMatch(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig(t))
	a := ts.registerWithKeys("pins", "alice")
	phone, laptop := a.account, ts.loginAgain(a.account)

	get := func(tok string) (uint64, []byte, string) {
		t.Helper()
		r := ts.do("GET", "/api/pinned_keys", tok, nil)
		expectHTTPStatus(t, r, http.StatusOK, "GET /api/pinned_keys")
		m := r.json(t)
		blob, _ := base64.StdEncoding.DecodeString(m["blob"].(string))
		return uint64(m["version"].(float64)), blob, r.Header.Get("ETag")
	}
	put := func(tok, ifMatch string, blob []byte) *response {
		t.Helper()
		var h []string
		if ifMatch != "" {
			h = []string{"If-Match", ifMatch}
		}
		return ts.do("PUT", "/api/pinned_keys", tok, map[string]any{"blob": base64.StdEncoding.EncodeToString(blob)}, h...)
	}

	v, blob, etag := get(phone.Access)
	if v != 0 || len(blob) != 0 || etag != `"0"` {
		t.Fatalf("fresh pins: version %d, %d bytes, ETag %s", v, len(blob), etag)
	}
	_, _, laptopETag := get(laptop.Access)

	phoneBlob := bytes.Repeat([]byte{1}, 1000)
	r := put(phone.Access, etag, phoneBlob)
	expectHTTPStatus(t, r, http.StatusOK, "first write")
	if r.Header.Get("ETag") != `"1"` || r.json(t)["version"] != float64(1) {
		t.Fatalf("first write answered %s, ETag %s", r.Body, r.Header.Get("ETag"))
	}
	// The laptop still holds version 0: its write would overwrite the
	// phone's unseen.
	expectAPIError(t, put(laptop.Access, laptopETag, []byte("laptop's pins")), http.StatusPreconditionFailed, "precondition_failed", "stale write")
	if _, b, _ := get(phone.Access); !bytes.Equal(b, phoneBlob) {
		t.Fatal("a refused write changed the blob")
	}
	v, b, laptopETag := get(laptop.Access)
	merged := append(b, []byte("+laptop")...)
	expectHTTPStatus(t, put(laptop.Access, laptopETag, merged), http.StatusOK, "write after re-reading")
	if v2, b, e := get(phone.Access); v2 != v+1 || !bytes.Equal(b, merged) || e != `"2"` {
		t.Fatalf("after the merge: version %d, ETag %s", v2, e)
	}

	expectAPIError(t, put(phone.Access, "", []byte("x")), http.StatusPreconditionRequired, "precondition_required", "no If-Match")
	for _, im := range []string{`2`, `W/"2"`, `*`, `"2", "3"`, `"02"`, `"-1"`, `"x"`} {
		expectAPIError(t, put(phone.Access, im, []byte("x")), http.StatusBadRequest, "invalid_request", "If-Match "+im)
	}
	expectAPIError(t, put(phone.Access, `"2"`, nil), http.StatusBadRequest, "invalid_request", "empty blob")
	big := make([]byte, 256<<10)
	expectHTTPStatus(t, put(phone.Access, `"2"`, big), http.StatusOK, "a 256 KiB blob")
	expectAPIError(t, put(phone.Access, `"3"`, append(big, 1)), http.StatusBadRequest, "invalid_request", "a blob over 256 KiB")
	r = ts.do("PUT", "/api/pinned_keys", phone.Access, `{"blob":"`+strings.Repeat("A", 400<<10)+`"}`, "If-Match", `"3"`)
	expectAPIError(t, r, http.StatusRequestEntityTooLarge, "too_large", "a body over the cap")
	// Another user's pins are separate.
	other := ts.registerWithKeys("nopins", "bob")
	if v, _, _ := get(other.Access); v != 0 {
		t.Fatalf("another user sees version %d", v)
	}
}

// TestDirectoryErasure: deleting an account leaves nothing of the user in
// the store — not its bundles (old or current), keys, salts, pins or name
// — while the log keeps its leaves, so heads stay consistent and an entry
// a contact cached still verifies on its own.
func TestDirectoryErasure(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig(t))
	erin := ts.registerWithKeys("erasable", "alice")
	bystander := ts.registerWithKeys("bystander", "bob")
	contact := newDirClient(t, ts.URL, bystander.Access)

	first := contact.lookup(erin.Address)
	if _, err := contact.v.VerifyLookup(context.Background(), erin.Address, first); err != nil {
		t.Fatal(err)
	}
	k2 := newTestKeys(t, erin.Address, "carol", erin.Keys.Bundle.CreatedAt.Add(time.Second))
	expectHTTPStatus(t, ts.do("PUT", "/api/keys", erin.Access, keyChangeBody(t, erin, k2, "")), http.StatusOK, "key change")
	second := contact.lookup(erin.Address)
	if _, err := contact.v.VerifyLookup(context.Background(), erin.Address, second); err != nil {
		t.Fatal(err)
	}
	pins := bytes.Repeat([]byte("erin-pins"), 50)
	expectHTTPStatus(t, ts.do("PUT", "/api/pinned_keys", erin.Access, map[string]any{"blob": base64.StdEncoding.EncodeToString(pins)}, "If-Match", `"0"`), 200, "pins")
	sub := jwtClaims(t, erin.Access)["sub"].(string)
	userID, _ := hex.DecodeString(sub)

	needles := map[string][][]byte{
		"user id":           {userID, []byte(sub)},
		"username":          {[]byte(erin.Username)},
		"email":             {[]byte(erin.Email)},
		"address":           {[]byte(erin.Address)},
		"current identity":  {k2.Bundle.Identity[:], []byte(base64.StdEncoding.EncodeToString(k2.Bundle.Identity[:]))},
		"current bundle":    {k2.Bundle.JSON()},
		"current salt":      {second.Entry.Salt, []byte(base64.StdEncoding.EncodeToString(second.Entry.Salt))},
		"pinned keys":       {pins, []byte(base64.StdEncoding.EncodeToString(pins))},
		"bundle signatures": {[]byte(bundleSignature(t, k2.Bundle))},
	}
	if missing := scanFor(t, ts.srv, needles); len(missing) != 0 {
		t.Fatalf("the scan does not find %v before deletion", missing)
	}
	// The replaced bundle and its salt are gone already.
	if found := foundIn(t, ts.srv, map[string][][]byte{
		"first bundle":   {erin.Keys.Bundle.JSON()},
		"first identity": {erin.Keys.Bundle.Identity[:], []byte(base64.StdEncoding.EncodeToString(erin.Keys.Bundle.Identity[:]))},
		"first salt":     {first.Entry.Salt, []byte(base64.StdEncoding.EncodeToString(first.Entry.Salt))},
	}); len(found) != 0 {
		t.Fatalf("after the key change the store still holds the replaced %v", found)
	}
	headBefore, _ := contact.v.LastHead("hs.test")

	expectHTTPStatus(t, ts.do("DELETE", "/api/account", erin.Access, map[string]any{"auth_key": erin.AuthKey}), http.StatusNoContent, "delete")
	for _, restart := range []bool{false, true} {
		if restart {
			ts.restart()
		}
		if found := foundIn(t, ts.srv, needles); len(found) != 0 {
			t.Fatalf("after deletion (restart %v) the store still holds the user's %v", restart, found)
		}
		r := ts.do("GET", "/api/public_key/"+erin.Username, bystander.Access, nil)
		if restart {
			ts.login(bystander.account)
			r = ts.do("GET", "/api/public_key/"+erin.Username, bystander.Access, nil)
		}
		expectAPIError(t, r, http.StatusNotFound, "not_found", "lookup of a deleted user")
	}
	// The log kept growing (a deletion entry) and extends what the contact saw.
	contact = contact.via(t, ts.URL, bystander.Access)
	a, err := contact.head("hs.test")
	if err != nil {
		t.Fatalf("the head after the deletion: %v", err)
	}
	if a.Head.TreeSize != headBefore.TreeSize+1 {
		t.Fatalf("log size %d after a deletion, want %d", a.Head.TreeSize, headBefore.TreeSize+1)
	}
	// The contact's cached entries still verify on their own and against
	// the heads they came with.
	for _, l := range []*keylog.Lookup{first, second} {
		if err := keylog.VerifyEntry(ts.srv.IdentityKey(), "hs.test", l.Bundle, &l.Entry); err != nil {
			t.Fatalf("a cached entry no longer verifies: %v", err)
		}
		if err := l.Verify(ts.srv.IdentityKey(), "hs.test", erin.Address); err != nil {
			t.Fatalf("a cached lookup no longer verifies: %v", err)
		}
	}
	// The name is free again, with a new bundle and a new entry.
	again := &account{Username: erin.Username, AuthKey: randB64(32)}
	expectHTTPStatus(t, ts.do("POST", "/api/register", "", registerBody(again.Username, again.AuthKey, "")), http.StatusCreated, "re-register the name")
	if _, err := contact.bundle(erin.Address); err != nil {
		t.Fatalf("the name's new owner: %v", err)
	}
}

func bundleSignature(t *testing.T, b *keybundle.KeyBundle) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b.JSON(), &m); err != nil {
		t.Fatal(err)
	}
	return m["signature"].(string)
}

// TestConsistencyParameters: only 1 ≤ from ≤ to ≤ size, in decimal, once.
func TestConsistencyParameters(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig(t))
	for range 3 {
		ts.registerWithKeys("cons", "alice")
	}
	for q, want := range map[string]int{
		"from=1&to=3": 200, "from=3&to=3": 200, "from=2&to=3": 200,
		"from=0&to=3": 400, "from=3&to=2": 400, "from=1&to=4": 400, "from=1": 400, "to=3": 400, "": 400,
		"from=1&to=3&to=3": 400, "from=01&to=3": 400, "from=+1&to=3": 400, "from=1&to=3.0": 400, "from=-1&to=3": 400,
		"from=1&to=3&x=1": 400, "from=1&to=99999999999999999999": 400, "from=%zz&to=3": 400,
	} {
		r := ts.do("GET", "/api/keys/consistency?"+q, "", nil)
		if r.Status != want {
			t.Errorf("?%s: %d %s, want %d", q, r.Status, r.Body, want)
		}
	}
	// An empty log has a head too.
	empty := startServer(t, testConfig(t))
	a, err := keylog.ParseHeadAnswer(empty.do("GET", "/api/keys/head", "", nil).Body)
	if err != nil || a.Head.TreeSize != 0 || a.Head.RootHash != merkle.EmptyRoot() || a.Head.Verify(empty.srv.IdentityKey()) != nil {
		t.Fatalf("the head of an empty log: %+v, %v", a, err)
	}
}

// The directory's authenticated routes in TestAuthenticatedRoutes: bob's
// token acts on bob only.
func init() {
	crossUserCases["GET /api/public_key/:username"] = func(t *testing.T, ts *testServer, alice, bob *account) {
		r := ts.do("GET", "/api/public_key/"+alice.Username, bob.Access, nil)
		expectHTTPStatus(t, r, http.StatusOK, "bob looks alice up")
		if l, err := keylog.ParseLookup(r.Body, 0); err != nil || l.Address != privateline.Address(alice.Username+"@hs.test") {
			t.Fatalf("bob's lookup of alice: %v", err)
		}
	}
	crossUserCases["PUT /api/keys"] = func(t *testing.T, ts *testServer, alice, bob *account) {
		later := time.Now().Add(time.Hour)
		// A bundle for alice's address with bob's token: not bob's address.
		forAlice := newTestKeys(t, privateline.Address(alice.Username+"@hs.test"), "carol", later)
		body := map[string]any{"key_bundle": rawBundle(forAlice.Bundle), "encrypted_private_key": randB64(100), "nonce": randB64(12), "auth_key": alice.AuthKey}
		expectAPIError(t, ts.do("PUT", "/api/keys", bob.Access, body), http.StatusBadRequest, "invalid_request", "bob changing alice's keys")
		// Bob's own bundle with alice's auth key proves nothing.
		forBob := newTestKeys(t, privateline.Address(bob.Username+"@hs.test"), "carol", later)
		body["key_bundle"] = rawBundle(forBob.Bundle)
		expectAPIError(t, ts.do("PUT", "/api/keys", bob.Access, body), http.StatusForbidden, "wrong_password", "bob's key change with alice's auth key")
		body["auth_key"] = bob.AuthKey
		expectHTTPStatus(t, ts.do("PUT", "/api/keys", bob.Access, body), http.StatusOK, "bob changes his own keys")
	}
	crossUserCases["GET /api/pinned_keys"] = func(t *testing.T, ts *testServer, alice, bob *account) {
		r := ts.do("GET", "/api/pinned_keys", bob.Access, nil)
		if r.Status != http.StatusOK || r.json(t)["version"] != float64(0) {
			t.Fatalf("bob's pins: %d %s", r.Status, r.Body)
		}
	}
	crossUserCases["PUT /api/pinned_keys"] = func(t *testing.T, ts *testServer, alice, bob *account) {
		before := ts.do("GET", "/api/pinned_keys", alice.Access, nil)
		r := ts.do("PUT", "/api/pinned_keys", bob.Access, map[string]any{"blob": randB64(64)}, "If-Match", before.Header.Get("ETag"))
		if r.Status != http.StatusOK && r.Status != http.StatusPreconditionFailed {
			t.Fatalf("bob's pin write: %d %s", r.Status, r.Body)
		}
		after := ts.do("GET", "/api/pinned_keys", alice.Access, nil)
		if !bytes.Equal(before.Body, after.Body) {
			t.Fatal("bob's write changed alice's pins")
		}
	}
}

// TestLookupByAddressAndSince: GET /api/public_key/ takes an address of
// this server as well as a username, and ?since=m adds the consistency
// proof from m, which a client verifies without asking for it; an address
// of another server is refused while the server does not federate.
func TestLookupByAddressAndSince(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig(t))
	alice := ts.registerWithKeys("rotor", "alice")
	bob := ts.registerWithKeys("watcher", "bob")
	dir := newDirClient(t, ts.URL, bob.Access)
	if _, err := dir.bundle(alice.Address); err != nil {
		t.Fatal(err)
	}
	head1, _ := dir.v.LastHead("hs.test")
	carol := ts.registerWithKeys("carol-pw", "carol")

	status, b := dir.get(fmt.Sprintf("/api/public_key/%s?since=%d", carol.Address, head1.TreeSize))
	if status != http.StatusOK {
		t.Fatalf("lookup by address with since: %d %s", status, b)
	}
	l, err := keylog.ParseLookup(b, head1.TreeSize)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if l.Head.TreeSize <= head1.TreeSize || len(l.Consistency) == 0 {
		t.Fatalf("answer's head %d after %d with %d proof hashes", l.Head.TreeSize, head1.TreeSize, len(l.Consistency))
	}
	// The proof in the answer is the one used: the client's own fetch fails.
	offline := &dirClient{t: t, store: dir.store}
	offline.v = directory.NewVerifier(dir.store, func(context.Context, privateline.ServerName, uint64, uint64) (*keylog.Consistency, error) {
		return nil, errors.New("no consistency fetch expected")
	})
	if got, err := offline.v.VerifyLookup(context.Background(), carol.Address, l); err != nil || !got.Equal(carol.Keys.Bundle) {
		t.Fatalf("verifying with the proof in the answer: %v", err)
	}
	// A tampered proof is a fork, for a client whose last head is head1.
	l.Consistency[0][0] ^= 1
	other := directory.NewVerifier(&directory.Memory{}, dir.consistency)
	if err := other.VerifyHead(context.Background(), "hs.test", &keylog.HeadAnswer{Head: *head1, ServerKey: l.ServerKey}); err != nil {
		t.Fatal(err)
	}
	if _, err := other.VerifyLookup(context.Background(), carol.Address, l); keybundle.ReasonOf(err) != keybundle.ErrLogFork {
		t.Fatalf("a tampered consistency proof: %v, want log_fork", err)
	}

	carolName, _, _ := carol.Address.Split()
	for _, c := range []struct{ path, what string }{
		{"/api/public_key/" + string(carolName) + "?since=0", "since 0"},
		{"/api/public_key/" + string(carolName) + "?since=x", "since not a number"},
		{fmt.Sprintf("/api/public_key/%s?since=%d", carolName, l.Head.TreeSize+1), "since beyond the log"},
		{"/api/public_key/" + string(carolName) + "?since=1&since=2", "since twice"},
		{"/api/public_key/" + string(carolName) + "?from=1", "unknown parameter"},
		{"/api/public_key/" + string(carolName) + "@Hs.test", "upper-case server"},
		{"/api/public_key/" + string(carolName) + "@other.example", "another server without federation"},
	} {
		expectAPIError(t, ts.do("GET", c.path, bob.Access, nil), http.StatusBadRequest, "invalid_request", c.what)
	}
	expectAPIError(t, ts.do("GET", "/api/public_key/nobody@hs.test", bob.Access, nil), http.StatusNotFound, "not_found", "unknown address")
}
