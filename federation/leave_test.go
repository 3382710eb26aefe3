package federation

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/federation/wire"
)

func (f *fakeStore) RemoveDeletedMember(id string, member privateline.Address, joined uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leaves = append(f.leaves, fmt.Sprintf("%s %s %d", id, member, joined))
	return nil
}

// TestGroupLeavesReceiver: the group's server takes a deleted member's
// leave from the member's own server for a group of its own, and refuses
// one for another server's user (wrong_origin) or another server's group
// (not_for_destination) without touching the store; the same
// transaction again gets the same receipt.
func TestGroupLeavesReceiver(t *testing.T) {
	b := newNode(t, nameB, "bob")
	ka := newKey(t)
	b.start(t, []Peer{{Name: nameA, Key: ka.Public()}}, nil)
	c := dialRaw(t, nameA, ka, b)
	gB := "0123456789abcdef0123456789abcdef@" + string(nameB)
	gA := "0123456789abcdef0123456789abcdef@" + string(nameA)
	tx := txn(nameA, nameB, time.Now(),
		wire.Entry{ID: newID(), Group: gB, Member: addr("alice", nameA), Joined: 2},
		wire.Entry{ID: newID(), Group: gB, Member: addr("bob", nameB), Joined: 0},
		wire.Entry{ID: newID(), Group: gA, Member: addr("alice", nameA), Joined: 2})
	tx.Type = wire.TypeGroupLeaves
	raw := sign(t, tx, ka)
	for range 2 {
		rc := wantReceipt(t, ask(t, c, raw), b, tx)
		var got []string
		for _, r := range rc.Results {
			got = append(got, string(r.Status)+":"+r.Error)
		}
		if want := []string{"accepted:", "refused:wrong_origin", "refused:not_for_destination"}; !slices.Equal(got, want) {
			t.Fatalf("results %v, want %v", got, want)
		}
	}
	b.st.mu.Lock()
	defer b.st.mu.Unlock()
	want := fmt.Sprintf("%s %s 2", gB, addr("alice", nameA))
	if !slices.Equal(b.st.leaves, []string{want, want}) {
		t.Fatalf("the store removed %q, want %q twice", b.st.leaves, want)
	}
}
