package logging

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %v, want %v", path, got, want)
	}
}

func TestRotateOnUTCDayChange(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "var", "log")
	path := filepath.Join(dir, "server.log")
	// 00:01 UTC on 9 March, seen from UTC+10 where it is already 10:01.
	clk := newFakeClock(time.Date(2025, 3, 9, 10, 1, 0, 0, time.FixedZone("AEST", 10*3600)))
	log, c := mustNew(t, Options{Path: path, RetentionDays: 7, Now: clk.Now})

	log.Info("early on the 9th")
	clk.Advance(23*time.Hour + 58*time.Minute) // 23:59 UTC, still the 9th
	log.Info("late on the 9th")
	clk.Advance(2 * time.Minute) // 00:01 UTC on the 10th
	log.Info("early on the 10th")
	mustClose(t, c)

	old := readFile(t, path+".2025-03-09")
	cur := readFile(t, path)
	for _, want := range []string{"early on the 9th", "late on the 9th"} {
		if !strings.Contains(old, want) {
			t.Errorf("rotated file lacks %q:\n%s", want, old)
		}
		if strings.Contains(cur, want) {
			t.Errorf("active file still holds %q:\n%s", want, cur)
		}
	}
	if !strings.Contains(cur, "early on the 10th") || strings.Contains(old, "early on the 10th") {
		t.Errorf("the 10th's line is in the wrong file:\nold: %s\ncur: %s", old, cur)
	}
	if got, want := dirNames(t, dir), []string{"server.log", "server.log.2025-03-09"}; !slices.Equal(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
	checkMode(t, path, 0o600)
	checkMode(t, path+".2025-03-09", 0o600)
	checkMode(t, dir, 0o700)
	checkMode(t, filepath.Join(root, "var"), 0o700)
}

func TestRetentionDeletesExpiredFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "server.log")
	// Today is the 20th; with 3 days kept, the 17th is the oldest date kept
	// at open, and the 18th once the clock moves to the 21st.
	files := []struct {
		name                 string
		keptOpen, keptRotate bool
	}{
		{"server.log.2025-03-19", true, true},
		{"server.log.2025-03-18", true, true},
		{"server.log.2025-03-17", true, false},
		{"server.log.2025-03-17.1", true, false},
		{"server.log.2025-03-16", false, false},
		{"server.log.2025-03-15.2", false, false},
		{"server.log.2024-12-31", false, false},
		// Not rotated logs of this file: never touched.
		{"server.log.notes", true, true},
		{"server.log.2025-13-01", true, true},
		{"server.log.2000-01-01.gz", true, true},
		{"other.log.2000-01-01", true, true},
	}
	for _, f := range files {
		writeFile(t, filepath.Join(dir, f.name), "old line\n")
	}
	clk := newFakeClock(time.Date(2025, 3, 20, 12, 0, 0, 0, time.UTC))
	log, c := mustNew(t, Options{Path: path, RetentionDays: 3, Now: clk.Now})

	check := func(when string, kept func(int) bool) {
		t.Helper()
		for i, f := range files {
			_, err := os.Stat(filepath.Join(dir, f.name))
			if exists := err == nil; exists != kept(i) {
				t.Errorf("%s: %s exists=%v, want %v", when, f.name, exists, kept(i))
			}
		}
	}
	check("at open", func(i int) bool { return files[i].keptOpen })

	log.Info("on the 20th")
	clk.Advance(24 * time.Hour)
	log.Info("on the 21st")
	mustClose(t, c)
	check("after rotation", func(i int) bool { return files[i].keptRotate })
	if got := readFile(t, path+".2025-03-20"); !strings.Contains(got, "on the 20th") {
		t.Errorf("rotated file: %q", got)
	}
}

func TestNoRotationWithoutRetention(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "server.log")
	writeFile(t, path+".2000-01-01", "ancient\n")
	clk := newFakeClock(time.Date(2025, 3, 20, 12, 0, 0, 0, time.UTC))
	log, c := mustNew(t, Options{Path: path, Now: clk.Now})
	for i := range 5 {
		log.Info("day", "n", i)
		clk.Advance(24 * time.Hour)
	}
	mustClose(t, c)
	if got, want := dirNames(t, dir), []string{"server.log", "server.log.2000-01-01"}; !slices.Equal(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
	if n := countLines([]byte(readFile(t, path))); n != 5 {
		t.Errorf("active file has %d lines, want 5", n)
	}
}

// A file left from an earlier run holds lines of the day it was last written,
// and a rotated name that is taken gets a numbered suffix instead of being
// overwritten.
func TestExistingFileRotatesUnderItsOwnDate(t *testing.T) {
	tests := []struct {
		name        string
		taken       bool
		wantRotated string
	}{
		{"free name", false, "server.log.2025-03-01"},
		{"name taken", true, "server.log.2025-03-01.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "server.log")
			writeFile(t, path, "from the last run\n")
			mtime := time.Date(2025, 3, 1, 18, 0, 0, 0, time.UTC)
			if err := os.Chtimes(path, mtime, mtime); err != nil {
				t.Fatal(err)
			}
			if tt.taken {
				writeFile(t, path+".2025-03-01", "already rotated\n")
			}
			clk := newFakeClock(time.Date(2025, 3, 5, 9, 0, 0, 0, time.UTC))
			log, c := mustNew(t, Options{Path: path, RetentionDays: 30, Now: clk.Now})
			log.Info("new run")
			mustClose(t, c)

			if got := readFile(t, filepath.Join(dir, tt.wantRotated)); got != "from the last run\n" {
				t.Errorf("%s = %q", tt.wantRotated, got)
			}
			if tt.taken {
				if got := readFile(t, path+".2025-03-01"); got != "already rotated\n" {
					t.Errorf("taken file overwritten: %q", got)
				}
			}
			if got := readFile(t, path); !strings.Contains(got, "new run") || strings.Contains(got, "last run") {
				t.Errorf("active file = %q", got)
			}
		})
	}
}

// Concurrent writers across several rotations lose and split no line.
func TestRotationConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "server.log")
	clk := newFakeClock(time.Date(2025, 3, 20, 0, 0, 0, 0, time.UTC))
	log, c := mustNew(t, Options{Path: path, RetentionDays: 30, Now: clk.Now})

	const writers, each = 8, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				log.Info("line", "writer", w, "i", i)
			}
		})
	}
	for range 4 {
		clk.Advance(24 * time.Hour)
		log.Info("day change")
	}
	wg.Wait()
	mustClose(t, c)

	total := 0
	for _, name := range dirNames(t, dir) {
		for line := range strings.Lines(readFile(t, filepath.Join(dir, name))) {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("%s: broken line %q: %v", name, line, err)
			}
			total++
		}
	}
	if want := writers*each + 4; total != want {
		t.Errorf("%d lines across files, want %d", total, want)
	}
	if n := len(dirNames(t, dir)); n != 5 {
		t.Errorf("%d files, want 5 (4 rotations + active): %v", n, dirNames(t, dir))
	}
}
