package cjson

import (
	"encoding/base64"
	"fmt"
)

// Object reads the members of a parsed JSON object strictly: each read
// checks the member's type and range, and Done reports members nobody
// read. The first problem sticks and names the member, so a decoder can
// read every member and check the error once.
type Object struct {
	m    map[string]any
	used map[string]bool
	err  error
}

// ParseObject parses data (see Parse) and returns a reader for the object.
func ParseObject(data []byte) *Object {
	v, err := Parse(data)
	if err != nil {
		return &Object{err: err}
	}
	return NewObject(v)
}

// NewObject returns a reader for v, a value Parse returned.
func NewObject(v any) *Object {
	m, ok := v.(map[string]any)
	o := &Object{m: m, used: map[string]bool{}}
	if !ok {
		o.err = fmt.Errorf("not a JSON object")
	}
	return o
}

// Err returns the first problem, or nil.
func (o *Object) Err() error { return o.err }

// Fail records that member name is not what is wanted ("a string", …),
// unless a problem was recorded already.
func (o *Object) Fail(name, want string) {
	if o.err == nil {
		o.err = fmt.Errorf("member %q must be %s", name, want)
	}
}

// Has reports whether the object has the member.
func (o *Object) Has(name string) bool {
	if o.err != nil {
		return false
	}
	_, ok := o.m[name]
	return ok
}

func (o *Object) get(name string, required bool) (any, bool) {
	if o.err != nil {
		return nil, false
	}
	v, ok := o.m[name]
	o.used[name] = true
	if !ok && required {
		o.err = fmt.Errorf("member %q is required", name)
	}
	return v, ok
}

// String reads a string member.
func (o *Object) String(name string, required bool) string {
	v, ok := o.get(name, required)
	if !ok {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		o.Fail(name, "a string")
	}
	return s
}

// Int reads an integer member in lo..hi.
func (o *Object) Int(name string, required bool, lo, hi int64) int64 {
	v, ok := o.get(name, required)
	if !ok {
		return 0
	}
	n, ok := v.(int64)
	if !ok || n < lo || n > hi {
		o.Fail(name, fmt.Sprintf("an integer from %d to %d", lo, hi))
	}
	return n
}

var b64 = base64.StdEncoding.Strict()

// Bytes reads a member that is standard base64 with padding, in its one
// canonical form (no line breaks, zero pad bits), of lo..hi bytes.
func (o *Object) Bytes(name string, required bool, lo, hi int) []byte {
	v, ok := o.get(name, required)
	if !ok {
		return nil
	}
	s, ok := v.(string)
	var b []byte
	var err error
	if ok {
		b, err = b64.DecodeString(s)
	}
	// Strict decoding refuses non-zero pad bits, and a string longer than
	// the encoding of what it decodes to has line breaks (which the
	// decoder skips): what is left is the one canonical form.
	if !ok || err != nil || len(s) != b64.EncodedLen(len(b)) || len(b) < lo || len(b) > hi {
		o.Fail(name, fmt.Sprintf("standard base64 (with padding) of %d to %d bytes", lo, hi))
		return nil
	}
	return b
}

// Bool reads a boolean member.
func (o *Object) Bool(name string, required bool) bool {
	v, ok := o.get(name, required)
	if !ok {
		return false
	}
	b, ok := v.(bool)
	if !ok {
		o.Fail(name, "true or false")
	}
	return b
}

// Array reads an array member.
func (o *Object) Array(name string, required bool) []any {
	v, ok := o.get(name, required)
	if !ok {
		return nil
	}
	a, ok := v.([]any)
	if !ok {
		o.Fail(name, "an array")
	}
	return a
}

// Object reads an object member.
func (o *Object) Object(name string, required bool) map[string]any {
	v, ok := o.get(name, required)
	if !ok {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		o.Fail(name, "an object")
	}
	return m
}

// Done returns the first problem, or, unless allowUnknown, an error naming
// a member that was never read.
func (o *Object) Done(allowUnknown bool) error {
	if o.err != nil || allowUnknown {
		return o.err
	}
	for k := range o.m {
		if !o.used[k] {
			return fmt.Errorf("unknown member %q", k)
		}
	}
	return nil
}
