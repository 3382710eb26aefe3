package privateline

import (
	"crypto/subtle"
	"log/slog"
)

// Secret holds key material, tokens or other bytes that must never be
// printed or logged. Every formatting path shows "[REDACTED]".
type Secret []byte

const redacted = "[REDACTED]"

func (Secret) String() string               { return redacted }
func (Secret) GoString() string             { return redacted }
func (Secret) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Equal compares two secrets in constant time.
func (s Secret) Equal(t Secret) bool { return subtle.ConstantTimeCompare(s, t) == 1 }

// Bytes returns the secret's bytes for use by cryptographic code.
func (s Secret) Bytes() []byte { return s }
