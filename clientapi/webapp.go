package clientapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// The web client.
//
// With Config.WebRoot set (the built clients/web/dist), every GET or HEAD
// outside /api/ that no route takes is answered from that directory: a
// file that exists is served as is (files under /assets/ carry a content
// hash in their names and are cached for a year), anything else is the
// single-page app's index.html, which is never cached, so its routes
// (/chat/…, /account) load the app. /api/ paths that no route takes stay
// JSON 404s. The security headers and the Content-Security-Policy of the
// middleware apply to these answers like to any other.
//
// A missing file under /assets/ is a 404, not index.html: a page of an
// older build asking for a chunk that no longer exists must not get HTML
// that a cache (the browser's, the service worker's) would then keep for a
// year as that immutable asset. Everything outside /assets/ — index.html,
// the service worker /sw.js, /manifest.webmanifest, the icons — has stable
// names and is served with Cache-Control: no-cache, so that a new build
// reaches browsers on their next visit (a service worker served with a
// long max-age would pin users to an old app). Their validator is an ETag
// of their content, never their modification time: a rebuilt index.html
// can carry the same mtime as the one it replaces (to the second, which is
// all Last-Modified holds, or always, with reproducible builds and image
// layers that fix every mtime), and a 304 to the browser's revalidation
// would then keep users on the old build.

// serveWebApp answers r from the web root, or reports false when r is not
// for the web client.
func (a *API) serveWebApp(w http.ResponseWriter, r *http.Request) bool {
	if a.cfg.WebRoot == "" || (r.Method != http.MethodGet && r.Method != http.MethodHead) ||
		r.URL.Path == "/api" || strings.HasPrefix(r.URL.Path, "/api/") {
		return false
	}
	setRoute(r, "/*webapp")
	clean := path.Clean("/" + r.URL.Path) // no ".." survives
	name := filepath.Join(a.cfg.WebRoot, filepath.FromSlash(clean))
	if fi, err := os.Stat(name); err != nil || fi.IsDir() || strings.HasPrefix(path.Base(clean), ".") {
		if strings.HasPrefix(clean, "/assets/") {
			return false // the JSON 404
		}
		name = filepath.Join(a.cfg.WebRoot, "index.html")
		clean = "/index.html"
	}
	var content io.ReadSeeker
	var modTime time.Time
	if strings.HasPrefix(clean, "/assets/") {
		// The name is a hash of the content: its mtime is as good a
		// validator as any.
		f, err := os.Open(name)
		if err != nil {
			return false // gone since the Stat: the JSON 404
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return false
		}
		content, modTime = f, fi.ModTime()
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		// No modification time, so no Last-Modified, and ServeContent
		// ignores If-Modified-Since; it checks If-None-Match against the
		// ETag.
		body, err := os.ReadFile(name)
		if err != nil {
			return false // no build in the web root: the JSON 404
		}
		sum := sha256.Sum256(body)
		content = bytes.NewReader(body)
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("ETag", `"`+base64.RawURLEncoding.EncodeToString(sum[:18])+`"`)
	}
	if ct, ok := webContentTypes[path.Ext(clean)]; ok {
		w.Header().Set("Content-Type", ct)
	}
	http.ServeContent(w, r, path.Base(clean), modTime, content)
	return true
}

// webContentTypes are the types of the web client's files that Go's mime
// table does not know everywhere (it falls back to the system's
// mime.types, which a minimal container may not have).
var webContentTypes = map[string]string{
	".webmanifest": "application/manifest+json",
	".js":          "text/javascript; charset=utf-8",
	".svg":         "image/svg+xml",
	".png":         "image/png",
}
