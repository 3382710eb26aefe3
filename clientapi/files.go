package clientapi

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"os"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/storage"
)

// Files (spec/e2ee.md §9): POST /api/files stores a client-encrypted blob
// (nonce ‖ AES-GCM ciphertext) and answers its id; GET /api/files/{id}
// serves it to its uploader and to the holders of a live envelope whose
// signed header lists it; DELETE /api/files/{id} lets the uploader remove
// a file no message uses. The server never sees a file's key.

// FileStore is what the file routes need from storage (*storage.DB).
type FileStore interface {
	CreateFile(storage.FileUpload) (*storage.FileInfo, error)
	OpenFile(user storage.ID, id string, now time.Time) (*storage.FileInfo, *os.File, error)
	DeleteFile(user storage.ID, id string) error
	FileUsage(user storage.ID) (storage.FileUsage, error)
}

type noFiles struct{}

var errNoFiles = privateline.E("clientapi", privateline.Unavailable, "file storage is not available")

func (noFiles) CreateFile(storage.FileUpload) (*storage.FileInfo, error) { return nil, errNoFiles }
func (noFiles) OpenFile(storage.ID, string, time.Time) (*storage.FileInfo, *os.File, error) {
	return nil, nil, errNoFiles
}
func (noFiles) DeleteFile(storage.ID, string) error { return errNoFiles }
func (noFiles) FileUsage(storage.ID) (storage.FileUsage, error) {
	return storage.FileUsage{}, errNoFiles
}

// Defaults of the file limits.
const (
	// DefaultMaxFileSize is the largest blob: a 100 MiB attachment with its
	// 12-byte nonce and 16-byte tag (spec/e2ee.md §9).
	DefaultMaxFileSize     = 100<<20 + 28
	DefaultFileQuotaBytes  = 1 << 30
	DefaultFileRatePerMin  = 30
	DefaultFileBurst       = 10
	fileTransferTimeout    = 30 * time.Minute // read/write deadline of one upload or download
	contentTypeOctetStream = "application/octet-stream"
	fileCacheControl       = "private, no-store"
	fileUploadPath         = "/api/files"
)

var (
	errFileTooLarge = func(max int64) *statusError {
		return &statusError{http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("a file may be at most %d bytes", max)}
	}
	errQuotaExceeded = &statusError{http.StatusRequestEntityTooLarge, "quota_exceeded", "this upload would exceed your file storage quota; delete messages with attachments to free space"}
	errUnknownFile   = &statusError{http.StatusBadRequest, "unknown_file", `"files" lists a file that does not exist or that you did not upload`}
	errFileInUse     = &statusError{http.StatusConflict, "file_in_use", "the file is attached to a message; it goes when its last message goes"}
	errEmptyFile     = &statusError{http.StatusBadRequest, "invalid_request", "the file is empty"}
	errOctetStream   = &statusError{http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/octet-stream"}
	// errOriginUnreachable: a file of another server that cannot be
	// fetched from it now (spec/federation.md §12.4); the message names
	// the server and says to try again later.
	errOriginUnreachable = func(msg string) *statusError {
		return &statusError{http.StatusBadGateway, "origin_unreachable", msg}
	}
)

// RemoteFiles fetches a file of another server for a local recipient
// (spec/federation.md §12.4); the homeserver passes *federation.Service.
type RemoteFiles interface {
	// FetchRemoteFile fetches file, listed by message (an envelope from
	// origin that requester holds), into the store's cache. NotExist: the
	// origin does not have it for requester (any more); Unavailable: it
	// cannot be fetched now.
	FetchRemoteFile(ctx context.Context, origin privateline.ServerName, file, message string, requester privateline.Address) error
}

// RemoteFileStore is the cache of other servers' files (*storage.DB).
type RemoteFileStore interface {
	RemoteFileSource(user storage.ID, id string, now time.Time) (*storage.RemoteFileSource, error)
	OpenRemoteFile(origin privateline.ServerName, id string) (*storage.FileInfo, *os.File, error)
}

// postFile stores an uploaded blob. A declared Content-Length over the
// cap is refused before anything is read; otherwise the body is streamed
// to disk and counted, and the upload aborted as soon as it passes the
// cap (chunked bodies included). The answer comes after the metadata is
// committed.
func (a *API) postFile(w http.ResponseWriter, r *http.Request, c *call) error {
	max := a.cfg.MaxFileSize
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != contentTypeOctetStream {
		return errOctetStream
	}
	if r.ContentLength > max {
		a.metrics.fileRefused.WithLabelValues("size").Inc()
		w.Header().Set("Connection", "close") // do not read the body
		return errFileTooLarge(max)
	}
	if r.ContentLength == 0 {
		return errEmptyFile
	}
	if ok, after := a.fileLimit.allow(c.auth.UserID.String()); !ok {
		w.Header().Set("Connection", "close")
		return &rateLimitError{after}
	}
	us, err := a.files.FileUsage(c.auth.UserID)
	if err != nil {
		return err
	}
	if need := max64(r.ContentLength, 1); us.Bytes+need > a.cfg.FileQuotaBytes || us.Files >= storage.MaxFilesPerUser {
		a.metrics.fileRefused.WithLabelValues("quota").Inc()
		w.Header().Set("Connection", "close")
		return errQuotaExceeded
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(fileTransferTimeout)) // the server's ReadTimeout is for ordinary requests
	fi, err := a.files.CreateFile(storage.FileUpload{
		Uploader: c.auth.UserID,
		Body:     r.Body,
		MaxSize:  max,
		Quota:    a.cfg.FileQuotaBytes,
		Now:      a.now(),
	})
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, storage.ErrFileTooLarge) || errors.As(err, &mbe):
		a.metrics.fileRefused.WithLabelValues("size").Inc()
		w.Header().Set("Connection", "close")
		return errFileTooLarge(max)
	case errors.Is(err, storage.ErrQuotaExceeded):
		a.metrics.fileRefused.WithLabelValues("quota").Inc()
		return errQuotaExceeded
	case privateline.Is(privateline.NotExist, err):
		return errUnauthenticated // the account was deleted meanwhile
	case err != nil:
		return err
	}
	a.metrics.fileUploads.Inc()
	a.metrics.fileUploadBytes.Add(float64(fi.Size))
	writeJSON(w, http.StatusCreated, map[string]any{"id": fi.ID, "size": fi.Size})
	return nil
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// getFile streams a blob to its uploader or to a holder of a live
// envelope that lists it; anyone else gets 404. A file of another server
// listed by a message from there that the caller holds is fetched from
// its origin on the first download and served from the cache afterwards
// (openRemoteFile). Range requests and If-None-Match (the ETag is the
// blob's SHA-256) are served.
func (a *API) getFile(w http.ResponseWriter, r *http.Request, c *call) error {
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(fileTransferTimeout)) // a fetch from another server comes first
	id := c.params.ByName("id")
	fi, f, err := a.files.OpenFile(c.auth.UserID, id, a.now())
	if privateline.Is(privateline.NotExist, err) && a.rfiles != nil {
		// Not a file of this server that the caller may read: one of
		// another server, if a message from there lists it for them.
		fi, f, err = a.openRemoteFile(r.Context(), c.auth.UserID, id, err)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	h := w.Header()
	h.Set("Content-Type", contentTypeOctetStream)
	h.Set("Cache-Control", fileCacheControl)
	h.Set("ETag", `"`+hex.EncodeToString(fi.SHA256)+`"`)
	http.ServeContent(w, r, "", time.Time{}, f)
	return nil
}

// openRemoteFile opens the cached copy of a file of another server that
// user may read, fetching it from its origin first if it is not cached.
// notFound is answered when the user may read no such file.
func (a *API) openRemoteFile(ctx context.Context, user storage.ID, id string, notFound error) (*storage.FileInfo, *os.File, error) {
	rs, ok := a.files.(RemoteFileStore)
	if !ok {
		return nil, nil, notFound
	}
	src, err := rs.RemoteFileSource(user, id, a.now())
	if err != nil {
		return nil, nil, err
	}
	fi, f, err := rs.OpenRemoteFile(src.Origin, id)
	if !privateline.Is(privateline.NotExist, err) {
		return fi, f, err
	}
	err = a.rfiles.FetchRemoteFile(ctx, src.Origin, id, src.Message, src.Requester)
	switch {
	case privateline.Is(privateline.NotExist, err):
		return nil, nil, err
	case err != nil:
		msg := privateline.MessageOf(err)
		if msg == "" {
			msg = fmt.Sprintf("the file is on %s, which cannot be reached now; try again later", src.Origin)
		}
		return nil, nil, errOriginUnreachable(msg)
	}
	return rs.OpenRemoteFile(src.Origin, id)
}

// deleteFile deletes a file of the caller that no message uses.
func (a *API) deleteFile(w http.ResponseWriter, r *http.Request, c *call) error {
	err := a.files.DeleteFile(c.auth.UserID, c.params.ByName("id"))
	if errors.Is(err, storage.ErrFileInUse) {
		return errFileInUse
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
