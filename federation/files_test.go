package federation

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/envelope"
	"github.com/privateline/privateline/federation/wire"
	"github.com/privateline/privateline/serverkey"
	"github.com/privateline/privateline/storage"
)

// fileNode is a node on a real storage.DB with files, and a clock the
// test moves.
type fileNode struct {
	realNode
	dir   string
	clock atomic.Int64 // ms offset from time.Now
}

func (n *fileNode) now() time.Time {
	return time.Now().Add(time.Duration(n.clock.Load()) * time.Millisecond)
}

func newFileNode(t testing.TB, name privateline.ServerName, users ...string) (*fileNode, map[string]storage.ID) {
	t.Helper()
	dir := t.TempDir()
	db, err := storage.Open(storage.Options{Dir: string(name), InMemory: true, Key: make(privateline.Secret, 32), FilesDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ids := map[string]storage.ID{}
	for _, u := range users {
		user := &storage.User{ID: storage.NewID(), Username: privateline.Username(u), KDF: storage.KDF{Name: "pbkdf2-sha256", Iterations: 600000}}
		if err := db.CreateUser(user); err != nil {
			t.Fatal(err)
		}
		ids[u] = user.ID
	}
	key, err := serverkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return &fileNode{realNode: realNode{node: node{name: name, key: key}, db: db}, dir: dir}, ids
}

func (n *fileNode) start(t testing.TB, peers []Peer, maxFile int64) {
	t.Helper()
	svc, err := New(Config{Name: n.name, Key: n.key, ListenAddr: "127.0.0.1:0", Peers: peers, Log: quiet, Now: n.now, MaxFileSize: maxFile}, n.db)
	if err != nil {
		t.Fatal(err)
	}
	svc.base, svc.jitter, svc.lim = 5*time.Millisecond, func() float64 { return 0.5 }, testLimits
	n.db.SetOutboxNotifier(svc.Wake)
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	n.svc = svc
	t.Cleanup(func() { svc.Close() })
}

// envFiles returns a direct envelope listing files that envelope.Parse
// accepts.
func envFiles(t testing.TB, id string, from privateline.Address, to []privateline.Address, expires time.Time, files ...string) []byte {
	t.Helper()
	sorted, fs := slices.Clone(to), slices.Clone(files)
	slices.Sort(sorted)
	slices.Sort(fs)
	h := map[string]any{"v": 1, "suite": "pl1", "id": id, "from": from, "to": sorted, "conversation": "c1", "sent_at": time.Now().UnixMilli(), "files": fs}
	if !expires.IsZero() {
		h["expires_at"] = expires.UnixMilli()
	}
	keys := map[string]string{}
	for range len(to) + 1 {
		keys[newID()] = "AAAA"
	}
	b, err := json.Marshal(map[string]any{"ciphertext": "AAAA", "header": h, "keys": keys, "nonce": "AAAA", "signature": "AAAA"})
	if err != nil {
		t.Fatal(err)
	}
	if h, err := envelope.Parse(b); err != nil || len(h.Files) != len(files) {
		t.Fatalf("test envelope refused: %v", err)
	}
	return b
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// fileWorld: alice@A sends a message listing a file of hers to bob@B
// (carol@B is not a recipient); A and B federate over real storage.
type fileWorld struct {
	a, b         *fileNode
	aid, bid     map[string]storage.ID
	alice        privateline.Address
	bob, carol   privateline.Address
	file, msg    string
	blob         []byte
	messageOnB   func() bool
	remoteCached func() bool
}

func newFileWorld(t testing.TB, size int, expires time.Time) *fileWorld {
	t.Helper()
	w := &fileWorld{}
	w.a, w.aid = newFileNode(t, nameA, "alice")
	w.b, w.bid = newFileNode(t, nameB, "bob", "carol")
	w.a.start(t, []Peer{{Name: nameB, Key: w.b.key.Public()}}, 0)
	w.b.start(t, []Peer{{Name: nameA, Key: w.a.key.Public()}}, 0)
	w.a.svc.SetPeerAddr(nameB, w.b.svc.Addr())
	w.b.svc.SetPeerAddr(nameA, w.a.svc.Addr())
	w.alice, w.bob, w.carol = addr("alice", nameA), addr("bob", nameB), addr("carol", nameB)
	w.blob = randomBytes(size)
	fi, err := w.a.db.CreateFile(storage.FileUpload{Uploader: w.aid["alice"], Body: bytes.NewReader(w.blob), MaxSize: 1 << 30, Quota: 1 << 30, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	w.file, w.msg = fi.ID, newID()
	raw := envFiles(t, w.msg, w.alice, []privateline.Address{w.bob}, expires, w.file)
	if _, _, err := w.a.db.Deliver(&storage.Delivery{MsgID: w.msg, Raw: raw, Sender: storage.Recipient{ID: w.aid["alice"], Address: w.alice},
		Remote: []privateline.Address{w.bob}, Files: []string{w.file}, ExpiresAt: expires}); err != nil {
		t.Fatal(err)
	}
	w.messageOnB = func() bool {
		_, err := w.b.db.RemoteFileSource(w.bid["bob"], w.file, time.Now())
		return err == nil
	}
	w.remoteCached = func() bool {
		ok, err := w.b.db.RemoteFileCached(nameA, w.file)
		return err == nil && ok
	}
	waitForTB(t, "the message on B", w.messageOnB)
	return w
}

// waitForTB is waitFor for benchmarks too.
func waitForTB(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// BenchmarkFetchRemoteFile measures one cross-server fetch of a 10 MiB
// file over QUIC on loopback: the request, the signed answer, the bytes,
// their SHA-256 and the synced write of the copy (docs/benchmarks.md).
func BenchmarkFetchRemoteFile(b *testing.B) {
	const size = 10 << 20
	b.SetBytes(size)
	for range b.N {
		b.StopTimer()
		w := newFileWorld(b, size, time.Time{})
		b.StartTimer()
		if err := w.b.svc.FetchRemoteFile(context.Background(), nameA, w.file, w.msg, w.bob); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		w.a.svc.Close()
		w.b.svc.Close()
		b.StartTimer()
	}
}

// read returns bob's cached copy of the file on B.
func (w *fileWorld) read(t *testing.T) []byte {
	t.Helper()
	_, f, err := w.b.db.OpenRemoteFile(nameA, w.file)
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

// A file listed in a message alice@A sent bob@B is fetched for bob with
// the same bytes; only bob's server may have it for bob.
func TestFileAcrossServers(t *testing.T) {
	w := newFileWorld(t, 300<<10, time.Time{})
	ctx := testCtx(t)

	src, err := w.b.db.RemoteFileSource(w.bid["bob"], w.file, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if src.Origin != nameA || src.Message != w.msg || src.Requester != w.bob {
		t.Fatalf("source %+v", src)
	}
	if _, err := w.b.db.RemoteFileSource(w.bid["carol"], w.file, time.Now()); !privateline.Is(privateline.NotExist, err) {
		t.Fatalf("carol, not a recipient, may read the file: %v", err)
	}
	if w.remoteCached() {
		t.Fatal("cached before any download")
	}
	if err := w.b.svc.FetchRemoteFile(ctx, src.Origin, w.file, src.Message, src.Requester); err != nil {
		t.Fatal(err)
	}
	if got := w.read(t); !bytes.Equal(got, w.blob) {
		t.Fatalf("fetched %d bytes that differ from the %d sent", len(got), len(w.blob))
	}
	if n := counter(w.a.svc.met.files, "served"); n != 1 {
		t.Fatalf("A served %v files, want 1", n)
	}

	// Requests A must answer unknown_file: a user of B who is not in the
	// envelope's to, a requester on another server than the asking one,
	// another message, another file.
	for name, c := range map[string]struct {
		file, msg string
		who       privateline.Address
	}{
		"not a recipient":     {w.file, w.msg, w.carol},
		"requester elsewhere": {w.file, w.msg, addr("bob", nameC)},
		"sender as requester": {w.file, w.msg, w.alice},
		"another message":     {w.file, newID(), w.bob},
		"another file":        {newID(), w.msg, w.bob},
	} {
		err := w.b.svc.FetchRemoteFile(ctx, nameA, c.file, c.msg, c.who)
		if !privateline.Is(privateline.NotExist, err) {
			t.Errorf("%s: %v, want NotExist (unknown_file)", name, err)
		}
	}
	if n := counter(w.a.svc.met.files, "answered_unknown"); n != 5 {
		t.Fatalf("A answered unknown_file %v times, want 5", n)
	}
}

// A message deleted for everyone by its sender: the origin answers
// unknown_file, and the delete that reaches B takes B's copy of the file.
func TestFileAfterDelete(t *testing.T) {
	w := newFileWorld(t, 1000, time.Time{})
	ctx := testCtx(t)
	if err := w.b.svc.FetchRemoteFile(ctx, nameA, w.file, w.msg, w.bob); err != nil {
		t.Fatal(err)
	}
	if !w.remoteCached() {
		t.Fatal("not cached after the fetch")
	}
	// The origin's answer once the message is gone there, before B hears.
	a2, _, err := w.a.db.FileForPeer(nameB, w.bob, w.msg, w.file, time.Now())
	if err != nil || a2 == nil {
		t.Fatalf("A does not serve the file before the delete: %v", err)
	}
	if err := w.a.db.DeleteMessage(w.aid["alice"], w.msg, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.a.db.FileForPeer(nameB, w.bob, w.msg, w.file, time.Now()); !privateline.Is(privateline.NotExist, err) {
		t.Fatalf("A serves the file of a deleted message: %v", err)
	}
	waitFor(t, "the delete on B", func() bool { return !w.messageOnB() })
	waitFor(t, "B's copy to go", func() bool { return !w.remoteCached() })
	if err := w.b.svc.FetchRemoteFile(ctx, nameA, w.file, w.msg, w.bob); !privateline.Is(privateline.NotExist, err) {
		t.Fatalf("fetch after the delete: %v, want NotExist", err)
	}
	// The blob is removed just after the commit that drops its record.
	waitFor(t, "B to keep no blob after the delete", func() bool {
		blobs, err := os.ReadDir(filepath.Join(w.b.dir, "blobs"))
		return err == nil && len(blobs) == 0
	})
}

// An expired message: the origin answers unknown_file.
func TestFileOfExpiredMessage(t *testing.T) {
	w := newFileWorld(t, 1000, time.Now().Add(30*time.Second))
	w.a.clock.Store(time.Minute.Milliseconds()) // A's clock passes the expiry (within the freshness window)
	err := w.b.svc.FetchRemoteFile(testCtx(t), nameA, w.file, w.msg, w.bob)
	if !privateline.Is(privateline.NotExist, err) {
		t.Fatalf("fetch of an expired message's file: %v, want NotExist", err)
	}
	if w.remoteCached() {
		t.Fatal("cached")
	}
}

// origin is a fake origin server (a fake store answering FileForPeer)
// and B a real server holding a message from it that lists one file.
type badOrigin struct {
	a     *node
	b     *fileNode
	bid   map[string]storage.ID
	file  string
	msg   string
	bob   privateline.Address
	mu    sync.Mutex
	serve func() (*storage.FileInfo, *os.File, error) // nil: unknown_file
}

func (o *badOrigin) setServe(fn func() (*storage.FileInfo, *os.File, error)) {
	o.mu.Lock()
	o.serve = fn
	o.mu.Unlock()
}

func (o *badOrigin) getServe() func() (*storage.FileInfo, *os.File, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.serve
}

func newBadOrigin(t *testing.T) *badOrigin {
	t.Helper()
	o := &badOrigin{a: newNode(t, nameA, "alice")}
	o.b, o.bid = newFileNode(t, nameB, "bob")
	o.a.st.files.peerFile = func(privateline.ServerName, privateline.Address, string, string) (*storage.FileInfo, *os.File, error) {
		if fn := o.getServe(); fn != nil {
			return fn()
		}
		return nil, nil, privateline.E("test", privateline.NotExist)
	}
	o.a.start(t, []Peer{{Name: nameB, Key: o.b.key.Public()}}, nil)
	o.b.start(t, []Peer{{Name: nameA, Key: o.a.key.Public()}}, 0)
	o.b.svc.SetPeerAddr(nameA, o.a.svc.Addr())
	o.file, o.msg, o.bob = newID(), newID(), addr("bob", nameB)
	raw := envFiles(t, o.msg, addr("alice", nameA), []privateline.Address{o.bob}, time.Time{}, o.file)
	res, _, err := o.b.db.ReceiveTransaction(nameA, newID(), []storage.InboundEntry{{ID: o.msg, Raw: raw, From: addr("alice", nameA),
		Recipients: []storage.Recipient{{ID: o.bid["bob"], Address: o.bob}}, Files: []string{o.file}}}, time.Now())
	if err != nil || res[0].Status != storage.InboundAccepted {
		t.Fatalf("%v %v", res, err)
	}
	return o
}

// serveBytes makes the origin answer with data, announcing size and sum.
func (o *badOrigin) serveBytes(t *testing.T, data []byte, size int64, sum []byte) {
	p := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	o.setServe(func() (*storage.FileInfo, *os.File, error) {
		f, err := os.Open(p)
		return &storage.FileInfo{ID: o.file, Size: size, SHA256: sum}, f, err
	})
}

func (o *badOrigin) nothingKept(t *testing.T) {
	t.Helper()
	if ok, err := o.b.db.RemoteFileCached(nameA, o.file); err != nil || ok {
		t.Fatalf("B keeps the file (%v)", err)
	}
	for _, d := range []string{"blobs", "tmp"} {
		if ents, _ := os.ReadDir(filepath.Join(o.b.dir, d)); len(ents) != 0 {
			t.Fatalf("B has %d files in %s", len(ents), d)
		}
	}
}

// Bytes that are not what the answer announced are refused and nothing is
// kept: another digest, fewer bytes (a stream that ends early), an
// announced size over the requester's limit.
func TestFileAnswerChecks(t *testing.T) {
	o := newBadOrigin(t)
	ctx := testCtx(t)
	data := randomBytes(200 << 10)
	sum := sha256.Sum256(data)
	other := sha256.Sum256([]byte("other"))

	o.serveBytes(t, data, int64(len(data)), other[:])
	err := o.b.svc.FetchRemoteFile(ctx, nameA, o.file, o.msg, o.bob)
	if !privateline.Is(privateline.Unavailable, err) || !errorsIs(err, storage.ErrRemoteFileMismatch) {
		t.Fatalf("digest mismatch: %v", err)
	}
	o.nothingKept(t)
	if n := counter(o.b.svc.met.files, "fetch_mismatch"); n != 1 {
		t.Fatalf("mismatches counted %v", n)
	}

	// The origin announces more bytes than it has: the stream stops short.
	o.serveBytes(t, data, int64(len(data))+1000, sum[:])
	if err := o.b.svc.FetchRemoteFile(ctx, nameA, o.file, o.msg, o.bob); !privateline.Is(privateline.Unavailable, err) {
		t.Fatalf("truncated body: %v", err)
	}
	o.nothingKept(t)

	o.serveBytes(t, data, wire.MaxFileSize+1, sum[:])
	if err := o.b.svc.FetchRemoteFile(ctx, nameA, o.file, o.msg, o.bob); !privateline.Is(privateline.Unavailable, err) {
		t.Fatalf("oversized: %v", err)
	}
	o.nothingKept(t)

	// The right bytes are kept.
	o.serveBytes(t, data, int64(len(data)), sum[:])
	if err := o.b.svc.FetchRemoteFile(ctx, nameA, o.file, o.msg, o.bob); err != nil {
		t.Fatal(err)
	}
	_, f, err := o.b.db.OpenRemoteFile(nameA, o.file)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(got, data) {
		t.Fatal("kept bytes differ")
	}
}

func errorsIs(err, target error) bool {
	for e := err; e != nil; {
		if e == target {
			return true
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		e = u.Unwrap()
	}
	return false
}

// Concurrent downloads of one file make one transfer and all succeed.
func TestConcurrentFetchesOneTransfer(t *testing.T) {
	o := newBadOrigin(t)
	data := randomBytes(64 << 10)
	sum := sha256.Sum256(data)
	o.serveBytes(t, data, int64(len(data)), sum[:])
	gate := make(chan struct{})
	serve := o.getServe()
	o.setServe(func() (*storage.FileInfo, *os.File, error) {
		<-gate
		return serve()
	})
	const n = 8
	errs := make(chan error, n)
	for range n {
		go func() { errs <- o.b.svc.FetchRemoteFile(testCtx(t), nameA, o.file, o.msg, o.bob) }()
	}
	waitFor(t, "every download to wait for the one fetch", func() bool {
		o.b.svc.files.mu.Lock()
		defer o.b.svc.files.mu.Unlock()
		fl := o.b.svc.files.flights[fileKey{nameA, o.file}]
		return len(o.b.svc.files.flights) == 1 && fl != nil && fl.waiters == n
	})
	close(gate)
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	o.a.st.mu.Lock()
	calls := o.a.st.files.peerCalls
	o.a.st.mu.Unlock()
	if calls != 1 {
		t.Fatalf("the origin was asked %d times, want 1", calls)
	}
	if n := counter(o.b.svc.met.files, "fetched"); n != 1 {
		t.Fatalf("%v fetches, want 1", n)
	}
}

// Wire-level refusals of file requests: more than one entry, and an
// origin asking for a requester on a server other than itself.
func TestFileRequestRefusals(t *testing.T) {
	o := newBadOrigin(t)
	c := dialRaw(t, nameB, o.b.key, o.a)
	e := wire.Entry{ID: newID(), File: newID(), Message: newID(), Requester: addr("bob", nameB)}
	req := &wire.Transaction{Type: wire.TypeFileRequest, Entries: []wire.Entry{e, {ID: newID(), File: newID(), Message: newID(), Requester: e.Requester}},
		Header: wire.Header{Origin: nameB, Destination: nameA, TxnID: newID(), CreatedAt: time.Now().UnixMilli()}}
	wantRefusal(t, ask(t, c, sign(t, req, o.b.key)), string(wire.TooManyEntries))

	// One entry, answered unknown_file (the fake store knows no file):
	// a signed file_answer, then the end of the stream.
	req.Entries, req.TxnID = req.Entries[:1], newID()
	resp := ask(t, c, sign(t, req, o.b.key))
	ans, err := wire.VerifyReceipt(resp, wire.Peer{Name: nameA, Key: o.a.key.Public()}, nameB, time.Now(), wire.DefaultLimits(), req)
	if err != nil {
		t.Fatal(err)
	}
	if ans.Type != wire.TypeFileAnswer || ans.Results[0].Error != "unknown_file" {
		t.Fatalf("answer %+v", ans)
	}
}

// The answering side caps file streams per origin: over the cap, an
// error frame rate_limited.
func TestFileStreamsPerOrigin(t *testing.T) {
	o := newBadOrigin(t)
	data := randomBytes(1 << 10)
	sum := sha256.Sum256(data)
	o.serveBytes(t, data, int64(len(data)), sum[:])
	gate := make(chan struct{})
	var entered atomic.Int32
	serve := o.getServe()
	o.setServe(func() (*storage.FileInfo, *os.File, error) {
		entered.Add(1)
		<-gate
		return serve()
	})
	c := dialRaw(t, nameB, o.b.key, o.a)
	request := func() []byte {
		req := &wire.Transaction{Type: wire.TypeFileRequest, Entries: []wire.Entry{{ID: newID(), File: o.file, Message: o.msg, Requester: o.bob}},
			Header: wire.Header{Origin: nameB, Destination: nameA, TxnID: newID(), CreatedAt: time.Now().UnixMilli()}}
		return sign(t, req, o.b.key)
	}
	var wg sync.WaitGroup
	for range MaxFileStreamsPerOrigin {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := c.OpenStream(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			st.SetDeadline(time.Now().Add(15 * time.Second))
			if err := st.Send(request()); err != nil {
				t.Error(err)
				return
			}
			if _, err := st.ReceiveFrame(); err != nil {
				t.Error(err)
				return
			}
			if b, err := io.ReadAll(st.Body(int64(len(data)), 5*time.Second)); err != nil || !bytes.Equal(b, data) {
				t.Errorf("body: %v", err)
			}
		}()
	}
	waitFor(t, "the streams to be served", func() bool { return entered.Load() == MaxFileStreamsPerOrigin })
	wantRefusal(t, ask(t, c, request()), codeRateLimited)
	close(gate)
	wg.Wait()
}
