package homeserver_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/e2ee"
	"github.com/privateline/privateline/homeserver"
)

// Direct messages through a real server, sealed and opened with the SDK.

// sealed is an envelope made by the SDK and its wire form.
type sealed struct {
	Env *e2ee.Envelope
	Raw []byte
}

func (s sealed) ID() string { return s.Env.Header.ID }

// sealFor seals body from sender to the bundles of to; edit may change the
// draft (id, times).
func sealFor(t testing.TB, from *keyAccount, to []*e2ee.KeyBundle, body string, edit func(*e2ee.Draft)) sealed {
	t.Helper()
	d := e2ee.Draft{
		Conversation: "dm",
		SentAt:       time.Now(),
		Message:      &e2ee.Message{Type: "text", Body: body},
	}
	if edit != nil {
		edit(&d)
	}
	env, err := e2ee.SealDirect(nil, from.Keys.Keys, to, d)
	if err != nil {
		t.Fatalf("SealDirect: %v", err)
	}
	raw, err := env.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return sealed{env, raw}
}

func sealTo(t testing.TB, from *keyAccount, to *keyAccount, body string) sealed {
	t.Helper()
	return sealFor(t, from, []*e2ee.KeyBundle{to.Keys.Bundle}, body, nil)
}

func (ts *testServer) send(from *keyAccount, s sealed) *response {
	ts.t.Helper()
	return ts.do("POST", "/api/messages", from.Access, s.Raw)
}

// sendOK sends and returns the sender's sequence number.
func (ts *testServer) sendOK(from *keyAccount, s sealed) uint64 {
	ts.t.Helper()
	r := ts.send(from, s)
	if r.Status != http.StatusCreated {
		ts.t.Fatalf("POST /api/messages: %d %s", r.Status, r.Body)
	}
	var a struct {
		ID  string `json:"id"`
		Seq uint64 `json:"seq"`
	}
	if err := json.Unmarshal(r.Body, &a); err != nil || a.ID != s.ID() || a.Seq == 0 {
		ts.t.Fatalf("POST /api/messages answered %s", r.Body)
	}
	return a.Seq
}

type mailItem struct {
	Seq       uint64          `json:"seq"`
	Envelope  json.RawMessage `json:"envelope"`
	Direction string          `json:"direction"`
	Read      *bool           `json:"read"`
	ReadBy    []string        `json:"read_by"`
}

func (m mailItem) id(t testing.TB) string {
	t.Helper()
	e, err := e2ee.ParseEnvelope(m.Envelope)
	if err != nil {
		t.Fatalf("served envelope does not parse: %v", err)
	}
	return e.Header.ID
}

// mailbox answers GET /api/messages?query for a.
func (ts *testServer) mailbox(a *keyAccount, query string) []mailItem {
	ts.t.Helper()
	r := ts.do("GET", "/api/messages?"+query, a.Access, nil)
	if r.Status != http.StatusOK {
		ts.t.Fatalf("GET /api/messages?%s: %d %s", query, r.Status, r.Body)
	}
	var page struct {
		Messages []mailItem `json:"messages"`
	}
	if err := json.Unmarshal(r.Body, &page); err != nil {
		ts.t.Fatal(err)
	}
	return page.Messages
}

func (ts *testServer) unread(a *keyAccount) [3]int {
	ts.t.Helper()
	r := ts.do("GET", "/api/unread_count", a.Access, nil)
	if r.Status != http.StatusOK {
		ts.t.Fatalf("GET /api/unread_count: %d %s", r.Status, r.Body)
	}
	var c struct{ Unread, Direct, Groups int }
	if err := json.Unmarshal(r.Body, &c); err != nil {
		ts.t.Fatal(err)
	}
	return [3]int{c.Unread, c.Direct, c.Groups}
}

// openItem verifies and decrypts a served envelope as me, from sender.
func openItem(t testing.TB, it mailItem, me, sender *keyAccount) string {
	t.Helper()
	e, err := e2ee.ParseEnvelope(it.Envelope)
	if err != nil {
		t.Fatalf("ParseEnvelope: %v", err)
	}
	m, err := e2ee.OpenDirect(e, me.Keys.Keys, sender.Keys.Bundle, e2ee.OpenOptions{})
	if err != nil {
		t.Fatalf("OpenDirect: %v", err)
	}
	return m.Body
}

func seqs(items []mailItem) []uint64 {
	var s []uint64
	for _, it := range items {
		s = append(s, it.Seq)
	}
	return s
}

func TestMessagesSendReceive(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig(t))
	alice := ts.registerWithKeys("msalice", "alice")
	bob := ts.registerWithKeys("msbob", "bob")
	carol := ts.registerWithKeys("mscarol", "carol")

	m := sealTo(t, alice, bob, "hello bob")
	if seq := ts.sendOK(alice, m); seq != 1 {
		t.Errorf("alice's first sent copy has seq %d, want 1", seq)
	}
	in := ts.mailbox(bob, "")
	if len(in) != 1 || in[0].Direction != "in" || in[0].Seq != 1 || in[0].Read == nil || *in[0].Read {
		t.Fatalf("bob's mailbox: %+v", in)
	}
	if got := openItem(t, in[0], bob, alice); got != "hello bob" {
		t.Errorf("bob opened %q", got)
	}
	out := ts.mailbox(alice, "")
	if len(out) != 1 || out[0].Direction != "out" || out[0].Read != nil || out[0].ReadBy == nil {
		t.Fatalf("alice's mailbox: %+v", out)
	}
	if got := openItem(t, out[0], alice, alice); got != "hello bob" {
		t.Errorf("alice opened her sent copy as %q", got)
	}
	if ts.unread(bob) != [3]int{1, 1, 0} || ts.unread(alice) != [3]int{0, 0, 0} {
		t.Errorf("unread: bob %v, alice %v", ts.unread(bob), ts.unread(alice))
	}
	if got := ts.mailbox(carol, ""); len(got) != 0 {
		t.Errorf("carol, not a recipient, sees %d messages", len(got))
	}

	// A retry of the same bytes is the same answer and no second copy.
	r := ts.send(alice, m)
	expectHTTPStatus(t, r, http.StatusOK, "retrying a sent message")
	if a := r.json(t); a["seq"] != float64(1) || a["id"] != m.ID() {
		t.Errorf("retry answered %s", r.Body)
	}
	if n := len(ts.mailbox(bob, "")); n != 1 {
		t.Errorf("after a retry bob has %d messages", n)
	}
	// Other content under the same id.
	other := sealFor(t, alice, []*e2ee.KeyBundle{bob.Keys.Bundle}, "something else", func(d *e2ee.Draft) { d.ID = m.ID() })
	expectAPIError(t, ts.send(alice, other), http.StatusConflict, "conflict", "other content under a sent id")
	// Another sender reusing the id.
	theft := sealFor(t, carol, []*e2ee.KeyBundle{bob.Keys.Bundle}, "x", func(d *e2ee.Draft) { d.ID = m.ID() })
	expectAPIError(t, ts.send(carol, theft), http.StatusConflict, "conflict", "another sender reusing an id")

	// The header must be the caller's, for local users (or remote ones where the server federates), not expired.
	expectAPIError(t, ts.send(bob, sealTo(t, alice, carol, "forged")), http.StatusForbidden, "forbidden", "posting another user's envelope")
	remote := newTestKeys(t, "someone@elsewhere.test", "carol", time.Now())
	r = ts.send(alice, sealFor(t, alice, []*e2ee.KeyBundle{remote.Bundle}, "far", nil))
	expectAPIError(t, r, http.StatusBadRequest, "invalid_request", "a remote recipient")
	if !strings.Contains(r.errorMessage(t), "does not federate") {
		t.Errorf("remote recipient refused with %q", r.errorMessage(t))
	}
	ghost := newTestKeys(t, privateline.Address(uniqueName("ghost")+"@hs.test"), "carol", time.Now())
	expectAPIError(t, ts.send(alice, sealFor(t, alice, []*e2ee.KeyBundle{ghost.Bundle}, "boo", nil)), http.StatusNotFound, "not_found", "an unknown recipient")
	past := sealFor(t, alice, []*e2ee.KeyBundle{bob.Keys.Bundle}, "late", func(d *e2ee.Draft) {
		d.SentAt, d.ExpiresAt = time.Now().Add(-time.Hour), time.Now().Add(-time.Minute)
	})
	expectAPIError(t, ts.send(alice, past), http.StatusBadRequest, "invalid_request", "an expired envelope")
	future := sealFor(t, alice, []*e2ee.KeyBundle{bob.Keys.Bundle}, "soon", func(d *e2ee.Draft) { d.SentAt = time.Now().Add(time.Hour) })
	expectAPIError(t, ts.send(alice, future), http.StatusBadRequest, "invalid_request", "sent_at an hour ahead")
	big := append([]byte(`{"pad":"`), append([]byte(strings.Repeat("x", 256<<10)), `"}`...)...)
	expectAPIError(t, ts.do("POST", "/api/messages", alice.Access, big), http.StatusRequestEntityTooLarge, "too_large", "an envelope over 256 KiB")
	var mm map[string]any
	json.Unmarshal(m.Raw, &mm)
	mm["extra"] = 1
	expectAPIError(t, ts.do("POST", "/api/messages", alice.Access, mm), http.StatusBadRequest, "invalid_request", "an unknown envelope member")
	expectUnauthenticated(t, ts.do("POST", "/api/messages", "", m.Raw), "sending without a token")

	// Two recipients: both get it, the sender once.
	multi := sealFor(t, alice, []*e2ee.KeyBundle{bob.Keys.Bundle, carol.Keys.Bundle}, "to you both", nil)
	if seq := ts.sendOK(alice, multi); seq != 2 {
		t.Errorf("alice's second sent copy has seq %d, want 2", seq)
	}
	if got := openItem(t, ts.mailbox(carol, "")[0], carol, alice); got != "to you both" {
		t.Errorf("carol opened %q", got)
	}
	if got := ts.mailbox(bob, "limit=1")[0]; got.Seq != 2 || openItem(t, got, bob, alice) != "to you both" {
		t.Errorf("bob's newest: %+v", got)
	}
}

func (r *response) errorMessage(t testing.TB) string {
	t.Helper()
	e, _ := r.json(t)["error"].(map[string]any)
	msg, _ := e["message"].(string)
	return msg
}

func TestMessagesPaging(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig(t))
	alice := ts.registerWithKeys("mpalice", "alice")
	bob := ts.registerWithKeys("mpbob", "bob")
	carol := ts.registerWithKeys("mpcarol", "carol")
	var fromAlice []string
	for i := range 5 {
		m := sealTo(t, alice, bob, fmt.Sprint("a", i))
		ts.sendOK(alice, m)
		fromAlice = append(fromAlice, m.ID())
		ts.sendOK(carol, sealTo(t, carol, bob, fmt.Sprint("c", i)))
	}
	ts.sendOK(bob, sealTo(t, bob, alice, "reply"))

	all := ts.mailbox(bob, "")
	if got := seqs(all); !slices.Equal(got, []uint64{11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1}) {
		t.Fatalf("bob's mailbox seqs %v, want 11…1 newest first", got)
	}
	if got := seqs(ts.mailbox(bob, "limit=3&offset=2")); !slices.Equal(got, []uint64{9, 8, 7}) {
		t.Errorf("limit=3&offset=2: %v", got)
	}
	if got := seqs(ts.mailbox(bob, "after=8")); !slices.Equal(got, []uint64{9, 10, 11}) {
		t.Errorf("after=8: %v (want ascending)", got)
	}
	if got := seqs(ts.mailbox(bob, "after=2&limit=2")); !slices.Equal(got, []uint64{3, 4}) {
		t.Errorf("after=2&limit=2: %v", got)
	}
	if got := ts.mailbox(bob, "after=11"); len(got) != 0 {
		t.Errorf("after the last: %v", seqs(got))
	}
	// One conversation: alice's five and bob's reply, newest first.
	conv := ts.mailbox(bob, "with="+string(alice.Address))
	if len(conv) != 6 || conv[0].Direction != "out" {
		t.Fatalf("conversation with alice: %d items %+v", len(conv), conv)
	}
	for i, it := range conv[1:] {
		if want := fromAlice[4-i]; it.id(t) != want || openItem(t, it, bob, alice) != fmt.Sprint("a", 4-i) {
			t.Errorf("conversation item %d is %s", i+1, it.id(t))
		}
	}
	// bob's seqs: alice's at 1, 3, 5, 7, 9, carol's at 2…10, his reply 11.
	if got := ts.mailbox(bob, "with="+string(alice.Address)+"&after=5"); !slices.Equal(seqs(got), []uint64{7, 9, 11}) {
		t.Errorf("with alice after 5: %v", seqs(got))
	}
	// alice's side: five sent, one received, in one conversation.
	if got := ts.mailbox(alice, "with="+string(bob.Address)); len(got) != 6 || got[0].Direction != "in" {
		t.Errorf("alice's conversation with bob: %d items", len(got))
	}
	if got := ts.mailbox(alice, "with="+string(carol.Address)); len(got) != 0 {
		t.Errorf("alice's conversation with carol: %d items", len(got))
	}
	for _, q := range []string{"limit=0", "limit=101", "limit=x", "offset=-1", "after=-1", "with=nobody", "limit=1&limit=2", "page=2"} {
		expectAPIError(t, ts.do("GET", "/api/messages?"+q, bob.Access, nil), http.StatusBadRequest, "invalid_request", "GET /api/messages?"+q)
	}
	expectUnauthenticated(t, ts.do("GET", "/api/messages", "", nil), "reading without a token")
}

func TestMessagesReadAndDelete(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig(t))
	alice := ts.registerWithKeys("mdalice", "alice")
	bob := ts.registerWithKeys("mdbob", "bob")
	carol := ts.registerWithKeys("mdcarol", "carol")
	eve := ts.registerWithKeys("mdeve", "carol")

	both := sealFor(t, alice, []*e2ee.KeyBundle{bob.Keys.Bundle, carol.Keys.Bundle}, "hi both", nil)
	ts.sendOK(alice, both)
	second := sealTo(t, alice, bob, "second")
	ts.sendOK(alice, second)
	if got := ts.unread(bob); got != [3]int{2, 2, 0} {
		t.Fatalf("bob's unread %v", got)
	}

	// Read: once, by a recipient only.
	path := "/api/messages/" + both.ID() + "/read"
	for range 2 {
		expectHTTPStatus(t, ts.do("POST", path, bob.Access, nil), http.StatusNoContent, "bob reads")
	}
	if got := ts.unread(bob); got != [3]int{1, 1, 0} {
		t.Errorf("bob's unread after reading one twice: %v", got)
	}
	expectAPIError(t, ts.do("POST", path, alice.Access, nil), http.StatusNotFound, "not_found", "the sender marking her own message read")
	expectAPIError(t, ts.do("POST", path, eve.Access, nil), http.StatusNotFound, "not_found", "an outsider marking a message read")
	expectAPIError(t, ts.do("POST", "/api/messages/"+strings.Repeat("0", 32)+"/read", bob.Access, nil), http.StatusNotFound, "not_found", "reading an unknown message")
	expectAPIError(t, ts.do("POST", "/api/messages/nothex/read", bob.Access, nil), http.StatusNotFound, "not_found", "reading a malformed id")
	expectUnauthenticated(t, ts.do("POST", path, "", nil), "reading without a token")
	for _, it := range ts.mailbox(alice, "") {
		want := []string(nil)
		if it.id(t) == both.ID() {
			want = []string{string(bob.Address)}
		}
		if !slices.Equal(it.ReadBy, want) && !(len(want) == 0 && len(it.ReadBy) == 0) {
			t.Errorf("alice's copy of %s: read_by %v, want %v", it.id(t), it.ReadBy, want)
		}
	}
	if it := ts.mailbox(bob, "")[1]; it.id(t) != both.ID() || !*it.Read {
		t.Errorf("bob's copy is not marked read: %+v", it)
	}
	if it := ts.mailbox(carol, "")[0]; *it.Read {
		t.Error("carol's copy is marked read by bob's reading")
	}

	// An outsider can neither see nor delete.
	del := func(a *keyAccount, id string) *response { return ts.do("DELETE", "/api/messages/"+id, a.Access, nil) }
	expectAPIError(t, del(eve, both.ID()), http.StatusNotFound, "not_found", "an outsider deleting")
	expectUnauthenticated(t, ts.do("DELETE", "/api/messages/"+both.ID(), "", nil), "deleting without a token")

	// A recipient removes only their own copy.
	expectHTTPStatus(t, del(carol, both.ID()), http.StatusNoContent, "carol removes her copy")
	expectAPIError(t, del(carol, both.ID()), http.StatusNotFound, "not_found", "carol removing her copy twice")
	expectAPIError(t, ts.do("POST", path, carol.Access, nil), http.StatusNotFound, "not_found", "reading a removed copy")
	if n := len(ts.mailbox(carol, "")); n != 0 || ts.unread(carol) != [3]int{} {
		t.Errorf("carol after removing: %d messages, unread %v", n, ts.unread(carol))
	}
	if n := len(ts.mailbox(bob, "")); n != 2 {
		t.Errorf("carol's removal took bob's copy: %d left", n)
	}
	if n := len(ts.mailbox(alice, "")); n != 2 {
		t.Errorf("carol's removal took alice's copy: %d left", n)
	}

	// The sender deletes for everyone; counters follow (the unread second).
	expectHTTPStatus(t, del(alice, second.ID()), http.StatusNoContent, "alice deletes for everyone")
	if got := ts.unread(bob); got != [3]int{0, 0, 0} {
		t.Errorf("bob's unread after alice deleted his unread message: %v", got)
	}
	for _, a := range []*keyAccount{alice, bob} {
		for _, it := range ts.mailbox(a, "") {
			if it.id(t) == second.ID() {
				t.Errorf("%s still has the deleted message", a.Username)
			}
		}
		if n := len(ts.mailbox(a, "with="+string(map[bool]privateline.Address{true: bob.Address, false: alice.Address}[a == alice]))); n != 1 {
			t.Errorf("%s's conversation index holds %d entries, want 1", a.Username, n)
		}
	}
	expectAPIError(t, del(bob, second.ID()), http.StatusNotFound, "not_found", "deleting a deleted message")
	// A recipient deleting removes only their copy even of a read message.
	expectHTTPStatus(t, del(bob, both.ID()), http.StatusNoContent, "bob removes his copy")
	if n := len(ts.mailbox(alice, "")); n != 1 {
		t.Errorf("alice's sent copy went with bob's: %d left", n)
	}
	expectHTTPStatus(t, del(alice, both.ID()), http.StatusNoContent, "alice deletes the rest")
	if n := len(ts.mailbox(alice, "")); n != 0 {
		t.Errorf("alice has %d messages after deleting all", n)
	}
}

func TestMessagesExpiry(t *testing.T) {
	t.Parallel()
	clock := newStepClock()
	ts := startServer(t, testConfig(t), withStepClock(clock))
	alice := ts.registerWithKeys("mxalice", "alice")
	bob := ts.registerWithKeys("mxbob", "bob")
	start := clock.Now()
	short := sealFor(t, alice, []*e2ee.KeyBundle{bob.Keys.Bundle}, "gone soon", func(d *e2ee.Draft) {
		d.SentAt, d.ExpiresAt = start, start.Add(time.Minute)
	})
	long := sealFor(t, alice, []*e2ee.KeyBundle{bob.Keys.Bundle}, "stays", func(d *e2ee.Draft) {
		d.SentAt, d.ExpiresAt = start, start.Add(5*time.Minute)
	})
	forever := sealTo(t, alice, bob, "forever")
	for _, m := range []sealed{short, long, forever} {
		ts.sendOK(alice, m)
	}
	if n := homeserver.SweepMessages(ts.srv); n != 0 {
		t.Fatalf("the sweep deleted %d unexpired messages", n)
	}
	if len(ts.mailbox(bob, "")) != 3 {
		t.Fatal("bob does not have three messages")
	}

	clock.Advance(time.Minute) // exactly at expires_at: expired
	for _, a := range []*keyAccount{alice, bob} {
		for _, q := range []string{"", "after=0", "with=" + string(map[bool]privateline.Address{true: bob.Address, false: alice.Address}[a == alice])} {
			for _, it := range ts.mailbox(a, q) {
				if it.id(t) == short.ID() {
					t.Errorf("%s is served an expired message (query %q) before the sweep", a.Username, q)
				}
			}
		}
	}
	expectAPIError(t, ts.do("POST", "/api/messages/"+short.ID()+"/read", bob.Access, nil), http.StatusNotFound, "not_found", "reading an expired message")
	expectAPIError(t, ts.do("DELETE", "/api/messages/"+short.ID(), alice.Access, nil), http.StatusNotFound, "not_found", "deleting an expired message")
	expectAPIError(t, ts.send(alice, short), http.StatusBadRequest, "invalid_request", "retrying an expired message")

	if n := homeserver.SweepMessages(ts.srv); n != 1 {
		t.Errorf("the sweep deleted %d messages, want 1", n)
	}
	if got := ts.unread(bob); got != [3]int{2, 2, 0} {
		t.Errorf("bob's unread after the sweep: %v", got)
	}
	// The only trace left is the "expired" event that tells bob's and
	// alice's clients to prune their caches (it leaves the event log with
	// the account or when newer events push it out).
	err := homeserver.ScanStore(ts.srv, func(k, v []byte) {
		for _, f := range [][]byte{mustHex(t, short.ID()), []byte(short.ID())} {
			// The tombstone ('x', 'y') keeps the id refused for a while.
			if (bytes.Contains(k, f) || bytes.Contains(v, f)) && (k[0] != 'V' || !bytes.Contains(v, []byte(`"type":"expired"`))) && k[0] != 'x' && k[0] != 'y' {
				t.Errorf("the store still holds the expired message after the sweep: %q", v)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(4 * time.Minute) // within the access tokens' lifetime
	if n := homeserver.SweepMessages(ts.srv); n != 1 {
		t.Errorf("the second sweep deleted %d messages, want 1", n)
	}
	if got := ts.mailbox(bob, ""); len(got) != 1 || got[0].id(t) != forever.ID() {
		t.Errorf("after both expiries bob has %d messages", len(got))
	}
	if got := ts.unread(bob); got != [3]int{1, 1, 0} {
		t.Errorf("bob's unread after the second sweep: %v", got)
	}
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMessagesRateLimit(t *testing.T) {
	t.Parallel()
	clock := newStepClock()
	cfg := testConfig(t)
	cfg.MessageRatePerMinute, cfg.MessageBurst = 6, 2
	ts := startServer(t, cfg, withStepClock(clock))
	alice := ts.registerWithKeys("mralice", "alice")
	bob := ts.registerWithKeys("mrbob", "bob")
	ts.sendOK(alice, sealTo(t, alice, bob, "1"))
	ts.sendOK(alice, sealTo(t, alice, bob, "2"))
	third := sealTo(t, alice, bob, "3")
	r := ts.send(alice, third)
	expectAPIError(t, r, http.StatusTooManyRequests, "rate_limited", "a third message at once")
	if ra := r.Header.Get("Retry-After"); ra != "10" {
		t.Errorf("Retry-After %q, want 10", ra)
	}
	ts.sendOK(bob, sealTo(t, bob, alice, "others are not limited"))
	clock.Advance(10 * time.Second)
	ts.sendOK(alice, third)
	if n := len(ts.mailbox(bob, "")); n != 4 {
		t.Errorf("bob has %d messages, want 4: three received (the refused one stored once) and his own", n)
	}
}

func TestMessagesSurviveRestart(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig(t))
	alice := ts.registerWithKeys("msralice", "alice")
	bob := ts.registerWithKeys("msrbob", "bob")
	var ids []string
	for i := range 3 {
		m := sealTo(t, alice, bob, fmt.Sprint("m", i))
		ts.sendOK(alice, m)
		ids = append(ids, m.ID())
	}
	expectHTTPStatus(t, ts.do("POST", "/api/messages/"+ids[0]+"/read", bob.Access, nil), http.StatusNoContent, "read")
	ts.restart()
	got := ts.mailbox(bob, "after=0")
	if len(got) != 3 {
		t.Fatalf("after a restart bob has %d messages", len(got))
	}
	for i, it := range got {
		if it.id(t) != ids[i] || openItem(t, it, bob, alice) != fmt.Sprint("m", i) || *it.Read != (i == 0) {
			t.Errorf("after a restart item %d: %+v", i, it)
		}
	}
	if u := ts.unread(bob); u != [3]int{2, 2, 0} {
		t.Errorf("unread after a restart: %v", u)
	}
	// Sequence numbers continue (alice's 4 is the event that bob read m0).
	if seq := ts.sendOK(alice, sealTo(t, alice, bob, "after")); seq != 5 {
		t.Errorf("alice's next seq after a restart is %d, want 5", seq)
	}
}

// TestMessagesConcurrentSenders checks that per-user sequence numbers are
// unique and gap-free while many senders deliver to shared recipients.
func TestMessagesConcurrentSenders(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig(t))
	const senders, each = 8, 12
	bob := ts.registerWithKeys("mcbob", "bob")
	carol := ts.registerWithKeys("mccarol", "carol")
	var from []*keyAccount
	var msgs [][]sealed
	for range senders {
		a := ts.registerWithKeys("mcsender", "alice")
		from = append(from, a)
		var ms []sealed
		for j := range each {
			to := []*e2ee.KeyBundle{bob.Keys.Bundle}
			if j%2 == 0 {
				to = append(to, carol.Keys.Bundle)
			}
			ms = append(ms, sealFor(t, a, to, fmt.Sprint(a.Username, j), nil))
		}
		msgs = append(msgs, ms)
	}
	var wg sync.WaitGroup
	errs := make(chan string, senders*each)
	for i := range senders {
		wg.Go(func() {
			var last uint64
			for _, m := range msgs[i] {
				r := ts.do("POST", "/api/messages", from[i].Access, m.Raw)
				if r.Status != http.StatusCreated {
					errs <- fmt.Sprintf("send: %d %s", r.Status, r.Body)
					return
				}
				var a struct{ Seq uint64 }
				json.Unmarshal(r.Body, &a)
				if a.Seq != last+1 {
					errs <- fmt.Sprintf("sender %d got seq %d after %d", i, a.Seq, last)
				}
				last = a.Seq
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	check := func(a *keyAccount, want int) {
		var all []mailItem
		for after := uint64(0); ; {
			page := ts.mailbox(a, fmt.Sprintf("after=%d&limit=100", after))
			if len(page) == 0 {
				break
			}
			all = append(all, page...)
			after = page[len(page)-1].Seq
		}
		if len(all) != want {
			t.Fatalf("%s has %d messages, want %d", a.Username, len(all), want)
		}
		seen := map[string]bool{}
		for i, it := range all {
			if it.Seq != uint64(i+1) {
				t.Fatalf("%s: entry %d has seq %d; sequence numbers must be 1…%d without gaps", a.Username, i, it.Seq, want)
			}
			if id := it.id(t); seen[id] {
				t.Fatalf("%s holds %s twice", a.Username, id)
			} else {
				seen[id] = true
			}
		}
		if u := ts.unread(a); u[0] != want || u[1] != want {
			t.Errorf("%s's unread %v, want %d", a.Username, u, want)
		}
	}
	check(bob, senders*each)
	check(carol, senders*each/2)
}

// TestDeleteAccountErasesMessages: deleting an account deletes every
// message it sent or received from every mailbox (an envelope names its
// sender and recipients), fixes the others' counters, and leaves no trace
// of the user in the store; messages between others stay.
func TestDeleteAccountErasesMessages(t *testing.T) {
	t.Parallel()
	ts := startServer(t, testConfig(t))
	alice := ts.registerWithKeys("mealice", "alice")
	bob := ts.registerWithKeys("mebob", "bob")
	carol := ts.registerWithKeys("mecarol", "carol")
	ts.sendOK(alice, sealTo(t, alice, bob, "from alice"))
	ts.sendOK(bob, sealTo(t, bob, alice, "to alice"))
	ts.sendOK(alice, sealFor(t, alice, []*e2ee.KeyBundle{bob.Keys.Bundle, carol.Keys.Bundle}, "to both", nil))
	expectHTTPStatus(t, ts.do("DELETE", "/api/messages/"+ts.mailbox(carol, "")[0].id(t), carol.Access, nil), http.StatusNoContent, "carol removes her copy")
	keep := sealTo(t, carol, bob, "between others")
	ts.sendOK(carol, keep)

	sub := jwtClaims(t, alice.Access)["sub"].(string)
	needles := map[string][][]byte{
		"user id":  {mustHex(t, sub), []byte(sub)},
		"username": {[]byte(alice.Username)},
	}
	if missing := scanFor(t, ts.srv, needles); len(missing) != 0 {
		t.Fatalf("the store scan does not find %v even before deletion", missing)
	}
	expectHTTPStatus(t, ts.do("DELETE", "/api/account", alice.Access, map[string]any{"auth_key": alice.AuthKey}), http.StatusNoContent, "DELETE /api/account")
	if found := foundIn(t, ts.srv, needles); len(found) != 0 {
		t.Fatalf("after deletion the store still holds the user's %v", found)
	}
	got := ts.mailbox(bob, "")
	if len(got) != 1 || got[0].id(t) != keep.ID() {
		t.Errorf("bob's mailbox after alice's deletion: %d items", len(got))
	}
	if u := ts.unread(bob); u != [3]int{1, 1, 0} {
		t.Errorf("bob's unread after alice's deletion: %v", u)
	}
	if got := ts.mailbox(carol, ""); len(got) != 1 || got[0].Direction != "out" {
		t.Errorf("carol's mailbox after alice's deletion: %+v", got)
	}
	ts.restart()
	if found := foundIn(t, ts.srv, needles); len(found) != 0 {
		t.Fatalf("after deletion and restart the store holds the user's %v", found)
	}
	if f := grepDir(t, ts.cfg.DataDir+"/store", []byte(alice.Username)); f != "" {
		t.Fatalf("%q is in the store file %s", alice.Username, f)
	}
	// carol's 1 is alice's message, 2 the event that she removed it, 3 hers.
	if seq := ts.sendOK(carol, sealTo(t, carol, bob, "still works")); seq != 4 {
		t.Errorf("carol's next seq %d, want 4", seq)
	}
}

// exchangeMessages has a (an account without SDK keys in the test) and pen
// write to each other. a's envelope is sealed with fresh keys for a's
// address: the server checks only the header.
func exchangeMessages(t *testing.T, ts *testServer, a *account, pen *keyAccount) {
	t.Helper()
	addr := privateline.Address(a.Username + "@" + string(ts.cfg.ServerName))
	ak := &keyAccount{account: a, Address: addr, Keys: newTestKeys(t, addr, "alice", time.Now())}
	ts.sendOK(pen, sealTo(t, pen, ak, "to a"))
	ts.sendOK(ak, sealTo(t, ak, pen, "from a"))
	if n, u := len(ts.mailbox(pen, "")), ts.unread(pen); n != 2 || u != [3]int{1, 1, 0} {
		t.Fatalf("the penpal has %d messages, unread %v", n, u)
	}
}

// The message routes in TestAuthenticatedRoutes: bob's token acts on bob's
// mailbox only.
func init() {
	// toAlice is a message from a third user to alice, so that bob has
	// something of alice's to aim at.
	toAlice := func(t *testing.T, ts *testServer, alice *account) sealed {
		t.Helper()
		carol := ts.registerWithKeys("xcarol", "carol")
		aliceKeys := newTestKeys(t, privateline.Address(alice.Username+"@hs.test"), "alice", time.Now())
		m := sealFor(t, carol, []*e2ee.KeyBundle{aliceKeys.Bundle}, "for alice", nil)
		ts.sendOK(carol, m)
		return m
	}
	aliceHas := func(t *testing.T, ts *testServer, alice *account, id string) {
		t.Helper()
		r := ts.do("GET", "/api/messages", alice.Access, nil)
		if r.Status != http.StatusOK || !strings.Contains(string(r.Body), id) {
			t.Fatalf("alice lost message %s: %d %s", id, r.Status, r.Body)
		}
	}
	crossUserCases["POST /api/messages"] = func(t *testing.T, ts *testServer, alice, bob *account) {
		// An envelope "from" alice, posted with bob's token.
		forged := &keyAccount{account: bob, Keys: newTestKeys(t, privateline.Address(alice.Username+"@hs.test"), "alice", time.Now())}
		bobKeys := newTestKeys(t, privateline.Address(bob.Username+"@hs.test"), "bob", time.Now())
		m := sealFor(t, forged, []*e2ee.KeyBundle{bobKeys.Bundle}, "not from alice", nil)
		expectAPIError(t, ts.do("POST", "/api/messages", bob.Access, m.Raw), http.StatusForbidden, "forbidden", "bob sending as alice")
		if r := ts.do("GET", "/api/messages", alice.Access, nil); r.Status != http.StatusOK || strings.Contains(string(r.Body), m.ID()) {
			t.Fatalf("alice's mailbox after bob's forgery: %d %s", r.Status, r.Body)
		}
	}
	crossUserCases["GET /api/messages"] = func(t *testing.T, ts *testServer, alice, bob *account) {
		m := toAlice(t, ts, alice)
		for _, q := range []string{"", "?with=" + alice.Username + "@hs.test", "?after=0"} {
			r := ts.do("GET", "/api/messages"+q, bob.Access, nil)
			if r.Status != http.StatusOK || strings.Contains(string(r.Body), m.ID()) {
				t.Fatalf("bob's GET /api/messages%s: %d %s", q, r.Status, r.Body)
			}
		}
		aliceHas(t, ts, alice, m.ID())
	}
	crossUserCases["DELETE /api/messages/:id"] = func(t *testing.T, ts *testServer, alice, bob *account) {
		m := toAlice(t, ts, alice)
		expectAPIError(t, ts.do("DELETE", "/api/messages/"+m.ID(), bob.Access, nil), http.StatusNotFound, "not_found", "bob deleting alice's message")
		aliceHas(t, ts, alice, m.ID())
	}
	crossUserCases["POST /api/messages/:id/read"] = func(t *testing.T, ts *testServer, alice, bob *account) {
		m := toAlice(t, ts, alice)
		before := ts.do("GET", "/api/unread_count", alice.Access, nil)
		expectAPIError(t, ts.do("POST", "/api/messages/"+m.ID()+"/read", bob.Access, nil), http.StatusNotFound, "not_found", "bob reading alice's message")
		if after := ts.do("GET", "/api/unread_count", alice.Access, nil); string(after.Body) != string(before.Body) {
			t.Fatalf("alice's unread changed through bob: %s → %s", before.Body, after.Body)
		}
	}
	crossUserCases["GET /api/unread_count"] = func(t *testing.T, ts *testServer, alice, bob *account) {
		toAlice(t, ts, alice)
		r := ts.do("GET", "/api/unread_count", bob.Access, nil)
		if r.Status != http.StatusOK || r.json(t)["unread"] != float64(0) {
			t.Fatalf("bob's unread count: %d %s", r.Status, r.Body)
		}
	}
}
