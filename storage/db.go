package storage

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/privateline/privateline"
)

// DefaultCacheBytes is the default size of the block cache.
const DefaultCacheBytes = 64 << 20

// DefaultMemTableBytes is the default size of a memtable: 16 MiB, four
// times Pebble's own default. A store that writes envelopes of a few KB
// at a rate flushes and compacts a quarter as often; a federation drain
// on 2 cores went from 6,700–7,800 to 8,600–12,300 envelopes/s (both
// servers) with it, while 64 MiB did worse than 16 (docs/benchmarks.md,
// "Federation, seventh pass"). Pebble starts with a small memtable and
// doubles it at each flush up to this size, so a quiet server stays
// small; a busy one holds up to about two of them.
const DefaultMemTableBytes = 16 << 20

var errCorrupt = errors.New("storage: sealed value does not open (wrong AES_KEY, corruption or tampering)")

// Options configure Open.
type Options struct {
	// CacheBytes sizes Pebble's block cache (default DefaultCacheBytes).
	CacheBytes int64
	// MemTableBytes sizes Pebble's memtables (0: DefaultMemTableBytes).
	// Larger ones keep recent writes — an outbox read moments after it
	// was queued — in memory and flush and compact less often.
	MemTableBytes uint64
	// Dir is the Pebble directory. With InMemory it only names the store.
	Dir string
	// InMemory keeps everything in Pebble's in-memory filesystem (tests).
	InMemory bool
	// Key is AES_KEY: 32 bytes from which every sealing subkey is derived.
	Key privateline.Secret
	// Logger receives Pebble's own log lines. Nil discards them.
	Logger *slog.Logger
	// FilesDir holds the file blobs (blobs.go); "" disables files.
	FilesDir string

	// EventWindow overrides the number of events kept per user
	// (storage.EventWindow); tests of the resynchronisation path make it
	// small. 0: EventWindow.
	EventWindow int

	fs         vfs.FS      // overrides InMemory/disk (tests: reopen the same MemFS)
	migrations []migration // overrides the built-in migrations (tests)
}

// DB is the homeserver's store. Its methods are safe for concurrent use.
type DB struct {
	db      *pebble.DB
	seal    *sealer
	nameKey []byte
	log     *slog.Logger

	// mu serialises read-modify-write operations: username uniqueness,
	// session rotation and revocation, account deletion.
	mu sync.Mutex

	// stripes serialise the messaging read-modify-writes (sequence
	// numbers, unread counters, an envelope's idempotency check) per user
	// and per message id; see messages.go for the lock ordering.
	stripes [numStripes]sync.Mutex

	// notify receives committed events (events.go); set before serving.
	notify func([]UserEvent)
	// outboxNotify hears of destinations with newly queued items
	// (outbox.go); set before serving.
	outboxNotify func(privateline.ServerName)
	// destMu guards destLocks, one mutex per outbox destination
	// (outbox.go; taken after stripes, before applyMu).
	destMu    sync.Mutex
	destLocks map[string]*sync.Mutex
	// outboxFloor: string(serverHash) → *atomic.Uint64, a sequence number
	// below which that destination's outbox holds no item (outbox.go).
	outboxFloor sync.Map
	// removalsBegun and removalsEnded count commits that delete envelope
	// records, before they are applied and after (outboxahead.go).
	removalsBegun, removalsEnded atomic.Uint64
	// now is the clock of the outbox (tests override it).
	now         func() time.Time
	eventWindow int

	// The commit pipeline (commit.go). applyMu orders applies; pubMu
	// guards pending and is taken inside applyMu, never the other way.
	applyMu sync.Mutex
	ticket  uint64 // guarded by applyMu: the last batch applied
	// applied is ticket, stored before its batch is applied; durable is
	// the last ticket known durable (readDurable).
	applied, durable atomic.Uint64
	pubMu            sync.Mutex
	pending          []pendingBatch // guarded by pubMu: applied, events not yet published

	// crashSkip moves each counter forward once after an unclean
	// shutdown (commit.go); boot tells which counters have moved.
	crashSkip uint64
	boot      uint64

	// groupEra is this opening's era of the groups of this server
	// (fedgroupsync.go): greater than any before in this store.
	groupEra uint64

	closed atomic.Bool
	users  userCache

	// blobs is the on-disk part of the files (nil: files disabled);
	// fileBytes and fileCount are the live files' figures for metrics.
	blobs     *blobStore
	fileBytes atomic.Int64
	fileCount atomic.Int64
	// remoteMu orders the cache of other servers' files (remotefiles.go):
	// storing a fetched file and dropping an unreferenced one. A leaf lock.
	remoteMu sync.Mutex
}

// valueSeparation keeps values of SeparateValuesFrom bytes or more out of
// the sstables. Blob files whose values are a fifth garbage (deleted or
// expired messages) are rewritten once they are an hour old.
var valueSeparation = pebble.ValueSeparationPolicy{
	Enabled:               true,
	MinimumSize:           SeparateValuesFrom,
	MaxBlobReferenceDepth: 10,
	RewriteMinimumAge:     time.Hour,
	TargetGarbageRatio:    0.2,
}

// SeparateValuesFrom is the size from which a stored value goes to a
// blob file: envelope records, not the small index entries.
const SeparateValuesFrom = 1024

// Open opens (creating if needed) the store and runs pending migrations.
func Open(o Options) (*DB, error) {
	const op = "storage.Open"
	s, err := newSealer(o.Key)
	if err != nil {
		return nil, privateline.E(op, privateline.Invalid, err)
	}
	nameKey, err := hkdf.Key(sha256.New, o.Key.Bytes(), nil, "privateline/v1/storage/name-index", 32)
	if err != nil {
		return nil, privateline.E(op, err)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fs := o.fs
	if fs == nil {
		fs = vfs.Default
		if o.InMemory {
			fs = vfs.NewMem()
		}
	}
	cacheBytes := o.CacheBytes
	if cacheBytes <= 0 {
		cacheBytes = DefaultCacheBytes
	}
	memTable := o.MemTableBytes
	if memTable == 0 {
		memTable = DefaultMemTableBytes
	}
	cache := pebble.NewCache(cacheBytes)
	defer cache.Unref()
	po := &pebble.Options{
		FS:                 fs,
		Logger:             pebbleLogger{log},
		FormatMajorVersion: pebble.FormatNewest,
		Cache:              cache,
		MemTableSize:       memTable,
	}
	// Most point reads on the send path look for keys that are not there
	// (a new message id, a tombstone, a denied token): Bloom filters answer
	// those without reading data blocks.
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	// Values are sealed (AES-GCM output): compressing them only costs CPU.
	po.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionNone })
	// Envelope records (a few KB each) go to blob files once and stay
	// there: compactions move their keys and references, not the values
	// (docs/benchmarks.md, "Federation, fourth pass").
	po.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy { return valueSeparation }
	pdb, err := pebble.Open(o.Dir, po)
	if err != nil {
		return nil, privateline.E(op, privateline.Unavailable, err)
	}
	d := &DB{db: pdb, seal: s, nameKey: nameKey, log: log, eventWindow: EventWindow, now: time.Now}
	if o.EventWindow > 0 {
		d.eventWindow = o.EventWindow
	}
	migs := o.migrations
	if migs == nil {
		migs = migrations
	}
	if err := d.migrate(migs); err != nil {
		pdb.Close()
		return nil, privateline.E(op, err)
	}
	if err := d.markOpen(); err != nil {
		pdb.Close()
		return nil, privateline.E(op, err)
	}
	if err := d.openGroupEra(); err != nil { // fedgroupsync.go
		pdb.Close()
		return nil, privateline.E(op, err)
	}
	if o.FilesDir != "" {
		fileKey, err := hkdf.Key(sha256.New, o.Key.Bytes(), nil, "privateline/v1/storage/file-names", 32)
		if err == nil {
			err = d.openFiles(o.FilesDir, fileKey)
		}
		if err != nil {
			pdb.Close()
			return nil, privateline.E(op, privateline.Unavailable, "opening the files directory", err)
		}
	}
	return d, nil
}

// Close records a clean close and closes the store; closing again does
// nothing.
func (d *DB) Close() error {
	if d.closed.Swap(true) {
		return nil
	}
	b := d.db.NewBatch()
	if err := errors.Join(b.Delete(openKey, nil), d.commit(b)); err != nil {
		d.log.Warn("could not record a clean close; the next start will skip sequence numbers", "err", err)
	}
	return d.db.Close()
}

// Ping checks that the store answers reads (for /readyz).
func (d *DB) Ping() error {
	_, err := d.schemaVersion()
	return err
}

// get reads and opens the value at key. A missing key is a NotExist error.
func (d *DB) get(key []byte) ([]byte, error) {
	v, closer, err := d.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, privateline.E("storage.get", privateline.NotExist)
	}
	if err != nil {
		return nil, privateline.E("storage.get", privateline.Unavailable, err)
	}
	defer closer.Close()
	pt, err := d.seal.open(key, v)
	if err != nil {
		return nil, privateline.E("storage.get", privateline.Internal, err)
	}
	return pt, nil
}

// getNew is get for a key that is most likely absent (a new message's
// id, its tombstone, its replay record): it consults the Bloom filters of
// every level, the last one's too, which DB.Get skips — there it reads
// the index and data blocks, from disk once the store outgrows the block
// cache. A miss then costs no block read.
func (d *DB) getNew(key []byte) ([]byte, error) {
	var p probe
	defer p.close()
	return p.get(d, key)
}

// existsNew is exists for a key that is most likely absent (getNew).
func (d *DB) existsNew(key []byte) (bool, error) {
	var p probe
	defer p.close()
	return p.exists(d, key)
}

// probe makes getNew's look-ups through one iterator, opened at the first
// and kept until close: many look-ups (an inbound transaction's entries)
// pay for one iterator's set-up. It sees the store as it was at the first
// look-up, so it suits only keys that the caller's locks keep from
// changing meanwhile. The zero probe is ready; close it.
type probe struct{ it *pebble.Iterator }

func (p *probe) seek(d *DB, key []byte) (bool, error) {
	if p.it == nil {
		it, err := d.db.NewIter(&pebble.IterOptions{UseL6Filters: true})
		if err != nil {
			return false, privateline.E("storage.get", privateline.Unavailable, err)
		}
		p.it = it
	}
	if p.it.SeekPrefixGE(key) && bytes.Equal(p.it.Key(), key) {
		return true, nil
	}
	if err := p.it.Error(); err != nil {
		return false, privateline.E("storage.get", privateline.Unavailable, err)
	}
	return false, nil
}

func (p *probe) get(d *DB, key []byte) ([]byte, error) {
	if ok, err := p.seek(d, key); err != nil {
		return nil, err
	} else if !ok {
		return nil, privateline.E("storage.get", privateline.NotExist)
	}
	v, err := p.it.ValueAndErr()
	if err != nil {
		return nil, privateline.E("storage.get", privateline.Unavailable, err)
	}
	pt, err := d.seal.open(key, v)
	if err != nil {
		return nil, privateline.E("storage.get", privateline.Internal, err)
	}
	return pt, nil
}

func (p *probe) exists(d *DB, key []byte) (bool, error) { return p.seek(d, key) }

func (p *probe) close() {
	if p.it != nil {
		p.it.Close()
		p.it = nil
	}
}

func (d *DB) getJSON(key []byte, v any) error {
	pt, err := d.get(key)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(pt, v); err != nil {
		return privateline.E("storage.getJSON", privateline.Internal, err)
	}
	return nil
}

// setSealed adds a sealed value to b.
func (d *DB) setSealed(b *pebble.Batch, key, plaintext []byte) {
	if err := b.Set(key, d.seal.seal(key, plaintext), nil); err != nil {
		panic(err) // Batch.Set fails only on a closed or indexed-read-only batch
	}
}

func (d *DB) setJSON(b *pebble.Batch, key []byte, v any) error {
	pt, err := json.Marshal(v)
	if err != nil {
		return privateline.E("storage.setJSON", privateline.Internal, err)
	}
	d.setSealed(b, key, pt)
	return nil
}

// commit commits b durably.
func (d *DB) commit(b *pebble.Batch) error {
	defer b.Close()
	if err := b.Commit(pebble.Sync); err != nil {
		return privateline.E("storage.commit", privateline.Unavailable, err)
	}
	return nil
}

// scanKeys calls fn with every key that starts with prefix. The key is only
// valid during the call.
func (d *DB) scanKeys(prefix []byte, fn func(key, value []byte) error) error {
	opts := &pebble.IterOptions{}
	if len(prefix) > 0 {
		opts.LowerBound, opts.UpperBound = prefix, prefixEnd(prefix)
	}
	it, err := d.db.NewIter(opts)
	if err != nil {
		return privateline.E("storage.scan", privateline.Unavailable, err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return privateline.E("storage.scan", privateline.Unavailable, err)
		}
		if err := fn(it.Key(), v); err != nil {
			return err
		}
	}
	return it.Error()
}

// Stats are figures about the store for metrics.
type Stats struct {
	DiskBytes     uint64
	MemtableBytes uint64
	WALBytes      uint64
	Compactions   int64
	Flushes       int64
	// CompactionsInProgress counts compactions and flushes under way.
	CompactionsInProgress int64
	ReadAmp               int
	BlockCacheBytes       int64
}

// Stats returns current figures from Pebble.
func (d *DB) Stats() Stats {
	m := d.db.Metrics()
	return Stats{
		DiskBytes:             m.DiskSpaceUsage(),
		MemtableBytes:         m.MemTable.Size,
		WALBytes:              m.WAL.Size,
		Compactions:           m.Compact.Count,
		Flushes:               m.Flush.Count,
		CompactionsInProgress: m.Compact.NumInProgress + m.Flush.NumInProgress,
		ReadAmp:               m.ReadAmp(),
		BlockCacheBytes:       m.BlockCache.Size,
	}
}

// compactRange compacts [start, end) so that deleted data leaves the files
// (used after account deletion).
func (d *DB) compactRange(start, end []byte) error {
	if err := d.db.Flush(); err != nil {
		return err
	}
	return d.db.Compact(context.Background(), start, end, false)
}

type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug("pebble: " + fmt.Sprintf(format, args...))
}
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error("pebble: " + fmt.Sprintf(format, args...))
}
func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Error("pebble fatal: " + fmt.Sprintf(format, args...))
	panic(fmt.Sprintf(format, args...))
}

var _ io.Closer = (*DB)(nil)

// Fingerprint hashes every key and opened value of the store, so tests can
// tell whether anything was written.
func (d *DB) Fingerprint() ([32]byte, error) {
	h := sha256.New()
	err := d.scanKeys(nil, func(k, v []byte) error {
		pt, err := d.seal.open(k, v)
		if err != nil {
			return privateline.E("storage.Fingerprint", privateline.Internal, err)
		}
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(k)))
		h.Write(n[:])
		h.Write(k)
		binary.BigEndian.PutUint64(n[:], uint64(len(pt)))
		h.Write(n[:])
		h.Write(pt)
		return nil
	})
	var sum [32]byte
	h.Sum(sum[:0])
	return sum, err
}

// ScanAll calls fn with every key and opened value (tests and audits).
func (d *DB) ScanAll(fn func(key, value []byte)) error {
	return d.scanKeys(nil, func(k, v []byte) error {
		pt, err := d.seal.open(k, v)
		if err != nil {
			return privateline.E("storage.ScanAll", privateline.Internal, err)
		}
		fn(k, pt)
		return nil
	})
}
