package storage

import (
	"fmt"
	"slices"
	"testing"

	"github.com/privateline/privateline"
)

func TestWitnessRecords(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		if c, err := e.db.Cosignature(other); c != nil || err != nil {
			t.Fatalf("no co-signature: %q %v", c, err)
		}
		if err := e.db.SetCosignature(other, []byte(`{"n":1}`)); err != nil {
			t.Fatal(err)
		}
		if err := e.db.SetCosignature(other, []byte(`{"n":2}`)); err != nil {
			t.Fatal(err)
		}
		if err := e.db.SetCosignature(third, []byte(`{"n":3}`)); err != nil {
			t.Fatal(err)
		}
		if err := e.db.SetCosignature(third, nil); !privateline.Is(privateline.Invalid, err) {
			t.Errorf("empty co-signature: %v", err)
		}
		e.reopen()
		if c, err := e.db.Cosignature(other); err != nil || string(c) != `{"n":2}` {
			t.Errorf("latest co-signature after reopen: %q %v", c, err)
		}
		all, err := e.db.Cosignatures()
		if err != nil {
			t.Fatal(err)
		}
		got := []string{}
		for _, c := range all {
			got = append(got, string(c))
		}
		slices.Sort(got)
		if !slices.Equal(got, []string{`{"n":2}`, `{"n":3}`}) {
			t.Errorf("co-signatures %q", got)
		}

		// Fork evidence: kept durably, once per value, at most
		// MaxForksPerServer per server.
		if fs, err := e.db.DirectoryForks(); len(fs) != 0 || err != nil {
			t.Fatalf("no forks: %q %v", fs, err)
		}
		if ok, err := e.db.AddDirectoryFork(other, []byte(`{"f":0}`)); !ok || err != nil {
			t.Fatalf("first evidence: %v %v", ok, err)
		}
		if ok, err := e.db.AddDirectoryFork(other, []byte(`{"f":0}`)); ok || err != nil {
			t.Fatalf("the same evidence again: %v %v", ok, err)
		}
		for i := 1; i < MaxForksPerServer+3; i++ {
			ok, err := e.db.AddDirectoryFork(other, []byte(fmt.Sprintf(`{"f":%d}`, i)))
			if err != nil || ok != (i < MaxForksPerServer) {
				t.Fatalf("evidence %d: %v %v", i, ok, err)
			}
		}
		if ok, err := e.db.AddDirectoryFork(third, []byte(`{"f":0}`)); !ok || err != nil {
			t.Fatalf("another server's evidence: %v %v", ok, err)
		}
		e.reopen()
		fs, err := e.db.DirectoryForks()
		if err != nil || len(fs) != MaxForksPerServer+1 {
			t.Fatalf("after reopen %d forks, %v", len(fs), err)
		}
		// The co-signatures and the peer's other records are apart.
		if h, _ := e.db.PeerDirectoryHead(other); h != nil {
			t.Errorf("a head appeared: %q", h)
		}
	})
}
