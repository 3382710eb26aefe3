package cli

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCLIMessages: two accounts exchange messages with send, read them
// with history, and count and mark them with unread and read.
func TestCLIMessages(t *testing.T) {
	url := startHomeserver(t)
	alice, bob := newCLIUser(t, "alice's long password ☃"), newCLIUser(t, "bob's password, also long")
	for _, u := range []*cliUser{alice, bob} {
		u.env["PRIVATELINE_SERVER"] = url
		u.env["PRIVATELINE_PASSWORD_FILE"] = u.passwordFile()
	}
	alice.ok("", nil, "register", "alice")
	bob.ok("", nil, "register", "bob")

	// Text from the arguments; bob is pinned on first use.
	var sent sendOut
	alice.ok("", &sent, "send", "bob", "hello", "bob ☃")
	if len(sent.ID) != 32 || sent.Seq == 0 || len(sent.To) != 1 || sent.To[0] != "bob@hs.test" ||
		len(sent.Pinned) != 1 || len(sent.KeyChanged) != 0 {
		t.Fatalf("send: %+v", sent)
	}
	// Text from standard input (the password from its file), and from a file.
	r := alice.run("second line one\nline two\n", "send", "bob@hs.test")
	if r.code != ExitOK || !strings.Contains(r.stdout, "Sent to bob@hs.test") {
		t.Fatalf("send from stdin: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	f := filepath.Join(t.TempDir(), "msg.txt")
	if err := os.WriteFile(f, []byte("from a file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var third sendOut
	alice.ok("", &third, "send", "--file", f, "bob")

	// Usage errors.
	for _, args := range [][]string{{"send"}, {"send", "--file", f, "bob", "--", "text too"}, {"history", "x"}, {"history", "--limit", "500"}} {
		if r := alice.run("", args...); r.code != ExitUsage {
			t.Fatalf("privateline %s: exit %d, want %d\n%s", strings.Join(args, " "), r.code, ExitUsage, r.stderr)
		}
	}
	// A password on standard input cannot share it with the message.
	noFile := newCLIUser(t, alice.password)
	noFile.dir = alice.dir
	if r := noFile.run(alice.password+"\nhi\n", "send", "bob"); r.code != ExitUsage || !strings.Contains(r.stderr, "--password-file") {
		t.Fatalf("send with both from stdin: %d %s", r.code, r.stderr)
	}

	// Bob: three unread, history shows the texts oldest first.
	var u struct{ Unread, Direct int64 }
	bob.ok("", &u, "unread")
	if u.Unread != 3 || u.Direct != 3 {
		t.Fatalf("unread: %+v", u)
	}
	var hist struct{ Messages []itemOut }
	bob.ok("", &hist, "history", "--with", "alice")
	if len(hist.Messages) != 3 {
		t.Fatalf("history: %+v", hist)
	}
	want := []string{"hello bob ☃", "second line one\nline two", "from a file"}
	for i, m := range hist.Messages {
		if m.Error != nil || m.Text == nil || *m.Text != want[i] || m.From != "alice@hs.test" || m.Outgoing || m.Read {
			t.Fatalf("history item %d: %+v", i, m)
		}
	}
	r = bob.run("", "history")
	if r.code != ExitOK || !strings.Contains(r.stdout, "hello bob ☃") || !strings.Contains(r.stdout, "alice@hs.test → bob@hs.test") ||
		!strings.Contains(r.stdout, "    line two\n") || !strings.Contains(r.stdout, sent.ID) || !strings.Contains(r.stdout, "unread") {
		t.Fatalf("human history: %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// read marks one; unread counts two; alice sees bob read it.
	bob.ok("", nil, "read", sent.ID)
	bob.ok("", &u, "unread")
	if u.Unread != 2 {
		t.Fatalf("unread after read: %+v", u)
	}
	if r := bob.run("", "unread"); r.code != ExitOK || !strings.Contains(r.stdout, "2 unread") {
		t.Fatalf("human unread: %s%s", r.stdout, r.stderr)
	}
	alice.ok("", &hist, "history", "--after", "0", "--limit", "1")
	if len(hist.Messages) != 1 || hist.Messages[0].ID != sent.ID || !hist.Messages[0].Outgoing ||
		len(hist.Messages[0].ReadBy) != 1 || hist.Messages[0].ReadBy[0] != "bob@hs.test" || *hist.Messages[0].Text != "hello bob ☃" {
		t.Fatalf("alice's history: %+v", hist)
	}
	// Marking a message that is not there fails.
	if r := bob.run("", "read", strings.Repeat("0", 32)); r.code != ExitError {
		t.Fatalf("read of a missing message: exit %d\n%s", r.code, r.stderr)
	}

	// listen prints what happens until interrupted; --after first replays
	// the events after that number (bob's read of the first message).
	out := &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	code := make(chan int, 1)
	go func() {
		env := Env{Stdout: out, Stderr: io.Discard, Getenv: func(k string) string {
			if k == "PRIVATELINE_CONFIG_DIR" {
				return bob.dir
			}
			return bob.env[k]
		}}
		code <- Main(ctx, []string{"--json", "listen", "--after", "3"}, env)
	}()
	waitFor := func(s string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(out.String(), s) {
			if time.Now().After(deadline) {
				t.Fatalf("listen did not print %q:\n%s", s, out.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor(`"type":"ready"`)
	if !strings.Contains(out.String(), `"type":"read","seq":4,"id":"`+sent.ID+`","by":"bob@hs.test"`) {
		t.Fatalf("listen --after 3 did not replay the read receipt:\n%s", out.String())
	}
	alice.ok("", nil, "send", "bob", "live ☃")
	waitFor(`"text":"live ☃"`)
	cancel()
	if c := <-code; c != ExitOK {
		t.Fatalf("listen exited %d after the interrupt", c)
	}
	human := bob.run("", "help", "listen")
	if !strings.Contains(human.stdout, "listen [--after SEQ]") {
		t.Fatalf("help listen: %s", human.stdout)
	}
}

// lockedBuffer is an output the test reads while the command writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
