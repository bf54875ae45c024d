package fullpass

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/processor"
	"github.com/feedmill/feedmill/processor/feedstore"
	"github.com/feedmill/feedmill/processor/runlog"
	"github.com/feedmill/feedmill/state"
)

// FullPass is one instance's share of the group's full passes (seed 001's
// Generator, spread over instances). The runs are decided by the run log
// (processor/runlog), which every instance folds the same way:
//
//  1. a start command (POST /api/runs on any instance, or the interval on
//     the coordinator, which also starts one at once while a file feed of
//     the set was never published: firstpass.go) opens a run with the
//     evaluation time, the feeds and the guard's limits;
//  2. every instance scans the offers partitions it owns that have no
//     stored parts yet, each from its own Pebble snapshot, in parallel on
//     the workers: file feeds' items go to part files on the blob store
//     (feedstore.PartWriter), the offers whose stored membership differs
//     from the evaluation (drift) or that are due for a refresh are listed
//     in local Pebble under the run; then it appends a part command with
//     the partition's feed sizes. The first part of a partition wins, so a
//     partition that moves mid-run is neither lost (its new owner scans
//     it) nor doubled;
//  3. the part completing the run decides, in the fold: the guard compares
//     the summed sizes with the last published run and holds the run, or
//     it is published. The coordinator (the owner of offers partition 0)
//     switches the feed files to it and removes old runs' files; a run
//     whose parts do not all arrive within full_pass.timeout fails and
//     names the partitions it waited for;
//  4. once published, each instance applies its own listed offers through
//     the streaming path's applier (corrections are RECONCILE events,
//     refreshes REFRESH events), for the partitions it still owns.
//
// Methods are safe for concurrent use; Run owns the loop.
type FullPass struct {
	cfg      config.FullPass
	store    *state.Store
	files    *feedstore.Store
	log      *runlog.Log
	stream   Stream
	instance string
	workers  int
	now      func() time.Time
	logger   *zap.Logger
	metrics  *fullPassMetrics
	serde    *records.Serde
	// maxEventBytes is the size rule's bound (processor.max_event_bytes).
	maxEventBytes int
	// view is the feed set in force and what derives from it (SetFeeds
	// replaces it; a scan keeps the one it started with).
	view atomic.Pointer[feedView]
	// onPartition is the test hook of Deps.
	onPartition func(ctx context.Context, p int32)
	ready       func() bool

	mu         sync.Mutex
	scanning   map[int32]bool // partitions of scanRun being scanned here
	active     int            // scans reading state (at most workers)
	scanCtx    context.Context
	scanCancel context.CancelFunc // ends scanRun's scans
	retryAt    time.Time          // no scans or settling before (the run log refused an append)
	appendLog  time.Time          // last logged refused append
	publishAt  time.Time          // the next switch attempt after a failed one
	publishTry int                // failed switch attempts in a row
	scanRun    string
	done       chan struct{} // a scan ended
	// switched is the run the coordinator last switched the files to
	// (guarded by mu).
	switched string
	observed map[string]string // run → status the metrics have seen
	failLog  time.Time         // last logged publication failure
	// coordSince is when this instance first coordinated (the interval
	// counts from it before any run).
	coordSince time.Time
	gcKey      string    // the runs kept by the last removal of old files
	firstLog   time.Time // last logged failure to start a first pass

	// The publication metric's last look (observeFeeds, on Run's
	// goroutine): the log's change channel then, when, and the feeds
	// it exported.
	feedsSeen     <-chan struct{}
	feedsAt       time.Time
	feedsExported map[string]bool
}

// Deps are what a FullPass needs.
type Deps struct {
	Config config.FullPass
	Store  *state.Store
	Feeds  *feeds.Set
	Files  *feedstore.Store
	// Log is the group's run log.
	Log *runlog.Log
	// Instance names this instance in the run log (the group instance id).
	Instance string
	// FeedSet fingerprints the feed and template definitions
	// (FeedSetFingerprint): instances scanning one run must agree.
	FeedSet string
	// Workers is how many partitions are scanned at once (default 1).
	Workers int
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
	// Ready, when set, gates the work: nothing is scanned or applied
	// until it reports true (the pipeline has loaded its tables and
	// restored its partitions).
	Ready func() bool
	// OnPartition, when set, is called after the pass has scanned each
	// partition, before its part is recorded (tests use it to interrupt a
	// pass midway).
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

// Errors of Approve and Reject.
var (
	ErrRunNotHeld  = runlog.ErrRunNotHeld
	ErrRunNotFound = runlog.ErrRunNotFound
)

type fullPassMetrics struct {
	duration    prometheus.Histogram
	partition   prometheus.Histogram
	scanned     prometheus.Counter
	feedSize    *prometheus.GaugeVec
	corrections prometheus.Counter
	refreshes   prometheus.Counter
	held        prometheus.Gauge
	runs        *prometheus.CounterVec
	pending     prometheus.Gauge
	// lastPublished is per file feed of the set (observeFeeds).
	lastPublished *prometheus.GaugeVec
}

func newFullPassMetrics(reg prometheus.Registerer) *fullPassMetrics {
	m := &fullPassMetrics{
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "feedmill_full_pass_duration_seconds", Help: "Duration of full passes, start to decision (every instance observes each run once).",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 16),
		}),
		partition: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "feedmill_full_pass_partition_seconds", Help: "Time this instance took to scan one offers partition and store its parts.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 16),
		}),
		scanned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "feedmill_full_pass_offers_scanned_total", Help: "Offer keys read by this instance's full-pass scans.",
		}),
		feedSize: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "feedmill_feed_size", Help: "Members per feed in the last finished full pass (all partitions).",
		}, []string{"feed"}),
		corrections: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "feedmill_full_pass_corrections_total", Help: "RECONCILE events emitted by this instance for full passes.",
		}),
		refreshes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "feedmill_full_pass_refreshes_total", Help: "REFRESH events emitted by this instance for full passes.",
		}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "feedmill_runs_held", Help: "Full-pass runs held by the anomaly guard, waiting for approve or reject.",
		}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "feedmill_full_pass_runs_total", Help: "Finished full-pass runs per outcome status.",
		}, []string{"status"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "feedmill_feed_publish_pending", Help: "1 while this instance is the coordinator and could not yet switch the feed files to the last published run (the store is failing).",
		}),
	}
	m.lastPublished = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "feedmill_feed_last_published_timestamp_seconds",
		Help: "Unix time the last published full-pass run that included this file feed was published (its completing part, or its approval); 0 while no published run has. " +
			"Every instance, from the run log, for every file feed of its feed set.",
	}, []string{"feed"})
	reg.MustRegister(m.duration, m.partition, m.scanned, m.feedSize, m.corrections, m.refreshes, m.held, m.runs, m.pending, m.lastPublished)
	return m
}

// New builds the full pass; nothing runs before Run.
func New(d Deps) (*FullPass, error) {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Workers <= 0 {
		d.Workers = 1
	}
	fp := &FullPass{
		serde: d.Serde, log: d.Log, instance: d.Instance, workers: d.Workers, maxEventBytes: d.MaxEventBytes,
		cfg: d.Config, store: d.Store, files: d.Files, stream: d.Stream, now: d.Now,
		logger: d.Logger.Named("fullpass"), metrics: newFullPassMetrics(d.Registry), onPartition: d.OnPartition, ready: d.Ready,
		done: make(chan struct{}, 1), observed: map[string]string{},
	}
	v, err := fp.newView(d.Feeds, d.FeedSet)
	if err != nil {
		return nil, err
	}
	fp.view.Store(v)
	return fp, nil
}

// feedView is a feed set and what the full pass derives from it.
type feedView struct {
	set         *feeds.Set
	defs        []runlog.FeedDef
	fingerprint string // FeedSetFingerprint of its definitions
	// intern shares the set's strings with decoded memberships, so
	// comparing them with the feeds' ids and destinations is cheap.
	intern state.Interner
	budget processor.EventBudget
}

func (fp *FullPass) newView(set *feeds.Set, fingerprint string) (*feedView, error) {
	v := &feedView{set: set, fingerprint: fingerprint}
	var names []string
	for _, f := range set.Feeds() {
		names = append(append(names, f.ID), f.Destinations...)
		v.defs = append(v.defs, runlog.FeedDef{ID: f.ID, File: f.File})
	}
	v.intern = state.NewNames(names...).Intern
	var err error
	if v.budget, err = processor.NewEventBudget(fp.maxEventBytes, set); err != nil {
		return nil, err
	}
	return v, nil
}

// SetFeeds puts a feed set in force (live feed changes): runs started
// from now on carry it. A run started with the previous set fails on
// this instance (its definitions are not the run's).
func (fp *FullPass) SetFeeds(set *feeds.Set, defs []config.Feed, templates []config.Template) {
	v, err := fp.newView(set, FeedSetFingerprint(defs, templates))
	if err != nil {
		fp.logger.Error("feed set not taken by the full pass", zap.Error(err))
		return
	}
	fp.view.Store(v)
	fp.wake() // a file feed added may need its first pass
}

// Runs returns up to limit runs, newest first.
func (fp *FullPass) Runs(limit int) []runlog.Run {
	var out []runlog.Run
	fp.log.View(func(f *runlog.Fold) {
		out = f.Runs()
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

// GetRun returns run id, or ErrRunNotFound.
func (fp *FullPass) GetRun(id string) (runlog.Run, error) {
	var r runlog.Run
	var ok bool
	fp.log.View(func(f *runlog.Fold) { r, ok = f.Get(id) })
	if !ok {
		return r, fmt.Errorf("run %q: %w", id, ErrRunNotFound)
	}
	return r, nil
}

// LastRun returns the id of the last published run ("" before any).
func (fp *FullPass) LastRun(string) string {
	var id string
	fp.log.View(func(f *runlog.Fold) {
		if r, ok := f.Published(); ok {
			id = r.ID
		}
	})
	return id
}

// Start starts a pass and returns its id, or the id of the pass already
// running (started false).
func (fp *FullPass) Start(ctx context.Context) (id string, started bool, err error) {
	_, total := fp.stream.Coverage()
	if total <= 0 {
		return "", false, errors.New("the offers topic's partitions are not known yet: the processor is starting; retry")
	}
	g := fp.cfg.Guard
	out, err := fp.log.Append(ctx, runlog.Command{
		Op: runlog.OpStart, By: fp.instance, At: fp.now(), Partitions: total,
		Feeds: fp.view.Load().defs, FeedSet: fp.view.Load().fingerprint,
		Guard: &runlog.Guard{MaxDrop: g.MaxDrop, MaxGrowth: g.MaxGrowth, MinSize: g.MinSize},
	})
	if err != nil {
		return "", false, err
	}
	if out.Run == "" {
		return "", false, errors.New("the run log refused the start")
	}
	if out.Accepted {
		fp.logger.Info("full pass started", zap.String("run", out.Run))
		fp.wake()
	}
	return out.Run, out.Accepted, nil
}

// Approve publishes held run id; its corrections and refreshes are
// applied by each instance. ErrRunNotHeld when it is not held,
// ErrRunNotFound when unknown.
func (fp *FullPass) Approve(ctx context.Context, id string) (runlog.Run, error) {
	return fp.decide(ctx, runlog.OpApprove, id)
}

// Reject discards held run id: nothing is published or emitted. Errors
// as Approve.
func (fp *FullPass) Reject(ctx context.Context, id string) (runlog.Run, error) {
	return fp.decide(ctx, runlog.OpReject, id)
}

func (fp *FullPass) decide(ctx context.Context, op, id string) (runlog.Run, error) {
	out, err := fp.log.Append(ctx, runlog.Command{Op: op, Run: id, By: fp.instance, At: fp.now()})
	if err != nil {
		return runlog.Run{}, err
	}
	if out.Err != nil {
		r, _ := fp.GetRun(id)
		return r, out.Err
	}
	fp.logger.Info("held run decided", zap.String("run", id), zap.String("decision", op))
	fp.wake()
	return fp.GetRun(id)
}

func (fp *FullPass) wake() {
	select {
	case fp.done <- struct{}{}:
	default:
	}
}

// Run does this instance's share of the runs until ctx ends: scans,
// local corrections and, on the coordinator, the interval, the timeout
// and the feed files' switch. It returns nil when ctx ends; a state store
// failure stops it with the error.
func (fp *FullPass) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel: the scans end with ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer fp.stopScans()
	errc := make(chan error, 1)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if fp.log.CaughtUp() {
			fp.observeFeeds()
		}
		if fp.readyNow() {
			if err := fp.step(ctx, &wg, errc); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			if ctx.Err() != nil {
				return nil
			}
			return err
		case <-fp.log.Changed():
		case <-fp.done:
		case <-tick.C:
		}
	}
}

func (fp *FullPass) readyNow() bool {
	return fp.log.CaughtUp() && (fp.ready == nil || fp.ready())
}

// step looks at the fold once and does what is due.
func (fp *FullPass) step(ctx context.Context, wg *sync.WaitGroup, errc chan<- error) error {
	var runs []runlog.Run
	var running, published runlog.Run
	var isRunning, isPublished bool
	var lastStart time.Time
	var files map[string]time.Time
	fp.log.View(func(f *runlog.Fold) {
		runs = f.Runs()
		running, isRunning = f.Running()
		published, isPublished = f.Published()
		lastStart = f.LastStart()
		files = f.FilesPublished()
	})
	fp.observe(runs)
	owned, _ := fp.stream.Coverage()
	if _, ok := slices.BinarySearch(owned, 0); ok {
		if err := fp.coordinate(ctx, runs, running, isRunning, published, isPublished, lastStart, files); err != nil {
			return err
		}
	}
	if isRunning {
		fp.startScans(ctx, running, owned, wg, errc)
	} else {
		fp.stopScans()
	}
	fp.mu.Lock()
	wait := time.Now().Before(fp.retryAt)
	fp.mu.Unlock()
	if wait {
		return nil
	}
	return fp.settleLocal(ctx, runs)
}

// observe updates the metrics for runs that changed status.
func (fp *FullPass) observe(runs []runlog.Run) {
	held := 0
	for i := range runs {
		r := &runs[i]
		if r.Status == runlog.StatusHeld {
			held++
		}
		if fp.observed[r.ID] == r.Status {
			continue
		}
		first := fp.observed[r.ID] == "" || fp.observed[r.ID] == runlog.StatusRunning
		fp.observed[r.ID] = r.Status
		if r.Status == runlog.StatusRunning {
			continue
		}
		fp.metrics.runs.WithLabelValues(r.Status).Inc()
		if first && r.FinishedAt != nil && (r.Status == runlog.StatusHeld || r.Status == runlog.StatusPublished) {
			fp.metrics.duration.Observe(r.FinishedAt.Sub(r.StartedAt).Seconds())
			for _, f := range r.Feeds {
				fp.metrics.feedSize.WithLabelValues(f.ID).Set(float64(f.Members))
			}
		}
		switch r.Status {
		case runlog.StatusHeld:
			fp.logger.Warn("full pass held by the guard", zap.String("run", r.ID), zap.String("reason", r.Reason))
		case runlog.StatusFailed:
			fp.logger.Error("full pass failed; the previous feeds stay served", zap.String("run", r.ID), zap.String("reason", r.Reason))
		case runlog.StatusPublished:
			fp.logger.Info("full pass published", zap.String("run", r.ID), zap.Int64("scanned", r.Scanned), zap.Int64("listed", r.Listed))
		}
	}
	fp.metrics.held.Set(float64(held))
}

// RunOnce starts a pass (or joins the running one) and runs this
// instance's share until the pass is decided and, when published, this
// instance's corrections are applied and the files switched (it must own
// offers partition 0). For tests and tools with one
// instance that do not call Run.
func (fp *FullPass) RunOnce(ctx context.Context) (runlog.Run, error) {
	id, _, err := fp.Start(ctx)
	if err != nil {
		return runlog.Run{}, err
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- fp.Run(rctx) }()
	for {
		ch := fp.log.Changed()
		r, err := fp.GetRun(id)
		if err != nil {
			return r, err
		}
		if r.Final() || r.Status == runlog.StatusHeld {
			local, lerr := fp.store.GetRun(id)
			settled := (lerr == nil && local.Applied) || errors.Is(lerr, state.ErrRunNotFound)
			if r.Status != runlog.StatusPublished || (settled && fp.switchedTo() == id) {
				cancel()
				if err := <-errc; err != nil {
					return r, err
				}
				return fp.GetRun(id)
			}
		}
		select {
		case <-ch:
		case err := <-errc:
			if err == nil {
				err = ctx.Err()
			}
			return r, err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// FeedSetFingerprint hashes the feed and template definitions: instances
// scanning one run must have the same.
func FeedSetFingerprint(fs []config.Feed, ts []config.Template) string {
	b, err := json.Marshal(struct {
		F []config.Feed
		T []config.Template
	}{fs, ts})
	if err != nil {
		return "unhashable: " + err.Error() // config types always marshal
	}
	return strconv.FormatUint(xxhash.Sum64(b), 16)
}
