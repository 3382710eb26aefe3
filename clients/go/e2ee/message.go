package e2ee

import (
	"bytes"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/cjson"
)

// Message is the plaintext of an envelope (spec/e2ee.md §7.4):
//
//	{"attachments": [...], "body": "...", "reply_to"?: "<message id>", "type": "text"}
type Message struct {
	Type        string // "text"; receivers show other types as unsupported
	Body        string
	Attachments []Attachment
	ReplyTo     string // a message id, or ""
}

// Attachment describes one encrypted file (spec/e2ee.md §9). Key is the
// file's own AES-256-GCM key; SHA256 is the digest of the uploaded blob.
type Attachment struct {
	FileID string // the server's id of the uploaded blob
	Name   string
	MIME   string
	Size   int64 // plaintext bytes
	Key    privateline.Secret
	SHA256 []byte
}

// MessageTypeText is the message type of ordinary text messages.
const MessageTypeText = "text"

func (m *Message) value() (map[string]any, error) {
	if !typeRE.MatchString(m.Type) {
		return nil, fmt.Errorf("message type %q is invalid", m.Type)
	}
	if !utf8.ValidString(m.Body) {
		return nil, fmt.Errorf("message body is not valid UTF-8")
	}
	if len(m.Attachments) > MaxAttachments {
		return nil, fmt.Errorf("more than %d attachments", MaxAttachments)
	}
	atts := make([]any, 0, len(m.Attachments))
	seen := map[string]bool{}
	for _, a := range m.Attachments {
		if err := a.check(); err != nil {
			return nil, err
		}
		if seen[a.FileID] {
			return nil, fmt.Errorf("attachment file id %q repeated", a.FileID)
		}
		seen[a.FileID] = true
		atts = append(atts, map[string]any{
			"file_id": a.FileID,
			"key":     encodeB64(a.Key),
			"mime":    a.MIME,
			"name":    a.Name,
			"sha256":  encodeB64(a.SHA256),
			"size":    a.Size,
		})
	}
	v := map[string]any{"type": m.Type, "body": m.Body, "attachments": atts}
	if m.ReplyTo != "" {
		if !messageIDRE.MatchString(m.ReplyTo) {
			return nil, fmt.Errorf("reply_to must be a message id")
		}
		v["reply_to"] = m.ReplyTo
	}
	return v, nil
}

func (a *Attachment) check() error {
	switch {
	case !tokenRE.MatchString(a.FileID):
		return fmt.Errorf("attachment file id %q is invalid", a.FileID)
	case len(a.Name) > 255 || !utf8.ValidString(a.Name):
		return fmt.Errorf("attachment name must be valid UTF-8 of at most 255 bytes")
	case !validMIME(a.MIME):
		return fmt.Errorf("attachment MIME type %q is invalid", a.MIME)
	case a.Size < 0 || a.Size > MaxAttachment:
		return fmt.Errorf("attachment size out of range")
	case len(a.Key) != KeySize || len(a.SHA256) != 32:
		return fmt.Errorf("attachment key or digest has the wrong size")
	}
	return nil
}

func validMIME(s string) bool {
	if len(s) == 0 || len(s) > 127 || !bytes.ContainsRune([]byte(s), '/') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7f || s[i] == '"' || s[i] == '\\' {
			return false
		}
	}
	return true
}

// EncodeMessage returns the canonical JSON plaintext of m, unpadded.
func EncodeMessage(m *Message) ([]byte, error) {
	v, err := m.value()
	if err != nil {
		return nil, refuse("e2ee.EncodeMessage", ErrMalformed, err.Error())
	}
	b, err := cjson.Marshal(v)
	if err != nil {
		return nil, refuse("e2ee.EncodeMessage", ErrMalformed, err.Error())
	}
	return b, nil
}

// DecodeMessage parses an unpadded plaintext. It must be canonical JSON;
// unknown members are ignored (for later minor additions).
func DecodeMessage(pt []byte) (*Message, error) {
	const op = "e2ee.DecodeMessage"
	if err := cjson.Check(pt); err != nil {
		if err == cjson.ErrNotCanonical {
			return nil, refuse(op, ErrNonCanonical, "plaintext is not canonical JSON")
		}
		return nil, refuse(op, ErrMalformed, "plaintext is not valid JSON: "+err.Error())
	}
	f := parseFields(pt)
	m := &Message{
		Type:    f.str("type", true),
		Body:    f.str("body", true),
		ReplyTo: f.str("reply_to", false),
	}
	atts := f.array("attachments", true)
	if err := f.done(true); err != nil {
		return nil, refuse(op, ErrMalformed, "plaintext: "+err.Error())
	}
	if f.has("reply_to") && !messageIDRE.MatchString(m.ReplyTo) {
		return nil, refuse(op, ErrMalformed, "plaintext: reply_to must be a message id")
	}
	if len(atts) > MaxAttachments {
		return nil, refuse(op, ErrMalformed, "plaintext: too many attachments")
	}
	for _, av := range atts {
		af := newFields(av)
		a := Attachment{
			FileID: af.str("file_id", true),
			Key:    af.bytes("key", true, KeySize, KeySize),
			MIME:   af.str("mime", true),
			Name:   af.str("name", true),
			SHA256: af.bytes("sha256", true, 32, 32),
			Size:   af.integer("size", true, 0, MaxAttachment),
		}
		if err := af.done(true); err != nil {
			return nil, refuse(op, ErrMalformed, "plaintext attachment: "+err.Error())
		}
		m.Attachments = append(m.Attachments, a)
	}
	if _, err := m.value(); err != nil {
		return nil, refuse(op, ErrMalformed, "plaintext: "+err.Error())
	}
	return m, nil
}

// fileIDs returns the sorted file ids of m's attachments.
func (m *Message) fileIDs() []string {
	ids := make([]string, 0, len(m.Attachments))
	for _, a := range m.Attachments {
		ids = append(ids, a.FileID)
	}
	slices.Sort(ids)
	return ids
}

// Pad appends 0x80 and then zero bytes up to the next multiple of 256
// (ISO/IEC 7816-4 padding); there is always at least one byte of padding.
func Pad(p []byte) []byte {
	n := (len(p)/PadBlock + 1) * PadBlock
	out := make([]byte, n)
	copy(out, p)
	out[len(p)] = 0x80
	return out
}

// Unpad removes Pad's padding: the length must be a positive multiple of
// 256, and the input must end in 0x80 followed by fewer than 256 zeros.
func Unpad(p []byte) ([]byte, error) {
	const op = "e2ee.Unpad"
	if len(p) == 0 || len(p)%PadBlock != 0 {
		return nil, refuse(op, ErrBadPadding, "padded plaintext length is not a multiple of 256")
	}
	i := len(p) - 1
	for i >= 0 && p[i] == 0 && len(p)-1-i < PadBlock {
		i--
	}
	if i < 0 || p[i] != 0x80 || len(p)-i > PadBlock {
		return nil, refuse(op, ErrBadPadding, "invalid padding")
	}
	return p[:i], nil
}
