package envelope

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/privateline/privateline"
)

type vectorCase struct {
	Name     string `json:"name"`
	Envelope string `json:"envelope"`
	Error    string `json:"error"`
}

func vectors(t testing.TB) []vectorCase {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "spec", "vectors", "envelope.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Cases []vectorCase }
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f.Cases
}

// TestVectors: the server refuses every envelope whose routing header (or
// size) is wrong, and accepts those whose faults only the receiving client
// can see (signature, recipients' keys, plaintext, expiry against its
// clock).
func TestVectors(t *testing.T) {
	headerFaults := map[string]privateline.Kind{
		"unknown-suite":         privateline.Invalid,
		"unknown-version":       privateline.Invalid,
		"to-not-sorted":         privateline.Invalid,
		"to-repeated":           privateline.Invalid,
		"files-empty-array":     privateline.Invalid,
		"expires-at-null":       privateline.Invalid,
		"unknown-header-member": privateline.Invalid,
		"too-large":             privateline.TooLarge,
	}
	clientOnly := map[string]bool{"short-nonce": true, "nonce-not-canonical-base64": true} // either is fine
	n := 0
	for _, c := range vectors(t) {
		if clientOnly[c.Name] {
			continue
		}
		h, err := Parse([]byte(c.Envelope))
		if kind, ok := headerFaults[c.Name]; ok {
			n++
			if err == nil || privateline.KindOf(err) != kind {
				t.Errorf("%s: Parse = %v, want a %v refusal", c.Name, err, kind)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: Parse refused an envelope with a valid header: %v", c.Name, err)
			continue
		}
		var raw struct {
			Header struct {
				ID   string   `json:"id"`
				From string   `json:"from"`
				To   []string `json:"to"`
			} `json:"header"`
		}
		json.Unmarshal([]byte(c.Envelope), &raw)
		if h.ID != raw.Header.ID || string(h.From) != raw.Header.From || len(h.To) != len(raw.Header.To) {
			t.Errorf("%s: header %+v", c.Name, h)
		}
	}
	if n != len(headerFaults) {
		t.Errorf("found %d of the %d header-fault vectors", n, len(headerFaults))
	}
}

func TestParseRefusals(t *testing.T) {
	good := vectors(t)[0].Envelope
	var m map[string]any
	if err := json.Unmarshal([]byte(good), &m); err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(top, h map[string]any)) string {
		var c map[string]any
		json.Unmarshal([]byte(good), &c)
		f(c, c["header"].(map[string]any))
		b, _ := json.Marshal(c)
		return string(b)
	}
	for name, in := range map[string]string{
		"not an object":     `[]`,
		"trailing data":     good + `{}`,
		"duplicate member":  strings.Replace(good, `{"ciphertext":`, `{"nonce":"AA==","ciphertext":`, 1),
		"group form":        mutate(func(_, h map[string]any) { h["group"] = "g" }),
		"bad id":            mutate(func(_, h map[string]any) { h["id"] = "ABC" }),
		"from in to":        mutate(func(_, h map[string]any) { h["to"] = []string{h["from"].(string)} }),
		"no recipients":     mutate(func(_, h map[string]any) { h["to"] = []string{} }),
		"bad conversation":  mutate(func(_, h map[string]any) { h["conversation"] = "a b" }),
		"fractional time":   mutate(func(_, h map[string]any) { h["sent_at"] = 1.5 }),
		"expiry before":     mutate(func(_, h map[string]any) { h["expires_at"] = 1 }),
		"upper-case from":   mutate(func(_, h map[string]any) { h["from"] = "Alice@example.org" }),
		"missing keys":      mutate(func(top, _ map[string]any) { delete(top, "keys") }),
		"empty keys":        mutate(func(top, _ map[string]any) { top["keys"] = map[string]any{} }),
		"extra member":      mutate(func(top, _ map[string]any) { top["salt"] = "AA==" }),
		"numeric signature": mutate(func(top, _ map[string]any) { top["signature"] = 1 }),
	} {
		if _, err := Parse([]byte(in)); !privateline.Is(privateline.Invalid, err) {
			t.Errorf("%s: Parse = %v, want Invalid", name, err)
		}
	}
	if _, err := Parse([]byte(strings.Repeat(" ", MaxSize+1))); !privateline.Is(privateline.TooLarge, err) {
		t.Errorf("over MaxSize: %v", err)
	}
}

// FuzzParse: Parse never panics, and what it accepts has a valid header.
func FuzzParse(f *testing.F) {
	for _, c := range vectors(f) {
		f.Add([]byte(c.Envelope))
	}
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := Parse(data)
		if err != nil {
			return
		}
		if !idRE.MatchString(h.ID) || !validAddress(string(h.From)) || len(h.To) == 0 || len(h.To) > MaxRecipients {
			t.Fatalf("accepted a bad header: %+v", h)
		}
		for i, a := range h.To {
			if a == h.From || (i > 0 && h.To[i-1] >= a) {
				t.Fatalf("accepted a bad recipient list: %v", h.To)
			}
		}
	})
}
