package processor_test

import (
	"context"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/feedmill/feedmill/internal/records"

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

// TestLargeGroup: one product with 20,000 offers. Price changes of
// offers that stay above the winner's make no decision and no event (the
// group task moves the candidate and checks the first key, never reads
// the group: BenchmarkGroupNonWinner measures that the cost is the same
// as in a group of 10); a change that undercuts the winner makes exactly
// one REMOVE and one ADD.
func TestLargeGroup(t *testing.T) {
	const n = 20000
	u := groupsOf(t, n, n) // o0 is the cheapest
	var recs []*kgo.Record
	for i := range 2000 {
		recs = append(recs, u.offerRec(groupOffer(1+i*7%(n-1), n, int64(2+i), 20000+i%500)))
	}
	if err := u.a.Apply(u.ctx, recs); err != nil {
		t.Fatal(err)
	}
	u.events = []records.FeedEvent{}
	if k, _ := u.groupLoop(); k != 2000 {
		t.Fatalf("%d group records, want the 2000 candidacies only (no decision)", k)
	}
	if len(u.events) != 0 {
		t.Fatalf("non-winner changes emitted %d events, first %+v", len(u.events), u.events[0])
	}
	// o777 undercuts o0.
	if err := u.a.Apply(u.ctx, []*kgo.Record{u.offerRec(groupOffer(777, n, 10000, 50))}); err != nil {
		t.Fatal(err)
	}
	u.events = []records.FeedEvent{}
	if k, _ := u.groupLoop(); k != 3 {
		t.Errorf("%d group records, want 3 (the candidacy, lost, won)", k)
	}
	var got []string
	for _, ev := range u.events {
		for _, e := range ev.Entries {
			got = append(got, ev.OfferID+" "+e.Action+" "+e.FeedID)
		}
	}
	slices.Sort(got)
	if want := []string{"o0 REMOVE cheapest", "o777 ADD cheapest"}; !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
}
