package cjson

import (
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
