package clientapi

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec

	fileUploads     prometheus.Counter
	fileUploadBytes prometheus.Counter
	fileRefused     *prometheus.CounterVec // by reason: size, quota

	wsOpen    prometheus.Gauge   // open WebSockets
	wsEvents  prometheus.Counter // events written to sockets
	wsSlow    prometheus.Counter // sockets closed as too slow
	wsTickets prometheus.Counter // WebSocket tickets issued

	keyWaiting prometheus.Gauge       // key look-ups waiting for their epoch's key (groupkeywait.go)
	keyWaits   *prometheus.CounterVec // their ends, by result: key, stale_epoch, none
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "privateline_http_requests_total",
			Help: "Client API requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "privateline_http_request_duration_seconds",
			Help:    "Client API request latency by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "method"}),
		fileUploads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "privateline_file_uploads_total",
			Help: "Files stored.",
		}),
		fileUploadBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "privateline_file_upload_bytes_total",
			Help: "Bytes of the files stored.",
		}),
		fileRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "privateline_file_uploads_refused_total",
			Help: "Uploads refused with 413, by reason (size: over MAX_FILE_SIZE; quota: over FILE_QUOTA_BYTES).",
		}, []string{"reason"}),
		wsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "privateline_ws_connections",
			Help: "Open WebSockets.",
		}),
		wsEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "privateline_ws_events_sent_total",
			Help: "Events written to WebSockets (backlog and live).",
		}),
		wsSlow: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "privateline_ws_slow_disconnects_total",
			Help: "WebSockets closed because their queue overflowed (a slow reader).",
		}),
		wsTickets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "privateline_ws_tickets_issued_total",
			Help: "Single-use WebSocket tickets issued.",
		}),
		keyWaiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "privateline_group_key_waiting",
			Help: "Group key look-ups waiting for their epoch's key, which an admin's client has not uploaded (or this server not received) yet.",
		}),
		keyWaits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "privateline_group_key_waits_total",
			Help: "Group key look-ups that waited for their epoch's key, by result (key: it came; stale_epoch: the group moved on; none: it did not come in time).",
		}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.latency, m.fileUploads, m.fileUploadBytes, m.fileRefused, m.wsOpen, m.wsEvents, m.wsSlow, m.wsTickets)
		reg.MustRegister(m.keyWaiting, m.keyWaits)
	}
	return m
}

func (m *metrics) observe(route, method string, status int, d time.Duration) {
	switch method {
	case "GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD", "PATCH":
	default:
		method = "other" // bound the label's values
	}
	m.requests.WithLabelValues(route, method, statusLabel(status)).Inc()
	m.latency.WithLabelValues(route, method).Observe(d.Seconds())
}
