package storage

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/privateline/privateline"
)

// Blobs: the encrypted files' bytes live on disk, beside the store, not in
// Pebble:
//
//	<FilesDir>/tmp/<random>        an upload being written
//	<FilesDir>/blobs/<name>        a committed blob; name is
//	                               hex(HMAC(fileNameKey, fileID)[:16]), so
//	                               neither the public file id nor the
//	                               uploader can be read off the disk
//
// An upload is written to tmp, fsynced, renamed into blobs and the blobs
// directory fsynced before its metadata is committed; a blob is removed
// only after the batch that deleted its metadata has committed. A crash in
// between leaves a temporary file or a blob without metadata: Open removes
// both (removeOrphans).

// blobStore is the on-disk half of the files.
type blobStore struct {
	tmp, blobs string
	key        []byte // HMAC key of the blob names
}

func openBlobStore(dir string, key []byte) (*blobStore, error) {
	bs := &blobStore{tmp: filepath.Join(dir, "tmp"), blobs: filepath.Join(dir, "blobs"), key: key}
	for _, p := range []string{bs.tmp, bs.blobs} {
		if err := os.MkdirAll(p, 0o700); err != nil {
			return nil, err
		}
	}
	// No upload runs before Open returns: every temporary file is left
	// over from a crash.
	ents, err := os.ReadDir(bs.tmp)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if err := os.Remove(filepath.Join(bs.tmp, e.Name())); err != nil {
			return nil, err
		}
	}
	return bs, nil
}

// name is the blob's file name for a file id.
func (bs *blobStore) name(fid []byte) string {
	m := hmac.New(sha256.New, bs.key)
	m.Write(fid)
	return hex.EncodeToString(m.Sum(nil)[:16])
}

func (bs *blobStore) path(fid []byte) string { return filepath.Join(bs.blobs, bs.name(fid)) }

// errBlobTooLarge: the body went over the size cap while streaming.
var errBlobTooLarge = errors.New("storage: blob over the size cap")

// write streams r into a new temporary file, hashing and counting; more
// than max bytes is errBlobTooLarge. On any error the temporary file is
// gone. The file is fsynced and closed.
func (bs *blobStore) write(r io.Reader, max int64) (tmp string, size int64, sum []byte, err error) {
	var rnd [16]byte
	rand.Read(rnd[:])
	path := filepath.Join(bs.tmp, hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", 0, nil, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(path)
		}
	}()
	h := sha256.New()
	size, err = io.Copy(io.MultiWriter(f, h), io.LimitReader(r, max+1))
	if err != nil {
		return "", 0, nil, err
	}
	if size > max {
		return "", 0, nil, errBlobTooLarge
	}
	if err = f.Sync(); err != nil {
		return "", 0, nil, err
	}
	if err = f.Close(); err != nil {
		return "", 0, nil, err
	}
	return path, size, h.Sum(nil), nil
}

// place renames a written temporary file to the blob of fid and makes the
// rename durable.
func (bs *blobStore) place(tmp string, fid []byte) error {
	if err := os.Rename(tmp, bs.path(fid)); err != nil {
		return err
	}
	return syncDir(bs.blobs)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// open opens the blob of fid.
func (bs *blobStore) open(fid []byte) (*os.File, error) { return os.Open(bs.path(fid)) }

// remove deletes the blobs of the given file ids; a missing one is fine.
func (bs *blobStore) remove(fids [][]byte) error {
	var errs []error
	for _, fid := range fids {
		if err := os.Remove(bs.path(fid)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeOrphans deletes every blob whose name is not in known (blobs whose
// metadata never committed). It must run before uploads do.
func (bs *blobStore) removeOrphans(known map[string]bool) (int, error) {
	ents, err := os.ReadDir(bs.blobs)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		if known[e.Name()] || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if err := os.Remove(filepath.Join(bs.blobs, e.Name())); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// errNoFiles: the store was opened without a files directory.
var errNoFiles = privateline.E("storage.files", privateline.Unavailable, "file storage is not configured")
