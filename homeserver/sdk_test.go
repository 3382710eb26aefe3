package homeserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/client"
	"github.com/privateline/privateline/clients/go/directory"
	"github.com/privateline/privateline/clients/go/e2ee"
	"github.com/privateline/privateline/keybundle"
)

// The Go SDK (clients/go/client) against a real homeserver. Every
// password derivation costs about a second under -race, and an RSA-4096
// key about as much, so the tests register few users and generate real
// RSA keys for two of them only; the others reuse the fixed RSA keys of
// spec/vectors/parties.json (with fresh identity keys).

// countingTransport counts the requests per "METHOD path".
type countingTransport struct {
	mu sync.Mutex
	n  map[string]int // guarded by mu
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[r.Method+" "+r.URL.Path]++
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

func (c *countingTransport) count(route string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[route]
}

// sdkClient is a fresh SDK client of ts (a new device: its own directory
// state).
func sdkClient(t testing.TB, ts *testServer, rt http.RoundTripper) *client.Client {
	t.Helper()
	o := client.Options{BaseURL: ts.URL}
	if rt != nil {
		o.HTTPClient = &http.Client{Transport: rt, Timeout: time.Minute}
	}
	c, err := client.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sdkUser is a registered account.
type sdkUser struct {
	name     string
	password string
	reg      *client.Registered
}

// sdkRegister registers a user through c. With party "" it generates real
// keys; otherwise the party's fixed RSA key with a fresh identity key.
func sdkRegister(t testing.TB, ts *testServer, c *client.Client, prefix, party string) *sdkUser {
	t.Helper()
	u := &sdkUser{name: uniqueName(prefix), password: "correct horse " + prefix + " ☃"}
	p := client.RegisterParams{Username: u.name, Password: u.password, Email: u.name + "@mail.example"}
	if party != "" {
		addr := privateline.MakeAddress(privateline.Username(u.name), ts.cfg.ServerName)
		p.Keys = newTestKeys(t, addr, party, time.Now()).Keys
	}
	reg, err := c.Register(context.Background(), p)
	if err != nil {
		t.Fatalf("register %s: %v", u.name, err)
	}
	u.reg = reg
	return u
}

func (u *sdkUser) login(t testing.TB) *client.Session {
	t.Helper()
	s, err := u.reg.Login(context.Background())
	if err != nil {
		t.Fatalf("login %s: %v", u.name, err)
	}
	return s
}

func mustKeys(t testing.TB, s *client.Session) *e2ee.PrivateKeys {
	t.Helper()
	k, err := s.Keys()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustLookup(t testing.TB, s *client.Session, a privateline.Address) *e2ee.KeyBundle {
	t.Helper()
	b, err := s.PublicKey(context.Background(), a)
	if err != nil {
		t.Fatalf("%s looks up %s: %v", s.Address(), a, err)
	}
	return b
}

// TestSDKRegisterVerifyAndExchange is the "done when": two users
// registered through the real homeserver with the SDK fetch and verify
// each other's bundles through the directory and exchange an envelope
// that only the intended recipient (and the sender's own devices) open.
func TestSDKRegisterVerifyAndExchange(t *testing.T) {
	ctx := context.Background()
	ts := startServer(t, testConfig(t))
	aliceC, bobC, carolC := sdkClient(t, ts, nil), sdkClient(t, ts, nil), sdkClient(t, ts, nil)
	aliceU := sdkRegister(t, ts, aliceC, "alice", "") // real RSA-4096 keys
	bobU := sdkRegister(t, ts, bobC, "bob", "")
	carolU := sdkRegister(t, ts, carolC, "carol", "carol")
	alice, bob, carol := aliceU.login(t), bobU.login(t), carolU.login(t)
	if alice.Address() != aliceU.reg.Address || !strings.HasSuffix(string(alice.Address()), "@hs.test") {
		t.Fatalf("alice's address %q", alice.Address())
	}

	// Each fetches the other's bundle, verified through the directory.
	bobAsSeen := mustLookup(t, alice, bob.Address())
	aliceAsSeen := mustLookup(t, bob, alice.Address())
	if !bobAsSeen.Equal(bob.Bundle()) || !aliceAsSeen.Equal(alice.Bundle()) {
		t.Fatal("the directory served other bundles than the ones registered")
	}
	if head, err := aliceC.LastHead(); err != nil || head == nil || head.TreeSize < 3 {
		t.Fatalf("alice's client kept no tree head of a 3-entry log: %+v %v", head, err)
	}
	// Both sides compute the same safety number.
	snA := e2ee.SafetyNumber(alice.Address(), alice.Bundle().Identity, bob.Address(), bobAsSeen.Identity)
	snB := e2ee.SafetyNumber(bob.Address(), bob.Bundle().Identity, alice.Address(), aliceAsSeen.Identity)
	if snA != snB || len(snA) != 60 {
		t.Fatalf("safety numbers differ: %s / %s", snA, snB)
	}

	// Alice seals to bob; the envelope travels as JSON.
	env, err := e2ee.SealDirect(nil, mustKeys(t, alice), []*e2ee.KeyBundle{bobAsSeen}, e2ee.Draft{
		Conversation: "dm.test", SentAt: time.Now(),
		Message: &e2ee.Message{Type: e2ee.MessageTypeText, Body: "meet at noon"},
	})
	if err != nil {
		t.Fatal(err)
	}
	wire, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	open := func(s *client.Session, sender *e2ee.KeyBundle) (*e2ee.Message, error) {
		e, err := e2ee.ParseEnvelope(wire)
		if err != nil {
			t.Fatal(err)
		}
		return e2ee.OpenDirect(e, mustKeys(t, s), sender, e2ee.OpenOptions{Now: time.Now()})
	}
	if m, err := open(bob, aliceAsSeen); err != nil || m.Body != "meet at noon" {
		t.Fatalf("bob opens: %v %v", m, err)
	}
	if _, err := open(carol, mustLookup(t, carol, alice.Address())); e2ee.ReasonOf(err) != e2ee.ErrNotRecipient {
		t.Fatalf("carol opens bob's message: %v, want not_recipient", err)
	}

	// Alice on a new device: a fresh client logs in with the password and
	// unwraps the same keys, which open her sent copy.
	alice2C := sdkClient(t, ts, nil)
	alice2, err := alice2C.Login(ctx, strings.ToUpper(aliceU.name), aliceU.password)
	if err != nil {
		t.Fatalf("alice on a new device: %v", err)
	}
	if k := mustKeys(t, alice2); !k.Matches(alice.Bundle()) || alice2.Address() != alice.Address() {
		t.Fatal("the new device unwrapped other keys")
	}
	if m, err := open(alice2, mustLookup(t, alice2, alice.Address())); err != nil || m.Body != "meet at noon" {
		t.Fatalf("alice's other device opens her sent copy: %v %v", m, err)
	}

	// A wrong password and an unknown user fail alike, clearly.
	for _, c := range []struct{ name, pw string }{{aliceU.name, "not the password"}, {"nobody-here", "whatever"}} {
		_, err := alice2C.Login(ctx, c.name, c.pw)
		if !privateline.Is(privateline.Unauthenticated, err) || !strings.Contains(privateline.MessageOf(err), "wrong username or password") {
			t.Fatalf("login %s with a wrong password: %v", c.name, err)
		}
	}
	// Registering a taken name is a conflict.
	if _, err := carolC.Register(ctx, client.RegisterParams{Username: aliceU.name, Password: "x", Keys: mustKeys(t, alice)}); !privateline.Is(privateline.Exist, err) {
		t.Fatalf("registering a taken name: %v, want Exist", err)
	}
	// A user on another server cannot be looked up without federation; an unknown one is NotExist.
	if _, err := alice.PublicKey(ctx, "bob@elsewhere.test"); !privateline.Is(privateline.Invalid, err) {
		t.Fatalf("lookup on another server: %v", err)
	}
	if _, err := alice.PublicKey(ctx, "nobody-here@hs.test"); !privateline.Is(privateline.NotExist, err) {
		t.Fatalf("lookup of an unknown user: %v", err)
	}
}

// TestSDKAccountAndPasswordChange: settings, a password change (the old
// password stops working, the new one unwraps the same keys, the pinned
// keys are sealed again, other sessions end) and account deletion.
func TestSDKAccountAndPasswordChange(t *testing.T) {
	ctx := context.Background()
	ts := startServer(t, testConfig(t))
	c := sdkClient(t, ts, nil)
	u := sdkRegister(t, ts, c, "dora", "alice")
	s, other := u.login(t), u.login(t)

	a, err := s.Account(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a.Address != s.Address() || a.Email != u.name+"@mail.example" || a.Sessions != 2 || !a.Bundle.Equal(s.Bundle()) {
		t.Fatalf("account: %+v", a)
	}
	email, days := "", 30
	if a, err = s.UpdateSettings(ctx, client.Settings{Email: &email, DefaultRetentionDays: &days}); err != nil || a.Email != "" || a.DefaultRetentionDays != 30 {
		t.Fatalf("settings: %+v %v", a, err)
	}
	if _, err := s.UpdateSettings(ctx, client.Settings{}); !privateline.Is(privateline.Invalid, err) {
		t.Fatalf("empty settings: %v", err)
	}
	friend := newTestKeys(t, "friend@hs.test", "bob", time.Now()).Bundle
	if _, err := s.UpdatePins(ctx, func(p e2ee.Pins) error { p.MarkVerified(friend, time.Now()); return nil }); err != nil {
		t.Fatal(err)
	}

	if _, err := s.ChangePassword(ctx, "wrong current password", "new password"); !privateline.Is(privateline.Forbidden, err) || privateline.MessageOf(err) != "the current password is wrong" {
		t.Fatalf("password change with a wrong current password: %v", err)
	}
	const newPassword = "a new password, longer"
	if _, err := s.ChangePassword(ctx, u.password, newPassword); err != nil {
		t.Fatalf("password change: %v", err)
	}
	// The other session is over; this one goes on.
	if _, err := other.Account(ctx); !privateline.Is(privateline.Unauthenticated, err) || !other.Ended() {
		t.Fatalf("the other session after a password change: %v", err)
	}
	if _, err := s.Account(ctx); err != nil {
		t.Fatalf("the changing session after the change: %v", err)
	}
	fresh := sdkClient(t, ts, nil)
	if _, err := fresh.Login(ctx, u.name, u.password); !privateline.Is(privateline.Unauthenticated, err) {
		t.Fatalf("login with the old password: %v", err)
	}
	s2, err := fresh.Login(ctx, u.name, newPassword)
	if err != nil {
		t.Fatalf("login with the new password: %v", err)
	}
	if !mustKeys(t, s2).Matches(s.Bundle()) {
		t.Fatal("the new password unwraps other keys")
	}
	pins, err := s2.GetPins(ctx)
	if err != nil {
		t.Fatalf("the pins after a password change: %v", err)
	}
	if p, ok := pins.Pins[friend.Address]; !ok || !p.Verified || !p.IdentityKey.Equal(friend.Identity) {
		t.Fatalf("the pins after a password change: %+v", pins.Pins)
	}
	// A resumed session unlocks with the new password only.
	r, err := fresh.Resume(s2.State())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Unlock(u.password); !privateline.Is(privateline.Unauthenticated, err) || !r.Locked() {
		t.Fatalf("unlocking with the old password: %v", err)
	}
	if _, err := r.GetPins(ctx); !privateline.Is(privateline.Unauthenticated, err) {
		t.Fatalf("pins of a locked session: %v", err)
	}

	if err := s2.DeleteAccount(ctx, "wrong"); !privateline.Is(privateline.Forbidden, err) {
		t.Fatalf("delete with a wrong password: %v", err)
	}
	if err := s2.DeleteAccount(ctx, newPassword); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Account(ctx); !privateline.Is(privateline.Unauthenticated, err) {
		t.Fatalf("a session of a deleted account: %v", err)
	}
	if _, err := s.PublicKey(ctx, s.Address()); err == nil {
		t.Fatal("the ended session still looks keys up")
	}
}

// TestSDKTokenRefresh: after the access token expires the session
// refreshes it by itself, and concurrent calls cause exactly one refresh
// (a second one would reuse the refresh token and revoke the session).
func TestSDKTokenRefresh(t *testing.T) {
	ctx := context.Background()
	clock := newStepClock()
	ts := startServer(t, testConfig(t), withStepClock(clock))
	rt := &countingTransport{}
	c := sdkClient(t, ts, rt)
	u := sdkRegister(t, ts, c, "erin", "alice")
	s := u.login(t)
	first := s.State().Tokens

	var mu sync.Mutex
	var saved []client.Tokens
	s.OnChange(func(st client.SessionState) {
		mu.Lock()
		defer mu.Unlock()
		saved = append(saved, st.Tokens)
	})

	clock.Advance(16 * time.Minute) // the access token (15 minutes) expires
	const callers = 8
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := 0; i < callers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Account(ctx)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a call during the refresh: %v", err)
		}
	}
	if n := rt.count("POST /api/refresh"); n != 1 {
		t.Fatalf("%d refreshes for %d concurrent calls, want 1", n, callers)
	}
	now := s.State().Tokens
	if now.Access.Equal(first.Access) || now.Refresh.Equal(first.Refresh) {
		t.Fatal("the tokens did not change")
	}
	mu.Lock()
	if len(saved) != 1 || !saved[0].Refresh.Equal(now.Refresh) {
		t.Fatalf("OnChange saw %d token changes, want the one refresh", len(saved))
	}
	mu.Unlock()

	// The session is alive (not revoked by a reused refresh token), and
	// refreshes again after the next expiry.
	if _, err := s.Account(ctx); err != nil || s.Ended() {
		t.Fatalf("after the refresh: %v", err)
	}
	clock.Advance(16 * time.Minute)
	if _, err := s.Account(ctx); err != nil {
		t.Fatalf("the second refresh: %v", err)
	}
	if n := rt.count("POST /api/refresh"); n != 2 {
		t.Fatalf("%d refreshes after two expiries, want 2", n)
	}

	// A copy of the session resumed elsewhere with the old refresh token
	// is a replay: the server revokes the session, and both copies end.
	stale := s.State()
	stale.Tokens.Refresh = first.Refresh
	clock.Advance(16 * time.Minute)
	replay, err := c.Resume(stale)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := replay.Account(ctx); !privateline.Is(privateline.Unauthenticated, err) || !replay.Ended() {
		t.Fatalf("a replayed refresh token: %v", err)
	}
	if _, err := s.Account(ctx); !privateline.Is(privateline.Unauthenticated, err) {
		t.Fatalf("the session after a replay: %v, want it revoked", err)
	}

	// Logout: Revoke ends a session, RevokeAll every one.
	s1, s2 := u.login(t), u.login(t)
	if err := s1.Revoke(ctx); err != nil || !s1.Ended() {
		t.Fatalf("revoke: %v", err)
	}
	if err := s1.Revoke(ctx); err != nil {
		t.Fatalf("revoking an ended session again: %v", err)
	}
	if _, err := s2.Account(ctx); err != nil {
		t.Fatalf("another session after a revoke: %v", err)
	}
	s3 := u.login(t)
	if err := s3.RevokeAll(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Account(ctx); !privateline.Is(privateline.Unauthenticated, err) {
		t.Fatalf("a session after revoke-all: %v", err)
	}
}

// TestSDKKeyChange: after a key change another user's lookup shows the
// new key (and their pin flags it), the directory stays consistent for
// the client that saw the old head, and a new device unwraps the new keys.
func TestSDKKeyChange(t *testing.T) {
	ctx := context.Background()
	ts := startServer(t, testConfig(t))
	aliceC, bobC := sdkClient(t, ts, nil), sdkClient(t, ts, nil)
	aliceU := sdkRegister(t, ts, aliceC, "fay", "alice")
	bobU := sdkRegister(t, ts, bobC, "gus", "bob")
	alice, bob := aliceU.login(t), bobU.login(t)

	old := mustLookup(t, bob, alice.Address())
	pins := e2ee.Pins{}
	if _, err := pins.Observe(old, time.Now()); err != nil {
		t.Fatal(err)
	}
	before, _ := bobC.LastHead()

	next := newTestKeys(t, alice.Address(), "carol", time.Now()).Keys
	nb, err := alice.ChangeKeys(ctx, next)
	if err != nil {
		t.Fatalf("key change: %v", err)
	}
	if !alice.Bundle().Equal(nb) || !mustKeys(t, alice).Matches(nb) || nb.Identity.Equal(old.Identity) {
		t.Fatal("the session does not hold the new keys")
	}

	seen := mustLookup(t, bob, alice.Address())
	if !seen.Equal(nb) {
		t.Fatal("bob's lookup does not show alice's new bundle")
	}
	if _, err := pins.Observe(seen, time.Now()); e2ee.ReasonOf(err) != e2ee.ErrKeyChanged {
		t.Fatalf("bob's pin of alice after her key change: %v, want key_changed", err)
	}
	after, _ := bobC.LastHead()
	if after.TreeSize != before.TreeSize+1 {
		t.Fatalf("bob's last head went from %d to %d entries, want one more", before.TreeSize, after.TreeSize)
	}
	if _, err := bobC.KeysHead(ctx); err != nil {
		t.Fatalf("the head after the change: %v", err)
	}
	if p, err := bobC.Consistency(ctx, before.TreeSize, after.TreeSize); err != nil || len(p.Proof) == 0 {
		t.Fatalf("consistency %d→%d: %+v %v", before.TreeSize, after.TreeSize, p, err)
	}
	// The safety number changes with the key.
	if e2ee.SafetyNumber(bob.Address(), bob.Bundle().Identity, alice.Address(), old.Identity) ==
		e2ee.SafetyNumber(bob.Address(), bob.Bundle().Identity, alice.Address(), seen.Identity) {
		t.Fatal("the safety number did not change")
	}
	// A new device of alice's unwraps the new keys with the old password.
	alice2, err := sdkClient(t, ts, nil).Login(ctx, aliceU.name, aliceU.password)
	if err != nil {
		t.Fatal(err)
	}
	if !mustKeys(t, alice2).Matches(nb) {
		t.Fatal("a new device did not get the new keys")
	}

	// A directory answering under another key for the same server name
	// (another homeserver claiming to be hs.test) is refused.
	impostor := startServer(t, testConfig(t))
	c, err := client.New(client.Options{BaseURL: impostor.URL, ServerName: ts.cfg.ServerName, Directory: dirStoreOf(t, bobC, ts)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.KeysHead(ctx); keybundle.ReasonOf(err) != keybundle.ErrServerKeyChanged {
		t.Fatalf("another directory key for hs.test: %v, want server_key_changed", err)
	}
}

// dirStoreOf copies a client's directory state (pinned key and last head
// of ts) into a new store, as a client persisting it would.
func dirStoreOf(t testing.TB, c *client.Client, ts *testServer) directory.Store {
	t.Helper()
	head, err := c.LastHead()
	if err != nil || head == nil {
		t.Fatalf("no last head: %v", err)
	}
	a, err := sdkHeadAnswer(ts)
	if err != nil {
		t.Fatal(err)
	}
	m := &directory.Memory{}
	m.Save(ts.cfg.ServerName, &directory.State{Key: a, Head: head})
	return m
}

// sdkHeadAnswer returns the directory key ts signs with.
func sdkHeadAnswer(ts *testServer) ([]byte, error) {
	r := ts.do("GET", "/api/keys/head", "", nil)
	var a struct {
		ServerKey []byte `json:"server_key"`
	}
	if err := json.Unmarshal(r.Body, &a); err != nil {
		return nil, err
	}
	return a.ServerKey, nil
}

// TestSDKPinnedKeys: the pinned-keys blob round-trips between two devices,
// a write based on a stale version is a conflict the caller resolves by
// reading and merging, and the server sees only ciphertext.
func TestSDKPinnedKeys(t *testing.T) {
	ctx := context.Background()
	ts := startServer(t, testConfig(t))
	u := sdkRegister(t, ts, sdkClient(t, ts, nil), "hana", "alice")
	d1, d2 := u.login(t), u.login(t)
	bob := newTestKeys(t, "bob@hs.test", "bob", time.Now()).Bundle
	carol := newTestKeys(t, "carol@hs.test", "carol", time.Now()).Bundle

	p0, err := d1.GetPins(ctx)
	if err != nil || p0.Version != 0 || len(p0.Pins) != 0 {
		t.Fatalf("pins before the first write: %+v %v", p0, err)
	}
	p1, err := d1.UpdatePins(ctx, func(p e2ee.Pins) error { p.MarkVerified(bob, time.Now()); return nil })
	if err != nil || p1.Version != 1 {
		t.Fatalf("first write: %+v %v", p1, err)
	}

	// Device 2 still works from version 0: its write is refused.
	local := e2ee.Pins{}
	local.Observe(carol, time.Now())
	_, err = d2.PutPins(ctx, local, p0.Version)
	if !client.IsVersionConflict(err) || !privateline.Is(privateline.Exist, err) || client.CodeOf(err) != client.CodePreconditionFailed {
		t.Fatalf("a write based on a stale version: %v, want a 412 conflict", err)
	}
	// It reads, merges and writes again.
	cur, err := d2.GetPins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v, err := d2.PutPins(ctx, e2ee.MergePins(cur.Pins, local), cur.Version)
	if err != nil || v != 2 {
		t.Fatalf("the merged write: %d %v", v, err)
	}
	got, err := d1.GetPins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 2 || !got.Pins[bob.Address].Verified || got.Pins[carol.Address].Verified || len(got.Pins) != 2 {
		t.Fatalf("after the merge: %+v", got)
	}

	// Concurrent updates from both devices all land (UpdatePins retries).
	var wg sync.WaitGroup
	names := []privateline.Address{"cc1@hs.test", "cc2@hs.test", "cc3@hs.test", "cc4@hs.test"}
	for i, a := range names {
		d := []*client.Session{d1, d2}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := *carol
			b.Address = a
			if _, err := d.UpdatePins(ctx, func(p e2ee.Pins) error { _, err := p.Observe(&b, time.Now()); return err }); err != nil {
				t.Errorf("concurrent update of %s: %v", a, err)
			}
		}()
	}
	wg.Wait()
	final, err := d2.GetPins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(final.Pins) != 2+len(names) {
		t.Fatalf("after concurrent updates: %d pins, want %d", len(final.Pins), 2+len(names))
	}

	// The server holds only ciphertext.
	r := ts.do("GET", "/api/pinned_keys", string(d1.State().Tokens.Access.Bytes()), nil)
	if r.Status != http.StatusOK || bytes.Contains(r.Body, []byte("hs.test")) || bytes.Contains(r.Body, []byte("identity_key")) {
		t.Fatalf("the stored blob shows its content: %d %s", r.Status, r.Body)
	}
	// Nothing prints a session's secrets.
	for _, out := range []string{d1.String(), strings.TrimSpace(sprint(d1)), sprint(d1.State().Tokens)} {
		if strings.Contains(out, string(d1.State().Tokens.Access.Bytes())) {
			t.Fatalf("a session's token printed: %s", out)
		}
	}
}

func sprint(v any) string { return fmt.Sprintf("%+v %#v %v", v, v, v) }
