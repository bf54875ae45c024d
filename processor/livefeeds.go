package processor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/state"
)

// Live feed changes (docs/contract.md, Live feed changes): the feed set in
// force can change while the pipeline runs. SetFeeds rebuilds every
// task's applier on the new set, with every task paused; Align then
// starts a feed change job in every partition this instance holds, which
// re-evaluates each offer against the new set (cause FEED_CHANGE) at most
// processor.backfill_rate offers per second.

// isFeedJob reports whether a job's seller id names a feed change job.
func isFeedJob(sellerID string) bool { return strings.HasPrefix(sellerID, state.FeedJobPrefix) }

// pendingFeedJobs counts the pending feed change jobs.
func (a *Applier) pendingFeedJobs() int {
	n := 0
	for _, id := range a.jobOrder {
		if isFeedJob(id.seller) {
			n++
		}
	}
	return n
}

// feedJobChunk bounds the offers of one feed change job chunk: a worker
// it holds is back soon for live changes.
const feedJobChunk = 200

// SetFeeds puts set in force: the table applier and every task's applier
// are rebuilt on it (their counts and jobs are read again from the
// store), with every task paused. Events of feeds the set no longer has
// are not emitted: each offer's next evaluation removes it from them
// (StartBackfill visits them all).
func (p *Pipeline) SetFeeds(set *feeds.Set) error {
	p.barrier.Lock()
	defer p.barrier.Unlock()
	p.tasksMu.Lock()
	defer p.tasksMu.Unlock()
	deps := p.applierDeps
	deps.Feeds = set
	deps.evalErrs = newEvalErrors(p.metrics, set, p.logger.Named("applier"))
	ta, err := NewApplier(deps)
	if err != nil {
		return fmt.Errorf("feed set: %w", err)
	}
	ta.eventID = p.tableApplier.eventID
	ta.onJobs, ta.onTable = p.handJobs, p.handTable
	apps := make(map[int32]*Applier, len(p.tasks))
	for part := range p.tasks {
		tdeps := deps
		tdeps.GroupPartitions = p.offersTotal.Load()
		a, err := NewApplier(tdeps)
		if err != nil {
			return fmt.Errorf("feed set: %w", err)
		}
		a.eventID = ta.eventID
		apps[part] = a
	}
	for part, t := range p.tasks {
		t.mu.Lock()
		err := t.a.SetPartitions(nil) // takes its members off the gauge
		if err == nil {
			err = apps[part].SetPartitions([]int32{part})
		}
		if err != nil {
			t.mu.Unlock()
			return fmt.Errorf("feed set: partition %d: %w", part, err)
		}
		t.a = apps[part]
		t.noteJobs()
		t.mu.Unlock()
	}
	p.tableApplier, p.applierDeps = ta, deps
	p.wakeJobs()
	return nil
}

// stageFeedJobs stages the feed change job jobID of every partition this
// instance holds state of (owned or not: a partition owned later catches
// up too) in b; commit hands those of owned partitions to their tasks.
func (a *Applier) stageFeedJobs(b *state.Batch, jobID string, changed []string) error {
	parts, err := a.knownPartitions()
	if err != nil {
		return err
	}
	for _, part := range parts {
		// No source time: the backfill's events are not live changes
		// (feedmill_change_to_event_seconds measures those).
		j := state.Job{SellerID: jobID, Partition: part, Feeds: slices.Clone(changed)}
		if err := b.PutJob(&j); err != nil {
			return err
		}
		a.jobStarts = append(a.jobStarts, j)
	}
	return nil
}

// BackfillProgress is what is left of the feed change jobs of this
// instance's owned partitions.
type BackfillProgress struct {
	// Partitions counts, per feed id, the owned partitions whose feed
	// change job for it is still running.
	Partitions map[string]int
	// Offers is how many offers feed change jobs re-evaluated since the
	// process started.
	Offers int64
}

// Backfill reports the feed change jobs still running in the owned
// partitions.
func (p *Pipeline) Backfill() BackfillProgress {
	out := BackfillProgress{Partitions: map[string]int{}, Offers: p.backfilled.Load()}
	tasks := p.ownedTasks()
	// A table batch hands jobs to tasks under the barrier's write lock.
	p.barrier.RLock()
	defer p.barrier.RUnlock()
	for _, t := range tasks {
		t.mu.Lock()
		seen := map[string]bool{}
		for _, j := range t.a.jobs {
			if !isFeedJob(j.SellerID) {
				continue
			}
			for _, f := range j.Feeds {
				if !seen[f] {
					seen[f] = true
					out.Partitions[f]++
				}
			}
		}
		t.mu.Unlock()
	}
	return out
}

// backfillPace is a token bucket of offers for feed change jobs: rate
// per second, up to one second's worth in advance (rate 0: no bound).
type backfillPace struct {
	rate   float64
	tokens float64
	last   time.Time
}

func newBackfillPace(rate int) *backfillPace {
	return &backfillPace{rate: float64(rate), tokens: float64(rate), last: time.Now()}
}

func (b *backfillPace) refill(now time.Time) {
	b.tokens = min(b.rate, b.tokens+b.rate*now.Sub(b.last).Seconds())
	b.last = now
}

// allowed reports whether feed change jobs may run now.
func (b *backfillPace) allowed(now time.Time) bool {
	if b.rate <= 0 {
		return true
	}
	b.refill(now)
	return b.tokens > 0
}

// spend takes n offers re-evaluated.
func (b *backfillPace) spend(n int64) { b.tokens -= float64(n) }

// wait is how long until feed change jobs may run again.
func (b *backfillPace) wait(now time.Time) time.Duration {
	if b.rate <= 0 {
		return 0
	}
	b.refill(now)
	if b.tokens > 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}

// FeedFingerprints fingerprints each feed definition with the custom
// template it uses: what the local state's memberships depend on.
func FeedFingerprints(defs []config.Feed, templates []config.Template) map[string]string {
	out := make(map[string]string, len(defs))
	for _, f := range defs {
		h := sha256.New()
		_ = json.NewEncoder(h).Encode(f) // a config.Feed always encodes
		for _, t := range templates {
			if t.ID == f.Template {
				_ = json.NewEncoder(h).Encode(t)
			}
		}
		out[f.ID] = hex.EncodeToString(h.Sum(nil)[:12])
	}
	return out
}

// Align brings the local state in line with defs (the feed set in force,
// SetFeeds): when a definition differs from those the state was last
// aligned with (added, changed, removed), it starts a feed change job in
// every partition this instance holds, in the batch that stores the new
// fingerprints, and returns the feeds it changes. A state never aligned
// (a fresh state dir, or one from before live feed changes) is taken as
// aligned with defs.
func (p *Pipeline) Align(ctx context.Context, defs []config.Feed, templates []config.Template) ([]string, error) {
	fps := FeedFingerprints(defs, templates)
	stored, ok, err := p.store.AlignedFeeds()
	if err != nil {
		return nil, err
	}
	var changed []string
	for id, fp := range fps {
		if stored[id] != fp {
			changed = append(changed, id)
		}
	}
	for id := range stored {
		if _, ok := fps[id]; !ok {
			changed = append(changed, id)
		}
	}
	slices.Sort(changed)
	if ok && len(changed) == 0 {
		return nil, nil
	}
	if !ok {
		changed = nil
	}
	err = p.Exec(ctx, func(a *Applier) error {
		b := a.store.NewBatch()
		defer b.Close()
		if err := b.PutAlignedFeeds(fps); err != nil {
			return err
		}
		if len(changed) > 0 {
			if err := a.stageFeedJobs(b, state.FeedJobPrefix+strconv.FormatInt(a.now().UnixMicro(), 36), changed); err != nil {
				return err
			}
		}
		return a.commit(b, a.now())
	})
	if err != nil {
		return nil, err
	}
	if len(changed) > 0 {
		p.logger.Info("backfill started: every offer of this instance's partitions is re-evaluated for the changed feeds",
			zap.Strings("feeds", changed), zap.Int("rate_per_s", p.cfg.Processor.BackfillRate))
	}
	return changed, nil
}
