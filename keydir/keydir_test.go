package keydir

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/privateline/privateline"
)

func TestCheckBundleShape(t *testing.T) {
	big := `{"x":"` + strings.Repeat("a", MaxBundleSize) + `"}`
	for _, tc := range []struct {
		in   string
		want string // "" means refused
	}{
		{`{"address": "a@b", "version": 1}`, `{"address":"a@b","version":1}`},
		{` {} `, `{}`},
		{``, ``},
		{`null`, ``},
		{`[]`, ``},
		{`"bundle"`, ``},
		{`42`, ``},
		{big, ``},
	} {
		got, err := CheckBundleShape(json.RawMessage(tc.in))
		if tc.want == "" {
			if err == nil || !privateline.Is(privateline.Invalid, err) {
				t.Errorf("%.30q accepted or wrong kind: %v", tc.in, err)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("%q = %q, %v", tc.in, got, err)
		}
	}
}
