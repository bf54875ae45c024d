package processor

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/feedmill/feedmill/feeds"
)

// evalErrorLogEvery is the least time between two evaluation-error log
// lines of one feed.
const evalErrorLogEvery = time.Minute

// evalErrors exports the run-time failures that Evaluators count (filters,
// custom template values, budget overruns) to feedmill_feed_errors_total
// and logs them: at most one line per feed per evalErrorLogEvery, naming
// the last failure (offer id and error) and how many were not logged
// since the feed's previous line. The pipeline's appliers share one and
// sync once per committed batch; the full pass hands its counts over
// through Pipeline.ReportEvalErrors. Safe for concurrent use.
type evalErrors struct {
	mu       sync.Mutex
	set      *feeds.Set
	counters [][feeds.NumErrorKinds]prometheus.Counter // per feed index
	logger   *zap.Logger
	nextLog  []time.Time // per feed: no line before
	unlogged []uint64    // per feed: failures since its last line
}

// newEvalErrors creates every feed's counters, at zero.
func newEvalErrors(m *Metrics, set *feeds.Set, logger *zap.Logger) *evalErrors {
	n := len(set.Feeds())
	x := &evalErrors{
		set: set, logger: logger,
		counters: make([][feeds.NumErrorKinds]prometheus.Counter, n),
		nextLog:  make([]time.Time, n),
		unlogged: make([]uint64, n),
	}
	for i, f := range set.Feeds() {
		for k := range feeds.NumErrorKinds {
			x.counters[i][k] = m.feedErrors.WithLabelValues(f.ID, feeds.ErrorKind(k).String())
		}
	}
	return x
}

// EvalErrorSource tracks what has been exported of one Evaluator's
// failure counts.
// Use it on the Evaluator's goroutine, or after handing both over.
type EvalErrorSource struct {
	ev    *feeds.Evaluator
	total uint64                        // ev.ErrorTotal() at the last sync
	seen  [][feeds.NumErrorKinds]uint64 // ev.FeedErrors at the last sync
}

func NewEvalErrorSource(ev *feeds.Evaluator, set *feeds.Set) *EvalErrorSource {
	return &EvalErrorSource{ev: ev, seen: make([][feeds.NumErrorKinds]uint64, len(set.Feeds()))}
}

// sync adds what src's Evaluator counted since its last sync to the
// metric and logs it (rate-limited). It costs one comparison when nothing
// failed. src must evaluate the same Set.
func (x *evalErrors) sync(src *EvalErrorSource, now time.Time) {
	total := src.ev.ErrorTotal()
	if total == src.total {
		return
	}
	src.total = total
	x.mu.Lock()
	defer x.mu.Unlock()
	for i, f := range x.set.Feeds() {
		c := src.ev.FeedErrors(i)
		var delta uint64
		for k := range c {
			if d := c[k] - src.seen[i][k]; d > 0 {
				x.counters[i][k].Add(float64(d))
				delta += d
			}
		}
		src.seen[i] = c
		if delta == 0 {
			continue
		}
		x.unlogged[i] += delta
		if now.Before(x.nextLog[i]) {
			continue
		}
		le := src.ev.LastError(i)
		x.logger.Warn("feed evaluation failed",
			zap.String("feed", f.ID), zap.Stringer("kind", le.Kind), zap.String("offer", le.OfferID),
			zap.Error(le.Err), zap.Uint64("suppressed", x.unlogged[i]-1))
		x.unlogged[i] = 0
		x.nextLog[i] = now.Add(evalErrorLogEvery)
	}
}

// ReportEvalErrors hands src (a full-pass Evaluator, idle while this
// runs) to the applier goroutine, which adds its new failures to
// feedmill_feed_errors_total and logs them. It does nothing when src
// counted nothing new. When ctx ends first (shutdown) the failures counted
// since the last report are not exported.
func (p *Pipeline) ReportEvalErrors(ctx context.Context, src *EvalErrorSource) {
	if src.ev.ErrorTotal() == src.total {
		return
	}
	if ctx.Err() != nil {
		return
	}
	p.applierDeps.evalErrs.sync(src, p.now())
}

// SyncEvalErrors adds what src's Evaluator counted since its last sync to
// feedmill_feed_errors_total and logs it (rate-limited), with src's
// Evaluator idle.
func (a *Applier) SyncEvalErrors(src *EvalErrorSource) { a.evalErrors.sync(src, a.now()) }
