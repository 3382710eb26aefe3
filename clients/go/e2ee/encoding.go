package e2ee

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"io"
	"regexp"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/keybundle"
)

// Protocol constants of suite pl1 (spec/e2ee.md).
const (
	Version    = 1     // the "v" of every structure
	SuitePL1   = "pl1" // the only suite this package speaks
	KDFName    = "pbkdf2-sha256"
	Iterations = 600_000 // PBKDF2 iterations; fewer are refused

	SaltSize       = 16 // PBKDF2 salt
	NonceSize      = 12 // AES-GCM nonce
	KeySize        = 32 // AES-256 keys, group keys, HKDF outputs
	GroupSaltSize  = 32 // per-message HKDF salt of a group message
	RSABits        = keybundle.RSABits
	RSAExponent    = keybundle.RSAExponent
	SignatureSize  = keybundle.SignatureSize
	PadBlock       = 256       // plaintexts are padded to a multiple of this
	MaxPlaintext   = 64 << 10  // padded plaintext bytes
	MaxEnvelope    = 256 << 10 // serialized envelope bytes
	MaxRecipients  = 64        // addresses in a direct header's "to"
	MaxMembers     = 512       // members of one group epoch
	MaxGroupKeyDoc = 512 << 10 // serialized group-key distribution bytes
	MaxAttachments = 32
	MaxAttachment  = 100 << 20 // plaintext bytes of one attachment
	MaxKeyBundle   = keybundle.MaxSize
	MaxWrappedKeys = 16 << 10
)

// HKDF info labels, domain-separation prefixes and RSA-OAEP labels
// (spec/e2ee.md §3). Every one starts "privateline/v1/".
const (
	labelAuth          = "privateline/v1/auth"
	labelKeyWrap       = "privateline/v1/key-wrap"
	labelPrivateKeys   = "privateline/v1/private-keys"
	labelEnvelope      = "privateline/v1/envelope"
	labelGroupEnvelope = "privateline/v1/group-envelope"
	labelGroupKey      = "privateline/v1/group-key"
	labelGroupMessage  = "privateline/v1/group-message"
	labelContentKey    = "privateline/v1/content-key"
	labelAttachment    = "privateline/v1/attachment"
)

var b64 = base64.StdEncoding.Strict()

func encodeB64(b []byte) string { return b64.EncodeToString(b) }

// decodeB64 accepts only the canonical standard encoding with padding: no
// line breaks, no non-zero pad bits.
func decodeB64(s string) ([]byte, bool) {
	b, err := b64.DecodeString(s)
	if err != nil || b64.EncodeToString(b) != s {
		return nil, false
	}
	return b, true
}

// readRand fills n bytes from r, or crypto/rand when r is nil.
func readRand(r io.Reader, n int) ([]byte, error) {
	b := make([]byte, n)
	if r == nil {
		rand.Read(b)
		return b, nil
	}
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, privateline.E("e2ee.readRand", privateline.Internal, err)
	}
	return b, nil
}

func randOrDefault(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return r
}

// Identifiers: message ids are 16 random bytes in lower-case hex; other ids
// (conversations, groups, files) are opaque tokens.
var (
	messageIDRE = regexp.MustCompile(`^[0-9a-f]{32}$`)
	tokenRE     = regexp.MustCompile(`^[A-Za-z0-9._:@-]{1,128}$`)
	typeRE      = regexp.MustCompile(`^[a-z0-9._-]{1,32}$`)
)

// NewMessageID returns a fresh random message id.
func NewMessageID(r io.Reader) (string, error) {
	b, err := readRand(r, 16)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func validAddress(s string) bool {
	_, _, err := privateline.Address(s).Split()
	return err == nil
}

// Millis converts t to the protocol's time unit, Unix milliseconds.
func Millis(t time.Time) int64 { return t.UnixMilli() }

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// concat joins byte strings.
func concat(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// domain returns label ‖ 0x00, the prefix of every signed byte string.
func domain(label string) []byte { return append([]byte(label), 0) }
