package federation

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/envelope"
	"github.com/privateline/privateline/federation/wire"
	"github.com/privateline/privateline/storage"
)

// groupEnv returns a group envelope that envelope.ParseGroup accepts.
func groupEnv(t *testing.T, id string, from privateline.Address, group string) []byte {
	t.Helper()
	h := map[string]any{"v": 1, "suite": "pl1", "id": id, "from": from, "group": group, "epoch": 1, "conversation": group, "sent_at": time.Now().UnixMilli()}
	b, err := json.Marshal(map[string]any{"ciphertext": "AAAA", "header": h, "nonce": "AAAA", "signature": "AAAA",
		"salt": base64.StdEncoding.EncodeToString(make([]byte, 32))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := envelope.ParseGroup(b); err != nil {
		t.Fatalf("test group envelope refused: %v", err)
	}
	return b
}

// groupState returns the canonical JSON of a state of group with the
// members (the first the owner).
func groupState(t *testing.T, group string, version int, members ...privateline.Address) []byte {
	t.Helper()
	st := storage.GroupState{Group: group, Version: uint64(version), Epoch: 1, Members: []storage.GroupStateMember{}}
	for i, a := range members {
		role := storage.RoleMember
		if i == 0 {
			role = storage.RoleOwner
		}
		st.Members = append(st.Members, storage.GroupStateMember{Address: a, Role: role, Joined: uint64(i)})
	}
	raw, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func results(t *testing.T, resp []byte, peer wire.Peer, me privateline.ServerName, tx *wire.Transaction) []wire.Result {
	t.Helper()
	rc, err := wire.VerifyReceipt(resp, peer, me, time.Now(), wire.DefaultLimits(), tx)
	if err != nil {
		t.Fatalf("receipt %.300q: %v", resp, err)
	}
	return rc.Results
}

// TestGroupEntriesChecked: group entries are taken only from the group's
// server (the server of the group id), for members of this server, with
// the envelope's group and id; a state must parse.
func TestGroupEntriesChecked(t *testing.T) {
	const groupServer = privateline.ServerName("g.example")
	n := newNode(t, nameB, "bob")
	gk := newKey(t)
	n.start(t, []Peer{{Name: groupServer, Key: gk.Public()}, {Name: nameA, Key: newKey(t).Public()}}, nil)
	c := dialRaw(t, groupServer, gk, n)
	peer := wire.Peer{Name: nameB, Key: n.key.Public()}
	bob := addr("bob", nameB)
	g := newID() + "@" + string(groupServer)
	elsewhere := newID() + "@" + string(nameA) // a group of another server
	// B's replica of g is current: no entry makes it ask g.example
	// (groupsync.go).
	n.st.mu.Lock()
	n.st.replicas = append(n.st.replicas, &storage.GroupReplica{Group: &storage.Group{ID: g, Version: 1, Epoch: 1, Replica: true,
		Members: []storage.GroupMember{{Address: "ann@a.example", Role: storage.RoleOwner, Remote: true}, {Address: bob, Role: storage.RoleMember}}}})
	n.st.mu.Unlock()

	ids := []string{newID(), newID(), newID(), newID(), newID(), newID()}
	tx := txn(groupServer, nameB, time.Now(),
		wire.Entry{ID: ids[0], Group: g, To: []privateline.Address{bob}, Envelope: groupEnv(t, ids[0], "ann@a.example", g)},
		wire.Entry{ID: ids[1], Group: elsewhere, To: []privateline.Address{bob}, Envelope: groupEnv(t, ids[1], "ann@a.example", elsewhere)},
		wire.Entry{ID: ids[2], Group: g, To: []privateline.Address{bob}, Envelope: groupEnv(t, ids[2], "ann@a.example", elsewhere)},
		wire.Entry{ID: ids[3], Group: g, To: []privateline.Address{"bob@c.example"}, Envelope: groupEnv(t, ids[3], "ann@a.example", g)},
		wire.Entry{ID: ids[4], Group: g, To: []privateline.Address{bob}, Envelope: groupEnv(t, newID(), "ann@a.example", g)},
		wire.Entry{ID: ids[5], Group: g, To: []privateline.Address{addr("nobody", nameB)}, Envelope: groupEnv(t, ids[5], "ann@a.example", g)},
	)
	tx.Type = wire.TypeGroupEnvelopes
	rs := results(t, ask(t, c, sign(t, tx, gk)), peer, groupServer, tx)
	want := []string{"", "wrong_origin", "group_mismatch", "not_for_destination", "id_mismatch", "unknown_recipient"}
	for i, r := range rs {
		if want[i] == "" && r.Status != wire.Accepted || want[i] != "" && (r.Status != wire.Refused || r.Error != want[i]) {
			t.Errorf("entry %d: %+v, want %q", i, r, want[i])
		}
	}
	if m := n.st.mail(); len(m) != 1 || m[0].Entry.Group != g || m[0].Entry.Kind != string(wire.TypeGroupEnvelopes) || m[0].Entry.Recipients[0].Address != bob {
		t.Fatalf("stored %+v", m)
	}

	// States: resolved members; another server's group; two owners.
	u := []string{newID(), newID(), newID()}
	two := strings.Replace(string(groupState(t, g, 2, "ann@a.example", bob)), `"role":"member"`, `"role":"owner"`, 1)
	tx = txn(groupServer, nameB, time.Now(),
		wire.Entry{ID: u[0], Group: g, State: groupState(t, g, 1, "ann@a.example", bob, addr("carl", nameB))},
		wire.Entry{ID: u[1], Group: elsewhere, State: groupState(t, elsewhere, 1, "ann@a.example", bob)},
		wire.Entry{ID: u[2], Group: g, State: []byte(two)},
	)
	tx.Type = wire.TypeGroupUpdates
	rs = results(t, ask(t, c, sign(t, tx, gk)), peer, groupServer, tx)
	if rs[1].Error != "wrong_origin" || rs[2].Error != "malformed" {
		t.Fatalf("results %+v", rs)
	}
	var r *storage.GroupReplica
	for _, m := range n.st.mail() {
		if m.Entry.ID == u[0] {
			r = m.Entry.Replica
		}
	}
	if r == nil || r.Group.ID != g || r.Group.Version != 1 || len(r.Group.Members) != 3 {
		t.Fatalf("replica %+v", r)
	}
	if m := r.Group.MemberAt(bob); m == nil || m.Remote || m.User.IsZero() {
		t.Fatalf("bob, a user here, is not resolved: %+v", m)
	}
	if m := r.Group.MemberAt(addr("carl", nameB)); m == nil || !m.Remote {
		t.Fatalf("carl, no user here, must stay remote: %+v", m)
	}
}

// handler is a GroupHandler that records requests and answers answer.
type handler struct {
	mu     sync.Mutex
	reqs   []GroupRequest
	answer GroupResult
}

func (h *handler) HandleGroupRequest(_ context.Context, req GroupRequest) GroupResult {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reqs = append(h.reqs, req)
	return h.answer
}

func (h *handler) requests() []GroupRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]GroupRequest(nil), h.reqs...)
}

// TestGroupRequests: a member's server forwards a change to the group's
// server and gets the handler's answer with the group's state, which it
// applies to its replica; a server acts only for its own users, only on
// the answering server's groups; a request has one entry; the group's
// server being down is Unavailable.
func TestGroupRequests(t *testing.T) {
	g, s := newNode(t, nameA), newNode(t, nameB, "bob")
	h := &handler{answer: GroupResult{Status: http.StatusCreated, Recipients: []privateline.Address{addr("bob", nameB)}}}
	pair(t, g, s, func(c *Config) {}, nil)
	g.svc.SetGroupHandler(h)
	gid := newID() + "@" + string(nameA)
	bob := addr("bob", nameB)
	g.st.mu.Lock()
	g.st.groupStates = map[string][]byte{gid: groupState(t, gid, 7, addr("ann", nameA), bob)}
	g.st.mu.Unlock()

	ctx := testCtx(t)
	body := []byte(`{"any":"body"}`)
	res, err := s.svc.GroupRequest(ctx, GroupRequest{Group: gid, Op: "send", Requester: bob, Body: body})
	if err != nil || res.Status != http.StatusCreated || len(res.Recipients) != 1 || res.Recipients[0] != bob {
		t.Fatalf("answer %+v %v", res, err)
	}
	if rq := h.requests(); len(rq) != 1 || rq[0].Origin != nameB || rq[0].Requester != bob || rq[0].Op != "send" || string(rq[0].Body) != string(body) {
		t.Fatalf("the handler got %+v", rq)
	}
	s.st.mu.Lock()
	reps := s.st.replicas
	s.st.mu.Unlock()
	if len(reps) != 1 || reps[0].Group.Version != 7 || reps[0].Group.MemberAt(bob).Remote {
		t.Fatalf("the replica was not updated from the answer: %+v", reps)
	}

	// The handler's refusal is the answer (as the client API's).
	h.mu.Lock()
	h.answer = GroupResult{Status: http.StatusConflict, Code: "stale_epoch", Message: "the group has moved to another epoch"}
	h.mu.Unlock()
	if res, err := s.svc.GroupRequest(ctx, GroupRequest{Group: gid, Op: "send", Requester: bob, Body: body}); err != nil || res.Status != http.StatusConflict || res.Code != "stale_epoch" || res.Message == "" {
		t.Fatalf("stale epoch through the proxy: %+v %v", res, err)
	}

	// Raw requests: for a user of another server; for a group of another
	// server; two entries.
	c := dialRaw(t, nameB, s.key, g)
	peer := wire.Peer{Name: nameA, Key: g.key.Public()}
	req := func(requester privateline.Address, group string, n int) *wire.Transaction {
		tx := txn(nameB, nameA, time.Now())
		tx.Type = wire.TypeGroupRequest
		for range n {
			tx.Entries = append(tx.Entries, wire.Entry{ID: newID(), Group: group, Op: "meta", Requester: requester, Body: body})
		}
		return tx
	}
	before := len(h.requests())
	tx := req("mallory@c.example", gid, 1)
	if r := results(t, ask(t, c, sign(t, tx, s.key)), peer, nameB, tx); r[0].HTTPStatus != http.StatusForbidden || r[0].Error != "wrong_origin" || r[0].State != nil {
		t.Fatalf("a request for another server's user: %+v", r[0])
	}
	tx = req(bob, newID()+"@"+string(nameB), 1)
	if r := results(t, ask(t, c, sign(t, tx, s.key)), peer, nameB, tx); r[0].HTTPStatus != http.StatusNotFound || r[0].Error != "not_found" {
		t.Fatalf("a request for a group of another server: %+v", r[0])
	}
	wantRefusal(t, ask(t, c, sign(t, req(bob, gid, 2), s.key)), "too_many_entries")
	if len(h.requests()) != before {
		t.Fatalf("the handler ran refused requests: %+v", h.requests()[before:])
	}

	// The group's server is down: Unavailable, with a sentence.
	g.svc.Close()
	_, err = s.svc.GroupRequest(ctx, GroupRequest{Group: gid, Op: "meta", Requester: bob, Body: body})
	if !privateline.Is(privateline.Unavailable, err) || !strings.Contains(err.Error(), "try again later") {
		t.Fatalf("the group's server is down: %v", err)
	}
}

// TestGroupStateEra: a state's era is kept with the replica; one ahead of
// the freshness window is refused (it would outrank every later state of
// the group's server, also after a key rotation).
func TestGroupStateEra(t *testing.T) {
	const groupServer = privateline.ServerName("g.example")
	n := newNode(t, nameB, "bob")
	gk := newKey(t)
	n.start(t, []Peer{{Name: groupServer, Key: gk.Public()}}, nil)
	c := dialRaw(t, groupServer, gk, n)
	peer := wire.Peer{Name: nameB, Key: n.key.Public()}
	bob := addr("bob", nameB)
	g := newID() + "@" + string(groupServer)
	withEra := func(era int64) []byte {
		st := string(groupState(t, g, 1, "ann@a.example", bob))
		return []byte(strings.Replace(st, `"group":`, fmt.Sprintf(`"era":%d,"group":`, era), 1))
	}
	now := time.Now()
	u := []string{newID(), newID()}
	tx := txn(groupServer, nameB, now,
		wire.Entry{ID: u[0], Group: g, State: withEra(now.UnixMilli())},
		wire.Entry{ID: u[1], Group: g, State: withEra(now.Add(time.Hour).UnixMilli())},
	)
	tx.Type = wire.TypeGroupUpdates
	rs := results(t, ask(t, c, sign(t, tx, gk)), peer, groupServer, tx)
	if rs[0].Status != wire.Accepted || rs[1].Status != wire.Refused || rs[1].Error != "malformed" {
		t.Fatalf("results %+v", rs)
	}
	found := false
	for _, m := range n.st.mail() {
		if m.Entry.ID == u[0] {
			found = true
			if m.Entry.Replica == nil || m.Entry.Replica.Group.Era != uint64(now.UnixMilli()) {
				t.Fatalf("the replica's era: %+v", m.Entry.Replica)
			}
		}
	}
	if !found {
		t.Fatal("the state of the present era was not stored")
	}
}
