package federation

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/federation/wire"
	"github.com/privateline/privateline/internal/fakeclock"
	"github.com/privateline/privateline/keybundle"
	"github.com/privateline/privateline/keydir"
	"github.com/privateline/privateline/keylog"
	"github.com/privateline/privateline/serverkey"
	"github.com/privateline/privateline/storage"
)

// keyFixture is a key directory of example.org (the accounts of
// spec/vectors/parties.json live there) and a server that asks it.
type keyFixture struct {
	dir     *keydir.Directory
	key     *serverkey.PrivateKey
	link    *serverkey.PrivateKey // if set, the answering server's federation key (else key)
	asker   *serverkey.PrivateKey
	bundles map[string]*keybundle.KeyBundle
	now     time.Time
}

const (
	dirServer   = privateline.ServerName("example.org")
	askerServer = privateline.ServerName("asker.test")
)

func newKeyFixture(t *testing.T) *keyFixture {
	t.Helper()
	db, err := storage.Open(storage.Options{Dir: "db", InMemory: true, Key: make(privateline.Secret, 32)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &keyFixture{bundles: map[string]*keybundle.KeyBundle{}, now: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
	if f.key, err = serverkey.Generate(); err != nil {
		t.Fatal(err)
	}
	if f.asker, err = serverkey.Generate(); err != nil {
		t.Fatal(err)
	}
	f.dir = keydir.New(dirServer, db, f.key, fakeclock.New(f.now).Now)
	raw, err := os.ReadFile(filepath.Join("..", "spec", "vectors", "parties.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Cases []struct{ Name, Key_bundle string }
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	for _, c := range v.Cases {
		b, err := keybundle.Parse([]byte(c.Key_bundle))
		if err != nil {
			t.Fatal(err)
		}
		f.bundles[c.Name] = b
	}
	return f
}

func (f *keyFixture) register(t *testing.T, name string) storage.ID {
	t.Helper()
	u := &storage.User{ID: storage.NewID(), Username: privateline.Username(name), KDF: storage.KDF{Name: "pbkdf2-sha256", Iterations: 600000}}
	if err := f.dir.Register(u, f.bundles[name]); err != nil {
		t.Fatal(err)
	}
	return u.ID
}

// exchange sends a key request through the wire format both ways, as the
// two servers would, and returns the asker's verdict.
func (f *keyFixture) exchange(t *testing.T, entries []wire.Entry, last *keylog.TreeHead, edit func(*wire.Receipt)) ([]keyAnswer, *keylog.TreeHead, error) {
	t.Helper()
	req := &wire.Transaction{Type: wire.TypeKeyRequest, Entries: entries,
		Header: wire.Header{Origin: askerServer, Destination: dirServer, TxnID: wire.NewTxnID(), CreatedAt: f.now.UnixMilli()}}
	raw, err := wire.Sign(req, f.asker)
	if err != nil {
		t.Fatal(err)
	}
	got, err := wire.VerifyTransaction(raw, wire.Peer{Name: askerServer, Key: f.asker.Public()}, dirServer, f.now, wire.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	results, err := answerKeyRequest(got, f.dir, dirServer)
	if err != nil {
		t.Fatal(err)
	}
	ans := &wire.Receipt{Type: wire.TypeKeyAnswer, Results: results,
		Header: wire.Header{Origin: dirServer, Destination: askerServer, TxnID: req.TxnID, CreatedAt: f.now.UnixMilli()}}
	if edit != nil {
		edit(ans)
	}
	link := f.key
	if f.link != nil {
		link = f.link
	}
	araw, err := wire.Sign(ans, link)
	if err != nil {
		t.Fatal(err)
	}
	peer := wire.Peer{Name: dirServer, Key: link.Public()}
	back, err := wire.VerifyReceipt(araw, peer, askerServer, f.now, wire.DefaultLimits(), req)
	if err != nil {
		t.Fatal(err)
	}
	return verifyKeyAnswer(peer, req, back, last)
}

func id(n int) string { return fmt.Sprintf("%032x", n+1) }

func TestKeyRequestAnswered(t *testing.T) {
	f := newKeyFixture(t)
	f.register(t, "alice")
	f.register(t, "bob")
	entries := []wire.Entry{
		{ID: id(0), Address: "alice@example.org"},
		{ID: id(1), Address: "bob@example.org", Since: 1},
		{ID: id(2), Address: "nobody@example.org"},
		{ID: id(3), Address: "alice@other.example"},
	}
	out, head, err := f.exchange(t, entries, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Lookup == nil || !out[0].Lookup.Bundle.Equal(f.bundles["alice"]) || !out[1].Lookup.Bundle.Equal(f.bundles["bob"]) {
		t.Fatal("the answers are not the registered bundles")
	}
	if out[2].Lookup != nil || out[3].Lookup != nil {
		t.Fatal("an unknown user, or one of another server, has an answer")
	}
	if head == nil || head.TreeSize != 2 || out[1].Lookup.Since != 1 || len(out[1].Lookup.Consistency) == 0 {
		t.Fatalf("head %+v, bob's proof %d from %d", head, len(out[1].Lookup.Consistency), out[1].Lookup.Since)
	}
	// since beyond the log.
	_, _, err = f.exchange(t, []wire.Entry{{ID: id(0), Address: "alice@example.org", Since: 3}}, nil, nil)
	if keybundle.ReasonOf(err) != keybundle.ErrMalformed {
		t.Fatalf("bad_since: %v", err)
	}
}

func TestKeyAnswerChecks(t *testing.T) {
	f := newKeyFixture(t)
	f.register(t, "alice")
	bob := f.register(t, "bob")
	_, head2, err := f.exchange(t, []wire.Entry{{ID: id(0), Address: "alice@example.org"}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.dir.DeleteUser(bob); err != nil { // the log grows by a delete entry
		t.Fatal(err)
	}
	grown := []wire.Entry{{ID: id(0), Address: "alice@example.org", Since: head2.TreeSize}}

	// The head grew: the proof from the last head is checked.
	out, head3, err := f.exchange(t, grown, head2, nil)
	if err != nil || head3.TreeSize != 3 || !out[0].Lookup.Bundle.Equal(f.bundles["alice"]) {
		t.Fatalf("extension: %v", err)
	}
	// Without an entry asking from the last head, the growth is unproven.
	if _, _, err := f.exchange(t, []wire.Entry{{ID: id(0), Address: "alice@example.org"}}, head2, nil); keybundle.ReasonOf(err) != keybundle.ErrMalformed {
		t.Fatalf("no proof from the last head: %v", err)
	}
	// A tampered proof is a fork.
	tamper := func(r *wire.Receipt) { r.Results[0].Consistency[0][0] ^= 1 }
	if _, _, err := f.exchange(t, grown, head2, tamper); keybundle.ReasonOf(err) != keybundle.ErrLogFork {
		t.Fatalf("tampered proof: %v", err)
	}
	// A smaller log than before is a rollback; the same size with another root a fork.
	bigger := *head3
	bigger.TreeSize = 4
	if _, _, err := f.exchange(t, []wire.Entry{{ID: id(0), Address: "alice@example.org", Since: 3}}, &bigger, nil); keybundle.ReasonOf(err) != keybundle.ErrLogRollback {
		t.Fatalf("rollback: %v", err)
	}
	other := *head3
	other.RootHash[0] ^= 1
	if _, _, err := f.exchange(t, []wire.Entry{{ID: id(0), Address: "alice@example.org", Since: 3}}, &other, nil); keybundle.ReasonOf(err) != keybundle.ErrLogFork {
		t.Fatalf("fork at the same size: %v", err)
	}
	// An answer for another address than asked.
	swap := func(r *wire.Receipt) {
		r.Results[0].Lookup, r.Results[1].Lookup = r.Results[1].Lookup, r.Results[0].Lookup
	}
	f.register(t, "bob")
	two := []wire.Entry{{ID: id(0), Address: "alice@example.org"}, {ID: id(1), Address: "bob@example.org"}}
	if _, _, err := f.exchange(t, two, nil, swap); keybundle.ReasonOf(err) != keybundle.ErrBadProof {
		t.Fatalf("swapped answers: %v", err)
	}
	// Lookups under another directory key than the peer's federation key.
	if f.link, err = serverkey.Generate(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.exchange(t, two, nil, nil); keybundle.ReasonOf(err) != keybundle.ErrBadProof {
		t.Fatalf("directory key is not the federation key: %v", err)
	}
	f.link = nil
	// A proof that was not asked for.
	extra := func(r *wire.Receipt) { r.Results[0].Consistency = [][]byte{} }
	if _, _, err := f.exchange(t, []wire.Entry{{ID: id(0), Address: "alice@example.org"}}, nil, extra); keybundle.ReasonOf(err) != keybundle.ErrMalformed {
		t.Fatalf("unasked proof: %v", err)
	}
}
