package clientapi

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/privateline/privateline"
)

// kindStatus is the one table from error kinds to HTTP statuses and codes.
var kindStatus = map[privateline.Kind]struct {
	status int
	code   string
	msg    string // default message
}{
	privateline.Invalid:         {http.StatusBadRequest, "invalid_request", "the request is malformed"},
	privateline.Unauthenticated: {http.StatusUnauthorized, "unauthenticated", "authentication required"},
	privateline.Forbidden:       {http.StatusForbidden, "forbidden", "not allowed"},
	privateline.NotExist:        {http.StatusNotFound, "not_found", "not found"},
	privateline.Exist:           {http.StatusConflict, "conflict", "already exists"},
	privateline.TooLarge:        {http.StatusRequestEntityTooLarge, "too_large", "the request is too large"},
	privateline.RateLimited:     {http.StatusTooManyRequests, "rate_limited", "too many requests; try again later"},
	privateline.Unavailable:     {http.StatusServiceUnavailable, "unavailable", "the server is temporarily unavailable"},
	privateline.Internal:        {http.StatusInternalServerError, "internal", "internal error"},
	privateline.Other:           {http.StatusInternalServerError, "internal", "internal error"},
}

// Errors with a status the kind table does not cover.
var (
	errUnsupportedMediaType = &statusError{http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json"}
	errMethodNotAllowed     = &statusError{http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed on this path"}
	errCSRF                 = &statusError{http.StatusForbidden, "csrf_failed", "missing or wrong X-CSRF-Token"}
	errWrongPassword        = &statusError{http.StatusForbidden, "wrong_password", "the current password is wrong"}
	errPreconditionFailed   = &statusError{http.StatusPreconditionFailed, "precondition_failed", "If-Match does not name the current version; fetch it again and merge"}
	errPreconditionRequired = &statusError{http.StatusPreconditionRequired, "precondition_required", "If-Match with the ETag of the version being replaced is required"}
	errTombstoned           = &statusError{http.StatusConflict, "conflict", "a message with this id was deleted; send a new message with a new id"}
)

type statusError struct {
	status  int
	code    string
	message string
}

func (e *statusError) Error() string { return e.message }

// rateLimitError is a RateLimited error with a Retry-After.
type rateLimitError struct{ after time.Duration }

func (e *rateLimitError) Error() string { return "rate limited" }

// apiErr is how an error is told to a client: the HTTP status, the code
// and the message of the JSON error body, and a Retry-After.
type apiErr struct {
	status     int
	code, msg  string
	retryAfter int // seconds; 0: none
}

// describe maps err to what the client is told, through the one table.
func (a *API) describe(err error) apiErr {
	var se *statusError
	if errors.As(err, &se) {
		return apiErr{status: se.status, code: se.code, msg: se.message}
	}
	var rl *rateLimitError
	if errors.As(err, &rl) {
		secs := int(math.Ceil(rl.after.Seconds()))
		if secs < 1 {
			secs = 1
		}
		e := kindStatus[privateline.RateLimited]
		return apiErr{status: e.status, code: e.code, msg: e.msg, retryAfter: secs}
	}
	kind := privateline.KindOf(err)
	e, ok := kindStatus[kind]
	if !ok {
		e = kindStatus[privateline.Internal]
	}
	msg := privateline.MessageOf(err)
	if msg == "" || e.status >= 500 {
		msg = e.msg
	}
	return apiErr{status: e.status, code: e.code, msg: msg}
}

// writeError answers with the JSON error for err and logs server faults.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := a.describe(err)
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="privateline"`)
	}
	if e.status >= 500 {
		a.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, e.status, errorBody(e.code, e.msg))
}

func errorBody(code, msg string) map[string]any {
	return map[string]any{"error": map[string]string{"code": code, "message": msg}}
}

// invalid returns an Invalid error with a client-facing message.
func invalid(msg string) error { return privateline.E("clientapi", privateline.Invalid, msg) }

var errUnauthenticated = privateline.E("clientapi", privateline.Unauthenticated, "missing, invalid, expired or revoked token")
