package envelope

import (
	"encoding/binary"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/cjson"
)

// The fast path of parse: one pass over an envelope in the form senders
// produce — canonical JSON (spec/e2ee.md §2) whose strings hold only
// printable ASCII without escapes (base64, ids, addresses) — checking every
// rule parse checks, without encoding/json. Anything else (whitespace, an
// escape, a non-ASCII byte, a number that is not a plain non-negative
// integer, a duplicate or unknown member, a value of the wrong type, a
// broken rule) makes it give up, and the general parser decides, so the
// two accept exactly the same envelopes (FuzzParseFast holds them to it)
// and every refusal comes from the general parser with its message.

// scanner reads the restricted form.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) lit(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// peek reports whether the next byte is c.
func (s *scanner) peek(c byte) bool { return s.i < len(s.b) && s.b[s.i] == c }

// str reads a string of printable ASCII without escapes and returns its
// contents (a slice of the input).
func (s *scanner) str() ([]byte, bool) {
	if !s.lit('"') {
		return nil, false
	}
	start := s.i
	for s.i+8 <= len(s.b) && cjson.Plain8(binary.LittleEndian.Uint64(s.b[s.i:])) {
		s.i += 8
	}
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c == '"':
			v := s.b[start:s.i]
			s.i++
			return v, true
		case c < 0x20 || c > 0x7e || c == '\\':
			return nil, false
		}
		s.i++
	}
	return nil, false
}

// uint reads a non-negative integer of at most 16 digits (so within
// int64) without a leading zero.
func (s *scanner) uint() (int64, bool) {
	start := s.i
	var n int64
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		n = n*10 + int64(s.b[s.i]-'0')
		s.i++
	}
	d := s.i - start
	if d == 0 || d > 16 || d > 1 && s.b[start] == '0' {
		return 0, false
	}
	return n, true
}

// strings reads an array of strings (it may be empty).
func (s *scanner) strings() ([][]byte, bool) {
	if !s.lit('[') {
		return nil, false
	}
	var out [][]byte
	if s.lit(']') {
		return out, true
	}
	for {
		v, ok := s.str()
		if !ok {
			return nil, false
		}
		out = append(out, v)
		if s.lit(']') {
			return out, true
		}
		if !s.lit(',') {
			return nil, false
		}
	}
}

// members reads the members of an object, calling fn with each name
// (the value is fn's to read); it refuses a repeated name among those fn
// knows (fn returns the bit of the name, 0 for unknown: refused).
func (s *scanner) members(fn func(name []byte) (bit uint32, ok bool)) (uint32, bool) {
	if !s.lit('{') {
		return 0, false
	}
	var seen uint32
	if s.lit('}') {
		return seen, true
	}
	for {
		name, ok := s.str()
		if !ok || !s.lit(':') {
			return 0, false
		}
		bit, ok := fn(name)
		if !ok || bit == 0 || seen&bit != 0 {
			return 0, false
		}
		seen |= bit
		if s.lit('}') {
			return seen, true
		}
		if !s.lit(',') {
			return 0, false
		}
	}
}

func isHexID(b []byte) bool {
	if len(b) != 32 {
		return false
	}
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func isToken(b []byte) bool {
	if len(b) < 1 || len(b) > 128 {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '@' || c == '-') {
			return false
		}
	}
	return true
}

// fastParse is parse's fast path; ok false: not decided here.
func fastParse(data []byte, group bool) (*Header, bool) {
	if len(data) > MaxSize {
		return nil, false
	}
	s := &scanner{b: data}
	var h *Header
	const (
		mCiphertext = 1 << iota
		mHeader
		mKeyed
		mNonce
		mSignature
	)
	seen, ok := s.members(func(name []byte) (uint32, bool) {
		switch string(name) {
		case "ciphertext":
			v, ok := s.str()
			return mCiphertext, ok && len(v) > 0 && len(v) <= maxCiphertextB64
		case "nonce":
			v, ok := s.str()
			return mNonce, ok && len(v) > 0
		case "signature":
			v, ok := s.str()
			return mSignature, ok && len(v) > 0
		case "header":
			var ok bool
			h, ok = s.header(group)
			return mHeader, ok
		case "keys":
			if group {
				return 0, false
			}
			return mKeyed, s.keys()
		case "salt":
			if !group {
				return 0, false
			}
			v, ok := s.str()
			return mKeyed, ok && len(v) == 44
		}
		return 0, false
	})
	if !ok || s.i != len(data) || seen != mCiphertext|mHeader|mKeyed|mNonce|mSignature {
		return nil, false
	}
	return h, true
}

// keys reads the "keys" object: 1 to MaxRecipients+1 distinct names, each
// with a string.
func (s *scanner) keys() bool {
	if !s.lit('{') || s.peek('}') {
		return false
	}
	var names [][]byte
	for {
		name, ok := s.str()
		if !ok || !s.lit(':') {
			return false
		}
		if _, ok := s.str(); !ok {
			return false
		}
		for _, n := range names {
			if string(n) == string(name) {
				return false
			}
		}
		if names = append(names, name); len(names) > MaxRecipients+1 {
			return false
		}
		if s.lit('}') {
			return true
		}
		if !s.lit(',') {
			return false
		}
	}
}

// header reads the header object and applies the rules of parseHeader.
func (s *scanner) header(group bool) (*Header, bool) {
	const (
		hV = 1 << iota
		hSuite
		hID
		hFrom
		hTo
		hConversation
		hSentAt
		hExpiresAt
		hFiles
		hGroup
		hEpoch
	)
	h := &Header{}
	var v, sent, exp int64
	var from []byte
	var to, files [][]byte
	seen, ok := s.members(func(name []byte) (uint32, bool) {
		var ok bool
		switch string(name) {
		case "v":
			v, ok = s.uint()
			return hV, ok && v == 1
		case "suite":
			suite, ok := s.str()
			return hSuite, ok && string(suite) == "pl1"
		case "id":
			id, ok := s.str()
			if !ok || !isHexID(id) {
				return 0, false
			}
			h.ID = string(id)
			return hID, true
		case "from":
			from, ok = s.str()
			return hFrom, ok
		case "conversation":
			c, ok := s.str()
			if !ok || !isToken(c) {
				return 0, false
			}
			h.Conversation = string(c)
			return hConversation, true
		case "sent_at":
			sent, ok = s.uint()
			return hSentAt, ok && sent <= maxSafeInt
		case "expires_at":
			exp, ok = s.uint()
			return hExpiresAt, ok
		case "files":
			files, ok = s.strings()
			return hFiles, ok
		case "to":
			if group {
				return 0, false
			}
			to, ok = s.strings()
			return hTo, ok
		case "group":
			if !group {
				return 0, false
			}
			g, ok := s.str()
			if !ok || !isToken(g) {
				return 0, false
			}
			h.Group = string(g)
			return hGroup, true
		case "epoch":
			if !group {
				return 0, false
			}
			h.Epoch, ok = s.uint()
			return hEpoch, ok && h.Epoch >= 1 && h.Epoch <= maxSafeInt
		}
		return 0, false
	})
	required := uint32(hV | hSuite | hID | hFrom | hConversation | hSentAt)
	if group {
		required |= hGroup | hEpoch
	} else {
		required |= hTo
	}
	if !ok || seen&required != required {
		return nil, false
	}
	if !validAddress(string(from)) {
		return nil, false
	}
	h.From = privateline.Address(from)
	h.SentAt = time.UnixMilli(sent)
	if seen&hExpiresAt != 0 {
		if exp <= sent || exp > maxSafeInt {
			return nil, false
		}
		h.ExpiresAt = time.UnixMilli(exp)
	}
	if group {
		if h.Conversation != h.Group {
			return nil, false
		}
	} else {
		if len(to) < 1 || len(to) > MaxRecipients {
			return nil, false
		}
		h.To = make([]privateline.Address, len(to))
		for i, a := range to {
			if !validAddress(string(a)) || string(a) == string(from) || i > 0 && string(to[i-1]) >= string(a) {
				return nil, false
			}
			h.To[i] = privateline.Address(a)
		}
	}
	if seen&hFiles != 0 {
		if len(files) < 1 || len(files) > MaxFiles {
			return nil, false
		}
		h.Files = make([]string, len(files))
		for i, f := range files {
			if !isToken(f) || i > 0 && string(files[i-1]) >= string(f) {
				return nil, false
			}
			h.Files[i] = string(f)
		}
	}
	return h, true
}
