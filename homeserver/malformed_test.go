package homeserver_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/privateline/privateline/homeserver"
)

// rawReq is one HTTP/1.1 request written byte for byte, so that a test can
// send what a well-behaved client library would refuse to: lying lengths,
// broken chunking, odd paths and methods.
type rawReq struct {
	name   string
	method string
	target string // the request-target, sent as is
	auth   string // "bearer": the fixture's access token; "cookie": as the access cookie
	header []string
	ct     string // Content-Type; "" means application/json, "-" none
	body   []byte
	// length is the Content-Length header: "" the body's length, "-" none.
	length string
	// te "chunked" sends the body in 32 KiB chunks; "chunked-raw" sends the
	// body as is after a chunked header.
	te string
	// halfClose shuts the write side after the body, for a
	// Content-Length that promises more than is sent.
	halfClose bool
	want      int // the exact status; 0 accepts any 4xx
}

type rawResp struct {
	status int
	header http.Header
	body   []byte
}

// send writes rq on a new connection and reads the answer while it is
// still writing (the server may answer a huge body early and close).
func sendRaw(t *testing.T, addr string, rq rawReq, access string) rawResp {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("%s: dial: %v", rq.name, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))

	var head bytes.Buffer
	fmt.Fprintf(&head, "%s %s HTTP/1.1\r\nHost: hs.test\r\nUser-Agent: malformed-corpus\r\n", rq.method, rq.target)
	switch rq.auth {
	case "bearer":
		fmt.Fprintf(&head, "Authorization: Bearer %s\r\n", access)
	case "cookie":
		fmt.Fprintf(&head, "Cookie: pl_access=%s\r\n", access)
	}
	switch rq.ct {
	case "":
		head.WriteString("Content-Type: application/json\r\n")
	case "-":
	default:
		fmt.Fprintf(&head, "Content-Type: %s\r\n", rq.ct)
	}
	for i := 0; i+1 < len(rq.header); i += 2 {
		fmt.Fprintf(&head, "%s: %s\r\n", rq.header[i], rq.header[i+1])
	}
	body := rq.body
	switch {
	case rq.te == "chunked":
		head.WriteString("Transfer-Encoding: chunked\r\n")
		var c bytes.Buffer
		for rest := body; len(rest) > 0; {
			n := min(len(rest), 32<<10)
			fmt.Fprintf(&c, "%x\r\n%s\r\n", n, rest[:n])
			rest = rest[n:]
		}
		c.WriteString("0\r\n\r\n")
		body = c.Bytes()
	case rq.te == "chunked-raw":
		head.WriteString("Transfer-Encoding: chunked\r\n")
	case rq.length == "":
		fmt.Fprintf(&head, "Content-Length: %d\r\n", len(body))
	case rq.length != "-":
		fmt.Fprintf(&head, "Content-Length: %s\r\n", rq.length)
	}
	head.WriteString("Connection: close\r\n\r\n")

	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		// Write errors are expected when the server answers early.
		if _, err := conn.Write(append(head.Bytes(), body...)); err == nil && rq.halfClose {
			conn.(*net.TCPConn).CloseWrite()
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: rq.method})
	if err != nil {
		t.Fatalf("%s: reading the answer: %v", rq.name, err)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s: reading the answer's body: %v", rq.name, err)
	}
	conn.Close()
	<-wrote
	return rawResp{status: resp.StatusCode, header: resp.Header, body: b}
}

// checkMalformedAnswer checks what every refused request gets: a 4xx (or the
// exact status wanted), a JSON {"error":{"code","message"}} body and the
// security headers.
func checkMalformedAnswer(t *testing.T, rq rawReq, r rawResp) {
	t.Helper()
	if r.status < 400 || r.status > 499 {
		t.Errorf("status %d, want 4xx; body %.200q", r.status, r.body)
	} else if rq.want != 0 && r.status != rq.want {
		t.Errorf("status %d, want %d; body %.200q", r.status, rq.want, r.body)
	}
	if mt, _, err := mime.ParseMediaType(r.header.Get("Content-Type")); err != nil || mt != "application/json" {
		t.Errorf("Content-Type %q, want application/json", r.header.Get("Content-Type"))
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &top); err != nil || len(top) != 1 || top["error"] == nil {
		t.Errorf("body %.200q, want exactly {\"error\":{...}}", r.body)
	} else {
		var e map[string]any
		err := json.Unmarshal(top["error"], &e)
		code, _ := e["code"].(string)
		msg, _ := e["message"].(string)
		if err != nil || len(e) != 2 || code == "" || msg == "" {
			t.Errorf("error %s, want {\"code\": string, \"message\": string}", top["error"])
		}
	}
	for _, h := range [][2]string{{"X-Content-Type-Options", "nosniff"}, {"X-Frame-Options", "DENY"}} {
		if got := r.header.Get(h[0]); got != h[1] {
			t.Errorf("%s: %q, want %q", h[0], got, h[1])
		}
	}
	if u, err := url.ParseRequestURI(rq.target); err == nil && strings.HasPrefix(u.Path, "/api/") {
		if got := r.header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("Cache-Control %q on %s, want no-store", got, u.Path)
		}
	}
}

// jsonField is one member of a JSON object, kept in order.
type jsonField struct {
	k string
	v any // json.RawMessage is written as is
}

type jsonObject []jsonField

func (o jsonObject) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f.k)
		v, err := json.Marshal(f.v)
		if err != nil {
			panic(err)
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.String()
}

func (o jsonObject) MarshalJSON() ([]byte, error) { return []byte(o.String()), nil }

// with returns a copy of o with k set to v (appended if absent).
func (o jsonObject) with(k string, v any) jsonObject {
	c := append(jsonObject(nil), o...)
	for i := range c {
		if c[i].k == k {
			c[i].v = v
			return c
		}
	}
	return append(c, jsonField{k, v})
}

// without returns a copy of o without k.
func (o jsonObject) without(k string) jsonObject {
	var c jsonObject
	for _, f := range o {
		if f.k != k {
			c = append(c, f)
		}
	}
	return c
}

func rawJSON(s string) json.RawMessage { return json.RawMessage(s) }

// fbB64 is standard base64 of n bytes of 0xfb, whose encoding is full of
// '+' and '/' (so that the URL-safe alphabet differs).
func fbB64(n int) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, n)) }

// badB64 are wrong encodings of an n-byte field.
func badB64(n int) map[string]string {
	good := fbB64(n)
	m := map[string]string{
		"empty":                      "",
		"url-safe alphabet":          strings.NewReplacer("+", "-", "/", "_").Replace(good),
		"space inside":               good[:4] + " " + good[4:],
		"leading tab":                "\t" + good,
		"trailing space":             good + " ",
		fmt.Sprintf("%d bytes", n-1): fbB64(n - 1),
		fmt.Sprintf("%d bytes", n+1): fbB64(n + 1),
		"not base64":                 strings.Repeat("!", len(good)),
		"non-ASCII":                  "ÿ" + good[2:],
		"hex instead":                strings.Repeat("fb", n),
		"huge":                       strings.Repeat("A", 40<<10),
		"line feed inside":           good[:4] + "\n" + good[4:],
		"CR LF at the end":           good + "\r\n",
	}
	if t := strings.TrimRight(good, "="); t != good {
		m["missing padding"] = t
	} else {
		m["extra padding"] = good + "=="
	}
	return m
}

// malFixture is what the corpus is built from.
type malFixture struct {
	user      *account
	wrongKey  string // a well-formed auth key that is not the user's
	refresh   string // the user's refresh token
	jwtSecret []byte
	claims    jwt.MapClaims // of the user's access token
}

// token signs the user's access claims, changed by edit, with method and
// key (nil key: the server's secret).
func (fx *malFixture) token(t *testing.T, method jwt.SigningMethod, key any, edit func(jwt.MapClaims)) string {
	t.Helper()
	c := jwt.MapClaims{}
	for k, v := range fx.claims {
		c[k] = v
	}
	if edit != nil {
		edit(c)
	}
	if key == nil {
		key = fx.jwtSecret
	}
	s, err := jwt.NewWithClaims(method, c).SignedString(key)
	if err != nil {
		t.Fatalf("signing a test token: %v", err)
	}
	return s
}

// routeSpec is a route that takes a JSON body, with an almost valid body
// to mutate: if a mutation were accepted by mistake, base still fails
// without writing (a taken name, a wrong key, an out-of-range value).
type routeSpec struct {
	method, path string
	auth         bool
	allowEmpty   bool // an empty body (and no Content-Type) is accepted
	base         jsonObject
	// fields are the body's members with their JSON type, for wrong-type
	// cases.
	fields map[string]string
}

func malformedCorpus(t *testing.T, fx *malFixture) []rawReq {
	taken := fx.user.Username
	routes := []routeSpec{
		{method: "POST", path: "/api/prelogin",
			base:   jsonObject{{"username", "x"}}, // too short
			fields: map[string]string{"username": "string"}},
		{method: "POST", path: "/api/register",
			base: jsonObject{
				{"username", taken}, {"email", "fresh@mail.example"}, {"auth_key", fbB64(32)},
				{"encrypted_private_key", fbB64(200)}, {"salt", fbB64(16)}, {"nonce", fbB64(12)},
				{"key_bundle", rawJSON(`{"version":1}`)},
			},
			fields: map[string]string{"username": "string", "email": "string", "auth_key": "string",
				"encrypted_private_key": "string", "salt": "string", "nonce": "string", "key_bundle": "object"}},
		{method: "POST", path: "/api/login",
			base:   jsonObject{{"username", taken}, {"auth_key", fx.wrongKey}},
			fields: map[string]string{"username": "string", "auth_key": "string", "use_cookies": "bool"}},
		{method: "POST", path: "/api/refresh", allowEmpty: true,
			base:   jsonObject{{"refresh_token", "AAAA"}},
			fields: map[string]string{"refresh_token": "string", "use_cookies": "bool"}},
		{method: "POST", path: "/api/revoke", auth: true, allowEmpty: true,
			base:   jsonObject{{"all", rawJSON(`"yes"`)}},
			fields: map[string]string{"all": "bool"}},
		{method: "PUT", path: "/api/account-settings", auth: true,
			base:   jsonObject{{"default_retention_days", 400}},
			fields: map[string]string{"email": "string", "default_retention_days": "number", "password": "object"}},
		{method: "DELETE", path: "/api/account", auth: true,
			base:   jsonObject{{"auth_key", fx.wrongKey}},
			fields: map[string]string{"auth_key": "string"}},
	}

	var c []rawReq
	for _, rt := range routes {
		auth := ""
		if rt.auth {
			auth = "bearer"
		}
		add := func(name string, body []byte, want int, opts ...func(*rawReq)) {
			rq := rawReq{name: rt.method + " " + rt.path + ": " + name, method: rt.method, target: rt.path, auth: auth, body: body, want: want}
			for _, o := range opts {
				o(&rq)
			}
			c = append(c, rq)
		}
		addS := func(name, body string, want int, opts ...func(*rawReq)) { add(name, []byte(body), want, opts...) }
		base := rt.base.String()
		first := rt.base[0].k

		// Broken JSON.
		addS("truncated before the end", base[:len(base)-1], 400)
		addS("truncated in the middle", base[:len(base)/2], 400)
		addS("only an open brace", "{", 400)
		addS("key without value", `{"`+first+`":`, 400)
		addS("trailing comma", base[:len(base)-1]+",}", 400)
		addS("leading comma", "{,"+base[1:], 400)
		addS("trailing garbage", base+"garbage", 400)
		addS("extra closing brace", base+"}", 400)
		addS("two objects", base+base, 400)
		addS("two objects with space", base+"\n"+base, 400)
		addS("object then number", base+" 1", 400)
		addS("top-level array", "["+base+"]", 400)
		addS("top-level string", `"`+first+`"`, 400)
		addS("top-level number", "12345", 400)
		addS("top-level null", "null", 400)
		addS("top-level true", "true", 400)
		addS("line comment", "// comment\n"+base, 400)
		addS("block comment", "{/* c */"+base[1:], 400)
		addS("trailing comment", base+" // c", 400)
		addS("single quotes", strings.ReplaceAll(base, `"`, `'`), 400)
		addS("unquoted key", "{"+first+":1}", 400)
		addS("NaN", `{"`+first+`":NaN}`, 400)
		addS("byte order mark", "\xef\xbb\xbf"+base, 400)
		addS("10000 open brackets", strings.Repeat("[", 10000), 400)
		addS("10000 brackets in a field", `{"`+first+`":`+strings.Repeat("[", 10000)+strings.Repeat("]", 10000)+`}`, 400)
		addS("33 nested objects", strings.Repeat(`{"a":`, 33)+"1"+strings.Repeat("}", 33), 400)
		addS("invalid UTF-8 in a value", `{"`+first+`":"a`+"\xff\xfe"+`"}`, 400)
		addS("invalid UTF-8 in a key", `{"`+first+"\xff"+`":"a"}`, 400)
		addS("overlong UTF-8", `{"`+first+`":"`+"\xc0\xaf\xe0\x80\xaf"+`"}`, 400)
		addS("UTF-8 surrogate", `{"`+first+`":"`+"\xed\xa0\x80"+`"}`, 400)
		addS("truncated UTF-8 sequence", `{"`+first+`":"`+"\xe2\x82"+`"}`, 400)
		addS("raw NUL in a string", `{"`+first+`":"a`+"\x00"+`b"}`, 400)
		addS("raw NUL after the object", base+"\x00", 400)
		addS("unknown field", "{\"is_admin\":true,"+base[1:], 400)
		addS("unknown empty key", `{"":1,`+base[1:], 400)
		addS("duplicate key", base[:len(base)-1]+","+base[1:], 400)
		addS("no Content-Type", base, 415, func(r *rawReq) { r.ct = "-" })
		if !rt.allowEmpty {
			addS("empty body", "", 400)
			addS("whitespace body", " \r\n\t ", 400)
			addS("no body and no Content-Type", "", 400, func(r *rawReq) { r.ct = "-"; r.length = "-" })
		}
		for f := range rt.fields {
			addS(f+" is null", rt.base.with(f, rawJSON("null")).String(), 400)
		}
		for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
			"application/json; charset=iso-8859-1", "application/json-seq", "text/json", "application/json; charset"} {
			addS("Content-Type "+ct, base, 415, func(r *rawReq) { r.ct = ct })
		}
		pad := bytes.Repeat([]byte(" "), 64<<10)
		add("64 KiB + 1 (whitespace padding)", append([]byte(base[:len(base)-1]), append(pad[:64<<10-len(base)+1], '}')...), 413)
		add("10 MiB body", append(append([]byte(`{"`+first+`":"`), bytes.Repeat([]byte("a"), 10<<20)...), `"}`...), 413)
		add("10 MiB chunked body without a length", bytes.Repeat([]byte("["), 10<<20), 413, func(r *rawReq) { r.te = "chunked" })
		add("small chunked body", []byte("{"+strings.Repeat(" ", 100)), 400, func(r *rawReq) { r.te = "chunked" })
		addS("broken chunk size", "zz\r\n{}\r\n0\r\n\r\n", 400, func(r *rawReq) { r.te = "chunked-raw" })
		addS("chunked body cut short", "ff\r\n"+base, 400, func(r *rawReq) { r.te = "chunked-raw"; r.halfClose = true })
		addS("Content-Length longer than the body", base, 400, func(r *rawReq) { r.length = fmt.Sprint(len(base) + 100); r.halfClose = true })
		addS("Content-Length of 1 TB", base, 0, func(r *rawReq) { r.length = "1000000000000"; r.halfClose = true })
		addS("Content-Length shorter than the body", base, 400, func(r *rawReq) { r.length = fmt.Sprint(len(base) - 3) })
		addS("Content-Length 0 with a body", base, 0, func(r *rawReq) {
			r.length = "0"
			if rt.allowEmpty { // an empty body is fine there: send broken JSON instead
				r.length = "1"
			}
		})

		// Wrong types for every field.
		for f, typ := range rt.fields {
			wrong := map[string][]string{
				"string": {`1`, `{}`, `["a"]`, `true`, `1e400`},
				"bool":   {`"true"`, `1`, `{}`, `[]`, `"false"`},
				"number": {`"30"`, `1.5`, `{}`, `[]`, `true`, `1e400`, `-1e400`, `99999999999999999999`},
				"object": {`"x"`, `1`, `[]`, `true`},
			}[typ]
			for _, v := range wrong {
				addS(fmt.Sprintf("%s is %s (%s expected)", f, v, typ), rt.base.with(f, rawJSON(v)).String(), 400)
			}
		}
		// Huge strings in every string field (under the body cap).
		for f, typ := range rt.fields {
			if typ == "string" {
				addS(f+" is a 60 KiB string", rt.base.with(f, strings.Repeat("A", 60<<10)).String(), 0)
			}
		}
		// Wrong methods on the route's path.
		for _, m := range []string{"GET", "PATCH", "FOO", "OPTIONS"} {
			if m == "GET" && rt.path == "/api/account" {
				continue
			}
			add("method "+m, []byte(base), 405, func(r *rawReq) { r.method = m })
		}
	}

	// register: every field's rules.
	reg := routes[1].base
	regCase := func(name string, body jsonObject, want int) {
		c = append(c, rawReq{name: "POST /api/register: " + name, method: "POST", target: "/api/register", body: []byte(body.String()), want: want})
	}
	for name, u := range map[string]string{
		"2 chars": "ab", "65 chars": strings.Repeat("a", 65), "empty": "", "a space": "al ice", "leading space": " " + taken,
		"unicode": "ünïcödé", "fullwidth": "ａｌｉｃｅ", "an @": "al@ice", "a slash": "al/ice", "dot dot slash": "../../x",
		"a NUL": "ali\u0000ce", "a newline": "alice\n", "an emoji": "ali😀ce", "a plus": "al+ice", "huge": strings.Repeat("a", 50<<10),
	} {
		regCase("username with "+name, reg.with("username", u), 400)
		c = append(c, rawReq{name: "POST /api/login: username with " + name, method: "POST", target: "/api/login",
			body: []byte(routes[2].base.with("username", u).String()), want: 400})
		c = append(c, rawReq{name: "POST /api/prelogin: username with " + name, method: "POST", target: "/api/prelogin",
			body: []byte(jsonObject{{"username", u}}.String()), want: 400})
	}
	for name, e := range map[string]string{
		"no @": "a", "a display name": "Name <a@b.example>", "300 chars": strings.Repeat("a", 290) + "@b.example",
		"two @": "a@b@c.example", "spaces": "a b@c.example", "angle brackets": "<a@b.example>", "trailing space": "a@b.example ",
		"a newline": "a@b.example\nBcc: x@y.example", "only a domain": "@b.example", "a comment": "a@b.example (c)",
	} {
		regCase("email with "+name, reg.with("email", e), 400)
		c = append(c, rawReq{name: "PUT /api/account-settings: email with " + name, method: "PUT", target: "/api/account-settings",
			auth: "bearer", body: []byte(jsonObject{{"email", e}}.String()), want: 400})
	}
	for f, n := range map[string]int{"auth_key": 32, "salt": 16, "nonce": 12, "encrypted_private_key": 200} {
		for name, v := range badB64(n) {
			if f == "encrypted_private_key" && (strings.Contains(name, "bytes") || name == "hex instead") {
				continue // any length from 1 byte is fine there
			}
			regCase(fmt.Sprintf("%s: %s", f, name), reg.with(f, v), 400)
		}
	}
	regCase("encrypted_private_key over 16 KiB", reg.with("encrypted_private_key", fbB64(16<<10+1)), 400)
	for name, kb := range map[string]any{
		"an array": rawJSON(`[{"version":1}]`), "a string": `{"version":1}`, "a number": 1, "true": true, "false": false,
		"an empty array": rawJSON(`[]`), "over 16 KiB": map[string]string{"pad": strings.Repeat("x", 16<<10)},
		"with duplicate keys": rawJSON(`{"a":1,"a":2}`), "too deep": rawJSON(strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 40)),
	} {
		regCase("key_bundle is "+name, reg.with("key_bundle", kb), 400)
	}
	regCase("key_bundle missing", reg.without("key_bundle"), 400)
	regCase("auth_key missing", reg.without("auth_key"), 400)
	regCase("salt missing", reg.without("salt"), 400)
	regCase("username taken", reg, 409)
	regCase("username taken in other case", reg.with("username", strings.ToUpper(taken)), 409)

	// login: key encodings, and a wrong key (401, no session).
	for name, v := range badB64(32) {
		c = append(c, rawReq{name: "POST /api/login: auth_key " + name, method: "POST", target: "/api/login",
			body: []byte(routes[2].base.with("auth_key", v).String()), want: 400})
	}
	c = append(c,
		rawReq{name: "POST /api/login: wrong auth key", method: "POST", target: "/api/login", body: []byte(routes[2].base.String()), want: 401},
		rawReq{name: "POST /api/login: unknown user", method: "POST", target: "/api/login", body: []byte(routes[2].base.with("username", "nobody-here").String()), want: 401},
		rawReq{name: "POST /api/login: use_cookies with a wrong key", method: "POST", target: "/api/login", body: []byte(routes[2].base.with("use_cookies", true).String()), want: 401},
	)

	// refresh: tokens of every wrong shape.
	sid, _ := base64.RawURLEncoding.DecodeString(fx.refresh)
	forged := func(gen byte) string {
		b := append(append([]byte(nil), sid[:16]...), 0, 0, 0, 0, 0, 0, 0, gen)
		return base64.RawURLEncoding.EncodeToString(append(b, bytes.Repeat([]byte{7}, 32)...))
	}
	for name, tok := range map[string]string{
		"a word": "hello", "standard base64": base64.StdEncoding.EncodeToString(sid), "padded": fx.refresh + "=",
		"one char short": fx.refresh[:len(fx.refresh)-1], "one char more": fx.refresh + "A", "an access token": fx.user.Access,
		"a forged MAC": forged(0), "a future generation": forged(9), "whitespace": " " + fx.refresh,
		"random session": base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{9}, 56)),
	} {
		c = append(c, rawReq{name: "POST /api/refresh: refresh_token is " + name, method: "POST", target: "/api/refresh",
			body: []byte(jsonObject{{"refresh_token", tok}}.String()), want: 401})
	}
	c = append(c,
		rawReq{name: "POST /api/refresh: empty body and no cookie", method: "POST", target: "/api/refresh", ct: "-", want: 400},
		rawReq{name: "POST /api/refresh: empty token and no cookie", method: "POST", target: "/api/refresh", body: []byte(`{"refresh_token":""}`), want: 400},
		rawReq{name: "POST /api/refresh: garbage refresh cookie", method: "POST", target: "/api/refresh", ct: "-", header: []string{"Cookie", "pl_refresh=garbage"}, want: 401},
		rawReq{name: "POST /api/refresh: refresh cookie without CSRF token", method: "POST", target: "/api/refresh", ct: "-", header: []string{"Cookie", "pl_refresh=" + fx.refresh}, want: 403},
		rawReq{name: "POST /api/refresh: refresh cookie with a wrong CSRF token", method: "POST", target: "/api/refresh", ct: "-", header: []string{"Cookie", "pl_refresh=" + fx.refresh, "X-CSRF-Token", "bm9wZQ"}, want: 403},
	)

	// account-settings: values out of range.
	settings := func(name, body string, want int) {
		c = append(c, rawReq{name: "PUT /api/account-settings: " + name, method: "PUT", target: "/api/account-settings", auth: "bearer", body: []byte(body), want: want})
	}
	for _, d := range []string{"-1", "366", "1000", "2147483648", "-2147483649", "9223372036854775807"} {
		settings("default_retention_days "+d, `{"default_retention_days":`+d+`}`, 400)
	}
	settings("nothing to change", `{}`, 400)
	settings("only nulls", `{"email":null,"default_retention_days":null,"password":null}`, 400)
	settings("email too long", jsonObject{{"email", strings.Repeat("e", 250) + "@b.example"}}.String(), 400)
	settings("password is empty", `{"password":{}}`, 400)
	settings("password with an unknown field", `{"password":{"current_auth_key":"x","admin":true}}`, 400)
	pw := jsonObject{{"current_auth_key", fx.wrongKey}, {"auth_key", fbB64(32)}, {"encrypted_private_key", fbB64(100)}, {"salt", fbB64(16)}, {"nonce", fbB64(12)}}
	for f, n := range map[string]int{"current_auth_key": 32, "auth_key": 32, "salt": 16, "nonce": 12} {
		for name, v := range badB64(n) {
			settings(fmt.Sprintf("password.%s %s", f, name), jsonObject{{"password", pw.with(f, v)}}.String(), 400)
		}
		settings("password."+f+" missing", jsonObject{{"password", pw.without(f)}}.String(), 400)
		settings("password."+f+" is a number", jsonObject{{"password", pw.with(f, 5)}}.String(), 400)
	}
	settings("password with a wrong current key", jsonObject{{"password", pw}}.String(), 403)
	settings("valid email with a bad retention", `{"email":"new@mail.example","default_retention_days":-5}`, 400)

	// DELETE account: key encodings and a wrong key.
	for name, v := range badB64(32) {
		c = append(c, rawReq{name: "DELETE /api/account: auth_key " + name, method: "DELETE", target: "/api/account", auth: "bearer",
			body: []byte(jsonObject{{"auth_key", v}}.String()), want: 400})
	}
	c = append(c, rawReq{name: "DELETE /api/account: wrong auth key", method: "DELETE", target: "/api/account", auth: "bearer",
		body: []byte(jsonObject{{"auth_key", fx.wrongKey}}.String()), want: 403})

	// Authentication of every authenticated route.
	now := time.Now()
	badTokens := map[string]string{
		"not a JWT":            "hello",
		"three dots":           "a.b.c",
		"signed by another":    fx.token(t, jwt.SigningMethodHS256, []byte("another secret that is long enough!!"), nil),
		"alg none":             fx.token(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, nil),
		"HS384":                fx.token(t, jwt.SigningMethodHS384, nil, nil),
		"HS512":                fx.token(t, jwt.SigningMethodHS512, nil, nil),
		"expired":              fx.token(t, jwt.SigningMethodHS256, nil, func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() }),
		"without exp":          fx.token(t, jwt.SigningMethodHS256, nil, func(c jwt.MapClaims) { delete(c, "exp") }),
		"issued in the future": fx.token(t, jwt.SigningMethodHS256, nil, func(c jwt.MapClaims) { c["iat"] = now.Add(time.Hour).Unix() }),
		"wrong issuer":         fx.token(t, jwt.SigningMethodHS256, nil, func(c jwt.MapClaims) { c["iss"] = "evil.example" }),
		"wrong audience":       fx.token(t, jwt.SigningMethodHS256, nil, func(c jwt.MapClaims) { c["aud"] = []string{"federation"} }),
		"without jti":          fx.token(t, jwt.SigningMethodHS256, nil, func(c jwt.MapClaims) { delete(c, "jti") }),
		"without sub":          fx.token(t, jwt.SigningMethodHS256, nil, func(c jwt.MapClaims) { delete(c, "sub") }),
		"sub not an id":        fx.token(t, jwt.SigningMethodHS256, nil, func(c jwt.MapClaims) { c["sub"] = "../admin" }),
		"another user's sub":   fx.token(t, jwt.SigningMethodHS256, nil, func(c jwt.MapClaims) { c["sub"] = strings.Repeat("ab", 16) }),
		"unknown session":      fx.token(t, jwt.SigningMethodHS256, nil, func(c jwt.MapClaims) { c["sid"] = strings.Repeat("cd", 16) }),
		"sid not an id":        fx.token(t, jwt.SigningMethodHS256, nil, func(c jwt.MapClaims) { c["sid"] = 7 }),
		"a refresh token":      fx.refresh,
	}
	authRoutes := []struct {
		method, path string
		body         string
	}{
		{"GET", "/api/account", ""},
		{"POST", "/api/revoke", `{"all":true}`},
		{"PUT", "/api/account-settings", `{"default_retention_days":7}`},
		{"DELETE", "/api/account", jsonObject{{"auth_key", fx.user.AuthKey}}.String()},
	}
	for _, ar := range authRoutes {
		p := ar.method + " " + ar.path + ": "
		for name, tok := range badTokens {
			c = append(c, rawReq{name: p + "token " + name, method: ar.method, target: ar.path, body: []byte(ar.body),
				header: []string{"Authorization", "Bearer " + tok}, want: 401})
		}
		for name, h := range map[string]string{
			"no scheme": fx.user.Access, "Basic": "Basic " + base64.StdEncoding.EncodeToString([]byte("a:b")),
			"empty Bearer": "Bearer ", "Bearer alone": "Bearer", "two tokens": "Bearer " + fx.user.Access + " " + fx.user.Access,
		} {
			c = append(c, rawReq{name: p + "Authorization " + name, method: ar.method, target: ar.path, body: []byte(ar.body),
				header: []string{"Authorization", h}, want: 401})
		}
		c = append(c, rawReq{name: p + "no credentials", method: ar.method, target: ar.path, body: []byte(ar.body), want: 401})
		c = append(c, rawReq{name: p + "garbage access cookie", method: ar.method, target: ar.path, body: []byte(ar.body),
			header: []string{"Cookie", "pl_access=garbage"}, want: 401})
		if ar.method != "GET" {
			c = append(c,
				rawReq{name: p + "access cookie without CSRF token", method: ar.method, target: ar.path, auth: "cookie", body: []byte(ar.body), want: 403},
				rawReq{name: p + "access cookie with a wrong CSRF token", method: ar.method, target: ar.path, auth: "cookie", body: []byte(ar.body),
					header: []string{"X-CSRF-Token", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, want: 403},
			)
		}
	}

	// Wrong methods on the other paths, and path tricks.
	for _, m := range []struct{ method, path string }{
		{"POST", "/api/account"}, {"PUT", "/api/account"}, {"PATCH", "/api/account"}, {"GET", "/api/account-settings"},
		{"POST", "/api/account-settings"}, {"DELETE", "/api/account-settings"}, {"GET", "/api/revoke"}, {"DELETE", "/api/revoke"},
		{"POST", "/healthz"}, {"DELETE", "/readyz"}, {"POST", "/api/openapi.yaml"}, {"PUT", "/api/openapi.yaml"},
		{"TRACE", "/api/login"}, {"PROPFIND", "/api/account"}, {"OPTIONS", "/api/account"},
	} {
		c = append(c, rawReq{name: fmt.Sprintf("method %s on %s", m.method, m.path), method: m.method, target: m.path, auth: "bearer", body: []byte(`{}`), want: 405})
	}
	loginBody := []byte(routes[2].base.String())
	for _, p := range []string{
		"//api/login", "/api/login/", "/api/../api/login", "/api/%2e%2e/api/login", "/api/./login", "/API/LOGIN", "/api//login",
		"/api/login%00", "/api/login;x", "/api/login%2F", "/api/Login", "/api/nope", "/api/", "/nope", "/api/login/x",
		"/api/account/../account-settings", "/api/account%2fsettings",
	} {
		c = append(c, rawReq{name: "path " + p, method: "POST", target: p, body: loginBody, want: 404})
	}
	// Percent-encoding an unreserved character still reaches the route.
	c = append(c, rawReq{name: "path /%61pi/login", method: "POST", target: "/%61pi/login", body: loginBody, want: 401})
	c = append(c, rawReq{name: "CORS preflight from a foreign origin", method: "OPTIONS", target: "/api/login", ct: "-",
		header: []string{"Origin", "https://evil.example", "Access-Control-Request-Method", "POST"}, want: 403})
	return c
}

func TestMalformedRequests(t *testing.T) {
	ts := startServer(t, testConfig(t))
	fx := &malFixture{user: ts.register("malformed"), wrongKey: randB64(32)}
	fx.refresh = fx.user.Refresh
	secret, err := os.ReadFile(filepath.Join(ts.cfg.DataDir, "jwt_secret_key"))
	if err != nil {
		t.Fatal(err)
	}
	fx.jwtSecret = bytes.TrimSpace(secret)
	if _, _, err := jwt.NewParser().ParseUnverified(fx.user.Access, &fx.claims); err != nil {
		t.Fatalf("parsing the access token: %v", err)
	}
	corpus := malformedCorpus(t, fx)
	if len(corpus) < 250 {
		t.Fatalf("the corpus has %d requests, want at least 250", len(corpus))
	}
	t.Logf("%d malformed requests", len(corpus))
	names := map[string]bool{}
	for _, rq := range corpus {
		if names[rq.name] {
			t.Fatalf("two cases are named %q", rq.name)
		}
		names[rq.name] = true
	}

	before, err := homeserver.StoreFingerprint(ts.srv)
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(ts.URL, "http://")
	for _, rq := range corpus {
		t.Run(rq.name, func(t *testing.T) {
			checkMalformedAnswer(t, rq, sendRaw(t, addr, rq, fx.user.Access))
		})
	}
	after, err := homeserver.StoreFingerprint(ts.srv)
	if err != nil {
		t.Fatal(err)
	}
	if before != after {
		t.Errorf("the store changed while answering malformed requests")
	}
	if r := ts.do("GET", "/api/account", fx.user.Access, nil); r.Status != http.StatusOK {
		t.Errorf("the user's session no longer works after the corpus: %d %s", r.Status, r.Body)
	}
	if strings.Contains(ts.logs.String(), `"level":"ERROR"`) {
		t.Errorf("the server logged errors:\n%s", ts.logs)
	}
}

// TestCaseFoldedKeysOverHTTP: encoding/json would match "USERNAME" to the
// username field; the API takes only exact names, so a second spelling of
// a field cannot shadow the first.
func TestCaseFoldedKeysOverHTTP(t *testing.T) {
	ts := startServer(t, testConfig(t))
	a := ts.register("fold")
	for _, body := range []string{
		`{"username":"nobody-at-all","USERNAME":"` + a.Username + `"}`,
		`{"Username":"` + a.Username + `"}`,
		`{"uſername":"` + a.Username + `"}`,
	} {
		r := ts.do("POST", "/api/prelogin", "", body)
		if r.Status != http.StatusBadRequest || r.errorCode(t) != "invalid_request" {
			t.Errorf("prelogin %s: %d %s, want 400", body, r.Status, r.Body)
		}
	}
	r := ts.do("POST", "/api/login", "", `{"username":"`+a.Username+`","auth_key":"`+randB64(32)+`","AUTH_KEY":"`+a.AuthKey+`"}`)
	if r.Status != http.StatusBadRequest {
		t.Errorf("login with auth_key and AUTH_KEY: %d %s, want 400", r.Status, r.Body)
	}
}
