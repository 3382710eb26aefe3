package storage

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestCrashDuringDeliveries crashes the store (a copy of the filesystem
// holding only what was synced; syncs are slowed down) while deliveries
// and mailbox reads run concurrently: every delivery acknowledged, every
// message a mailbox page showed and every event published before the
// crash is in the copy, the mailboxes' invariants hold, and sequence numbers given out
// after the crash are beyond every number published before it.
func TestCrashDuringDeliveries(t *testing.T) {
	fs := vfs.NewCrashableMem()
	key := testKey()
	db, err := Open(Options{Dir: "db", Key: key, fs: slowSyncFS{fs}})
	if err != nil {
		t.Fatal(err)
	}
	var users []*User
	for i := range 6 {
		u := newUser(fmt.Sprint("crash", i))
		if err := db.CreateUser(u); err != nil {
			t.Fatal(err)
		}
		users = append(users, u)
	}
	var (
		mu        sync.Mutex
		acked     = map[string]uint64{} // id → sender seq
		published = map[ID]uint64{}     // user → highest seq notified
	)
	db.SetNotifier(func(evs []UserEvent) {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range evs {
			if e.Seq <= published[e.User] {
				t.Errorf("user %x: seq %d published after %d", e.User[:2], e.Seq, published[e.User])
			}
			published[e.User] = e.Seq
		}
	})
	stop := make(chan struct{})
	var n atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				from, to := users[w%6], users[(w+j+1)%6]
				if from == to {
					to = users[(w+1)%6]
				}
				id := newMsgID()
				dl := &Delivery{MsgID: id, Sender: rcpt(from), Recipients: []Recipient{rcpt(to)}, Raw: []byte(`{"id":"` + id + `"}`)}
				seq, _, err := db.Deliver(dl)
				if err != nil {
					return // the store is closing
				}
				mu.Lock()
				acked[dl.MsgID] = seq
				mu.Unlock()
				n.Add(1)
			}
		})
	}
	// Readers page through the mailboxes as a polling client does: what
	// a page showed must survive the crash.
	seen := map[string]bool{}
	for _, u := range users {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				items, err := db.Mailbox(u.ID, MailQuery{Limit: 20, Now: time.Now()})
				if err != nil {
					return // the store is closing
				}
				mu.Lock()
				for _, it := range items {
					seen[string(it.Envelope[len(`{"id":"`):][:32])] = true
				}
				mu.Unlock()
			}
		})
	}
	for n.Load() < 300 {
		time.Sleep(time.Millisecond) // polling a counter, not ordering
	}
	mu.Lock()
	wantAcked := make(map[string]uint64, len(acked))
	for k, v := range acked {
		wantAcked[k] = v
	}
	wantPublished := make(map[ID]uint64, len(published))
	for k, v := range published {
		wantPublished[k] = v
	}
	wantSeen := make([]string, 0, len(seen))
	for id := range seen {
		wantSeen = append(wantSeen, id)
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	mu.Unlock()
	close(stop)
	wg.Wait()
	db.Close()

	db2, err := Open(Options{Dir: "db", Key: key, fs: crashed})
	if err != nil {
		t.Fatal(err)
	}
	if db2.crashSkip == 0 {
		t.Error("an unclean shutdown was not noticed")
	}
	for id, seq := range wantAcked {
		mid := mustID(t, id)
		rec, err := db2.envelope(mid)
		if err != nil {
			t.Fatalf("acknowledged message %s is gone after the crash: %v", id, err)
		}
		if rec.SenderSeq != seq {
			t.Errorf("message %s: seq %d, acknowledged %d", id, rec.SenderSeq, seq)
		}
	}
	for _, id := range wantSeen {
		if _, err := db2.envelope(mustID(t, id)); err != nil {
			t.Errorf("message %s, shown in a mailbox page before the crash, is gone after it: %v", id, err)
		}
	}
	checkMailboxes(t, db2, users...)
	now := time.Now()
	lasts := map[ID]uint64{}
	for _, u := range users {
		evs, err := db2.EventsAfter(u.ID, 0, 1_000_000, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) > 0 {
			lasts[u.ID] = evs[len(evs)-1].Seq
		}
		if lasts[u.ID] < wantPublished[u.ID] {
			t.Errorf("%s: events up to %d were published, the store has up to %d", u.Username, wantPublished[u.ID], lasts[u.ID])
		}
	}
	for _, u := range users {
		last := lasts[u.ID]
		dl := &Delivery{MsgID: newMsgID(), Sender: rcpt(u), Recipients: []Recipient{rcpt(users[(indexOf(users, u)+1)%6])}, Raw: []byte(`{}`)}
		seq, _, err := db2.Deliver(dl)
		if err != nil {
			t.Fatal(err)
		}
		if seq <= last+crashSkip-1 {
			t.Errorf("%s: first seq after the crash %d, want beyond %d", u.Username, seq, last+crashSkip-1)
		}
	}
	db2.Close()
	// A clean close is noticed: no skip at the next start.
	db3, err := Open(Options{Dir: "db", Key: key, fs: crashed})
	if err != nil {
		t.Fatal(err)
	}
	defer db3.Close()
	if db3.crashSkip != 0 {
		t.Error("a clean close was taken for a crash")
	}
}

func indexOf(users []*User, u *User) int {
	for i, x := range users {
		if x == u {
			return i
		}
	}
	return -1
}

// slowSyncFS delays every sync by a few milliseconds, so that batches
// stay applied but not durable long enough for readers to meet them.
type slowSyncFS struct{ vfs.FS }

func (fs slowSyncFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return slowSync(fs.FS.Create(name, c))
}

func (fs slowSyncFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	return slowSync(fs.FS.OpenReadWrite(name, c, opts...))
}

func (fs slowSyncFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return slowSync(fs.FS.ReuseForWrite(oldname, newname, c))
}

func slowSync(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return slowSyncFile{f}, nil
}

type slowSyncFile struct{ vfs.File }

const syncDelay = 3 * time.Millisecond

func (f slowSyncFile) Sync() error     { time.Sleep(syncDelay); return f.File.Sync() }
func (f slowSyncFile) SyncData() error { time.Sleep(syncDelay); return f.File.SyncData() }
func (f slowSyncFile) SyncTo(n int64) (bool, error) {
	time.Sleep(syncDelay)
	return f.File.SyncTo(n)
}
