package fullpass_test

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/feedmill/feedmill/internal/app"
	"github.com/feedmill/feedmill/internal/apptest"
	"github.com/feedmill/feedmill/internal/synth"
	"github.com/feedmill/feedmill/internal/testenv"
	"github.com/feedmill/feedmill/processor/runlog"
)

// TestPassRebalanceMidScan moves partitions at the worst moment: the
// first partition A scans waits, its part not yet recorded, until B has
// joined and taken partitions from A. The run must still complete with
// one part per partition, and the published files must hold exactly the
// items of A's pass alone (ids and bytes).
func TestPassRebalanceMidScan(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	env := testenv.New(t, allTopics...)
	example, templates := synth.ExampleFeeds()
	cfg := apptest.Config(t, env, append(example, synth.FeedSet(12, 3)...), templates)
	cfg.FullPass.Interval = 0
	cfg.FullPass.Guard.MinSize = 1 << 30
	cfg.FullPass.Store = "file://" + filepath.ToSlash(t.TempDir()) // shared by the instances
	// Every partition's scan starts at once, so the partitions that move
	// to B are mid-scan on A.
	cfg.Processor.Workers = int(testenv.Partitions)
	// kfake's lowest: a member stopping while the group rebalances (the
	// test's end) holds the others' Close only this long.
	cfg.Kafka.SessionTimeout = 6 * time.Second
	apptest.ProduceCatalog(t, env, cfg.Kafka.Topics, 21, synth.Options{Offers: 3000, Sellers: 20})
	clk := &testClock{}

	var gate atomic.Pointer[func(p int32)]
	a := startPass(t, t, env, cfg, clk, func(_ func(), p int32) {
		if g := gate.Load(); g != nil {
			(*g)(p)
		}
	})
	ref := a.pass()
	if ref.Status != runlog.StatusPublished {
		t.Fatalf("reference run %+v", ref)
	}
	refItems := map[string][]string{}
	for _, f := range a.set.Feeds() {
		if f.File {
			_, _, body := a.fetchFeed(f)
			items, err := apptest.FeedItems(body)
			if err != nil {
				t.Fatal(err)
			}
			refItems[f.ID] = items
		}
	}

	cfgB := *cfg
	cfgB.State.Dir = t.TempDir()
	cfgB.HTTP.Listen = "127.0.0.1:0"
	var once sync.Once
	var b *passEnv
	held := make(chan int32, 1)
	hook := func(p int32) {
		once.Do(func() {
			held <- p
			cfgB.HTTP.AdminToken = adminToken
			ab := apptest.Start(t, &cfgB, app.Deps{Logger: testLogger(t), Now: clk.Now})
			b = &passEnv{t: t, env: env, cfg: &cfgB, set: ab.Feeds, run: ab, fp: ab.Pass, url: "http://" + ab.Addr(), reg: ab.Registry}
			deadline := time.Now().Add(time.Minute)
			for {
				owned, _ := a.run.Pipeline.Coverage()
				if len(owned) < int(testenv.Partitions) {
					t.Logf("partition %d scanned; A owns %v now", p, owned)
					return
				}
				if time.Now().After(deadline) {
					t.Errorf("A kept every partition after B joined")
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	gate.Store(&hook)
	id, _, err := a.fp.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	<-held
	r := a.waitRun(id)
	if r.Status != runlog.StatusPublished || int32(len(r.Parts)) != r.PartitionsTotal {
		t.Fatalf("run across the rebalance: %+v", r)
	}
	t.Logf("parts: %+v", r.Parts)
	for !b.run.Pipeline.Ready() {
		time.Sleep(10 * time.Millisecond) // the rebalance ends before the test stops the instances
	}
	for _, pe := range []*passEnv{a, b} {
		for _, f := range pe.set.Feeds() {
			if !f.File {
				continue
			}
			// Every instance serves the run once the coordinator switched.
			var body []byte
			deadline := time.Now().Add(30 * time.Second)
			for {
				_, tag, doc := pe.fetchFeed(f)
				if tag == `"`+id+"."+f.ID+`"` {
					body = doc
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("feed %s serves %s, want run %s", f.ID, tag, id)
				}
				time.Sleep(20 * time.Millisecond)
			}
			items, err := apptest.FeedItems(body)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(items, refItems[f.ID]) {
				t.Errorf("feed %s: %d items after the rebalance, %d in A's pass alone, or they differ", f.ID, len(items), len(refItems[f.ID]))
			}
		}
	}
	// A stops first: a static member stopping while the group
	// rebalances would hold the other's Close until its session ends.
	a.stopF()
	b.run.Stop()
}
