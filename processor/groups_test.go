package processor_test

import (
	"context"
	"testing"

	"github.com/feedmill/feedmill/internal/apptest"
	"github.com/feedmill/feedmill/internal/synth"
	"github.com/feedmill/feedmill/internal/testenv"
)

// TestGroupedFeedsStream: a random stream (price changes on a coarse
// grid, so ties; stock to 0 and back; offers moving between products;
// tombstones; late and duplicate records; seller suspensions) through one
// instance; feed-events replayed with seq dedupe hold exactly the
// winners of a group-by over the final state, computed from scratch,
// and every delivery rule holds. A restart on the same state emits
// nothing new.
func TestGroupedFeedsStream(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx := context.Background()
	env := testenv.New(t, allTopics...)
	example, templates := synth.ExampleFeeds()
	fs := append(append(example, synth.FeedSet(20, 5)...), synth.GroupedFeeds()...)
	cfg := testConfig(t, env, fs, templates)
	cfg.FullPass.Interval = 0

	gen, prod, serde := apptest.ProduceCatalog(t, env, cfg.Kafka.Topics, 7, synth.Options{Offers: 1500, Sellers: 10, Products: 60})
	run := startPipeline(t, env, cfg, testLogger(t))
	ops := map[synth.Op]int{}
	for range 8000 {
		ch := gen.Next()
		ops[ch.Op]++
		if err := prod.Produce(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if ops[synth.OpSellerStatus] == 0 || ops[synth.OpDelete] == 0 || ops[synth.OpLate] == 0 || ops[synth.OpDuplicate] == 0 {
		t.Fatalf("the stream lacks an op the test needs: %v", ops)
	}
	waitCaughtUp(t, env, run, cfg.Kafka.Topics)
	model, set := replayEvents(t, env, cfg, serde, nil)
	t.Logf("events %d (re-sends %d), entries %v", model.events, model.resends, model.actions)
	grouped := 0
	for _, m := range model.members {
		for k := range m {
			if f, _ := set.Feed(k.feed); f.Grouped() {
				grouped++
			}
		}
	}
	t.Logf("grouped feed members %d", grouped)
	if grouped == 0 {
		t.Fatal("no grouped feed has a member")
	}
	model.checkGenerated(t, set, gen)

	before := model.events
	run.Stop()
	run = startPipeline(t, env, cfg, testLogger(t))
	waitCaughtUp(t, env, run, cfg.Kafka.Topics)
	if after := consumeAll(t, env, cfg.Kafka.Topics.Events); len(after) != before {
		t.Errorf("restart emitted %d more events", len(after)-before)
	}
}
