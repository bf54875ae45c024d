package processor_test

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/feedmill/feedmill/internal/apptest"
	"github.com/feedmill/feedmill/internal/synth"
	"github.com/feedmill/feedmill/internal/testenv"
)

// TestStandbyPromotion runs two feedmill binaries with
// processor.standby_replicas 1 in one group while the change stream flows
// (seller flips, rating crossings): each follows the changelog of the
// partitions the other owns. Once the stream settled and both standbys
// caught up, the owner of half the partitions is SIGKILLed; the other
// takes them over by promoting its standby state (no restore from the
// changelog: feedmill_restored_offers_total does not move and no restore
// is logged) while the stream goes on. The events a seq-deduping consumer
// sees must follow the delivery rules and end at the reference membership.
func TestStandbyPromotion(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("FEEDMILL_STANDBY_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("FEEDMILL_STANDBY_SEED: %v", err)
		}
	}
	t.Logf("seed %d (set FEEDMILL_STANDBY_SEED to replay)", seed)
	rng := rand.New(rand.NewPCG(seed, 13))
	bin := buildFeedmill(t)
	ctx := context.Background()
	env := testenv.New(t, allTopics...)

	example, templates := synth.ExampleFeeds()
	base := testConfig(t, env, append(example, synth.FeedSet(20, 3)...), templates)
	base.FullPass.Interval = 0
	base.Kafka.SessionTimeout = kfakeMinSessionTimeout
	base.Processor.StandbyReplicas = 1

	gen, prod, serde := apptest.ProduceCatalog(t, env, base.Kafka.Topics, int64(seed), synth.Options{Offers: 4000, Sellers: 30})
	ops := map[synth.Op]int{}
	produce := func(n int) {
		t.Helper()
		for sent := 0; sent < n; sent += 100 {
			for range min(100, n-sent) {
				ch := gen.Next()
				ops[ch.Op]++
				if err := prod.Produce(ctx, ch); err != nil {
					t.Fatal(err)
				}
			}
			if err := prod.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Millisecond) // pacing, not an assert
		}
	}

	fleet := &fleet{t: t, bin: bin, env: env, base: base}
	a := fleet.add("standby-a")
	b := fleet.add("standby-b")
	a.start()
	fleet.waitOwns(a, 30*time.Second)
	produce(800 + rng.IntN(400))
	b.start()
	fleet.waitOwns(b, 30*time.Second)
	produce(1500 + rng.IntN(500))

	owners := fleet.waitIdle([]*instance{a, b}, 90*time.Second)
	bParts := owners[b.id]
	if len(bParts) == 0 || len(owners[a.id]) == 0 {
		t.Fatalf("both instances should own partitions: %v", owners)
	}
	// Each follows every partition of the other, to its end.
	a.waitStandby(len(bParts), 60*time.Second)
	b.waitStandby(len(owners[a.id]), 60*time.Second)
	restoredBefore := a.logRestored("before B is killed")
	restoredParts, _ := a.log.restored()
	promotedBefore, _ := metricValue(a.cfg.HTTP.Listen, "feedmill_standby_promotions_total")

	b.kill()
	// The stream goes on: B's partitions wait for its session to end,
	// then move to A.
	produce(800 + rng.IntN(400))
	fleet.waitIdle([]*instance{a}, 120*time.Second)
	produce(300)
	owners = fleet.waitIdle([]*instance{a}, 90*time.Second)
	if len(owners[a.id]) != int(testenv.Partitions) {
		t.Fatalf("A owns %v after B's end, want all %d partitions", owners[a.id], testenv.Partitions)
	}

	restoredAfter := a.logRestored("after B's partitions moved to A")
	if parts, _ := a.log.restored(); parts != restoredParts {
		t.Errorf("A logged %d partition restores after B was killed, want none (its standby state is promoted)", parts-restoredParts)
	}
	if restoredAfter != restoredBefore {
		t.Errorf("feedmill_restored_offers_total on A went from %v to %v: B's partitions were restored, not promoted", restoredBefore, restoredAfter)
	}
	promoted, ok := metricValue(a.cfg.HTTP.Listen, "feedmill_standby_promotions_total")
	if !ok || promoted-promotedBefore != float64(len(bParts)) {
		t.Errorf("feedmill_standby_promotions_total on A: %v → %v (served %v), want %d more (B's partitions %v)",
			promotedBefore, promoted, ok, len(bParts), bParts)
	}
	if n, _ := metricValue(a.cfg.HTTP.Listen, "feedmill_standby_partitions"); n != 0 {
		t.Errorf("A alone still follows %v partitions", n)
	}
	a.interrupt()
	a.checkOutbox(owners[a.id])

	if ops[synth.OpSellerStatus] == 0 || ops[synth.OpRatingCross] == 0 {
		t.Fatalf("no seller flip or rating crossing in the change stream: %v", ops)
	}
	model, set := replayEvents(t, env, base, serde, nil)
	t.Logf("events %d, re-sends %d, entries %v, violations %d", model.events, model.resends, model.actions, len(model.violations))
	model.checkGenerated(t, set, gen)
}

// waitStandby waits until the instance follows n partitions and has
// applied their changelogs to the end.
func (in *instance) waitStandby(n int, timeout time.Duration) {
	in.t.Helper()
	deadline := time.Now().Add(timeout)
	var parts, lag float64
	var ok1, ok2 bool
	for time.Now().Before(deadline) {
		if !in.running() {
			in.t.Fatalf("%s exited: %v", in.id, in.waitErr)
		}
		parts, ok1 = metricValue(in.cfg.HTTP.Listen, "feedmill_standby_partitions")
		lag, ok2 = metricValue(in.cfg.HTTP.Listen, "feedmill_standby_lag_records")
		if ok1 && ok2 && parts == float64(n) && lag == 0 {
			in.t.Logf("%s follows %v partitions, lag 0", in.id, parts)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	in.t.Fatalf("%s: standby partitions %v (served %v), lag %v (served %v); want %d partitions, lag 0", in.id, parts, ok1, lag, ok2, n)
}
