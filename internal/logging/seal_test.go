package logging

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func newKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, KeySize)
	rand.Read(k)
	return k
}

// logBoth sends the same records, with fixed times, to a plaintext logger and
// to an encrypted file, and returns the plaintext and the file's path.
func logBoth(t *testing.T, key []byte, msgs []string, attrs ...slog.Attr) ([]byte, string) {
	t.Helper()
	var plain bytes.Buffer
	plainLog, _ := mustNew(t, Options{Stderr: &plain})
	path := filepath.Join(t.TempDir(), "server.log")
	sealedLog, c := mustNew(t, Options{Path: path, EncryptKey: key})
	at := time.Date(2025, 3, 20, 12, 0, 0, 0, time.UTC)
	for i, m := range msgs {
		r := slog.NewRecord(at.Add(time.Duration(i)*time.Second), slog.LevelInfo, m, 0)
		r.AddAttrs(attrs...)
		for _, l := range []*slog.Logger{plainLog, sealedLog} {
			if err := l.Handler().Handle(context.Background(), r); err != nil {
				t.Fatal(err)
			}
		}
	}
	mustClose(t, c)
	return plain.Bytes(), path
}

func TestEncryptedFileHidesPlaintext(t *testing.T) {
	key := newKey(t)
	msgs := []string{"alice-sent-a-message", "bob-joined-room-xyzzy"}
	_, path := logBoth(t, key, msgs, slog.String("route", "/v1/rooms/plover"))
	raw := readFile(t, path)
	for _, s := range []string{"alice", "xyzzy", "plover", "route", `"msg"`, "INFO", "{"} {
		if strings.Contains(raw, s) {
			t.Errorf("raw file contains %q", s)
		}
	}
	lines := strings.Split(strings.TrimSuffix(raw, "\n"), "\n")
	if len(lines) != len(msgs) {
		t.Fatalf("%d sealed lines, want %d", len(lines), len(msgs))
	}
	for i, l := range lines {
		b, err := base64.StdEncoding.DecodeString(l)
		if err != nil || len(b) < 12+16+len(msgs[i]) {
			t.Errorf("line %d: not a sealed line (%d bytes, %v)", i+1, len(b), err)
		}
	}
}

func TestDecryptReturnsExactLines(t *testing.T) {
	key := newKey(t)
	// Far over bufio.Scanner's default 64 KiB token.
	long := slog.String("blob", strings.Repeat("x", 300<<10))
	want, path := logBoth(t, key, []string{"one", "two", "three"}, long)

	var got bytes.Buffer
	if err := Decrypt(strings.NewReader(readFile(t, path)), &got, key); err != nil {
		t.Fatalf("Decrypt: %v", err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("Decrypt output differs from the plaintext log (%d vs %d bytes)", got.Len(), len(want))
	}
}

func TestDecryptRejects(t *testing.T) {
	key := newKey(t)
	_, path := logBoth(t, key, []string{"one", "two", "three"})
	lines := strings.SplitAfter(readFile(t, path), "\n")[:3]

	flipSealedByte := func(l string) string {
		b, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(l))
		b[len(b)/2] ^= 0x01
		return base64.StdEncoding.EncodeToString(b) + "\n"
	}
	tests := []struct {
		name      string
		file      string
		key       []byte
		wantErr   string
		wantLines int // plaintext lines written before the error
	}{
		{"ciphertext byte flipped", lines[0] + flipSealedByte(lines[1]) + lines[2], key, "line 2", 1},
		{"not base64", lines[0] + lines[1] + "@@@@\n", key, "line 3", 2},
		{"truncated last line", lines[0] + lines[1] + lines[2][:20], key, "line 3", 2},
		{"line swapped for a short one", "AAAA\n" + lines[1], key, "line 1", 0},
		{"wrong key", strings.Join(lines, ""), newKey(t), "line 1", 0},
		{"short key", strings.Join(lines, ""), key[:16], "32", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := Decrypt(strings.NewReader(tt.file), &out, tt.key)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Decrypt error = %v, want one naming %q", err, tt.wantErr)
			}
			if n := countLines(out.Bytes()); n != tt.wantLines {
				t.Errorf("%d lines written before the error, want %d", n, tt.wantLines)
			}
		})
	}
}

// A line sealed by hand from the documented construction decrypts, so the
// format does not drift from the package doc.
func TestDecryptDocumentedFormat(t *testing.T) {
	key := newKey(t)
	sub, err := hkdf.Key(sha256.New, key, nil, "privateline/v1/log-encryption", 32)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := aes.NewCipher(sub)
	gcm, _ := cipher.NewGCM(block)
	nonce := bytes.Repeat([]byte{7}, 12)
	plain := `{"msg":"by hand"}`
	sealed := gcm.Seal(append([]byte{}, nonce...), nonce, []byte(plain), []byte("privateline/v1/log-line"))
	file := base64.StdEncoding.EncodeToString(sealed) + "\n"

	var out bytes.Buffer
	if err := Decrypt(strings.NewReader(file), &out, key); err != nil {
		t.Fatalf("Decrypt: %v", err)
	}
	if out.String() != plain+"\n" {
		t.Errorf("Decrypt = %q, want %q", out.String(), plain+"\n")
	}
}

// The longest line that can be sealed round-trips within MaxSealedLine; a
// longer one is replaced by a record saying it was dropped, not lost silently.
func TestSealLineLimit(t *testing.T) {
	key := newKey(t)
	tests := []struct {
		name string
		n    int
		want func(string) bool
	}{
		{"at the limit", maxPlainLine, func(s string) bool { return len(s) == maxPlainLine+1 }},
		{"over the limit", maxPlainLine + 1, func(s string) bool {
			return strings.Contains(s, "dropped") && strings.Contains(s, strconv.Itoa(maxPlainLine+1)+" bytes")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sealed bytes.Buffer
			s, err := newSealer(key, &sealed)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Write(append(bytes.Repeat([]byte("a"), tt.n), '\n')); err != nil {
				t.Fatal(err)
			}
			if sealed.Len() > MaxSealedLine {
				t.Errorf("sealed line is %d bytes, over %d", sealed.Len(), MaxSealedLine)
			}
			var out bytes.Buffer
			if err := Decrypt(&sealed, &out, key); err != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			if !tt.want(out.String()) {
				t.Errorf("Decrypt gave %d bytes: %.100q", out.Len(), out.String())
			}
		})
	}
}

func TestEncryptedStderr(t *testing.T) {
	key := newKey(t)
	var buf bytes.Buffer
	log, _ := mustNew(t, Options{Stderr: &buf, EncryptKey: key})
	log.Info("hello-stderr")
	if strings.Contains(buf.String(), "hello-stderr") {
		t.Fatalf("plaintext on stderr: %q", buf.String())
	}
	var out bytes.Buffer
	if err := Decrypt(&buf, &out, key); err != nil || !strings.Contains(out.String(), "hello-stderr") {
		t.Errorf("Decrypt = %q, %v", out.String(), err)
	}
}
