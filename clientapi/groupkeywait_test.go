package clientapi

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/federation"
	"github.com/privateline/privateline/storage"
)

// keyGroups is a group store with one group of one member, whose current
// epoch's key appears after a number of look-ups (never when < 0), and
// whose epoch moves on after a number of reads (never when < 0).
type keyGroups struct {
	noGroups
	mu         sync.Mutex
	g          storage.Group
	keyAfter   int // look-ups before the key is there
	moveAfter  int // GroupFor calls before the epoch moves on
	lookups    int
	groupReads int
	hasKey     bool
}

func (k *keyGroups) GroupFor(id string, user storage.ID) (*storage.Group, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if id != k.g.ID || k.g.Member(user) == nil {
		return nil, privateline.E(privateline.NotExist)
	}
	k.groupReads++
	if k.moveAfter >= 0 && k.groupReads > k.moveAfter {
		k.g.Epoch++
	}
	g := k.g
	return &g, nil
}

func (k *keyGroups) get() ([]byte, string, string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.lookups++
	if k.keyAfter >= 0 && k.lookups > k.keyAfter {
		k.hasKey = true
	}
	if !k.hasKey {
		return nil, "", "", privateline.E(privateline.NotExist)
	}
	return []byte(`{}`), "kid", "wrap", nil
}

// syncingRemote is a group's server whose state brings the key.
type syncingRemote struct {
	k     *keyGroups
	syncs int
}

func (s *syncingRemote) GroupRequest(context.Context, federation.GroupRequest) (*federation.GroupResult, error) {
	return nil, errors.New("not used")
}

func (s *syncingRemote) SyncGroup(_ context.Context, id string) error {
	s.k.mu.Lock()
	defer s.k.mu.Unlock()
	s.syncs++
	s.k.hasKey = true
	return nil
}

func keyWaitSetup(t *testing.T, id, role string) (*API, *keyGroups, *call) {
	t.Helper()
	a := newTestAPI(t, time.Now)
	me := storage.NewID()
	k := &keyGroups{g: storage.Group{ID: id, Epoch: 3, Members: []storage.GroupMember{{User: me, Address: "me@hs.test", Role: role}}}, keyAfter: -1, moveAfter: -1}
	a.grps = k
	return a, k, &call{auth: &principal{UserID: me}}
}

func (k *keyGroups) current(t *testing.T, c *call) *storage.Group {
	t.Helper()
	g, err := k.GroupFor(k.g.ID, c.auth.UserID)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// A plain member's look-up waits for the key an admin uploads later.
func TestKeyWaitMemberGetsLateKey(t *testing.T) {
	a, k, c := keyWaitSetup(t, "00000000000000000000000000000001@hs.test", storage.RoleMember)
	k.keyAfter = 3
	_, kid, _, err := a.awaitGroupKey(context.Background(), c, k.current(t, c), k.get)
	if err != nil || kid != "kid" {
		t.Fatalf("the member's look-up: %q, %v; want the key once it is there", kid, err)
	}
	if n := testutil.ToFloat64(a.metrics.keyWaits.WithLabelValues("key")); n != 1 {
		t.Fatalf("waits ended with the key: %v, want 1", n)
	}
	if n := testutil.ToFloat64(a.metrics.keyWaiting); n != 0 {
		t.Fatalf("look-ups still waiting: %v", n)
	}
}

// A key that never comes ends, after the wait, in a 404 that says so.
func TestKeyWaitGivesUpClearly(t *testing.T) {
	a, k, c := keyWaitSetup(t, "00000000000000000000000000000002@hs.test", storage.RoleMember)
	a.keyWait = 200 * time.Millisecond
	_, _, _, err := a.awaitGroupKey(context.Background(), c, k.current(t, c), k.get)
	var se *statusError
	if !errors.As(err, &se) || se.status != http.StatusNotFound || !strings.Contains(se.message, "no key has been distributed") {
		t.Fatalf("the member's look-up of a key nobody uploads: %v, want 404 saying no key was distributed yet", err)
	}
	if k.lookups == 0 {
		t.Fatal("the member's look-up did not look again while it waited")
	}
	if n := testutil.ToFloat64(a.metrics.keyWaits.WithLabelValues("none")); n != 1 {
		t.Fatalf("waits that ended without a key: %v, want 1", n)
	}
}

// Owners and admins are answered at once: their apps distribute the key.
func TestKeyWaitAdminAnsweredAtOnce(t *testing.T) {
	for _, role := range []string{storage.RoleOwner, storage.RoleAdmin} {
		a, k, c := keyWaitSetup(t, "00000000000000000000000000000003@hs.test", role)
		a.keyWait = time.Hour
		k.keyAfter = 1
		_, _, _, err := a.awaitGroupKey(context.Background(), c, k.current(t, c), k.get)
		if err != errKeyPending || k.lookups != 0 {
			t.Fatalf("%s's look-up: %v after %d looks, want 404 at once", role, err, k.lookups)
		}
	}
}

// A group that moves to another epoch while a look-up waits ends it with
// stale_epoch, so the client fetches the group again.
func TestKeyWaitEpochMovesOn(t *testing.T) {
	a, k, c := keyWaitSetup(t, "00000000000000000000000000000004@hs.test", storage.RoleMember)
	g := k.current(t, c)
	k.moveAfter = 3
	_, _, _, err := a.awaitGroupKey(context.Background(), c, g, k.get)
	if err != errStaleEpoch {
		t.Fatalf("the look-up of a superseded epoch: %v, want stale_epoch", err)
	}
}

// On a replica the group's server is asked first, so an admin (who does
// not wait) gets a key that is on the group's server but not here yet.
func TestKeyWaitReplicaAsksGroupServer(t *testing.T) {
	a, k, c := keyWaitSetup(t, "00000000000000000000000000000005@other.test", storage.RoleAdmin)
	r := &syncingRemote{k: k}
	a.remoteGroups = r
	_, kid, _, err := a.awaitGroupKey(context.Background(), c, k.current(t, c), k.get)
	if err != nil || kid != "kid" || r.syncs != 1 {
		t.Fatalf("the admin's look-up on a replica: %q, %v after %d state requests; want the key after one", kid, err, r.syncs)
	}
	// The requests to the group's server are bounded by the user's
	// message rate: a burst of look-ups does not make one each.
	k.hasKey = false
	for i := 0; i < 1000; i++ {
		_, _, _, _ = a.awaitGroupKey(context.Background(), c, k.current(t, c), func() ([]byte, string, string, error) {
			return nil, "", "", privateline.E(privateline.NotExist)
		})
	}
	if r.syncs >= 1000 {
		t.Fatalf("1000 look-ups made %d state requests", r.syncs)
	}
}
