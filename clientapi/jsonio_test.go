package clientapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/privateline/privateline"
)

// jsonRequest builds a POST request with body and, unless ct is "-", the
// given Content-Type.
func jsonRequest(t testing.TB, body []byte, ct string) *http.Request {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/api/test", bytes.NewReader(body))
	if ct != "-" {
		r.Header.Set("Content-Type", ct)
	}
	return r
}

// errStatus is the HTTP status writeError would give err.
func errStatus(err error) int {
	var se *statusError
	if errors.As(err, &se) {
		return se.status
	}
	var rl *rateLimitError
	if errors.As(err, &rl) {
		return http.StatusTooManyRequests
	}
	if e, ok := kindStatus[privateline.KindOf(err)]; ok {
		return e.status
	}
	return http.StatusInternalServerError
}

// errText is the client-facing message of err.
func errText(err error) string {
	var se *statusError
	if errors.As(err, &se) {
		return se.message
	}
	return privateline.MessageOf(err)
}

func TestDecodeJSON(t *testing.T) {
	deep := strings.Repeat(`{"a":`, maxJSONDepth+1) + "1" + strings.Repeat("}", maxJSONDepth+1)
	okDeep := `{"key_bundle":` + strings.Repeat(`{"a":`, maxJSONDepth-2) + "{}" + strings.Repeat("}", maxJSONDepth-2) + "}"
	tests := []struct {
		name       string
		body       string
		ct         string // "-": none
		dst        func() any
		allowEmpty bool
		status     int    // 0: success
		msg        string // substring of the client message
	}{
		{name: "valid prelogin", body: `{"username":"alice"}`, dst: ptr[preloginReq]},
		{name: "valid with whitespace", body: " \n\t{ \"username\" : \"alice\" }\r\n ", dst: ptr[preloginReq]},
		{name: "charset utf-8", body: `{"username":"alice"}`, ct: "application/json; charset=utf-8", dst: ptr[preloginReq]},
		{name: "charset UTF-8 upper case", body: `{"username":"alice"}`, ct: "Application/JSON; charset=UTF-8", dst: ptr[preloginReq]},
		{name: "nesting at the limit", body: okDeep, dst: ptr[registerReq]},
		{name: "escaped lone surrogate is valid JSON", body: `{"username":"\ud800"}`, dst: ptr[preloginReq]},
		{name: "empty body not allowed", body: "", dst: ptr[preloginReq], status: 400, msg: "request body is empty"},
		{name: "blank body not allowed", body: " \n ", dst: ptr[preloginReq], status: 400, msg: "request body is empty"},
		{name: "empty body allowed", body: "", ct: "-", dst: ptr[refreshReq], allowEmpty: true},
		{name: "body without Content-Type where empty is allowed", body: `{"all":true}`, ct: "-", dst: ptr[revokeReq], allowEmpty: true, status: 415},
		{name: "no Content-Type", body: `{"username":"alice"}`, ct: "-", dst: ptr[preloginReq], status: 415},
		{name: "text/plain", body: `{"username":"alice"}`, ct: "text/plain", dst: ptr[preloginReq], status: 415},
		{name: "text/plain where empty is allowed", body: `{}`, ct: "text/plain", dst: ptr[revokeReq], allowEmpty: true, status: 415},
		{name: "form", body: `{"username":"alice"}`, ct: "application/x-www-form-urlencoded", dst: ptr[preloginReq], status: 415},
		{name: "json suffix type", body: `{"username":"alice"}`, ct: "application/merge-patch+json", dst: ptr[preloginReq], status: 415},
		{name: "charset latin1", body: `{"username":"alice"}`, ct: "application/json; charset=iso-8859-1", dst: ptr[preloginReq], status: 415},
		{name: "unparsable Content-Type", body: `{"username":"alice"}`, ct: "application/json; =", dst: ptr[preloginReq], status: 415},
		{name: "invalid UTF-8 in a value", body: "{\"username\":\"al\xffce\"}", dst: ptr[preloginReq], status: 400, msg: "not valid UTF-8"},
		{name: "invalid UTF-8 in a key", body: "{\"user\xc3name\":\"alice\"}", dst: ptr[preloginReq], status: 400, msg: "not valid UTF-8"},
		{name: "overlong UTF-8 slash", body: "{\"username\":\"\xc0\xaf\"}", dst: ptr[preloginReq], status: 400, msg: "not valid UTF-8"},
		{name: "UTF-8 encoded surrogate", body: "{\"username\":\"\xed\xa0\x80\"}", dst: ptr[preloginReq], status: 400, msg: "not valid UTF-8"},
		{name: "raw NUL in a string", body: "{\"username\":\"a\x00b\"}", dst: ptr[preloginReq], status: 400, msg: "malformed JSON"},
		{name: "top-level array", body: `[{"username":"alice"}]`, dst: ptr[preloginReq], status: 400, msg: "must be a JSON object"},
		{name: "top-level string", body: `"alice"`, dst: ptr[preloginReq], status: 400, msg: "must be a JSON object"},
		{name: "top-level number", body: `42`, dst: ptr[preloginReq], status: 400, msg: "must be a JSON object"},
		{name: "top-level null", body: `null`, dst: ptr[preloginReq], status: 400, msg: "must be a JSON object"},
		{name: "top-level null where empty is allowed", body: `null`, dst: ptr[refreshReq], allowEmpty: true, status: 400, msg: "must be a JSON object"},
		{name: "truncated", body: `{"username":"al`, dst: ptr[preloginReq], status: 400},
		{name: "truncated after colon", body: `{"username":`, dst: ptr[preloginReq], status: 400},
		{name: "trailing comma", body: `{"username":"alice",}`, dst: ptr[preloginReq], status: 400, msg: "malformed JSON at byte"},
		{name: "trailing garbage", body: `{"username":"alice"} x`, dst: ptr[preloginReq], status: 400},
		{name: "two objects", body: `{"username":"alice"}{"username":"bob"}`, dst: ptr[preloginReq], status: 400, msg: "unexpected data after the JSON object"},
		{name: "object then number", body: `{"username":"alice"} 1`, dst: ptr[preloginReq], status: 400, msg: "unexpected data after the JSON object"},
		{name: "line comment", body: "// hi\n{\"username\":\"alice\"}", dst: ptr[preloginReq], status: 400},
		{name: "block comment", body: `{"username":/* hi */"alice"}`, dst: ptr[preloginReq], status: 400},
		{name: "single quotes", body: `{'username':'alice'}`, dst: ptr[preloginReq], status: 400},
		{name: "byte order mark", body: "\xef\xbb\xbf{\"username\":\"alice\"}", dst: ptr[preloginReq], status: 400},
		{name: "unknown field", body: `{"username":"alice","admin":true}`, dst: ptr[preloginReq], status: 400, msg: `unknown field "admin"`},
		{name: "unknown nested field", body: `{"password":{"auth_key":"x","is_admin":true}}`, dst: ptr[settingsReq], status: 400, msg: `unknown field "is_admin"`},
		{name: "duplicate field", body: `{"username":"alice","username":"bob"}`, dst: ptr[preloginReq], status: 400, msg: `duplicate field "username"`},
		{name: "duplicate field deep inside key_bundle", body: `{"key_bundle":{"a":{"b":1,"b":2}}}`, dst: ptr[registerReq], status: 400, msg: `duplicate field "b"`},
		{name: "same key in sibling objects is fine", body: `{"key_bundle":{"a":{"b":1},"c":{"b":2}}}`, dst: ptr[registerReq]},
		{name: "nesting too deep", body: deep, dst: ptr[registerReq], status: 400, msg: fmt.Sprintf("nested deeper than %d", maxJSONDepth)},
		{name: "10000 brackets", body: `{"key_bundle":` + strings.Repeat("[", 10000), dst: ptr[registerReq], status: 400, msg: "nested deeper"},
		{name: "number for string", body: `{"username":1}`, dst: ptr[preloginReq], status: 400, msg: `field "username" must be a string`},
		{name: "object for string", body: `{"auth_key":{}}`, dst: ptr[loginReq], status: 400, msg: `field "auth_key" must be a string`},
		{name: "array for string", body: `{"email":["a@b.c"]}`, dst: ptr[registerReq], status: 400, msg: `field "email" must be a string`},
		{name: "string for bool", body: `{"use_cookies":"true"}`, dst: ptr[loginReq], status: 400, msg: `field "use_cookies" must be true or false`},
		{name: "number for bool", body: `{"all":1}`, dst: ptr[revokeReq], allowEmpty: true, status: 400, msg: `field "all" must be true or false`},
		{name: "string for number", body: `{"default_retention_days":"30"}`, dst: ptr[settingsReq], status: 400, msg: `field "default_retention_days" must be a number`},
		{name: "fraction for int", body: `{"default_retention_days":1.5}`, dst: ptr[settingsReq], status: 400, msg: `field "default_retention_days" must be a number`},
		{name: "huge number for int", body: `{"default_retention_days":1e400}`, dst: ptr[settingsReq], status: 400, msg: `default_retention_days`},
		{name: "string for object", body: `{"password":"hunter2"}`, dst: ptr[settingsReq], status: 400, msg: `field "password" must be an object`},
		{name: "array for object", body: `{"password":[]}`, dst: ptr[settingsReq], status: 400, msg: `field "password" must be an object`},
		{name: "null for a string", body: `{"username":null}`, dst: ptr[preloginReq], status: 400, msg: `field "username" must not be null`},
		{name: "null for an optional field", body: `{"email":null}`, dst: ptr[settingsReq], status: 400, msg: `field "email" must not be null`},
		{name: "null for an object", body: `{"password":null}`, dst: ptr[settingsReq], status: 400, msg: `field "password" must not be null`},
		{name: "null inside a nested object", body: `{"password":{"salt":null}}`, dst: ptr[settingsReq], status: 400, msg: `field "salt" must not be null`},
		{name: "null for key_bundle", body: `{"key_bundle":null}`, dst: ptr[registerReq], status: 400, msg: `"key_bundle" must not be null`},
		{name: "null inside key_bundle is the client's", body: `{"key_bundle":{"a":null}}`, dst: ptr[registerReq]},
		{name: "key differing in case", body: `{"USERNAME":"alice"}`, dst: ptr[preloginReq], status: 400, msg: `unknown field "USERNAME"`},
		{name: "nested key differing in case", body: `{"password":{"Salt":"x"}}`, dst: ptr[settingsReq], status: 400, msg: `unknown field "Salt"`},
		{name: "nested wrong type names the path", body: `{"password":{"auth_key":7}}`, dst: ptr[settingsReq], status: 400, msg: `field "password.auth_key" must be a string`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ct := tc.ct
			if ct == "" {
				ct = "application/json"
			}
			err := decodeJSON(jsonRequest(t, []byte(tc.body), ct), tc.dst(), tc.allowEmpty)
			if tc.status == 0 {
				if err != nil {
					t.Fatalf("decodeJSON(%q) = %v, want success", tc.body, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("decodeJSON(%q) succeeded, want %d", tc.body, tc.status)
			}
			if got := errStatus(err); got != tc.status {
				t.Errorf("decodeJSON(%q) = %v: status %d, want %d", tc.body, err, got, tc.status)
			}
			if !strings.Contains(errText(err), tc.msg) {
				t.Errorf("decodeJSON(%q) message %q does not contain %q", tc.body, errText(err), tc.msg)
			}
		})
	}
}

func ptr[T any]() any { return new(T) }

func TestDecodeJSONFillsTheStruct(t *testing.T) {
	var req settingsReq
	body := `{"email":"a@b.example","default_retention_days":30,"password":{"current_auth_key":"c","auth_key":"k","encrypted_private_key":"e","salt":"s","nonce":"n"}}`
	if err := decodeJSON(jsonRequest(t, []byte(body), "application/json"), &req, false); err != nil {
		t.Fatal(err)
	}
	if req.Email == nil || *req.Email != "a@b.example" || req.DefaultRetentionDays == nil || *req.DefaultRetentionDays != 30 ||
		req.Password == nil || req.Password.CurrentAuthKey != "c" || req.Password.Nonce != "n" {
		t.Fatalf("decoded %+v (password %+v)", req, req.Password)
	}
	var reg registerReq
	body = `{"username":"a","key_bundle":{ "x" : [1, 2] }}`
	if err := decodeJSON(jsonRequest(t, []byte(body), "application/json"), &reg, false); err != nil {
		t.Fatal(err)
	}
	if string(reg.KeyBundle) != `{ "x" : [1, 2] }` {
		t.Fatalf("key_bundle = %s", reg.KeyBundle)
	}
}

func TestDecodeJSONBodyLimits(t *testing.T) {
	const limit = 1024
	read := func(body io.Reader) error {
		r := httptest.NewRequest(http.MethodPost, "/api/test", body)
		r.Header.Set("Content-Type", "application/json")
		r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, limit)
		return decodeJSON(r, new(preloginReq), false)
	}
	over := `{"username":"` + strings.Repeat("a", limit) + `"}`
	err := read(strings.NewReader(over))
	if errStatus(err) != http.StatusRequestEntityTooLarge || privateline.KindOf(err) != privateline.TooLarge {
		t.Errorf("body over the cap: %v (status %d), want TooLarge/413", err, errStatus(err))
	}
	if !strings.Contains(errText(err), "1024 bytes") {
		t.Errorf("message %q does not give the limit", errText(err))
	}
	exact := `{"username":"` + strings.Repeat("a", limit-len(`{"username":""}`)) + `"}`
	if err := read(strings.NewReader(exact)); err != nil {
		t.Errorf("body of exactly the cap: %v", err)
	}
	err = read(iotest.ErrReader(io.ErrUnexpectedEOF))
	if errStatus(err) != http.StatusBadRequest || !strings.Contains(errText(err), "could not read") {
		t.Errorf("failing reader: %v", err)
	}
}

// TestDecodeJSONCaseFoldedKeys: encoding/json matches keys to fields
// without regard to case, and with Unicode folding ("ſ" U+017F is "s", "K"
// U+212A is "k"); a strict decoder accepts only the exact names, so such a
// key is unknown and cannot shadow the real one.
func TestDecodeJSONCaseFoldedKeys(t *testing.T) {
	for _, body := range []string{
		`{"username":"alice","USERNAME":"mallory"}`,
		`{"USERNAME":"mallory","username":"alice"}`,
		`{"username":"alice","UserName":"mallory"}`,
		`{"Username":"alice"}`,
		`{"uſername":"alice"}`,
		`{"username":"alice","uſername":"mallory"}`,
	} {
		var req preloginReq
		err := decodeJSON(jsonRequest(t, []byte(body), "application/json"), &req, false)
		if errStatus(err) != http.StatusBadRequest || !strings.Contains(errText(err), "unknown field") {
			t.Errorf("decodeJSON(%s) = %v, decoded username %q; want 400 unknown field", body, err, req.Username)
		}
	}
	for _, body := range []string{
		`{"key_bundle":{"a":1},"\u212aey_bundle":{"b":2}}`,
		`{"password":{"salt":"a","SALT":"b"}}`,
		`{"password":{"nonce":"a"},"Password":{"nonce":"b"}}`,
	} {
		for _, dst := range []any{new(registerReq), new(settingsReq)} {
			if err := decodeJSON(jsonRequest(t, []byte(body), "application/json"), dst, false); err == nil {
				t.Errorf("decodeJSON(%s) into %T accepted it", body, dst)
			}
		}
	}
	// Keys inside key_bundle are the client's: only exact duplicates count.
	body := `{"key_bundle":{"a":1,"A":2}}`
	if err := decodeJSON(jsonRequest(t, []byte(body), "application/json"), new(registerReq), false); err != nil {
		t.Errorf("decodeJSON(%s) = %v; keys differing in case inside key_bundle are distinct", body, err)
	}
}

func TestCheckJSONShape(t *testing.T) {
	tests := []struct {
		body string
		msg  string // "": accepted
	}{
		{`{}`, ""},
		{`{"a":[1,{"b":null}],"c":{"d":"e"}}`, ""},
		{`{"a":{"b":1},"b":{"a":1}}`, ""},
		{`{"a":[{"x":1},{"x":2}]}`, ""},
		{`{"":1,"":2}`, `duplicate field ""`},
		{`{"a":1,"a":1}`, `duplicate field "a"`},
		{`{"a":[{"x":1,"x":2}]}`, `duplicate field "x"`},
		{`{"a":{},"a":{}}`, `duplicate field "a"`},
		{`{"a\u0062":1,"ab":2}`, `duplicate field "ab"`}, // escapes are compared decoded
		{`[]`, "must be a JSON object"},
		{`"x"`, "must be a JSON object"},
		{`true`, "must be a JSON object"},
		{`null`, "must be a JSON object"},
		{`1`, "must be a JSON object"},
		{`{"a":1,}`, "malformed JSON at byte"},
		{`{"a" 1}`, "malformed JSON at byte"},
		{`{a:1}`, "malformed JSON at byte"},
		{`{"a":tru}`, "malformed JSON"},
		{`{"a":NaN}`, "malformed JSON at byte"},
		{`{"a":0x10}`, "malformed JSON at byte"},
		{`{"a":01}`, "malformed JSON at byte"},
		// Truncation is left to the decoder that runs next.
		{`{`, ""},
		{`{"a":[1,2`, ""},
		{`{"a":{"b":1,"b"`, `duplicate field "b"`},
		{strings.Repeat(`{"a":`, maxJSONDepth) + "1" + strings.Repeat("}", maxJSONDepth), ""},
		{strings.Repeat(`{"a":`, maxJSONDepth+1) + "1" + strings.Repeat("}", maxJSONDepth+1), "nested deeper than 32"},
		{`{"a":` + strings.Repeat("[", maxJSONDepth-1) + strings.Repeat("]", maxJSONDepth-1) + "}", ""},
		{`{"a":` + strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth) + "}", "nested deeper than 32"},
		{`{"a":` + strings.Repeat("[", 100000), "nested deeper than 32"},
	}
	for _, tc := range tests {
		name := tc.body
		if len(name) > 40 {
			name = name[:40] + "…"
		}
		t.Run(name, func(t *testing.T) {
			err := checkJSONShape([]byte(tc.body))
			if tc.msg == "" {
				if err != nil {
					t.Fatalf("checkJSONShape = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("checkJSONShape accepted it; want %q", tc.msg)
			}
			if privateline.KindOf(err) != privateline.Invalid {
				t.Errorf("kind %v, want Invalid", privateline.KindOf(err))
			}
			if !strings.Contains(errText(err), tc.msg) {
				t.Errorf("message %q does not contain %q", errText(err), tc.msg)
			}
		})
	}
}

func TestDescribeJSONError(t *testing.T) {
	unmarshal := func(body string, dst any) error {
		dec := json.NewDecoder(strings.NewReader(body))
		dec.DisallowUnknownFields()
		return dec.Decode(dst)
	}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"syntax", json.Unmarshal([]byte(`{"a":}`), new(any)), "malformed JSON at byte 6"},
		{"unexpected EOF", io.ErrUnexpectedEOF, "truncated JSON"},
		{"wrapped unexpected EOF", fmt.Errorf("reading: %w", io.ErrUnexpectedEOF), "truncated JSON"},
		{"string field", unmarshal(`{"username":false}`, new(loginReq)), `field "username" must be a string`},
		{"bool field", unmarshal(`{"use_cookies":"no"}`, new(refreshReq)), `field "use_cookies" must be true or false`},
		{"int field", unmarshal(`{"default_retention_days":true}`, new(settingsReq)), `field "default_retention_days" must be a number`},
		{"struct field", unmarshal(`{"password":1}`, new(settingsReq)), `field "password" must be an object`},
		{"nested field", unmarshal(`{"password":{"nonce":[]}}`, new(settingsReq)), `field "password.nonce" must be a string`},
		{"whole body", unmarshal(`[1]`, new(loginReq)), "the body must be a JSON object"},
		{"unknown field", unmarshal(`{"username":"a","role":"admin"}`, new(loginReq)), `unknown field "role"`},
		{"anything else", errors.New("boom"), "malformed JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil {
				t.Fatal("the input error is nil: the case does not test anything")
			}
			if got := describeJSONError(tc.err); got != tc.want {
				t.Errorf("describeJSONError(%v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}

func TestDecodeB64(t *testing.T) {
	std := func(n int) string { return b64.EncodeToString(bytes.Repeat([]byte{0xfb}, n)) }
	tests := []struct {
		name     string
		in       string
		min, max int
		wantLen  int    // when ok
		msg      string // "": ok
	}{
		{"exact length", std(32), 32, 32, 32, ""},
		{"in range", std(20), 1, 64, 20, ""},
		{"empty", "", 32, 32, 0, `field "auth_key" is required`},
		{"31 bytes", std(31), 32, 32, 0, `field "auth_key" must decode to 32 bytes`},
		{"33 bytes", std(33), 32, 32, 0, `field "auth_key" must decode to 32 bytes`},
		{"range too short", std(0) + "AA==", 2, 8, 0, `must decode to 2 to 8 bytes`},
		{"far too long", std(4096), 32, 32, 0, `field "auth_key" is longer than 32 bytes`},
		{"url-safe alphabet", strings.NewReplacer("+", "-", "/", "_").Replace(std(32)), 32, 32, 0, "must be standard base64"},
		{"missing padding", strings.TrimRight(std(32), "="), 32, 32, 0, "must be standard base64"},
		{"space inside", std(15)[:8] + " " + std(15)[8:], 15, 16, 0, "must be standard base64"},
		{"tab", "\t" + std(15), 15, 16, 0, "must be standard base64"},
		{"non-zero padding bits", "AB==", 1, 1, 0, "must be standard base64"},
		{"non-ASCII", "ÿÿÿÿ", 1, 8, 0, "must be standard base64"},
		{"line feed inside", std(30)[:8] + "\n" + std(30)[8:], 1, 64, 0, "must be standard base64"},
		{"CR LF at the end", std(30) + "\r\n", 1, 64, 0, "must be standard base64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := decodeB64("auth_key", tc.in, tc.min, tc.max)
			if tc.msg == "" {
				if err != nil || len(b) != tc.wantLen {
					t.Fatalf("decodeB64(%q) = %d bytes, %v; want %d bytes", tc.in, len(b), err, tc.wantLen)
				}
				return
			}
			if err == nil {
				t.Fatalf("decodeB64(%q) accepted %d bytes; want %q", tc.in, len(b), tc.msg)
			}
			if privateline.KindOf(err) != privateline.Invalid || !strings.Contains(errText(err), tc.msg) {
				t.Errorf("decodeB64(%q) = %v; want Invalid %q", tc.in, err, tc.msg)
			}
		})
	}
}

func TestWriteErrorBody(t *testing.T) {
	a := newTestAPI(t, nil)
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{invalid("bad"), 400, "invalid_request"},
		{errUnauthenticated, 401, "unauthenticated"},
		{errUnsupportedMediaType, 415, "unsupported_media_type"},
		{errMethodNotAllowed, 405, "method_not_allowed"},
		{privateline.E("op", privateline.TooLarge, "big"), 413, "too_large"},
		{&rateLimitError{after: 1500 * 1e6}, 429, "rate_limited"},
		{privateline.E("op", privateline.Internal, "secret detail"), 500, "internal"},
		{errors.New("plain"), 500, "internal"},
	} {
		w := httptest.NewRecorder()
		a.writeError(w, httptest.NewRequest("GET", "/api/x", nil), tc.err)
		if w.Code != tc.status || w.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%v: %d %q, want %d application/json", tc.err, w.Code, w.Header().Get("Content-Type"), tc.status)
		}
		var body struct {
			Error struct{ Code, Message string }
		}
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error.Code != tc.code || body.Error.Message == "" {
			t.Errorf("%v: body %s, want code %q and a message", tc.err, w.Body, tc.code)
		}
		if tc.status >= 500 && strings.Contains(w.Body.String(), "detail") {
			t.Errorf("%v: a server fault's detail reached the client: %s", tc.err, w.Body)
		}
	}
}
