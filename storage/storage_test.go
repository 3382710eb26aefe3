package storage

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/privateline/privateline"
)

// backend opens stores on one kind of filesystem; reopen gives the same
// data back, as after a restart.
type backend struct {
	name string
	fs   func(t *testing.T) (vfs.FS, string)
}

var backends = []backend{
	{"mem", func(t *testing.T) (vfs.FS, string) { return vfs.NewMem(), "db" }},
	{"disk", func(t *testing.T) (vfs.FS, string) { return vfs.Default, filepath.Join(t.TempDir(), "db") }},
}

func testKey() privateline.Secret {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

type env struct {
	t     *testing.T
	fs    vfs.FS
	dir   string
	files string // FilesDir
	key   privateline.Secret
	db    *DB
}

func (e *env) open(migs []migration) error {
	e.t.Helper()
	db, err := Open(Options{Dir: e.dir, Key: e.key, fs: e.fs, migrations: migs, FilesDir: e.files})
	if err != nil {
		return err
	}
	e.db = db
	return nil
}

func (e *env) reopen() {
	e.t.Helper()
	if err := e.db.Close(); err != nil {
		e.t.Fatal(err)
	}
	if err := e.open(nil); err != nil {
		e.t.Fatal(err)
	}
}

// forEachBackend runs the test on the in-memory filesystem and on disk.
func forEachBackend(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			fs, dir := b.fs(t)
			e := &env{t: t, fs: fs, dir: dir, files: t.TempDir(), key: testKey()}
			if err := e.open(nil); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { e.db.Close() })
			fn(t, e)
		})
	}
}

func newUser(name string) *User {
	return &User{
		ID:                  NewID(),
		Username:            privateline.Username(name),
		Email:               name + "@mail.example",
		AuthHash:            bytes.Repeat([]byte{1}, 32),
		AuthSalt:            bytes.Repeat([]byte{2}, 16),
		KDF:                 KDF{Name: "pbkdf2-sha256", Iterations: 600000},
		Salt:                bytes.Repeat([]byte{3}, 16),
		EncryptedPrivateKey: []byte("wrapped-" + name),
		Nonce:               bytes.Repeat([]byte{4}, 12),
		KeyBundle:           json.RawMessage(`{"address":"` + name + `@hs"}`),
		CreatedAt:           time.Unix(1700000000, 0).UTC(),
	}
}

func TestUsers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		alice := newUser("alice")
		if err := e.db.CreateUser(alice); err != nil {
			t.Fatal(err)
		}
		dup := newUser("alice")
		if err := e.db.CreateUser(dup); !privateline.Is(privateline.Exist, err) {
			t.Fatalf("duplicate username: got %v, want Exist", err)
		}
		e.reopen()
		got, err := e.db.UserByName("alice")
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != alice.ID || got.Email != alice.Email || string(got.KeyBundle) != string(alice.KeyBundle) {
			t.Fatalf("after reopen got %+v", got)
		}
		if _, err := e.db.UserByName("bob"); !privateline.Is(privateline.NotExist, err) {
			t.Fatalf("unknown user: %v", err)
		}
		got.Email = "new@mail.example"
		if err := e.db.UpdateUser(got, false, ID{}); err != nil {
			t.Fatal(err)
		}
		if u, _ := e.db.UserByID(alice.ID); u.Email != "new@mail.example" {
			t.Fatalf("update lost: %q", u.Email)
		}
	})
}

func TestSessionsRotateRevokeAndReuse(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		u := newUser("carol")
		if err := e.db.CreateUser(u); err != nil {
			t.Fatal(err)
		}
		now := time.Unix(1700000000, 0)
		s := &Session{ID: NewID(), UserID: u.ID, Key: testKey(), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := e.db.CreateSession(s); err != nil {
			t.Fatal(err)
		}
		e.reopen()
		got, err := e.db.SessionByID(s.ID)
		if err != nil || !got.Key.Equal(s.Key) {
			t.Fatalf("session after reopen: %v %v", got, err)
		}
		if _, err := e.db.RotateSession(s.ID, 0, now.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		// Generation 0 again: reuse, the whole session goes.
		if _, err := e.db.RotateSession(s.ID, 0, now.Add(2*time.Hour)); !privateline.Is(privateline.Unauthenticated, err) {
			t.Fatalf("reuse: got %v", err)
		}
		if _, err := e.db.SessionByID(s.ID); !privateline.Is(privateline.NotExist, err) {
			t.Fatalf("reused session still there: %v", err)
		}

		// Revocation of one session, all sessions, and denied ids survive a restart.
		s1 := &Session{ID: NewID(), UserID: u.ID, Key: testKey(), ExpiresAt: now.Add(time.Hour)}
		s2 := &Session{ID: NewID(), UserID: u.ID, Key: testKey(), ExpiresAt: now.Add(time.Hour)}
		s3 := &Session{ID: NewID(), UserID: u.ID, Key: testKey(), ExpiresAt: now.Add(time.Hour)}
		for _, s := range []*Session{s1, s2, s3} {
			if err := e.db.CreateSession(s); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.db.RevokeSession(s1.ID, "jti-1", now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		e.reopen()
		if d, _ := e.db.TokenDenied("jti-1"); !d {
			t.Fatal("denied token id lost on restart")
		}
		if d, _ := e.db.TokenDenied("jti-2"); d {
			t.Fatal("unrelated token id denied")
		}
		if ids, _ := e.db.UserSessions(u.ID); len(ids) != 2 {
			t.Fatalf("sessions after revoking one: %v", ids)
		}
		// Password change keeps s2 only.
		if err := e.db.UpdateUser(u, true, s2.ID); err != nil {
			t.Fatal(err)
		}
		if ids, _ := e.db.UserSessions(u.ID); len(ids) != 1 || ids[0] != s2.ID {
			t.Fatalf("sessions after password change: %v", ids)
		}
		if err := e.db.RevokeUserSessions(u.ID, "jti-2", now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if ids, _ := e.db.UserSessions(u.ID); len(ids) != 0 {
			t.Fatalf("sessions after revoke all: %v", ids)
		}

		// The sweeper removes expired denials and sessions, keeps live ones.
		s4 := &Session{ID: NewID(), UserID: u.ID, Key: testKey(), ExpiresAt: now.Add(48 * time.Hour)}
		if err := e.db.CreateSession(s4); err != nil {
			t.Fatal(err)
		}
		n, err := e.db.Sweep(now.Add(24 * time.Hour))
		if err != nil || n != 2 {
			t.Fatalf("sweep removed %d, %v; want the 2 denied ids", n, err)
		}
		if _, err := e.db.SessionByID(s4.ID); err != nil {
			t.Fatalf("live session swept: %v", err)
		}
	})
}

func TestDeleteUserLeavesNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		dave, erin := newUser("dave"), newUser("erin")
		for _, u := range []*User{dave, erin} {
			if err := e.db.CreateUser(u); err != nil {
				t.Fatal(err)
			}
			if err := e.db.CreateSession(&Session{ID: NewID(), UserID: u.ID, Key: testKey(), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.db.DeleteUser(dave.ID); err != nil {
			t.Fatal(err)
		}
		e.reopen()
		found := e.db.scanFor(t, dave.ID[:], []byte("dave"), dave.EncryptedPrivateKey)
		if len(found) > 0 {
			t.Fatalf("after deletion the store still holds dave's data at %q", found)
		}
		if found := e.db.scanFor(t, erin.ID[:]); len(found) != 3 {
			t.Fatalf("erin's user record, name index and session index should remain, found %q", found)
		}
		if _, err := e.db.UserByName("dave"); !privateline.Is(privateline.NotExist, err) {
			t.Fatalf("deleted user still found: %v", err)
		}
		if err := e.db.CreateUser(newUser("dave")); err != nil {
			t.Fatalf("name not free after deletion: %v", err)
		}
	})
}

// scanFor returns the keys whose key or opened value contains any needle.
func (d *DB) scanFor(t *testing.T, needles ...[]byte) []string {
	t.Helper()
	var found []string
	err := d.scanKeys([]byte{}, func(k, v []byte) error {
		pt, err := d.seal.open(k, v)
		if err != nil {
			t.Fatalf("value at %q does not open: %v", k, err)
		}
		for _, n := range needles {
			if bytes.Contains(k, n) || bytes.Contains(pt, n) {
				found = append(found, string(k))
				break
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func TestSealedValueBoundToKeyAndIntegrity(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		a, b := newUser("frank"), newUser("grace")
		for _, u := range []*User{a, b} {
			if err := e.db.CreateUser(u); err != nil {
				t.Fatal(err)
			}
		}
		raw := func(k []byte) []byte {
			v, c, err := e.db.db.Get(k)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			return append([]byte(nil), v...)
		}
		ka, kb := tUser.key(a.ID[:]), tUser.key(b.ID[:])
		va := raw(ka)
		if bytes.Contains(va, []byte("frank")) {
			t.Fatal("value stored in the clear")
		}
		// Moved to another key: grace's record now holds frank's sealed value.
		if err := e.db.db.Set(kb, va, pebble.Sync); err != nil {
			t.Fatal(err)
		}
		if _, err := e.db.UserByID(b.ID); err == nil {
			t.Fatal("a sealed value moved to another key opened")
		}
		// One flipped bit anywhere fails.
		for _, i := range []int{0, 1, 13, len(va) / 2, len(va) - 1} {
			v := append([]byte(nil), va...)
			v[i] ^= 0x01
			if err := e.db.db.Set(ka, v, pebble.Sync); err != nil {
				t.Fatal(err)
			}
			if _, err := e.db.UserByID(a.ID); err == nil {
				t.Fatalf("value with bit flipped at byte %d opened", i)
			}
		}
	})
}

func TestSchemaMigrations(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		if v, _ := e.db.schemaVersion(); v != SchemaVersion() {
			t.Fatalf("new store at version %d, want %d", v, SchemaVersion())
		}
		var ran []int
		migs := append([]migration(nil), migrations...)
		migs = append(migs, migration{version: SchemaVersion() + 1, name: "test", apply: func(d *DB, b *pebble.Batch) error {
			ran = append(ran, SchemaVersion()+1)
			d.setSealed(b, tMeta.key([]byte("test-marker")), []byte("x"))
			return nil
		}})
		e.db.Close()
		if err := e.open(migs); err != nil {
			t.Fatal(err)
		}
		if len(ran) != 1 {
			t.Fatalf("migration ran %d times", len(ran))
		}
		e.db.Close()
		if err := e.open(migs); err != nil {
			t.Fatal(err)
		}
		if len(ran) != 1 {
			t.Fatal("migration ran again after reopening")
		}
		if _, err := e.db.get(tMeta.key([]byte("test-marker"))); err != nil {
			t.Fatalf("migration's write missing: %v", err)
		}
		// This binary (without the test migration) refuses the newer store.
		e.db.Close()
		if err := e.open(nil); err == nil {
			t.Fatal("opened a store with a newer schema")
		}
		// Wrong AES key: refused with a clear error.
		good := e.key
		e.key = testKey()
		if err := e.open(migs); err == nil {
			t.Fatal("opened with the wrong AES key")
		}
		e.key = good
		if err := e.open(migs); err != nil {
			t.Fatal(err)
		}
	})
}

func TestDiskStoreIsDurableAcrossProcessesLayout(t *testing.T) {
	// A fresh directory is created with a schema version and nothing else.
	dir := filepath.Join(t.TempDir(), "db")
	db, err := Open(Options{Dir: dir, Key: testKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	if s := db.Stats(); s.DiskBytes == 0 {
		t.Fatalf("stats report no disk use: %+v", s)
	}
}
