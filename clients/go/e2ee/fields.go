package e2ee

import (
	"fmt"

	"github.com/privateline/privateline/cjson"
)

// fields reads the members of a parsed canonical-JSON object strictly: each
// read checks the member's type, and done reports members nobody read.
// The first problem sticks in err and names the member.
type fields struct {
	m    map[string]any
	used map[string]bool
	err  error
}

func newFields(v any) *fields {
	m, ok := v.(map[string]any)
	f := &fields{m: m, used: map[string]bool{}}
	if !ok {
		f.err = fmt.Errorf("not a JSON object")
	}
	return f
}

func parseFields(data []byte) *fields {
	v, err := cjson.Parse(data)
	if err != nil {
		return &fields{err: err}
	}
	return newFields(v)
}

func (f *fields) get(name string, required bool) (any, bool) {
	if f.err != nil {
		return nil, false
	}
	v, ok := f.m[name]
	f.used[name] = true
	if !ok && required {
		f.err = fmt.Errorf("member %q is required", name)
	}
	return v, ok
}

func (f *fields) bad(name, want string) {
	if f.err == nil {
		f.err = fmt.Errorf("member %q must be %s", name, want)
	}
}

func (f *fields) has(name string) bool {
	if f.err != nil {
		return false
	}
	_, ok := f.m[name]
	return ok
}

func (f *fields) str(name string, required bool) string {
	v, ok := f.get(name, required)
	if !ok {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		f.bad(name, "a string")
	}
	return s
}

func (f *fields) integer(name string, required bool, lo, hi int64) int64 {
	v, ok := f.get(name, required)
	if !ok {
		return 0
	}
	n, ok := v.(int64)
	if !ok || n < lo || n > hi {
		f.bad(name, fmt.Sprintf("an integer from %d to %d", lo, hi))
	}
	return n
}

// bytes reads a standard-base64 member of length lo..hi bytes.
func (f *fields) bytes(name string, required bool, lo, hi int) []byte {
	s := f.str(name, required)
	if f.err != nil || (!required && !f.has(name)) {
		return nil
	}
	b, ok := decodeB64(s)
	if !ok || len(b) < lo || len(b) > hi {
		f.bad(name, fmt.Sprintf("standard base64 (with padding) of %d to %d bytes", lo, hi))
		return nil
	}
	return b
}

func (f *fields) array(name string, required bool) []any {
	v, ok := f.get(name, required)
	if !ok {
		return nil
	}
	a, ok := v.([]any)
	if !ok {
		f.bad(name, "an array")
	}
	return a
}

// strings reads an array of strings, each matching valid.
func (f *fields) strings(name string, required bool, valid func(string) bool) []string {
	a := f.array(name, required)
	if f.err != nil {
		return nil
	}
	out := make([]string, 0, len(a))
	for _, e := range a {
		s, ok := e.(string)
		if !ok || !valid(s) {
			f.bad(name, "an array of valid strings")
			return nil
		}
		out = append(out, s)
	}
	return out
}

func (f *fields) object(name string, required bool) map[string]any {
	v, ok := f.get(name, required)
	if !ok {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		f.bad(name, "an object")
	}
	return m
}

// done fails on members that were never read, unless unknown are allowed.
func (f *fields) done(allowUnknown bool) error {
	if f.err != nil || allowUnknown {
		return f.err
	}
	for k := range f.m {
		if !f.used[k] {
			return fmt.Errorf("unknown member %q", k)
		}
	}
	return nil
}

// strictlyAscending reports whether ss is sorted bytewise without repeats.
func strictlyAscending(ss []string) bool {
	for i := 1; i < len(ss); i++ {
		if ss[i-1] >= ss[i] {
			return false
		}
	}
	return true
}
