package storage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/merkle"
)

// testLog appends leaves that name their index and the user, and mirrors
// them in an in-memory tree to compare with.
type testLog struct {
	mu     sync.Mutex
	leaves map[uint64][]byte
}

func newTestLog() *testLog { return &testLog{leaves: map[uint64][]byte{}} }

func (l *testLog) app(kind string) LogAppend {
	return func(u *User, index uint64) (*LogRecord, error) {
		leaf := []byte(fmt.Sprintf(`{"index":%d,"kind":%q,"commit":"%x"}`, index, kind, u.ID[:4]))
		l.mu.Lock()
		defer l.mu.Unlock()
		if _, dup := l.leaves[index]; dup {
			return nil, fmt.Errorf("index %d handed out twice", index)
		}
		l.leaves[index] = leaf
		rec := &LogRecord{Leaf: leaf, Signature: []byte("sig")}
		if kind != "delete" {
			rec.Entry = []byte(fmt.Sprintf(`{"index":%d,"bundle":%s}`, index, u.KeyBundle))
		}
		return rec, nil
	}
}

func (l *testLog) tree(t *testing.T, size uint64) *merkle.Tree {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	tr := &merkle.Tree{}
	for i := range size {
		leaf, ok := l.leaves[i]
		if !ok {
			t.Fatalf("leaf %d missing from the mirror", i)
		}
		tr.Append(leaf)
	}
	return tr
}

// checkLog compares the store's log with the mirror: size, leaves, root,
// and every inclusion and a consistency proof from each earlier size.
func checkLog(t *testing.T, db *DB, l *testLog, want uint64) {
	t.Helper()
	size, err := db.KeyLogSize()
	if err != nil || size != want {
		t.Fatalf("log size %d, %v; want %d", size, err, want)
	}
	tr := l.tree(t, size)
	root, err := merkle.Root(db.KeyLogNodes(), size)
	if err != nil || root != tr.Root() {
		t.Fatalf("root %v, %v; want %v", root, err, tr.Root())
	}
	for i := range size {
		leaf, sig, err := db.KeyLogLeaf(i)
		if err != nil || !bytes.Equal(leaf, l.leaves[i]) || string(sig) != "sig" {
			t.Fatalf("leaf %d = %q, %q, %v", i, leaf, sig, err)
		}
		p, err := merkle.InclusionProof(db.KeyLogNodes(), i, size)
		if err != nil {
			t.Fatal(err)
		}
		if err := merkle.VerifyInclusion(merkle.LeafHash(leaf), i, size, p, root); err != nil {
			t.Fatalf("inclusion of %d in %d: %v", i, size, err)
		}
		if i == 0 {
			continue
		}
		c, err := merkle.ConsistencyProof(db.KeyLogNodes(), i, size)
		if err != nil {
			t.Fatal(err)
		}
		old, _ := merkle.Root(db.KeyLogNodes(), i)
		if err := merkle.VerifyConsistency(i, size, old, root, c); err != nil {
			t.Fatalf("consistency %d→%d: %v", i, size, err)
		}
	}
}

func bundleOf(name string, n int) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"address":"%s@hs","created_at":%d,"identity_key":"KEY-%s-%d"}`, name, n, name, n))
}

func TestKeyLogAppendsWithUserChanges(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		l := newTestLog()
		var users []*User
		for i := range 9 {
			u := newUser(fmt.Sprintf("logged%d", i))
			u.KeyBundle = bundleOf(string(u.Username), 0)
			if err := e.db.CreateUserLogged(u, l.app("key")); err != nil {
				t.Fatal(err)
			}
			users = append(users, u)
		}
		checkLog(t, e.db, l, 9)

		// A key change replaces the bundle and the entry, and logs.
		u, err := e.db.UpdateUserKeys(users[2].ID, func(u *User) error {
			u.KeyBundle = bundleOf(string(u.Username), 1)
			u.EncryptedPrivateKey = []byte("rewrapped")
			return nil
		}, l.app("key"))
		if err != nil || string(u.KeyBundle) != string(bundleOf("logged2", 1)) {
			t.Fatalf("UpdateUserKeys: %v, %s", err, u.KeyBundle)
		}
		entry, err := e.db.UserKeyEntry(users[2].ID)
		if err != nil || !bytes.Contains(entry, []byte(`"index":9`)) || !bytes.Contains(entry, bundleOf("logged2", 1)) {
			t.Fatalf("entry after the change: %s, %v", entry, err)
		}

		// A refused change writes nothing.
		before, _ := e.db.Fingerprint()
		_, err = e.db.UpdateUserKeys(users[3].ID, func(*User) error {
			return privateline.E("test", privateline.Forbidden, "no")
		}, l.app("key"))
		if !privateline.Is(privateline.Forbidden, err) {
			t.Fatalf("refused mutate: %v", err)
		}
		// A failing log append writes nothing either.
		_, err = e.db.UpdateUserKeys(users[3].ID, func(u *User) error { u.KeyBundle = bundleOf("x", 9); return nil },
			func(*User, uint64) (*LogRecord, error) { return nil, errors.New("signer down") })
		if err == nil {
			t.Fatal("a failed append was committed")
		}
		// A taken name logs nothing.
		if err := e.db.CreateUserLogged(newUser("logged4"), l.app("key")); !privateline.Is(privateline.Exist, err) {
			t.Fatalf("taken name: %v", err)
		}
		if after, _ := e.db.Fingerprint(); after != before {
			t.Fatal("a refused change wrote to the store")
		}
		if u, _ := e.db.UserByID(users[3].ID); string(u.KeyBundle) != string(bundleOf("logged3", 0)) {
			t.Fatalf("refused change altered the user: %s", u.KeyBundle)
		}

		// A settings update with a stale copy keeps the logged bundle.
		stale := *users[2]
		stale.Email = "new@mail.example"
		if err := e.db.UpdateUser(&stale, false, ID{}); err != nil {
			t.Fatal(err)
		}
		if u, _ := e.db.UserByID(users[2].ID); string(u.KeyBundle) != string(bundleOf("logged2", 1)) || u.Email != "new@mail.example" {
			t.Fatalf("UpdateUser overwrote the logged bundle or lost the email: %s %s", u.KeyBundle, u.Email)
		}

		e.reopen()
		checkLog(t, e.db, l, 10)

		// More appends after a restart continue the same tree.
		for i := range 7 {
			u := newUser(fmt.Sprintf("later%d", i))
			u.KeyBundle = bundleOf(string(u.Username), 0)
			if err := e.db.CreateUserLogged(u, l.app("key")); err != nil {
				t.Fatal(err)
			}
		}
		checkLog(t, e.db, l, 17)
	})
}

func TestKeyLogDeletionLeavesNothingOfTheUser(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		l := newTestLog()
		dave, erin := newUser("dave"), newUser("erin")
		for _, u := range []*User{dave, erin} {
			u.KeyBundle = bundleOf(string(u.Username), 0)
			if err := e.db.CreateUserLogged(u, l.app("key")); err != nil {
				t.Fatal(err)
			}
			if _, err := e.db.PutPinnedKeys(u.ID, []byte("pins-of-"+string(u.Username)), 0); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.db.DeleteUserLogged(dave.ID, l.app("delete")); err != nil {
			t.Fatal(err)
		}
		e.reopen()
		checkLog(t, e.db, l, 3)
		if found := e.db.scanFor(t, dave.ID[:], []byte("dave"), []byte("KEY-dave"), dave.EncryptedPrivateKey); len(found) > 0 {
			t.Fatalf("after deletion the store still holds dave's data at %q", found)
		}
		if _, err := e.db.UserKeyEntry(dave.ID); !privateline.Is(privateline.NotExist, err) {
			t.Fatalf("dave's entry: %v", err)
		}
		if _, _, err := e.db.PinnedKeys(dave.ID); !privateline.Is(privateline.NotExist, err) {
			t.Fatalf("dave's pins: %v", err)
		}
		if _, err := e.db.UserKeyEntry(erin.ID); err != nil {
			t.Fatalf("erin's entry: %v", err)
		}
		if b, v, err := e.db.PinnedKeys(erin.ID); err != nil || v != 1 || string(b) != "pins-of-erin" {
			t.Fatalf("erin's pins: %q %d %v", b, v, err)
		}
		// A deletion record may not keep an entry.
		err := e.db.DeleteUserLogged(erin.ID, l.app("key"))
		if !privateline.Is(privateline.Internal, err) {
			t.Fatalf("deletion keeping an entry: %v", err)
		}
		if _, err := e.db.UserByID(erin.ID); err != nil {
			t.Fatalf("a refused deletion deleted: %v", err)
		}
	})
}

func TestKeyLogConcurrentAppendsAreDense(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		l := newTestLog()
		var wg sync.WaitGroup
		errs := make(chan error, 40)
		for i := range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				u := newUser(fmt.Sprintf("conc%d", i))
				u.KeyBundle = bundleOf(string(u.Username), 0)
				errs <- e.db.CreateUserLogged(u, l.app("key"))
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		checkLog(t, e.db, l, 40)
	})
}

func TestPinnedKeysVersions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		u := newUser("pinner")
		if err := e.db.CreateUser(u); err != nil {
			t.Fatal(err)
		}
		if b, v, err := e.db.PinnedKeys(u.ID); err != nil || v != 0 || b != nil {
			t.Fatalf("fresh pins: %q %d %v", b, v, err)
		}
		if v, err := e.db.PutPinnedKeys(u.ID, []byte("one"), 0); err != nil || v != 1 {
			t.Fatalf("first put: %d %v", v, err)
		}
		// A second device still at version 0 is refused, and changes nothing.
		_, err := e.db.PutPinnedKeys(u.ID, []byte("other"), 0)
		if !errors.Is(err, ErrVersionMismatch) || !privateline.Is(privateline.Exist, err) {
			t.Fatalf("stale put: %v", err)
		}
		if v, err := e.db.PutPinnedKeys(u.ID, []byte("two"), 1); err != nil || v != 2 {
			t.Fatalf("second put: %d %v", v, err)
		}
		e.reopen()
		if b, v, err := e.db.PinnedKeys(u.ID); err != nil || v != 2 || string(b) != "two" {
			t.Fatalf("pins after reopen: %q %d %v", b, v, err)
		}
		if _, _, err := e.db.PinnedKeys(NewID()); !privateline.Is(privateline.NotExist, err) {
			t.Fatalf("unknown user's pins: %v", err)
		}
		if _, err := e.db.PutPinnedKeys(NewID(), []byte("x"), 0); !privateline.Is(privateline.NotExist, err) {
			t.Fatalf("put for an unknown user: %v", err)
		}
	})
}
