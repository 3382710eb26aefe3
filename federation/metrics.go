package federation

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/privateline/privateline/federation/wire"
)

type metrics struct {
	attempts       prometheus.Counter     // delivery attempts (transactions sent)
	failures       *prometheus.CounterVec // failed attempts by reason
	delivered      prometheus.Counter     // entries answered accepted or duplicate
	refusedEntries *prometheus.CounterVec // entries a destination refused, by code
	expired        prometheus.Counter     // entries dropped at the delivery timeout
	latency        prometheus.Histogram   // queued → receipt, per delivered entry
	readAhead      *prometheus.CounterVec // transactions read ahead, by outcome (sender.go)
	transactions   *prometheus.CounterVec // transactions received: committed, replayed
	entries        *prometheus.CounterVec // entries received by status
	rejected       *prometheus.CounterVec // frames refused, by reason
	files          *prometheus.CounterVec // file transfers by outcome (files.go)
	fileBytes      *prometheus.CounterVec // file bytes served and fetched

	// Tree-head witnessing (witness.go).
	witnessAnswered *prometheus.CounterVec // witness requests answered, by outcome
	witnessAsked    *prometheus.CounterVec // witness requests sent, by outcome
	forks           *prometheus.CounterVec // peers' directory forks detected, by kind

	// Replica resync (groupsync.go).
	resyncs *prometheus.CounterVec // state requests made, by outcome

	// Lost epochs (groupsync.go): groups moved past a replica's epoch.
	epochRaises prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, st Store) *metrics {
	m := &metrics{
		attempts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "privateline_federation_send_attempts_total",
			Help: "Transactions sent to other servers (every attempt, retries included).",
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "privateline_federation_send_failures_total",
			Help: "Failed delivery attempts by reason (unreachable, link, a refusal code of the destination, …).",
		}, []string{"reason"}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "privateline_federation_entries_delivered_total",
			Help: "Outbox entries a destination answered accepted or duplicate in a verified receipt.",
		}),
		refusedEntries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "privateline_federation_entries_refused_total",
			Help: "Outbox entries a destination refused in a verified receipt, by code.",
		}, []string{"code"}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "privateline_federation_entries_expired_total",
			Help: "Outbox entries dropped because they were not delivered within the delivery timeout.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "privateline_federation_delivery_latency_seconds",
			Help:    "Time from queueing an entry to the receipt that delivered it.",
			Buckets: []float64{.01, .05, .1, .5, 1, 5, 30, 60, 300, 1800, 3600, 6 * 3600, 24 * 3600, 72 * 3600},
		}),
		readAhead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "privateline_federation_read_ahead_total",
			Help: "Transactions read and signed while the one before was in flight, by outcome: sent (recorded to follow it and sent at once), stale (the outbox changed meanwhile; read again), or abandoned (the one before failed; sent again after it).",
		}, []string{"outcome"}),
		transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "privateline_federation_transactions_received_total",
			Help: "Transactions received and answered with a receipt: committed, or replayed (answered again from the replay records).",
		}, []string{"outcome"}),
		entries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "privateline_federation_entries_received_total",
			Help: "Entries of committed transactions by status (accepted, duplicate, refused).",
		}, []string{"status"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "privateline_federation_rejected_frames_total",
			Help: "Frames refused by reason (spec/federation.md §10.1 codes, frame errors, bad receipts).",
		}, []string{"reason"}),
		files: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "privateline_federation_files_total",
			Help: "File transfers (spec/federation.md §12.4) by outcome: served, served_failed, answered_unknown, fetched, fetch_unknown, fetch_failed, fetch_mismatch.",
		}, []string{"outcome"}),
		fileBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "privateline_federation_file_bytes_total",
			Help: "Bytes of files served to other servers and fetched from them.",
		}, []string{"direction"}),
		witnessAnswered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "privateline_federation_witness_answered_total",
			Help: "Witness requests of peers answered, by outcome (cosigned, or the code: need_proof, log_fork, …).",
		}, []string{"outcome"}),
		witnessAsked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "privateline_federation_witness_requests_total",
			Help: "Witness requests sent to peers for this server's directory head, by outcome (cosigned, unreachable, or the witness's code).",
		}, []string{"outcome"}),
		forks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "privateline_federation_directory_forks_total",
			Help: "Forks of peers' key directories detected by this server as a witness (two heads that cannot both be true), by kind.",
		}, []string{"kind"}),
		resyncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "privateline_federation_group_resyncs_total",
			Help: "Group replica state requests made to groups' servers (spec/federation.md §12.1), by outcome: updated (the replica was behind), current, not_found (the replica went), unreachable, bad_state; rate_limited counts refusals that were waited out.",
		}, []string{"outcome"}),
		epochRaises: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "privateline_federation_group_epoch_raises_total",
			Help: "Groups of this server moved past an epoch a member's server held that this server's group had not (it was restored from a backup; spec/federation.md §12.1, Lost epochs).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.resyncs)
		reg.MustRegister(m.epochRaises)
		reg.MustRegister(m.witnessAnswered, m.witnessAsked, m.forks)
		reg.MustRegister(m.attempts, m.failures, m.delivered, m.refusedEntries, m.expired, m.latency, m.readAhead,
			m.transactions, m.entries, m.rejected, depthCollector{st})
		reg.MustRegister(m.files, m.fileBytes)
	}
	return m
}

// depthCollector reports the outbox depth per destination when scraped.
type depthCollector struct{ st Store }

var depthDesc = prometheus.NewDesc("privateline_federation_outbox_depth",
	"Outbox entries queued per destination.", []string{"destination"}, nil)

func (c depthCollector) Describe(ch chan<- *prometheus.Desc) { ch <- depthDesc }

func (c depthCollector) Collect(ch chan<- prometheus.Metric) {
	depth, err := c.st.OutboxDepth()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(depthDesc, err)
		return
	}
	for dest, n := range depth {
		ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(n), string(dest))
	}
}

// knownCodes bounds the label values a peer can make us use.
var knownCodes = map[string]bool{}

func init() {
	for _, c := range []string{
		string(wire.TooLarge), string(wire.Malformed), string(wire.NonCanonical), string(wire.UnknownVersion),
		string(wire.UnknownType), string(wire.WrongOrigin), string(wire.Misaddressed), string(wire.Stale),
		string(wire.Future), string(wire.TooManyEntries), string(wire.BadSignature), string(wire.ReceiptMismatch),
		string(wire.TxnReused), codeRateLimited, codeUnavailable, codeInternal, codeOutOfOrder,
		entryIDMismatch, entryNotForDestination, entryUnknownRecipient, entryExpired, "unknown_file",
		"unreachable", "link", "storage", "bad_receipt",
	} {
		knownCodes[c] = true
	}
}

// labelCode returns code if this version knows it, else "other".
func labelCode(code string) string {
	if knownCodes[code] {
		return code
	}
	return "other"
}
