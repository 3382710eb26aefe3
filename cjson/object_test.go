package cjson

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestObject(t *testing.T) {
	o := ParseObject([]byte(`{"s":"x","n":5,"b":"AQI=","a":[1],"o":{}}`))
	if o.String("s", true) != "x" || o.Int("n", true, 0, 9) != 5 || string(o.Bytes("b", true, 2, 2)) != "\x01\x02" ||
		len(o.Array("a", true)) != 1 || o.Object("o", true) == nil || !o.Has("s") || o.Has("missing") {
		t.Fatalf("reads: %v", o.Err())
	}
	if o.String("missing", false) != "" || o.Done(false) != nil {
		t.Fatalf("done: %v", o.Done(false))
	}
	for _, tc := range []struct {
		in   string
		read func(o *Object)
		want string
	}{
		{`[]`, func(o *Object) {}, "not a JSON object"},
		{`{"a":1}`, func(o *Object) { o.String("a", true) }, `"a" must be a string`},
		{`{}`, func(o *Object) { o.String("a", true) }, `"a" is required`},
		{`{"a":10}`, func(o *Object) { o.Int("a", true, 0, 9) }, `"a" must be an integer`},
		{`{"a":"AQI"}`, func(o *Object) { o.Bytes("a", true, 0, 9) }, "base64"},
		{`{"a":"AQJ="}`, func(o *Object) { o.Bytes("a", true, 0, 9) }, "base64"}, // non-zero pad bits
		{`{"a":"AQI="}`, func(o *Object) { o.Bytes("a", true, 3, 9) }, "base64"},
		{`{"a":"AQ\nI="}`, func(o *Object) { o.Bytes("a", true, 0, 9) }, "base64"}, // a line break
		{`{"a":"AQI=\r\n"}`, func(o *Object) { o.Bytes("a", true, 0, 9) }, "base64"},
		{`{"a":"AQI-"}`, func(o *Object) { o.Bytes("a", true, 0, 9) }, "base64"}, // URL alphabet
		{`{"a":1,"b":2}`, func(o *Object) { o.Int("a", true, 0, 9) }, `unknown member "b"`},
		{`{"a":1}`, func(o *Object) { o.Array("a", true) }, "an array"},
		{`{"a":1}`, func(o *Object) { o.Object("a", true) }, "an object"},
	} {
		o := ParseObject([]byte(tc.in))
		tc.read(o)
		if err := o.Done(false); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.in, err, tc.want)
		}
	}
	o = ParseObject([]byte(`{"a":1,"b":2}`))
	o.Int("a", true, 0, 9)
	if o.Done(true) != nil {
		t.Error("unknown members refused with allowUnknown")
	}
}

// FuzzBytes holds Bytes to its rule: accepted exactly when the string is
// the standard encoding (with padding) of what it decodes to.
func FuzzBytes(f *testing.F) {
	for _, s := range []string{"AQI=", "AQJ=", "AQ\nI=", "AQI=\r\n", "", "AA==", "AAA=", "/+8="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o := NewObject(map[string]any{"a": s})
		got := o.Bytes("a", true, 0, 1<<20)
		b, err := base64.StdEncoding.DecodeString(s)
		want := err == nil && base64.StdEncoding.EncodeToString(b) == s
		if (o.Err() == nil) != want || want && string(got) != string(b) {
			t.Fatalf("%q: Bytes %x, %v; want accepted %v", s, got, o.Err(), want)
		}
	})
}
