package connectors

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are a connector's Prometheus collectors. Labels are bounded:
// action (ADD, UPDATE, REFRESH, REMOVE, and "undecodable" for dead letters
// of records that could not be decoded), status code, reason, partition.
type metrics struct {
	sent        *prometheus.CounterVec // {action}
	failed      *prometheus.CounterVec // {action}: retryable failures
	deadLetters *prometheus.CounterVec // {action}
	retries     prometheus.Counter
	abandoned   prometheus.Counter
	status      *prometheus.CounterVec // {code}
	skipped     *prometheus.CounterVec // {reason}
	batch       prometheus.Histogram
	lag         *prometheus.GaugeVec // {topic, partition}
	committed   *prometheus.GaugeVec // {topic, partition}
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "feedmill_connector_items_sent_total",
			Help: "Items the partner acknowledged, by action.",
		}, []string{"action"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "feedmill_connector_items_failed_total",
			Help: "Item attempts that failed transiently (429, 5xx, timeout) and were retried or abandoned, by action.",
		}, []string{"action"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "feedmill_connector_dead_letters_total",
			Help: "Records written to the dead-letter topic, by action.",
		}, []string{"action"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "feedmill_connector_retries_total",
			Help: "Items sent again after a transient failure.",
		}),
		abandoned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "feedmill_connector_partner_calls_abandoned_total",
			Help: "Partner calls still running long after retry.timeout, given up on (their items are retried); a partner bug.",
		}),
		status: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "feedmill_connector_partner_status_total",
			Help: "Per-item partner answers by HTTP status code (0 = no response).",
		}, []string{"code"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "feedmill_connector_records_skipped_total",
			Help: "Records not sent: other_destination (skipped without decoding), stale (seq not greater than the last applied), no_change (no partner call needed).",
		}, []string{"reason"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "feedmill_connector_batch_seconds",
			Help:    "Time from the start of a batch's delivery to its offset commit.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "feedmill_connector_consumer_lag",
			Help: "High watermark minus committed offset per assigned partition of the events topic.",
		}, []string{"topic", "partition"}),
		committed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "feedmill_connector_committed_offset",
			Help: "Last committed offset per assigned partition of the events topic.",
		}, []string{"topic", "partition"}),
	}
	if reg != nil {
		reg.MustRegister(m.sent, m.failed, m.deadLetters, m.retries, m.abandoned, m.status, m.skipped, m.batch, m.lag, m.committed)
	}
	return m
}

// statusLabel avoids strconv per item for the common codes.
func statusLabel(code int) string {
	switch code {
	case 0:
		return "0"
	case 200:
		return "200"
	case 400:
		return "400"
	case 429:
		return "429"
	case 500:
		return "500"
	}
	return strconv.Itoa(code)
}

// Handler serves /metrics from reg and /healthz (always 200 while the
// process serves HTTP). Safe for concurrent use.
func Handler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n")) // the client went away; nothing to do
	})
	return mux
}
