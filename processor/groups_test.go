package processor_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/processor"
	"github.com/feedmill/feedmill/state"

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

// withFeeds replaces u's applier by one of feeds fs over the same store
// (a config change and a restart).
func (u *unit) withFeeds(fs []config.Feed) {
	u.t.Helper()
	set, err := feeds.Compile(fs, nil)
	if err != nil {
		u.t.Fatal(err)
	}
	evID, err := u.serde.Register(u.ctx, "feed-events-value", records.KindFeedEvent)
	if err != nil {
		u.t.Fatal(err)
	}
	u.a, err = processor.NewApplier(processor.ApplierDeps{
		Store: u.store, Feeds: set, Serde: u.serde, Topics: config.Default().Kafka.Topics, Processor: config.Default().Processor,
		Retention: time.Hour, EventSchemaID: evID, Now: func() time.Time { return u.now },
		Metrics: processor.NewMetrics(prometheus.NewRegistry()), Logger: zap.NewNop(),
	})
	if err != nil {
		u.t.Fatal(err)
	}
	if err := u.a.SetPartitions([]int32{0}); err != nil {
		u.t.Fatal(err)
	}
}

// TestGroupStandingsAcrossFeedChanges: grouped feeds reordered in the
// config keep every offer's standing (no spurious REMOVE or ADD); a
// grouped feed removed makes its candidates leave its groups.
func TestGroupStandingsAcrossFeedChanges(t *testing.T) {
	cheapest := config.Feed{ID: "cheapest", Filter: "offer.stock > 0", Template: "google-merchant", Destinations: []string{"gmc"},
		Group: &config.Group{By: "offer.product_id", Pick: config.PickMin, Of: "offer.price"}}
	dearest := config.Feed{ID: "dearest", Filter: "offer.stock > 0", Template: "google-merchant", Destinations: []string{"gmc"},
		Group: &config.Group{By: "offer.product_id", Pick: config.PickMax, Of: "offer.price"}}
	u := newApplierEnv(t, []config.Feed{cheapest, dearest}, config.Default().Processor)
	u.events = []records.FeedEvent{}
	lines := func() []string {
		t.Helper()
		u.groupLoop()
		var out []string
		for _, ev := range u.events {
			for _, e := range ev.Entries {
				out = append(out, ev.OfferID+" "+e.Action+" "+e.FeedID)
			}
		}
		slices.Sort(out)
		u.events = u.events[:0]
		return out
	}
	apply := func(recs ...*kgo.Record) {
		t.Helper()
		if err := u.a.Apply(u.ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	apply(u.offerRec(groupOffer(1, 10, 1, 100)), u.offerRec(groupOffer(2, 10, 1, 200)))
	// o1 leads both groups until o2 arrives and takes dearest.
	if got, want := lines(), []string{"o1 ADD cheapest", "o1 ADD dearest", "o1 REMOVE dearest", "o2 ADD dearest"}; !slices.Equal(got, want) {
		t.Fatalf("start: %q, want %q", got, want)
	}
	u.withFeeds([]config.Feed{dearest, cheapest}) // reordered
	apply(u.offerRec(groupOffer(1, 10, 2, 150)), u.offerRec(groupOffer(2, 10, 2, 250)))
	if got, want := lines(), []string{"o1 UPDATE cheapest", "o2 UPDATE dearest"}; !slices.Equal(got, want) {
		t.Fatalf("after reordering the feeds: %q, want %q", got, want)
	}
	u.withFeeds([]config.Feed{dearest}) // cheapest removed
	apply(u.offerRec(groupOffer(1, 10, 3, 160)))
	if got, want := lines(), []string{"o1 REMOVE cheapest"}; !slices.Equal(got, want) {
		t.Fatalf("after removing cheapest: %q, want %q", got, want)
	}
	b := u.store.NewBatch()
	defer b.Close()
	if pl, found, err := b.GroupPlace(0, "cheapest", "p-0", "o1"); err != nil || !found || pl.Live {
		t.Errorf("o1's place in the removed feed's group: %+v found %v (%v), want not live", pl, found, err)
	}
	if w, err := b.GroupWinner(0, "cheapest", "p-0"); err != nil || w.OfferID != "o2" {
		t.Errorf("the removed feed's group's winner: %+v (%v), want o2 once o1 left", w, err)
	}
}

// TestLostWinnerFlagIsRepaired: a winner whose flag was lost (its
// membership says it lost, though its group still has it first) is told
// again with its next change, and becomes a member again.
func TestLostWinnerFlagIsRepaired(t *testing.T) {
	u := groupsOf(t, 10, 10) // o0 wins p-0
	b := u.store.NewBatch()
	var m state.Membership
	if _, err := b.GetMembership(0, "o0", &m, nil); err != nil {
		t.Fatal(err)
	}
	if len(m.Groups) != 1 || !m.Groups[0].Flag.Won || len(m.Feeds) != 1 {
		t.Fatalf("o0's membership %+v, want the winner", m)
	}
	m.Groups[0].Flag = state.GroupFlag{}
	m.Feeds = nil
	if err := b.PutMembership(0, "o0", &m); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	b.Close()
	u.events = []records.FeedEvent{}
	if err := u.a.Apply(u.ctx, []*kgo.Record{u.offerRec(groupOffer(0, 10, 5, 120))}); err != nil {
		t.Fatal(err)
	}
	u.groupLoop()
	if len(u.events) != 1 || len(u.events[0].Entries) != 1 || u.events[0].Entries[0].Action != records.ActionAdd {
		t.Fatalf("events %+v, want o0's ADD", u.events)
	}
}
