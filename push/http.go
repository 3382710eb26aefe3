package push

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// classify turns a push service's HTTP answer into a *SendError (nil for
// 2xx). gone reports whether the status means the token is dead for this
// service; the caller knows which statuses those are.
func classify(status int, header http.Header, gone bool, detail string) error {
	switch {
	case status >= 200 && status < 300:
		return nil
	case gone:
		return &SendError{Reason: "gone", Gone: true, Err: httpErr(status, detail)}
	case status == http.StatusTooManyRequests:
		return &SendError{Reason: "rate_limited", Retry: true, After: retryAfter(header), Err: httpErr(status, detail)}
	case status >= 500:
		return &SendError{Reason: "unavailable", Retry: true, After: retryAfter(header), Err: httpErr(status, detail)}
	default:
		return &SendError{Reason: "rejected", Err: httpErr(status, detail)}
	}
}

func httpErr(status int, detail string) error {
	if detail == "" {
		return fmt.Errorf("HTTP %d", status)
	}
	return fmt.Errorf("HTTP %d: %s", status, detail)
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(h http.Header) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// networkErr wraps a transport failure as temporary, unless it is a refused
// address (the SSRF guard), which retrying cannot fix.
func networkErr(err error) error {
	var ra *refusedAddrError
	if errors.As(err, &ra) {
		return &SendError{Reason: "refused_address", Err: err}
	}
	return &SendError{Reason: "network", Retry: true, Err: err}
}
