package e2ee

import (
	"fmt"
	"slices"
	"time"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/cjson"
)

// Header is an envelope's cleartext routing header (spec/e2ee.md §7.1).
// Its canonical JSON is the associated data of the message ciphertext.
// A direct header has To; a group header has Group and Epoch instead.
type Header struct {
	V            int
	Suite        string
	ID           string
	From         privateline.Address
	To           []privateline.Address // direct form: sorted, unique, without From
	Group        string                // group form
	Epoch        int64                 // group form, ≥ 1
	Conversation string
	SentAt       time.Time // millisecond precision
	ExpiresAt    time.Time // zero if the message does not expire
	Files        []string  // sorted, unique file ids of the attachments
}

// IsGroup reports whether h is of the group form.
func (h *Header) IsGroup() bool { return h.Group != "" }

func (h *Header) value() map[string]any {
	v := map[string]any{
		"v":            int64(h.V),
		"suite":        h.Suite,
		"id":           h.ID,
		"from":         string(h.From),
		"conversation": h.Conversation,
		"sent_at":      Millis(h.SentAt),
	}
	if h.IsGroup() {
		v["group"] = h.Group
		v["epoch"] = h.Epoch
	} else {
		to := make([]string, len(h.To))
		for i, a := range h.To {
			to[i] = string(a)
		}
		v["to"] = to
	}
	if !h.ExpiresAt.IsZero() {
		v["expires_at"] = Millis(h.ExpiresAt)
	}
	if len(h.Files) > 0 {
		v["files"] = slices.Clone(h.Files)
	}
	return v
}

// AAD returns the header's canonical JSON.
func (h *Header) AAD() ([]byte, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	return cjson.Marshal(h.value())
}

// check enforces the header rules of spec/e2ee.md §7.1 on a header
// built in memory or parsed from the wire.
func (h *Header) check() error {
	const op = "e2ee.Header"
	bad := func(msg string) error { return refuse(op, ErrMalformed, "header: "+msg) }
	nonCanonical := func(msg string) error { return refuse(op, ErrNonCanonical, "header: "+msg) }
	if h.V != Version {
		return refuse(op, ErrUnknownSuite, "header: unsupported version")
	}
	if h.Suite != SuitePL1 {
		return refuse(op, ErrUnknownSuite, fmt.Sprintf("header: unknown suite %q", h.Suite))
	}
	switch {
	case !messageIDRE.MatchString(h.ID):
		return bad("id must be 32 lower-case hex digits")
	case !validAddress(string(h.From)):
		return bad("from is not a valid address")
	case !tokenRE.MatchString(h.Conversation):
		return bad("conversation is not a valid id")
	case Millis(h.SentAt) < 0 || Millis(h.SentAt) > cjson.MaxSafeInt:
		return bad("sent_at out of range")
	case !h.ExpiresAt.IsZero() && (Millis(h.ExpiresAt) <= Millis(h.SentAt) || Millis(h.ExpiresAt) > cjson.MaxSafeInt):
		return bad("expires_at must be after sent_at")
	case len(h.Files) > MaxAttachments:
		return bad("files must hold at most 32 ids")
	case !strictlyAscending(h.Files):
		return nonCanonical("files must be sorted bytewise without repeats")
	}
	for _, f := range h.Files {
		if !tokenRE.MatchString(f) {
			return bad("files holds an invalid file id")
		}
	}
	if h.IsGroup() {
		switch {
		case !tokenRE.MatchString(h.Group):
			return bad("group is not a valid id")
		case h.Epoch < 1 || h.Epoch > cjson.MaxSafeInt:
			return bad("epoch must be a positive integer")
		case h.Conversation != h.Group:
			return bad("conversation must equal group")
		case len(h.To) != 0:
			return bad("a group header has no to")
		}
		return nil
	}
	if h.Epoch != 0 {
		return bad("a direct header has no epoch")
	}
	if len(h.To) == 0 || len(h.To) > MaxRecipients {
		return bad(fmt.Sprintf("to must list 1 to %d recipients", MaxRecipients))
	}
	for i, a := range h.To {
		if !validAddress(string(a)) {
			return bad("to holds an invalid address")
		}
		if a == h.From {
			return bad("to must not contain from")
		}
		if i > 0 && h.To[i-1] >= a {
			return nonCanonical("to must be sorted bytewise without repeats")
		}
	}
	return nil
}

// parseHeader reads a header from its parsed JSON value.
func parseHeader(v any) (*Header, error) {
	const op = "e2ee.parseHeader"
	f := newFields(v)
	h := &Header{
		V:            int(f.integer("v", true, 0, cjson.MaxSafeInt)),
		Suite:        f.str("suite", true),
		ID:           f.str("id", true),
		From:         privateline.Address(f.str("from", true)),
		Conversation: f.str("conversation", true),
		SentAt:       fromMillis(f.integer("sent_at", true, 0, cjson.MaxSafeInt)),
	}
	if f.err == nil && (h.V != Version || h.Suite != SuitePL1) {
		// Refuse an unknown version or suite before judging the rest,
		// which a later suite may define differently.
		return nil, refuse(op, ErrUnknownSuite, fmt.Sprintf("header: unknown suite %q or version %d", h.Suite, h.V))
	}
	if f.has("expires_at") {
		h.ExpiresAt = fromMillis(f.integer("expires_at", true, 1, cjson.MaxSafeInt))
	}
	if f.has("files") {
		h.Files = f.strings("files", true, tokenRE.MatchString)
		if f.err == nil && len(h.Files) == 0 {
			return nil, refuse(op, ErrNonCanonical, `header: "files" must be absent when empty`)
		}
	}
	if f.has("group") {
		h.Group = f.str("group", true)
		h.Epoch = f.integer("epoch", true, 1, cjson.MaxSafeInt)
		if h.Group == "" {
			f.bad("group", "a non-empty id")
		}
	} else {
		to := f.strings("to", true, validAddress)
		for _, a := range to {
			h.To = append(h.To, privateline.Address(a))
		}
	}
	if err := f.done(false); err != nil {
		return nil, refuse(op, ErrMalformed, "header: "+err.Error())
	}
	if err := h.check(); err != nil {
		return nil, err
	}
	return h, nil
}
