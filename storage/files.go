package storage

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"slices"
	"time"

	"github.com/privateline/privateline"
)

// Files (attachments, spec/e2ee.md §9): the server keeps client-encrypted
// blobs and knows only their size, digest and uploader.
//
// A file is uploaded first (CreateFile) and then referenced by the signed
// header ("files") of the envelopes that carry its key. Deliver checks
// that every listed file exists and was uploaded by the sender, and
// records a reference file ↔ message in the delivery's batch
// (referenceFiles); removing an envelope (deletion for everyone, expiry,
// account deletion) drops its references in the removing batch
// (unreferenceFiles), and the file whose last reference goes is deleted
// in that same batch, its blob right after the commit. A file never
// referenced is deleted by SweepFiles after a grace period. Every file of
// an account goes with the account.
//
// Locking: a file's record changes only under the stripe of its uploader.
// Every envelope that references a file was sent by its uploader, so the
// stripes Deliver and removeMessage hold (the sender is a participant)
// cover the records they change; CreateFile, DeleteFile and SweepFiles
// lock the uploaders' stripes themselves.

// MaxFilesPerUser bounds a user's live files, whatever their size.
const MaxFilesPerUser = 10_000

// Errors of the file routes, wrapped in privateline errors.
var (
	// ErrUnknownFile: an envelope lists a file that does not exist or
	// that the sender did not upload (Invalid).
	ErrUnknownFile = errors.New("storage: the envelope lists a file that does not exist or that the sender did not upload")
	// ErrFileTooLarge: the upload is over its size cap (TooLarge).
	ErrFileTooLarge = errors.New("storage: the file is over the size cap")
	// ErrQuotaExceeded: the upload would take the user over their quota
	// of bytes or files (TooLarge).
	ErrQuotaExceeded = errors.New("storage: the file would exceed the user's storage quota")
	// ErrFileInUse: a referenced file cannot be deleted by its uploader
	// (Exist); it goes with its last message.
	ErrFileInUse = errors.New("storage: the file is attached to a message")
)

type fileRecord struct {
	Uploader  ID     `json:"uploader"`
	Size      int64  `json:"size"`
	SHA256    []byte `json:"sha256"`
	CreatedAt int64  `json:"created_at"` // ms
	Refs      int    `json:"refs"`       // envelopes whose header lists it
}

// FileInfo describes a stored file.
type FileInfo struct {
	ID        string // 32 lower-case hex digits
	Uploader  ID
	Size      int64
	SHA256    []byte
	CreatedAt time.Time
	Refs      int
}

func (r *fileRecord) info(id string) *FileInfo {
	return &FileInfo{ID: id, Uploader: r.Uploader, Size: r.Size, SHA256: slices.Clone(r.SHA256), CreatedAt: time.UnixMilli(r.CreatedAt), Refs: r.Refs}
}

// FileUsage is what a user's live files take.
type FileUsage struct {
	Bytes int64 `json:"bytes"`
	Files int64 `json:"files"`
}

// FileUpload is one upload to store.
type FileUpload struct {
	Uploader ID
	Body     io.Reader
	MaxSize  int64 // bytes of the blob; more is ErrFileTooLarge
	Quota    int64 // bytes of the uploader's live files, this one included
	Now      time.Time
}

// fileKeyID parses a public file id (32 lower-case hex digits).
func fileKeyID(id string) ([]byte, bool) {
	b, err := hex.DecodeString(id)
	if err != nil || len(b) != 16 || hex.EncodeToString(b) != id {
		return nil, false
	}
	return b, true
}

// fileTxn is the file part of a messaging transaction (mtxn): the file
// records and usage figures it changes, and the blobs to remove once the
// batch has committed.
type fileTxn struct {
	files  map[string]*fileState
	usage  map[ID]*FileUsage
	remove [][]byte // file ids whose blobs go after the commit
	freed  FileUsage
	remote []remoteKey // other servers' files that lost a reference (remotefiles.go)
}

type fileState struct {
	rec  *fileRecord
	gone bool
}

func (t *mtxn) file(fid []byte) (*fileState, error) {
	if st := t.fx.files[string(fid)]; st != nil {
		return st, nil
	}
	var r fileRecord
	if err := t.d.getJSON(tFile.key(fid), &r); err != nil {
		return nil, err
	}
	if t.fx.files == nil {
		t.fx.files = map[string]*fileState{}
	}
	st := &fileState{rec: &r}
	t.fx.files[string(fid)] = st
	return st, nil
}

func (t *mtxn) fileUsage(u ID) (*FileUsage, error) {
	if us := t.fx.usage[u]; us != nil {
		return us, nil
	}
	us, err := t.d.FileUsage(u)
	if err != nil {
		return nil, err
	}
	if t.fx.usage == nil {
		t.fx.usage = map[ID]*FileUsage{}
	}
	t.fx.usage[u] = &us
	return &us, nil
}

// referenceFiles checks that every file of an envelope exists and was
// uploaded by its sender, and records the references of message mid. An
// envelope of any kind (direct or group) that lists files goes through it.
func (t *mtxn) referenceFiles(sender ID, mid []byte, files []string) error {
	for _, f := range files {
		fid, ok := fileKeyID(f)
		if !ok {
			return privateline.E("storage.referenceFiles", privateline.Invalid, ErrUnknownFile)
		}
		st, err := t.file(fid)
		if privateline.Is(privateline.NotExist, err) || (err == nil && (st.gone || st.rec.Uploader != sender)) {
			return privateline.E("storage.referenceFiles", privateline.Invalid, ErrUnknownFile)
		} else if err != nil {
			return err
		}
		st.rec.Refs++
		if st.rec.Refs == 1 {
			t.del(tFileOrphan.key(u64(uint64(st.rec.CreatedAt)), fid))
		}
		t.d.setSealed(t.b, tFileRef.key(fid, mid), nil)
	}
	return nil
}

// unreferenceFiles drops the references of message mid to its files;
// a file left without references is deleted.
func (t *mtxn) unreferenceFiles(mid []byte, files []string) error {
	for _, f := range files {
		fid, ok := fileKeyID(f)
		if !ok {
			continue
		}
		t.del(tFileRef.key(fid, mid))
		st, err := t.file(fid)
		if privateline.Is(privateline.NotExist, err) {
			continue
		} else if err != nil {
			return err
		}
		if st.gone {
			continue
		}
		if st.rec.Refs--; st.rec.Refs <= 0 {
			if err := t.dropFile(fid, st); err != nil {
				return err
			}
		}
	}
	return nil
}

// dropFile deletes a file's metadata in the batch and queues its blob.
func (t *mtxn) dropFile(fid []byte, st *fileState) error {
	st.gone = true
	r := st.rec
	t.del(tUserFile.key(r.Uploader[:], fid))
	t.del(tFileOrphan.key(u64(uint64(r.CreatedAt)), fid))
	us, err := t.fileUsage(r.Uploader)
	if err != nil {
		return err
	}
	us.Bytes -= r.Size
	us.Files--
	t.fx.freed.Bytes += r.Size
	t.fx.freed.Files++
	t.fx.remove = append(t.fx.remove, slices.Clone(fid))
	return nil
}

// dropUserFiles deletes every file of user u (account deletion), after
// the messages referencing them have been removed.
func (t *mtxn) dropUserFiles(u ID) error {
	var fids [][]byte
	if err := t.d.scanKeys(tUserFile.key(u[:]), func(k, _ []byte) error {
		fids = append(fids, slices.Clone(k[17:]))
		return nil
	}); err != nil {
		return err
	}
	for _, fid := range fids {
		st, err := t.file(fid)
		if privateline.Is(privateline.NotExist, err) {
			continue
		} else if err != nil {
			return err
		}
		if !st.gone {
			if err := t.dropFile(fid, st); err != nil {
				return err
			}
		}
		p := tFileRef.key(fid)
		if err := t.b.DeleteRange(p, prefixEnd(p), nil); err != nil {
			return err
		}
	}
	delete(t.fx.usage, u)
	t.del(tFileUsage.key(u[:]))
	return nil
}

// flushFiles writes the changed file records and usage figures to the
// batch.
func (t *mtxn) flushFiles() error {
	for fid, st := range t.fx.files {
		k := tFile.key([]byte(fid))
		if st.gone {
			t.del(k)
		} else if err := t.d.setJSON(t.b, k, st.rec); err != nil {
			return err
		}
	}
	for u, us := range t.fx.usage {
		if u == t.gone {
			continue
		}
		if err := t.d.setJSON(t.b, tFileUsage.key(u[:]), us); err != nil {
			return err
		}
	}
	return nil
}

// filesCommitted removes the blobs of the files the committed batch
// deleted.
func (t *mtxn) filesCommitted() {
	t.remoteCommitted()
	if len(t.fx.remove) == 0 || t.d.blobs == nil {
		return
	}
	t.d.fileBytes.Add(-t.fx.freed.Bytes)
	t.d.fileCount.Add(-t.fx.freed.Files)
	if err := t.d.blobs.remove(t.fx.remove); err != nil {
		// The metadata is gone; the blob is an orphan that the next
		// start-up removes.
		t.d.log.Error("removing file blobs failed", "err", err)
	}
}

// FileUsage returns what user u's live files take.
func (d *DB) FileUsage(u ID) (FileUsage, error) {
	var us FileUsage
	if err := d.getJSON(tFileUsage.key(u[:]), &us); err != nil && !privateline.Is(privateline.NotExist, err) {
		return us, privateline.E("storage.FileUsage", err)
	}
	return us, nil
}

// FileStats returns the bytes and number of live files on the server.
func (d *DB) FileStats() (bytes, files int64) { return d.fileBytes.Load(), d.fileCount.Load() }

// CreateFile stores an uploaded blob: it streams the body to a temporary
// file (never holding it in memory), fsyncs it, renames it into place,
// fsyncs the directory and then commits the metadata in one synced batch.
// Over MaxSize is ErrFileTooLarge, over the quota (bytes, or
// MaxFilesPerUser files) ErrQuotaExceeded, both TooLarge; an empty body
// is Invalid. On any error nothing remains.
func (d *DB) CreateFile(up FileUpload) (*FileInfo, error) {
	const op = "storage.CreateFile"
	if d.blobs == nil {
		return nil, errNoFiles
	}
	tmp, size, sum, err := d.blobs.write(up.Body, up.MaxSize)
	switch {
	case errors.Is(err, errBlobTooLarge):
		return nil, privateline.E(op, privateline.TooLarge, ErrFileTooLarge)
	case err != nil:
		return nil, privateline.E(op, privateline.Invalid, "could not read the upload", err)
	case size == 0:
		os.Remove(tmp)
		return nil, privateline.E(op, privateline.Invalid, "the file is empty")
	}
	placed := false
	var fid []byte
	defer func() {
		if err != nil {
			os.Remove(tmp)
			if placed {
				d.blobs.remove([][]byte{fid})
			}
		}
	}()
	id := NewID()
	fid = id[:]
	unlock := d.lockStripes(up.Uploader[:])
	defer unlock()
	if ok, e := d.exists(tUser.key(up.Uploader[:])); e != nil || !ok {
		if err = e; err == nil {
			err = privateline.E(op, privateline.NotExist, "no such user")
		}
		return nil, err
	}
	us, err := d.FileUsage(up.Uploader)
	if err != nil {
		return nil, err
	}
	if us.Bytes+size > up.Quota || us.Files >= MaxFilesPerUser {
		err = privateline.E(op, privateline.TooLarge, ErrQuotaExceeded)
		return nil, err
	}
	if err = d.blobs.place(tmp, fid); err != nil {
		err = privateline.E(op, privateline.Unavailable, err)
		return nil, err
	}
	placed = true
	rec := &fileRecord{Uploader: up.Uploader, Size: size, SHA256: sum, CreatedAt: up.Now.UnixMilli()}
	us.Bytes += size
	us.Files++
	b := d.db.NewBatch()
	d.setSealed(b, tUserFile.key(up.Uploader[:], fid), nil)
	d.setSealed(b, tFileOrphan.key(u64(uint64(rec.CreatedAt)), fid), nil)
	if err = errors.Join(d.setJSON(b, tFile.key(fid), rec), d.setJSON(b, tFileUsage.key(up.Uploader[:]), us)); err != nil {
		b.Close()
		return nil, privateline.E(op, err)
	}
	if err = d.commit(b); err != nil {
		return nil, privateline.E(op, err)
	}
	d.fileBytes.Add(size)
	d.fileCount.Add(1)
	return rec.info(hex.EncodeToString(fid)), nil
}

// OpenFile returns a file and its open blob for user: the uploader, or a
// holder of a live, unexpired copy of an envelope whose signed header
// lists the file (recipients and sender). Anyone else, and an unknown or
// malformed id, is NotExist. The caller closes the file.
func (d *DB) OpenFile(user ID, id string, now time.Time) (*FileInfo, *os.File, error) {
	const op = "storage.OpenFile"
	if d.blobs == nil {
		return nil, nil, errNoFiles
	}
	fid, ok := fileKeyID(id)
	if !ok {
		return nil, nil, privateline.E(op, privateline.NotExist)
	}
	var r fileRecord
	if err := d.getJSON(tFile.key(fid), &r); err != nil {
		return nil, nil, privateline.E(op, err)
	}
	if r.Uploader != user {
		allowed, err := d.mayDownload(user, fid, now)
		if err != nil {
			return nil, nil, privateline.E(op, err)
		}
		if !allowed {
			return nil, nil, privateline.E(op, privateline.NotExist)
		}
	}
	f, err := d.blobs.open(fid)
	if errors.Is(err, os.ErrNotExist) {
		d.log.Error("a file's blob is missing", "file", id)
		return nil, nil, privateline.E(op, privateline.NotExist)
	} else if err != nil {
		return nil, nil, privateline.E(op, privateline.Unavailable, err)
	}
	return r.info(id), f, nil
}

// errAllowed stops the reference scan.
var errAllowed = errors.New("allowed")

// mayDownload reports whether user holds a live, unexpired copy of an
// envelope that references file fid.
func (d *DB) mayDownload(user ID, fid []byte, now time.Time) (bool, error) {
	p := tFileRef.key(fid)
	err := d.scanKeys(p, func(k, _ []byte) error {
		if len(k) != len(p)+16 {
			return nil
		}
		mid := slices.Clone(k[len(p):])
		rec, err := d.envelope(mid)
		if privateline.Is(privateline.NotExist, err) {
			return nil
		} else if err != nil {
			return err
		}
		if rec.expired(now) {
			return nil
		}
		if _, err := d.liveSeq(user, mid); err == nil {
			return errAllowed
		} else if !privateline.Is(privateline.NotExist, err) {
			return err
		}
		return nil
	})
	if errors.Is(err, errAllowed) {
		return true, nil
	}
	return false, err
}

// DeleteFile deletes a file for its uploader while no message references
// it (ErrFileInUse, kind Exist, otherwise). Anyone else gets NotExist.
func (d *DB) DeleteFile(user ID, id string) error {
	const op = "storage.DeleteFile"
	if d.blobs == nil {
		return errNoFiles
	}
	fid, ok := fileKeyID(id)
	if !ok {
		return privateline.E(op, privateline.NotExist)
	}
	unlock := d.lockStripes(user[:])
	defer unlock()
	t := d.newMtxn(nil)
	st, err := t.file(fid)
	if err == nil && st.rec.Uploader != user {
		err = privateline.E(op, privateline.NotExist)
	}
	if err == nil && st.rec.Refs > 0 {
		err = privateline.E(op, privateline.Exist, ErrFileInUse)
	}
	if err == nil {
		err = t.dropFile(fid, st)
	}
	if err != nil {
		t.b.Close()
		return privateline.E(op, err)
	}
	return t.commit()
}

// SweepFiles deletes the files created at or before now−grace that no
// message has referenced, and returns how many went.
func (d *DB) SweepFiles(now time.Time, grace time.Duration) (int, error) {
	const op = "storage.SweepFiles"
	if d.blobs == nil {
		return 0, nil
	}
	remote := d.sweepRemoteFiles() // copies of other servers' files left unreferenced by a crash
	upper := tFileOrphan.key(u64(uint64(now.Add(-grace).UnixMilli()) + 1))
	var fids [][]byte
	if err := d.scanKeys([]byte{tFileOrphan.prefix}, func(k, _ []byte) error {
		if string(k) >= string(upper) || len(fids) >= maxSweep {
			return errStop
		}
		if len(k) == 1+8+16 {
			fids = append(fids, slices.Clone(k[9:]))
		}
		return nil
	}); err != nil && !errors.Is(err, errStop) {
		return 0, privateline.E(op, err)
	}
	if len(fids) == 0 {
		return remote, nil
	}
	var owners [][]byte
	for _, fid := range fids {
		var r fileRecord
		if err := d.getJSON(tFile.key(fid), &r); err == nil {
			owners = append(owners, r.Uploader[:])
		}
	}
	unlock := d.lockStripes(owners...)
	defer unlock()
	t := d.newMtxn(nil)
	n := 0
	for _, fid := range fids {
		st, err := t.file(fid)
		if privateline.Is(privateline.NotExist, err) {
			continue
		} else if err != nil {
			t.b.Close()
			return 0, privateline.E(op, err)
		}
		if st.gone || st.rec.Refs > 0 || time.UnixMilli(st.rec.CreatedAt).After(now.Add(-grace)) {
			continue
		}
		if err := t.dropFile(fid, st); err != nil {
			t.b.Close()
			return 0, privateline.E(op, err)
		}
		n++
	}
	if err := t.commit(); err != nil {
		return 0, privateline.E(op, err)
	}
	return n + remote, nil
}

// openFiles opens the blob store at Open: it counts the live files for
// the metrics and removes blobs without metadata.
func (d *DB) openFiles(dir string, key []byte) error {
	bs, err := openBlobStore(dir, key)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	var bytes, count int64
	err = d.scanKeys([]byte{tFile.prefix}, func(k, v []byte) error {
		if len(k) != 17 {
			return nil
		}
		pt, err := d.seal.open(k, v)
		if err != nil {
			return privateline.E("storage.openFiles", privateline.Internal, err)
		}
		var r fileRecord
		if err := json.Unmarshal(pt, &r); err != nil {
			return privateline.E("storage.openFiles", privateline.Internal, err)
		}
		known[bs.name(k[1:])] = true
		bytes += r.Size
		count++
		return nil
	})
	if err != nil {
		return err
	}
	// Cached copies of other servers' files (remotefiles.go).
	if err := d.scanKeys([]byte{tRemoteFile.prefix}, func(k, _ []byte) error {
		if len(k) == 1+16+16 {
			known[bs.remoteName(k[1:17], k[17:33])] = true
		}
		return nil
	}); err != nil {
		return err
	}
	n, err := bs.removeOrphans(known)
	if err != nil {
		return err
	}
	if n > 0 {
		d.log.Warn("removed file blobs left without metadata by a crash", "count", n)
	}
	d.blobs = bs
	d.fileBytes.Store(bytes)
	d.fileCount.Store(count)
	return nil
}
