package homeserver_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/clientapi"
	"github.com/privateline/privateline/clients/go/client"
	"github.com/privateline/privateline/clients/go/e2ee"
	"github.com/privateline/privateline/federation/wire"
)

// Files across servers (spec/federation.md §12.4) through the Go SDK:
// alice@a.test sends bob@b.test a message with a file; bob downloads it
// from his own server, which fetches it from a.test once and then serves
// its copy; carol@b.test, no recipient, gets 404; while a.test is down an
// uncached file is a clear error, and succeeds once it is back; after
// alice deletes the message bob gets 404 and b.test's copy goes.
func TestFederationFiles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	servers := startFederation(t, "a.test", "b.test")
	a, b := servers[0], servers[1]
	for _, ts := range servers { // the clients reach a restarted server where it was
		ts.cfg.ListenAddr = ts.srv.Addr()
	}
	aliceU := sdkRegister(t, a, sdkClient(t, a, nil), "xalice", "alice")
	alice := aliceU.login(t)
	bob := sdkRegister(t, b, sdkClient(t, b, nil), "xbob", "bob").login(t)
	carol := sdkRegister(t, b, sdkClient(t, b, nil), "xcarol", "carol").login(t)
	bobEv := listen(t, bob)

	send := func(data []byte, name string) (*client.SendResult, e2ee.Attachment) {
		t.Helper()
		att, err := alice.UploadFile(ctx, data, name, "image/jpeg")
		if err != nil {
			t.Fatal(err)
		}
		msg := &e2ee.Message{Type: e2ee.MessageTypeText, Body: "look", Attachments: []e2ee.Attachment{*att}}
		sent, err := alice.Send(ctx, []privateline.Address{bob.Address()}, msg, client.SendOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return sent, *att
	}
	// bob's attachment as his client reads it from his message.
	received := func(id string) e2ee.Attachment {
		t.Helper()
		ev := bobEv.message(id)
		if ev.Item == nil || ev.Item.Err != nil || len(ev.Item.Message.Attachments) != 1 {
			t.Fatalf("bob's message: %+v", ev.Item)
		}
		return ev.Item.Message.Attachments[0]
	}

	beach := randBytes(3 << 20)
	first, _ := send(beach, "beach.jpg")
	att := received(first.ID)
	if _, blobs := b.fileDirs(); blobs != 0 {
		t.Fatalf("b.test holds %d blobs before any download", blobs)
	}
	for i := range 2 { // fetched, then from b.test's copy
		got, err := bob.DownloadFile(ctx, att)
		if err != nil || !bytes.Equal(got, beach) {
			t.Fatalf("bob's download %d: %d bytes, %v", i, len(got), err)
		}
		if _, blobs := b.fileDirs(); blobs != 1 {
			t.Fatalf("b.test holds %d blobs after download %d, want its copy", blobs, i)
		}
	}
	if m := a.metrics(); !strings.Contains(m, `privateline_federation_files_total{outcome="served"} 1`+"\n") {
		t.Fatalf("a.test did not serve the file exactly once:\n%s", grepLines(m, "privateline_federation_file"))
	}
	if _, err := carol.DownloadFile(ctx, att); !privateline.Is(privateline.NotExist, err) {
		t.Fatalf("carol, no recipient: %v, want NotExist", err)
	}

	// The origin down: a file not fetched yet cannot be had now, and the
	// error says so; once it is back, the download succeeds.
	dunes := randBytes(100 << 10)
	second, _ := send(dunes, "dunes.jpg")
	att2 := received(second.ID)
	a.stop()
	_, err := bob.DownloadFile(ctx, att2)
	if !privateline.Is(privateline.Unavailable, err) || client.CodeOf(err) != "origin_unreachable" || !strings.Contains(privateline.MessageOf(err), "a.test") {
		t.Fatalf("download while a.test is down: %v (code %q)", err, client.CodeOf(err))
	}
	if got, err := bob.DownloadFile(ctx, att); err != nil || !bytes.Equal(got, beach) {
		t.Fatalf("the cached file while a.test is down: %v", err)
	}
	a.launch(nil)
	introduce(a, servers)
	if got, err := bob.DownloadFile(ctx, att2); err != nil || !bytes.Equal(got, dunes) {
		t.Fatalf("download once a.test is back: %d bytes, %v", len(got), err)
	}

	// alice deletes the first message for everyone: bob's server hears,
	// bob can no longer download it and b.test's copy goes.
	alice = aliceU.login(t)
	if err := alice.Delete(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	if ev := bobEv.next(client.EventDeleted); ev.ID != first.ID {
		t.Fatalf("bob's deleted event: %+v", ev)
	}
	if _, err := bob.DownloadFile(ctx, att); !privateline.Is(privateline.NotExist, err) {
		t.Fatalf("bob's download after the delete: %v, want NotExist", err)
	}
	// The copy goes right after the delete's commit (which the event
	// may precede).
	deadline := time.Now().Add(10 * time.Second)
	for _, blobs := b.fileDirs(); blobs != 1; _, blobs = b.fileDirs() {
		if time.Now().After(deadline) {
			t.Fatalf("b.test holds %d blobs after the delete, want only the second file's", blobs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// remoteFilesContract drives GET /api/files/{id} for a file of another
// server for TestContractResponses: 200 once fetched, 404 for a user
// who is not a recipient, 502 origin_unreachable while the origin is down.
func remoteFilesContract(t *testing.T, c *contract) {
	servers := startFederation(t, "a.test", "b.test")
	a, b := servers[0], servers[1]
	alice := a.registerWithKeys("rfalice", "alice")
	bob := b.registerWithKeys("rfbob", "bob")
	eve := b.registerWithKeys("rfeve", "carol")
	bundle := func(k *keyAccount) *e2ee.KeyBundle { return k.Keys.Bundle }

	// Two messages, the second's file first: the outbox delivers in order,
	// so once the first file can be fetched, the second message is there.
	later, _ := a.uploadAttachment(alice.account, []byte("later"))
	first, _ := a.uploadAttachment(alice.account, []byte("first"))
	for _, att := range []e2ee.Attachment{later, first} {
		m := sealFor(t, alice, []*e2ee.KeyBundle{bundle(bob)}, "file", withFiles(att))
		if r := a.do("POST", "/api/messages", alice.Access, m.Raw); r.Status != http.StatusCreated {
			t.Fatalf("send: %d %s", r.Status, r.Body)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for b.do("GET", "/api/files/"+first.FileID, bob.Access, nil).Status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the file never became available on b.test")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.send(t, b, specAccepts, 200, apiReq("GET", "/api/files/"+first.FileID, nil, authBearer(bob.Access)...))
	c.send(t, b, specAccepts, 404, apiReq("GET", "/api/files/"+first.FileID, nil, authBearer(eve.Access)...))
	a.stop()
	r := c.send(t, b, specAccepts, 502, apiReq("GET", "/api/files/"+later.FileID, nil, authBearer(bob.Access)...))
	if r.errorCode(t) != "origin_unreachable" || !strings.Contains(string(r.Body), "a.test") {
		t.Errorf("502: %s", r.Body)
	}
}

// grepLines returns the lines of text that contain s.
func grepLines(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// The federation's largest file is the client API's (spec/federation.md
// §12.4): a file any client API here takes can cross to any server.
func TestFederationFileLimitIsTheClientAPIs(t *testing.T) {
	if wire.MaxFileSize != clientapi.DefaultMaxFileSize {
		t.Fatalf("wire.MaxFileSize %d, clientapi.DefaultMaxFileSize %d", wire.MaxFileSize, clientapi.DefaultMaxFileSize)
	}
}
