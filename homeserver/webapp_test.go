package homeserver_test

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWebAppServed: with WEB_ROOT the server answers the built web client
// at / — files as they are, the app's own routes with index.html — with
// the security headers, while /api/ stays the API.
func TestWebAppServed(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	files := map[string]string{
		"index.html":           "<!doctype html><title>PrivateLine</title><div id=root></div>",
		"assets/app-1a2b3c.js": "console.log('app')",
		"sw.js":                "self.addEventListener('fetch', () => {})",
		"manifest.webmanifest": `{"name":"PrivateLine"}`,
		"icons/icon-192.png":   "\x89PNG\r\n\x1a\n",
		".secret":              "not for you",
	}
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig(t)
	cfg.WebRoot = root
	ts := startServer(t, cfg)

	index := func(r *response, what string) {
		t.Helper()
		if r.Status != http.StatusOK || string(r.Body) != files["index.html"] {
			t.Fatalf("%s: %d %q, want index.html", what, r.Status, r.Body)
		}
		if cc := r.Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("%s: Cache-Control %q", what, cc)
		}
		if !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") || r.Header.Get("Content-Security-Policy") == "" || r.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: headers %v", what, r.Header)
		}
	}
	index(ts.do("GET", "/", "", nil), "GET /")
	index(ts.do("GET", "/chat/alice@hs.test", "", nil), "an app route")
	index(ts.do("GET", "/.secret", "", nil), "a hidden file")
	index(ts.do("GET", "/assets/", "", nil), "a directory")

	js := ts.do("GET", "/assets/app-1a2b3c.js", "", nil)
	if js.Status != http.StatusOK || string(js.Body) != files["assets/app-1a2b3c.js"] ||
		!strings.Contains(js.Header.Get("Content-Type"), "javascript") || !strings.Contains(js.Header.Get("Cache-Control"), "immutable") {
		t.Errorf("asset: %d %v %q", js.Status, js.Header, js.Body)
	}
	// A chunk of an older build that is gone is a 404, never index.html
	// (which a cache would keep as the immutable asset).
	expectAPIError(t, ts.do("GET", "/assets/app-0ld0ld.js", "", nil), http.StatusNotFound, "not_found", "a missing asset")

	// The service worker, the manifest and the icons have stable names: no
	// long-lived caching (a cached service worker would pin an old app),
	// and the types browsers insist on (a service worker must be
	// JavaScript; the manifest is application/manifest+json).
	for _, c := range []struct{ path, typ string }{
		{"/sw.js", "text/javascript"},
		{"/manifest.webmanifest", "application/manifest+json"},
		{"/icons/icon-192.png", "image/png"},
	} {
		r := ts.do("GET", c.path, "", nil)
		if r.Status != http.StatusOK || string(r.Body) != files[c.path[1:]] {
			t.Errorf("%s: %d %q", c.path, r.Status, r.Body)
		}
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, c.typ) {
			t.Errorf("%s: Content-Type %q, want %s", c.path, ct, c.typ)
		}
		if cc := r.Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("%s: Cache-Control %q, want no-cache", c.path, cc)
		}
	}
	// The CSP lets the app register its service worker and load its
	// manifest from its own origin.
	csp := ts.do("GET", "/", "", nil).Header.Get("Content-Security-Policy")
	for _, d := range []string{"worker-src 'self'", "manifest-src 'self'"} {
		if !strings.Contains(csp, d) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, d)
		}
	}

	expectAPIError(t, ts.do("GET", "/api/no-such-route", "", nil), http.StatusNotFound, "not_found", "an unknown API route")
	expectAPIError(t, ts.do("POST", "/", "", map[string]any{}), http.StatusNotFound, "not_found", "POST /")

	// A raw request whose path climbs out of the web root gets the app.
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("GET /../../../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
	buf := make([]byte, 8192)
	n, _ := conn.Read(buf)
	if strings.Contains(string(buf[:n]), "root:") {
		t.Fatalf("path traversal served a file outside the web root:\n%s", buf[:n])
	}
}

// TestWebAppRevalidatesByContent: index.html and the other files with
// stable names are revalidated by an ETag of their content. A new build
// whose index.html has the old one's modification time (the same second,
// or a fixed mtime of a reproducible build) still reaches a browser that
// revalidates, and an unchanged file is a 304.
func TestWebAppRevalidatesByContent(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	index := filepath.Join(root, "index.html")
	mtime := time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(index, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(index, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	oldBuild := `<!doctype html><script type="module" src="/assets/index-aaaa.js"></script>`
	newBuild := `<!doctype html><script type="module" src="/assets/index-bbbb.js"></script>`
	write(oldBuild)
	cfg := testConfig(t)
	cfg.WebRoot = root
	ts := startServer(t, cfg)

	first := ts.do("GET", "/", "", nil)
	etag := first.Header.Get("ETag")
	if first.Status != http.StatusOK || string(first.Body) != oldBuild || etag == "" || first.Header.Get("Last-Modified") != "" {
		t.Fatalf("first visit: %d ETag %q Last-Modified %q %q", first.Status, etag, first.Header.Get("Last-Modified"), first.Body)
	}
	since := mtime.Add(time.Hour).Format(http.TimeFormat)
	if r := ts.do("GET", "/", "", nil, "If-None-Match", etag, "If-Modified-Since", since); r.Status != http.StatusNotModified {
		t.Fatalf("revalidating an unchanged index.html: %d, want 304", r.Status)
	}

	write(newBuild) // the same size and the same mtime
	for _, h := range [][]string{
		{"If-None-Match", etag, "If-Modified-Since", since},
		{"If-Modified-Since", since},
	} {
		r := ts.do("GET", "/", "", nil, h...)
		if r.Status != http.StatusOK || string(r.Body) != newBuild || r.Header.Get("ETag") == etag {
			t.Fatalf("revalidating with %q after a new build: %d ETag %q %q, want the new index.html", h, r.Status, r.Header.Get("ETag"), r.Body)
		}
	}
}

// TestWebRootMustBeABuild: a WEB_ROOT without index.html stops start-up
// with a message that says how to build the client.
func TestWebRootMustBeABuild(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.WebRoot = t.TempDir()
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "WEB_ROOT") || !strings.Contains(err.Error(), "npm run build") {
		t.Fatalf("Validate: %v", err)
	}
}
