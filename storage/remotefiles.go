package storage

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/privateline/privateline"
)

// Files across servers (spec/federation.md §12.4). A message from another
// server lists files that stay on its origin. This server records, when it
// stores such a message, which files of which origin it lists; the first
// download by a local recipient fetches the file from the origin
// (package federation) into a cache kept like the local blobs; the copy
// goes when no live message here lists it any more. The answering side
// (FileForPeer) serves this server's own files to the recipients'
// servers.
//
//	'v' fid(16) origin(16) msgID(16)  message msgID, from origin, lists
//	                                  origin's file fid (written with the
//	                                  message, deleted with it)
//	'q' origin(16) fid(16)            the cached copy: size, SHA-256, when
//	                                  fetched; its blob is <FilesDir>/blobs/
//	                                  hex(HMAC(fileNameKey, "remote" 0x00
//	                                  origin fid)[:16])
//
// origin is serverHash(name): no server name or file id can be read off
// the keys or the disk. A cached copy is placed (renamed, directory
// synced) before its record commits and removed after its record's
// deletion commits, like a local blob; Open removes blobs without a
// record. remoteMu orders storing a copy (only while a reference exists)
// against dropping it (only once none is left), so a copy never outlives
// its last reference except across a crash, which SweepFiles mends.

// ErrRemoteFileMismatch: the bytes an origin sent are not the size or
// digest it announced (Invalid). Nothing is stored.
var ErrRemoteFileMismatch = errors.New("storage: the file from the other server does not match the size or digest it announced")

type remoteFileRecord struct {
	Size      int64  `json:"size"`
	SHA256    []byte `json:"sha256"`
	FetchedAt int64  `json:"fetched_at"` // ms
}

// remoteKey names a remote file: its origin's hash and its id.
type remoteKey struct{ oh, fid string }

// RemoteFileSource says where a file of another server that a local user
// may read comes from: its origin, a message from that origin the user
// holds that lists it, and the user's address as a recipient of it (the
// file_request's requester).
type RemoteFileSource struct {
	Origin    privateline.ServerName
	Message   string
	Requester privateline.Address
}

func (bs *blobStore) remoteName(oh, fid []byte) string {
	m := hmac.New(sha256.New, bs.key)
	m.Write([]byte("remote\x00"))
	m.Write(oh)
	m.Write(fid)
	return hex.EncodeToString(m.Sum(nil)[:16])
}

func (bs *blobStore) remotePath(oh, fid []byte) string {
	return filepath.Join(bs.blobs, bs.remoteName(oh, fid))
}

// referenceRemoteFiles records that the inbound message mid from the
// origin with hash oh lists files (ids that are not files' ids are
// skipped: the envelope's checks refused them before).
func (t *mtxn) referenceRemoteFiles(oh, mid []byte, files []string) {
	for _, f := range files {
		if fid, ok := fileKeyID(f); ok {
			t.d.setSealed(t.b, tRemoteFileRef.key(fid, oh, mid), nil)
		}
	}
}

// unreferenceRemoteFiles drops the references of rec, a message being
// removed, to its origin's files; the copies left without one go after
// the commit (remoteCommitted).
func (t *mtxn) unreferenceRemoteFiles(rec *envelopeRecord, mid []byte) {
	if !rec.remoteSender() || len(rec.OriginFiles) == 0 {
		return
	}
	_, srv, err := rec.Sender.Address.Split()
	if err != nil {
		return
	}
	oh := t.d.serverHash(srv)
	for _, f := range rec.OriginFiles {
		if fid, ok := fileKeyID(f); ok {
			t.del(tRemoteFileRef.key(fid, oh, mid))
			t.fx.remote = append(t.fx.remote, remoteKey{string(oh), string(fid)})
		}
	}
}

// remoteCommitted drops the cached copies whose last reference the
// committed batch removed.
func (t *mtxn) remoteCommitted() {
	if len(t.fx.remote) > 0 {
		t.d.dropUnreferencedRemote(t.fx.remote)
		t.fx.remote = nil
	}
}

// remoteReferenced reports whether a message stored here lists the
// origin's file.
func (d *DB) remoteReferenced(oh, fid []byte) (bool, error) {
	found := false
	err := d.scanKeys(tRemoteFileRef.key(fid, oh), func(k, _ []byte) error {
		found = true
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return false, err
	}
	return found, nil
}

// dropUnreferencedRemote deletes the cached copies of keys that no stored
// message lists any more, and returns how many went.
func (d *DB) dropUnreferencedRemote(keys []remoteKey) int {
	if d.blobs == nil || len(keys) == 0 {
		return 0
	}
	d.remoteMu.Lock()
	defer d.remoteMu.Unlock()
	b := d.db.NewBatch()
	var gone []remoteKey
	for _, k := range keys {
		oh, fid := []byte(k.oh), []byte(k.fid)
		if slices.Contains(gone, k) {
			continue
		}
		ref, err := d.remoteReferenced(oh, fid)
		if err != nil {
			d.log.Error("checking a cached remote file", "err", err)
			continue
		}
		if ref {
			continue
		}
		rk := tRemoteFile.key(oh, fid)
		if ok, err := d.exists(rk); err != nil || !ok {
			continue
		}
		if err := b.Delete(rk, nil); err != nil {
			b.Close()
			return 0
		}
		gone = append(gone, k)
	}
	if len(gone) == 0 {
		b.Close()
		return 0
	}
	if err := d.commit(b); err != nil {
		d.log.Error("dropping cached remote files", "err", err)
		return 0
	}
	for _, k := range gone {
		if err := os.Remove(d.blobs.remotePath([]byte(k.oh), []byte(k.fid))); err != nil && !errors.Is(err, os.ErrNotExist) {
			// The record is gone; the next start removes the blob.
			d.log.Error("removing a cached remote file", "err", err)
		}
	}
	return len(gone)
}

// sweepRemoteFiles drops cached copies left without references (a crash
// between a message's removal and its copy's), at most maxSweep a call.
func (d *DB) sweepRemoteFiles() int {
	var keys []remoteKey
	err := d.scanKeys([]byte{tRemoteFile.prefix}, func(k, _ []byte) error {
		if len(keys) >= maxSweep {
			return errStop
		}
		if len(k) == 1+16+16 {
			keys = append(keys, remoteKey{string(k[1:17]), string(k[17:33])})
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		d.log.Error("sweeping cached remote files", "err", err)
		return 0
	}
	return d.dropUnreferencedRemote(keys)
}

// RemoteFileSource returns where the file id of another server comes
// from for user: a live, unexpired message from that server that the user
// holds a copy of and whose signed header lists the file — the rule of
// local files (OpenFile) for files that stay on their origin. Anyone else,
// and a malformed id, is NotExist.
func (d *DB) RemoteFileSource(user ID, id string, now time.Time) (*RemoteFileSource, error) {
	const op = "storage.RemoteFileSource"
	fid, ok := fileKeyID(id)
	if !ok {
		return nil, privateline.E(op, privateline.NotExist)
	}
	p := tRemoteFileRef.key(fid)
	var out *RemoteFileSource
	err := d.scanKeys(p, func(k, _ []byte) error {
		if len(k) != len(p)+32 {
			return nil
		}
		oh, mid := k[len(p):len(p)+16], slices.Clone(k[len(p)+16:])
		rec, err := d.envelope(mid)
		if privateline.Is(privateline.NotExist, err) {
			return nil
		} else if err != nil {
			return err
		}
		_, srv, err := rec.Sender.Address.Split()
		if rec.expired(now) || !rec.remoteSender() || err != nil || !bytes.Equal(d.serverHash(srv), oh) {
			return nil
		}
		if _, err := d.liveSeq(user, mid); privateline.Is(privateline.NotExist, err) {
			return nil
		} else if err != nil {
			return err
		}
		for _, r := range rec.Recipients {
			if r.ID == user {
				out = &RemoteFileSource{Origin: srv, Message: hex.EncodeToString(mid), Requester: r.Address}
				return errAllowed
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errAllowed) {
		return nil, privateline.E(op, err)
	}
	if out == nil {
		return nil, privateline.E(op, privateline.NotExist)
	}
	return out, nil
}

// OpenRemoteFile returns the cached copy of origin's file id and its open
// blob; NotExist when it is not cached. It does not check who may read it
// (RemoteFileSource does). The caller closes the file.
func (d *DB) OpenRemoteFile(origin privateline.ServerName, id string) (*FileInfo, *os.File, error) {
	const op = "storage.OpenRemoteFile"
	if d.blobs == nil {
		return nil, nil, errNoFiles
	}
	fid, ok := fileKeyID(id)
	if !ok {
		return nil, nil, privateline.E(op, privateline.NotExist)
	}
	oh := d.serverHash(origin)
	var r remoteFileRecord
	if err := d.getJSON(tRemoteFile.key(oh, fid), &r); err != nil {
		return nil, nil, privateline.E(op, err)
	}
	f, err := os.Open(d.blobs.remotePath(oh, fid))
	if errors.Is(err, os.ErrNotExist) {
		// Dropped between the record's read and the open.
		return nil, nil, privateline.E(op, privateline.NotExist)
	} else if err != nil {
		return nil, nil, privateline.E(op, privateline.Unavailable, err)
	}
	return &FileInfo{ID: id, Size: r.Size, SHA256: slices.Clone(r.SHA256), CreatedAt: time.UnixMilli(r.FetchedAt)}, f, nil
}

// StoreRemoteFile caches origin's file id from body, which must yield
// exactly size bytes whose SHA-256 is sum (spec/federation.md §12.4): the
// bytes are streamed to a temporary file and checked before anything is
// kept; a mismatch is ErrRemoteFileMismatch (Invalid), a body that fails
// its error (Unavailable). If no message here lists the file any more
// (it was deleted while fetching) nothing is kept and it is NotExist. A
// copy cached meanwhile is answered as it is.
func (d *DB) StoreRemoteFile(origin privateline.ServerName, id string, body io.Reader, size int64, sum []byte, now time.Time) (*FileInfo, error) {
	const op = "storage.StoreRemoteFile"
	if d.blobs == nil {
		return nil, errNoFiles
	}
	fid, ok := fileKeyID(id)
	if !ok || size < 1 || len(sum) != sha256.Size {
		return nil, privateline.E(op, privateline.Invalid, "a file id, a size of at least one byte and a SHA-256")
	}
	tmp, n, got, err := d.blobs.write(body, size)
	switch {
	case errors.Is(err, errBlobTooLarge):
		return nil, privateline.E(op, privateline.Invalid, ErrRemoteFileMismatch, "more bytes than announced")
	case err != nil:
		return nil, privateline.E(op, privateline.Unavailable, err)
	case n != size || !hmac.Equal(got, sum):
		os.Remove(tmp)
		return nil, privateline.E(op, privateline.Invalid, ErrRemoteFileMismatch)
	}
	oh := d.serverHash(origin)
	d.remoteMu.Lock()
	defer d.remoteMu.Unlock()
	rk := tRemoteFile.key(oh, fid)
	var prev remoteFileRecord
	if err := d.getJSON(rk, &prev); err == nil {
		os.Remove(tmp)
		return &FileInfo{ID: id, Size: prev.Size, SHA256: prev.SHA256, CreatedAt: time.UnixMilli(prev.FetchedAt)}, nil
	} else if !privateline.Is(privateline.NotExist, err) {
		os.Remove(tmp)
		return nil, privateline.E(op, err)
	}
	ref, err := d.remoteReferenced(oh, fid)
	if err != nil || !ref {
		os.Remove(tmp)
		if err == nil {
			err = privateline.E(op, privateline.NotExist, "no message here lists the file any more")
		}
		return nil, privateline.E(op, err)
	}
	path := d.blobs.remotePath(oh, fid)
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return nil, privateline.E(op, privateline.Unavailable, err)
	}
	if err := syncDir(d.blobs.blobs); err != nil {
		os.Remove(path)
		return nil, privateline.E(op, privateline.Unavailable, err)
	}
	rec := remoteFileRecord{Size: size, SHA256: got, FetchedAt: now.UnixMilli()}
	b := d.db.NewBatch()
	if err := d.setJSON(b, rk, rec); err != nil {
		b.Close()
		os.Remove(path)
		return nil, privateline.E(op, err)
	}
	if err := d.commit(b); err != nil {
		os.Remove(path)
		return nil, privateline.E(op, err)
	}
	return &FileInfo{ID: id, Size: size, SHA256: slices.Clone(got), CreatedAt: now}, nil
}

// RemoteFileCached reports whether a copy of origin's file id is cached
// here.
func (d *DB) RemoteFileCached(origin privateline.ServerName, id string) (bool, error) {
	fid, ok := fileKeyID(id)
	if !ok {
		return false, nil
	}
	return d.exists(tRemoteFile.key(d.serverHash(origin), fid))
}

// directFileReader is FileForPeer's rule for a direct message's files:
// requester is one of its recipients on other servers (the header "to").
func directFileReader(rec *envelopeRecord, requester privateline.Address) (bool, error) {
	return slices.Contains(rec.Remote, requester), nil
}

// groupFileReader is FileForPeer's rule for a group message's files:
// requester is a member of its group as this server knows it (its own
// group, or its replica; fedgroups.go, spec/federation.md §12.1).
func (d *DB) groupFileReader(rec *envelopeRecord, requester privateline.Address) (bool, error) {
	return d.groupHas(rec.Group, requester)
}

// FileForPeer is the answering side of a file_request (spec/federation.md
// §12.4): this server's file id and its open blob, if requester is a user
// of origin (the requesting server) named in the header "to" of message,
// a live, unexpired direct envelope that a user of this server sent and
// whose header "files" lists the file (directFileReader) — or, for a
// group message, a member of its group as this server knows it
// (groupFileReader, spec §12.1). Every other case is NotExist (the wire's
// unknown_file). The caller closes the file.
func (d *DB) FileForPeer(origin privateline.ServerName, requester privateline.Address, message, id string, now time.Time) (*FileInfo, *os.File, error) {
	const op = "storage.FileForPeer"
	if d.blobs == nil {
		return nil, nil, errNoFiles
	}
	notExist := privateline.E(op, privateline.NotExist)
	fid, ok := fileKeyID(id)
	mid, err := msgKeyID(message)
	if !ok || err != nil {
		return nil, nil, notExist
	}
	if _, srv, err := requester.Split(); err != nil || srv != origin {
		return nil, nil, notExist
	}
	rec, err := d.envelope(mid)
	if privateline.Is(privateline.NotExist, err) {
		return nil, nil, notExist
	} else if err != nil {
		return nil, nil, privateline.E(op, err)
	}
	if rec.expired(now) || rec.remoteSender() || !slices.Contains(rec.Files, id) {
		return nil, nil, notExist
	}
	check := directFileReader
	if rec.Group != "" {
		check = d.groupFileReader
	}
	if ok, err := check(rec, requester); err != nil {
		return nil, nil, privateline.E(op, err)
	} else if !ok {
		return nil, nil, notExist
	}
	var r fileRecord
	if err := d.getJSON(tFile.key(fid), &r); privateline.Is(privateline.NotExist, err) {
		return nil, nil, notExist
	} else if err != nil {
		return nil, nil, privateline.E(op, err)
	}
	if r.Uploader != rec.Sender.ID {
		return nil, nil, notExist
	}
	f, err := d.blobs.open(fid)
	if errors.Is(err, os.ErrNotExist) {
		d.log.Error("a file's blob is missing", "file", id)
		return nil, nil, notExist
	} else if err != nil {
		return nil, nil, privateline.E(op, privateline.Unavailable, err)
	}
	return r.info(id), f, nil
}
