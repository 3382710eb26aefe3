package clientapi

// Fuzz targets for every decoder of untrusted bytes in the client API: JSON
// request bodies (decodeJSON into each request type, checkJSONShape),
// refresh tokens, access tokens (the Authorization header and the access
// cookie) and base64 fields. Seeds are added in code and kept in
// testdata/fuzz/<FuzzName>/. Run one with, for example,
//
//	go test -run='^$' -fuzz='^FuzzDecodeJSON$' -fuzztime=30s ./clientapi/

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/storage"
)

// emptyStore is a Store with nothing in it: every lookup is NotExist, no
// token is denied, every write fails.
type emptyStore struct{}

func notExist(op string) error { return privateline.E(op, privateline.NotExist, "not found") }

func (emptyStore) CreateUser(*storage.User) error { return notExist("fake.CreateUser") }
func (emptyStore) UserByID(storage.ID) (*storage.User, error) {
	return nil, notExist("fake.UserByID")
}
func (emptyStore) UserByName(privateline.Username) (*storage.User, error) {
	return nil, notExist("fake.UserByName")
}
func (emptyStore) UpdateUser(*storage.User, bool, storage.ID) error {
	return notExist("fake.UpdateUser")
}
func (emptyStore) DeleteUser(storage.ID) error          { return notExist("fake.DeleteUser") }
func (emptyStore) CreateSession(*storage.Session) error { return notExist("fake.CreateSession") }
func (emptyStore) SessionByID(storage.ID) (*storage.Session, error) {
	return nil, notExist("fake.SessionByID")
}
func (emptyStore) RotateSession(storage.ID, uint64, time.Time) (*storage.Session, error) {
	return nil, notExist("fake.RotateSession")
}
func (emptyStore) RevokeSession(storage.ID, string, time.Time) error {
	return notExist("fake.RevokeSession")
}
func (emptyStore) RevokeUserSessions(storage.ID, string, time.Time) error {
	return notExist("fake.RevokeUserSessions")
}
func (emptyStore) TokenDenied(string) (bool, error) { return false, nil }
func (emptyStore) UserSessions(storage.ID) ([]storage.ID, error) {
	return nil, notExist("fake.UserSessions")
}
func (emptyStore) Ping() error { return nil }

var _ Store = emptyStore{}

// Fixed test secrets, so that every fuzz worker process accepts the tokens
// another one signed.
var (
	testJWTSecret    = privateline.Secret("fuzz-jwt-secret-0123456789abcdef0123456789")
	testServerSecret = privateline.Secret("fuzz-server-secret-0123456789abcdef01234567")
	testEpoch        = time.Date(2031, 3, 14, 15, 9, 26, 0, time.UTC)
)

// newTestAPI is an API over emptyStore; now nil means a clock stopped at
// testEpoch.
func newTestAPI(t testing.TB, now func() time.Time) *API {
	t.Helper()
	if now == nil {
		now = func() time.Time { return testEpoch }
	}
	a, err := New(Config{
		ServerName:            "hs.test",
		JWTSecret:             testJWTSecret,
		ServerSecret:          testServerSecret,
		CookieCSRF:            true,
		AuthRatePerMinute:     60,
		AuthBurst:             10,
		UsernameRatePerMinute: 60,
		UsernameBurst:         10,
		AccessTokenTTL:        15 * time.Minute,
		RefreshTokenTTL:       30 * 24 * time.Hour,
		MaxBodyBytes:          64 << 10,
	}, Deps{Store: emptyStore{}, Now: now})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a
}

// checkClientError fails unless err is one the API answers with a 4xx.
func checkClientError(t *testing.T, what string, err error) {
	t.Helper()
	var se *statusError
	if errors.As(err, &se) {
		if se.status < 400 || se.status > 499 || se.code == "" || se.message == "" {
			t.Fatalf("%s: status error %d %q %q, want a 4xx with a code and message", what, se.status, se.code, se.message)
		}
		return
	}
	k := privateline.KindOf(err)
	e, ok := kindStatus[k]
	if !ok || e.status < 400 || e.status > 499 {
		t.Fatalf("%s: error %v of kind %v, want a kind that maps to a 4xx", what, err, k)
	}
	if privateline.MessageOf(err) == "" {
		t.Fatalf("%s: error %v has no client message", what, err)
	}
}

// requestTypes are the request bodies the API decodes.
var requestTypes = []func() any{
	func() any { return new(preloginReq) },
	func() any { return new(registerReq) },
	func() any { return new(loginReq) },
	func() any { return new(refreshReq) },
	func() any { return new(settingsReq) },
	func() any { return new(deleteAccountReq) },
	func() any { return new(revokeReq) },
}

// refShape is an oracle for checkJSONShape written differently: a
// recursive walk that reports the deepest nesting and whether an object has
// two identical keys. ok is false if the text is not a sequence of JSON
// values.
func refShape(body []byte) (depth int, dup, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var value func(level int) bool
	value = func(level int) bool {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		d, isDelim := tok.(json.Delim)
		if !isDelim {
			return true
		}
		depth = max(depth, level+1)
		if level+1 > 4*maxJSONDepth {
			return true // deep enough to know; stop before the stack does
		}
		keys := map[string]bool{}
		for dec.More() {
			if d == '{' {
				tok, err := dec.Token()
				if err != nil {
					return false
				}
				k, _ := tok.(string)
				if keys[k] {
					dup = true
				}
				keys[k] = true
			}
			if !value(level + 1) {
				return false
			}
		}
		_, err = dec.Token() // the closing delimiter
		return err == nil
	}
	for dec.More() {
		if !value(0) {
			return depth, dup, false
		}
	}
	_, err := dec.Token()
	return depth, dup, err == io.EOF
}

// foreignKeys compares an accepted body with the re-encoded struct, down
// to the given depth of objects: every key must be a field name exactly as
// encoded, and no field may be null. It returns what is wrong, or "".
func foreignKeys(body, encoded []byte, depth int) string {
	var got, want map[string]json.RawMessage
	if json.Unmarshal(body, &got) != nil || json.Unmarshal(encoded, &want) != nil {
		return ""
	}
	for k, v := range got {
		w, ok := want[k]
		if !ok {
			return fmt.Sprintf("key %q is not a field name", k)
		}
		if string(bytes.TrimSpace(v)) == "null" {
			return fmt.Sprintf("field %q is null", k)
		}
		if depth > 1 && k != "key_bundle" {
			if bad := foreignKeys(v, w, depth-1); bad != "" {
				return k + ": " + bad
			}
		}
	}
	return ""
}

// dropNulls removes the null members of an encoded request struct (unset
// pointers and key_bundle), which a client would leave out.
func dropNulls(encoded []byte) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(encoded, &m) != nil {
		return encoded
	}
	for k, v := range m {
		if string(v) == "null" {
			delete(m, k)
		} else if k == "password" {
			m[k] = dropNulls(v)
		}
	}
	b, _ := json.Marshal(m)
	return b
}

var jsonSeeds = []string{
	``,
	`{}`,
	`{"username":"alice"}`,
	`{"username":"alice","auth_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","use_cookies":true}`,
	`{"username":"alice","email":"a@b.example","auth_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","encrypted_private_key":"AQID","salt":"AAAAAAAAAAAAAAAAAAAAAA==","nonce":"AAAAAAAAAAAAAAAA","key_bundle":{"v":1,"keys":[{"k":"x"}]}}`,
	`{"refresh_token":"abc","use_cookies":false}`,
	`{"email":"a@b.example","default_retention_days":30,"password":{"current_auth_key":"a","auth_key":"b","encrypted_private_key":"c","salt":"d","nonce":"e"}}`,
	`{"auth_key":"AAAA"}`,
	`{"all":true}`,
	`{"username":"a","username":"b"}`,
	`{"username":"a","USERNAME":"b"}`,
	`{"key_bundle":{"a":{"b":[1,2,{"c":null}]}}}`,
	`{"username":1}`,
	`{"username":"a"} {"username":"b"}`,
	`{"username":"a",}`,
	`[{"username":"a"}]`,
	"{\"username\":\"\xff\"}",
	"{\"\xc0\xaf\":1}",
	`{"a":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`,
	strings.Repeat(`{"a":`, 33) + `1` + strings.Repeat(`}`, 33),
	`{"default_retention_days":1e400}`,
	`{"username":"\u0000\ud800"}`,
}

func FuzzDecodeJSON(f *testing.F) {
	for i, s := range jsonSeeds {
		f.Add([]byte(s), uint8(i), i%3 == 0)
	}
	f.Fuzz(func(t *testing.T, body []byte, kind uint8, allowEmpty bool) {
		const limit = 8 << 10
		newReq := func(body []byte) *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/api/x", bytes.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, limit)
			return r
		}
		mk := requestTypes[int(kind)%len(requestTypes)]
		dst := mk()
		err := decodeJSON(newReq(body), dst, allowEmpty)
		if err != nil {
			checkClientError(t, "decodeJSON", err)
			if len(body) > limit && errStatus(err) != http.StatusRequestEntityTooLarge {
				t.Fatalf("%d-byte body over the %d cap: %v, want 413", len(body), limit, err)
			}
			return
		}
		if len(bytes.TrimSpace(body)) == 0 {
			if !allowEmpty {
				t.Fatalf("empty body accepted without allowEmpty")
			}
			return
		}
		if len(body) > limit {
			t.Fatalf("%d-byte body over the %d cap accepted", len(body), limit)
		}
		if !utf8.Valid(body) {
			t.Fatalf("accepted invalid UTF-8: %q", body)
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON: %q", body)
		}
		if b := bytes.TrimLeft(body, " \t\r\n"); b[0] != '{' {
			t.Fatalf("accepted a body that is not an object: %q", body)
		}
		depth, dup, ok := refShape(body)
		if !ok || dup || depth > maxJSONDepth {
			t.Fatalf("accepted %q: oracle says ok=%v duplicate=%v depth=%d", body, ok, dup, depth)
		}
		// What was accepted survives a round trip, and used only the
		// exact field names, none of them null.
		again, err := json.Marshal(dst)
		if err != nil {
			t.Fatalf("re-encoding %T: %v", dst, err)
		}
		if bad := foreignKeys(body, again, 2); bad != "" {
			t.Fatalf("accepted %q into %T: %s", body, dst, bad)
		}
		if err := decodeJSON(newReq(dropNulls(again)), mk(), false); err != nil {
			t.Fatalf("re-encoded %s rejected: %v (from %q)", again, err, body)
		}
	})
}

func FuzzCheckJSONShape(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"a":` + strings.Repeat("[", 10000)))
	f.Fuzz(func(t *testing.T, body []byte) {
		err := checkJSONShape(body)
		if err != nil {
			if privateline.KindOf(err) != privateline.Invalid {
				t.Fatalf("checkJSONShape: %v, want an Invalid error", err)
			}
			checkClientError(t, "checkJSONShape", err)
			return
		}
		if len(bytes.TrimSpace(body)) == 0 {
			return // decodeJSON handles empty bodies before
		}
		if b := bytes.TrimLeft(body, " \t\r\n"); b[0] != '{' {
			t.Fatalf("accepted a body that does not start with an object: %q", body)
		}
		// checkJSONShape leaves syntax errors after the first value, and
		// truncation, to the decoder that runs next; what it checks holds
		// for the part that parses.
		if depth, dup, _ := refShape(body); dup || depth > maxJSONDepth {
			t.Fatalf("accepted %q: oracle says duplicate=%v depth=%d", body, dup, depth)
		}
	})
}

// seedSession is a session whose refresh tokens seed FuzzParseRefresh.
var seedSession = &storage.Session{
	ID:  storage.ID{0: 0x5e, 15: 0x55},
	Gen: 7,
	Key: privateline.Secret(bytes.Repeat([]byte{0x42}, 32)),
}

func FuzzParseRefresh(f *testing.F) {
	f.Add(encodeRefresh(seedSession))
	f.Add("")
	f.Add("AAAA")
	f.Add(strings.Repeat("A", 75))
	f.Add(strings.Repeat("A", 74) + "=")
	f.Add(strings.Repeat("_", 75))
	f.Add(base64.StdEncoding.EncodeToString(make([]byte, refreshTokenLen)))
	f.Fuzz(func(t *testing.T, tok string) {
		sid, gen, mac, ok := parseRefresh(tok)
		if !ok {
			if sid != (storage.ID{}) || gen != 0 || mac != nil {
				t.Fatalf("refused %q but returned parts", tok)
			}
			return
		}
		if len(mac) != 32 {
			t.Fatalf("MAC of %d bytes from %q", len(mac), tok)
		}
		raw := append(append(sid[:], binary.BigEndian.AppendUint64(nil, gen)...), mac...)
		if canon := base64.RawURLEncoding.EncodeToString(raw); canon != tok {
			t.Fatalf("accepted %q, a non-canonical form of %q", tok, canon)
		}
		if sid == seedSession.ID && checkRefreshMAC(seedSession, gen, mac) {
			s := *seedSession
			s.Gen = gen
			if tok != encodeRefresh(&s) {
				t.Fatalf("MAC accepted for %q, which is not the issued token", tok)
			}
		}
	})
}

// canonicalJWT reports whether tok is three strict base64url parts whose
// HS256 signature under key is right: what parseAccess may accept.
func canonicalJWT(tok string, key []byte) bool {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		b, err := base64.RawURLEncoding.Strict().DecodeString(p)
		if err != nil || base64.RawURLEncoding.EncodeToString(b) != p {
			return false
		}
	}
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	m := hmac.New(sha256.New, key)
	m.Write([]byte(parts[0] + "." + parts[1]))
	return hmac.Equal(sig, m.Sum(nil))
}

func FuzzAuthenticate(f *testing.F) {
	a := newTestAPI(f, nil)
	tok, _, err := a.issueAccess(&storage.Session{ID: seedSession.ID, UserID: storage.ID{1: 1}})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []struct {
		header, cookie, csrf string
		method               uint8
	}{
		{"Bearer " + tok, "", "", 0},
		{tok, "", "", 0},
		{"bearer  " + tok + " ", "", "", 0},
		{"", tok, "", 1},
		{"", tok, a.csrfToken(seedSession.ID), 1},
		{"Basic dXNlcjpwYXNz", "", "", 0},
		{"Bearer", "", "", 0},
		{"Bearer ", "", "", 0},
		{"Bearer a.b.c", "", "", 0},
		{"Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4In0.", "", "", 0},
		{"Bearer " + tok + "x", "", "", 0},
		{"", "garbage", "", 2},
	} {
		f.Add(s.header, s.cookie, s.csrf, s.method)
	}
	methods := []string{"GET", "POST", "PUT", "DELETE", "HEAD"}
	f.Fuzz(func(t *testing.T, header, cookie, csrf string, method uint8) {
		c, err := a.parseAccess(header)
		if err == nil {
			if c.ID == "" || c.Subject == "" || !canonicalJWT(header, testJWTSecret) {
				t.Fatalf("parseAccess accepted %q (claims %+v)", header, c)
			}
		} else if !errors.Is(err, errUnauthenticated) {
			t.Fatalf("parseAccess(%q) = %v, want errUnauthenticated", header, err)
		}

		r := httptest.NewRequest(methods[int(method)%len(methods)], "/api/account", nil)
		if header != "" {
			r.Header["Authorization"] = []string{header}
		}
		if cookie != "" {
			r.Header["Cookie"] = []string{cookieAccess + "=" + cookie}
		}
		if csrf != "" {
			r.Header["X-Csrf-Token"] = []string{csrf}
		}
		p, err := a.authenticate(r)
		if err == nil {
			t.Fatalf("authenticated %+v against an empty store (header %q, cookie %q)", p, header, cookie)
		}
		checkClientError(t, "authenticate", err)
		if s := errStatus(err); s != http.StatusUnauthorized && s != http.StatusForbidden {
			t.Fatalf("authenticate: %v (%d), want 401 or 403", err, s)
		}
	})
}

func FuzzDecodeB64(f *testing.F) {
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", uint8(31), uint8(0))
	f.Add("AAAAAAAAAAAAAAAAAAAAAA==", uint8(15), uint8(0))
	f.Add("AAAAAAAAAAAAAAAA", uint8(11), uint8(0))
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", uint8(31), uint8(0))
	f.Add("-_-_", uint8(2), uint8(0))
	f.Add("AA AA", uint8(2), uint8(10))
	f.Add("AB==", uint8(0), uint8(0))
	f.Add("", uint8(0), uint8(5))
	f.Fuzz(func(t *testing.T, s string, minArg, spanArg uint8) {
		minLen := 1 + int(minArg%48)
		maxLen := minLen + int(spanArg%48)
		b, err := decodeB64("salt", s, minLen, maxLen)
		if err != nil {
			checkClientError(t, "decodeB64", err)
			if privateline.KindOf(err) != privateline.Invalid || !strings.Contains(privateline.MessageOf(err), `"salt"`) {
				t.Fatalf("decodeB64(%q): %v, want Invalid naming the field", s, err)
			}
			return
		}
		if len(b) < minLen || len(b) > maxLen {
			t.Fatalf("decodeB64(%q, %d, %d) = %d bytes", s, minLen, maxLen, len(b))
		}
		// Standard base64 with padding has one form.
		if canon := b64.EncodeToString(b); canon != s {
			t.Fatalf("decodeB64 accepted %q, a non-canonical form of %q", s, canon)
		}
	})
}

func TestDecodersRejectLineBreaks(t *testing.T) {
	a := newTestAPI(t, nil)
	refresh := encodeRefresh(seedSession)
	_, _, _, ok := parseRefresh(refresh[:20] + "\n" + refresh[20:])
	if ok {
		t.Errorf("parseRefresh accepted a refresh token with a line break: %v", ok)
	}

	for _, brk := range []string{"\n", "\r", "\r\n"} {
		wrapped := b64.EncodeToString(bytes.Repeat([]byte{1}, 300))
		if _, err := decodeB64("encrypted_private_key", wrapped[:8]+brk+wrapped[8:], 1, maxWrappedKeys); err == nil {
			t.Errorf("decodeB64 accepted wrapped keys with %q inside", brk)
		}
	}

	tok, _, err := a.issueAccess(&storage.Session{ID: seedSession.ID, UserID: storage.ID{1: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.parseAccess(tok); err != nil {
		t.Fatalf("parseAccess of a fresh token: %v", err)
	}
	// Not reachable over HTTP (a header cannot hold a line break), but the
	// parser should not depend on that.
	_, err = a.parseAccess(tok[:len(tok)-10] + "\n" + tok[len(tok)-10:])
	if err == nil {
		t.Errorf("parseAccess accepted a token with a line break in its signature: %v", err)
	}
}
