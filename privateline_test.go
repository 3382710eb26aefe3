package privateline

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestParseUsername(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"alice", "alice", true},
		{"Alice", "alice", true},
		{"a.b_c-d9", "a.b_c-d9", true},
		{"abc", "abc", true},
		{strings.Repeat("x", 64), strings.Repeat("x", 64), true},
		{"ab", "", false},
		{strings.Repeat("x", 65), "", false},
		{"al ice", "", false},
		{"al@ce", "", false},
		{"ålice", "", false},
		{"ALİCE", "", false}, // Turkish dotted I must not fold into ASCII
		{"", "", false},
	} {
		got, err := ParseUsername(tc.in)
		if (err == nil) != tc.ok || string(got) != tc.want {
			t.Errorf("ParseUsername(%q) = %q, %v", tc.in, got, err)
		}
		if err != nil && !Is(Invalid, err) {
			t.Errorf("ParseUsername(%q) error kind %v", tc.in, KindOf(err))
		}
	}
}

func TestAddress(t *testing.T) {
	a := MakeAddress("bob", "chat.example.org")
	u, s, err := a.Split()
	if err != nil || u != "bob" || s != "chat.example.org" || a != "bob@chat.example.org" {
		t.Fatalf("Split(%q) = %q %q %v", a, u, s, err)
	}
	for _, bad := range []Address{"bob", "Bob@x.org", "bob@", "@x.org", "bob@X.org", "b@x.org"} {
		if _, _, err := bad.Split(); err == nil {
			t.Errorf("Split(%q) accepted", bad)
		}
	}
	if _, _, err := Address("bob@localhost:8081").Split(); err != nil {
		t.Errorf("host:port server rejected: %v", err)
	}
}

func TestErrors(t *testing.T) {
	cause := errors.New("disk on fire")
	inner := E("storage.get", NotExist, "no such user", cause)
	outer := E("clientapi.login", inner)
	if KindOf(outer) != NotExist || MessageOf(outer) != "no such user" || !errors.Is(outer, cause) {
		t.Fatalf("kind/message/cause not inherited: %v", outer)
	}
	if got := E("op", Exist, "taken").Error(); got != "op: exist: taken" {
		t.Fatalf("Error() = %q", got)
	}
	if KindOf(fmt.Errorf("wrapped: %w", inner)) != NotExist {
		t.Fatal("KindOf does not see through fmt wrapping")
	}
	if Is(Invalid, nil) {
		t.Fatal("nil error has a kind")
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := Secret("hunter2-very-secret")
	var log strings.Builder
	slog.New(slog.NewJSONHandler(&log, nil)).Info("x", "key", s)
	j, _ := json.Marshal(struct{ K Secret }{s})
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s", s, s, s, s), log.String(), string(j)} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("secret leaked: %s", out)
		}
	}
	if !s.Equal(Secret("hunter2-very-secret")) || s.Equal(Secret("hunter3-very-secret")) {
		t.Fatal("Equal is wrong")
	}
}
