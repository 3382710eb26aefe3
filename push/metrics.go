package push

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	sent      *prometheus.CounterVec // accepted by the service, by platform
	failed    *prometheus.CounterVec // failed attempts by platform and reason
	removed   *prometheus.CounterVec // tokens deleted because the service reported them gone
	coalesced prometheus.Counter     // notifications merged into one already waiting
	dropped   prometheus.Counter     // notifications dropped because too many users were waiting
}

func newMetrics(reg prometheus.Registerer, s *Service) *metrics {
	m := &metrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "privateline_push_sent_total",
			Help: "Notifications a push service accepted, by platform.",
		}, []string{"platform"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "privateline_push_failed_total",
			Help: "Failed notification attempts by platform and reason (gone, rate_limited, unavailable, network, rejected, refused_address, not_allowed, gave_up).",
		}, []string{"platform", "reason"}),
		removed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "privateline_push_tokens_removed_total",
			Help: "Push tokens deleted because their service reported the device gone, by platform.",
		}, []string{"platform"}),
		coalesced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "privateline_push_coalesced_total",
			Help: "Notifications merged into one already waiting for the same user.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "privateline_push_dropped_total",
			Help: "Notifications dropped because the queue was full.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.sent, m.failed, m.removed, m.coalesced, m.dropped,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "privateline_push_queue_depth",
				Help: "Notifications waiting: users queued or being sent to, and device retries scheduled.",
			}, func() float64 { return float64(s.Depth()) }))
	}
	return m
}
