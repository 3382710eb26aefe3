package storage

import (
	"crypto/sha256"
	"slices"
	"testing"
	"time"

	"github.com/privateline/privateline"
)

func member(u *User) GroupMember { return GroupMember{User: u.ID, Address: rcpt(u).Address} }

// groupsOf returns the ids of the user's groups (the user → groups index).
func groupsOf(t *testing.T, d *DB, u *User) []string {
	t.Helper()
	gs, err := d.UserGroups(u.ID)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, g := range gs {
		ids = append(ids, g.ID)
	}
	return ids
}

// checkGroupIndexes: the group → members and user → groups indexes agree
// both ways.
func checkGroupIndexes(t *testing.T, d *DB, users ...*User) {
	t.Helper()
	for _, u := range users {
		for _, id := range groupsOf(t, d, u) {
			if g, err := d.GroupFor(id, u.ID); err != nil || g.Member(u.ID) == nil {
				t.Errorf("%s is indexed in %s but not a member: %v", u.Username, id, err)
			}
		}
	}
	err := d.scanKeys([]byte{tGroup.prefix}, func(k, _ []byte) error {
		var g Group
		if err := d.getJSON(k, &g); err != nil {
			return err
		}
		for _, m := range g.Members {
			if m.Remote {
				continue
			}
			if ok, _ := d.exists(tUserGroup.key(m.User[:], k[1:])); !ok {
				t.Errorf("%s is a member of %s without its index entry", m.Address, g.ID)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func lastEvent(t *testing.T, d *DB, u *User) Event {
	t.Helper()
	evs, err := d.EventsAfter(u.ID, 0, EventWindow, time.Unix(1_800_000_000, 0))
	if err != nil || len(evs) == 0 {
		t.Fatalf("%s has no events: %v", u.Username, err)
	}
	return evs[len(evs)-1]
}

func TestGroupsMembershipEpochsAndMessages(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		d := e.db
		a, b, c, x := newUser("ann"), newUser("ben"), newUser("cat"), newUser("xav")
		for _, u := range []*User{a, b, c, x} {
			if err := d.CreateUser(u); err != nil {
				t.Fatal(err)
			}
		}
		now := time.Unix(1_800_000_000, 0)
		g, err := d.CreateGroup("hs", member(a), []GroupMember{member(b), member(c)}, "bWV0YQ==", now)
		if err != nil {
			t.Fatal(err)
		}
		if len(g.ID) != 32+3 || g.Epoch != 1 || g.Member(a.ID).Role != RoleOwner || g.Member(b.ID).Role != RoleMember {
			t.Fatalf("group %+v", g)
		}
		for _, u := range []*User{a, b, c} {
			if ev := lastEvent(t, d, u); ev.Type != EventGroupChanged || ev.Group != g.ID {
				t.Errorf("%s: %+v", u.Username, ev)
			}
			if ids := groupsOf(t, d, u); !slices.Equal(ids, []string{g.ID}) {
				t.Errorf("%s's groups: %v", u.Username, ids)
			}
		}
		if _, err := d.GroupFor(g.ID, x.ID); !privateline.Is(privateline.NotExist, err) {
			t.Errorf("outsider reads the group: %v", err)
		}
		send := func(from *User, epoch int64, exp time.Time) (string, error) {
			dl := &Delivery{MsgID: newMsgID(), Sender: rcpt(from), Group: g.ID, Epoch: epoch, ExpiresAt: exp}
			dl.Raw = []byte(`{"id":"` + dl.MsgID + `"}`)
			_, _, err := d.Deliver(dl)
			return dl.MsgID, err
		}
		m1, err := send(a, 1, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		m2, err := send(b, 1, now.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := send(x, 1, time.Time{}); !privateline.Is(privateline.NotExist, err) {
			t.Errorf("outsider sends: %v", err)
		}
		if _, err := send(a, 2, time.Time{}); err != ErrStaleEpoch {
			t.Errorf("future epoch: %v", err)
		}
		if ev := lastEvent(t, d, c); ev.Type != EventGroupMessage || ev.Group != g.ID || ev.ID != m2 || ev.Mail == nil {
			t.Errorf("carol's event: %+v", ev)
		}
		if cnt, _ := d.UnreadCounts(c.ID); cnt.Groups != 2 || cnt.Direct != 0 || cnt.Unread != 2 {
			t.Errorf("carol's counters: %+v", cnt)
		}
		items, err := d.Mailbox(c.ID, MailQuery{Group: g.ID, Limit: 10, Now: now})
		if err != nil || len(items) != 2 {
			t.Fatalf("carol's group page: %d, %v", len(items), err)
		}
		if items, _ := d.Mailbox(a.ID, MailQuery{Group: g.ID, Limit: 10, Now: now}); len(items) != 2 || !items[1].Out {
			t.Errorf("ann's group page: %+v", items)
		}
		if err := d.MarkRead(c.ID, m1, now); err != nil {
			t.Fatal(err)
		}
		checkMailboxes(t, d, a, b, c)

		// Roles: a member cannot add or remove others.
		if _, err := d.UpdateGroup(ChangeGroup{Group: g.ID, By: b.ID, Add: ptr(member(x))}); !privateline.Is(privateline.Forbidden, err) {
			t.Errorf("member adds: %v", err)
		}
		if _, err := d.UpdateGroup(ChangeGroup{Group: g.ID, By: b.ID, Remove: &c.ID}); !privateline.Is(privateline.Forbidden, err) {
			t.Errorf("member removes: %v", err)
		}
		if _, err := d.UpdateGroup(ChangeGroup{Group: g.ID, By: a.ID, Add: ptr(member(b))}); !privateline.Is(privateline.Exist, err) {
			t.Errorf("adding a member twice: %v", err)
		}
		// Removing carol starts epoch 2 and tells all three.
		g, err = d.UpdateGroup(ChangeGroup{Group: g.ID, By: a.ID, Remove: &c.ID})
		if err != nil || g.Epoch != 2 || g.Member(c.ID) != nil {
			t.Fatalf("remove: %+v, %v", g, err)
		}
		for _, u := range []*User{a, b, c} {
			if ev := lastEvent(t, d, u); ev.Type != EventGroupChanged || ev.Group != g.ID {
				t.Errorf("%s after removal: %+v", u.Username, ev)
			}
		}
		if ids := groupsOf(t, d, c); len(ids) != 0 {
			t.Errorf("carol's groups after removal: %v", ids)
		}
		if _, err := send(b, 1, time.Time{}); err != ErrStaleEpoch {
			t.Errorf("old epoch after removal: %v", err)
		}
		if _, err := send(c, 2, time.Time{}); !privateline.Is(privateline.NotExist, err) {
			t.Errorf("removed member sends: %v", err)
		}
		m3, err := send(b, 2, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if items, _ := d.Mailbox(c.ID, MailQuery{Group: g.ID, Limit: 10, Now: now}); len(items) != 2 {
			t.Errorf("carol got a message after removal: %d", len(items))
		}
		// An admin adds xav (epoch 3); the sender's deletion removes every copy.
		if _, err := d.UpdateGroup(ChangeGroup{Group: g.ID, By: a.ID, Role: &GroupMember{User: b.ID, Role: RoleAdmin}}); err != nil {
			t.Fatal(err)
		}
		if g, err = d.UpdateGroup(ChangeGroup{Group: g.ID, By: b.ID, Add: ptr(member(x))}); err != nil || g.Epoch != 3 {
			t.Fatalf("admin adds: %+v %v", g, err)
		}
		if err := d.DeleteMessage(b.ID, m3, now); err != nil {
			t.Fatal(err)
		}
		checkMailboxes(t, d, a, b, c, x)
		if n, err := d.SweepMessages(now.Add(time.Minute)); err != nil || n != 1 {
			t.Fatalf("sweep: %d %v", n, err)
		}
		for _, u := range []*User{a, b, c} {
			items, _ := d.Mailbox(u.ID, MailQuery{Limit: 10, Now: now})
			for _, it := range items {
				if string(it.Envelope) == `{"id":"`+m2+`"}` || string(it.Envelope) == `{"id":"`+m3+`"}` {
					t.Errorf("%s still holds a deleted or expired group message", u.Username)
				}
			}
		}
		checkMailboxes(t, d, a, b, c, x)
		checkGroupIndexes(t, d, a, b, c, x)
		e.reopen()
		d = e.db
		checkGroupIndexes(t, d, a, b, c, x)
		if g2, err := d.GroupFor(g.ID, x.ID); err != nil || g2.Epoch != 3 || len(g2.Members) != 3 {
			t.Fatalf("after reopen: %+v %v", g2, err)
		}
	})
}

func ptr[T any](v T) *T { return &v }

// TestGroupOwnerLeavesAndAccountDeletion: the owner's leaving hands the
// group to the longest-standing admin, else member; account deletion
// removes the user from every group, drops the user's received copies of
// group messages (the others keep theirs) and deletes an emptied group.
func TestGroupOwnerLeavesAndAccountDeletion(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		d := e.db
		a, b, c, x := newUser("ann"), newUser("ben"), newUser("cat"), newUser("xav")
		for _, u := range []*User{a, b, c, x} {
			if err := d.CreateUser(u); err != nil {
				t.Fatal(err)
			}
		}
		now := time.Unix(1_800_000_000, 0)
		g, err := d.CreateGroup("hs", member(a), []GroupMember{member(b), member(c)}, "", now)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.UpdateGroup(ChangeGroup{Group: g.ID, By: a.ID, Role: &GroupMember{User: c.ID, Role: RoleAdmin}}); err != nil {
			t.Fatal(err)
		}
		// The owner leaves: carol (the only admin) owns it, though ben joined as early.
		if g, err = d.UpdateGroup(ChangeGroup{Group: g.ID, By: a.ID, Remove: &a.ID}); err != nil || g.Member(c.ID).Role != RoleOwner || g.Epoch != 2 {
			t.Fatalf("owner leaves: %+v %v", g, err)
		}
		dl := &Delivery{MsgID: newMsgID(), Sender: rcpt(c), Group: g.ID, Epoch: 2, Raw: []byte(`{"n":1}`)}
		if _, _, err := d.Deliver(dl); err != nil {
			t.Fatal(err)
		}
		if err := d.MarkRead(b.ID, dl.MsgID, now); err != nil {
			t.Fatal(err)
		}
		dl2 := &Delivery{MsgID: newMsgID(), Sender: rcpt(b), Group: g.ID, Epoch: 2, Raw: []byte(`{"n":2}`)}
		if _, _, err := d.Deliver(dl2); err != nil {
			t.Fatal(err)
		}
		// Ben's account goes: his message goes for everyone, carol keeps hers.
		if err := d.DeleteUser(b.ID); err != nil {
			t.Fatal(err)
		}
		if g, err = d.GroupFor(g.ID, c.ID); err != nil || len(g.Members) != 1 || g.Epoch != 3 {
			t.Fatalf("after ben's deletion: %+v %v", g, err)
		}
		items, _ := d.Mailbox(c.ID, MailQuery{Group: g.ID, Limit: 10, Now: now})
		if len(items) != 1 || string(items[0].Envelope) != `{"n":1}` || len(items[0].ReadBy) != 0 {
			t.Fatalf("carol's page after ben's deletion: %+v", items)
		}
		if found := d.scanFor(t, b.ID[:], []byte(b.Username)); len(found) > 0 {
			t.Fatalf("after deletion the store holds ben at %q", found)
		}
		checkMailboxes(t, d, a, c)
		// The owner with no one left: the group is deleted.
		if err := d.DeleteUser(c.ID); err != nil {
			t.Fatal(err)
		}
		if _, _, err := d.group(g.ID); !privateline.Is(privateline.NotExist, err) {
			t.Fatalf("empty group kept: %v", err)
		}
		checkGroupIndexes(t, d, a, x)
	})
}

func TestGroupKeyUpload(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		d := e.db
		a, b, c := newUser("ann"), newUser("ben"), newUser("cat")
		for _, u := range []*User{a, b, c} {
			if err := d.CreateUser(u); err != nil {
				t.Fatal(err)
			}
		}
		g, err := d.CreateGroup("hs", member(a), []GroupMember{member(b)}, "", time.Unix(1_800_000_000, 0))
		if err != nil {
			t.Fatal(err)
		}
		kid := map[*User]string{a: "aa", b: "bb", c: "cc"}
		up := func(by *User, epoch int64, body string, members ...*User) (bool, error) {
			u := &GroupKeyUpload{Group: g.ID, Epoch: epoch, By: by.ID, Signed: []byte(body), Wraps: map[privateline.Address][2]string{},
				KeyIDs: map[privateline.Address]string{}}
			s := sha256.Sum256([]byte(body))
			u.Sum = s[:]
			for _, m := range members {
				a := rcpt(m).Address
				u.Members = append(u.Members, a)
				u.Wraps[a] = [2]string{kid[m], "wrap-" + kid[m]}
				u.KeyIDs[a] = kid[m]
			}
			slices.Sort(u.Members)
			return d.PutGroupKey(u)
		}
		if _, err := up(b, 1, "x", a, b); !privateline.Is(privateline.Forbidden, err) {
			t.Errorf("member uploads: %v", err)
		}
		if _, err := up(c, 1, "x", a, b); !privateline.Is(privateline.NotExist, err) {
			t.Errorf("outsider uploads: %v", err)
		}
		if _, err := up(a, 1, "x", a, b, c); err != ErrMembersChanged {
			t.Errorf("wrong members: %v", err)
		}
		if _, err := up(a, 2, "x", a, b); err != ErrStaleEpoch {
			t.Errorf("wrong epoch: %v", err)
		}
		if replay, err := up(a, 1, "doc1", a, b); err != nil || replay {
			t.Fatalf("upload: %v %v", replay, err)
		}
		if replay, err := up(a, 1, "doc1", a, b); err != nil || !replay {
			t.Fatalf("same again: %v %v", replay, err)
		}
		if _, err := up(a, 1, "doc2", a, b); !privateline.Is(privateline.Exist, err) {
			t.Fatalf("another document: %v", err)
		}
		signed, k, w, err := d.GroupKey(g.ID, 1, b.ID)
		if err != nil || string(signed) != "doc1" || k != "bb" || w != "wrap-bb" {
			t.Fatalf("ben's view: %q %q %q %v", signed, k, w, err)
		}
		if _, _, _, err := d.GroupKey(g.ID, 1, c.ID); !privateline.Is(privateline.NotExist, err) {
			t.Errorf("outsider reads the key: %v", err)
		}
		if _, err := d.UpdateGroup(ChangeGroup{Group: g.ID, By: a.ID, Add: ptr(member(c))}); err != nil {
			t.Fatal(err)
		}
		// Carol joined at epoch 2: epoch 1's key is not hers.
		if _, _, _, err := d.GroupKey(g.ID, 1, c.ID); !privateline.Is(privateline.NotExist, err) {
			t.Errorf("new member reads an old epoch: %v", err)
		}
		if _, err := up(a, 2, "doc3", a, b, c); err != nil {
			t.Fatal(err)
		}
		if _, err := d.UpdateGroup(ChangeGroup{Group: g.ID, By: a.ID, Remove: &b.ID}); err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := d.GroupKey(g.ID, 2, b.ID); !privateline.Is(privateline.NotExist, err) {
			t.Errorf("removed member reads a key: %v", err)
		}
	})
}
