package cli

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIAttachments: alice attaches a file with send --attach; bob's
// history lists it and get-file saves the decrypted bytes, never
// overwriting a file.
func TestCLIAttachments(t *testing.T) {
	url := startHomeserver(t)
	alice, bob := newCLIUser(t, "alice's long password ☃"), newCLIUser(t, "bob's password, also long")
	for _, u := range []*cliUser{alice, bob} {
		u.env["PRIVATELINE_SERVER"] = url
		u.env["PRIVATELINE_PASSWORD_FILE"] = u.passwordFile()
	}
	alice.ok("", nil, "register", "alice")
	bob.ok("", nil, "register", "bob")

	dir := t.TempDir()
	pic := make([]byte, 300<<10)
	rand.Read(pic)
	src := filepath.Join(dir, "holiday.png")
	if err := os.WriteFile(src, pic, 0o600); err != nil {
		t.Fatal(err)
	}
	var sent sendOut
	alice.ok("", &sent, "send", "--attach", src, "bob", "a picture")
	if len(sent.Files) != 1 || sent.Files[0].Name != "holiday.png" || sent.Files[0].MIME != "image/png" || sent.Files[0].Size != int64(len(pic)) {
		t.Fatalf("send --attach: %+v", sent)
	}
	// Only an attachment, no text.
	var only sendOut
	alice.ok("", &only, "send", "--attach", src, "bob")

	var hist struct{ Messages []itemOut }
	bob.ok("", &hist, "history")
	if len(hist.Messages) != 2 || len(hist.Messages[0].Files) != 1 || *hist.Messages[0].Text != "a picture" || hist.Messages[0].Files[0].FileID != sent.Files[0].FileID {
		t.Fatalf("history: %+v", hist)
	}
	if r := bob.run("", "history"); r.code != ExitOK || !strings.Contains(r.stdout, "privateline get-file "+sent.ID) {
		t.Fatalf("human history: %s%s", r.stdout, r.stderr)
	}

	out := filepath.Join(dir, "saved.png")
	bob.ok("", nil, "get-file", "--out", out, sent.ID)
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, pic) {
		t.Fatalf("saved file: %d bytes, %v", len(got), err)
	}
	if r := bob.run("", "get-file", "--out", out, sent.ID); r.code != ExitError || !strings.Contains(r.stderr, "exists") {
		t.Fatalf("get-file onto an existing file: %d %s", r.code, r.stderr)
	}
	if r := bob.run("", "get-file", sent.ID, "no-such-file"); r.code != ExitError {
		t.Fatalf("get-file of a missing attachment: %d %s", r.code, r.stderr)
	}
	if r := bob.run("", "get-file"); r.code != ExitUsage {
		t.Fatalf("get-file without arguments: %d", r.code)
	}
}
