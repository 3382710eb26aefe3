package homeserver_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/privateline/privateline/clients/go/e2ee"
	"github.com/privateline/privateline/homeserver"
)

// Helpers of the file tests.

// upload POSTs a blob for a.
func (ts *testServer) upload(a *account, blob []byte) *response {
	ts.t.Helper()
	return ts.do("POST", "/api/files", a.Access, blob, "Content-Type", "application/octet-stream")
}

// uploadAttachment encrypts data with the SDK, uploads the blob and
// returns the attachment for a message.
func (ts *testServer) uploadAttachment(a *account, data []byte) (e2ee.Attachment, []byte) {
	ts.t.Helper()
	blob, att, err := e2ee.EncryptAttachment(nil, data)
	if err != nil {
		ts.t.Fatal(err)
	}
	r := ts.upload(a, blob)
	if r.Status != http.StatusCreated {
		ts.t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	var fr struct {
		ID   string `json:"id"`
		Size int64  `json:"size"`
	}
	if err := json.Unmarshal(r.Body, &fr); err != nil || fr.Size != int64(len(blob)) {
		ts.t.Fatalf("upload answered %s", r.Body)
	}
	att.FileID, att.Name, att.MIME = fr.ID, "picture.jpg", "image/jpeg"
	return att, blob
}

// withFiles is a sealFor edit that attaches files.
func withFiles(atts ...e2ee.Attachment) func(*e2ee.Draft) {
	return func(d *e2ee.Draft) { d.Message.Attachments = atts }
}

// fileDirs counts the temporary files and blobs in the data directory.
func (ts *testServer) fileDirs() (tmp, blobs int) {
	ts.t.Helper()
	for _, d := range []struct {
		name string
		n    *int
	}{{"tmp", &tmp}, {"blobs", &blobs}} {
		ents, err := os.ReadDir(filepath.Join(ts.cfg.DataDir, "files", d.name))
		if err != nil {
			ts.t.Fatal(err)
		}
		*d.n = len(ents)
	}
	return tmp, blobs
}

// fileRecords counts the file records ('F') in the store.
func (ts *testServer) fileRecords() int {
	ts.t.Helper()
	n := 0
	if err := homeserver.ScanStore(ts.srv, func(k, _ []byte) {
		if k[0] == 'F' {
			n++
		}
	}); err != nil {
		ts.t.Fatal(err)
	}
	return n
}

// rawExchange sends head (request line and headers, without the blank
// line) and body over a plain TCP connection, half-closes it, and returns
// the first response. Write errors are ignored: the server may answer and
// close before the body is sent.
func (ts *testServer) rawExchange(head string, body []byte) *response {
	ts.t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
	if err != nil {
		ts.t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Minute))
	go func() {
		if _, err := io.WriteString(conn, head+"\r\n\r\n"); err != nil {
			return
		}
		if _, err := conn.Write(body); err != nil {
			return
		}
		conn.(*net.TCPConn).CloseWrite()
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		ts.t.Fatalf("reading the answer to %q: %v", strings.SplitN(head, "\r\n", 2)[0], err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// uploadHead is the head of a raw POST /api/files.
func (ts *testServer) uploadHead(a *account, extra ...string) string {
	h := []string{"POST /api/files HTTP/1.1", "Host: " + strings.TrimPrefix(ts.URL, "http://"),
		"Authorization: Bearer " + a.Access, "Content-Type: application/octet-stream"}
	return strings.Join(append(h, extra...), "\r\n")
}

// chunked encodes b as one chunk and the last chunk.
func chunked(b []byte) []byte {
	return append(append([]byte(fmt.Sprintf("%x\r\n", len(b))), b...), []byte("\r\n0\r\n\r\n")...)
}
