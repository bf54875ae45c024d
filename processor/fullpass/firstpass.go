package fullpass

import (
	"context"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/feedmill/feedmill/processor/runlog"
)

// The first pass at once: a file feed that no published run included is
// served 503 until a run publishes it, so the coordinator does not wait an
// interval for it. When the feed set in force has such a feed (a fresh
// deployment, or a file feed added since the last published run) and no
// run is running or held, the coordinator starts a run at its next step.
// A run that tried every such feed and failed is retried after
// firstPassRetry, doubled per failure in a row, at most
// full_pass.interval; one that held them and was rejected leaves the
// next start to the interval (the operator decided). With
// full_pass.interval 0 there are no automatic runs at all, this one
// included: passes start only on POST /api/runs.

// firstPassRetry is the wait after a failed first pass.
const firstPassRetry = time.Minute

// feedCheckEvery is how often the publication metric looks at the feed
// set again without a change of the run log (the fold's changes are
// seen at once).
const feedCheckEvery = 10 * time.Second

// fileFeeds returns the ids of the file feeds of the feed set in force:
// those the next run started here would publish (Start's definitions).
func (fp *FullPass) fileFeeds() []string {
	var ids []string
	for _, d := range fp.view.Load().defs {
		if d.File {
			ids = append(ids, d.ID)
		}
	}
	return ids
}

// firstPassDue reports whether the coordinator starts a run now for file
// feeds never published, and lists them. published is the fold's
// FilesPublished and runs its Runs (newest first), from one view.
func firstPassDue(interval time.Duration, now time.Time, fileFeeds []string, published map[string]time.Time, runs []runlog.Run) (never []string, due bool) {
	if interval <= 0 {
		return nil, false // no automatic runs
	}
	for _, id := range fileFeeds {
		if _, ok := published[id]; !ok {
			never = append(never, id)
		}
	}
	if len(never) == 0 {
		return nil, false
	}
	for i := range runs {
		if s := runs[i].Status; s == runlog.StatusRunning || s == runlog.StatusHeld {
			return never, false
		}
	}
	// The newest runs that tried every such feed: failed ones in a row
	// delay the retry, a rejected one leaves it to the interval.
	failed := 0
	var lastFailed time.Time
	for i := range runs {
		r := &runs[i]
		if !hasFiles(r, never) {
			break
		}
		if r.Status != runlog.StatusFailed {
			if failed == 0 {
				return never, false
			}
			break
		}
		if failed == 0 && r.FinishedAt != nil {
			lastFailed = *r.FinishedAt
		}
		failed++
	}
	if failed == 0 {
		return never, true
	}
	wait := min(firstPassRetry<<min(failed-1, 16), interval)
	return never, !now.Before(lastFailed.Add(wait))
}

// hasFiles reports whether run r had every feed of ids as a file feed.
func hasFiles(r *runlog.Run, ids []string) bool {
	for _, id := range ids {
		if !slices.ContainsFunc(r.Feeds, func(f runlog.Feed) bool { return f.ID == id && f.File }) {
			return false
		}
	}
	return true
}

// startFirstPass starts a run when firstPassDue says so (the
// coordinator, when no scheduled run started).
func (fp *FullPass) startFirstPass(ctx context.Context, now time.Time, published map[string]time.Time, runs []runlog.Run) {
	never, due := firstPassDue(fp.cfg.Interval, now, fp.fileFeeds(), published, runs)
	if !due {
		return
	}
	id, started, err := fp.Start(ctx)
	switch {
	case err != nil:
		if ctx.Err() == nil && time.Since(fp.firstLog) > time.Minute { // retried at the next step
			fp.firstLog = time.Now()
			fp.logger.Warn("start the first full pass of feeds never published", zap.Strings("feeds", never), zap.Error(err))
		}
	case started:
		fp.logger.Info("first full pass started: file feeds never published", zap.String("run", id), zap.Strings("feeds", never))
	}
}

// observeFeeds sets feedmill_feed_last_published_timestamp_seconds for
// every file feed of the set in force, from the fold (on every instance):
// at once when the run log changed, else every feedCheckEvery (the feed
// set may change). Only once the log is caught up: a partial fold would
// report feeds as never published.
func (fp *FullPass) observeFeeds() {
	ch := fp.log.Changed() // before the view: a later fold changes it
	if ch == fp.feedsSeen && time.Since(fp.feedsAt) < feedCheckEvery {
		return
	}
	var published map[string]time.Time
	fp.log.View(func(f *runlog.Fold) { published = f.FilesPublished() })
	fp.feedsSeen, fp.feedsAt = ch, time.Now()
	ids := fp.fileFeeds()
	exported := make(map[string]bool, len(ids))
	for _, id := range ids {
		exported[id] = true
		v := 0.0 // never published
		if at, ok := published[id]; ok {
			v = float64(at.UnixMilli()) / 1e3
		}
		fp.metrics.lastPublished.WithLabelValues(id).Set(v)
	}
	for id := range fp.feedsExported {
		if !exported[id] {
			fp.metrics.lastPublished.DeleteLabelValues(id)
		}
	}
	fp.feedsExported = exported
}
