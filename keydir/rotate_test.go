package keydir

import (
	"testing"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/keybundle"
	"github.com/privateline/privateline/keylog"
	"github.com/privateline/privateline/merkle"
	"github.com/privateline/privateline/serverkey"
)

// TestResignEntriesAfterRotation: a directory opened with a new key signs
// its entries again, once, without changing the tree; its answers carry
// the statements; statements that do not lead to its key are refused.
func TestResignEntriesAfterRotation(t *testing.T) {
	f := newFixture(t)
	f.register(t, "alice")
	f.register(t, "bob")
	before, err := f.dir.Head()
	if err != nil {
		t.Fatal(err)
	}
	nk, err := serverkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	st, err := keylog.NewServerKeyChange("example.org", f.key, nk.Public())
	if err != nil {
		t.Fatal(err)
	}
	d := New("example.org", f.db, nk, f.clock.Now)
	if err := d.SetKeyChanges([]keylog.ServerKeyChange{st}); err != nil {
		t.Fatal(err)
	}
	// Before re-signing, the entries are the old key's.
	l, err := d.Lookup("alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := keylog.VerifyEntry(nk.Public(), "example.org", l.Bundle, &l.Entry); keybundle.ReasonOf(err) != keybundle.ErrBadSignature {
		t.Fatalf("an entry of the old key under the new one: %v", err)
	}
	if n, err := d.ResignEntries(); err != nil || n != 2 {
		t.Fatalf("re-signed %d entries: %v", n, err)
	}
	if n, err := d.ResignEntries(); err != nil || n != 0 {
		t.Fatalf("the second time: %d entries, %v", n, err)
	}
	for _, name := range []string{"alice", "bob"} {
		l, err := d.Lookup(privateline.Username(name))
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Verify(nk.Public(), "example.org", privateline.Address(name+"@example.org")); err != nil {
			t.Fatalf("%s under the new key: %v", name, err)
		}
		if len(l.KeyChanges) != 1 || !l.KeyChanges[0].NewKey.Equal(nk.Public()) {
			t.Fatalf("%s's answer carries %d statements", name, len(l.KeyChanges))
		}
	}
	after, err := d.Head()
	if err != nil {
		t.Fatal(err)
	}
	if after.TreeSize != before.TreeSize || after.RootHash != before.RootHash || after.Verify(nk.Public()) != nil {
		t.Fatal("the tree changed, or its head is not the new key's")
	}
	root, _ := merkle.Root(f.db.KeyLogNodes(), before.TreeSize)
	if root != before.RootHash {
		t.Fatal("the stored tree changed")
	}
	if a, _ := d.HeadAnswer(); len(a.KeyChanges) != 1 {
		t.Fatal("the head answer carries no statement")
	}
	// Statements that lead elsewhere are refused.
	other, _ := serverkey.Generate()
	if err := New("example.org", f.db, other, f.clock.Now).SetKeyChanges([]keylog.ServerKeyChange{st}); err == nil {
		t.Fatal("statements leading to another key were accepted")
	}
}
