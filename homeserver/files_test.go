package homeserver_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clients/go/client"
	"github.com/privateline/privateline/clients/go/e2ee"
	"github.com/privateline/privateline/homeserver"
)

// TestSDKFiles: alice sends bob a picture-sized attachment with the SDK;
// bob downloads and decrypts it; carol, who is no recipient, and an
// anonymous caller cannot fetch it; it goes when alice deletes the
// message for everyone, and the deleted message's id stays refused.
func TestSDKFiles(t *testing.T) {
	ctx := context.Background()
	ts := startServer(t, testConfig(t))
	aliceU := sdkRegister(t, ts, sdkClient(t, ts, nil), "falice", "alice")
	bobU := sdkRegister(t, ts, sdkClient(t, ts, nil), "fbob", "bob")
	carolU := sdkRegister(t, ts, sdkClient(t, ts, nil), "fcarol", "carol")
	alice, bob, carol := aliceU.login(t), bobU.login(t), carolU.login(t)

	picture := randBytes(3 << 20)
	att, err := alice.UploadFile(ctx, picture, "beach.jpg", "image/jpeg")
	if err != nil {
		t.Fatal(err)
	}
	msg := &e2ee.Message{Type: e2ee.MessageTypeText, Body: "look", Attachments: []e2ee.Attachment{*att}}
	sent, err := alice.Send(ctx, []privateline.Address{bob.Address()}, msg, client.SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	download := func(s *client.Session) ([]byte, *client.Item, error) {
		t.Helper()
		it := findItem(mustMessages(t, s, client.MessagesQuery{}), sent.ID)
		if it == nil || it.Err != nil || len(it.Message.Attachments) != 1 {
			t.Fatalf("%s's copy of the message: %+v", s.Address(), it)
		}
		data, err := s.DownloadFile(ctx, it.Message.Attachments[0])
		return data, it, err
	}
	got, it, err := download(bob)
	if err != nil || !bytes.Equal(got, picture) {
		t.Fatalf("bob's download: %d bytes, %v", len(got), err)
	}
	if a := it.Message.Attachments[0]; a.Name != "beach.jpg" || a.MIME != "image/jpeg" || a.Size != 3<<20 {
		t.Errorf("attachment as bob sees it: %+v", a)
	}
	if got, _, err := download(alice); err != nil || !bytes.Equal(got, picture) {
		t.Fatalf("alice's download: %v", err)
	}
	if _, err := carol.DownloadFile(ctx, *att); !privateline.Is(privateline.NotExist, err) {
		t.Errorf("carol's download: %v, want NotExist", err)
	}
	if r := ts.do("GET", "/api/files/"+att.FileID, "", nil); r.Status != http.StatusUnauthorized {
		t.Errorf("anonymous download: %d", r.Status)
	}
	// A tampered blob is refused before decryption (the SDK checks the hash).
	bad := *att
	bad.SHA256 = make([]byte, 32)
	if _, err := bob.DownloadFile(ctx, bad); e2ee.ReasonOf(err) != e2ee.ErrHashMismatch {
		t.Errorf("a blob that does not match its hash: %v", err)
	}

	if err := alice.Delete(ctx, sent.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.DownloadFile(ctx, *att); !privateline.Is(privateline.NotExist, err) {
		t.Errorf("bob's download after the message was deleted: %v", err)
	}
	if tmp, blobs := ts.fileDirs(); tmp+blobs != 0 || ts.fileRecords() != 0 {
		t.Errorf("after its last message: %d temporary files, %d blobs, %d records", tmp, blobs, ts.fileRecords())
	}
	// A retry of the deleted message cannot bring it back.
	if _, err := alice.Send(ctx, []privateline.Address{bob.Address()}, msg, client.SendOptions{ID: sent.ID}); !privateline.Is(privateline.Exist, err) {
		t.Errorf("re-sending a deleted message's id: %v, want Exist", err)
	}
}

// TestFileDownloadRules: only the uploader and the holders of a live copy
// of a message listing the file get it; headers; unknown files refused at
// send; deleting an attached file; tombstones.
func TestFileDownloadRules(t *testing.T) {
	ts := startServer(t, testConfig(t))
	alice := ts.registerWithKeys("fralice", "alice")
	bob := ts.registerWithKeys("frbob", "bob")
	carol := ts.registerWithKeys("frcarol", "carol")
	data := randBytes(200 << 10)
	att, blob := ts.uploadAttachment(alice.account, data)
	bobs, _ := ts.uploadAttachment(bob.account, []byte("bob's"))

	// Before any message: only alice.
	expectAPIError(t, ts.do("GET", "/api/files/"+att.FileID, bob.Access, nil), http.StatusNotFound, "not_found", "bob before the message")
	if r := ts.do("GET", "/api/files/"+att.FileID, alice.Access, nil); r.Status != http.StatusOK || !bytes.Equal(r.Body, blob) {
		t.Fatalf("alice's own file: %d", r.Status)
	}

	// Files the sender did not upload, or that do not exist: 400
	// unknown_file and nothing stored.
	before, _ := homeserver.StoreFingerprint(ts.srv)
	for _, files := range [][]e2ee.Attachment{{bobs}, {att, bobs}, {func() e2ee.Attachment { a := att; a.FileID = "00112233445566778899aabbccddeeff"; return a }()}} {
		m := sealFor(t, alice, []*e2ee.KeyBundle{bob.Keys.Bundle}, "x", withFiles(files...))
		expectAPIError(t, ts.send(alice, m), http.StatusBadRequest, "unknown_file", "a message with a foreign or unknown file")
	}
	if after, _ := homeserver.StoreFingerprint(ts.srv); after != before {
		t.Error("a refused message changed the store")
	}

	m := sealFor(t, alice, []*e2ee.KeyBundle{bob.Keys.Bundle}, "with a file", withFiles(att))
	ts.sendOK(alice, m)
	r := ts.do("GET", "/api/files/"+att.FileID, bob.Access, nil)
	sum := sha256.Sum256(blob)
	if r.Status != http.StatusOK || !bytes.Equal(r.Body, blob) ||
		r.Header.Get("Content-Type") != "application/octet-stream" ||
		r.Header.Get("Cache-Control") != "private, no-store" ||
		r.Header.Get("Content-Length") != strconv.Itoa(len(blob)) ||
		r.Header.Get("ETag") != `"`+hex.EncodeToString(sum[:])+`"` {
		t.Fatalf("bob's download: %d %v", r.Status, r.Header)
	}
	// A restart keeps the file.
	ts.restart()
	if r := ts.do("GET", "/api/files/"+att.FileID, bob.Access, nil); r.Status != http.StatusOK || !bytes.Equal(r.Body, blob) {
		t.Fatalf("bob's download after a restart: %d", r.Status)
	}
	if r := ts.do("GET", "/api/files/"+att.FileID, bob.Access, nil, "Range", "bytes=0-99"); r.Status != http.StatusPartialContent || !bytes.Equal(r.Body, blob[:100]) {
		t.Errorf("range: %d, %d bytes", r.Status, len(r.Body))
	}
	if r := ts.do("GET", "/api/files/"+att.FileID, bob.Access, nil, "If-None-Match", r.Header.Get("ETag")); r.Status != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", r.Status)
	}
	for _, id := range []string{att.FileID, bobs.FileID, "nope", "00112233445566778899aabbccddeeff"} {
		expectAPIError(t, ts.do("GET", "/api/files/"+id, carol.Access, nil), http.StatusNotFound, "not_found", "carol's download of "+id)
	}
	expectAPIError(t, ts.do("DELETE", "/api/files/"+att.FileID, alice.Access, nil), http.StatusConflict, "file_in_use", "deleting an attached file")
	expectAPIError(t, ts.do("DELETE", "/api/files/"+bobs.FileID, alice.Access, nil), http.StatusNotFound, "not_found", "deleting another's file")
	expectHTTPStatus(t, ts.do("DELETE", "/api/files/"+bobs.FileID, bob.Access, nil), http.StatusNoContent, "bob deletes his unused file")

	// Bob removes his copy: he loses access; alice still has hers.
	expectHTTPStatus(t, ts.do("DELETE", "/api/messages/"+m.ID(), bob.Access, nil), http.StatusNoContent, "bob removes his copy")
	expectAPIError(t, ts.do("GET", "/api/files/"+att.FileID, bob.Access, nil), http.StatusNotFound, "not_found", "bob without his copy")
	expectHTTPStatus(t, ts.do("GET", "/api/files/"+att.FileID, alice.Access, nil), http.StatusOK, "alice after bob removed his copy")
	expectHTTPStatus(t, ts.do("DELETE", "/api/messages/"+m.ID(), alice.Access, nil), http.StatusNoContent, "alice deletes for everyone")
	expectAPIError(t, ts.do("GET", "/api/files/"+att.FileID, alice.Access, nil), http.StatusNotFound, "not_found", "the file after its message")
	if tmp, blobs := ts.fileDirs(); tmp+blobs != 0 || ts.fileRecords() != 0 {
		t.Errorf("left behind: %d temporary files, %d blobs, %d records", tmp, blobs, ts.fileRecords())
	}
	// Tombstone: the same envelope again is refused, not stored again.
	expectAPIError(t, ts.send(alice, m), http.StatusConflict, "conflict", "re-sending a deleted message")
	if items := ts.mailbox(bob, ""); len(items) != 0 {
		t.Errorf("bob has %d messages after the re-send", len(items))
	}
}

// TestFilesGoWithMessages: a file goes with the last message that lists
// it, by expiry (fake clock and sweep) and by account deletion, metadata
// and blob; a file never listed goes after the grace period.
func TestFilesGoWithMessages(t *testing.T) {
	clock := newStepClock()
	ts := startServer(t, testConfig(t), withStepClock(clock))
	alice := ts.registerWithKeys("fgalice", "alice")
	bob := ts.registerWithKeys("fgbob", "bob")
	carol := ts.registerWithKeys("fgcarol", "carol")
	start := clock.Now()

	// Expiry: two messages share a file; it goes with the later one.
	att, _ := ts.uploadAttachment(alice.account, randBytes(1000))
	short := sealFor(t, alice, []*e2ee.KeyBundle{bob.Keys.Bundle}, "short", func(d *e2ee.Draft) {
		withFiles(att)(d)
		d.SentAt, d.ExpiresAt = start, start.Add(time.Minute)
	})
	long := sealFor(t, alice, []*e2ee.KeyBundle{carol.Keys.Bundle}, "long", func(d *e2ee.Draft) {
		withFiles(att)(d)
		d.SentAt, d.ExpiresAt = start, start.Add(3*time.Minute)
	})
	ts.sendOK(alice, short)
	ts.sendOK(alice, long)
	clock.Advance(time.Minute)
	expectAPIError(t, ts.do("GET", "/api/files/"+att.FileID, bob.Access, nil), http.StatusNotFound, "not_found", "bob after his message expired (before the sweep)")
	expectHTTPStatus(t, ts.do("GET", "/api/files/"+att.FileID, carol.Access, nil), http.StatusOK, "carol while hers lives")
	if n := homeserver.SweepMessages(ts.srv); n != 1 {
		t.Fatalf("swept %d", n)
	}
	if _, blobs := ts.fileDirs(); blobs != 1 {
		t.Fatalf("%d blobs after the first expiry, want 1", blobs)
	}
	clock.Advance(2 * time.Minute)
	if n := homeserver.SweepMessages(ts.srv); n != 1 {
		t.Fatalf("swept %d", n)
	}
	if _, blobs := ts.fileDirs(); blobs != 0 || ts.fileRecords() != 0 {
		t.Fatalf("after the last expiry: %d blobs, %d records", blobs, ts.fileRecords())
	}

	// Account deletion of a recipient takes the message and its file.
	att2, _ := ts.uploadAttachment(alice.account, randBytes(1000))
	ts.sendOK(alice, sealFor(t, alice, []*e2ee.KeyBundle{bob.Keys.Bundle}, "to bob", withFiles(att2)))
	expectHTTPStatus(t, ts.do("DELETE", "/api/account", bob.Access, map[string]any{"auth_key": bob.AuthKey}), http.StatusNoContent, "bob deletes his account")
	if _, blobs := ts.fileDirs(); blobs != 0 || ts.fileRecords() != 0 {
		t.Fatalf("after the recipient's account went: %d blobs, %d records", blobs, ts.fileRecords())
	}
	// Account deletion of the uploader takes their files, used or not.
	att3, _ := ts.uploadAttachment(carol.account, randBytes(1000))
	ts.uploadAttachment(carol.account, randBytes(10))
	ts.sendOK(carol, sealFor(t, carol, []*e2ee.KeyBundle{alice.Keys.Bundle}, "to alice", withFiles(att3)))
	expectHTTPStatus(t, ts.do("DELETE", "/api/account", carol.Access, map[string]any{"auth_key": carol.AuthKey}), http.StatusNoContent, "carol deletes her account")
	if _, blobs := ts.fileDirs(); blobs != 0 || ts.fileRecords() != 0 {
		t.Fatalf("after the uploader's account went: %d blobs, %d records", blobs, ts.fileRecords())
	}

	// Never listed: kept for the grace period, then swept.
	ts.uploadAttachment(alice.account, randBytes(10))
	clock.Advance(ts.cfg.FileUnreferencedGrace - time.Minute)
	homeserver.SweepMessages(ts.srv)
	if _, blobs := ts.fileDirs(); blobs != 1 {
		t.Fatalf("an unlisted file went before the grace period: %d blobs", blobs)
	}
	clock.Advance(time.Minute)
	homeserver.SweepMessages(ts.srv)
	if _, blobs := ts.fileDirs(); blobs != 0 || ts.fileRecords() != 0 {
		t.Fatalf("an unlisted file outlived the grace period: %d blobs, %d records", blobs, ts.fileRecords())
	}
}

// TestFileUploadLimits: over MAX_FILE_SIZE is 413 whether declared,
// chunked or hidden behind a Content-Length that lies, and leaves no
// temporary file; the quota; empty bodies; the media type; the rate limit.
func TestFileUploadLimits(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxFileSize = 1 << 20
	cfg.FileQuotaBytes = 5 << 19 // 2.5 MiB
	ts := startServer(t, cfg)
	alice := ts.register("flalice")
	noTemp := func(what string) {
		t.Helper()
		if tmp, _ := ts.fileDirs(); tmp != 0 {
			t.Errorf("%s: %d temporary files left", what, tmp)
		}
	}
	blobs := func() int { _, b := ts.fileDirs(); return b }

	// Declared over the cap: refused before the body is read.
	r := ts.rawExchange(ts.uploadHead(alice, "Content-Length: "+strconv.Itoa(1<<20+1)), randBytes(1<<20+1))
	expectAPIError(t, r, http.StatusRequestEntityTooLarge, "too_large", "declared over the cap")
	noTemp("declared")
	// Declared over the cap, the body much shorter: the same.
	r = ts.rawExchange(ts.uploadHead(alice, "Content-Length: 50000000"), randBytes(1000))
	expectAPIError(t, r, http.StatusRequestEntityTooLarge, "too_large", "declared over the cap, short body")
	// Chunked, no length: counted while streaming.
	r = ts.rawExchange(ts.uploadHead(alice, "Transfer-Encoding: chunked"), chunked(randBytes(1<<20+1)))
	expectAPIError(t, r, http.StatusRequestEntityTooLarge, "too_large", "chunked over the cap")
	noTemp("chunked")
	// Content-Length says less than is sent: the body is the declared
	// bytes (HTTP/1.1), never more.
	r = ts.rawExchange(ts.uploadHead(alice, "Content-Length: 1000"), randBytes(2<<20))
	if r.Status != http.StatusCreated || r.json(t)["size"] != float64(1000) {
		t.Errorf("a body longer than its Content-Length: %d %s", r.Status, r.Body)
	}
	noTemp("long body")
	// Content-Length says more than is sent: the upload fails, nothing kept.
	before := blobs()
	r = ts.rawExchange(ts.uploadHead(alice, "Content-Length: 500000"), randBytes(100000))
	if r.Status != http.StatusBadRequest {
		t.Errorf("a body shorter than its Content-Length: %d %s", r.Status, r.Body)
	}
	noTemp("short body")
	if blobs() != before {
		t.Error("a cut-off upload was kept")
	}
	// Through net/http: a body the client streams without a length.
	req, _ := http.NewRequest("POST", ts.URL+"/api/files", struct{ *bytes.Reader }{bytes.NewReader(randBytes(3 << 20))})
	req.Header.Set("Authorization", "Bearer "+alice.Access)
	req.Header.Set("Content-Type", "application/octet-stream")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("streamed over the cap: %d", resp.StatusCode)
		}
	} // else: the server closed while the client was still sending; the raw cases above check the answer
	noTemp("streamed")

	// Exactly the cap is fine; empty is not; the media type is checked.
	expectHTTPStatus(t, ts.upload(alice, randBytes(1<<20)), http.StatusCreated, "exactly MAX_FILE_SIZE")
	expectAPIError(t, ts.upload(alice, []byte{}), http.StatusBadRequest, "invalid_request", "an empty file")
	expectAPIError(t, ts.rawExchange(ts.uploadHead(alice, "Transfer-Encoding: chunked"), []byte("0\r\n\r\n")), http.StatusBadRequest, "invalid_request", "an empty chunked file")
	expectAPIError(t, ts.do("POST", "/api/files", alice.Access, []byte("x")), http.StatusUnsupportedMediaType, "unsupported_media_type", "JSON content type")
	expectUnauthenticated(t, ts.do("POST", "/api/files", "", []byte("x"), "Content-Type", "application/octet-stream"), "anonymous upload")

	// Quota (2.5 MiB; 1 MiB + 1000 bytes used): a declared size over it is
	// refused up front; a chunked one when it is known.
	expectHTTPStatus(t, ts.upload(alice, randBytes(1<<20)), http.StatusCreated, "second MiB")
	expectAPIError(t, ts.upload(alice, randBytes(1<<20)), http.StatusRequestEntityTooLarge, "quota_exceeded", "over the quota")
	r = ts.rawExchange(ts.uploadHead(alice, "Transfer-Encoding: chunked"), chunked(randBytes(600<<10)))
	expectAPIError(t, r, http.StatusRequestEntityTooLarge, "quota_exceeded", "chunked over the quota")
	noTemp("quota")
	expectHTTPStatus(t, ts.upload(alice, randBytes(100<<10)), http.StatusCreated, "within the quota")

	// Metrics count uploads and refusals.
	m := ts.metrics()
	for _, want := range []string{`privateline_file_uploads_refused_total{reason="size"}`, `privateline_file_uploads_refused_total{reason="quota"}`, "privateline_file_uploads_total 4", "privateline_files_stored 4"} {
		if !bytes.Contains([]byte(m), []byte(want)) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// Rate limit per user.
	cfg = testConfig(t)
	cfg.FileUploadRatePerMin, cfg.FileUploadBurst = 1, 1
	lim := startServer(t, cfg)
	frank := lim.register("flfrank")
	expectHTTPStatus(t, lim.upload(frank, []byte("1")), http.StatusCreated, "first upload")
	r = lim.upload(frank, []byte("2"))
	expectAPIError(t, r, http.StatusTooManyRequests, "rate_limited", "second upload")
	if r.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
}

// metrics returns the text of GET /metrics.
func (ts *testServer) metrics() string {
	ts.t.Helper()
	resp, err := http.Get("http://" + ts.srv.MetricsAddr() + "/metrics")
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return b.String()
}
