package fullpass_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/processor"
	"github.com/feedmill/feedmill/processor/feedstore"
	"github.com/feedmill/feedmill/processor/fullpass"
	"github.com/feedmill/feedmill/processor/runlog"
	"github.com/feedmill/feedmill/state"
)

// lifeStream owns some partitions of a drift-free state.
type lifeStream struct {
	noStream
	owned []int32
	total int32
}

func (s lifeStream) Coverage() ([]int32, int32) { return s.owned, s.total }

// ApplyFixes accepts the corrections the state needs (its offers have no
// stored membership).
func (lifeStream) ApplyFixes(context.Context, []state.Fix, time.Duration) (processor.FixResult, error) {
	return processor.FixResult{}, nil
}

// lifeSetup is one instance over a small state: an offer per owned
// partition (partition 0's seller undecodable when badSellerInP0), a
// memory run log and a file store. depf, when set, changes the deps
// (config, clock, registry) before New.
func lifeSetup(t *testing.T, badSellerInP0 bool, owned []int32, total int32, workers int, hook func(ctx context.Context, p int32), depf func(*fullpass.Deps)) (*fullpass.FullPass, *runlog.Log, *state.Store, *feedstore.Store) {
	dir := t.TempDir()
	set, err := feeds.Compile(benchFeeds(3), nil)
	if err != nil {
		t.Fatal(err)
	}
	store, err := state.Open(filepath.Join(dir, "state"), records.NewSerde(nil), state.Options{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	serde := records.NewSerde(nil)
	bt := store.NewBatch()
	good := &records.Seller{ID: "good", Name: "n", Country: "PL", Status: "ACTIVE"}
	if err := bt.PutTable(state.TableSellers, "good", func(dst []byte) ([]byte, error) { return serde.MarshalSeller(dst, good) }); err != nil {
		t.Fatal(err)
	}
	if badSellerInP0 {
		if err := bt.PutTable(state.TableSellers, "bad", func(dst []byte) ([]byte, error) { return append(dst, 0xff, 0xff, 0xff, 0xff, 0x01), nil }); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range owned {
		sid := "good"
		if p == 0 && badSellerInP0 {
			sid = "bad"
		}
		o := &records.Offer{ID: "o" + string(rune('a'+p)), SellerID: sid, Title: "t", Condition: "NEW", Status: "ACTIVE", Currency: "PLN", PriceMinor: 100, URL: "https://x", UpdatedAt: time.Now(), Version: 1}
		if err := bt.PutOffer(p, o); err != nil {
			t.Fatal(err)
		}
	}
	if err := bt.Commit(false); err != nil {
		t.Fatal(err)
	}
	bt.Close()
	files, err := feedstore.Open(context.Background(), "file://"+filepath.Join(dir, "feeds"), filepath.Join(dir, "spool"), set, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { files.Close() })
	cfg := config.Default().FullPass
	cfg.Interval = 0
	cfg.Guard.MinSize = 1 << 30
	log := runlog.NewMemory()
	d := fullpass.Deps{
		Config: cfg, Store: store, Feeds: set, Files: files, Serde: serde, Stream: lifeStream{owned: owned, total: total},
		Log: log, Instance: "a", Workers: workers, FeedSet: "fs", OnPartition: hook,
		Registry: prometheus.NewRegistry(), Logger: zap.NewNop(),
	}
	if depf != nil {
		depf(&d)
	}
	fp, err := fullpass.New(d)
	if err != nil {
		t.Fatal(err)
	}
	return fp, log, store, files
}

// A state error in one partition's scan stops Run with the error at
// once: the other scans in flight end with Run's context.
func TestRunStopsScansOnError(t *testing.T) {
	fp, _, _, _ := lifeSetup(t, true, []int32{0, 1}, 2, 2, func(ctx context.Context, p int32) {
		if p == 1 {
			<-ctx.Done() // a scan that only ends when cancelled
		}
	}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, _, err := fp.Start(ctx); err != nil {
		t.Fatal(err)
	}
	err := fp.Run(ctx)
	if err == nil || ctx.Err() != nil {
		t.Fatalf("Run: %v (parent context: %v), want the state error before the parent ends", err, ctx.Err())
	}
}

// A run that fails while its scans are in flight ends them; the next
// run's scan of the same partition is the only one in flight.
func TestFailedRunEndsItsScans(t *testing.T) {
	var calls, inFlight, most atomic.Int32
	release := make(chan struct{})
	fp, log, _, _ := lifeSetup(t, false, []int32{0}, 1, 2, func(ctx context.Context, p int32) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		if calls.Add(1) == 1 {
			<-ctx.Done() // the first run's scan ends only when cancelled
			return
		}
		<-release
	}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r1, _, err := fp.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- fp.Run(ctx) }()
	for calls.Load() < 1 {
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := log.Append(ctx, runlog.Command{Op: runlog.OpFail, Run: r1, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	for inFlight.Load() != 0 {
		time.Sleep(5 * time.Millisecond) // the failed run's scan is cancelled
	}
	r2, _, err := fp.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for calls.Load() < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	for {
		r, err := fp.GetRun(r2)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != runlog.StatusRunning {
			if r.Status != runlog.StatusPublished {
				t.Errorf("run %s: %s %q", r2, r.Status, r.Reason)
			}
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 2 || most.Load() != 1 {
		t.Errorf("%d scans of partition 0, at most %d at once; want 2, one at a time", calls.Load(), most.Load())
	}
}
