package fullpass

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/processor"
	"github.com/feedmill/feedmill/processor/feedstore"
	"github.com/feedmill/feedmill/state"
)

// FullPass is the periodic pass over the whole joined state (seed 001's
// Generator). One run:
//
//  1. takes one Pebble snapshot and scans offers and memberships together,
//     partition by partition, evaluating every feed with its own
//     Evaluator; file feeds' items stream into part files (FeedFiles), the
//     offers whose stored membership differs from the evaluation (drift)
//     or that are due for a refresh are listed in Pebble under the run.
//     Memory does not grow with the catalog;
//  2. compares each feed's size with the last published run (the guard);
//     an anomaly holds the run: nothing is published or emitted until
//     Approve or Reject;
//  3. otherwise publishes: switches the file feeds to the new version, then
//     applies the listed offers in chunks on the applier goroutine
//     (Applier.ApplyFixes), which re-reads the current state, so corrections
//     are RECONCILE events of the same outbox and seq as live ones and
//     refreshes are REFRESH events.
//
// One run at a time: Start during a run returns the running id. Runs
// interrupted by a crash or shutdown are marked failed on the next start.
// Methods are safe for concurrent use; Run owns the pass goroutine.
type FullPass struct {
	cfg     config.FullPass
	store   *state.Store
	set     *feeds.Set
	files   *feedstore.FeedFiles
	stream  Stream
	now     func() time.Time
	logger  *zap.Logger
	metrics *fullPassMetrics
	intern  state.Interner
	// onPartition is the test hook of Deps.
	onPartition func(ctx context.Context, p int32)
	ready       func() bool

	mu        sync.Mutex // guards the fields below and run state transitions
	running   string     // queued or running pass
	queue     []passJob
	published *state.Run // last published run
	wake      chan struct{}
	budget    processor.EventBudget
	serde     *records.Serde
}

type passJob struct {
	run   string
	apply bool // apply a published run's fixes (else: run the pass)
}

// Deps are what a FullPass needs.
type Deps struct {
	Config config.FullPass
	Store  *state.Store
	Feeds  *feeds.Set
	Files  *feedstore.FeedFiles
	// Serde decodes the joined table records kept in state.
	Serde *records.Serde
	// MaxEventBytes is processor.max_event_bytes (0: its default): the
	// pass applies the streaming path's size rule (eventBudget), so an
	// offer too large to send is in no file and needs no correction.
	MaxEventBytes int
	// Stream is the streaming path (*processor.Pipeline): corrections
	// and refreshes go through its applier.
	Stream   Stream
	Registry prometheus.Registerer
	Logger   *zap.Logger
	Now      func() time.Time
	// Ready, when set, gates queued work: Run waits until it reports true
	// (the pipeline has loaded its tables and restored its partitions).
	Ready func() bool
	// OnPartition, when set, is called after the pass has read each
	// partition (tests use it to interrupt a pass midway).
	OnPartition func(ctx context.Context, p int32)
}

// Stream is what a pass needs of the streaming path
// (*processor.Pipeline).
type Stream interface {
	// ApplyFixes applies corrections and refreshes on the applier
	// goroutine, against the current state.
	ApplyFixes(ctx context.Context, fixes []state.Fix, refreshAfter time.Duration) (processor.FixResult, error)
	// ReportEvalErrors adds the pass evaluator's failures to the feed
	// error metric.
	ReportEvalErrors(ctx context.Context, src *processor.EvalErrorSource)
	// Coverage returns the offers partitions this instance owns (sorted)
	// and the topic's partition count.
	Coverage() (owned []int32, total int32)
}

// ErrRunNotHeld is returned by Approve and Reject for a run that is not held.
var ErrRunNotHeld = state.ErrRunNotHeld

type fullPassMetrics struct {
	duration    prometheus.Histogram
	scanned     prometheus.Counter
	feedSize    *prometheus.GaugeVec
	corrections prometheus.Counter
	refreshes   prometheus.Counter
	held        prometheus.Gauge
	runs        *prometheus.CounterVec
}

func newFullPassMetrics(reg prometheus.Registerer) *fullPassMetrics {
	m := &fullPassMetrics{
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "feedmill_full_pass_duration_seconds", Help: "Duration of the full pass scan (snapshot to guard decision).",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 16),
		}),
		scanned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "feedmill_full_pass_offers_scanned_total", Help: "Offer keys read by full passes.",
		}),
		feedSize: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "feedmill_feed_size", Help: "Members per feed in the last finished full pass.",
		}, []string{"feed"}),
		corrections: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "feedmill_full_pass_corrections_total", Help: "RECONCILE events emitted by full passes.",
		}),
		refreshes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "feedmill_full_pass_refreshes_total", Help: "REFRESH events emitted by full passes.",
		}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "feedmill_runs_held", Help: "Full-pass runs held by the anomaly guard, waiting for approve or reject.",
		}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "feedmill_full_pass_runs_total", Help: "Finished full-pass runs per outcome status.",
		}, []string{"status"}),
	}
	reg.MustRegister(m.duration, m.scanned, m.feedSize, m.corrections, m.refreshes, m.held, m.runs)
	return m
}

// New loads the runs: runs left running by a crash are marked
// failed and their output removed; a published run whose corrections were
// not all applied is queued to finish them; held runs stay held.
func New(d Deps) (*FullPass, error) {
	if d.Now == nil {
		d.Now = time.Now
	}
	names := map[string]string{}
	for _, f := range d.Feeds.Feeds() {
		names[f.ID] = f.ID
		for _, dst := range f.Destinations {
			names[dst] = dst
		}
	}
	budget, err := processor.NewEventBudget(d.MaxEventBytes, d.Feeds)
	if err != nil {
		return nil, err
	}
	fp := &FullPass{
		budget: budget, serde: d.Serde,
		cfg: d.Config, store: d.Store, set: d.Feeds, files: d.Files, stream: d.Stream, now: d.Now,
		logger: d.Logger.Named("fullpass"), metrics: newFullPassMetrics(d.Registry), onPartition: d.OnPartition, ready: d.Ready,
		wake: make(chan struct{}, 1),
		intern: func(b []byte) string {
			if s, ok := names[string(b)]; ok {
				return s
			}
			return string(b)
		},
	}
	var runs []state.Run
	if err := d.Store.Runs(func(r *state.Run) bool { runs = append(runs, *r); return true }); err != nil {
		return nil, err
	}
	held := 0
	for i := range runs {
		r := &runs[i]
		switch {
		case r.Status == state.RunRunning:
			r.Status, r.Reason = state.RunFailed, "interrupted: the process stopped during the pass"
			t := fp.now()
			r.FinishedAt = &t
			fp.files.Discard(r.ID)
			fallthrough
		case (r.Status == state.RunFailed || r.Status == state.RunRejected) && !r.Applied:
			if err := d.Store.DeleteFixes(r.ID); err != nil {
				return nil, err
			}
			r.Applied = true
			if err := d.Store.PutRun(r); err != nil {
				return nil, err
			}
		case r.Status == state.RunPublished && !r.Applied:
			fp.queue = append(fp.queue, passJob{run: r.ID, apply: true})
		case r.Status == state.RunHeld:
			held++
		}
		if r.Status == state.RunPublished && r.Whole() && fp.published == nil {
			fp.published = r
		}
	}
	fp.metrics.held.Set(float64(held))
	return fp, nil
}

// LastRun returns the id of the run whose version of feedID is published
// (file feeds) or the last published run (other feeds); "" before any.
func (fp *FullPass) LastRun(feedID string) string {
	if f, ok := fp.set.Feed(feedID); ok && f.File {
		return fp.files.Current(feedID)
	}
	fp.mu.Lock()
	defer fp.mu.Unlock()
	if fp.published == nil {
		return ""
	}
	return fp.published.ID
}

// Start queues a pass and returns its id, or the id of the pass already
// queued or running (started false).
func (fp *FullPass) Start() (id string, started bool, err error) {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	if fp.running != "" {
		return fp.running, false, nil
	}
	id, err = fp.store.NextRunID()
	if err != nil {
		return "", false, err
	}
	r := state.Run{ID: id, Status: state.RunRunning, StartedAt: fp.now(), Feeds: []state.RunFeed{}}
	if err := fp.store.PutRun(&r); err != nil {
		return "", false, err
	}
	fp.running = id
	fp.queue = append(fp.queue, passJob{run: id})
	fp.signal()
	return id, true, nil
}

func (fp *FullPass) signal() {
	select {
	case fp.wake <- struct{}{}:
	default:
	}
}

// Run executes queued passes and corrections and, with a non-zero
// full_pass.interval, starts a pass every interval. It returns nil when
// ctx ends. A pass that fails is recorded as a failed run, logged, and
// does not stop it (the previous feeds stay served); any other error (the
// state store failing, corrections that cannot be applied) stops it.
func (fp *FullPass) Run(ctx context.Context) error {
	var tick <-chan time.Time
	if fp.cfg.Interval > 0 {
		t := time.NewTicker(fp.cfg.Interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		if fp.ready != nil && !fp.ready() {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		fp.mu.Lock()
		var job passJob
		have := len(fp.queue) > 0
		if have {
			job = fp.queue[0]
			fp.queue = fp.queue[1:]
		}
		fp.mu.Unlock()
		if have {
			if err := fp.do(ctx, job); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				var failed *RunFailedError
				if !errors.As(err, &failed) {
					return fmt.Errorf("full pass %s: %w", job.run, err)
				}
				fp.logger.Error("full pass failed; the previous feeds stay served", zap.String("run", job.run), zap.Error(failed.Err))
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-fp.wake:
		case <-tick:
			if _, _, err := fp.Start(); err != nil {
				return fmt.Errorf("start scheduled full pass: %w", err)
			}
		}
	}
}

func (fp *FullPass) do(ctx context.Context, job passJob) error {
	if job.apply {
		return fp.applyRun(ctx, job.run)
	}
	defer func() {
		fp.mu.Lock()
		fp.running = ""
		fp.mu.Unlock()
	}()
	return fp.pass(ctx, job.run)
}

// RunOnce starts a pass (or joins the queued one) and executes the queue
// until that pass and its corrections are done, on the caller's
// goroutine. For tests and tools that do not call Run.
func (fp *FullPass) RunOnce(ctx context.Context) (state.Run, error) {
	id, _, err := fp.Start()
	if err != nil {
		return state.Run{}, err
	}
	for {
		fp.mu.Lock()
		var job passJob
		have := len(fp.queue) > 0
		if have {
			job = fp.queue[0]
			fp.queue = fp.queue[1:]
		}
		fp.mu.Unlock()
		if !have {
			return fp.store.GetRun(id)
		}
		if err := fp.do(ctx, job); err != nil {
			return state.Run{}, err
		}
	}
}

// pass runs the scan of run id, then holds or publishes it. An error from
// ctx leaves the run "running" (marked failed at the next start, like a
// crash); other errors mark it failed.
func (fp *FullPass) pass(ctx context.Context, id string) error {
	r, err := fp.store.GetRun(id)
	if err != nil {
		return err
	}
	begin := time.Now()
	now := fp.now()
	r.NowMs = now.UnixMilli()
	fp.logger.Info("full pass started", zap.String("run", id))
	if err := fp.scan(ctx, &r, now); err != nil {
		if ctx.Err() != nil {
			return err
		}
		ferr := fp.fail(&r, "pass failed", err)
		var out *outputError
		if _, recorded := ferr.(*RunFailedError); recorded && !errors.As(err, &out) {
			// Reading or writing state failed: recorded, and it stops Run.
			return fmt.Errorf("full pass %s: %w", id, err)
		}
		return ferr
	}
	fp.metrics.duration.Observe(time.Since(begin).Seconds())
	for _, f := range r.Feeds {
		fp.metrics.feedSize.WithLabelValues(f.ID).Set(float64(f.Members))
	}

	fp.mu.Lock()
	prev := fp.published
	fp.mu.Unlock()
	if !r.Whole() {
		// A partial run publishes no file (a feed file must hold every
		// member) and is no guard baseline; its corrections and
		// refreshes are this instance's to apply.
		return fp.publish(ctx, &r)
	}
	compareWith(r.Feeds, prev)
	if reason := guardReason(fp.cfg.Guard, r.Feeds); reason != "" {
		fp.finish(&r, state.RunHeld, reason)
		if err := fp.store.PutRun(&r); err != nil {
			return err
		}
		fp.logger.Warn("full pass held by the guard", zap.String("run", id), zap.String("reason", reason))
		return fp.supersede(id)
	}
	return fp.publish(ctx, &r)
}

// RunFailedError is a pass that failed and was recorded as a failed run
// (status failed, the reason in /api/runs). Run logs it and goes on: the
// previous feeds stay served. Any other error stops Run.
type RunFailedError struct {
	RunID string
	Err   error
}

func (e *RunFailedError) Error() string { return "run " + e.RunID + " failed: " + e.Err.Error() }
func (e *RunFailedError) Unwrap() error { return e.Err }

// outputError is a failure to write the pass's feed files: the run fails
// (the previous feeds stay served) and Run goes on. Other scan errors are
// the state store's and stop Run.
type outputError struct{ err error }

func (e *outputError) Error() string { return "write feed files: " + e.err.Error() }
func (e *outputError) Unwrap() error { return e.err }

// fail records r as failed with the reason what: err. It returns a
// *RunFailedError, or the error recording it.
func (fp *FullPass) fail(r *state.Run, what string, err error) error {
	fp.files.Discard(r.ID)
	if derr := fp.store.DeleteFixes(r.ID); derr != nil {
		return fmt.Errorf("delete fixes of failed run %s: %w", r.ID, derr)
	}
	fp.finish(r, state.RunFailed, what+": "+err.Error())
	r.Applied = true
	if perr := fp.store.PutRun(r); perr != nil {
		return fmt.Errorf("record failed run %s: %w", r.ID, perr)
	}
	return &RunFailedError{RunID: r.ID, Err: err}
}

func (fp *FullPass) finish(r *state.Run, status, reason string) {
	t := fp.now()
	r.FinishedAt = &t
	r.Status, r.Reason = status, reason
	fp.metrics.runs.WithLabelValues(status).Inc()
}

// supersede rejects held runs older than id: a newer decision replaces
// them.
func (fp *FullPass) supersede(id string) error {
	var old []state.Run
	if err := fp.store.Runs(func(r *state.Run) bool {
		if r.Status == state.RunHeld && r.ID < id {
			old = append(old, *r)
		}
		return true
	}); err != nil {
		return err
	}
	for i := range old {
		if err := fp.discard(&old[i], "superseded by "+id); err != nil {
			return err
		}
	}
	return fp.countHeld()
}

func (fp *FullPass) countHeld() error {
	n := 0
	err := fp.store.Runs(func(r *state.Run) bool {
		if r.Status == state.RunHeld {
			n++
		}
		return true
	})
	fp.metrics.held.Set(float64(n))
	return err
}

// heldIDs lists the held runs (their files are kept).
func (fp *FullPass) heldIDs() ([]string, error) {
	var ids []string
	err := fp.store.Runs(func(r *state.Run) bool {
		if r.Status == state.RunHeld {
			ids = append(ids, r.ID)
		}
		return true
	})
	return ids, err
}

// publish switches the files to r, records it published and applies its
// fixes.
func (fp *FullPass) publish(ctx context.Context, r *state.Run) error {
	fp.mu.Lock()
	keep, err := fp.heldIDs()
	reason := ""
	switch {
	case err != nil:
	case !r.Whole():
		fp.files.Discard(r.ID)
		reason = fmt.Sprintf("covered offers partitions %v of %d: no feed file published (a file must hold every partition's members)", r.Partitions, r.PartitionsTotal)
	default:
		keep = slices.DeleteFunc(keep, func(s string) bool { return s < r.ID })
		if perr := fp.files.Publish(r.ID, keep); perr != nil {
			fp.mu.Unlock()
			return fp.fail(r, "publish failed", perr)
		}
	}
	if err == nil {
		fp.finish(r, state.RunPublished, reason)
		err = fp.store.PutRun(r)
	}
	if err == nil && r.Whole() {
		rr := *r
		fp.published = &rr
	}
	fp.mu.Unlock()
	if err != nil {
		return err
	}
	fp.logger.Info("full pass published", zap.String("run", r.ID), zap.Int64("listed", r.Listed))
	if err := fp.supersede(r.ID); err != nil {
		return err
	}
	return fp.applyRun(ctx, r.ID)
}

// fixChunk bounds one ApplyFixes batch.
const fixChunk = 256

// applyRun applies a published run's listed offers in chunks through the
// applier, then marks it applied and deletes the list.
func (fp *FullPass) applyRun(ctx context.Context, id string) error {
	r, err := fp.store.GetRun(id)
	if err != nil {
		return err
	}
	chunk := make([]state.Fix, 0, fixChunk)
	first, lastP, lastID := true, int32(0), ""
	for {
		chunk = chunk[:0]
		if _, err := fp.store.ScanFixes(id, first, lastP, lastID, fixChunk, func(f state.Fix) error {
			chunk = append(chunk, f)
			return nil
		}); err != nil {
			return err
		}
		if len(chunk) == 0 {
			break
		}
		first, lastP, lastID = false, chunk[len(chunk)-1].Partition, chunk[len(chunk)-1].OfferID
		res, err := fp.stream.ApplyFixes(ctx, chunk, fp.cfg.RefreshAfter)
		if err != nil {
			return fmt.Errorf("apply fixes of %s: %w", id, err)
		}
		r.Corrections += res.Corrections
		r.Refreshes += res.Refreshes
		fp.metrics.corrections.Add(float64(res.Corrections))
		fp.metrics.refreshes.Add(float64(res.Refreshes))
	}
	if err := fp.store.DeleteFixes(id); err != nil {
		return err
	}
	r.Applied = true
	if err := fp.store.PutRun(&r); err != nil {
		return err
	}
	fp.mu.Lock()
	if fp.published != nil && fp.published.ID == id {
		fp.published = &r
	}
	fp.mu.Unlock()
	if r.Corrections > 0 || r.Refreshes > 0 {
		fp.logger.Info("full pass corrections applied", zap.String("run", id),
			zap.Int64("corrections", r.Corrections), zap.Int64("refreshes", r.Refreshes))
	}
	return nil
}

// Approve publishes held run id and queues its corrections and refreshes
// (re-checked against the current state when applied by Run).
// ErrRunNotHeld when it is not held, state.ErrRunNotFound when unknown.
func (fp *FullPass) Approve(id string) (state.Run, error) {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	r, err := fp.heldRun(id, "approve")
	if err != nil {
		return r, err
	}
	if err := fp.files.Publish(id, nil); err != nil {
		return r, err
	}
	reason := "approved; held because: " + r.Reason
	fp.finish(&r, state.RunPublished, reason)
	if err := fp.store.PutRun(&r); err != nil {
		return r, err
	}
	rr := r
	fp.published = &rr
	fp.queue = append(fp.queue, passJob{run: id, apply: true})
	fp.signal()
	fp.metrics.held.Dec()
	fp.logger.Info("held run approved", zap.String("run", id))
	return r, nil
}

// heldRun reads run id and checks that it is held; verb names the
// decision in the error.
func (fp *FullPass) heldRun(id, verb string) (state.Run, error) {
	r, err := fp.store.GetRun(id)
	if err != nil {
		return state.Run{}, err
	}
	if r.Status != state.RunHeld {
		return r, fmt.Errorf("%s %s (%s): %w", verb, id, r.Status, ErrRunNotHeld)
	}
	return r, nil
}

// Reject discards held run id: its files and list are removed, nothing is
// emitted. Errors as Approve.
func (fp *FullPass) Reject(id string) (state.Run, error) {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	r, err := fp.heldRun(id, "reject")
	if err != nil {
		return r, err
	}
	if err := fp.discard(&r, "rejected; held because: "+r.Reason); err != nil {
		return r, err
	}
	fp.metrics.held.Dec()
	fp.logger.Info("held run rejected", zap.String("run", id))
	return r, nil
}

func (fp *FullPass) discard(r *state.Run, reason string) error {
	fp.files.Discard(r.ID)
	if err := fp.store.DeleteFixes(r.ID); err != nil {
		return err
	}
	fp.finish(r, state.RunRejected, reason)
	r.Applied = true
	return fp.store.PutRun(r)
}

// compareWith fills Previous and Change of each feed from the last
// published run.
func compareWith(fs []state.RunFeed, prev *state.Run) {
	if prev == nil {
		return
	}
	for i := range fs {
		for _, pf := range prev.Feeds {
			if pf.ID != fs[i].ID {
				continue
			}
			p := pf.Members
			fs[i].Previous = &p
			if p > 0 {
				c := float64(fs[i].Members-p) / float64(p)
				fs[i].Change = &c
			}
			break
		}
	}
}

// guardReason returns why the guard holds a run with these feed sizes, or
// "" to publish it. A feed is checked when it was in the last published
// run and either size is at least min_size.
func guardReason(g config.Guard, fs []state.RunFeed) string {
	var reasons []string
	for _, f := range fs {
		if f.Previous == nil {
			continue
		}
		prev, cur := *f.Previous, f.Members
		if max(prev, cur) < int64(g.MinSize) {
			continue
		}
		change := math.Inf(1)
		if prev > 0 {
			change = float64(cur-prev) / float64(prev)
		}
		switch {
		case change < -g.MaxDrop:
			reasons = append(reasons, "feed "+f.ID+" dropped from "+strconv.FormatInt(prev, 10)+" to "+
				strconv.FormatInt(cur, 10)+" ("+pct(change)+", max_drop "+pct(g.MaxDrop)+")")
		case change > g.MaxGrowth:
			reasons = append(reasons, "feed "+f.ID+" grew from "+strconv.FormatInt(prev, 10)+" to "+
				strconv.FormatInt(cur, 10)+" ("+pct(change)+", max_growth "+pct(g.MaxGrowth)+")")
		}
	}
	return strings.Join(reasons, "; ")
}

func pct(f float64) string {
	if math.IsInf(f, 0) {
		return "+inf%"
	}
	s := strconv.FormatFloat(f*100, 'f', 1, 64) + "%"
	if f > 0 {
		s = "+" + s
	}
	return s
}

// joinCacheMax bounds the records per joined table a pass caches, so
// memory does not grow with the number of sellers.
const joinCacheMax = 1 << 16

// scan reads the snapshot, writes the run's documents and fix list and
// fills r's feed sizes, Scanned and Listed.
func (fp *FullPass) scan(ctx context.Context, r *state.Run, now time.Time) error {
	snap := fp.store.NewSnapshot()
	defer snap.Close()
	w, err := fp.files.NewWriter(r.ID, now)
	if err != nil {
		return &outputError{err}
	}
	defer w.Close()
	fixes := fp.store.NewFixWriter(r.ID)
	defer fixes.Close()
	ev := fp.set.NewEvaluator()
	evalSrc := processor.NewEvalErrorSource(ev, fp.set) // reported per partition and at the end
	list := fp.set.Feeds()
	tmpls := fp.set.Templates()
	member := make([]bool, len(list))
	sizes := make([]int64, len(list))
	items := make([][]byte, len(tmpls))
	fps := make([]uint64, len(tmpls))
	done := make([]bool, len(tmpls))
	joiner := processor.NewJoiner(fp.serde, joinCacheMax)
	cycle := fp.cfg.RefreshAfter.Milliseconds()
	nowMs := now.UnixMilli()
	var scanned int64
	lastP := int32(-1)
	var view feeds.View
	// The pass covers the partitions this instance owns: the state of
	// others is stale here (their owner corrects and refreshes them).
	owned, total := fp.stream.Coverage()
	r.Partitions, r.PartitionsTotal = owned, total
	whole := r.Whole()
	err = snap.Scan(ctx, fp.intern, func(it *state.ScanItem) error {
		if _, ok := slices.BinarySearch(owned, it.Partition); !ok {
			return nil
		}
		if it.Partition != lastP {
			fp.stream.ReportEvalErrors(ctx, evalSrc)
			if lastP >= 0 && fp.onPartition != nil {
				fp.onPartition(ctx, lastP)
				if ctx.Err() != nil {
					return ctx.Err()
				}
			}
			lastP = it.Partition
		}
		scanned++
		if scanned&4095 == 0 {
			fp.metrics.scanned.Add(4096)
		}
		if it.Offer != nil && fp.budget.Fits(it.Offer) {
			if err := joiner.Join(snap, it.Offer, &view); err != nil {
				return err
			}
			ev.Match(&view, now, member)
		} else {
			clear(member)
		}
		clear(done)
		mem := it.Membership
		nMem := 0
		if mem != nil {
			nMem = len(mem.Feeds)
		}
		drift, matched := false, 0
		for i, f := range list {
			if !member[i] {
				continue
			}
			sizes[i]++
			t := f.Template
			if !done[t.Index] {
				items[t.Index] = ev.AppendItem(items[t.Index][:0], t, &view, now)
				fps[t.Index] = xxhash.Sum64(items[t.Index])
				done[t.Index] = true
			}
			if f.File && whole {
				if err := w.Item(i, it.Partition, items[t.Index]); err != nil {
					return &outputError{err}
				}
			}
			if drift {
				continue
			}
			j := -1
			if mem != nil {
				j = mem.Find(f.ID)
			}
			if j < 0 {
				drift = true
				continue
			}
			matched++
			if e := &mem.Feeds[j]; e.Fingerprint != fps[t.Index] || !slices.Equal(e.Destinations, f.Destinations) {
				drift = true
			}
		}
		var flags byte
		if drift || matched != nMem {
			flags |= state.FixReconcile
		}
		if mem != nil && it.Offer != nil && cycle > 0 {
			phase := processor.RefreshPhaseMs(it.OfferID, cycle)
			for k := range mem.Feeds {
				if e := &mem.Feeds[k]; len(e.Destinations) > 0 && processor.RefreshDue(phase, e.SentAtMs, nowMs, cycle) {
					flags |= state.FixRefresh
					break
				}
			}
		}
		if flags != 0 {
			return fixes.Add(it.Partition, it.OfferID, flags)
		}
		return nil
	})
	fp.metrics.scanned.Add(float64(scanned & 4095))
	fp.stream.ReportEvalErrors(ctx, evalSrc)
	if err != nil {
		return err
	}
	if lastP >= 0 && fp.onPartition != nil {
		fp.onPartition(ctx, lastP)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if err := w.Finish(); err != nil {
		return &outputError{err}
	}
	if err := fixes.Flush(); err != nil {
		return err
	}
	r.Scanned, r.Listed = scanned, int64(fixes.Len())
	r.Feeds = r.Feeds[:0]
	for i, f := range list {
		r.Feeds = append(r.Feeds, state.RunFeed{ID: f.ID, Members: sizes[i], File: f.File && whole})
	}
	return nil
}
