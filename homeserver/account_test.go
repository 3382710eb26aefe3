package homeserver_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/privateline/privateline/homeserver"
)

func passwordChangeBody(current string, m accountKeys) map[string]any {
	return map[string]any{"password": map[string]any{
		"current_auth_key":      current,
		"auth_key":              m.AuthKey,
		"encrypted_private_key": m.Wrapped,
		"salt":                  m.Salt,
		"nonce":                 m.Nonce,
	}}
}

// TestPasswordChange: a wrong current key changes nothing; a right one
// replaces the auth key and the wrapped keys and ends every other session.
func TestPasswordChange(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig(t))
	old := newAccountKeys()
	a := ts.registerKeys("passwd", old)
	other := ts.loginAgain(a)
	next := newAccountKeys()

	t.Run("wrong current key", func(t *testing.T) {
		before, err := homeserver.StoreFingerprint(ts.srv)
		if err != nil {
			t.Fatal(err)
		}
		r := ts.do("PUT", "/api/account-settings", a.Access, passwordChangeBody(randB64(32), next))
		expectAPIError(t, r, http.StatusForbidden, "wrong_password", "password change with a wrong current key")
		after, err := homeserver.StoreFingerprint(ts.srv)
		if err != nil {
			t.Fatal(err)
		}
		if before != after {
			t.Fatal("a refused password change wrote to the store")
		}
		if !ts.accessWorks(other.Access) {
			t.Fatal("a refused password change ended another session")
		}
	})

	t.Run("malformed new key material", func(t *testing.T) {
		bad := next
		bad.Salt = randB64(8)
		r := ts.do("PUT", "/api/account-settings", a.Access, passwordChangeBody(old.AuthKey, bad))
		expectAPIError(t, r, http.StatusBadRequest, "invalid_request", "password change with an 8-byte salt")
		if !ts.accessWorks(other.Access) {
			t.Fatal("a malformed password change ended another session")
		}
	})

	t.Run("success", func(t *testing.T) {
		r := ts.do("PUT", "/api/account-settings", a.Access, passwordChangeBody(old.AuthKey, next))
		expectHTTPStatus(t, r, http.StatusOK, "password change")
		if ts.accessWorks(other.Access) {
			t.Fatal("another session's access token works after a password change")
		}
		expectUnauthenticated(t, ts.postRefresh(other.Refresh), "another session's refresh token after a password change")
		if !ts.accessWorks(a.Access) {
			t.Fatal("the session that changed the password was ended")
		}
		refreshPair(t, ts.postRefresh(a.Refresh))

		expectUnauthenticated(t, ts.do("POST", "/api/login", "", map[string]any{"username": a.Username, "auth_key": old.AuthKey}), "login with the old key")
		r = ts.do("POST", "/api/login", "", map[string]any{"username": a.Username, "auth_key": next.AuthKey})
		expectHTTPStatus(t, r, http.StatusOK, "login with the new key")
		m := r.json(t)
		for field, want := range map[string]string{"encrypted_private_key": next.Wrapped, "salt": next.Salt, "nonce": next.Nonce} {
			if m[field] != want {
				t.Errorf("login after the change returns %s %v, want the new %s", field, m[field], want)
			}
		}
		pre := ts.do("POST", "/api/prelogin", "", map[string]any{"username": a.Username}).json(t)
		if pre["salt"] != next.Salt {
			t.Fatalf("prelogin salt %v, want the new salt %s", pre["salt"], next.Salt)
		}
	})
}

// TestAccountSettings changes email and default_retention_days, valid and
// invalid, and checks what GET /api/account shows after each step.
func TestAccountSettings(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig(t))
	a := ts.register("settings")
	steps := []struct {
		name   string
		body   map[string]any
		status int
		// The account's email and default_retention_days after the step.
		email string
		days  int
	}{
		{"new email", map[string]any{"email": "new@example.org"}, 200, "new@example.org", 0},
		{"email with a display name", map[string]any{"email": "Eve <eve@example.org>"}, 400, "new@example.org", 0},
		{"not an email", map[string]any{"email": "not an email"}, 400, "new@example.org", 0},
		{"email too long", map[string]any{"email": strings.Repeat("a", 250) + "@x.org"}, 400, "new@example.org", 0},
		{"retention 1", map[string]any{"default_retention_days": 1}, 200, "new@example.org", 1},
		{"retention 365", map[string]any{"default_retention_days": 365}, 200, "new@example.org", 365},
		{"retention 366", map[string]any{"default_retention_days": 366}, 400, "new@example.org", 365},
		{"retention -1", map[string]any{"default_retention_days": -1}, 400, "new@example.org", 365},
		{"retention 0 keeps messages", map[string]any{"default_retention_days": 0}, 200, "new@example.org", 0},
		{"valid email with invalid retention writes neither", map[string]any{"email": "half@example.org", "default_retention_days": 400}, 400, "new@example.org", 0},
		{"retention as a string", map[string]any{"default_retention_days": "7"}, 400, "new@example.org", 0},
		{"nothing to change", map[string]any{}, 400, "new@example.org", 0},
		{"both", map[string]any{"email": "both@example.org", "default_retention_days": 30}, 200, "both@example.org", 30},
		{"clear email", map[string]any{"email": ""}, 200, "", 30},
	}
	for _, st := range steps {
		r := ts.do("PUT", "/api/account-settings", a.Access, st.body)
		if st.status == http.StatusOK {
			expectHTTPStatus(t, r, st.status, st.name)
		} else {
			expectAPIError(t, r, st.status, "invalid_request", st.name)
		}
		got := ts.do("GET", "/api/account", a.Access, nil).json(t)
		email, _ := got["email"].(string)
		if email != st.email || got["default_retention_days"] != float64(st.days) {
			t.Fatalf("after %q: email %q, retention %v; want %q, %d", st.name, email, got["default_retention_days"], st.email, st.days)
		}
	}
}

// TestDeleteAccount: deletion needs the auth key, ends everything, frees
// the name, and leaves nothing of the user in the store or its files.
func TestDeleteAccount(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig(t))
	m := newAccountKeys()
	a := ts.registerKeys("erase", m)
	bystander := ts.register("keeper")
	other := ts.loginAgain(a)
	sub := jwtClaims(t, a.Access)["sub"].(string)
	userID, err := hex.DecodeString(sub)
	if err != nil || len(userID) != 16 {
		t.Fatalf("sub %q is not a 16-byte hex id", sub)
	}
	realSalt := ts.do("POST", "/api/prelogin", "", map[string]any{"username": a.Username}).json(t)["salt"]
	// Messages to and from the account (their headers name it) go with
	// it, from the other party's mailbox too (messages_test.go).
	pen := ts.registerWithKeys("penpal", "bob")
	exchangeMessages(t, ts, a, pen)

	// What must not survive, each in the forms it could be stored in.
	needles := map[string][][]byte{
		"user id":  {userID, []byte(sub)},
		"username": {[]byte(a.Username)},
		"email":    {[]byte(a.Email)},
		"wrapped":  {unbase64(t, m.Wrapped), []byte(m.Wrapped)},
		"salt":     {unbase64(t, m.Salt), []byte(m.Salt)},
		"nonce":    {unbase64(t, m.Nonce), []byte(m.Nonce)},
	}
	// Control: before deletion the scan finds every needle, so it can
	// fail after it.
	if missing := scanFor(t, ts.srv, needles); len(missing) != 0 {
		t.Fatalf("the store scan does not find %v even before deletion", missing)
	}

	r := ts.do("DELETE", "/api/account", a.Access, map[string]any{"auth_key": randB64(32)})
	expectAPIError(t, r, http.StatusForbidden, "wrong_password", "DELETE /api/account with a wrong key")
	if !ts.accessWorks(a.Access) {
		t.Fatal("account gone after a refused deletion")
	}

	r = ts.do("DELETE", "/api/account", a.Access, map[string]any{"auth_key": a.AuthKey})
	expectHTTPStatus(t, r, http.StatusNoContent, "DELETE /api/account")

	expectUnauthenticated(t, ts.do("POST", "/api/login", "", map[string]any{"username": a.Username, "auth_key": a.AuthKey}), "login after deletion")
	for _, s := range []*account{a, other} {
		if ts.accessWorks(s.Access) {
			t.Fatal("an access token works after the account was deleted")
		}
		expectUnauthenticated(t, ts.postRefresh(s.Refresh), "refresh after deletion")
	}
	pre1 := ts.do("POST", "/api/prelogin", "", map[string]any{"username": a.Username}).json(t)
	pre2 := ts.do("POST", "/api/prelogin", "", map[string]any{"username": a.Username}).json(t)
	if pre1["salt"] == nil || pre1["salt"] != pre2["salt"] || pre1["salt"] == realSalt {
		t.Fatalf("prelogin after deletion: salts %v, %v (real was %v); want the same fake salt twice", pre1["salt"], pre2["salt"], realSalt)
	}
	if !ts.accessWorks(bystander.Access) {
		t.Fatal("deleting one account ended another user's session")
	}

	if found := foundIn(t, ts.srv, needles); len(found) != 0 {
		t.Fatalf("after deletion the store still holds the user's %v", found)
	}
	if n, u := len(ts.mailbox(pen, "")), ts.unread(pen); n != 0 || u != [3]int{} {
		t.Fatalf("after deletion the penpal still has %d messages, unread %v", n, u)
	}

	// On disk, after a restart (the store reopened from its files).
	ts.restart()
	if found := foundIn(t, ts.srv, needles); len(found) != 0 {
		t.Fatalf("after deletion and restart the store holds the user's %v", found)
	}
	// Values are sealed with AES_KEY, so the raw files never held these in
	// the clear; this guards against anything written unsealed (an index,
	// a log, a debug dump) that deletion would have to reach.
	for _, needle := range []string{a.Username, a.Email} {
		if f := grepDir(t, filepath.Join(ts.cfg.DataDir, "store"), []byte(needle)); f != "" {
			t.Fatalf("%q is still in the store file %s after deletion", needle, f)
		}
	}
	expectUnauthenticated(t, ts.do("POST", "/api/login", "", map[string]any{"username": a.Username, "auth_key": a.AuthKey}), "login after deletion and restart")
	if pre := ts.do("POST", "/api/prelogin", "", map[string]any{"username": a.Username}).json(t); pre["salt"] != pre1["salt"] {
		t.Fatalf("the fake prelogin salt changed across a restart (%v, then %v): a restart would reveal that the name is unused", pre1["salt"], pre["salt"])
	}
	if !ts.accessWorks(bystander.Access) {
		t.Fatal("another user's session is gone after the restart")
	}

	// The name is free again.
	r = ts.do("POST", "/api/register", "", registerBody(a.Username, randB64(32), ""))
	expectHTTPStatus(t, r, http.StatusCreated, "registering a deleted account's name")
}

// scanFor returns the needles of which no form occurs in the store.
func scanFor(t *testing.T, srv *homeserver.Server, needles map[string][][]byte) []string {
	t.Helper()
	seen := scanStoreFor(t, srv, needles)
	var missing []string
	for name := range needles {
		if !seen[name] {
			missing = append(missing, name)
		}
	}
	return missing
}

// foundIn returns the needles of which some form occurs in the store.
func foundIn(t *testing.T, srv *homeserver.Server, needles map[string][][]byte) []string {
	t.Helper()
	var found []string
	for name, ok := range scanStoreFor(t, srv, needles) {
		if ok {
			found = append(found, name)
		}
	}
	return found
}

func scanStoreFor(t *testing.T, srv *homeserver.Server, needles map[string][][]byte) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	err := homeserver.ScanStore(srv, func(k, v []byte) {
		for name, forms := range needles {
			for _, f := range forms {
				if bytes.Contains(k, f) || bytes.Contains(v, f) {
					seen[name] = true
				}
			}
		}
	})
	if err != nil {
		t.Fatalf("ScanStore: %v", err)
	}
	return seen
}

// grepDir returns the first file under dir that contains needle. The
// store may be open, and removing files as it goes.
func grepDir(t *testing.T, dir string, needle []byte) string {
	t.Helper()
	var hit string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || hit != "" {
			return err
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			// The open store removed an obsolete file (an old OPTIONS,
			// a compacted table) after the listing: it holds nothing.
			return nil
		}
		if err != nil {
			return err
		}
		if bytes.Contains(b, needle) {
			hit = path
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hit
}
