package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/internal/app"
	"github.com/feedmill/feedmill/internal/devstack"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/internal/synth"
	"github.com/feedmill/feedmill/processor/runlog"
	"github.com/feedmill/feedmill/state"
)

// Options configures a harness run.
type Options struct {
	Offers          int           // catalog size for the end-to-end phases (default 100000)
	Changes         int           // stream changes drained after the catalog (default 100000)
	MatchFeeds      []int         // feed counts of the matching phase (default 10, 100, 1300, 5000)
	DrainFeeds      []int         // feed counts of the drain phase; 0 = raw limit (default 0, 10, 1300)
	Workers         []int         // processor.workers of each drain with feeds (default GOMAXPROCS)
	Rate            float64       // input rate of the latency phase (default 1000/s)
	LatencyDuration time.Duration // length of the latency phase (default 20s)
	Dir             string        // scratch directory (default a temp dir, removed after)
	Logger          *zap.Logger
}

func (o *Options) defaults() {
	if o.Offers <= 0 {
		o.Offers = 100000
	}
	if o.Changes <= 0 {
		o.Changes = 100000
	}
	if len(o.MatchFeeds) == 0 {
		o.MatchFeeds = []int{10, 100, 1300, 5000}
	}
	if len(o.DrainFeeds) == 0 {
		o.DrainFeeds = []int{0, 10, 1300}
	}
	if len(o.Workers) == 0 {
		o.Workers = []int{runtime.GOMAXPROCS(0)}
	}
	if o.Rate <= 0 {
		o.Rate = 1000
	}
	if o.LatencyDuration <= 0 {
		o.LatencyDuration = 20 * time.Second
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
}

// Run executes every phase and writes the report to w.
func Run(ctx context.Context, o Options, w io.Writer) error {
	o.defaults()
	if o.Dir == "" {
		d, err := os.MkdirTemp("", "feedmill-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		o.Dir = d
	}
	fmt.Fprintf(w, "feedmill bench: %d CPUs, GOMAXPROCS %d, %s\n\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	if err := matchPhase(ctx, o, w); err != nil {
		return err
	}
	return drainPhases(ctx, o, w)
}

// matchPhase times Match per offer for the engine and plain evaluation.
func matchPhase(ctx context.Context, o Options, w io.Writer) error {
	gen, err := synth.New(1, synth.Options{Offers: 20000})
	if err != nil {
		return err
	}
	st := gen.State()
	views := make([]feeds.View, 0, len(st.Offers))
	for _, of := range st.Offers {
		oc := *of
		records.DerivePrice(&oc)
		v := feeds.View{Offer: &oc}
		if s, ok := st.Sellers[of.SellerID]; ok {
			v.Seller = s
		}
		if r, ok := st.Ratings[of.SellerID]; ok {
			v.Rating = r
		}
		views = append(views, v)
	}
	fmt.Fprintln(w, "## Per-change matching cost (one offer against every feed)")
	fmt.Fprintln(w, "| feeds | engine ns/change | engine allocs | plain ns/change | plain allocs | plain/engine |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	base := 0.0
	var results [][2]float64
	for _, n := range o.MatchFeeds {
		set, err := feeds.Compile(synth.FeedSet(n, 1), nil)
		if err != nil {
			return err
		}
		eng, engAllocs := timeMatch(ctx, set.NewEvaluator(), views, len(set.Feeds()))
		plain, plainAllocs := timeMatch(ctx, set.NewPlainEvaluator(), views, len(set.Feeds()))
		if base == 0 {
			base = eng
		}
		results = append(results, [2]float64{eng, plain})
		fmt.Fprintf(w, "| %d | %.0f | %.1f | %.0f | %.1f | %.0fx |\n", n, eng, engAllocs, plain, plainAllocs, plain/eng)
	}
	for i, n := range o.MatchFeeds {
		fmt.Fprintf(w, "engine cost at %d feeds = %.1fx the cost at %d feeds\n", n, results[i][0]/base, o.MatchFeeds[0])
	}
	fmt.Fprintln(w)
	return nil
}

// timeMatch returns ns and allocations per Match, running for about a
// second (at least 200 offers).
func timeMatch(ctx context.Context, e *feeds.Evaluator, views []feeds.View, n int) (float64, float64) {
	member := make([]bool, n)
	now := time.Now()
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	start := time.Now()
	count := 0
	for (count < 200 || time.Since(start) < time.Second) && count < 200000 && ctx.Err() == nil {
		e.Match(&views[count%len(views)], now, member)
		count++
	}
	el := time.Since(start)
	runtime.ReadMemStats(&ms1)
	return float64(el.Nanoseconds()) / float64(count), float64(ms1.Mallocs-ms0.Mallocs) / float64(count)
}

type drainResult struct {
	feeds     int
	workers   int
	records   int
	elapsed   time.Duration
	events    float64
	p50, p99  float64
	passRate  float64
	scanRate  float64
	passItems int64
}

// drainPhases runs, per feed count, a fresh broker and state: drain the
// catalog + stream, then (for the largest feed count) the latency phase
// and the full pass.
func drainPhases(ctx context.Context, o Options, w io.Writer) error {
	var res []drainResult
	for i, n := range o.DrainFeeds {
		workers := o.Workers
		if n == 0 { // the raw limit: all workers
			workers = []int{slices.Max(o.Workers)}
		}
		for k, wk := range workers {
			last := i == len(o.DrainFeeds)-1 && k == len(workers)-1
			r, err := drainOnce(ctx, o, n, wk, last)
			if err != nil {
				return fmt.Errorf("drain with %d feeds, %d workers: %w", n, wk, err)
			}
			res = append(res, r)
		}
	}
	fmt.Fprintf(w, "## End-to-end drain through kfake (%d offers + %d changes, plus sellers and ratings)\n", o.Offers, o.Changes)
	fmt.Fprintln(w, "| feeds | workers | input records | seconds | records/s | events produced | % of raw limit |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	raw := 0.0
	for _, r := range res {
		rps := float64(r.records) / r.elapsed.Seconds()
		if r.feeds == 0 {
			raw = rps
		}
		pct := "-"
		if raw > 0 && r.feeds > 0 {
			pct = fmt.Sprintf("%.0f%%", 100*rps/raw)
		}
		label := strconv.Itoa(r.feeds)
		if r.feeds == 0 {
			label = "0 (raw limit: consume + decode + Pebble RMW, no matching)"
		}
		fmt.Fprintf(w, "| %s | %d | %d | %.1f | %.0f | %.0f | %s |\n", label, r.workers, r.records, r.elapsed.Seconds(), rps, r.events, pct)
	}
	lastR := res[len(res)-1]
	fmt.Fprintf(w, "\n## Change→event latency at %.0f changes/s for %s with %d feeds\n", o.Rate, o.LatencyDuration, lastR.feeds)
	fmt.Fprintf(w, "p50 %.0f ms, p99 %.0f ms (input record timestamp → event acknowledged by Kafka; interpolated from the histogram)\n", lastR.p50*1000, lastR.p99*1000)
	fmt.Fprintf(w, "\n## Full pass over %d offers with %d feeds\n", o.Offers, lastR.feeds)
	fmt.Fprintf(w, "full pass %.0f offers/s (%d file items written); raw scan + decode %.0f offers/s; pass = %.0f%% of raw\n",
		lastR.passRate, lastR.passItems, lastR.scanRate, 100*lastR.passRate/lastR.scanRate)
	fmt.Fprintf(w, "\n## Peak RSS of this process (broker, generator and processor together): %s\n", peakRSS())
	return nil
}

func drainOnce(ctx context.Context, o Options, nFeeds, workers int, extended bool) (drainResult, error) {
	res := drainResult{feeds: nFeeds, workers: workers}
	dir := filepath.Join(o.Dir, fmt.Sprintf("drain-%d-w%d", nFeeds, workers))
	topics := config.Default().Kafka.Topics
	stack, err := devstack.Start(ctx, devstack.Options{Topics: []string{topics.Offers, topics.Sellers, topics.Ratings, topics.Events, topics.Rejects}, Logger: o.Logger})
	if err != nil {
		return res, err
	}
	defer stack.Close()
	cfg := config.Default()
	cfg.Kafka.Brokers = stack.Brokers()
	cfg.SchemaRegistry.URL = stack.RegistryURL()
	cfg.State.Dir = dir
	cfg.FullPass.Interval = 0
	cfg.Processor.Workers = workers
	cfg.Feeds = synth.FeedSet(max(nFeeds, 0), 1)
	srcl, err := sr.NewClient(sr.URLs(stack.RegistryURL()))
	if err != nil {
		return res, err
	}
	serde := records.NewSerde(srcl)

	// Input first, so the drain measures the processor alone.
	pcl, err := kgo.NewClient(kgo.SeedBrokers(stack.Brokers()...), kgo.MaxBufferedRecords(200000))
	if err != nil {
		return res, err
	}
	defer pcl.Close()
	prod, err := synth.NewProducer(ctx, pcl, serde, topics)
	if err != nil {
		return res, err
	}
	gen, err := synth.New(7, synth.Options{Offers: o.Offers})
	if err != nil {
		return res, err
	}
	if err := prod.Run(ctx, gen, synth.RunOptions{Initial: true, Count: o.Changes}); err != nil {
		return res, err
	}
	adm := kadm.NewClient(pcl)
	ends, err := adm.ListEndOffsets(ctx, topics.Offers, topics.Sellers, topics.Ratings)
	if err != nil {
		return res, err
	}
	ends.Each(func(l kadm.ListedOffset) { res.records += int(l.Offset) })

	cfg.HTTP.Listen = "127.0.0.1:0"
	a, err := app.New(&cfg, app.Deps{Logger: o.Logger})
	if err != nil {
		return res, err
	}
	store, reg := a.Store, a.Registry
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- a.Run(pctx) }()
	stop := func() error {
		cancel()
		return <-done
	}
	if err := waitDrained(ctx, adm, store, topics, done); err != nil {
		_ = stop()
		return res, err
	}
	res.elapsed = time.Since(start)
	res.events = counterValue(reg, "feedmill_events_produced_total")

	if extended {
		before := histogram(reg, "feedmill_change_to_event_seconds")
		lim := rate.NewLimiter(rate.Limit(o.Rate), max(1, int(o.Rate/100)))
		end := time.Now().Add(o.LatencyDuration)
		for time.Now().Before(end) && ctx.Err() == nil {
			if err := lim.Wait(ctx); err != nil {
				break
			}
			ch := gen.Next()
			// Stamp the input now: latency is measured from the record's
			// Kafka timestamp.
			if err := prod.Produce(ctx, ch); err != nil {
				_ = stop()
				return res, err
			}
		}
		if err := prod.Flush(ctx); err != nil {
			_ = stop()
			return res, err
		}
		if err := waitDrained(ctx, adm, store, topics, done); err != nil {
			_ = stop()
			return res, err
		}
		after := histogram(reg, "feedmill_change_to_event_seconds")
		res.p50, res.p99 = quantiles(before, after)

		// Full pass over the same state (run by the app), then the raw
		// scan + decode.
		t0 := time.Now()
		run, err := runPass(ctx, a, done)
		if err != nil {
			_ = stop()
			return res, err
		}
		passEl := time.Since(t0)
		offers := 0
		t1 := time.Now()
		snap := store.NewSnapshot()
		err = snap.Scan(ctx, nil, func(it *state.ScanItem) error {
			if it.Offer != nil {
				offers++
			}
			return nil
		})
		_ = snap.Close() // read-only snapshot
		if err != nil {
			_ = stop()
			return res, err
		}
		scanEl := time.Since(t1)
		res.passRate = float64(offers) / passEl.Seconds()
		res.scanRate = float64(offers) / scanEl.Seconds()
		for _, f := range run.Feeds {
			res.passItems += f.Members
		}
	}
	if err := stop(); err != nil && !errors.Is(err, context.Canceled) {
		return res, err
	}
	return res, nil
}

// runPass starts a full pass on a and waits until it has finished.
func runPass(ctx context.Context, a *app.App, done <-chan error) (runlog.Run, error) {
	id, _, err := a.Pass.Start(ctx)
	if err != nil {
		return runlog.Run{}, err
	}
	for {
		select {
		case err := <-done:
			return runlog.Run{}, fmt.Errorf("app stopped: %v", err)
		case <-ctx.Done():
			return runlog.Run{}, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
		r, err := a.Pass.GetRun(id)
		if err != nil {
			return r, err
		}
		if r.Status != runlog.StatusRunning {
			return r, nil
		}
	}
}

// waitDrained waits until every input record is applied, no seller job is
// pending and the outbox is empty.
func waitDrained(ctx context.Context, adm *kadm.Client, store *state.Store, topics config.Topics, done <-chan error) error {
	for {
		select {
		case err := <-done:
			return fmt.Errorf("pipeline stopped: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		ends, err := adm.ListEndOffsets(ctx, topics.Offers, topics.Sellers, topics.Ratings)
		if err != nil {
			return err
		}
		m := map[string]map[int32]int64{}
		ends.Each(func(l kadm.ListedOffset) {
			if m[l.Topic] == nil {
				m[l.Topic] = map[int32]int64{}
			}
			m[l.Topic][l.Partition] = l.Offset
		})
		caught, err := store.CaughtUp(m)
		if err != nil {
			return err
		}
		if caught {
			return nil
		}
	}
}

func counterValue(reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return math.NaN()
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			sum := 0.0
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	return 0
}

type hist struct {
	bounds []float64
	counts []uint64 // cumulative
	total  uint64
}

func histogram(reg *prometheus.Registry, name string) hist {
	mfs, err := reg.Gather()
	if err != nil {
		return hist{}
	}
	var h hist
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) == 0 {
			continue
		}
		var m *dto.Histogram = mf.GetMetric()[0].GetHistogram()
		for _, b := range m.GetBucket() {
			h.bounds = append(h.bounds, b.GetUpperBound())
			h.counts = append(h.counts, b.GetCumulativeCount())
		}
		h.total = m.GetSampleCount()
	}
	return h
}

// quantiles returns p50 and p99 of the observations between before and
// after, interpolating linearly inside a bucket.
func quantiles(before, after hist) (float64, float64) {
	if len(after.bounds) == 0 {
		return math.NaN(), math.NaN()
	}
	n := after.total - before.total
	if n == 0 {
		return math.NaN(), math.NaN()
	}
	q := func(p float64) float64 {
		target := p * float64(n)
		prevCount, prevBound := 0.0, 0.0
		for i, b := range after.bounds {
			c := float64(after.counts[i])
			if len(before.counts) == len(after.counts) {
				c -= float64(before.counts[i])
			}
			if c >= target {
				if c == prevCount {
					return b
				}
				return prevBound + (b-prevBound)*(target-prevCount)/(c-prevCount)
			}
			prevCount, prevBound = c, b
		}
		return math.Inf(1)
	}
	return q(0.5), q(0.99)
}

// peakRSS reads VmHWM from /proc/self/status.
func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:"))
		}
	}
	return "unknown"
}
