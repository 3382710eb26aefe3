package homeserver_test

import (
	"bytes"
	"context"
	"encoding/json"

	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/client"
	"github.com/privateline/privateline/clients/go/e2ee"
)

// Groups through a real homeserver with the SDK's real encryption.

func access(s *client.Session) string { return string(s.State().Tokens.Access.Bytes()) }

// groupBodies opens the group's page as s and returns the bodies, oldest
// first, failing on any entry that did not open.
func groupBodies(t *testing.T, s *client.Session, id string) []string {
	t.Helper()
	items, err := s.GroupMessages(context.Background(), id, client.MessagesQuery{})
	if err != nil {
		t.Fatalf("%s reads %s: %v", s.Address(), id, err)
	}
	var out []string
	for _, it := range slices.Backward(items) {
		if it.Err != nil {
			t.Fatalf("%s: item %d: %v", s.Address(), it.Seq, it.Err)
		}
		out = append(out, it.Body())
	}
	return out
}

type groupParties struct {
	ts                       *testServer
	alice, bob, carol, dave  *client.Session
	aliceU, bobU, carolU, dU *sdkUser
}

func newGroupParties(t *testing.T) *groupParties {
	ts := startServer(t, testConfig(t))
	p := &groupParties{ts: ts}
	p.aliceU = sdkRegister(t, ts, sdkClient(t, ts, nil), "alice", "alice")
	p.bobU = sdkRegister(t, ts, sdkClient(t, ts, nil), "bob", "bob")
	p.carolU = sdkRegister(t, ts, sdkClient(t, ts, nil), "carol", "carol")
	p.dU = sdkRegister(t, ts, sdkClient(t, ts, nil), "dave", "carol") // never in a group with carol
	p.alice, p.bob, p.carol, p.dave = p.aliceU.login(t), p.bobU.login(t), p.carolU.login(t), p.dU.login(t)
	return p
}

// TestGroupsEndToEnd: alice makes a group with bob and carol; all three
// talk; carol is removed (new epoch, rekeyed by alice's client) and reads
// nothing new; roles; the owner leaves; a restart keeps everything.
func TestGroupsEndToEnd(t *testing.T) {
	ctx := context.Background()
	p := newGroupParties(t)
	ts, alice, bob, carol, dave := p.ts, p.alice, p.bob, p.carol, p.dave
	g, err := alice.CreateGroup(ctx, []privateline.Address{bob.Address(), carol.Address()})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(g.ID, "@hs.test") || g.Epoch != 1 || g.Role(alice.Address()) != "owner" || g.Role(carol.Address()) != "member" {
		t.Fatalf("group %+v", g)
	}
	for _, s := range []*client.Session{alice, bob, carol} {
		if _, err := s.SendGroup(ctx, g.ID, text("hello from "+string(s.Address())), client.SendOptions{}); err != nil {
			t.Fatalf("%s sends: %v", s.Address(), err)
		}
	}
	want := []string{"hello from " + string(alice.Address()), "hello from " + string(bob.Address()), "hello from " + string(carol.Address())}
	for _, s := range []*client.Session{alice, bob, carol} {
		if got := groupBodies(t, s, g.ID); !slices.Equal(got, want) {
			t.Fatalf("%s reads %q", s.Address(), got)
		}
	}
	if u, err := bob.UnreadCount(ctx); err != nil || u.Groups != 2 || u.Direct != 0 || u.Unread != 2 {
		t.Fatalf("bob's unread: %+v %v", u, err)
	}
	items, _ := bob.GroupMessages(ctx, g.ID, client.MessagesQuery{})
	if err := bob.MarkRead(ctx, items[0].ID); err != nil {
		t.Fatal(err)
	}
	if u, _ := bob.UnreadCount(ctx); u.Groups != 1 || u.Unread != 1 {
		t.Fatalf("bob's unread after reading one: %+v", u)
	}

	// The epoch-1 key, as bob's own view (only his wrap).
	r := ts.do("GET", "/api/groups/"+g.ID+"/key?epoch=1", access(bob), nil)
	if r.Status != http.StatusOK {
		t.Fatalf("bob's key view: %d %s", r.Status, r.Body)
	}
	gk1, err := e2ee.OpenGroupKey(r.Body, mustKeys(t, bob), mustLookup(t, bob, alice.Address()), e2ee.GroupKeyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var view struct {
		Keys       map[string]string `json:"keys"`
		KeyDigests map[string]string `json:"key_digests"`
	}
	if err := json.Unmarshal(r.Body, &view); err != nil || len(view.Keys) != 1 || len(view.KeyDigests) != 3 || view.Keys[bob.Bundle().Encryption.ID()] == "" {
		t.Fatalf("bob's view must hold his wrap only: %s", r.Body)
	}

	// Carol is removed: epoch 2, keyed by alice's client.
	if err := alice.RemoveMember(ctx, g.ID, carol.Address()); err != nil {
		t.Fatal(err)
	}
	g, err = bob.Group(ctx, g.ID)
	if err != nil || g.Epoch != 2 || len(g.Members) != 2 {
		t.Fatalf("after removal: %+v %v", g, err)
	}
	stale, err := e2ee.SealGroup(nil, mustKeys(t, bob), gk1, e2ee.Draft{SentAt: time.Now(), Message: text("old key")})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := stale.MarshalJSON()
	if r := ts.do("POST", "/api/groups/"+g.ID+"/messages", access(bob), raw); r.Status != http.StatusConflict || r.errorCode(t) != "stale_epoch" {
		t.Fatalf("old epoch: %d %s", r.Status, r.Body)
	}
	if _, err := bob.SendGroup(ctx, g.ID, text("after carol"), client.SendOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"", "/key", "/key?epoch=2", "/key?epoch=1", "/messages"} {
		if r := ts.do("GET", "/api/groups/"+g.ID+path, access(carol), nil); r.Status != http.StatusNotFound {
			t.Errorf("carol GET %s: %d", path, r.Status)
		}
	}
	if _, err := carol.GroupMessages(ctx, g.ID, client.MessagesQuery{}); !privateline.Is(privateline.NotExist, err) {
		t.Errorf("carol reads the group: %v", err)
	}
	if got := groupBodies(t, alice, g.ID); !slices.Equal(got, append(want, "after carol")) {
		t.Fatalf("alice reads %q", got)
	}
	mine, _ := carol.Messages(ctx, client.MessagesQuery{})
	if len(mine) != 3 {
		t.Fatalf("carol's mailbox has %d items; the new message must not be there", len(mine))
	}

	// Roles: a member neither adds, removes nor distributes keys.
	if _, err := bob.AddMember(ctx, g.ID, dave.Address(), ""); !privateline.Is(privateline.Forbidden, err) {
		t.Errorf("member adds: %v", err)
	}
	if err := bob.RemoveMember(ctx, g.ID, alice.Address()); !privateline.Is(privateline.Forbidden, err) {
		t.Errorf("member removes: %v", err)
	}
	if _, err := bob.Rekey(ctx, g.ID); !privateline.Is(privateline.Forbidden, err) {
		t.Errorf("member rekeys: %v", err)
	}
	_, bobDoc, err := e2ee.SealGroupKey(nil, mustKeys(t, bob), g.ID, g.Epoch, time.Now(), []*e2ee.KeyBundle{bob.Bundle(), mustLookup(t, bob, alice.Address())})
	if err != nil {
		t.Fatal(err)
	}
	if r := ts.do("PUT", "/api/groups/"+g.ID+"/key", access(bob), bobDoc); r.Status != http.StatusForbidden {
		t.Errorf("member uploads a key: %d %s", r.Status, r.Body)
	}
	// The owner makes bob an admin; bob adds dave (epoch 3, bob's client rekeys).
	if _, err := alice.SetRole(ctx, g.ID, bob.Address(), "admin"); err != nil {
		t.Fatal(err)
	}
	if g, err = bob.AddMember(ctx, g.ID, dave.Address(), ""); err != nil || g.Epoch != 3 {
		t.Fatalf("admin adds: %+v %v", g, err)
	}
	if _, err := bob.AddMember(ctx, g.ID, dave.Address(), ""); !privateline.Is(privateline.Exist, err) {
		t.Errorf("adding a member twice: %v", err)
	}
	if r := ts.do("GET", "/api/groups/"+g.ID+"/key?epoch=2", access(dave), nil); r.Status != http.StatusNotFound {
		t.Errorf("dave reads an epoch before he joined: %d", r.Status)
	}
	// The owner leaves: bob, the only admin, owns the group (epoch 4);
	// his next send distributes the key of the new epoch.
	if err := alice.Leave(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	if g, err = dave.Group(ctx, g.ID); err != nil || g.Role(bob.Address()) != "owner" || g.Epoch != 4 {
		t.Fatalf("after the owner left: %+v %v", g, err)
	}
	if _, err := bob.SendGroup(ctx, g.ID, text("bob owns it"), client.SendOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := groupBodies(t, dave, g.ID); !slices.Equal(got, []string{"bob owns it"}) {
		t.Fatalf("dave reads %q", got)
	}
	if gs, err := alice.Groups(ctx); err != nil || len(gs) != 0 {
		t.Fatalf("alice's groups after leaving: %+v %v", gs, err)
	}

	// A restart keeps groups, keys and messages; a new device reads them.
	ts.restart()
	bob2, err := sdkClient(t, ts, nil).Login(ctx, p.bobU.name, p.bobU.password)
	if err != nil {
		t.Fatal(err)
	}
	if got := groupBodies(t, bob2, g.ID); len(got) != 5 || got[4] != "bob owns it" {
		t.Fatalf("after restart bob reads %q", got)
	}
	if gs, err := bob2.Groups(ctx); err != nil || len(gs) != 1 || gs[0].Epoch != 4 {
		t.Fatalf("bob's groups after restart: %+v %v", gs, err)
	}
}

// TestGroupKeyUploadRules: the first document of an epoch wins, a
// document whose key id for a member is not the member's current one is
// 409 members_changed, a document for another epoch 409 stale_epoch.
func TestGroupKeyUploadRules(t *testing.T) {
	p := newGroupParties(t)
	ts, alice, bob := p.ts, p.alice, p.bob
	r := ts.do("POST", "/api/groups", access(alice), map[string]any{"members": []string{string(bob.Address())}})
	if r.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	id := r.json(t)["id"].(string)
	seal := func(epoch int64, bobBundle *e2ee.KeyBundle) []byte {
		_, doc, err := e2ee.SealGroupKey(nil, mustKeys(t, alice), id, epoch, time.Now(), []*e2ee.KeyBundle{alice.Bundle(), bobBundle})
		if err != nil {
			t.Fatal(err)
		}
		return doc
	}
	bobNow := mustLookup(t, alice, bob.Address())
	old := newTestKeys(t, bob.Address(), "carol", time.Now()).Bundle // not bob's current key
	put := func(doc []byte) *response { return ts.do("PUT", "/api/groups/"+id+"/key", access(alice), doc) }
	if r := put(seal(1, old)); r.Status != http.StatusConflict || r.errorCode(t) != "members_changed" {
		t.Fatalf("stale key id: %d %s", r.Status, r.Body)
	}
	if r := put(seal(2, bobNow)); r.Status != http.StatusConflict || r.errorCode(t) != "stale_epoch" {
		t.Fatalf("future epoch: %d %s", r.Status, r.Body)
	}
	doc := seal(1, bobNow)
	if r := put(doc); r.Status != http.StatusCreated {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	if r := put(doc); r.Status != http.StatusOK {
		t.Fatalf("same again: %d %s", r.Status, r.Body)
	}
	if r := put(seal(1, bobNow)); r.Status != http.StatusConflict || r.errorCode(t) != "conflict" {
		t.Fatalf("another document: %d %s", r.Status, r.Body)
	}
	if r := put([]byte(`{"v":1}`)); r.Status != http.StatusBadRequest {
		t.Fatalf("malformed: %d %s", r.Status, r.Body)
	}
	// bob's client opens the uploaded key and sends with it.
	if _, err := bob.SendGroup(context.Background(), id, text("with alice's key"), client.SendOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := groupBodies(t, alice, id); !slices.Equal(got, []string{"with alice's key"}) {
		t.Fatalf("alice reads %q", got)
	}
}

// TestGroupsHiddenFromOutsiders walks every group route: a non-member gets
// 404 (as for a group that does not exist), an anonymous caller 401.
func TestGroupsHiddenFromOutsiders(t *testing.T) {
	p := newGroupParties(t)
	ts, alice, bob, dave := p.ts, p.alice, p.bob, p.dave
	g, err := alice.CreateGroup(context.Background(), []privateline.Address{bob.Address()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.SendGroup(context.Background(), g.ID, text("secret"), client.SendOptions{}); err != nil {
		t.Fatal(err)
	}
	bodies := map[string]any{
		"POST /api/groups/:id/members":            map[string]any{"address": string(dave.Address())},
		"PATCH /api/groups/:id":                   map[string]any{"meta": "bWV0YQ=="},
		"PATCH /api/groups/:id/members/:address":  map[string]any{"role": "admin"},
		"PUT /api/groups/:id/key":                 `{}`,
		"POST /api/groups/:id/messages":           `{}`,
		"PUT /api/groups/:id/retention":           map[string]any{"seconds": 60},
		"POST /api/groups/:id/seen_epoch":         map[string]any{"seen_epoch": 5},
		"POST /api/groups":                        map[string]any{},
		"DELETE /api/groups/:id/members/:address": nil,
		"GET /api/groups/:id/key":                 nil,
		"GET /api/groups/:id/messages":            nil,
		"GET /api/groups/:id":                     nil,
		"GET /api/groups":                         nil,
	}
	n := 0
	for _, rt := range ts.srv.API().Routes() {
		if !strings.HasPrefix(rt.Path, "/api/groups") {
			continue
		}
		n++
		key := rt.Method + " " + rt.Path
		body, ok := bodies[key]
		if !ok {
			t.Errorf("no body for %s", key)
		}
		for _, gid := range []string{g.ID, "0123456789abcdef0123456789abcdef@hs.test"} {
			path := strings.NewReplacer(":id", url.PathEscape(gid), ":address", url.PathEscape(string(bob.Address()))).Replace(rt.Path)
			if r := ts.do(rt.Method, path, "", body); r.Status != http.StatusUnauthorized {
				t.Errorf("anonymous %s %s: %d", rt.Method, path, r.Status)
			}
			if !strings.Contains(rt.Path, ":id") {
				continue
			}
			if r := ts.do(rt.Method, path, access(dave), body); r.Status != http.StatusNotFound || r.errorCode(t) != "not_found" {
				t.Errorf("outsider %s %s: %d %s", rt.Method, path, r.Status, r.Body)
			}
		}
	}
	if n != len(bodies) {
		t.Errorf("walked %d group routes, expected %d", n, len(bodies))
	}
	// Nothing the outsider did changed the group.
	if g2, err := alice.Group(context.Background(), g.ID); err != nil || g2.Epoch != g.Epoch || len(g2.Members) != 2 || g2.Meta != "" {
		t.Fatalf("group after the walk: %+v %v", g2, err)
	}

}

// Cross-user cases of the group routes: bob's valid token on alice's group
// — one with a key document and a message, so that reads have something
// to leak — is 404 everywhere and changes nothing; bob's own group calls
// touch only his groups.
func init() {
	type aliceGroup struct {
		id      string
		key     []byte // alice's view of the epoch-1 key document
		message string // the id of her message in it
		page    []byte // GET …/messages as alice sees it
	}
	// makeAliceGroup creates a group of alice's, distributes its key and
	// posts a message. alice's registered bundle holds the fixed RSA key
	// of party "alice", so keys made here with that RSA key wrap to it.
	makeAliceGroup := func(t *testing.T, ts *testServer, alice *account) *aliceGroup {
		t.Helper()
		r := ts.do("POST", "/api/groups", alice.Access, map[string]any{"meta": "YWxpY2U="})
		if r.Status != http.StatusCreated {
			t.Fatalf("alice creates a group: %d %s", r.Status, r.Body)
		}
		g := &aliceGroup{id: r.json(t)["id"].(string)}
		k := newTestKeys(t, privateline.Address(alice.Username+"@hs.test"), "alice", time.Now())
		gk, doc, err := e2ee.SealGroupKey(nil, k.Keys, g.id, 1, time.Now(), []*e2ee.KeyBundle{k.Bundle})
		if err != nil {
			t.Fatal(err)
		}
		expectHTTPStatus(t, ts.do("PUT", "/api/groups/"+g.id+"/key", alice.Access, doc), http.StatusCreated, "alice's key document")
		env, err := e2ee.SealGroup(nil, k.Keys, gk, e2ee.Draft{SentAt: time.Now(), Message: text("for the group")})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := env.MarshalJSON()
		expectHTTPStatus(t, ts.do("POST", "/api/groups/"+g.id+"/messages", alice.Access, raw), http.StatusCreated, "alice's group message")
		g.message = env.Header.ID
		g.key, g.page = ts.do("GET", "/api/groups/"+g.id+"/key", alice.Access, nil).Body, ts.do("GET", "/api/groups/"+g.id+"/messages", alice.Access, nil).Body
		return g
	}
	unchanged := func(t *testing.T, ts *testServer, alice *account, g *aliceGroup) {
		t.Helper()
		r := ts.do("GET", "/api/groups/"+g.id, alice.Access, nil)
		if m := r.json(t); r.Status != http.StatusOK || m["epoch"] != float64(1) || m["meta"] != "YWxpY2U=" || m["retention_seconds"] != float64(0) || len(m["members"].([]any)) != 1 {
			t.Fatalf("alice's group changed: %d %s", r.Status, r.Body)
		}
		if r := ts.do("GET", "/api/groups/"+g.id+"/key", alice.Access, nil); r.Status != http.StatusOK || !bytes.Equal(r.Body, g.key) {
			t.Fatalf("alice's key document changed: %d %s", r.Status, r.Body)
		}
		if r := ts.do("GET", "/api/groups/"+g.id+"/messages", alice.Access, nil); r.Status != http.StatusOK || !bytes.Equal(r.Body, g.page) || !strings.Contains(string(r.Body), g.message) {
			t.Fatalf("alice's group messages changed: %d %s", r.Status, r.Body)
		}
	}
	hidden := func(method, suffix string, body func(t *testing.T, g *aliceGroup, bob *account) any) func(t *testing.T, ts *testServer, alice, bob *account) {
		return func(t *testing.T, ts *testServer, alice, bob *account) {
			g := makeAliceGroup(t, ts, alice)
			var b any
			if body != nil {
				b = body(t, g, bob)
			}
			// The member path names alice, and bob himself (as if he were
			// in the group).
			for _, who := range []string{alice.Username, bob.Username} {
				path := strings.NewReplacer(":address", who+"@hs.test").Replace("/api/groups/" + g.id + suffix)
				r := ts.do(method, path, bob.Access, b)
				expectAPIError(t, r, http.StatusNotFound, "not_found", method+" "+path+" with bob's token")
				if strings.Contains(string(r.Body), g.message) || strings.Contains(string(r.Body), alice.Username) {
					t.Fatalf("the refusal names alice's group's content: %s", r.Body)
				}
				if !strings.Contains(suffix, ":address") {
					break
				}
			}
			if method == "GET" && suffix == "/key" {
				expectAPIError(t, ts.do("GET", "/api/groups/"+g.id+"/key?epoch=1", bob.Access, nil), http.StatusNotFound, "not_found", "bob GET key?epoch=1")
			}
			if method == "GET" && suffix == "/messages" {
				expectAPIError(t, ts.do("GET", "/api/groups/"+g.id+"/messages?after=0", bob.Access, nil), http.StatusNotFound, "not_found", "bob GET messages?after=0")
			}
			unchanged(t, ts, alice, g)
		}
	}
	// Bodies that would be accepted from a member: bob's own key document
	// and message for alice's group and epoch.
	bobsKey := func(t *testing.T, g *aliceGroup, bob *account) any {
		k := newTestKeys(t, privateline.Address(bob.Username+"@hs.test"), "bob", time.Now())
		_, doc, err := e2ee.SealGroupKey(nil, k.Keys, g.id, 1, time.Now(), []*e2ee.KeyBundle{k.Bundle})
		if err != nil {
			t.Fatal(err)
		}
		return doc
	}
	bobsMessage := func(t *testing.T, g *aliceGroup, bob *account) any {
		k := newTestKeys(t, privateline.Address(bob.Username+"@hs.test"), "bob", time.Now())
		gk, _, err := e2ee.SealGroupKey(nil, k.Keys, g.id, 1, time.Now(), []*e2ee.KeyBundle{k.Bundle})
		if err != nil {
			t.Fatal(err)
		}
		env, err := e2ee.SealGroup(nil, k.Keys, gk, e2ee.Draft{SentAt: time.Now(), Message: text("bob was here")})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := env.MarshalJSON()
		return raw
	}
	fixed := func(v any) func(*testing.T, *aliceGroup, *account) any {
		return func(*testing.T, *aliceGroup, *account) any { return v }
	}
	addBob := func(t *testing.T, g *aliceGroup, bob *account) any {
		return map[string]any{"address": bob.Username + "@hs.test", "role": "admin"}
	}
	crossUserCases["GET /api/groups/:id"] = hidden("GET", "", nil)
	crossUserCases["PATCH /api/groups/:id"] = hidden("PATCH", "", fixed(map[string]any{"meta": "Ym9i"}))
	crossUserCases["POST /api/groups/:id/members"] = hidden("POST", "/members", addBob)
	crossUserCases["PATCH /api/groups/:id/members/:address"] = hidden("PATCH", "/members/:address", fixed(map[string]any{"role": "admin"}))
	crossUserCases["DELETE /api/groups/:id/members/:address"] = hidden("DELETE", "/members/:address", nil)
	crossUserCases["PUT /api/groups/:id/key"] = hidden("PUT", "/key", bobsKey)
	crossUserCases["GET /api/groups/:id/key"] = hidden("GET", "/key", nil)
	crossUserCases["POST /api/groups/:id/messages"] = hidden("POST", "/messages", bobsMessage)
	crossUserCases["GET /api/groups/:id/messages"] = hidden("GET", "/messages", nil)
	crossUserCases["PUT /api/groups/:id/retention"] = hidden("PUT", "/retention", fixed(map[string]any{"seconds": 1}))
	crossUserCases["POST /api/groups/:id/seen_epoch"] = hidden("POST", "/seen_epoch", fixed(map[string]any{"seen_epoch": 5}))
	crossUserCases["POST /api/groups"] = func(t *testing.T, ts *testServer, alice, bob *account) {
		r := ts.do("POST", "/api/groups", bob.Access, map[string]any{})
		if r.Status != http.StatusCreated || !strings.Contains(string(r.Body), bob.Username+"@hs.test") || strings.Contains(string(r.Body), alice.Username) {
			t.Fatalf("bob's group: %d %s", r.Status, r.Body)
		}
	}
	crossUserCases["GET /api/groups"] = func(t *testing.T, ts *testServer, alice, bob *account) {
		makeAliceGroup(t, ts, alice)
		r := ts.do("GET", "/api/groups", bob.Access, nil)
		if r.Status != http.StatusOK || strings.Contains(string(r.Body), alice.Username) {
			t.Fatalf("bob lists: %d %s", r.Status, r.Body)
		}
	}
}
