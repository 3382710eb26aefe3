package logging

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/getsentry/sentry-go"
)

// newSentryClient builds a client of its own, not the SDK's global one.
//
// In sentry-go v0.46 the default pipeline is a telemetry buffer drained by a
// background goroutine into an internal async transport; reading its source,
// Flush does not wait for an event the goroutine has taken from the buffer but
// not yet queued. DisableTelemetryBuffer selects the SDK's HTTPTransport
// instead: CaptureEvent queues the event before returning and Flush waits for
// everything queued before it. Metrics, logs, breadcrumbs and client reports
// are off: only error events leave the process.
func newSentryClient(o Options) (*sentry.Client, error) {
	client, err := sentry.NewClient(sentry.ClientOptions{
		Dsn:                    o.SentryDSN,
		Environment:            o.Environment,
		Release:                o.Release,
		DisableTelemetryBuffer: true,
		DisableMetrics:         true,
		DisableClientReports:   true,
		MaxBreadcrumbs:         -1,
	})
	if err != nil {
		return nil, fmt.Errorf("logging: Options.SentryDSN: %w", err)
	}
	return client, nil
}

// sentryHandler passes every record to base and also sends those at
// slog.LevelError and above to Sentry, with redacted attributes.
type sentryHandler struct {
	base   slog.Handler
	hub    *sentry.Hub
	groups []string // open groups from WithGroup
	fields []field  // attributes from WithAttrs, flattened and redacted
}

// sentryContext names the event context that holds a record's attributes.
const sentryContext = "attributes"

// field is one attribute as sent to Sentry: its dotted path and its value.
type field struct {
	key string
	val any
}

func (h *sentryHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.base.Enabled(ctx, l)
}

func (h *sentryHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.base.Handle(ctx, r)
	if r.Level >= slog.LevelError {
		h.hub.CaptureEvent(h.event(r))
	}
	return err
}

func (h *sentryHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	c := *h
	c.base = h.base.WithAttrs(as)
	c.fields = slices.Clip(h.fields)
	for _, a := range as {
		c.fields = appendFields(c.fields, h.groups, inSecretGroup(h.groups), a)
	}
	return &c
}

func (h *sentryHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.base = h.base.WithGroup(name)
	c.groups = append(slices.Clip(h.groups), name)
	return &c
}

func (h *sentryHandler) event(r slog.Record) *sentry.Event {
	fields := slices.Clip(h.fields)
	secret := inSecretGroup(h.groups)
	r.Attrs(func(a slog.Attr) bool {
		fields = appendFields(fields, h.groups, secret, a)
		return true
	})
	ev := sentry.NewEvent()
	ev.Level = sentry.LevelError
	if r.Level >= slog.LevelError+4 {
		ev.Level = sentry.LevelFatal
	}
	ev.Message = r.Message
	ev.Logger = "slog"
	if !r.Time.IsZero() {
		ev.Timestamp = r.Time
	}
	if len(fields) > 0 {
		attrs := make(sentry.Context, len(fields))
		for _, f := range fields {
			attrs[f.key] = f.val
		}
		if ev.Contexts == nil {
			ev.Contexts = make(map[string]sentry.Context)
		}
		ev.Contexts[sentryContext] = attrs
	}
	return ev
}

// appendFields flattens a into fs under path, redacting as redactAttr does.
func appendFields(fs []field, path []string, secret bool, a slog.Attr) []field {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return fs
	}
	secret = secret || isSecretKey(a.Key)
	if a.Value.Kind() == slog.KindGroup {
		if a.Key != "" {
			path = append(slices.Clip(path), a.Key)
		}
		for _, m := range a.Value.Group() {
			fs = appendFields(fs, path, secret, m)
		}
		return fs
	}
	key := strings.Join(append(slices.Clip(path), a.Key), ".")
	if secret {
		return append(fs, field{key, redactedText})
	}
	return append(fs, field{key, plainValue(a.Value)})
}

// plainValue turns a resolved value into something encoding/json accepts.
func plainValue(v slog.Value) any {
	switch v.Kind() {
	case slog.KindString:
		return v.String()
	case slog.KindInt64:
		return v.Int64()
	case slog.KindUint64:
		return v.Uint64()
	case slog.KindBool:
		return v.Bool()
	case slog.KindFloat64:
		if f := v.Float64(); !math.IsNaN(f) && !math.IsInf(f, 0) {
			return f
		}
	case slog.KindTime:
		return v.Time().UTC().Format(time.RFC3339Nano)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return err.Error()
		}
	}
	return v.String()
}
