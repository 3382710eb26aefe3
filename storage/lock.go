package storage

import (
	"io"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// LockDir takes the lock an open store holds on its directory (Pebble's
// LOCK file), for tools that must not run while a server uses the store
// (homeserver rotate-key). It fails while the store is open, in this
// process or another; Close releases it.
func LockDir(dir string) (io.Closer, error) {
	return vfs.Default.Lock(filepath.Join(dir, "LOCK"))
}
