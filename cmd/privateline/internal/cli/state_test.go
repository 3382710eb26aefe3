package cli

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/client"
)

// The held epochs of session.json (spec/e2ee.md §8.1), without a server:
// no command here talks to one.

// offlineRunner is a runner on a fresh config directory whose config
// names a server nothing listens on.
func offlineRunner(t *testing.T) *runner {
	t.Helper()
	r := &runner{env: Env{Stderr: io.Discard, Getenv: func(string) string { return "" }}, dir: &stateDir{path: filepath.Join(t.TempDir(), "config")}}
	if err := r.dir.write(configFile, &config{ServerURL: "http://127.0.0.1:1", ServerName: "example.org", Username: "alice"}); err != nil {
		t.Fatal(err)
	}
	return r
}

// aliceState is a session state of alice@example.org with the key bundle
// of spec/vectors/parties.json.
func aliceState(t *testing.T) client.SessionState {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "spec", "vectors", "parties.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Cases []struct {
			Bundle string `json:"key_bundle"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return client.SessionState{
		Address: "alice@example.org",
		Tokens:  client.Tokens{Access: privateline.Secret("a1"), Refresh: privateline.Secret("r1")},
		Wrapped: client.WrappedKeys{KDF: "PBKDF2-HMAC-SHA256", Iterations: 600000, Salt: make([]byte, 16), Nonce: make([]byte, 12), EncryptedPrivateKey: []byte("x")},
		Bundle:  []byte(f.Cases[0].Bundle),
	}
}

var bobHeld = map[string]client.HeldEpoch{
	"g1@example.org": {Epoch: 3, From: "bob@example.org", CreatedAt: 1700000000123},
	"g2@example.org": {Epoch: 1, From: "alice@example.org", CreatedAt: 1700000000456},
}

// TestSessionFileHeldEpochs: the held epochs go into session.json (mode
// 0600, as "held_epochs") with the rest of the state and come back into
// the resumed session's memory; a session.json written before the field
// existed loads, with none.
func TestSessionFileHeldEpochs(t *testing.T) {
	r := offlineRunner(t)
	st := aliceState(t)
	st.Epochs = bobHeld
	r.sessionChanged(st)
	if r.saveErr != nil {
		t.Fatal(r.saveErr)
	}
	p := filepath.Join(r.dir.path, sessionFile)
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != fileMode {
		t.Fatalf("session.json: %v %v, want mode 0600", fi, err)
	}
	var raw map[string]json.RawMessage
	b, _ := os.ReadFile(p)
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	var onDisk map[string]client.HeldEpoch
	if err := json.Unmarshal(raw["held_epochs"], &onDisk); err != nil || !reflect.DeepEqual(onDisk, bobHeld) {
		t.Fatalf("held_epochs in session.json: %s (%v)", raw["held_epochs"], err)
	}
	s, _, err := r.session()
	if err != nil {
		t.Fatal(err)
	}
	for g, h := range bobHeld {
		if s.HeldEpoch(g) != h.Epoch {
			t.Fatalf("the resumed session holds epoch %d of %s, want %d", s.HeldEpoch(g), g, h.Epoch)
		}
	}
	if got := s.State().Epochs; !reflect.DeepEqual(got, bobHeld) {
		t.Fatalf("the resumed state's epochs: %v", got)
	}

	// A file of an older version: the same keys, no held_epochs.
	delete(raw, "held_epochs")
	old, err := json.Marshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	r = offlineRunner(t)
	if err := os.WriteFile(filepath.Join(r.dir.path, sessionFile), old, fileMode); err != nil {
		t.Fatal(err)
	}
	s, _, err = r.session()
	if err != nil {
		t.Fatalf("an old session.json: %v", err)
	}
	if s.Address() != st.Address || len(s.State().Epochs) != 0 || !s.State().Tokens.Refresh.Equal(privateline.Secret("r1")) {
		t.Fatalf("the session of an old session.json: %s %v", s.Address(), s.State().Epochs)
	}
	r.sessionChanged(s.State())
	if b, _ := os.ReadFile(filepath.Join(r.dir.path, sessionFile)); strings.Contains(string(b), "held_epochs") {
		t.Fatalf("a state without held epochs writes the field:\n%s", b)
	}
}

// TestEndedSessionKeepsHeldEpochs: a session the server ended leaves only
// its address and held epochs (it is not a login any more), and the
// account's next login takes them over, another account's not; without
// held epochs nothing is left (logout: TestCLIGroups).
func TestEndedSessionKeepsHeldEpochs(t *testing.T) {
	r := offlineRunner(t)
	st := aliceState(t)
	st.Epochs = bobHeld
	ended := st
	ended.Tokens = client.Tokens{}
	r.sessionChanged(ended)
	if r.saveErr != nil {
		t.Fatal(r.saveErr)
	}
	b, err := os.ReadFile(filepath.Join(r.dir.path, sessionFile))
	if err != nil {
		t.Fatal(err)
	}
	var left map[string]json.RawMessage
	if err := json.Unmarshal(b, &left); err != nil || len(left) != 2 || string(left["address"]) != `"alice@example.org"` {
		t.Fatalf("what an ended session leaves:\n%s", b)
	}
	var saved savedSession
	if ok, err := r.dir.read(sessionFile, &saved); !ok || err != nil || saved.loggedIn() || !reflect.DeepEqual(saved.HeldEpochs, bobHeld) {
		t.Fatalf("session.json after the end: %+v %v", saved, err)
	}
	if _, _, err := r.session(); !privateline.Is(privateline.Unauthenticated, err) || !strings.Contains(privateline.MessageOf(err), "not logged in") {
		t.Fatalf("a command after the end: %v", err)
	}

	// The next login (a fresh Client, a session without memory; saveLogin
	// takes the epochs over first).
	login := func(st client.SessionState) *client.Session {
		t.Helper()
		cfg, err := r.loadConfig(false)
		if err != nil {
			t.Fatal(err)
		}
		c, err := r.newClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.Resume(st)
		if err != nil {
			t.Fatal(err)
		}
		r.keepHeldEpochs(s)
		return s
	}
	s := login(aliceState(t))
	if got := s.State().Epochs; !reflect.DeepEqual(got, bobHeld) {
		t.Fatalf("the next login of the account holds %v", got)
	}
	r.sessionChanged(s.State())
	if ok, err := r.dir.read(sessionFile, &saved); !ok || err != nil || !reflect.DeepEqual(saved.HeldEpochs, bobHeld) || !saved.loggedIn() {
		t.Fatalf("session.json after the next login: %+v %v", saved, err)
	}

	// Another account's login does not take them.
	carolEnded := ended
	carolEnded.Address = "carol@example.org"
	r.sessionChanged(carolEnded)
	if got := login(aliceState(t)).State().Epochs; len(got) != 0 {
		t.Fatalf("alice's login took carol's held epochs: %v", got)
	}

	// An ended session without held epochs leaves nothing.
	r.sessionChanged(client.SessionState{Address: st.Address})
	if _, err := os.Stat(filepath.Join(r.dir.path, sessionFile)); !os.IsNotExist(err) {
		t.Fatalf("session.json after an end without held epochs: %v", err)
	}
}
