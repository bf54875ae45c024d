package processor_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/internal/apptest"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/internal/synth"
	"github.com/feedmill/feedmill/internal/testenv"
	"github.com/feedmill/feedmill/state"
)

// groupedFeedSet is synth.FeedSet(n) with every (n/grouped)-th feed given
// a group: the cheapest offer per product, or per brand, or the newest
// per seller (by turns).
func groupedFeedSet(n, grouped int) []config.Feed {
	fs := synth.FeedSet(n, 1)
	groups := []config.Group{
		{By: "offer.product_id", Pick: config.PickMin, Of: "offer.price"},
		{By: "offer.brand", Pick: config.PickMin, Of: "offer.price"},
		{By: "offer.seller_id", Pick: config.PickMax, Of: "offer.updated_at"},
	}
	for k := range grouped {
		g := groups[k%len(groups)]
		fs[k*n/grouped].Group = &g
	}
	return fs
}

// groupLoop plays the group topics for u's applier (one partition, so
// it is its own group task): it reads the outbox records added since
// the last call, deletes them (as the relay would), applies the
// candidacy and decision records among them, and again until none is
// left. It returns how many group records there were and their bytes
// (key and value); with u.events not nil, it appends the events it read.
func (u *unit) groupLoop() (n, bytes int) {
	u.t.Helper()
	topics := config.Default().Kafka.Topics
	for {
		var recs []*kgo.Record
		for _, p := range u.store.OutboxPartitions() {
			from := u.relayed[p]
			_, err := u.store.ScanOutbox(p, from, 1<<30, func(seq uint64, r *state.OutboxRecord) error {
				u.relayed[p] = seq + 1
				if u.topicBytes != nil {
					u.topicBytes[r.Topic] += len(r.Key) + len(r.Value)
				}
				if r.Topic == topics.Events && u.events != nil {
					var ev records.FeedEvent
					if err := u.serde.DecodeFeedEvent(u.ctx, r.Value, &ev); err != nil {
						return err
					}
					u.events = append(u.events, ev)
				}
				if r.Topic == topics.GroupCandidates || r.Topic == topics.GroupDecisions {
					u.offset++
					recs = append(recs, &kgo.Record{Topic: r.Topic, Partition: r.Partition, Key: slices.Clone(r.Key),
						Value: slices.Clone(r.Value), Offset: u.offset, Timestamp: u.now})
					bytes += len(r.Key) + len(r.Value)
				}
				return nil
			})
			if err != nil {
				u.t.Fatal(err)
			}
			if u.relayed[p] > from {
				if err := u.store.DeleteOutbox(p, from, u.relayed[p]-1); err != nil {
					u.t.Fatal(err)
				}
			}
		}
		if len(recs) == 0 {
			return n, bytes
		}
		n += len(recs)
		if err := u.a.Apply(u.ctx, recs); err != nil {
			u.t.Fatal(err)
		}
	}
}

// BenchmarkGroupedApply measures the per-change cost of the streaming
// path with 0 and 100 grouped feeds among 1300, without Kafka: each batch
// of 1000 offer changes is applied, then the candidacies it sent and the
// decisions those made, until none is left (one partition: the applier
// is its own group task). One op = one offer change. topic_B/change is
// what the group topics carry per change (keys and values),
// changelog_B/change and events_B/change what the changelog and
// feed-events carry (with and without groups: the difference is what
// grouping adds there).
//
//	go test ./processor -run XXX -bench GroupedApply -benchtime 20000x
func BenchmarkGroupedApply(b *testing.B) {
	for _, g := range []int{0, 100} {
		b.Run(fmt.Sprintf("feeds=1300/grouped=%d", g), func(b *testing.B) { benchGrouped(b, 1300, g) })
	}
}

func benchGrouped(b *testing.B, nFeeds, grouped int) {
	u := newApplierEnv(b, groupedFeedSet(nFeeds, grouped), config.Default().Processor)
	gen, err := synth.New(1, synth.Options{Offers: 20000, Products: 2000})
	if err != nil {
		b.Fatal(err)
	}
	var recs []*kgo.Record
	add := func(ch synth.Change) {
		if ch.Topic == synth.KindOffers && !ch.Tombstone {
			recs = append(recs, u.offerRec(ch.Offer))
		}
	}
	if err := gen.Initial(func(ch synth.Change) error { add(ch); return nil }); err != nil {
		b.Fatal(err)
	}
	if err := u.a.Apply(u.ctx, recs); err != nil { // the catalog, not measured
		b.Fatal(err)
	}
	u.groupLoop()
	recs = recs[:0]
	for len(recs) < 50000 {
		add(gen.Next())
	}
	u.topicBytes = map[string]int{}
	b.ReportAllocs()
	b.ResetTimer()
	var groupRecs, groupBytes int
	for done := 0; done < b.N; {
		start := done % len(recs)
		end := min(start+1000, len(recs), start+b.N-done)
		if err := u.a.Apply(u.ctx, recs[start:end]); err != nil {
			b.Fatal(err)
		}
		n, by := u.groupLoop()
		groupRecs += n
		groupBytes += by
		done += end - start
	}
	b.ReportMetric(float64(groupRecs)/float64(b.N), "group_records/change")
	b.ReportMetric(float64(groupBytes)/float64(b.N), "topic_B/change")
	topics := config.Default().Kafka.Topics
	b.ReportMetric(float64(u.topicBytes[topics.Changelog])/float64(b.N), "changelog_B/change")
	b.ReportMetric(float64(u.topicBytes[topics.Events])/float64(b.N), "events_B/change")
}

// BenchmarkGroupNonWinner measures a change to an offer that cannot
// become its group's winner (a price above the winner's), in groups of
// 10 and of 20,000 offers (20,000 offers in all either way): the offer
// task's candidacy, the group task's move of the candidate and its
// winner check. One op = one change.
//
//	go test ./processor -run XXX -bench GroupNonWinner -benchtime 20000x
func BenchmarkGroupNonWinner(b *testing.B) {
	for _, n := range []int{10, 20000} {
		b.Run("group="+strconv.Itoa(n), func(b *testing.B) {
			const total = 20000
			u := groupsOf(b, total, n)
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; {
				k := min(1000, b.N-done)
				recs := make([]*kgo.Record, 0, k)
				for i := range k {
					id := (done + i) * 7919 % total
					if id%n == 0 {
						id++ // never a group's winner
					}
					o := groupOffer(id, n, int64(2+done+i), 20000+(done+i)%977)
					recs = append(recs, u.offerRec(o))
				}
				if err := u.a.Apply(u.ctx, recs); err != nil {
					b.Fatal(err)
				}
				u.groupLoop()
				done += k
			}
		})
	}
}

// groupsOf is an applier with total offers whose one grouped feed (the
// cheapest active offer per product) has groups of size offers; the first
// offer of each group is its cheapest.
func groupsOf(t testing.TB, total, size int) *unit {
	u := newApplierEnv(t, []config.Feed{{ID: "cheapest", Filter: `offer.status == "ACTIVE"`, Template: "google-merchant",
		Destinations: []string{"gmc"}, Group: &config.Group{By: "offer.product_id", Pick: config.PickMin, Of: "offer.price"}}},
		config.Default().Processor)
	for start := 0; start < total; start += 1000 {
		var recs []*kgo.Record
		for i := start; i < min(total, start+1000); i++ {
			price := 10000 + i
			if i%size == 0 {
				price = 100
			}
			recs = append(recs, u.offerRec(groupOffer(i, size, 1, price)))
		}
		if err := u.a.Apply(u.ctx, recs); err != nil {
			t.Fatal(err)
		}
		u.groupLoop()
	}
	return u
}

// groupOffer is offer i of groupsOf: its product is the i/size-th.
func groupOffer(i, size int, version int64, priceMinor int) *records.Offer {
	o := offer("o"+strconv.Itoa(i), version, priceMinor)
	pid := "p-" + strconv.Itoa(i/size)
	o.ProductID = &pid
	return o
}

// BenchmarkGroupSwitchWindow measures how long a consumer of feed-events
// sees two winners of a key, or none, when a winner changes: one
// instance, 4 offers partitions, grouped feeds over a catalog of 3,000
// offers on 200 products, while each op produces 2,000 changes (price
// moves on a coarse grid, so winners change often). Over every key of a
// grouped feed, a window opens when its member count (replaying the
// events by record timestamp, deduped by seq) leaves 1 and closes when it
// is back to 1; windows still open at the end (a key left without
// candidates) are not counted. It reports the windows' median, 99th
// percentile and maximum, and the share of winner changes that showed one.
//
//	go test ./processor -run XXX -bench GroupSwitchWindow -benchtime 3x -v
func BenchmarkGroupSwitchWindow(b *testing.B) {
	ctx := context.Background()
	env := testenv.New(b, allTopics...)
	example, templates := synth.ExampleFeeds()
	cfg := testConfig(b, env, append(example, synth.GroupedFeeds()...), templates)
	cfg.FullPass.Interval = 0
	gen, prod, serde := apptest.ProduceCatalog(b, env, cfg.Kafka.Topics, 3, synth.Options{Offers: 3000, Sellers: 20, Products: 200})
	run := startPipeline(b, env, cfg, zap.NewNop())
	waitCaughtUp(b, env, run, cfg.Kafka.Topics)
	b.ResetTimer()
	for range b.N {
		for range 2000 {
			if err := prod.Produce(ctx, gen.Next()); err != nil {
				b.Fatal(err)
			}
		}
		if err := prod.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		waitCaughtUp(b, env, run, cfg.Kafka.Topics)
	}
	b.StopTimer()
	set, err := feeds.Compile(cfg.Feeds, cfg.Templates)
	if err != nil {
		b.Fatal(err)
	}
	type keyed struct{ feed, key string }
	type entry struct {
		at        time.Time
		feed, key string
		offer     string
		add       bool
	}
	var entries []entry
	lastSeq := map[string]int64{}
	keyOf := map[keyed]string{} // (feed, offer) → key of its last ADD
	ev2 := set.NewEvaluator()
	for _, r := range consumeAll(b, env, cfg.Kafka.Topics.Events) {
		var ev records.FeedEvent
		if err := serde.DecodeFeedEvent(ctx, r.Value, &ev); err != nil {
			b.Fatal(err)
		}
		if ev.Seq <= lastSeq[ev.OfferID] {
			continue
		}
		lastSeq[ev.OfferID] = ev.Seq
		for _, e := range ev.Entries {
			f, ok := set.Feed(e.FeedID)
			if !ok || !f.Grouped() || e.Destination != f.Destinations[0] {
				continue
			}
			switch e.Action {
			case records.ActionAdd:
				v := &feeds.View{Offer: &ev.Offer.Offer, Seller: ev.Offer.Seller, Rating: ev.Offer.Rating}
				records.DerivePrice(v.Offer)
				key, _, _, ok := ev2.Group(f, v, ev.EmittedAt, nil)
				if !ok {
					b.Fatalf("event %s: ADD to grouped feed %s of an offer in no group", ev.EventID, f.ID)
				}
				keyOf[keyed{f.ID, ev.OfferID}] = string(key)
				entries = append(entries, entry{at: r.Timestamp, feed: f.ID, key: string(key), offer: ev.OfferID, add: true})
			case records.ActionRemove:
				entries = append(entries, entry{at: r.Timestamp, feed: f.ID, key: keyOf[keyed{f.ID, ev.OfferID}], offer: ev.OfferID})
			}
		}
	}
	slices.SortStableFunc(entries, func(x, y entry) int { return x.at.Compare(y.at) })
	count := map[keyed]int{}
	opened := map[keyed]time.Time{}
	var windows []time.Duration
	changes := 0
	for _, e := range entries {
		k := keyed{e.feed, e.key}
		before := count[k]
		if e.add {
			count[k]++
		} else {
			count[k]--
		}
		after := count[k]
		switch {
		case before == 1 && after != 1:
			opened[k] = e.at
		case before != 1 && after == 1:
			if at, ok := opened[k]; ok {
				windows = append(windows, e.at.Sub(at))
				delete(opened, k)
			}
		}
		if e.add && before <= 1 {
			changes++ // a key gained a (new) winner
		}
	}
	if len(windows) == 0 {
		b.Fatal("no winner change seen")
	}
	slices.Sort(windows)
	pct := func(q float64) float64 {
		return float64(windows[min(len(windows)-1, int(q*float64(len(windows))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.5), "window_p50_ms")
	b.ReportMetric(pct(0.99), "window_p99_ms")
	b.ReportMetric(float64(windows[len(windows)-1].Microseconds())/1000, "window_max_ms")
	b.ReportMetric(float64(len(windows))/float64(max(1, changes)), "windows/winner_change")
	b.Logf("%d windows over %d winner gains", len(windows), changes)
}
