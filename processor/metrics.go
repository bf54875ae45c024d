package processor

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the processor's Prometheus metrics, registered on the
// registerer passed to NewMetrics (never the global default).
type Metrics struct {
	consumed       *prometheus.CounterVec
	rejected       *prometheus.CounterVec
	stale          *prometheus.CounterVec
	eventsEntries  *prometheus.CounterVec
	eventsSent     prometheus.Counter
	rejectsSent    prometheus.Counter
	outboxAdded    prometheus.Counter
	outboxDepth    prometheus.Gauge
	latency        prometheus.Histogram
	lag            *prometheus.GaugeVec
	committed      *prometheus.GaugeVec
	members        *prometheus.GaugeVec
	jobsPending    prometheus.Gauge
	backfilled     prometheus.Counter
	produceErrors  prometheus.Counter
	unproducible   prometheus.Counter
	restoredOffers prometheus.Counter
	ready          prometheus.Gauge
	feedErrors     *prometheus.CounterVec
	standby        *standbyMetrics // standby.go
}

// NewMetrics creates and registers the processor metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "feedmill_records_consumed_total", Help: "Input records consumed, per topic.",
		}, []string{"topic"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "feedmill_records_rejected_total", Help: "Input records sent to the rejects topic, per source topic.",
		}, []string{"topic"}),
		stale: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "feedmill_records_stale_total", Help: "Duplicate or late records ignored by the ordering rule, per topic.",
		}, []string{"topic"}),
		eventsEntries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "feedmill_events_emitted_total", Help: "Feed event entries (feed, destination) committed to the outbox, per action.",
		}, []string{"action"}),
		eventsSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "feedmill_events_produced_total", Help: "Feed events acknowledged by Kafka.",
		}),
		rejectsSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "feedmill_rejects_produced_total", Help: "Reject records acknowledged by Kafka.",
		}),
		outboxAdded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "feedmill_outbox_added_total", Help: "Records committed to the outbox.",
		}),
		outboxDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "feedmill_outbox_depth", Help: "Records committed to the outbox of the partitions this instance relays and not yet acknowledged by Kafka.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "feedmill_change_to_event_seconds",
			Help:    "From the input record's timestamp to the acknowledgement of the feed event it caused.",
			Buckets: []float64{.001, .0025, .005, .0075, .01, .015, .02, .03, .05, .075, .1, .15, .2, .3, .5, .75, 1, 1.5, 2, 3, 5, 10, 30, 60, 300},
		}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "feedmill_consumer_lag", Help: "High watermark minus the next offset to apply, per input partition.",
		}, []string{"topic", "partition"}),
		committed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "feedmill_committed_offset", Help: "Next offset to consume as committed to state, per input partition.",
		}, []string{"topic", "partition"}),
		members: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "feedmill_feed_members", Help: "Live member count per feed in the offers partitions this instance owns.",
		}, []string{"feed"}),
		jobsPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "feedmill_seller_jobs_pending", Help: "Seller/rating re-evaluations not finished in the partitions this instance owns.",
		}),
		backfilled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "feedmill_feed_backfill_offers_total", Help: "Offers re-evaluated after a change of the feed set (feed change jobs, cause FEED_CHANGE).",
		}),
		produceErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "feedmill_produce_errors_total", Help: "Failed attempts to produce outbox records (retried).",
		}),
		unproducible: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "feedmill_unproducible_records_total", Help: "Outbox records Kafka refused for good (too large, invalid), sent to the rejects topic instead.",
		}),
		restoredOffers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "feedmill_restored_offers_total", Help: "Offers restored from the changelog into partitions gained without current local state.",
		}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "feedmill_ready", Help: "1 when tables are loaded and partitions restored.",
		}),
		feedErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "feedmill_feed_errors_total",
			Help: "Run-time failures per feed, by the processor and full passes: its filter (kind filter), a custom template value it renders (kind template; counted for every feed using the template), or an evaluation over budget (kind budget).",
		}, []string{"feed", "kind"}),
	}
	reg.MustRegister(m.consumed, m.rejected, m.stale, m.eventsEntries, m.eventsSent, m.rejectsSent,
		m.outboxAdded, m.outboxDepth, m.latency, m.lag, m.committed, m.members, m.jobsPending,
		m.backfilled, m.produceErrors, m.unproducible, m.restoredOffers, m.ready, m.feedErrors)
	m.standby = newStandbyMetrics(reg)
	return m
}
