package storage

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/privateline/privateline"
)

// receiveWithFiles commits an inbound message from rob listing files.
func receiveWithFiles(t *testing.T, d *DB, to []*User, exp time.Time, now time.Time, files ...string) string {
	t.Helper()
	e := entry(rob, to...)
	e.Files, e.ExpiresAt = files, exp
	res, _, err := d.ReceiveTransaction(other, newMsgID(), []InboundEntry{e}, now)
	if err != nil || res[0].Status != InboundAccepted {
		t.Fatalf("receive: %v %v", res, err)
	}
	return e.ID
}

func readRemote(t *testing.T, d *DB, id string) []byte {
	t.Helper()
	_, f, err := d.OpenRemoteFile(other, id)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Files of other servers: who may read them, the checks before a copy is
// kept, and the copy going with the last message that lists it (a
// recipient removing it, expiry, a crash's leftover swept).
func TestRemoteFiles(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		us := createUsers(t, e.db, "ann", "ben", "cat")
		ann, ben, cat := us[0], us[1], us[2]
		now := time.Now()
		data := make([]byte, 100<<10)
		rand.Read(data)
		sum := sha256.Sum256(data)
		fid := newMsgID()
		msg := receiveWithFiles(t, e.db, []*User{ann, ben}, time.Time{}, now, fid)

		// The access rule: holders of a live copy of a message from the
		// origin listing the file.
		src, err := e.db.RemoteFileSource(ann.ID, fid, now)
		if err != nil || src.Origin != other || src.Message != msg || src.Requester != rcpt(ann).Address {
			t.Fatalf("ann's source: %+v %v", src, err)
		}
		for _, c := range []struct {
			who *User
			id  string
		}{{cat, fid}, {ann, newMsgID()}, {ann, "not-an-id"}} {
			if _, err := e.db.RemoteFileSource(c.who.ID, c.id, now); !privateline.Is(privateline.NotExist, err) {
				t.Errorf("%s, %s: %v, want NotExist", c.who.Username, c.id, err)
			}
		}
		if _, _, err := e.db.OpenRemoteFile(other, fid); !privateline.Is(privateline.NotExist, err) {
			t.Fatalf("open before any fetch: %v", err)
		}

		// Bytes that do not match the announcement leave nothing.
		other2 := sha256.Sum256([]byte("x"))
		for name, c := range map[string]struct {
			body []byte
			size int64
			sum  []byte
		}{
			"digest":     {data, int64(len(data)), other2[:]},
			"fewer":      {data[:1000], int64(len(data)), sum[:]},
			"more bytes": {append(append([]byte(nil), data...), 'x'), int64(len(data)), sum[:]},
		} {
			_, err := e.db.StoreRemoteFile(other, fid, bytes.NewReader(c.body), c.size, c.sum, now)
			if !privateline.Is(privateline.Invalid, err) || !errors.Is(err, ErrRemoteFileMismatch) {
				t.Errorf("%s: %v, want the mismatch", name, err)
			}
		}
		if _, err := e.db.StoreRemoteFile(other, fid, io.MultiReader(bytes.NewReader(data[:10]), failing{}), int64(len(data)), sum[:], now); !privateline.Is(privateline.Unavailable, err) {
			t.Errorf("a body that breaks: %v", err)
		}
		if tmp, blobs := blobCount(t, e); tmp+blobs != 0 {
			t.Fatalf("refused copies left %d temporary files and %d blobs", tmp, blobs)
		}
		if ok, _ := e.db.RemoteFileCached(other, fid); ok {
			t.Fatal("a refused copy is cached")
		}
		// Another origin's file of the same id is another file: no
		// message lists it, nothing is kept.
		if _, err := e.db.StoreRemoteFile("third.example", fid, bytes.NewReader(data), int64(len(data)), sum[:], now); !privateline.Is(privateline.NotExist, err) {
			t.Fatalf("a file no message lists: %v", err)
		}

		if _, err := e.db.StoreRemoteFile(other, fid, bytes.NewReader(data), int64(len(data)), sum[:], now); err != nil {
			t.Fatal(err)
		}
		if got := readRemote(t, e.db, fid); !bytes.Equal(got, data) {
			t.Fatal("the cached copy differs")
		}
		// Stored again (two fetches racing): the first copy stays.
		if fi, err := e.db.StoreRemoteFile(other, fid, bytes.NewReader(data), int64(len(data)), sum[:], now); err != nil || fi.Size != int64(len(data)) {
			t.Fatalf("second store: %v", err)
		}
		if tmp, blobs := blobCount(t, e); tmp != 0 || blobs != 1 {
			t.Fatalf("%d temporary files and %d blobs, want one blob", tmp, blobs)
		}

		// The copy survives a restart (it is not an orphan).
		e.reopen()
		if got := readRemote(t, e.db, fid); !bytes.Equal(got, data) {
			t.Fatal("the cached copy differs after a restart")
		}

		// ben removes his copy: ann still holds hers, the copy stays.
		if err := e.db.DeleteMessage(ben.ID, msg, now); err != nil {
			t.Fatal(err)
		}
		if _, err := e.db.RemoteFileSource(ben.ID, fid, now); !privateline.Is(privateline.NotExist, err) {
			t.Fatalf("ben after removing his copy: %v", err)
		}
		if ok, _ := e.db.RemoteFileCached(other, fid); !ok {
			t.Fatal("the copy went while ann holds the message")
		}
		// ann removes hers: the message goes, and the copy with it.
		if err := e.db.DeleteMessage(ann.ID, msg, now); err != nil {
			t.Fatal(err)
		}
		if ok, _ := e.db.RemoteFileCached(other, fid); ok {
			t.Fatal("the copy outlived its last message")
		}
		if tmp, blobs := blobCount(t, e); tmp+blobs != 0 {
			t.Fatalf("%d temporary files and %d blobs after the last message went", tmp, blobs)
		}
		if _, err := e.db.StoreRemoteFile(other, fid, bytes.NewReader(data), int64(len(data)), sum[:], now); !privateline.Is(privateline.NotExist, err) {
			t.Fatalf("storing after the last message went: %v", err)
		}

		// Expiry: the sweep removes the message and the copy.
		fid2 := newMsgID()
		receiveWithFiles(t, e.db, []*User{ann}, now.Add(time.Minute), now, fid2)
		if _, err := e.db.StoreRemoteFile(other, fid2, bytes.NewReader(data), int64(len(data)), sum[:], now); err != nil {
			t.Fatal(err)
		}
		if _, err := e.db.RemoteFileSource(ann.ID, fid2, now.Add(2*time.Minute)); !privateline.Is(privateline.NotExist, err) {
			t.Fatalf("an expired message's file: %v", err)
		}
		if n, err := e.db.SweepMessages(now.Add(2 * time.Minute)); err != nil || n != 1 {
			t.Fatalf("sweep: %d %v", n, err)
		}
		if ok, _ := e.db.RemoteFileCached(other, fid2); ok {
			t.Fatal("the copy outlived its expired message")
		}

		// A copy left without references (a crash between the message's
		// removal and its copy's) goes at the next file sweep.
		fid3 := newMsgID()
		msg3 := receiveWithFiles(t, e.db, []*User{ann}, time.Time{}, now, fid3)
		if _, err := e.db.StoreRemoteFile(other, fid3, bytes.NewReader(data), int64(len(data)), sum[:], now); err != nil {
			t.Fatal(err)
		}
		b := e.db.db.NewBatch()
		b.Delete(tRemoteFileRef.key(mustID(t, fid3), e.db.serverHash(other), mustID(t, msg3)), nil)
		if err := e.db.commit(b); err != nil {
			t.Fatal(err)
		}
		if n, err := e.db.SweepFiles(now, time.Hour); err != nil || n != 1 {
			t.Fatalf("file sweep: %d %v", n, err)
		}
		if tmp, blobs := blobCount(t, e); tmp+blobs != 0 {
			t.Fatalf("%d temporary files and %d blobs after the sweep", tmp, blobs)
		}
	})
}

type failing struct{}

func (failing) Read([]byte) (int, error) { return 0, errors.New("the stream broke") }

// FileForPeer answers only for a recipient on the asking server of a
// live direct message that a user here sent and whose files list the file.
func TestFileForPeer(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		us := createUsers(t, e.db, "ann", "ben")
		ann, ben := us[0], us[1]
		now := time.Now()
		data := []byte(strings.Repeat("picture", 100))
		fi := upload(t, e, ann, data, now)
		other := upload(t, e, ann, []byte("unlisted"), now)
		dl := &Delivery{MsgID: newMsgID(), Sender: rcpt(ann), Recipients: []Recipient{rcpt(ben)}, Remote: []privateline.Address{rob, sue},
			Files: []string{fi.ID}, ExpiresAt: now.Add(time.Hour)}
		dl.Raw = []byte(`{"id":"` + dl.MsgID + `"}`)
		if _, _, err := e.db.Deliver(dl); err != nil {
			t.Fatal(err)
		}
		got, f, err := e.db.FileForPeer("other.example", rob, dl.MsgID, fi.ID, now)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(f)
		f.Close()
		if !bytes.Equal(b, data) || got.Size != int64(len(data)) || !bytes.Equal(got.SHA256, fi.SHA256) {
			t.Fatal("FileForPeer serves other bytes")
		}
		for name, c := range map[string]struct {
			origin privateline.ServerName
			who    privateline.Address
			msg    string
			file   string
			at     time.Time
		}{
			"not in to":             {"other.example", rita, dl.MsgID, fi.ID, now},
			"requester elsewhere":   {"other.example", sue, dl.MsgID, fi.ID, now},
			"a local recipient":     {"hs", rcpt(ben).Address, dl.MsgID, fi.ID, now},
			"another message":       {"other.example", rob, newMsgID(), fi.ID, now},
			"a file it lists not":   {"other.example", rob, dl.MsgID, other.ID, now},
			"after the expiry":      {"other.example", rob, dl.MsgID, fi.ID, now.Add(2 * time.Hour)},
			"a malformed file id":   {"other.example", rob, dl.MsgID, "x", now},
			"a malformed message":   {"other.example", rob, "x", fi.ID, now},
			"the sender as request": {"hs", rcpt(ann).Address, dl.MsgID, fi.ID, now},
		} {
			if _, _, err := e.db.FileForPeer(c.origin, c.who, c.msg, c.file, c.at); !privateline.Is(privateline.NotExist, err) {
				t.Errorf("%s: %v, want NotExist", name, err)
			}
		}
		// A message from another server never makes this server answer
		// for that server's files.
		in := receiveWithFiles(t, e.db, []*User{ben}, time.Time{}, now, fi.ID)
		if _, _, err := e.db.FileForPeer("other.example", rob, in, fi.ID, now); !privateline.Is(privateline.NotExist, err) {
			t.Errorf("an inbound message: %v", err)
		}
		// Deleted for everyone: unknown.
		if err := e.db.DeleteMessage(ann.ID, dl.MsgID, now); err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.db.FileForPeer("other.example", rob, dl.MsgID, fi.ID, now); !privateline.Is(privateline.NotExist, err) {
			t.Errorf("after the delete: %v", err)
		}
	})
}
