package federation

import (
	"time"

	"github.com/privateline/privateline/cjson"
	"github.com/privateline/privateline/federation/wire"
)

// Refusal codes of spec/federation.md §10.1 that wire does not return
// (they are the receiver's, not Verify's).
const (
	codeRateLimited = "rate_limited" // over the per-origin rate or concurrency: retry after retry_after
	codeUnavailable = "unavailable"  // the receiver cannot commit now: retry
	codeInternal    = "internal"     // a bug on the receiver: retry
	codeOutOfOrder  = "out_of_order" // the transaction named in "after" was not committed: resend after it
)

// maxMessage bounds an error frame's message (spec §10.1).
const maxMessage = 512

// errorFrame returns the canonical JSON of the (unsigned) error frame of
// spec §10.1: {"error", "message", "retry_after" (ms, only when > 0), "v"}.
func errorFrame(code, message string, retryAfter time.Duration) []byte {
	m := map[string]any{
		"error":   code,
		"message": truncate(message, maxMessage),
		"v":       int64(wire.Version),
	}
	if retryAfter > 0 {
		m["retry_after"] = max(retryAfter.Milliseconds(), 1)
	}
	b, err := cjson.Marshal(m)
	if err != nil { // strings and integers: cannot happen
		panic(err)
	}
	return b
}

// errFrame is a peer's refusal of our transaction.
type errFrame struct {
	code       string
	message    string
	retryAfter time.Duration
}

// parseErrorFrame reads an answer that is an error frame; ok is false for
// anything else (a receipt, or bytes that are neither). Members a later
// version may add are ignored.
func parseErrorFrame(raw []byte) (errFrame, bool) {
	v, err := cjson.Parse(raw)
	if err != nil {
		return errFrame{}, false
	}
	o := cjson.NewObject(v)
	if !o.Has("error") {
		return errFrame{}, false
	}
	ef := errFrame{code: o.String("error", true), message: o.String("message", false)}
	ms := o.Int("retry_after", false, 0, cjson.MaxSafeInt)
	ver := o.Int("v", true, 0, cjson.MaxSafeInt)
	if o.Done(true) != nil || ver != wire.Version || !wire.IsCode(ef.code) {
		return errFrame{}, false
	}
	ef.message = truncate(ef.message, maxMessage)
	ef.retryAfter = time.Duration(min(ms, int64(maxBackoff/time.Millisecond))) * time.Millisecond
	return ef, true
}
