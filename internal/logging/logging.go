// Package logging builds the homeserver's *slog.Logger: JSON lines to stderr
// or to a file, with optional daily rotation, optional per-line encryption,
// redaction of secret attributes, and optional forwarding of errors to Sentry.
//
// # Output
//
// With Options.Path empty, records go to Options.Stderr (default os.Stderr) as
// slog JSON lines. With Path set they go to that file only, never also to
// stderr. Files are created with mode 0600 and missing directories with 0700.
// Options.Disabled yields a logger that writes nothing anywhere and creates no
// file.
//
// # Rotation and retention
//
// With RetentionDays > 0 the file is rotated daily by the UTC date of the
// injected clock (Options.Now): the active file is always Path; at the first
// write on a new date, Path is renamed to Path.YYYY-MM-DD (the date of the
// lines it holds; Path.YYYY-MM-DD.N if that name is taken) and a fresh Path is
// opened. At open and at each rotation, files Path.YYYY-MM-DD[.N] whose date
// is before today minus RetentionDays are deleted; no other file is touched.
// RetentionDays == 0 keeps one growing file and deletes nothing. When Path is
// opened and already holds lines, they are taken to be from the date of the
// file's modification time.
//
// # Encryption
//
// With Options.EncryptKey (32 bytes) every line is sealed on its own with
// AES-256-GCM under the subkey HKDF-SHA256(EncryptKey, salt = none,
// info = "privateline/v1/log-encryption", 32 bytes), with a random 12-byte
// nonce and associated data "privateline/v1/log-line", and written as
//
//	base64std(nonce || ciphertext || tag) "\n"
//
// Decrypt reverses this. A sealed line is at most MaxSealedLine bytes; a
// record too long for that is replaced by a short record saying it was dropped.
// Encryption applies to whichever sink is in use, stderr included.
//
// # Redaction
//
// Before anything is written or sent, an attribute's value is replaced by
// "[REDACTED]" when its key, or the name of any group it is inside, is (ignoring
// case) one of token, access_token, refresh_token, authorization, auth_key,
// current_auth_key, password, secret, email, cookie, encrypted_private_key, key,
// private_key, jwt, csrf, csrf_token, salt, nonce, or ends in "_token", "_key"
// or "_secret". The key itself stays visible.
//
// Redaction looks at keys only. It does not look inside messages, error
// strings, structs or maps logged with slog.Any. A value that is secret under
// any key should have a type that implements slog.LogValuer and returns
// "[REDACTED]" (as privateline.Secret does).
//
// # Sentry
//
// With Options.SentryDSN, records at slog.LevelError and above that pass
// Options.Level are also sent to Sentry through a dedicated client and hub of
// the official SDK (never the global hub): message = record message, the
// redacted attributes in the event context "attributes" (keys inside groups
// are joined with "."),
// level "error", or "fatal" from slog.LevelError+4 up. The Closer returned by
// New flushes Sentry (waiting at most 2 s) and closes the file.
package logging

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/getsentry/sentry-go"
)

// Options configures New. The zero value logs at Info as JSON to os.Stderr.
type Options struct {
	Disabled      bool             // write nothing anywhere
	Path          string           // log file; empty means Stderr
	RetentionDays int              // >0: rotate daily and delete older files; 0: one growing file
	EncryptKey    []byte           // nil, or 32 bytes: seal every line
	SentryDSN     string           // non-empty: forward errors to Sentry
	Level         slog.Level       // minimum level written
	Stderr        io.Writer        // sink when Path is empty; default os.Stderr
	Now           func() time.Time // clock for rotation; default time.Now
	Environment   string           // Sentry environment
	Release       string           // Sentry release
}

// Validate reports the first option that cannot work, naming it and the fix.
func (o Options) Validate() error {
	if o.RetentionDays < 0 {
		return fmt.Errorf("logging: Options.RetentionDays is %d; use 0 to keep one growing file or a positive number of days", o.RetentionDays)
	}
	if o.EncryptKey != nil && len(o.EncryptKey) != KeySize {
		return fmt.Errorf("logging: Options.EncryptKey is %d bytes; leave it nil for plaintext logs or give exactly %d bytes", len(o.EncryptKey), KeySize)
	}
	return nil
}

// sentryFlushTimeout bounds how long Close waits for Sentry.
const sentryFlushTimeout = 2 * time.Second

// New builds the logger described by o. The Closer flushes Sentry and closes
// the log file; call it once at shutdown, after the last record.
func New(o Options) (*slog.Logger, io.Closer, error) {
	if err := o.Validate(); err != nil {
		return nil, nil, err
	}
	if o.Disabled {
		return slog.New(slog.DiscardHandler), &closer{}, nil
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}

	c := &closer{}
	var out io.Writer = o.Stderr
	if out == nil {
		out = os.Stderr
	}
	if o.Path != "" {
		f, err := openRotatingFile(o.Path, o.RetentionDays, now)
		if err != nil {
			return nil, nil, err
		}
		c.file = f
		out = f
	}
	if o.EncryptKey != nil {
		s, err := newSealer(o.EncryptKey, out)
		if err != nil {
			c.Close()
			return nil, nil, err
		}
		out = s
	}

	var h slog.Handler = slog.NewJSONHandler(out, &slog.HandlerOptions{
		Level:       o.Level,
		ReplaceAttr: redactAttr,
	})
	if o.SentryDSN != "" {
		client, err := newSentryClient(o)
		if err != nil {
			c.Close()
			return nil, nil, err
		}
		c.sentry = client
		h = &sentryHandler{base: h, hub: sentry.NewHub(client, sentry.NewScope())}
	}
	return slog.New(h), c, nil
}

// closer shuts down what New opened. Close is idempotent.
type closer struct {
	sentry *sentry.Client
	file   *rotatingFile

	once sync.Once
	err  error
}

func (c *closer) Close() error {
	c.once.Do(func() {
		var errs []error
		if c.sentry != nil {
			if !c.sentry.Flush(sentryFlushTimeout) {
				errs = append(errs, fmt.Errorf("logging: Sentry flush timed out after %v; some error events were not delivered", sentryFlushTimeout))
			}
			c.sentry.Close()
		}
		if c.file != nil {
			errs = append(errs, c.file.Close())
		}
		c.err = errors.Join(errs...)
	})
	return c.err
}
