package storage

import (
	"testing"
	"time"
)

// TestRemoveDeletedMember: a deleted member of another server leaves a
// group of this server as if they had left (a new epoch, their server
// told), only at the join order their server named; a leave that comes
// again, or for a group that is gone, changes nothing and is no error.
func TestRemoveDeletedMember(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		d := e.db
		ann := createUsers(t, d, "ann")[0]
		g, err := d.CreateGroup("hs", member(ann), []GroupMember{{Address: rob, Remote: true}, {Address: sue, Remote: true}}, "", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		joined := g.MemberAt(rob).Joined
		drain(t, d, other)
		if err := d.RemoveDeletedMember(g.ID, rob, joined+1); err != nil {
			t.Fatal(err)
		}
		if g2, err := d.GroupFor(g.ID, ann.ID); err != nil || g2.MemberAt(rob) == nil || g2.Epoch != g.Epoch {
			t.Fatalf("a leave at another join order changed the group: %+v %v", g2, err)
		}
		if err := d.RemoveDeletedMember(g.ID, rob, joined); err != nil {
			t.Fatal(err)
		}
		g2, err := d.GroupFor(g.ID, ann.ID)
		if err != nil || g2.MemberAt(rob) != nil || g2.MemberAt(sue) == nil || g2.Epoch != g.Epoch+1 {
			t.Fatalf("after rob's leave: %+v %v", g2, err)
		}
		items := drain(t, d, other)
		if len(items) != 1 {
			t.Fatalf("other.example's items after rob's leave: %d, want its new state", len(items))
		}
		if st := stateOf(t, items[0]); st.Epoch != g2.Epoch || len(st.Members) != 2 {
			t.Fatalf("other.example's state after rob's leave: %+v", st)
		}
		if err := d.RemoveDeletedMember(g.ID, rob, joined); err != nil {
			t.Fatal(err)
		}
		if g3, err := d.GroupFor(g.ID, ann.ID); err != nil || g3.Version != g2.Version {
			t.Fatalf("a second leave changed the group: %+v %v", g3, err)
		}
		if err := d.RemoveDeletedMember("0123456789abcdef0123456789abcdef@hs", rob, 0); err != nil {
			t.Fatalf("a leave of a group that is not there: %v", err)
		}
	})
}
