package logging

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// dateLayout is the UTC date in rotated file names: Path.2006-01-02.
const dateLayout = "2006-01-02"

// rotatingFile is the writer behind Options.Path. Each Write is appended
// whole to one file, so a line never straddles a rotation. It is safe for
// concurrent use.
type rotatingFile struct {
	path      string
	retention int // days; 0 disables rotation and deletion
	now       func() time.Time

	mu  sync.Mutex
	f   *os.File // nil once closed
	day string   // UTC date (dateLayout) of the lines in f
}

func openRotatingFile(path string, retention int, now func() time.Time) (*rotatingFile, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("logging: creating the directory of Options.Path: %w", err)
	}
	w := &rotatingFile{path: path, retention: retention, now: now}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.openLocked(); err != nil {
		return nil, err
	}
	if retention > 0 {
		if err := w.pruneLocked(); err != nil {
			w.f.Close()
			return nil, err
		}
	}
	return w, nil
}

func (w *rotatingFile) today() string { return w.now().UTC().Format(dateLayout) }

// openLocked opens (or creates) w.path for appending and sets w.day.
func (w *rotatingFile) openLocked() error {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("logging: opening Options.Path: %w", err)
	}
	// An existing file may have been created with a wider mode.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("logging: restricting Options.Path to mode 0600: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("logging: opening Options.Path: %w", err)
	}
	w.f, w.day = f, w.today()
	if fi.Size() > 0 {
		w.day = fi.ModTime().UTC().Format(dateLayout)
	}
	return nil
}

func (w *rotatingFile) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return 0, errors.New("logging: write to closed log file")
	}
	var rotErr error
	if w.retention > 0 && w.today() != w.day {
		rotErr = w.rotateLocked()
		if w.f == nil {
			return 0, rotErr
		}
	}
	n, err := w.f.Write(p)
	return n, errors.Join(err, rotErr)
}

// rotateLocked moves the current file aside under its date, opens a fresh
// one and deletes expired files. If the file cannot be moved, logging goes on
// in the same file and the error is returned.
func (w *rotatingFile) rotateLocked() error {
	closeErr := w.f.Close()
	w.f = nil
	renameErr := os.Rename(w.path, w.freeNameLocked(w.day))
	if err := w.openLocked(); err != nil {
		return errors.Join(closeErr, renameErr, err)
	}
	w.day = w.today()
	return errors.Join(closeErr, renameErr, w.pruneLocked())
}

// freeNameLocked returns Path.day, or Path.day.N for the first N not taken.
func (w *rotatingFile) freeNameLocked(day string) string {
	name := w.path + "." + day
	for n := 1; ; n++ {
		if _, err := os.Lstat(name); errors.Is(err, os.ErrNotExist) {
			return name
		}
		name = w.path + "." + day + "." + strconv.Itoa(n)
	}
}

// pruneLocked deletes rotated files dated before today - retention days.
func (w *rotatingFile) pruneLocked() error {
	today, err := time.Parse(dateLayout, w.today())
	if err != nil {
		return err
	}
	cutoff := today.AddDate(0, 0, -w.retention)
	dir, prefix := filepath.Dir(w.path), filepath.Base(w.path)+"."
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("logging: listing old log files: %w", err)
	}
	var errs []error
	for _, e := range entries {
		name, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || e.IsDir() {
			continue
		}
		day, ok := rotatedDate(name)
		if ok && day.Before(cutoff) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				errs = append(errs, fmt.Errorf("logging: deleting expired log file: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

// rotatedDate parses the suffix of a rotated file name: "2006-01-02" or
// "2006-01-02.N".
func rotatedDate(suffix string) (time.Time, bool) {
	date, n, hasN := strings.Cut(suffix, ".")
	if hasN {
		if _, err := strconv.ParseUint(n, 10, 32); err != nil {
			return time.Time{}, false
		}
	}
	t, err := time.Parse(dateLayout, date)
	return t, err == nil
}

func (w *rotatingFile) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}
