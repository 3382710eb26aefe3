package clientapi

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
)

func TestParseETag(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		v    uint64
		okay bool
	}{
		{[]string{`"0"`}, 0, true},
		{[]string{`"17"`}, 17, true},
		{[]string{`"18446744073709551615"`}, 1<<64 - 1, true},
		{[]string{`"18446744073709551616"`}, 0, false},
		{[]string{`17`}, 0, false},
		{[]string{`W/"17"`}, 0, false},
		{[]string{`*`}, 0, false},
		{[]string{`"017"`}, 0, false},
		{[]string{`"+1"`}, 0, false},
		{[]string{`""`}, 0, false},
		{[]string{`"1", "2"`}, 0, false},
		{[]string{`"1"`, `"2"`}, 0, false},
		{nil, 0, false},
	} {
		v, ok := parseETag(tc.in)
		if ok != tc.okay || v != tc.v {
			t.Errorf("parseETag(%q) = %d, %v", tc.in, v, ok)
		}
		if ok && etag(v) != tc.in[0] {
			t.Errorf("etag(%d) = %s, want %s", v, etag(v), tc.in[0])
		}
	}
}

func TestTreeSizeParam(t *testing.T) {
	for q, want := range map[string]int64{
		"n=1": 1, "n=0": 0, "n=9007199254740991": 9007199254740991,
		"n=9007199254740992": -1, "n=01": -1, "n=-1": -1, "n=1.0": -1, "n=": -1, "": -1, "n=1&n=1": -1, "n=%201": -1,
	} {
		v, _ := url.ParseQuery(q)
		n, err := treeSizeParam(v, "n")
		if want < 0 {
			if err == nil || errStatus(err) != 400 {
				t.Errorf("?%s: %d, %v; want 400", q, n, err)
			}
		} else if err != nil || n != uint64(want) {
			t.Errorf("?%s: %d, %v; want %d", q, n, err, want)
		}
	}
}

func TestBodyLimit(t *testing.T) {
	a := newTestAPI(t, nil)
	for _, tc := range []struct {
		method, path string
		want         int64
	}{
		{"PUT", "/api/pinned_keys", maxPinnedBody},
		{"GET", "/api/pinned_keys", a.cfg.MaxBodyBytes},
		{"PUT", "/api/keys", a.cfg.MaxBodyBytes},
		{"PUT", "/api/pinned_keys/", a.cfg.MaxBodyBytes},
		{"POST", "/api/register", a.cfg.MaxBodyBytes},
	} {
		if got := a.bodyLimit(httptest.NewRequest(tc.method, tc.path, nil)); got != tc.want {
			t.Errorf("%s %s: limit %d, want %d", tc.method, tc.path, got, tc.want)
		}
	}
	// The blob cap fits its base64 in the body cap.
	if b64.EncodedLen(maxPinnedKeys)+len(`{"blob":""}`) > maxPinnedBody {
		t.Fatal("a 256 KiB blob does not fit the body cap")
	}
}

// TestWithoutDirectory: an API built without a directory refuses what needs
// one with 503 instead of doing it unlogged.
func TestWithoutDirectory(t *testing.T) {
	a := newTestAPI(t, nil)
	for _, path := range []string{"/api/keys/head", "/api/keys/consistency?from=1&to=1"} {
		w := httptest.NewRecorder()
		a.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != http.StatusServiceUnavailable {
			t.Errorf("GET %s without a directory: %d %s", path, w.Code, w.Body)
		}
	}
	if _, err := a.dir.VerifyBundle(nil, "alice"); errStatus(err) != http.StatusServiceUnavailable {
		t.Errorf("VerifyBundle without a directory: %v", err)
	}
}

func FuzzKeyRequests(f *testing.F) {
	f.Add([]byte(`{"key_bundle":{"address":"a@b"},"encrypted_private_key":"AQID","nonce":"AAAAAAAAAAAAAAAA","old_key_signature":"x"}`), `"3"`, "from=1&to=2")
	f.Add([]byte(`{"blob":"AQID"}`), `W/"1"`, "from=01&to=2")
	f.Fuzz(func(t *testing.T, body []byte, ifMatch, query string) {
		for _, dst := range []any{new(keysReq), new(pinnedKeysReq)} {
			if err := decodeJSON(jsonRequest(t, body, "application/json"), dst, false); err != nil {
				checkClientError(t, "decodeJSON", err)
			}
		}
		if v, ok := parseETag([]string{ifMatch}); ok && etag(v) != ifMatch {
			t.Fatalf("parseETag accepted %q, a non-canonical form of %s", ifMatch, etag(v))
		}
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		if n, err := treeSizeParam(q, "from"); err == nil && strconv.FormatUint(n, 10) != q.Get("from") {
			t.Fatalf("treeSizeParam accepted %q", q.Get("from"))
		}
	})
}
