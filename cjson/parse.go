package cjson

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// SyntaxError reports input that is not JSON or leaves the canonical subset.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("cjson: %s at offset %d", e.Msg, e.Offset) }

// Parse decodes one JSON value from data. Objects become map[string]any,
// arrays []any, numbers int64, and strings, booleans and null their Go
// counterparts. It refuses what canonical JSON cannot express: numbers with
// a fraction or exponent, "-0", integers beyond ±(2^53−1), duplicate or
// non-ASCII member names, invalid UTF-8, lone surrogate escapes, nesting
// deeper than 32, and trailing data.
func Parse(data []byte) (any, error) { return parse(data, false) }

// ParseCanonical is Parse that also checks, in the same pass, that data is
// exactly the canonical encoding of its value (what Marshal would write):
// no white space, member names in increasing byte order, every string
// escaped as Marshal escapes it. It returns Parse's error for input Parse
// refuses, ErrNotCanonical for valid input written differently, and the
// value otherwise — the same verdict as Parse followed by Check, without
// encoding the value again.
func ParseCanonical(data []byte) (any, error) { return parse(data, true) }

// parse is Parse, and with canon also ParseCanonical's check.
func parse(data []byte, canon bool) (any, error) {
	p := &parser{data: data, canon: canon}
	p.space()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.pos != len(p.data) {
		return nil, p.fail("trailing data")
	}
	if p.nonCanon {
		return nil, ErrNotCanonical
	}
	return v, nil
}

type parser struct {
	data []byte
	pos  int
	// canon: note in nonCanon whether anything is written other than
	// Marshal writes it (ParseCanonical).
	canon, nonCanon bool
}

func (p *parser) fail(msg string) error { return &SyntaxError{Offset: p.pos, Msg: msg} }

func (p *parser) space() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
			p.nonCanon = p.canon
		default:
			return
		}
	}
}

func (p *parser) literal(s string, v any) (any, error) {
	if len(p.data)-p.pos < len(s) || string(p.data[p.pos:p.pos+len(s)]) != s {
		return nil, p.fail("invalid literal")
	}
	p.pos += len(s)
	return v, nil
}

func (p *parser) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, p.fail("nested too deeply")
	}
	if p.pos >= len(p.data) {
		return nil, p.fail("unexpected end of input")
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		return p.string()
	case c == 't':
		return p.literal("true", true)
	case c == 'f':
		return p.literal("false", false)
	case c == 'n':
		return p.literal("null", nil)
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	default:
		return nil, p.fail("unexpected character")
	}
}

func (p *parser) object(depth int) (any, error) {
	p.pos++ // '{'
	m := map[string]any{}
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return m, nil
	}
	prev := ""
	for first := true; ; first = false {
		p.space()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, p.fail("expected member name")
		}
		at := p.pos
		k, err := p.string()
		if err != nil {
			return nil, err
		}
		if !asciiName(k) {
			return nil, &SyntaxError{at, "member name is not printable ASCII"}
		}
		if _, dup := m[k]; dup {
			return nil, &SyntaxError{at, fmt.Sprintf("duplicate member name %q", k)}
		}
		if p.canon && !first && k < prev {
			p.nonCanon = true // Marshal sorts names bytewise
		}
		prev = k
		p.space()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, p.fail("expected ':'")
		}
		p.pos++
		p.space()
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		m[k] = v
		done, err := p.next('}')
		if err != nil {
			return nil, err
		}
		if done {
			return m, nil
		}
	}
}

// next consumes what follows a member or element: ',' (more to come) or
// the closing byte (done).
func (p *parser) next(closing byte) (done bool, err error) {
	p.space()
	if p.pos >= len(p.data) {
		return false, p.fail("unexpected end of input")
	}
	switch p.data[p.pos] {
	case ',':
		p.pos++
		return false, nil
	case closing:
		p.pos++
		return true, nil
	}
	return false, p.fail("expected ',' or '" + string(closing) + "'")
}

func (p *parser) array(depth int) (any, error) {
	p.pos++ // '['
	a := []any{}
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return a, nil
	}
	for {
		p.space()
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		done, err := p.next(']')
		if err != nil {
			return nil, err
		}
		if done {
			return a, nil
		}
	}
}

func (p *parser) number() (any, error) {
	start := p.pos
	neg := false
	if p.data[p.pos] == '-' {
		neg = true
		p.pos++
	}
	digits := p.pos
	for p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
		p.pos++
	}
	n := p.pos - digits
	switch {
	case n == 0:
		return nil, p.fail("invalid number")
	case n > 1 && p.data[digits] == '0':
		return nil, &SyntaxError{start, "number with a leading zero"}
	}
	if p.pos < len(p.data) {
		switch p.data[p.pos] {
		case '.', 'e', 'E':
			return nil, &SyntaxError{start, "number is not an integer (no fractions or exponents)"}
		}
	}
	if n > 16 {
		return nil, &SyntaxError{start, "integer out of range"}
	}
	var v int64
	for _, c := range p.data[digits:p.pos] {
		v = v*10 + int64(c-'0')
	}
	if v > MaxSafeInt {
		return nil, &SyntaxError{start, "integer out of range"}
	}
	if neg {
		if v == 0 {
			return nil, &SyntaxError{start, `"-0" is not allowed`}
		}
		v = -v
	}
	return v, nil
}

func (p *parser) string() (string, error) {
	p.pos++ // '"'
	// Fast path: a string of plain ASCII without escapes (every base64
	// string) is one slice of the input.
	start := p.pos
	for p.pos+8 <= len(p.data) && Plain8(binary.LittleEndian.Uint64(p.data[p.pos:])) {
		p.pos += 8
	}
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		if c == '"' {
			p.pos++
			return string(p.data[start : p.pos-1]), nil
		}
		if c < 0x20 || c == '\\' || c >= utf8.RuneSelf {
			break
		}
		p.pos++
	}
	b := append([]byte(nil), p.data[start:p.pos]...)
	for {
		if p.pos >= len(p.data) {
			return "", p.fail("unterminated string")
		}
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			if p.canon && !p.nonCanon {
				// Escapes and non-ASCII bytes: canonical if Marshal writes
				// the decoded string the same way (it is valid UTF-8).
				c, _ := appendString(nil, string(b))
				p.nonCanon = string(c) != string(p.data[start-1:p.pos])
			}
			return string(b), nil
		case c == '\\':
			r, err := p.escape()
			if err != nil {
				return "", err
			}
			b = utf8.AppendRune(b, r)
		case c < 0x20:
			return "", p.fail("control character in string")
		case c < utf8.RuneSelf:
			b = append(b, c)
			p.pos++
		default:
			r, size := utf8.DecodeRune(p.data[p.pos:])
			if r == utf8.RuneError && size == 1 {
				return "", p.fail("invalid UTF-8")
			}
			b = append(b, p.data[p.pos:p.pos+size]...)
			p.pos += size
		}
	}
}

// Plain8 reports whether the 8 bytes of x (as loaded little-endian from
// a string's bytes) are all printable ASCII other than '"' and '\\'
// (0x20–0x7e): bytes that a canonical JSON string holds as they are and
// that never end one. The tests are the word-at-a-time ones for a zero
// byte (x−0x01… & ^x & 0x80…) and a byte below n (x−n… & ^x & 0x80…,
// n ≤ 0x80), exact about whether such a byte exists; 0x7f is the byte
// whose low seven bits plus one reach 0x80. A base64 string of 4 KiB is
// then scanned 8 bytes a step (here and in package envelope).
func Plain8(x uint64) bool {
	const ones, highs, lows = 0x0101010101010101, 0x8080808080808080, 0x7f7f7f7f7f7f7f7f
	q := x ^ ('"' * ones)
	b := x ^ ('\\' * ones)
	return (x|(q-ones)&^q|(b-ones)&^b|(x-0x20*ones)&^x|(x&lows+ones))&highs == 0
}

var errLoneSurrogate = errors.New("lone surrogate")

func (p *parser) escape() (rune, error) {
	if p.pos+1 >= len(p.data) {
		return 0, p.fail("unterminated escape")
	}
	c := p.data[p.pos+1]
	p.pos += 2
	switch c {
	case '"', '\\', '/':
		return rune(c), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
		r, err := p.hex4()
		if err != nil {
			return 0, err
		}
		if !utf16.IsSurrogate(r) {
			return r, nil
		}
		if r >= 0xdc00 || p.pos+1 >= len(p.data) || p.data[p.pos] != '\\' || p.data[p.pos+1] != 'u' {
			return 0, p.fail(errLoneSurrogate.Error())
		}
		p.pos += 2
		r2, err := p.hex4()
		if err != nil {
			return 0, err
		}
		dec := utf16.DecodeRune(r, r2)
		if dec == utf8.RuneError {
			return 0, p.fail(errLoneSurrogate.Error())
		}
		return dec, nil
	default:
		return 0, p.fail("invalid escape")
	}
}

func (p *parser) hex4() (rune, error) {
	if len(p.data)-p.pos < 4 {
		return 0, p.fail("short \\u escape")
	}
	var r rune
	for _, c := range p.data[p.pos : p.pos+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, p.fail("invalid \\u escape")
		}
	}
	p.pos += 4
	return r, nil
}
