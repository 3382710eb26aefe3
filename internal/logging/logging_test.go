package logging

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDisabledWritesNothing(t *testing.T) {
	sentrySrv := newFakeSentry(t)
	var buf bytes.Buffer
	path := filepath.Join(t.TempDir(), "logs", "server.log")
	log, c := mustNew(t, Options{
		Disabled: true, Stderr: &buf, Path: path, RetentionDays: 1,
		EncryptKey: newKey(t), SentryDSN: sentrySrv.dsn,
	})
	log.Debug("d")
	log.Info("i")
	log.Error("e", "token", "x")
	mustClose(t, c)

	if buf.Len() != 0 {
		t.Errorf("stderr got %q", buf.String())
	}
	if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("log directory exists or stat failed: %v", err)
	}
	if n := len(sentrySrv.envelopes()); n != 0 {
		t.Errorf("Sentry got %d envelopes", n)
	}
}

func TestStderrWhenNoPath(t *testing.T) {
	var buf bytes.Buffer
	log, c := mustNew(t, Options{Stderr: &buf})
	log.Debug("below the level")
	log.Info("hello", "user_id", 7)
	mustClose(t, c)
	if got, want := buf.String(), `"level":"INFO","msg":"hello","user_id":7}`+"\n"; !strings.HasSuffix(got, want) || countLines(buf.Bytes()) != 1 {
		t.Errorf("stderr = %q, want one line ending %q", got, want)
	}
}

func TestPathWritesOnlyToFile(t *testing.T) {
	var buf bytes.Buffer
	path := filepath.Join(t.TempDir(), "server.log")
	log, c := mustNew(t, Options{Stderr: &buf, Path: path})
	log.Info("to the file")
	mustClose(t, c)
	if buf.Len() != 0 {
		t.Errorf("stderr got %q", buf.String())
	}
	if got := readFile(t, path); !strings.Contains(got, "to the file") {
		t.Errorf("file = %q", got)
	}
	checkMode(t, path, 0o600)
}

func TestNewRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name    string
		o       Options
		wantErr string
	}{
		{"negative retention", Options{RetentionDays: -1}, "Options.RetentionDays"},
		{"short key", Options{EncryptKey: make([]byte, 16)}, "Options.EncryptKey"},
		{"empty non-nil key", Options{EncryptKey: []byte{}}, "Options.EncryptKey"},
		{"bad DSN", Options{SentryDSN: "not a dsn"}, "Options.SentryDSN"},
		{"path is a directory", Options{Path: t.TempDir()}, "Options.Path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.Stderr = &bytes.Buffer{}
			_, _, err := New(tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New error = %v, want one naming %s", err, tt.wantErr)
			}
		})
	}
}
