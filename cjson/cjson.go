// Package cjson encodes and checks PrivateLine's canonical JSON, the byte
// form that every signature and every AES-GCM associated data in
// spec/e2ee.md is computed over.
//
// Canonical JSON is a strict subset of JSON whose encoding agrees with the
// JSON Canonicalization Scheme (RFC 8785, JCS) on every value it admits:
//
//   - values are objects, arrays, strings, integers, true, false and null;
//     there are no floating-point numbers;
//   - integers lie within ±(2^53−1) (JavaScript's safe integers) and are
//     written in decimal without sign for non-negative values, without
//     leading zeros, exponent or fraction; "-0" is not allowed;
//   - object member names are ASCII (0x20–0x7E), unique, and sorted
//     bytewise (for ASCII this equals JCS's UTF-16 code-unit order);
//   - strings are valid Unicode (no lone surrogates) written as UTF-8; only
//     '"', '\\' and the control characters U+0000–U+001F are escaped, as
//     \" \\ \b \t \n \f \r or \u00xx with lower-case hex; everything else,
//     '/', DEL and non-ASCII included, is written literally;
//   - there is no whitespace outside strings.
//
// [Parse] reads any JSON text that stays inside the subset (whitespace
// allowed, duplicate names, floats, unsafe integers and lone surrogates
// refused); [Marshal] writes the canonical form; [Check] reports whether a
// byte string is exactly the canonical form of its value.
package cjson

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"
)

// MaxSafeInt is the largest magnitude of an integer in canonical JSON,
// 2^53−1 (JavaScript's Number.MAX_SAFE_INTEGER).
const MaxSafeInt = 1<<53 - 1

// maxDepth bounds the nesting of arrays and objects.
const maxDepth = 32

// ErrNotCanonical is returned by Check for valid input that is not in
// canonical form.
var ErrNotCanonical = errors.New("cjson: not in canonical form")

// Marshal returns the canonical encoding of v, which must be built from
// nil, bool, string, int, int64, uint64, []any, []string, map[string]any
// and map[string]string.
func Marshal(v any) ([]byte, error) {
	return appendValue(nil, v, 0)
}

func appendValue(b []byte, v any, depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, errors.New("cjson: nested too deeply")
	}
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case bool:
		if v {
			return append(b, "true"...), nil
		}
		return append(b, "false"...), nil
	case string:
		return appendString(b, v)
	case int:
		return appendInt(b, int64(v))
	case int64:
		return appendInt(b, v)
	case uint64:
		if v > MaxSafeInt {
			return nil, errors.New("cjson: integer out of range")
		}
		return appendInt(b, int64(v))
	case []string:
		b = append(b, '[')
		for i, s := range v {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendString(b, s); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case []any:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendValue(b, e, depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case map[string]string:
		m := make(map[string]any, len(v))
		for k, s := range v {
			m[k] = s
		}
		return appendObject(b, m, depth)
	case map[string]any:
		return appendObject(b, v, depth)
	default:
		return nil, fmt.Errorf("cjson: cannot encode %T", v)
	}
}

func appendObject(b []byte, m map[string]any, depth int) ([]byte, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		if !asciiName(k) {
			return nil, fmt.Errorf("cjson: member name %q is not printable ASCII", k)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys) // Go compares strings bytewise
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b, _ = appendString(b, k)
		b = append(b, ':')
		var err error
		if b, err = appendValue(b, m[k], depth+1); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

func asciiName(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func appendInt(b []byte, n int64) ([]byte, error) {
	if n > MaxSafeInt || n < -MaxSafeInt {
		return nil, errors.New("cjson: integer out of range")
	}
	return strconv.AppendInt(b, n, 10), nil
}

const hexDigits = "0123456789abcdef"

// AppendString appends the canonical encoding of the string s to b (an
// error if s is not valid UTF-8), for encoders that write a known shape
// directly instead of building a map for Marshal.
func AppendString(b []byte, s string) ([]byte, error) { return appendString(b, s) }

func appendString(b []byte, s string) ([]byte, error) {
	if !utf8.ValidString(s) {
		return nil, errors.New("cjson: string is not valid UTF-8")
	}
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		// Runs of bytes that need no escape (most of a base64 string,
		// all of one) are copied at once.
		if j := plainRun(s, i); j > i {
			b = append(b, s[i:j]...)
			if i = j; i == len(s) {
				break
			}
		}
		c := s[i]
		switch c {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\b':
			b = append(b, '\\', 'b')
		case '\t':
			b = append(b, '\\', 't')
		case '\n':
			b = append(b, '\\', 'n')
		case '\f':
			b = append(b, '\\', 'f')
		case '\r':
			b = append(b, '\\', 'r')
		default:
			if c < 0x20 {
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			} else {
				b = append(b, c)
			}
		}
	}
	return append(b, '"'), nil
}

// plainRun returns the end of the run of bytes of s from i that are
// written as they are: not '"', '\\' or a control character (bytes of
// multi-byte characters included: s is valid UTF-8).
func plainRun[T string | []byte](s T, i int) int {
	for i < len(s) {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' {
			return i
		}
		i++
	}
	return i
}

// Canonicalize parses data and returns the canonical encoding of its value.
func Canonicalize(data []byte) ([]byte, error) {
	v, err := Parse(data)
	if err != nil {
		return nil, err
	}
	return Marshal(v)
}

// Check returns nil if data is exactly the canonical encoding of its value,
// ErrNotCanonical if it is valid but differently written, and the parse
// error otherwise.
func Check(data []byte) error {
	c, err := Canonicalize(data)
	if err != nil {
		return err
	}
	if string(c) != string(data) {
		return ErrNotCanonical
	}
	return nil
}
