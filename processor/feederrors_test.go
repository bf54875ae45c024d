package processor_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/processor"
	"github.com/feedmill/feedmill/processor/feedstore"
	"github.com/feedmill/feedmill/processor/fullpass"
	"github.com/feedmill/feedmill/processor/runlog"
	"github.com/feedmill/feedmill/state"
)

var errorFeeds = []config.Feed{
	{ID: "big", Filter: `int(offer.attributes["size"]) > 40`, Template: "ceneo", Destinations: []string{"d"}},
	{ID: "px", Filter: `offer.stock > 0`, Template: "px", Destinations: []string{"d"}},
	{ID: "runaway", Filter: `any(offer.images, {any(offer.images, {# == "x"})})`, Template: "ceneo", Unbounded: true},
}

var errorTemplates = []config.Template{{ID: "px", Root: "r", Item: "i", Fields: []config.TemplateField{
	{Name: "id", Value: "offer.id"},
	{Name: "size", Value: `int(offer.attributes["size"]) * 2`},
}}}

// errorsEnv is an Applier over errorFeeds with its own registry and an
// observed logger.
type errorsEnv struct {
	*unit
	set  *feeds.Set
	reg  *prometheus.Registry
	logs *observer.ObservedLogs
}

func newErrorsEnv(t *testing.T) *errorsEnv {
	t.Helper()
	core, logs := observer.New(zapcore.WarnLevel)
	reg := prometheus.NewRegistry()
	u := newApplierEnv(t, errorFeeds, config.Processor{MaxBatchRecords: 100, SellerChunk: 2},
		envOptions{Templates: errorTemplates, Logger: zap.New(core), Registry: reg})
	set, err := feeds.Compile(errorFeeds, errorTemplates)
	if err != nil {
		t.Fatal(err)
	}
	return &errorsEnv{unit: u, set: set, reg: reg, logs: logs}
}

// counts returns feedmill_feed_errors_total as "feed/kind" → value.
func (e *errorsEnv) counts() map[string]float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "feedmill_feed_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var feed, kind string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "feed":
					feed = l.GetValue()
				case "kind":
					kind = l.GetValue()
				}
			}
			out[feed+"/"+kind] = m.GetCounter().GetValue()
		}
	}
	return out
}

func (e *errorsEnv) wantCounts(want map[string]float64) {
	e.t.Helper()
	got := e.counts()
	for _, f := range errorFeeds {
		for _, k := range []string{"filter", "template", "budget"} {
			key := f.ID + "/" + k
			v, ok := got[key]
			if !ok {
				e.t.Errorf("feedmill_feed_errors_total{feed=%q,kind=%q} missing", f.ID, k)
			} else if v != want[key] {
				e.t.Errorf("feedmill_feed_errors_total{feed=%q,kind=%q} = %v, want %v", f.ID, k, v, want[key])
			}
		}
	}
}

func sizedOffer(id, size string, images int) *records.Offer {
	o := offer(id, 1, 5000)
	o.Attributes = map[string]string{"size": size}
	o.Images = nil
	for i := range images {
		o.Images = append(o.Images, fmt.Sprintf("https://x/%d.jpg", i))
	}
	return o
}

func TestFeedErrorsMetric(t *testing.T) {
	e := newErrorsEnv(t)
	e.wantCounts(nil) // every feed and kind, at zero, from the start

	e.apply(e.offerRec(sizedOffer("o1", "44", 2)))
	e.wantCounts(nil)
	if n := e.logs.Len(); n != 0 {
		t.Fatalf("%d log lines for good offers", n)
	}

	// A non-numeric size fails the filter of big and the size value of
	// px's template; 200 images put the runaway filter over budget.
	e.apply(e.offerRec(sizedOffer("o2", "XL", 200)))
	e.wantCounts(map[string]float64{"big/filter": 1, "px/template": 1, "runaway/budget": 1})
}

func TestFeedErrorsLogRateLimit(t *testing.T) {
	e := newErrorsEnv(t)
	e.apply(e.offerRec(sizedOffer("o1", "XL", 1)))
	lines := e.logs.TakeAll()
	if len(lines) != 2 {
		t.Fatalf("%d log lines, want 2 (big, px): %v", len(lines), lines)
	}
	want := []map[string]any{
		{"feed": "big", "kind": "filter", "offer": "o1", "suppressed": uint64(0)},
		{"feed": "px", "kind": "template", "offer": "o1", "suppressed": uint64(0)},
	}
	for i, l := range lines {
		fields := l.ContextMap()
		for k, v := range want[i] {
			if fmt.Sprint(fields[k]) != fmt.Sprint(v) {
				t.Errorf("line %d: %s = %v, want %v (%v)", i, k, fields[k], v, fields)
			}
		}
		if l.Message != "feed evaluation failed" || l.Level != zapcore.WarnLevel || fields["error"] == nil {
			t.Errorf("line %d: %s %s %v", i, l.Level, l.Message, fields)
		}
	}

	// Within the minute: counted, not logged.
	e.now = e.now.Add(59 * time.Second)
	e.apply(e.offerRec(sizedOffer("o2", "XL", 1)))
	e.apply(e.offerRec(sizedOffer("o3", "XL", 1)), e.offerRec(sizedOffer("o4", "XL", 1)))
	if n := e.logs.Len(); n != 0 {
		t.Fatalf("%d log lines within the minute", n)
	}
	e.wantCounts(map[string]float64{"big/filter": 4, "px/template": 4})

	// A minute after the first line: one line per feed, with the last
	// failure and the count of those not logged.
	e.now = e.now.Add(time.Second)
	e.apply(e.offerRec(sizedOffer("o5", "XL", 1)))
	lines = e.logs.TakeAll()
	if len(lines) != 2 {
		t.Fatalf("%d log lines, want 2", len(lines))
	}
	for _, l := range lines {
		f := l.ContextMap()
		if f["offer"] != "o5" || f["suppressed"] != uint64(3) {
			t.Errorf("line %v, want offer o5, suppressed 3", f)
		}
	}
}

func TestFeedErrorsFullPass(t *testing.T) {
	e := newErrorsEnv(t)
	e.apply(e.offerRec(sizedOffer("o1", "XL", 1)), e.offerRec(sizedOffer("o2", "XL", 1)), e.offerRec(sizedOffer("o3", "44", 1)))
	e.wantCounts(map[string]float64{"big/filter": 2, "px/template": 2})
	dir := t.TempDir()
	files, err := feedstore.Open(context.Background(), "file://"+filepath.ToSlash(filepath.Join(dir, "feeds")), filepath.Join(dir, "spool"), e.set, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer files.Close()
	stream := &applierStream{a: e.a}
	fp, err := fullpass.New(fullpass.Deps{
		Config: config.Default().FullPass, Store: e.store, Feeds: e.set, Files: files, Serde: e.serde, Stream: stream,
		Log: runlog.NewMemory(), Instance: "a", FeedSet: "fs",
		Registry: prometheus.NewRegistry(), Logger: zap.NewNop(), Now: func() time.Time { return e.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fp.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The pass evaluated the two XL offers again, with its own Evaluator.
	e.wantCounts(map[string]float64{"big/filter": 4, "px/template": 4})
	if stream.reports == 0 {
		t.Error("the full pass never handed its counts to the applier")
	}
}

// applierStream is the streaming path as the full pass sees it, run on
// the test's goroutine.
type applierStream struct {
	a       *processor.Applier
	reports int
	owned   []int32 // Coverage; nil: partition 0 of 1
	total   int32
}

func (s *applierStream) ApplyFixes(_ context.Context, fixes []state.Fix, refreshAfter time.Duration) (processor.FixResult, error) {
	return s.a.ApplyFixes(fixes, refreshAfter)
}

func (s *applierStream) Coverage() ([]int32, int32) {
	if s.owned == nil {
		return []int32{0}, 1
	}
	return s.owned, s.total
}

func (s *applierStream) ReportEvalErrors(_ context.Context, src *processor.EvalErrorSource) {
	s.reports++
	s.a.SyncEvalErrors(src)
}
