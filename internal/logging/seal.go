package logging

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
)

const (
	// KeySize is the length of Options.EncryptKey and of Decrypt's key.
	KeySize = 32
	// MaxSealedLine is the longest sealed line, newline included, that
	// Decrypt accepts and the writer produces.
	MaxSealedLine = 1 << 20

	lineAD     = "privateline/v1/log-line"
	keyInfo    = "privateline/v1/log-encryption"
	sealedOver = 12 + 16 // nonce + GCM tag
	// maxPlainLine is the longest plaintext line whose sealed form, with its
	// newline, fits in MaxSealedLine.
	maxPlainLine = (MaxSealedLine-1)/4*3 - sealedOver
)

// newLineAEAD derives the line-sealing AEAD from the operator's key. Its Seal
// prepends a random 12-byte nonce and its Open expects one.
func newLineAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("logging: log encryption key is %d bytes; it must be %d", len(key), KeySize)
	}
	sub, err := hkdf.Key(sha256.New, key, nil, keyInfo, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(sub)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithRandomNonce(block)
}

// sealer seals each line written to it and passes all the sealed lines of
// one Write to w in a single Write. slog handlers write one record per Write.
type sealer struct {
	aead cipher.AEAD
	w    io.Writer
}

func newSealer(key []byte, w io.Writer) (*sealer, error) {
	aead, err := newLineAEAD(key)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead, w: w}, nil
}

func (s *sealer) Write(p []byte) (int, error) {
	var out []byte
	for line := range bytes.Lines(p) {
		line = bytes.TrimSuffix(line, []byte("\n"))
		if len(line) > maxPlainLine {
			line = fmt.Appendf(nil, `{"level":"ERROR","msg":"logging: record of %d bytes dropped: too long to seal"}`, len(line))
		}
		out = s.appendSealed(out, line)
	}
	if _, err := s.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (s *sealer) appendSealed(dst, line []byte) []byte {
	sealed := s.aead.Seal(nil, nil, line, []byte(lineAD))
	dst = base64.StdEncoding.AppendEncode(dst, sealed)
	return append(dst, '\n')
}

// Decrypt reads a file of sealed lines from r and writes each plaintext line,
// newline-terminated, to w. A line that is not valid base64 or fails
// authentication (tampered, truncated, or sealed under another key) is an
// error naming its 1-based line number; the lines before it have already been
// written to w.
func Decrypt(r io.Reader, w io.Writer, key []byte) error {
	aead, err := newLineAEAD(key)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxSealedLine)
	bw := bufio.NewWriter(w)
	n := 0
	for sc.Scan() {
		n++
		plain, err := openLine(aead, sc.Bytes())
		if err != nil {
			return errors.Join(fmt.Errorf("logging: decrypt line %d: %w", n, err), bw.Flush())
		}
		bw.Write(plain)
		bw.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return errors.Join(fmt.Errorf("logging: decrypt line %d: %w", n+1, err), bw.Flush())
	}
	return bw.Flush()
}

func openLine(aead cipher.AEAD, line []byte) ([]byte, error) {
	sealed, err := base64.StdEncoding.AppendDecode(nil, line)
	if err != nil {
		return nil, fmt.Errorf("not base64: %w", err)
	}
	if len(sealed) < sealedOver {
		return nil, fmt.Errorf("%d bytes is too short for a sealed line", len(sealed))
	}
	plain, err := aead.Open(nil, nil, sealed, []byte(lineAD))
	if err != nil {
		return nil, errors.New("authentication failed: wrong key, or the line was altered")
	}
	return plain, nil
}
