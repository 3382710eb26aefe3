package cli

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/privateline/privateline/clients/go/client"
)

// TestCLIGroups: alice makes a group with bob and carol, all talk, carol is
// removed and no longer sees the group.
func TestCLIGroups(t *testing.T) {
	url := startHomeserver(t)
	alice, bob, carol := newCLIUser(t, "alice's long password ☃"), newCLIUser(t, "bob's password, also long"), newCLIUser(t, "carol's password, long too")
	for _, u := range []*cliUser{alice, bob, carol} {
		u.env["PRIVATELINE_SERVER"] = url
		u.env["PRIVATELINE_PASSWORD_FILE"] = u.passwordFile()
	}
	alice.ok("", nil, "register", "alice")
	bob.ok("", nil, "register", "bob")
	carol.ok("", nil, "register", "carol")

	var g groupOut
	alice.ok("", &g, "group", "create", "bob", "carol@hs.test")
	if g.Epoch != 1 || len(g.Members) != 3 || !strings.HasSuffix(g.ID, "@hs.test") {
		t.Fatalf("create: %+v", g)
	}
	alice.ok("", nil, "group", "send", g.ID, "hello", "group")
	bob.ok("", nil, "group", "send", g.ID, "hi from bob")
	var hist struct{ Messages []itemOut }
	carol.ok("", &hist, "group", "history", g.ID)
	if len(hist.Messages) != 2 || *hist.Messages[0].Text != "hello group" || *hist.Messages[1].Text != "hi from bob" {
		t.Fatalf("carol's history: %+v", hist)
	}
	var u struct{ Unread, Groups int64 }
	carol.ok("", &u, "unread")
	if u.Unread != 2 || u.Groups != 2 {
		t.Fatalf("carol's unread: %+v", u)
	}
	if r := bob.run("", "group", "remove", g.ID, "carol"); r.code != ExitError {
		t.Fatalf("a member removes: %d %s", r.code, r.stderr)
	}
	alice.ok("", nil, "group", "remove", g.ID, "carol")
	alice.ok("", nil, "group", "send", g.ID, "carol is gone")
	bob.ok("", &hist, "group", "history", "--limit", "10", g.ID)
	if len(hist.Messages) != 3 || *hist.Messages[2].Text != "carol is gone" {
		t.Fatalf("bob's history: %+v", hist)
	}
	// Each process saved the highest epoch its account held a key of
	// (spec/e2ee.md §8.1) in session.json, for the next one.
	for _, c := range []struct {
		u     *cliUser
		epoch int64
		from  string
	}{{alice, 2, "alice@hs.test"}, {bob, 2, "alice@hs.test"}, {carol, 1, "alice@hs.test"}} {
		if h := heldEpochs(t, c.u)[g.ID]; h.Epoch != c.epoch || string(h.From) != c.from || h.CreatedAt == 0 {
			t.Fatalf("the held epoch of %s in session.json: %+v, want epoch %d from %s", c.u.dir, h, c.epoch, c.from)
		}
	}
	var list struct{ Groups []groupOut }
	carol.ok("", &list, "group", "list")
	if len(list.Groups) != 0 {
		t.Fatalf("carol's groups: %+v", list)
	}
	if r := carol.run("", "group", "show", g.ID); r.code != ExitError || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("carol shows the group: %d %s", r.code, r.stderr)
	}
	bob.ok("", &g, "group", "show", g.ID)
	if g.Epoch != 2 || len(g.Members) != 2 {
		t.Fatalf("show: %+v", g)
	}
	for _, args := range [][]string{{"group"}, {"group", "frobnicate"}, {"group", "show"}, {"group", "add", g.ID}, {"group", "history", "--limit", "500", g.ID}} {
		if r := alice.run("", args...); r.code != ExitUsage {
			t.Fatalf("privateline %s: exit %d, want %d", strings.Join(args, " "), r.code, ExitUsage)
		}
	}
	// listen replays the group's events, opened: its creation, the
	// messages (with the group), carol's removal. Carol's own listen
	// shows that she is out, and her replayed group messages stay shut:
	// a removed member gets no key of the group any more.
	for _, c := range []struct {
		u          *cliUser
		want, deny []string
	}{
		{bob, []string{`"type":"group_changed","seq":1,"group":"` + g.ID + `","epoch":2`, `"group":"` + g.ID + `","sent_at"`,
			`"text":"hello group"`, `"text":"carol is gone"`}, nil},
		{carol, []string{`"type":"group_changed","seq":1,"group":"` + g.ID + `","removed":true`,
			`"group":"` + g.ID + `","sent_at"`, `"error":{"message":"cannot get the key of epoch 1"}`}, []string{`"text"`}},
	} {
		out := &lockedBuffer{}
		ctx, cancel := context.WithCancel(context.Background())
		code := make(chan int, 1)
		go func() {
			env := Env{Stdout: out, Stderr: io.Discard, Getenv: func(k string) string {
				if k == "PRIVATELINE_CONFIG_DIR" {
					return c.u.dir
				}
				return c.u.env[k]
			}}
			code <- Main(ctx, []string{"--json", "listen", "--after", "0"}, env)
		}()
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(out.String(), `"type":"ready"`) {
			if time.Now().After(deadline) {
				t.Fatalf("listen did not get ready:\n%s", out.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		if rc := <-code; rc != ExitOK {
			t.Fatalf("listen exited %d", rc)
		}
		for _, w := range c.want {
			if !strings.Contains(out.String(), w) {
				t.Fatalf("listen does not show %s:\n%s", w, out.String())
			}
		}
		for _, d := range c.deny {
			if strings.Contains(out.String(), d) {
				t.Fatalf("listen shows %s:\n%s", d, out.String())
			}
		}
	}
	bob.ok("", nil, "group", "leave", g.ID)
	// logout forgets the session, held epochs and all.
	bob.ok("", nil, "logout")
	if _, err := os.Stat(filepath.Join(bob.dir, sessionFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("session.json after logout: %v", err)
	}
}

// heldEpochs reads the held epochs of u's session.json.
func heldEpochs(t *testing.T, u *cliUser) map[string]client.HeldEpoch {
	t.Helper()
	var saved savedSession
	if ok, err := (&stateDir{path: u.dir}).read(sessionFile, &saved); !ok || err != nil {
		t.Fatalf("%s: no session.json (%v)", u.dir, err)
	}
	return saved.HeldEpochs
}
