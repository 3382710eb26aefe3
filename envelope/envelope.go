// Package envelope reads the public parts of pl1 documents for the
// homeserver: the routing header of a direct envelope (spec/e2ee.md §7.1,
// §7.2, §11) or a group envelope (§8.2), and the public members of a
// group-key document (§8.1). The server routes, expires and authorises by
// them but never opens the sealed part. It checks
// the envelope's shape and the header's rules; the signature and the
// ciphertext are the receiving client's business (clients/go/e2ee).
//
// It imports only the root vocabulary, so the server does not depend on the
// client SDK.
package envelope

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"time"

	"github.com/privateline/privateline"
)

// Limits of spec/e2ee.md §11.
const (
	MaxSize       = 256 << 10 // serialized envelope bytes
	MaxRecipients = 64        // addresses in "to"
	MaxFiles      = 32        // file ids in "files"
	// maxCiphertextB64 is the base64 length of the largest ciphertext,
	// a 64 KiB padded plaintext and its 16-byte tag.
	maxCiphertextB64 = 4 * ((64<<10 + 16 + 2) / 3)
	maxSafeInt       = 1<<53 - 1
)

var (
	idRE    = regexp.MustCompile(`^[0-9a-f]{32}$`)
	tokenRE = regexp.MustCompile(`^[A-Za-z0-9._:@-]{1,128}$`)
)

// Header is the routing header of a direct or group envelope.
type Header struct {
	ID           string
	From         privateline.Address
	To           []privateline.Address // direct: sorted bytewise, unique, without From
	Group        string                // group form: the group id
	Epoch        int64                 // group form: the epoch (≥ 1)
	Conversation string                // group form: equals Group
	SentAt       time.Time
	ExpiresAt    time.Time // zero: does not expire
	Files        []string
}

// Parse checks the shape of a direct envelope and returns its header.
// A too large envelope is a TooLarge error, anything else refused an
// Invalid one whose message says what is wrong.
func Parse(data []byte) (*Header, error) { return parse("envelope.Parse", data, false) }

// ParseGroup checks the shape of a group envelope (spec/e2ee.md §8.2:
// "salt" instead of "keys"; the header has "group" and "epoch" instead of
// "to", and "conversation" equal to "group") and returns its header.
func ParseGroup(data []byte) (*Header, error) { return parse("envelope.ParseGroup", data, true) }

func parse(op string, data []byte, group bool) (*Header, error) {
	if h, ok := fastParse(data, group); ok { // fast.go
		return h, nil
	}
	return parseGeneral(op, data, group)
}

// parseGeneral is parse for any input: encoding/json decodes the members,
// then the rules are applied one by one, the first broken one named.
func parseGeneral(op string, data []byte, group bool) (*Header, error) {
	if len(data) > MaxSize {
		return nil, privateline.E(op, privateline.TooLarge, fmt.Sprintf("an envelope may be at most %d bytes", MaxSize))
	}
	bad := func(msg string) error { return privateline.E(op, privateline.Invalid, "envelope: "+msg) }
	top, err := object(data)
	if err != nil {
		return nil, bad(err.Error())
	}
	keyed := "keys"
	if group {
		keyed = "salt"
	}
	if err := members(top, []string{"ciphertext", "header", keyed, "nonce", "signature"}, nil); err != nil {
		return nil, bad(err.Error())
	}
	for _, m := range []string{"ciphertext", "nonce", "signature"} {
		var s string
		if json.Unmarshal(top[m], &s) != nil || s == "" {
			return nil, bad(fmt.Sprintf("%q must be a non-empty base64 string", m))
		}
	}
	if len(top["ciphertext"]) > maxCiphertextB64+2 {
		return nil, privateline.E(op, privateline.TooLarge, "envelope: the ciphertext is over 64 KiB")
	}
	if group {
		var salt string
		if json.Unmarshal(top["salt"], &salt) != nil || len(salt) != 44 {
			return nil, bad(`"salt" must be base64 of 32 bytes`)
		}
	} else {
		var keys map[string]string
		if json.Unmarshal(top["keys"], &keys) != nil || len(keys) < 1 || len(keys) > MaxRecipients+1 {
			return nil, bad(fmt.Sprintf(`"keys" must map 1 to %d key ids to base64 strings`, MaxRecipients+1))
		}
	}
	h, err := parseHeader(top["header"], group)
	if err != nil {
		return nil, bad("header: " + err.Error())
	}
	return h, nil
}

func parseHeader(raw json.RawMessage, group bool) (*Header, error) {
	m, err := object(raw)
	if err != nil {
		return nil, err
	}
	_, isGroup := m["group"]
	switch {
	case isGroup && !group:
		return nil, fmt.Errorf("a group envelope is not a direct message")
	case !isGroup && group:
		return nil, fmt.Errorf("a direct envelope is not a group message")
	}
	required := []string{"v", "suite", "id", "from", "to", "conversation", "sent_at"}
	if group {
		required = []string{"v", "suite", "id", "from", "group", "epoch", "conversation", "sent_at"}
	}
	if err := members(m, required, []string{"expires_at", "files"}); err != nil {
		return nil, err
	}
	var v int64
	var suite string
	if e := integer(m["v"], &v); e != nil || v != 1 {
		return nil, fmt.Errorf(`"v" must be 1`)
	}
	if json.Unmarshal(m["suite"], &suite) != nil || suite != "pl1" {
		return nil, fmt.Errorf(`"suite" must be "pl1"`)
	}
	h := &Header{}
	var from string
	if json.Unmarshal(m["id"], &h.ID) != nil || !idRE.MatchString(h.ID) {
		return nil, fmt.Errorf(`"id" must be 32 lower-case hex digits`)
	}
	if json.Unmarshal(m["from"], &from) != nil || !validAddress(from) {
		return nil, fmt.Errorf(`"from" must be an address`)
	}
	h.From = privateline.Address(from)
	if json.Unmarshal(m["conversation"], &h.Conversation) != nil || !tokenRE.MatchString(h.Conversation) {
		return nil, fmt.Errorf(`"conversation" must be 1 to 128 of [A-Za-z0-9._:@-]`)
	}
	var sent, exp int64
	if integer(m["sent_at"], &sent) != nil || sent < 0 || sent > maxSafeInt {
		return nil, fmt.Errorf(`"sent_at" must be milliseconds since 1970`)
	}
	h.SentAt = time.UnixMilli(sent)
	if raw, ok := m["expires_at"]; ok {
		if integer(raw, &exp) != nil || exp <= sent || exp > maxSafeInt {
			return nil, fmt.Errorf(`"expires_at" must be milliseconds after "sent_at"`)
		}
		h.ExpiresAt = time.UnixMilli(exp)
	}
	if group {
		if json.Unmarshal(m["group"], &h.Group) != nil || !tokenRE.MatchString(h.Group) {
			return nil, fmt.Errorf(`"group" must be 1 to 128 of [A-Za-z0-9._:@-]`)
		}
		if integer(m["epoch"], &h.Epoch) != nil || h.Epoch < 1 || h.Epoch > maxSafeInt {
			return nil, fmt.Errorf(`"epoch" must be an integer ≥ 1`)
		}
		if h.Conversation != h.Group {
			return nil, fmt.Errorf(`"conversation" must equal "group"`)
		}
	} else if err := parseTo(m["to"], h); err != nil {
		return nil, err
	}
	if raw, ok := m["files"]; ok {
		if json.Unmarshal(raw, &h.Files) != nil || len(h.Files) < 1 || len(h.Files) > MaxFiles {
			return nil, fmt.Errorf(`"files" must list 1 to %d file ids (absent when none)`, MaxFiles)
		}
		for i, f := range h.Files {
			if !tokenRE.MatchString(f) || (i > 0 && h.Files[i-1] >= f) {
				return nil, fmt.Errorf(`"files" must hold valid file ids, sorted bytewise without repeats`)
			}
		}
	}
	return h, nil
}

func parseTo(raw json.RawMessage, h *Header) error {
	var to []string
	if json.Unmarshal(raw, &to) != nil || len(to) < 1 || len(to) > MaxRecipients {
		return fmt.Errorf(`"to" must list 1 to %d addresses`, MaxRecipients)
	}
	for i, a := range to {
		switch {
		case !validAddress(a):
			return fmt.Errorf(`"to" holds an invalid address`)
		case a == string(h.From):
			return fmt.Errorf(`"to" must not contain "from"`)
		case i > 0 && to[i-1] >= a:
			return fmt.Errorf(`"to" must be sorted bytewise without repeats`)
		}
		h.To = append(h.To, privateline.Address(a))
	}
	return nil
}

func validAddress(s string) bool {
	_, _, err := privateline.Address(s).Split()
	return err == nil
}

// object decodes a JSON object into its members, refusing duplicates and
// trailing data.
func object(data []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("must be a JSON object")
	}
	m := map[string]json.RawMessage{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("malformed JSON")
		}
		k, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("malformed JSON")
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("member %q appears twice", k)
		}
		m[k] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("malformed JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("unexpected data after the JSON object")
	}
	return m, nil
}

// members checks that m has every required member, and no member that is
// neither required nor optional.
func members(m map[string]json.RawMessage, required, optional []string) error {
	known := map[string]bool{}
	for _, k := range required {
		if _, ok := m[k]; !ok {
			return fmt.Errorf("member %q is missing", k)
		}
		known[k] = true
	}
	for _, k := range optional {
		known[k] = true
	}
	for k := range m {
		if !known[k] {
			return fmt.Errorf("unknown member %q", k)
		}
	}
	return nil
}

// integer decodes a JSON integer (no fraction, no exponent).
func integer(raw json.RawMessage, v *int64) error {
	s := string(bytes.TrimSpace(raw))
	if s == "" || bytes.ContainsAny(raw, ".eE") {
		return fmt.Errorf("not an integer")
	}
	return json.Unmarshal(raw, v)
}
