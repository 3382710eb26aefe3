package storage

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/privateline/privateline"
)

func blobCount(t *testing.T, e *env) (tmp, blobs int) {
	t.Helper()
	for _, d := range []struct {
		dir string
		n   *int
	}{{"tmp", &tmp}, {"blobs", &blobs}} {
		ents, err := os.ReadDir(filepath.Join(e.files, d.dir))
		if err != nil {
			t.Fatal(err)
		}
		*d.n = len(ents)
	}
	return tmp, blobs
}

func upload(t *testing.T, e *env, u *User, data []byte, now time.Time) *FileInfo {
	t.Helper()
	fi, err := e.db.CreateFile(FileUpload{Uploader: u.ID, Body: bytes.NewReader(data), MaxSize: 1 << 20, Quota: 4 << 20, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

func deliverFiles(e *env, from *User, to []*User, files []string, exp time.Time) (string, error) {
	dl := &Delivery{MsgID: newMsgID(), Sender: rcpt(from), ExpiresAt: exp, Files: files}
	for _, r := range to {
		dl.Recipients = append(dl.Recipients, rcpt(r))
	}
	dl.Raw = []byte(`{"id":"` + dl.MsgID + `"}`)
	_, _, err := e.db.Deliver(dl)
	return dl.MsgID, err
}

func TestFilesFollowTheirMessages(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		a, b, c := newUser("ann"), newUser("ben"), newUser("cat")
		for _, u := range []*User{a, b, c} {
			if err := e.db.CreateUser(u); err != nil {
				t.Fatal(err)
			}
		}
		now := time.Unix(1_800_000_000, 0)
		data := make([]byte, 300<<10)
		rand.Read(data)

		// Refusals leave nothing behind.
		for _, tc := range []struct {
			body  []byte
			max   int64
			quota int64
			kind  privateline.Kind
			err   error
		}{
			{data, 1000, 1 << 20, privateline.TooLarge, ErrFileTooLarge},
			{data, 1 << 20, 1000, privateline.TooLarge, ErrQuotaExceeded},
			{nil, 1 << 20, 1 << 20, privateline.Invalid, nil},
		} {
			_, err := e.db.CreateFile(FileUpload{Uploader: a.ID, Body: bytes.NewReader(tc.body), MaxSize: tc.max, Quota: tc.quota, Now: now})
			if !privateline.Is(tc.kind, err) || (tc.err != nil && !errors.Is(err, tc.err)) {
				t.Errorf("upload of %d bytes (max %d, quota %d): %v", len(tc.body), tc.max, tc.quota, err)
			}
		}
		if tmp, blobs := blobCount(t, e); tmp+blobs != 0 {
			t.Fatalf("refused uploads left %d temporary files and %d blobs", tmp, blobs)
		}

		f := upload(t, e, a, data, now)
		g := upload(t, e, b, data[:10], now) // ben's
		if us, _ := e.db.FileUsage(a.ID); us.Bytes != int64(len(data)) || us.Files != 1 {
			t.Errorf("usage %+v", us)
		}

		// Unknown or foreign files: refused, nothing stored.
		before, _ := e.db.Fingerprint()
		for _, files := range [][]string{{g.ID}, {"00112233445566778899aabbccddeeff"}, {"not-hex"}, {f.ID, g.ID}} {
			if _, err := deliverFiles(e, a, []*User{b}, files, time.Time{}); !errors.Is(err, ErrUnknownFile) || !privateline.Is(privateline.Invalid, err) {
				t.Errorf("delivery listing %v: %v", files, err)
			}
		}
		if after, _ := e.db.Fingerprint(); after != before {
			t.Error("a refused delivery changed the store")
		}

		m1, err := deliverFiles(e, a, []*User{b}, []string{f.ID}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		m2, err := deliverFiles(e, a, []*User{c}, []string{f.ID}, now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		read := func(u *User) error {
			_, fh, err := e.db.OpenFile(u.ID, f.ID, now)
			if err != nil {
				return err
			}
			defer fh.Close()
			got, _ := io.ReadAll(fh)
			if !bytes.Equal(got, data) {
				t.Errorf("%s read other bytes", u.Username)
			}
			return nil
		}
		for _, u := range []*User{a, b, c} {
			if err := read(u); err != nil {
				t.Errorf("%s: %v", u.Username, err)
			}
		}
		if err := e.db.DeleteFile(a.ID, f.ID); !errors.Is(err, ErrFileInUse) {
			t.Errorf("deleting a file in use: %v", err)
		}
		// Ben removes his copy: he loses access; the file stays for cat.
		if err := e.db.DeleteMessage(b.ID, m1, now); err != nil {
			t.Fatal(err)
		}
		if err := read(b); !privateline.Is(privateline.NotExist, err) {
			t.Errorf("ben without his copy: %v", err)
		}
		e.reopen()
		if err := read(c); err != nil {
			t.Fatalf("after reopening: %v", err)
		}
		if err := e.db.DeleteMessage(a.ID, m1, now); err != nil {
			t.Fatal(err)
		}
		if _, blobs := blobCount(t, e); blobs != 2 {
			t.Fatalf("%d blobs after the first message went, want 2", blobs)
		}
		// The second message expires: the file goes with it.
		if n, err := e.db.SweepMessages(now.Add(time.Hour)); err != nil || n != 1 {
			t.Fatalf("sweep: %d, %v", n, err)
		}
		if _, _, err := e.db.OpenFile(a.ID, f.ID, now); !privateline.Is(privateline.NotExist, err) {
			t.Errorf("file after its last message: %v", err)
		}
		if _, blobs := blobCount(t, e); blobs != 1 {
			t.Errorf("%d blobs, want 1 (ben's)", blobs)
		}
		if us, _ := e.db.FileUsage(a.ID); us != (FileUsage{}) {
			t.Errorf("usage after the file went: %+v", us)
		}
		if bs, n := e.db.FileStats(); bs != 10 || n != 1 {
			t.Errorf("file stats %d bytes, %d files", bs, n)
		}

		// Tombstones: the ids of removed messages stay refused.
		for _, m := range []string{m1, m2} {
			dl := &Delivery{MsgID: m, Sender: rcpt(a), Recipients: []Recipient{rcpt(b)}, Raw: []byte(`{"id":"` + m + `"}`)}
			if _, _, err := e.db.Deliver(dl); !errors.Is(err, ErrTombstoned) || !privateline.Is(privateline.Exist, err) {
				t.Errorf("re-delivering %s: %v", m, err)
			}
		}
		if n, err := e.db.SweepTombstones(now.Add(TombstoneTTL - time.Hour)); err != nil || n != 0 {
			t.Errorf("early tombstone sweep: %d, %v", n, err)
		}
		if n, err := e.db.SweepTombstones(now.Add(TombstoneTTL + 2*time.Hour)); err != nil || n != 2 {
			t.Errorf("tombstone sweep: %d, %v", n, err)
		}
		dl := &Delivery{MsgID: m1, Sender: rcpt(a), Recipients: []Recipient{rcpt(b)}, Raw: []byte(`{}`)}
		if _, _, err := e.db.Deliver(dl); err != nil {
			t.Errorf("re-delivering after the tombstone went: %v", err)
		}

		// Never referenced: swept after the grace period.
		if n, err := e.db.SweepFiles(now.Add(time.Hour), 2*time.Hour); err != nil || n != 0 {
			t.Errorf("early file sweep: %d, %v", n, err)
		}
		if n, err := e.db.SweepFiles(now.Add(3*time.Hour), 2*time.Hour); err != nil || n != 1 {
			t.Errorf("file sweep: %d, %v", n, err)
		}
		if _, blobs := blobCount(t, e); blobs != 0 {
			t.Errorf("%d blobs left", blobs)
		}
	})
}

func TestFilesGoWithTheAccount(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		a, b := newUser("ann"), newUser("ben")
		for _, u := range []*User{a, b} {
			if err := e.db.CreateUser(u); err != nil {
				t.Fatal(err)
			}
		}
		now := time.Now()
		f := upload(t, e, a, []byte("sent"), now)
		upload(t, e, a, []byte("never sent"), now)
		g := upload(t, e, b, []byte("ben's"), now)
		if _, err := deliverFiles(e, a, []*User{b}, []string{f.ID}, time.Time{}); err != nil {
			t.Fatal(err)
		}
		h := upload(t, e, b, []byte("to ann"), now)
		if _, err := deliverFiles(e, b, []*User{a}, []string{h.ID}, time.Time{}); err != nil {
			t.Fatal(err)
		}
		if err := e.db.DeleteUser(a.ID); err != nil {
			t.Fatal(err)
		}
		// Ann's files, and ben's file that only a message to ann used, are gone.
		if _, blobs := blobCount(t, e); blobs != 1 {
			t.Errorf("%d blobs after the account went, want 1", blobs)
		}
		if _, _, err := e.db.OpenFile(b.ID, g.ID, now); err != nil {
			t.Errorf("ben's own file: %v", err)
		}
		if found := e.db.scanFor(t, a.ID[:]); len(found) > 0 {
			t.Errorf("the store still names ann at %q", found)
		}
		if bs, n := e.db.FileStats(); bs != 5 || n != 1 {
			t.Errorf("file stats %d bytes, %d files", bs, n)
		}
	})
}

// TestFileCrashLeftovers: a temporary file and a blob without metadata (a
// crash between the disk write and the commit) are gone after reopening.
func TestFileCrashLeftovers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		a := newUser("ann")
		if err := e.db.CreateUser(a); err != nil {
			t.Fatal(err)
		}
		f := upload(t, e, a, []byte("kept"), time.Now())
		for _, p := range []string{filepath.Join(e.files, "tmp", "0123"), filepath.Join(e.files, "blobs", "00ff00ff00ff00ff00ff00ff00ff00ff")} {
			if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		e.reopen()
		if tmp, blobs := blobCount(t, e); tmp != 0 || blobs != 1 {
			t.Errorf("after reopening: %d temporary files, %d blobs; want 0, 1", tmp, blobs)
		}
		if _, fh, err := e.db.OpenFile(a.ID, f.ID, time.Now()); err != nil {
			t.Error(err)
		} else {
			fh.Close()
		}
	})
}

// TestSweepLocksOnlyItsMessages: the expiry sweep runs while a stripe no
// swept message or participant maps to is held (it used to take every
// stripe), and deliveries racing sweeps keep every mailbox consistent.
func TestSweepLocksOnlyItsMessages(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		var users []*User
		for i := range 8 {
			u := newUser("user" + string(rune('a'+i)))
			if err := e.db.CreateUser(u); err != nil {
				t.Fatal(err)
			}
			users = append(users, u)
		}
		now := time.Unix(1_800_000_000, 0)
		used := map[int]bool{}
		for i := range 20 {
			from, to := users[i%3], users[(i+1)%3]
			m, err := deliverFiles(e, from, []*User{to}, nil, now.Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			used[stripeOf(mustID(t, m))] = true
		}
		for _, u := range users[:3] {
			used[stripeOf(u.ID[:])] = true
		}
		free := -1
		for i := range numStripes {
			if !used[i] {
				free = i
				break
			}
		}
		e.db.stripes[free].Lock()
		done := make(chan error, 1)
		go func() {
			_, err := e.db.SweepMessages(now.Add(time.Minute))
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the sweep waits for a stripe it has no business with")
		}
		e.db.stripes[free].Unlock()

		// Sweeps racing deliveries among the same users.
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for j := range 25 {
					from, to := users[(w+j)%len(users)], users[(w+j+1)%len(users)]
					exp := now.Add(time.Duration(j%3) * time.Minute)
					if j%3 == 0 {
						exp = now.Add(time.Hour)
					}
					if _, err := deliverFiles(e, from, []*User{to}, nil, exp); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Go(func() {
			for k := range 10 {
				if _, err := e.db.SweepMessages(now.Add(time.Duration(k) * time.Minute)); err != nil {
					t.Error(err)
				}
			}
		})
		wg.Wait()
		if _, err := e.db.SweepMessages(now.Add(30 * time.Minute)); err != nil {
			t.Fatal(err)
		}
		checkMailboxes(t, e.db, users...)
		for _, u := range users {
			items, err := e.db.Mailbox(u.ID, MailQuery{Limit: 100, Now: now.Add(30 * time.Minute)})
			if err != nil {
				t.Fatal(err)
			}
			c, _ := e.db.UnreadCounts(u.ID)
			if int64(len(items)) != c.Direct+countOut(items) {
				t.Errorf("%s: %d items, counters %+v", u.Username, len(items), c)
			}
		}
	})
}

func countOut(items []MailItem) int64 {
	n := int64(0)
	for _, it := range items {
		if it.Out {
			n++
		}
	}
	return n
}
