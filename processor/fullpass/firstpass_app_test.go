package fullpass_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/internal/apptest"
	"github.com/feedmill/feedmill/internal/synth"
	"github.com/feedmill/feedmill/internal/testenv"
	"github.com/feedmill/feedmill/processor/fullpass"
	"github.com/feedmill/feedmill/processor/runlog"
)

const lastPublishedMetric = "feedmill_feed_last_published_timestamp_seconds"

// frozenClock stands still until advanced.
type frozenClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *frozenClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *frozenClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// gaugeValues returns the series of gauge name by their feed label.
func gaugeValues(t testing.TB, reg prometheus.Gatherer, name string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "feed" {
					out[l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
	}
	return out
}

// waitFor polls cond until it holds; what names it in the failure.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func unixSeconds(at time.Time) float64 { return float64(at.UnixMilli()) / 1e3 }

// fileFeedIDs returns the ids of fs's file feeds and of the others.
func fileFeedIDs(fs []config.Feed) (file, other []string) {
	for _, f := range fs {
		if f.File {
			file = append(file, f.ID)
		} else {
			other = append(other, f.ID)
		}
	}
	return file, other
}

// TestFirstPassAtOnceRetried: the coordinator of a fresh state starts a
// run by itself (full_pass.interval is an hour); when that run fails, the
// next try waits a minute of the pass's clock; once a run is published
// and switched, none follows.
func TestFirstPassAtOnceRetried(t *testing.T) {
	clk := &frozenClock{t: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)}
	var calls atomic.Int32
	reg := prometheus.NewRegistry()
	fp, log, _, files := lifeSetup(t, false, []int32{0}, 1, 1, func(ctx context.Context, p int32) {
		if calls.Add(1) == 1 {
			<-ctx.Done() // the first run's scan ends when the run fails
		}
	}, func(d *fullpass.Deps) {
		d.Config.Interval = time.Hour
		d.Now, d.Registry = clk.Now, reg
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- fp.Run(ctx) }()

	waitFor(t, "the first pass's scan", func() bool { return calls.Load() >= 1 })
	runs := fp.Runs(10)
	if len(runs) != 1 || runs[0].Status != runlog.StatusRunning || runs[0].StartedBy != "a" {
		t.Fatalf("runs %+v, want one run started by the coordinator", runs)
	}
	if _, err := log.Append(ctx, runlog.Command{Op: runlog.OpFail, Run: runs[0].ID, At: clk.Now(), Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	// The clock stands still: no retry before it moves a minute.
	if n := len(fp.Runs(10)); n != 1 {
		t.Fatalf("%d runs right after the failure, want 1", n)
	}
	clk.Advance(time.Minute)
	waitFor(t, "the retried first pass to publish", func() bool {
		rs := fp.Runs(10)
		return len(rs) >= 2 && rs[0].Status == runlog.StatusPublished
	})
	second := fp.Runs(10)[0]
	fileIDs, otherIDs := fileFeedIDs(benchFeeds(3))
	waitFor(t, "the files switched to "+second.ID, func() bool {
		id, err := files.PublishedRun(ctx, fileIDs[0])
		return err == nil && id == second.ID
	})
	// The step that switched the files saw the published run: no first
	// pass is due any more.
	if runs := fp.Runs(10); len(runs) != 2 {
		t.Errorf("%d runs after the publication, want 2: %+v", len(runs), runs)
	}
	want := unixSeconds(*second.FinishedAt)
	waitFor(t, "the publication metric", func() bool {
		return gaugeValues(t, reg, lastPublishedMetric)[fileIDs[0]] == want
	})
	got := gaugeValues(t, reg, lastPublishedMetric)
	for _, id := range fileIDs {
		if got[id] != want {
			t.Errorf("%s{feed=%q} = %v, want %v", lastPublishedMetric, id, got[id], want)
		}
	}
	for _, id := range otherIDs {
		if _, ok := got[id]; ok {
			t.Errorf("%s has a series for feed %q without a file", lastPublishedMetric, id)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestFeedPublishedMetricOnEveryInstance: an instance that owns no offers
// partition (not the coordinator, scanning nothing) exports 0 for each
// file feed before any publication, then the publication time of the
// run that included it, from the run log alone.
func TestFeedPublishedMetricOnEveryInstance(t *testing.T) {
	reg := prometheus.NewRegistry()
	fp, log, _, _ := lifeSetup(t, false, nil, 2, 1, nil, func(d *fullpass.Deps) {
		d.Config.Interval = time.Hour
		d.Registry = reg
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- fp.Run(ctx) }()
	fileIDs, otherIDs := fileFeedIDs(benchFeeds(3))
	waitFor(t, "the metric's series", func() bool { return len(gaugeValues(t, reg, lastPublishedMetric)) > 0 })
	got := gaugeValues(t, reg, lastPublishedMetric)
	if len(got) != len(fileIDs) {
		t.Fatalf("series %v, want one per file feed %v (not %v)", got, fileIDs, otherIDs)
	}
	for _, id := range fileIDs {
		if v, ok := got[id]; !ok || v != 0 {
			t.Errorf("before any publication %s{feed=%q} = %v (present %v), want 0", lastPublishedMetric, id, v, ok)
		}
	}

	id, _, err := fp.Start(ctx) // any instance may start a run
	if err != nil {
		t.Fatal(err)
	}
	r, _ := fp.GetRun(id)
	at := time.Date(2026, 12, 1, 9, 30, 0, 250e6, time.UTC)
	for p := range int32(2) { // the other instance's parts
		if _, err := log.Append(ctx, runlog.Command{Op: runlog.OpPart, Run: id, By: "b", At: at, Partition: p, Attempt: "b-att",
			FeedSet: r.FeedSet, Counts: make([]int64, len(r.Feeds))}); err != nil {
			t.Fatal(err)
		}
	}
	if r, _ := fp.GetRun(id); r.Status != runlog.StatusPublished {
		t.Fatalf("run %s: %s %s", id, r.Status, r.Reason)
	}
	waitFor(t, "the publication time", func() bool {
		got := gaugeValues(t, reg, lastPublishedMetric)
		for _, id := range fileIDs {
			if got[id] != unixSeconds(at) {
				return false
			}
		}
		return len(got) == len(fileIDs)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestFirstPassApp: a fresh app with full_pass.interval 1h starts its
// first pass by itself and serves the files, the metric says when they
// were published, and no second run follows. Restarted with one more
// file feed, it starts a pass for that feed at once.
func TestFirstPassApp(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	env := testenv.New(t, allTopics...)
	example, templates := synth.ExampleFeeds()
	cfg := apptest.Config(t, env, example, templates)
	cfg.FullPass.Interval = time.Hour
	cfg.FullPass.Guard.MinSize = 1 << 30
	apptest.ProduceCatalog(t, env, cfg.Kafka.Topics, 31, synth.Options{Offers: 600, Sellers: 10})
	clk := &testClock{}
	pe := startPass(t, t, env, cfg, clk, nil)

	// checkPublished waits for want runs, the newest published and its
	// files served, and checks the metric and that no other run started.
	checkPublished := func(want int) runlog.Run {
		t.Helper()
		var runs []runlog.Run
		waitFor(t, "the automatic run", func() bool {
			resp, body := pe.do("GET", "/api/runs", adminToken, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /api/runs: %d %s", resp.StatusCode, body)
			}
			runs = nil
			if err := json.Unmarshal(body, &runs); err != nil {
				t.Fatal(err)
			}
			return len(runs) >= want
		})
		r := pe.waitRun(runs[0].ID)
		if r.Status != runlog.StatusPublished || r.StartedBy == "" {
			t.Fatalf("run %+v, want published", r)
		}
		fileIDs, otherIDs := fileFeedIDs(cfg.Feeds)
		for _, id := range fileIDs {
			if !slices.ContainsFunc(r.Feeds, func(f runlog.Feed) bool { return f.ID == id && f.File }) {
				t.Errorf("run %s lacks file feed %s", r.ID, id)
			}
			waitFor(t, "feed "+id+" served", func() bool {
				resp, _ := pe.do("GET", "/feeds/"+id+".xml", "", nil)
				return resp.StatusCode == http.StatusOK
			})
		}
		if runs := pe.fp.Runs(100); len(runs) != want {
			t.Errorf("%d runs once the files are switched, want %d: %+v", len(runs), want, runs)
		}
		ts := unixSeconds(*r.FinishedAt)
		waitFor(t, "the publication metric", func() bool {
			return gaugeValues(t, pe.reg, lastPublishedMetric)[fileIDs[0]] == ts
		})
		got := gaugeValues(t, pe.reg, lastPublishedMetric)
		for _, id := range fileIDs {
			if got[id] != ts {
				t.Errorf("%s{feed=%q} = %v, want %v", lastPublishedMetric, id, got[id], ts)
			}
		}
		for _, id := range otherIDs {
			if _, ok := got[id]; ok {
				t.Errorf("a series for feed %q without a file", id)
			}
		}
		return r
	}
	first := checkPublished(1)

	pe.stopF()
	cfg.Feeds = append(slices.Clone(cfg.Feeds), config.Feed{ID: "added-file", Filter: `offer.status == "ACTIVE"`,
		Template: synth.TemplateCeneo, File: true})
	pe = startPass(t, t, env, cfg, clk, nil)
	second := checkPublished(2)
	if second.ID == first.ID {
		t.Fatalf("no new run for the added feed")
	}
}
