package processor_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/processor"
	"github.com/feedmill/feedmill/processor/feedstore"
	"github.com/feedmill/feedmill/processor/fullpass"
	"github.com/feedmill/feedmill/processor/runlog"
	"github.com/feedmill/feedmill/state"
)

// instanceStream is one instance's view of the streaming path over a
// shared test state: the partitions it owns change under the test.
type instanceStream struct {
	a     *processor.Applier
	mu    sync.Mutex
	owned []int32
	total int32
}

func (s *instanceStream) ApplyFixes(context.Context, []state.Fix, time.Duration) (processor.FixResult, error) {
	return processor.FixResult{}, nil // the test's state has no drift
}

func (s *instanceStream) Coverage() ([]int32, int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.owned), s.total
}

func (s *instanceStream) own(ps ...int32) {
	s.mu.Lock()
	s.owned = ps
	s.mu.Unlock()
}

func (s *instanceStream) ReportEvalErrors(context.Context, *processor.EvalErrorSource) {}

// passInstance is one instance's full pass over the shared state, log
// and feed store, running until the test ends.
func passInstance(t *testing.T, name string, u *unit, set *feeds.Set, files *feedstore.Store, log *runlog.Log, cfg config.FullPass, now func() time.Time) (*fullpass.FullPass, *instanceStream) {
	t.Helper()
	stream := &instanceStream{a: u.a, total: 2}
	fp, err := fullpass.New(fullpass.Deps{
		Config: cfg, Store: u.store, Feeds: set, Files: files, Log: log, Instance: name, Workers: 2, FeedSet: "fs",
		Serde: u.serde, Stream: stream, Registry: prometheus.NewRegistry(), Logger: zap.NewNop(), Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fp.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: %v", name, err)
		}
	})
	return fp, stream
}

func waitRunState(t *testing.T, fp *fullpass.FullPass, id string, ok func(r runlog.Run) bool) runlog.Run {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := fp.GetRun(id)
		if err != nil {
			t.Fatal(err)
		}
		if ok(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s: %+v", id, r)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A run waits until every offers partition has a part: an instance
// scans the partitions it owns, and one gaining a partition during the
// run scans it; only then is the run decided and the feed file, holding
// every partition's members, published. A partition nobody scans fails
// the run after full_pass.timeout, naming it.
func TestFullPassWaitsForEveryPartition(t *testing.T) {
	fs := []config.Feed{{ID: "all", Filter: `offer.stock > 0`, Template: "google-merchant", Destinations: []string{"d"}, File: true}}
	u := newApplierEnv(t, fs, config.Processor{MaxBatchRecords: 100, SellerChunk: 10})
	u.a.SetPartitions([]int32{0, 1})
	var recs []*kgo.Record
	for i, id := range []string{"a", "b", "c", "d"} {
		r := u.offerRec(offer(id, 1, 5000))
		r.Partition = int32(i % 2)
		recs = append(recs, r)
	}
	u.apply(recs...)
	set, err := feeds.Compile(fs, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dir := t.TempDir()
	files, err := feedstore.Open(ctx, "file://"+filepath.ToSlash(filepath.Join(dir, "feeds")), filepath.Join(dir, "spool"), set, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer files.Close()
	var clockMu sync.Mutex
	now := u.now
	clock := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
	cfg := config.Default().FullPass
	cfg.Interval, cfg.Timeout = 0, time.Hour
	log := runlog.NewMemory()
	a, sa := passInstance(t, "a", u, set, files, log, cfg, clock)
	_, sb := passInstance(t, "b", u, set, files, log, cfg, clock)
	sa.own(1)

	id, started, err := a.Start(ctx)
	if err != nil || !started {
		t.Fatalf("start: %v %v", started, err)
	}
	r := waitRunState(t, a, id, func(r runlog.Run) bool { return len(r.Parts) == 1 })
	if r.Status != runlog.StatusRunning || r.Parts[0].Partition != 1 || r.Parts[0].By != "a" || !slices.Equal(r.Missing(), []int32{0}) {
		t.Fatalf("with partition 0 unowned: %+v", r)
	}
	sb.own(0) // b gains partition 0 during the run
	r = waitRunState(t, a, id, func(r runlog.Run) bool { return r.Status != runlog.StatusRunning })
	if r.Status != runlog.StatusPublished || r.Feeds[0].Members != 4 || len(r.Parts) != 2 || r.Parts[0].By != "b" {
		t.Fatalf("whole run: %+v", r)
	}
	srv := httptest.NewServer(func() http.Handler { m := http.NewServeMux(); files.Register(m); return m }())
	defer srv.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(srv.URL + "/feeds/all.xml")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			if n := strings.Count(string(body), "<item>"); n != 4 {
				t.Fatalf("feed has %d items, want 4:\n%s", n, body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("feed not published: %d %s", resp.StatusCode, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := a.LastRun("all"); got != id {
		t.Errorf("last run %q, want %s", got, id)
	}

	// The coordinator (the owner of partition 0) fails a run whose
	// partition 1 has no owner once full_pass.timeout has passed.
	sa.own()
	id2, _, err := a.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitRunState(t, a, id2, func(r runlog.Run) bool { return len(r.Parts) == 1 })
	clockMu.Lock()
	now = now.Add(2 * time.Hour)
	clockMu.Unlock()
	r = waitRunState(t, a, id2, func(r runlog.Run) bool { return r.Status != runlog.StatusRunning })
	if r.Status != runlog.StatusFailed || !strings.Contains(r.Reason, "waiting for the parts of offers partitions 1") {
		t.Fatalf("late run: %s %q", r.Status, r.Reason)
	}
	if got := a.LastRun("all"); got != id {
		t.Errorf("after a failed run the last run is %q, want %s", got, id)
	}
}

// Feed files that cannot be written fail the run with the reason (the
// previous feeds stay served) without stopping the full pass.
func TestFullPassOutputFailureFailsTheRun(t *testing.T) {
	fs := []config.Feed{{ID: "all", Filter: `offer.stock > 0`, Template: "google-merchant", File: true}}
	u := newApplierEnv(t, fs, config.Processor{MaxBatchRecords: 100, SellerChunk: 10})
	u.apply(u.offerRec(offer("a", 1, 5000)))
	set, err := feeds.Compile(fs, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dir := t.TempDir()
	files, err := feedstore.Open(ctx, "file://"+filepath.ToSlash(filepath.Join(dir, "feeds")), filepath.Join(dir, "spool"), set, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer files.Close()
	// The store's runs dir becomes a plain file: no part can be written.
	if err := os.RemoveAll(filepath.Join(dir, "feeds", "runs")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "feeds", "runs"), []byte("not a dir"), 0o600); err != nil {
		t.Fatal(err)
	}
	fp, err := fullpass.New(fullpass.Deps{
		Config: config.Default().FullPass, Store: u.store, Feeds: set, Files: files, Serde: u.serde, Log: runlog.NewMemory(),
		Instance: "a", FeedSet: "fs", Stream: &applierStream{a: u.a}, Registry: prometheus.NewRegistry(), Logger: zap.NewNop(),
		Now: func() time.Time { return u.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := fp.RunOnce(ctx)
	if err != nil {
		t.Fatalf("RunOnce: %v (a store failure fails the run, not the pass)", err)
	}
	if r.Status != runlog.StatusFailed || !strings.Contains(r.Reason, "write feed files") {
		t.Fatalf("run %+v, want failed with the reason", r)
	}
}
