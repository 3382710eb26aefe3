package envelope

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/cjson"
)

type fileCase struct {
	Name     string `json:"name"`
	Result   string `json:"result"`
	Error    string `json:"error"`
	Envelope string `json:"envelope"`
	Document string `json:"document"`
}

func fileCases(t testing.TB, name string) []fileCase {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "spec", "vectors", name))
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Cases []fileCase }
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f.Cases
}

// The server accepts every group envelope whose header is right (the
// receivers judge signatures and keys) and refuses header faults.
func TestParseGroupVectors(t *testing.T) {
	headerFaults := map[string]bool{"conversation-not-group": true, "group-header-with-to": true}
	n := 0
	for _, c := range fileCases(t, "groupmessage.json") {
		h, err := ParseGroup([]byte(c.Envelope))
		if headerFaults[c.Name] {
			n++
			if !privateline.Is(privateline.Invalid, err) {
				t.Errorf("%s: %v, want Invalid", c.Name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.Name, err)
			continue
		}
		if !strings.HasPrefix(h.Group, "g.") || h.Conversation != h.Group || h.Epoch < 1 || len(h.To) != 0 {
			t.Errorf("%s: %+v", c.Name, h)
		}
		if _, err := Parse([]byte(c.Envelope)); !privateline.Is(privateline.Invalid, err) {
			t.Errorf("%s: a group envelope parsed as direct: %v", c.Name, err)
		}
	}
	if n != len(headerFaults) {
		t.Errorf("found %d of %d header-fault vectors", n, len(headerFaults))
	}
	for _, c := range vectors(t)[:1] {
		if _, err := ParseGroup([]byte(c.Envelope)); !privateline.Is(privateline.Invalid, err) {
			t.Errorf("a direct envelope parsed as group: %v", err)
		}
	}
}

func TestParseGroupRefusals(t *testing.T) {
	good := fileCases(t, "groupmessage.json")[0].Envelope
	mutate := func(f func(top, h map[string]any)) string {
		var c map[string]any
		json.Unmarshal([]byte(good), &c)
		f(c, c["header"].(map[string]any))
		b, _ := json.Marshal(c)
		return string(b)
	}
	for name, in := range map[string]string{
		"epoch zero":     mutate(func(_, h map[string]any) { h["epoch"] = 0 }),
		"epoch string":   mutate(func(_, h map[string]any) { h["epoch"] = "1" }),
		"no group":       mutate(func(_, h map[string]any) { delete(h, "group") }),
		"bad group":      mutate(func(_, h map[string]any) { h["group"], h["conversation"] = "a b", "a b" }),
		"short salt":     mutate(func(top, _ map[string]any) { top["salt"] = "AA==" }),
		"keys not salt":  mutate(func(top, _ map[string]any) { top["keys"] = top["salt"]; delete(top, "salt") }),
		"extra member":   mutate(func(top, _ map[string]any) { top["keys"] = map[string]any{} }),
		"trailing data":  good + "{}",
		"unknown header": mutate(func(_, h map[string]any) { h["x"] = 1 }),
	} {
		if _, err := ParseGroup([]byte(in)); !privateline.Is(privateline.Invalid, err) {
			t.Errorf("%s: %v, want Invalid", name, err)
		}
	}
}

func TestParseGroupKey(t *testing.T) {
	var full []string
	for _, c := range fileCases(t, "groupkey.json") {
		_, err := ParseGroupKey([]byte(c.Document))
		switch {
		case c.Result == "valid" && !strings.HasSuffix(c.Name, "-view"):
			if err != nil {
				t.Errorf("%s: %v", c.Name, err)
			}
			full = append(full, c.Document)
		case c.Name == "tampered-wrapped-key" || c.Name == "wrap-without-digest" || c.Name == "members-not-sorted" ||
			c.Name == "unknown-suite" || c.Name == "missing-key-digests" || c.Name == "member-without-key" ||
			c.Name == "view-of-another-member" || strings.HasSuffix(c.Name, "-view"):
			if !privateline.Is(privateline.Invalid, err) {
				t.Errorf("%s: %v, want Invalid", c.Name, err)
			}
		}
	}
	g, err := ParseGroupKey([]byte(full[0]))
	if err != nil {
		t.Fatal(err)
	}
	if g.Group != "g.team" || g.Epoch != 1 || len(g.Members) != 3 || len(g.Keys) != 3 || strings.Contains(string(g.Signed), `"keys"`) {
		t.Fatalf("%+v", g)
	}
	// A view is the document with one wrap; the rest is byte-identical.
	for id, w := range g.Keys {
		v, err := View(g.Signed, id, w)
		if err != nil {
			t.Fatal(err)
		}
		var doc, view map[string]any
		json.Unmarshal([]byte(full[0]), &doc)
		json.Unmarshal(v, &view)
		if len(view["keys"].(map[string]any)) != 1 || cjson.Check(v) != nil {
			t.Fatalf("view: %s", v)
		}
		doc["keys"], view["keys"] = nil, nil
		a, _ := json.Marshal(doc)
		b, _ := json.Marshal(view)
		if string(a) != string(b) {
			t.Fatal("the view changed the signed part")
		}
	}
	if _, err := ParseGroupKey([]byte(strings.Repeat(" ", MaxGroupKeySize+1))); !privateline.Is(privateline.TooLarge, err) {
		t.Errorf("over the size limit: %v", err)
	}
}

// FuzzParseGroup: ParseGroup never panics, and what it accepts is a group
// header.
func FuzzParseGroup(f *testing.F) {
	for _, c := range fileCases(f, "groupmessage.json") {
		f.Add([]byte(c.Envelope))
	}
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseGroup(data)
		if err != nil {
			return
		}
		if !idRE.MatchString(h.ID) || !tokenRE.MatchString(h.Group) || h.Conversation != h.Group || h.Epoch < 1 || h.To != nil {
			t.Fatalf("accepted a bad header: %+v", h)
		}
	})
}

// FuzzParseGroupKey: ParseGroupKey never panics, and what it accepts has
// one digest and one wrap per member and a signed part without "keys".
func FuzzParseGroupKey(f *testing.F) {
	for _, c := range fileCases(f, "groupkey.json") {
		f.Add([]byte(c.Document))
	}
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := ParseGroupKey(data)
		if err != nil {
			return
		}
		if len(g.Members) == 0 || len(g.KeyDigests) != len(g.Members) || len(g.Keys) != len(g.Members) || strings.Contains(string(g.Signed), `"keys":`) {
			t.Fatalf("accepted a bad document: %+v", g)
		}
	})
}
