package privateline

import (
	"errors"
	"strings"
)

// Kind classifies an error. Kinds are wire-stable: clientapi maps each to an
// HTTP status and a code in exactly one table, and later federation does the
// same for its error codes.
type Kind uint8

// The kinds of error.
const (
	Other           Kind = iota // unclassified; shown to clients as an internal error
	Invalid                     // malformed or out-of-range input
	Unauthenticated             // missing, expired, revoked or wrong credentials
	Forbidden                   // authenticated but not allowed
	NotExist                    // no such item (or hidden from the caller)
	Exist                       // already exists / conflicts with current state
	TooLarge                    // input over a size cap
	RateLimited                 // too many requests
	Unavailable                 // temporarily unable (shutting down, storage busy)
	Internal                    // a bug or a broken invariant
)

var kindNames = [...]string{
	Other:           "other",
	Invalid:         "invalid",
	Unauthenticated: "unauthenticated",
	Forbidden:       "forbidden",
	NotExist:        "not_exist",
	Exist:           "exist",
	TooLarge:        "too_large",
	RateLimited:     "rate_limited",
	Unavailable:     "unavailable",
	Internal:        "internal",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Error is the project's error: an operation, a kind, an optional message
// safe to show to a client, and an optional wrapped cause (never shown).
type Error struct {
	Op   string
	Kind Kind
	Msg  string
	Err  error
}

// E builds an *Error from its arguments, in any order: a string is the op if
// it is the first string, otherwise the message; a Kind is the kind; an error
// is the cause. If the cause is an *Error and no kind is given, its kind is
// inherited, and its message too when none is given.
func E(args ...any) error {
	e := &Error{}
	opSet := false
	for _, a := range args {
		switch a := a.(type) {
		case string:
			if !opSet {
				e.Op, opSet = a, true
			} else {
				e.Msg = a
			}
		case Kind:
			e.Kind = a
		case error:
			e.Err = a
		}
	}
	var inner *Error
	if errors.As(e.Err, &inner) {
		if e.Kind == Other {
			e.Kind = inner.Kind
		}
		if e.Msg == "" {
			e.Msg = inner.Msg
		}
	}
	return e
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	if e.Kind != Other {
		b.WriteString(": ")
		b.WriteString(e.Kind.String())
	}
	if e.Msg != "" {
		b.WriteString(": ")
		b.WriteString(e.Msg)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the kind of the outermost *Error in err's chain, or Other.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Other
}

// Is reports whether err has the given kind.
func Is(kind Kind, err error) bool { return err != nil && KindOf(err) == kind }

// MessageOf returns the client-safe message of err, or "" if it has none.
func MessageOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Msg
	}
	return ""
}
