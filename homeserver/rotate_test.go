package homeserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/client"
	"github.com/privateline/privateline/clients/go/directory"
	"github.com/privateline/privateline/homeserver"
	"github.com/privateline/privateline/keybundle"
	"github.com/privateline/privateline/keylog"
	"github.com/privateline/privateline/serverkey"
)

// rotate runs homeserver rotate-key on ts's data directory (ts stopped)
// and returns its output.
func rotate(t *testing.T, ts *testServer) string {
	t.Helper()
	var out, errb bytes.Buffer
	if rc := homeserver.RotateKey(ts.cfg, &out, &errb); rc != 0 {
		t.Fatalf("rotate-key: exit %d: %s", rc, errb.String())
	}
	return out.String()
}

func headAnswer(t *testing.T, ts *testServer) *keylog.HeadAnswer {
	t.Helper()
	resp, err := http.Get(ts.URL + "/api/keys/head")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	a, err := keylog.ParseHeadAnswer(raw)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestFederationKeyRotation: b.test rotates its identity key between two
// runs. a.test, which pinned b's old key on first contact (no configured
// key), keeps delivering both ways without anyone touching it; bob's and
// alice's SDK clients, which pinned b's old directory key, follow the
// statement (bob on his own server, alice through a's remote look-up)
// and pin the new key; b's directory entries and the co-signatures of
// its head verify under the new key.
func TestFederationKeyRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	servers := startFederation(t, "a.test", "b.test")
	a, b := servers[0], servers[1]
	b.cfg.ListenAddr = b.srv.Addr() // bob's client reaches the restarted b where it was
	alice := sdkRegister(t, a, sdkClient(t, a, nil), "kalice", "alice").login(t)
	bobU := sdkRegister(t, b, sdkClient(t, b, nil), "kbob", "bob")
	bob := bobU.login(t)
	carol := sdkRegister(t, b, sdkClient(t, b, nil), "kcarol", "carol").login(t)
	aliceEv := listen(t, alice)

	// Pins of b's first key: a's (first contact), alice's and bob's clients.
	mustLookup(t, alice, bob.Address())
	mustLookup(t, bob, carol.Address())
	mustSend(t, alice, bob.Address(), "before the rotation")
	waitUntil(t, "b's head co-signed by a", 60*time.Second, func() bool {
		return slices.Equal(covered(cosignaturesOf(t, b)), []privateline.ServerName{"a.test"})
	})
	oldKey := b.srv.IdentityKey()
	if st, _ := bob.Client().LastHead(); st == nil {
		t.Fatal("bob's client holds no head of b")
	}

	b.stop()
	out := rotate(t, b)
	b.launch(nil)
	introduce(b, servers)
	newKey := b.srv.IdentityKey()
	if newKey.Equal(oldKey) {
		t.Fatal("the key did not change")
	}
	for _, want := range []string{serverkey.Fingerprint(oldKey), serverkey.Fingerprint(newKey), "Start the server", "compromised"} {
		if !strings.Contains(out, want) {
			t.Fatalf("rotate-key's output lacks %q:\n%s", want, out)
		}
	}
	if fi, err := os.Stat(filepath.Join(b.cfg.DataDir, "server_identity.retired-"+serverkey.Fingerprint(oldKey)+".pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the old key is not kept aside with mode 0600: %v", err)
	}
	h := headAnswer(t, b)
	if !h.ServerKey.Equal(newKey) || len(h.KeyChanges) != 1 || !h.KeyChanges[0].OldKey.Equal(oldKey) || h.Head.Verify(newKey) != nil {
		t.Fatalf("b's head answer after the rotation: key %x, %d key changes", h.ServerKey, len(h.KeyChanges))
	}

	// a follows the statement in b's certificate: messages flow both ways.
	bob = bobU.login(t)
	bobEv := listen(t, bob)
	m := mustSend(t, alice, bob.Address(), "after the rotation")
	if ev := bobEv.message(m.ID); ev.Item.Body() != "after the rotation" {
		t.Fatalf("bob got %q", ev.Item.Body())
	}
	r := mustSend(t, bob, alice.Address(), "b answers with its new key")
	if ev := aliceEv.message(r.ID); ev.Item.Body() != "b answers with its new key" {
		t.Fatalf("alice got %q", ev.Item.Body())
	}
	if !strings.Contains(a.logs.String(), "changed its key with a statement signed by the pinned key") {
		t.Fatal("a did not log that it followed b's key change")
	}

	// bob's client pinned b's old key: it follows the chain, re-pins, and
	// b's re-signed entries verify (a lookup of carol, entered under the
	// old key).
	if got := mustLookup(t, bob, carol.Address()); !mustKeys(t, carol).Matches(got) {
		t.Fatal("bob got another bundle for carol")
	}
	if _, err := bob.Client().KeysHead(ctx); err != nil {
		t.Fatalf("bob's head of b after re-pinning: %v", err)
	}
	// alice pinned b's old key through a's remote look-up: the answer a
	// passes on carries b's chain.
	if got := mustLookup(t, alice, carol.Address()); !mustKeys(t, carol).Matches(got) {
		t.Fatal("alice got another bundle for carol")
	}
	if got := mustLookup(t, alice, bob.Address()); !mustKeys(t, bob).Matches(got) {
		t.Fatal("alice got another bundle for bob")
	}

	// The co-signature a made under b's old key still counts: its head is
	// signed again with the new key, and a co-signs b's new heads.
	mustLookup(t, bob, alice.Address()) // bob pins a's directory key
	waitUntil(t, "bob sees a vouch for b's head", 60*time.Second, func() bool {
		w, err := bob.Client().Cosignatures(ctx)
		return err == nil && slices.Equal(w.Vouching(), []privateline.ServerName{"a.test"})
	})
	for _, cs := range cosignaturesOf(t, b).Cosignatures {
		if err := cs.Head.Verify(newKey); err != nil {
			t.Fatalf("a co-signed head of b does not verify under the new key: %v", err)
		}
	}

	// A client that pinned the old key and is shown the new one without a
	// valid chain refuses: the statement's signature altered on the way.
	for _, tc := range []struct {
		name string
		rt   http.RoundTripper
		want keybundle.Reason
	}{
		{"the chain as sent", http.DefaultTransport, ""},
		{"a tampered chain", tamperKeyChanges{http.DefaultTransport}, keybundle.ErrServerKeyChanged},
	} {
		st := &directory.Memory{}
		if err := st.Save("b.test", &directory.State{Key: oldKey}); err != nil {
			t.Fatal(err)
		}
		c, err := client.New(client.Options{BaseURL: b.URL, Directory: st, HTTPClient: &http.Client{Transport: tc.rt, Timeout: time.Minute}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.KeysHead(ctx)
		if keybundle.ReasonOf(err) != tc.want || (tc.want == "") != (err == nil) {
			t.Fatalf("%s: %v, want %q", tc.name, err, tc.want)
		}
		if pinned, _ := st.Load("b.test"); tc.want == "" != pinned.Key.Equal(newKey) {
			t.Fatalf("%s: pinned %x", tc.name, pinned.Key)
		}
	}
}

// tamperKeyChanges flips a bit of the first key-change statement's
// signature in every answer that carries one.
type tamperKeyChanges struct{ rt http.RoundTripper }

func (tr tamperKeyChanges) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := tr.rt.RoundTrip(r)
	if err != nil || resp.StatusCode != 200 {
		return resp, err
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	var m map[string]any
	if json.Unmarshal(body.Bytes(), &m) == nil {
		if cs, ok := m["key_changes"].([]any); ok && len(cs) > 0 {
			st := cs[0].(map[string]any)
			sig := []byte(st["signature"].(string))
			if sig[0] == 'A' {
				sig[0] = 'B'
			} else {
				sig[0] = 'A'
			}
			st["signature"] = string(sig)
			b, _ := json.Marshal(m)
			body.Reset()
			body.Write(b)
		}
	}
	resp.Body = ioNopCloser{bytes.NewReader(body.Bytes())}
	resp.ContentLength = int64(body.Len())
	resp.Header.Del("Content-Length")
	return resp, nil
}

type ioNopCloser struct{ *bytes.Reader }

func (ioNopCloser) Close() error { return nil }

// TestRotatedKeyWithoutStatement: a key replaced by hand (no statement)
// is refused by the peer that pinned the old one, and by clients.
func TestRotatedKeyWithoutStatement(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	servers := startFederation(t, "a.test", "b.test")
	a, b := servers[0], servers[1]
	b.cfg.ListenAddr = b.srv.Addr()
	alice := sdkRegister(t, a, sdkClient(t, a, nil), "nalice", "alice").login(t)
	bobU := sdkRegister(t, b, sdkClient(t, b, nil), "nbob", "bob")
	bob := bobU.login(t)
	mustLookup(t, alice, bob.Address())
	mustLookup(t, bob, bob.Address())
	mustSend(t, alice, bob.Address(), "before")

	b.stop()
	path := filepath.Join(b.cfg.DataDir, serverkey.FileName)
	if err := os.Rename(path, path+".lost"); err != nil {
		t.Fatal(err)
	}
	b.launch(nil) // a new key, no statement
	introduce(b, servers)
	mustSend(t, alice, bob.Address(), "after") // queued: a refuses b
	waitUntil(t, "a refuses b's new key", 60*time.Second, func() bool {
		return strings.Contains(a.logs.String(), "without a valid key-change statement")
	})
	bob = bobU.login(t)
	if _, err := bob.PublicKey(ctx, bob.Address()); keybundle.ReasonOf(err) != keybundle.ErrServerKeyChanged {
		t.Fatalf("bob's client after a key change without a statement: %v", err)
	}
}
