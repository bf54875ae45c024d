package processor

import (
	"context"
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
// since the feed's previous line. It is not safe for concurrent use: the
// Applier owns it and syncs once per committed batch; the full pass hands
// its counts over through Exec (reportEvalErrors).
type evalErrors struct {
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

// evalErrorSource is what has been exported of one Evaluator's counts.
// Use it on the Evaluator's goroutine, or after handing both over.
type evalErrorSource struct {
	ev    *feeds.Evaluator
	total uint64                        // ev.ErrorTotal() at the last sync
	seen  [][feeds.NumErrorKinds]uint64 // ev.FeedErrors at the last sync
}

func newEvalErrorSource(ev *feeds.Evaluator, set *feeds.Set) *evalErrorSource {
	return &evalErrorSource{ev: ev, seen: make([][feeds.NumErrorKinds]uint64, len(set.Feeds()))}
}

// sync adds what src's Evaluator counted since its last sync to the
// metric and logs it (rate-limited). It costs one comparison when nothing
// failed. src must evaluate the same Set.
func (x *evalErrors) sync(src *evalErrorSource, now time.Time) {
	total := src.ev.ErrorTotal()
	if total == src.total {
		return
	}
	src.total = total
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

// reportEvalErrors hands src (a full-pass Evaluator, idle while this runs)
// to the applier goroutine to be synced. It does nothing when src counted
// nothing new or exec is nil.
func reportEvalErrors(ctx context.Context, exec func(context.Context, func(*Applier) error) error, src *evalErrorSource) {
	if exec == nil || src.ev.ErrorTotal() == src.total {
		return
	}
	// Exec fails only when ctx ends (shutdown): the failures counted since
	// the last report are then not exported.
	_ = exec(ctx, func(a *Applier) error {
		a.evalErrors.sync(src, a.now())
		return nil
	})
}
