package envelope

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// seeds are the envelopes of the spec's vectors, direct and group.
func seeds(t testing.TB) (direct, group [][]byte) {
	for _, c := range vectors(t) {
		direct = append(direct, []byte(c.Envelope))
	}
	b, err := os.ReadFile(filepath.Join("..", "spec", "vectors", "groupmessage.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Cases []struct {
			Envelope json.RawMessage `json:"envelope"`
		}
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	for _, c := range f.Cases {
		var s string
		if json.Unmarshal(c.Envelope, &s) == nil {
			group = append(group, []byte(s))
		} else if len(c.Envelope) > 0 {
			group = append(group, c.Envelope)
		}
	}
	return direct, group
}

// TestFastPath: the envelopes senders produce (canonical JSON, the
// vectors' valid cases) are read by the fast path, with the same header
// the general parser reads; the faulty vectors are left to the general
// parser, which refuses them.
func TestFastPath(t *testing.T) {
	direct, group := seeds(t)
	fast := 0
	for _, set := range []struct {
		group bool
		envs  [][]byte
	}{{false, direct}, {true, group}} {
		for _, env := range set.envs {
			want, werr := parseGeneral("test", env, set.group)
			got, ok := fastParse(env, set.group)
			if ok {
				fast++
				if werr != nil || !reflect.DeepEqual(got, want) {
					t.Errorf("fast path %+v, general parser %+v, %v for %.80s", got, want, werr, env)
				}
			} else if werr == nil && !bytes.ContainsAny(env, " \n\\") {
				t.Errorf("a valid canonical envelope left the fast path: %.200s", env)
			}
		}
	}
	if fast < 4 {
		t.Errorf("only %d vectors took the fast path", fast)
	}
}

// FuzzParseFast holds the fast path to the general parser: whatever it
// accepts, the general parser accepts with the same header; and Parse
// accepts only JSON.
func FuzzParseFast(f *testing.F) {
	direct, group := seeds(f)
	for _, e := range direct {
		f.Add(e, false)
		// Variants near the edges of the rules.
		f.Add(bytes.Replace(e, []byte(`"v":1`), []byte(`"v":01`), 1), false)
		f.Add(bytes.Replace(e, []byte(`"header":{`), []byte(`"header":{"files":["a","a"],`), 1), false)
		f.Add(bytes.Replace(e, []byte(`"keys":{`), []byte(`"keys":{"x":"y","x":"z",`), 1), false)
		f.Add(bytes.Replace(e, []byte(`"sent_at":`), []byte(`"expires_at":1,"sent_at":`), 1), false)
	}
	for _, e := range group {
		f.Add(e, true)
		f.Add(bytes.Replace(e, []byte(`"epoch":`), []byte(`"epoch":0,"x":`), 1), true)
	}
	f.Add([]byte(`{"ciphertext":"a","header":{},"keys":{"a":"b"},"nonce":"n","signature":"s"}`), false)
	f.Fuzz(func(t *testing.T, data []byte, group bool) {
		want, werr := parseGeneral("test", data, group)
		if got, ok := fastParse(data, group); ok {
			if werr != nil {
				t.Fatalf("the fast path accepts what the general parser refuses (%v): %q", werr, data)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("fast path header %+v, general %+v: %q", got, want, data)
			}
		}
		if _, err := parse("test", data, group); err == nil && !json.Valid(data) {
			t.Fatalf("Parse accepts what is not JSON: %q", data)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	direct, _ := seeds(b)
	env := direct[0]
	if _, ok := fastParse(env, false); !ok {
		b.Fatal("the vector does not take the fast path")
	}
	for _, c := range []struct {
		name string
		fn   func([]byte) error
	}{
		{"fast", func(d []byte) error { _, err := Parse(d); return err }},
		{"general", func(d []byte) error { _, err := parseGeneral("bench", d, false); return err }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(env)))
			for b.Loop() {
				if err := c.fn(env); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
