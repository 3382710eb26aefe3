package clientapi

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/storage"
)

// remoteFake is a FileStore with a cache of other servers' files and the
// federation's fetch: sources say who may read which file, fetched files
// are cached by Fetch's outcome.
type remoteFake struct {
	noFiles
	dir     string
	sources map[string]*storage.RemoteFileSource // by file id
	cached  map[string]bool
	fetch   error // FetchRemoteFile's answer
	fetches int
}

func (f *remoteFake) RemoteFileSource(user storage.ID, id string, now time.Time) (*storage.RemoteFileSource, error) {
	if s := f.sources[id]; s != nil {
		return s, nil
	}
	return nil, privateline.E("fake", privateline.NotExist)
}

func (f *remoteFake) OpenRemoteFile(origin privateline.ServerName, id string) (*storage.FileInfo, *os.File, error) {
	if !f.cached[id] {
		return nil, nil, privateline.E("fake", privateline.NotExist)
	}
	p := filepath.Join(f.dir, id)
	if err := os.WriteFile(p, []byte("blob of "+id), 0o600); err != nil {
		return nil, nil, err
	}
	fh, err := os.Open(p)
	return &storage.FileInfo{ID: id, Size: int64(len("blob of " + id))}, fh, err
}

func (f *remoteFake) FetchRemoteFile(ctx context.Context, origin privateline.ServerName, file, message string, requester privateline.Address) error {
	f.fetches++
	if f.fetch == nil {
		f.cached[file] = true
	}
	return f.fetch
}

// openRemoteFile: a file of another server the user may read is fetched
// once and then served from the cache; one they may not read is 404; an
// origin that cannot be reached is 502 origin_unreachable with the
// federation's sentence, and one that no longer has it 404.
func TestOpenRemoteFile(t *testing.T) {
	a := newTestAPI(t, nil)
	f := &remoteFake{dir: t.TempDir(), cached: map[string]bool{}, sources: map[string]*storage.RemoteFileSource{
		"f1": {Origin: "a.test", Message: "m1", Requester: "bob@hs.test"},
	}}
	a.files, a.rfiles = f, f
	notFound := privateline.E("test", privateline.NotExist)
	ctx := context.Background()
	user := storage.NewID()

	if _, _, err := a.openRemoteFile(ctx, user, "f2", notFound); a.describe(err).status != http.StatusNotFound {
		t.Fatalf("a file the user may not read: %v", err)
	}
	f.fetch = privateline.E("federation.FetchRemoteFile", privateline.Unavailable, "the file is on a.test, which cannot be reached; try again later")
	_, _, err := a.openRemoteFile(ctx, user, "f1", notFound)
	if e := a.describe(err); e.status != http.StatusBadGateway || e.code != "origin_unreachable" || !strings.Contains(e.msg, "a.test") {
		t.Fatalf("origin down: %+v", e)
	}
	f.fetch = privateline.E("federation.FetchRemoteFile", privateline.NotExist, "gone")
	if _, _, err := a.openRemoteFile(ctx, user, "f1", notFound); a.describe(err).status != http.StatusNotFound {
		t.Fatalf("origin no longer has it: %v", err)
	}
	f.fetch = nil
	for i := range 2 {
		_, fh, err := a.openRemoteFile(ctx, user, "f1", notFound)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(fh)
		fh.Close()
		if string(b) != "blob of f1" {
			t.Fatalf("download %d: %q", i, b)
		}
	}
	if f.fetches != 3 {
		t.Fatalf("%d fetches, want 3 (two failed, then one; the second download from the cache)", f.fetches)
	}
}
