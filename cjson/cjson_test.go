package cjson

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestMarshal(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"sorted", map[string]any{"b": int64(1), "a": []any{true, false, nil}, "B": "x"}, `{"B":"x","a":[true,false,null],"b":1}`},
		{"escapes", "\"\\/\b\f\n\r\t\x00\x1f\x7f\u2028é😀", `"\"\\/\b\f\n\r\t\u0000\u001f` + "\x7f\u2028é😀" + `"`},
		{"ints", []any{0, int64(-5), uint64(MaxSafeInt), int64(-MaxSafeInt)}, `[0,-5,9007199254740991,-9007199254740991]`},
		{"strings", []string{"a", "b"}, `["a","b"]`},
		{"string map", map[string]string{"y": "1", "x": "2"}, `{"x":"2","y":"1"}`},
		{"empty", map[string]any{"o": map[string]any{}, "a": []any{}}, `{"a":[],"o":{}}`},
	}
	for _, tc := range tests {
		got, err := Marshal(tc.in)
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: got %s, %v; want %s", tc.name, got, err, tc.want)
		}
		if err := Check(got); err != nil {
			t.Errorf("%s: own output not canonical: %v", tc.name, err)
		}
	}
}

func TestMarshalRefuses(t *testing.T) {
	for name, v := range map[string]any{
		"unsafe int":     int64(MaxSafeInt + 1),
		"unsafe neg":     int64(-MaxSafeInt - 1),
		"unsafe uint":    uint64(1 << 60),
		"float":          1.5,
		"bad utf8":       "\xff",
		"non-ascii name": map[string]any{"é": 1},
		"control name":   map[string]any{"\n": 1},
		"deep":           deep(40),
	} {
		if _, err := Marshal(v); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
}

func deep(n int) any {
	var v any = 1
	for range n {
		v = []any{v}
	}
	return v
}

func TestCheck(t *testing.T) {
	tests := []struct {
		in      string
		want    error // nil, ErrNotCanonical, or any *SyntaxError (use errSyntax)
		wantSyn bool
	}{
		{`{"a":1,"b":"x"}`, nil, false},
		{`{"b":1,"a":2}`, ErrNotCanonical, false},
		{`{ "a":1}`, ErrNotCanonical, false},
		{`"\u0041"`, ErrNotCanonical, false},
		{`"\/"`, ErrNotCanonical, false},
		{`"\u001F"`, ErrNotCanonical, false},
		{`"\ud83d\ude00"`, ErrNotCanonical, false},
		{`1.0`, nil, true},
		{`1e2`, nil, true},
		{`-0`, nil, true},
		{`007`, nil, true},
		{`9007199254740992`, nil, true},
		{`-9007199254740992`, nil, true},
		{`12345678901234567890`, nil, true},
		{`{"a":1,"a":1}`, nil, true},
		{`"\ud800"`, nil, true},
		{`"\udc00\ud800"`, nil, true},
		{`"\ud800\u0041"`, nil, true},
		{"\"\xff\"", nil, true},
		{"\"\t\"", nil, true},
		{`[1,]`, nil, true},
		{`{"a":1,}`, nil, true},
		{`{"a"}`, nil, true},
		{`tru`, nil, true},
		{`"\x"`, nil, true},
		{`"abc`, nil, true},
		{``, nil, true},
		{`1 2`, nil, true},
		{strings.Repeat("[", 40) + strings.Repeat("]", 40), nil, true},
		{`"é"`, nil, false},
		{`"\"\\\n\u0001"`, nil, false},
		{`"\u00e9"`, ErrNotCanonical, false},
		{`"\u000a"`, ErrNotCanonical, false},
		{`{"a":{"d":1,"c":2},"b":[]}`, ErrNotCanonical, false},
		{`{"a":{"c":1,"d":[1, 2]}}`, ErrNotCanonical, false},
		{`{"a":1,"b":2} `, ErrNotCanonical, false},
		{`{"ab":1,"a":2}`, ErrNotCanonical, false},
		{`{"a":1,"ab":2,"b":{"x":"\u0041","y":-3}}`, ErrNotCanonical, false},
		{`{"b":1,"a":1.5}`, nil, true}, // refused, not merely non-canonical
		{`{ "a":1,"a":2}`, nil, true},
	}
	for _, tc := range tests {
		for name, check := range map[string]func([]byte) error{
			"Check":          Check,
			"ParseCanonical": func(b []byte) error { _, err := ParseCanonical(b); return err },
		} {
			err := check([]byte(tc.in))
			var se *SyntaxError
			switch {
			case tc.wantSyn && !errors.As(err, &se):
				t.Errorf("%s(%q): got %v, want a syntax error", name, tc.in, err)
			case !tc.wantSyn && !errors.Is(err, tc.want) && err != tc.want:
				t.Errorf("%s(%q): got %v, want %v", name, tc.in, err, tc.want)
			}
		}
	}
}

// FuzzParseCanonical holds ParseCanonical to Parse followed by Check: the
// same verdict (refused, not canonical, accepted) and the same value.
func FuzzParseCanonical(f *testing.F) {
	for _, s := range []string{`{"a":[1,"x",null]}`, `"\u0000"`, `{"b":{"a":true}}`, `{"a":{"b":1},"a":2}`,
		`-1`, `"é"`, `"\u00e9"`, `{"b":1,"a":2}`, `[1, 2]`, `"a\/b"`, `{"a":"\ud83d\ude00"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseCanonical(data)
		want, perr := Parse(data)
		var se *SyntaxError
		switch {
		case perr != nil:
			if !errors.As(err, &se) || err.Error() != perr.Error() {
				t.Fatalf("%q: ParseCanonical %v, Parse %v", data, err, perr)
			}
		case Check(data) != nil:
			if err != ErrNotCanonical {
				t.Fatalf("%q: not canonical, ParseCanonical says %v", data, err)
			}
		default:
			if err != nil {
				t.Fatalf("%q: canonical, ParseCanonical says %v", data, err)
			}
			a, _ := Marshal(got)
			b, _ := Marshal(want)
			if string(a) != string(b) {
				t.Fatalf("%q: ParseCanonical's value %s, Parse's %s", data, a, b)
			}
		}
	})
}

func TestParseValues(t *testing.T) {
	v, err := Parse([]byte(` {"n":-12,"s":"\u00e9\ud83d\ude00","a":[null,true],"o":{}} `))
	if err != nil {
		t.Fatal(err)
	}
	m := v.(map[string]any)
	if m["n"].(int64) != -12 || m["s"].(string) != "é😀" || len(m["a"].([]any)) != 2 || len(m["o"].(map[string]any)) != 0 {
		t.Fatalf("parsed %#v", v)
	}
}

func FuzzCanonical(f *testing.F) {
	for _, s := range []string{`{"a":[1,"x",null]}`, `"\u0000"`, `{"b":{"a":true}}`, `-1`, `"é"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Canonicalize(data)
		if err != nil {
			return
		}
		if err := Check(c); err != nil {
			t.Fatalf("canonical form %q is not canonical: %v", c, err)
		}
		c2, err := Canonicalize(c)
		if err != nil || string(c2) != string(c) {
			t.Fatalf("canonicalization is not idempotent")
		}
	})
}

// Plain8 passes a word exactly when none of its bytes is special: every
// byte value in every position of an otherwise plain word, and random
// words, against the byte-by-byte rule.
func TestPlain8(t *testing.T) {
	plain := func(c byte) bool { return c >= 0x20 && c <= 0x7e && c != '"' && c != '\\' }
	naive := func(x uint64) bool {
		for i := range 8 {
			if !plain(byte(x >> (8 * i))) {
				return false
			}
		}
		return true
	}
	const word = 0x4141414141414141 // "AAAAAAAA"
	for pos := range 8 {
		for c := range 256 {
			x := word&^(0xff<<(8*pos)) | uint64(c)<<(8*pos)
			if Plain8(x) != naive(x) {
				t.Fatalf("byte %#x at %d: Plain8 %v", c, pos, Plain8(x))
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1 << 20 {
		x := r.Uint64()
		if r.IntN(2) == 0 { // mostly printable ASCII, where misses would hide
			x = x&0x3f3f3f3f3f3f3f3f | 0x2020202020202020
			if r.IntN(2) == 0 {
				x |= 0x4040404040404040
			}
		}
		if Plain8(x) != naive(x) {
			t.Fatalf("%#016x: Plain8 %v", x, Plain8(x))
		}
	}
}

// A special byte anywhere in a long string, in or after the words the
// fast path skips, is seen.
func TestParseLongStrings(t *testing.T) {
	for at := range 40 {
		for _, c := range []string{`\n`, `\"`, "é", "\x01", `"`} {
			s := `"` + strings.Repeat("a", at) + c + strings.Repeat("b", 17) + `"`
			v, err := Parse([]byte(s))
			want, werr := "", error(nil)
			switch c {
			case `\n`:
				want = strings.Repeat("a", at) + "\n" + strings.Repeat("b", 17)
			case `\"`:
				want = strings.Repeat("a", at) + `"` + strings.Repeat("b", 17)
			case "é":
				want = strings.Repeat("a", at) + "é" + strings.Repeat("b", 17)
			default:
				werr = errors.New("refused")
			}
			if werr != nil {
				if err == nil {
					t.Fatalf("%q: accepted as %q", s, v)
				}
				continue
			}
			if err != nil || v != want {
				t.Fatalf("%q: %q, %v; want %q", s, v, err, want)
			}
		}
	}
}
