package logging

import (
	"bytes"
	"github.com/privateline/privateline/internal/fakeclock"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"
)

func newFakeClock(t time.Time) *fakeclock.Clock { return fakeclock.New(t) }

// mustNew calls New and registers the Closer with t.Cleanup (Close is
// idempotent, so tests may also close early to inspect files).
func mustNew(t testing.TB, o Options) (*slog.Logger, io.Closer) {
	t.Helper()
	l, c, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return l, c
}

func mustClose(t testing.TB, c io.Closer) {
	t.Helper()
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func countLines(b []byte) int { return bytes.Count(b, []byte("\n")) }

func day(s string) time.Time {
	t, err := time.Parse(dateLayout, s)
	if err != nil {
		panic(err)
	}
	return t
}
