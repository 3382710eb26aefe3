package storage

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/privateline/privateline"
)

// Read marks and deletes of group messages across servers
// (spec/federation.md §12.2, §12.3).

func readMark(reader privateline.Address, msg string, now time.Time) InboundEntry {
	return InboundEntry{Kind: OutboxReadMarks, ID: newMsgID(), Message: msg, Reader: reader, At: now}
}

func deleteOf(from privateline.Address, msg string, now time.Time) InboundEntry {
	return InboundEntry{Kind: OutboxDeletes, ID: newMsgID(), Message: msg, From: from, At: now}
}

// deletesIn returns the messages of the deletes among items, each with its from.
func deletesIn(t *testing.T, items []OutboxItem) map[string]privateline.Address {
	t.Helper()
	out := map[string]privateline.Address{}
	for _, it := range items {
		if it.Type != OutboxDeletes {
			continue
		}
		var p DeletePayload
		if err := json.Unmarshal(it.Payload, &p); err != nil {
			t.Fatal(err)
		}
		out[p.Message] = p.From
	}
	return out
}

// TestGroupServerReadMarksAndDeletes: on the group's server, a read mark
// of a member elsewhere reaches the sender (event and read_by) once; a
// mark from the wrong server, of a non-member, of a message not sent
// here, is refused; a remote member's delete of their message removes
// every copy here, is tombstoned and passed on to the servers the message
// went to; a local sender's delete goes to every such server.
func TestGroupServerReadMarksAndDeletes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		d := e.db
		us := createUsers(t, d, "ann", "ben")
		ann, ben := us[0], us[1]
		now := time.Unix(1_800_000_000, 0)
		g, err := d.CreateGroup("hs", member(ann), []GroupMember{member(ben), {Address: rob, Remote: true}, {Address: rita, Remote: true}, {Address: sue, Remote: true}}, "", now)
		if err != nil {
			t.Fatal(err)
		}
		drain(t, d, other)
		drain(t, d, third)
		dl := &Delivery{MsgID: newMsgID(), Sender: rcpt(ann), Group: g.ID, Epoch: 1, Raw: []byte(`{}`)}
		if _, _, err := d.Deliver(dl); err != nil {
			t.Fatal(err)
		}
		rd := &Delivery{MsgID: newMsgID(), Sender: Recipient{Address: rob}, RemoteSender: true, Group: g.ID, Epoch: 1, Raw: []byte(`{}`)}
		if _, _, err := d.Deliver(rd); err != nil {
			t.Fatal(err)
		}
		drain(t, d, other)
		drain(t, d, third)

		annSeq := lastSeq(t, d, ann)
		res, _, err := d.ReceiveTransaction(other, newMsgID(), []InboundEntry{
			readMark(rob, dl.MsgID, now),
			readMark(sue, dl.MsgID, now),                 // sue is on third
			readMark("zed@other.example", dl.MsgID, now), // no member
			readMark(rita, rd.MsgID, now),                // rob's message: not sent here
			readMark(rita, newMsgID(), now),              // no such message
			readMark(rob, dl.MsgID, now),                 // again
		}, now)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"accepted", "refused:wrong_origin", "refused:not_member", "refused:not_for_destination", "accepted", "accepted"}; !slices.Equal(statuses(res), want) {
			t.Fatalf("read marks: %v, want %v", statuses(res), want)
		}
		evs, err := d.EventsAfter(ann.ID, annSeq, 100, now)
		if err != nil || len(evs) != 1 || evs[0].Type != EventRead || evs[0].ID != dl.MsgID || evs[0].By != rob {
			t.Fatalf("ann's events after rob read: %+v %v", evs, err)
		}
		if res, _, err := d.ReceiveTransaction(third, newMsgID(), []InboundEntry{readMark(sue, dl.MsgID, now)}, now); err != nil || statuses(res)[0] != "accepted" {
			t.Fatalf("sue's mark: %v %v", res, err)
		}
		items, err := d.Mailbox(ann.ID, MailQuery{Group: g.ID, Limit: 10})
		if err != nil || len(items) != 2 || !items[1].Out || !slices.Equal(items[1].ReadBy, []privateline.Address{rob, sue}) {
			t.Fatalf("ann's sent copy: %+v %v", items, err)
		}
		if evs, _ := d.EventsAfter(ann.ID, annSeq, 100, now); len(evs) != 2 || evs[1].By != sue {
			t.Fatalf("ann's events after sue read: %+v", evs)
		}

		// rob's delete of his message: only rob, only through other.
		benSeq := lastSeq(t, d, ben)
		res, _, err = d.ReceiveTransaction(third, newMsgID(), []InboundEntry{deleteOf(rob, rd.MsgID, now)}, now)
		if err != nil || statuses(res)[0] != "refused:wrong_origin" {
			t.Fatalf("rob's delete from third: %v %v", statuses(res), err)
		}
		res, _, err = d.ReceiveTransaction(other, newMsgID(), []InboundEntry{deleteOf(rita, rd.MsgID, now), deleteOf(rob, dl.MsgID, now), deleteOf(rob, rd.MsgID, now), deleteOf(rob, rd.MsgID, now)}, now)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"refused:wrong_origin", "refused:wrong_origin", "accepted", "accepted"}; !slices.Equal(statuses(res), want) {
			t.Fatalf("deletes: %v, want %v", statuses(res), want)
		}
		for _, u := range []*User{ann, ben} {
			seq := benSeq
			if u == ann {
				seq = annSeq
			}
			evs, _ := d.EventsAfter(u.ID, seq, 100, now)
			if i := slices.IndexFunc(evs, func(ev Event) bool { return ev.Type == EventDeleted && ev.ID == rd.MsgID }); i < 0 {
				t.Fatalf("%s got no deleted event: %+v", u.Username, evs)
			}
			items, _ := d.Mailbox(u.ID, MailQuery{Group: g.ID, Limit: 10})
			if len(items) != 1 {
				t.Fatalf("%s still has %d group messages", u.Username, len(items))
			}
		}
		mid, _ := msgKeyID(rd.MsgID)
		if err := d.checkTombstone(mid); !privateline.Is(privateline.Exist, err) {
			t.Fatalf("rob's deleted message is not tombstoned: %v", err)
		}
		// Passed on to third (sue got it), not back to other.
		if got := deletesIn(t, drain(t, d, third)); len(got) != 1 || got[rd.MsgID] != rob {
			t.Fatalf("third's deletes %v", got)
		}
		if got := deletesIn(t, drain(t, d, other)); len(got) != 0 {
			t.Fatalf("other's deletes %v", got)
		}

		// ann deletes hers: every server it went to hears of it.
		if err := d.DeleteMessage(ann.ID, dl.MsgID, now); err != nil {
			t.Fatal(err)
		}
		for _, dest := range []privateline.ServerName{other, third} {
			if got := deletesIn(t, drain(t, d, dest)); len(got) != 1 || got[dl.MsgID] != rcpt(ann).Address {
				t.Fatalf("%s's deletes %v", dest, got)
			}
		}
	})
}

// TestGroupMemberServerReadMarksAndDeletes: on a member's server, its
// user's delete of a group message goes to the group's server only; a
// delete the group's server passes on removes the copies here; a delete
// of a direct message, or of another group's message, passed on by a
// server that is not the sender's is refused; a read mark of a member
// reaches the sender here.
func TestGroupMemberServerReadMarksAndDeletes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		d := e.db // "hs"; the group is on other.example
		us := createUsers(t, d, "ann", "ben")
		ann, ben := us[0], us[1]
		annA, benA := rcpt(ann).Address, rcpt(ben).Address
		now := time.Unix(1_800_000_000, 0)
		gid := newMsgID() + "@" + string(other)
		st := GroupState{Group: gid, Version: 1, Epoch: 1, Members: []GroupStateMember{
			{Address: rob, Role: RoleOwner}, {Address: annA, Role: RoleMember, Joined: 1},
			{Address: benA, Role: RoleMember, Joined: 2}, {Address: sue, Role: RoleMember, Joined: 3}}}
		if _, err := d.ApplyGroupReplica(replicaOf(st, map[privateline.Address]ID{annA: ann.ID, benA: ben.ID})); err != nil {
			t.Fatal(err)
		}
		// ann's message, accepted by the group's server, stored here.
		mine := &Delivery{MsgID: newMsgID(), Sender: rcpt(ann), Recipients: []Recipient{rcpt(ben)}, Group: gid, Epoch: 1, Relayed: true, Raw: []byte(`{}`)}
		if _, _, err := d.Deliver(mine); err != nil {
			t.Fatal(err)
		}
		// sue's messages, relayed by the group's server.
		s1, s2 := newMsgID(), newMsgID()
		var in []InboundEntry
		for _, id := range []string{s1, s2} {
			in = append(in, InboundEntry{Kind: OutboxGroupEnvelopes, ID: id, Raw: []byte(`{"id":"` + id + `"}`), From: sue, Group: gid, Recipients: []Recipient{rcpt(ann), rcpt(ben)}})
		}
		if res, _, err := d.ReceiveTransaction(other, newMsgID(), in, now); err != nil || !slices.Equal(statuses(res), []string{"accepted", "accepted"}) {
			t.Fatalf("sue's messages: %v %v", statuses(res), err)
		}
		dm := sendRemote(t, d, ann, []*User{ben}, nil, time.Time{}) // a direct message between ann and ben

		// Read marks: sue (a member, through her server) and a stranger.
		annSeq := lastSeq(t, d, ann)
		res, _, err := d.ReceiveTransaction(third, newMsgID(), []InboundEntry{readMark(sue, mine.MsgID, now), readMark("zed@third.example", mine.MsgID, now), readMark(sue, s1, now)}, now)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"accepted", "refused:not_member", "refused:not_for_destination"}; !slices.Equal(statuses(res), want) {
			t.Fatalf("read marks: %v, want %v", statuses(res), want)
		}
		if evs, _ := d.EventsAfter(ann.ID, annSeq, 100, now); len(evs) != 1 || evs[0].Type != EventRead || evs[0].By != sue {
			t.Fatalf("ann's events: %+v", evs)
		}

		// Deletes: passed on by the group's server, or from sue's own
		// server; not by a third party.
		res, _, err = d.ReceiveTransaction(third, newMsgID(), []InboundEntry{deleteOf(sue, s2, now)}, now)
		if err != nil || statuses(res)[0] != "accepted" {
			t.Fatalf("sue's own server deletes: %v %v", statuses(res), err)
		}
		res, _, err = d.ReceiveTransaction(other, newMsgID(), []InboundEntry{deleteOf(annA, dm, now), deleteOf(sue, s1, now), deleteOf(sue, newMsgID(), now)}, now)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"refused:wrong_origin", "accepted", "accepted"}; !slices.Equal(statuses(res), want) {
			t.Fatalf("deletes: %v, want %v", statuses(res), want)
		}
		for _, u := range []*User{ann, ben} {
			items, _ := d.Mailbox(u.ID, MailQuery{Group: gid, Limit: 10})
			if len(items) != 1 || string(items[0].Envelope) != `{}` {
				t.Fatalf("%s's group messages after sue's deletes: %d", u.Username, len(items))
			}
		}
		for _, id := range []string{s1, s2} {
			mid, _ := msgKeyID(id)
			if err := d.checkTombstone(mid); !privateline.Is(privateline.Exist, err) {
				t.Fatalf("sue's deleted message is not tombstoned: %v", err)
			}
		}
		// Passing on is the group's server's: nothing queued here.
		if depth, _ := d.OutboxDepth(); depth[third] != 0 || depth[other] != 0 {
			t.Fatalf("a member's server passed a delete on: %v", depth)
		}

		// ann deletes her message: to the group's server only.
		if err := d.DeleteMessage(ann.ID, mine.MsgID, now); err != nil {
			t.Fatal(err)
		}
		if got := deletesIn(t, drain(t, d, other)); len(got) != 1 || got[mine.MsgID] != annA {
			t.Fatalf("the group's server's deletes %v", got)
		}
		if items := drain(t, d, third); len(items) != 0 {
			t.Fatalf("third got %+v", items)
		}
		if items, _ := d.Mailbox(ben.ID, MailQuery{Group: gid, Limit: 10}); len(items) != 0 {
			t.Fatalf("ben still has %d group messages", len(items))
		}
	})
}
