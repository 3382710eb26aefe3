package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/privateline/privateline"
)

// Error codes of the API (spec/openapi.yaml, "Errors"), as in APIError.Code.
const (
	CodeInvalidRequest       = "invalid_request"
	CodeUnauthenticated      = "unauthenticated"
	CodeForbidden            = "forbidden"
	CodeCSRFFailed           = "csrf_failed"
	CodeWrongPassword        = "wrong_password"
	CodeNotFound             = "not_found"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodeConflict             = "conflict"
	CodePreconditionFailed   = "precondition_failed"
	CodeTooLarge             = "too_large"
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodePreconditionRequired = "precondition_required"
	CodeRateLimited          = "rate_limited"
	CodeInternal             = "internal"
	CodeUnavailable          = "unavailable"
	CodeQuotaExceeded        = "quota_exceeded" // 413: POST /api/files over the user's quota
	CodeUnknownFile          = "unknown_file"   // 400: a message lists a file the sender did not upload
	CodeFileInUse            = "file_in_use"    // 409: DELETE /api/files/{id} of an attached file
)

// APIError is an error answer of the server: its HTTP status, the stable
// code and the message of {"error": {"code", "message"}}, and for 429 the
// Retry-After. It is the cause inside the privateline error a call
// returns; find it with errors.As or the helpers below.
type APIError struct {
	Status     int
	Code       string        // "" when the body was not an API error
	Message    string        // the server's message for people
	RetryAfter time.Duration // from Retry-After, 0 if absent
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("HTTP %d", e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// kindOfStatus maps an HTTP status to an error kind (see the package doc).
func kindOfStatus(status int) privateline.Kind {
	switch {
	case status == http.StatusBadRequest, status == http.StatusMethodNotAllowed, status == http.StatusUnsupportedMediaType:
		return privateline.Invalid
	case status == http.StatusUnauthorized:
		return privateline.Unauthenticated
	case status == http.StatusForbidden:
		return privateline.Forbidden
	case status == http.StatusNotFound:
		return privateline.NotExist
	case status == http.StatusConflict, status == http.StatusPreconditionFailed, status == http.StatusPreconditionRequired:
		return privateline.Exist
	case status == http.StatusRequestEntityTooLarge:
		return privateline.TooLarge
	case status == http.StatusTooManyRequests:
		return privateline.RateLimited
	case status == http.StatusInternalServerError:
		return privateline.Internal
	case status >= 500:
		return privateline.Unavailable
	default:
		return privateline.Invalid
	}
}

// apiError builds the error for a non-success answer.
func apiError(op string, r *response) error {
	ae := &APIError{Status: r.status}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(r.body, &body) == nil {
		ae.Code, ae.Message = body.Error.Code, body.Error.Message
	}
	if s := r.header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			ae.RetryAfter = time.Duration(n) * time.Second
		}
	}
	msg := ae.Message
	if msg == "" {
		msg = fmt.Sprintf("the server answered %d %s", r.status, http.StatusText(r.status))
	}
	return privateline.E(op, kindOfStatus(r.status), msg, ae)
}

// AsAPIError returns the server's error answer inside err, if any.
func AsAPIError(err error) (*APIError, bool) {
	var ae *APIError
	ok := errors.As(err, &ae)
	return ae, ok
}

// CodeOf returns the API error code inside err, or "".
func CodeOf(err error) string {
	if ae, ok := AsAPIError(err); ok {
		return ae.Code
	}
	return ""
}

// RetryAfter returns how long the server asked to wait (429), if it did.
func RetryAfter(err error) (time.Duration, bool) {
	ae, ok := AsAPIError(err)
	if !ok || ae.RetryAfter == 0 {
		return 0, false
	}
	return ae.RetryAfter, true
}

// IsVersionConflict reports whether err is a write based on a version that
// is no longer current (412 precondition_failed, PUT /api/pinned_keys):
// read again, merge, and retry.
func IsVersionConflict(err error) bool {
	ae, ok := AsAPIError(err)
	return ok && ae.Status == http.StatusPreconditionFailed
}
