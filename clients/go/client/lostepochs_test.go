package client

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/e2ee"
)

// The memory of held epochs in the session state; against the real
// homeserver (a restore, the reports) it is homeserver/fedepochs_test.go.

func noServer(t *testing.T) *Client {
	return fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("unexpected request %s %s", r.Method, r.URL.Path)
		w.WriteHeader(http.StatusTeapot)
	})
}

// TestResumeRestoresHeldEpochs: the held epochs of a saved state join the
// Client's memory, the higher epoch of a group winning either way, and
// State carries them; a malformed entry refuses the state and leaves the
// memory as it was.
func TestResumeRestoresHeldEpochs(t *testing.T) {
	c := noServer(t)
	st := testState(t)
	bob := privateline.Address("bob@example.org")
	st.Epochs = map[string]HeldEpoch{
		"g1": {Epoch: 3, From: bob, CreatedAt: 1000},
		"g2": {Epoch: 1, From: st.Address, CreatedAt: 2000},
	}
	s, err := c.Resume(st)
	if err != nil {
		t.Fatal(err)
	}
	if s.HeldEpoch("g1") != 3 || s.HeldEpoch("g2") != 1 || s.HeldEpoch("g3") != 0 {
		t.Fatalf("held epochs after Resume: %d %d %d", s.HeldEpoch("g1"), s.HeldEpoch("g2"), s.HeldEpoch("g3"))
	}
	if got := s.State().Epochs; !reflect.DeepEqual(got, st.Epochs) {
		t.Fatalf("State().Epochs = %v, want %v", got, st.Epochs)
	}

	// An older state of the same account lowers nothing; a higher epoch
	// raises one.
	older := testState(t)
	older.Epochs = map[string]HeldEpoch{
		"g1": {Epoch: 2, From: bob, CreatedAt: 500},
		"g2": {Epoch: 4, From: bob, CreatedAt: 3000},
	}
	if _, err := c.Resume(older); err != nil {
		t.Fatal(err)
	}
	want := map[string]HeldEpoch{"g1": st.Epochs["g1"], "g2": older.Epochs["g2"]}
	if got := s.State().Epochs; !reflect.DeepEqual(got, want) {
		t.Fatalf("after an older state: %v, want %v", got, want)
	}

	// Malformed entries: refused, and nothing of them is taken.
	for name, bad := range map[string]map[string]HeldEpoch{
		"no group":          {"": {Epoch: 9, From: bob}, "g4": {Epoch: 9, From: bob}},
		"epoch 0":           {"g4": {Epoch: 9, From: bob}, "g5": {Epoch: 0, From: bob}},
		"negative epoch":    {"g4": {Epoch: -1, From: bob}},
		"no distributor":    {"g4": {Epoch: 9}},
		"a bad distributor": {"g4": {Epoch: 9, From: "not an address"}},
	} {
		st := testState(t)
		st.Epochs = bad
		if _, err := c.Resume(st); !privateline.Is(privateline.Invalid, err) {
			t.Errorf("%s: Resume = %v, want Invalid", name, err)
		}
		if err := c.RememberEpochs(st.Address, bad); !privateline.Is(privateline.Invalid, err) {
			t.Errorf("%s: RememberEpochs = %v, want Invalid", name, err)
		}
	}
	if got := s.State().Epochs; !reflect.DeepEqual(got, want) {
		t.Fatalf("after malformed states: %v, want %v", got, want)
	}

	// Another account's memory is its own.
	if err := c.RememberEpochs(bob, map[string]HeldEpoch{"g1": {Epoch: 7, From: bob}}); err != nil {
		t.Fatal(err)
	}
	if s.HeldEpoch("g1") != 3 {
		t.Fatalf("bob's memory reached alice's session: %d", s.HeldEpoch("g1"))
	}
}

// TestHeldEpochRiseFiresOnChange: a group key of an epoch above the one
// held is a change of the state (OnChange, with the new epoch, the tokens
// unchanged); a key at or below it is not. The callback may read the
// session (no lock is held while it runs).
func TestHeldEpochRiseFiresOnChange(t *testing.T) {
	c := noServer(t)
	s, err := c.Resume(testState(t))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []int64
	s.OnChange(func(st SessionState) {
		if string(st.Tokens.Refresh) != "r1" || s.State().Epochs["g"] != st.Epochs["g"] {
			t.Errorf("OnChange state: %v", st.Epochs)
		}
		mu.Lock()
		seen = append(seen, st.Epochs["g"].Epoch)
		mu.Unlock()
	})
	key := func(epoch int64) *e2ee.GroupKey {
		return &e2ee.GroupKey{Group: "g", Epoch: epoch, From: "bob@example.org", CreatedAt: time.UnixMilli(1000 * epoch)}
	}
	for _, e := range []int64{2, 1, 2, 3, 3} {
		s.keepGroupKey(key(e))
	}
	s.Lock() // forgets the keys, not the memory: their epochs are no rise
	s.keepGroupKey(key(3))
	s.keepGroupKey(key(2))
	mu.Lock()
	defer mu.Unlock()
	if want := []int64{2, 3}; !reflect.DeepEqual(seen, want) {
		t.Fatalf("OnChange saw held epochs %v, want %v", seen, want)
	}
	if got, want := s.State().Epochs["g"], (HeldEpoch{Epoch: 3, From: "bob@example.org", CreatedAt: 3000}); got != want {
		t.Fatalf("held %+v, want %+v", got, want)
	}
}

// TestSessionStateEpochsJSON: the held epochs are plain JSON, and the
// field is left out when empty, so a state saved before it existed
// decodes to none.
func TestSessionStateEpochsJSON(t *testing.T) {
	b, err := json.Marshal(HeldEpoch{Epoch: 3, From: "bob@example.org", CreatedAt: 1234})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"epoch":3,"from":"bob@example.org","created_at":1234}` {
		t.Fatalf("HeldEpoch JSON: %s", b)
	}
	if b, _ := json.Marshal(SessionState{Address: "alice@example.org"}); strings.Contains(string(b), "Epochs") {
		t.Fatalf("a state without held epochs: %s", b)
	}
	in := SessionState{Address: "alice@example.org", Epochs: map[string]HeldEpoch{"g": {Epoch: 3, From: "bob@example.org", CreatedAt: 1234}}}
	b, err = json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ Epochs map[string]HeldEpoch } // tokens marshal redacted
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out.Epochs, in.Epochs) {
		t.Fatalf("decoded %v from %s, want %v", out.Epochs, b, in.Epochs)
	}
}
