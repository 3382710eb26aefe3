package homeserver

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/privateline/privateline"
)

// ensureSecrets fills missing secrets in development by generating them once
// into the data directory (mode 0600) and reading them back on later starts.
// In production Validate has already refused missing secrets.
func ensureSecrets(c *Config, log *slog.Logger) error {
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return fmt.Errorf("DATA_DIR %s: %w", c.DataDir, err)
	}
	load := func(variable, file string, decode func(string) (privateline.Secret, error)) (privateline.Secret, error) {
		path := filepath.Join(c.DataDir, file)
		b, err := os.ReadFile(path)
		if err == nil {
			s, err := decode(strings.TrimSpace(string(b)))
			if err != nil {
				return nil, fmt.Errorf("%s: generated %s is damaged (%v); remove it or set %s", path, variable, err, variable)
			}
			return s, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		raw := make([]byte, 32)
		rand.Read(raw)
		enc := base64.StdEncoding.EncodeToString(raw)
		if err := writeFileExcl(path, []byte(enc+"\n")); err != nil {
			return nil, err
		}
		log.Warn("generated a development secret; set it in the environment for production", "variable", variable, "file", path)
		return decode(enc)
	}
	var err error
	if c.JWTSecret == nil {
		if c.JWTSecret, err = load("JWT_SECRET_KEY", "jwt_secret_key", func(s string) (privateline.Secret, error) {
			if len(s) < 32 {
				return nil, errors.New("too short")
			}
			return privateline.Secret(s), nil
		}); err != nil {
			return err
		}
	}
	if c.AESKey == nil {
		if c.AESKey, err = load("AES_KEY", "aes_key", func(s string) (privateline.Secret, error) {
			k, err := base64.StdEncoding.DecodeString(s)
			if err != nil || len(k) != 32 {
				return nil, errors.New("not base64 of 32 bytes")
			}
			return k, nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// writeFileExcl creates path with mode 0600, failing if it exists, and
// syncs it so a generated secret survives a crash.
func writeFileExcl(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
