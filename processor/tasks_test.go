package processor_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
	"go.uber.org/zap"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/processor"
	"github.com/feedmill/feedmill/state"
)

// TestTasksFollowTableChangesAcrossMoves is the scenario of a restart
// whose group assigns a subset of the partitions first and the rest
// later, made deterministic: one pipeline's tasks gain and lose offers
// partitions at random moments while offers, seller and rating changes
// land (the tables are applied whatever is owned, the offers of a
// partition only while it is owned, in order), and seller jobs advance
// in random slices. Once everything is owned and applied, the stored
// memberships and counts must equal an evaluation of the final state
// from scratch.
func TestTasksFollowTableChangesAcrossMoves(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		t.Run(fmt.Sprintf("moves/seed=%d", seed), func(t *testing.T) { tasksScenario(t, seed, true) })
	}
	// The same streams with every partition owned throughout (offers also
	// change seller here: their seller and rating feeds follow).
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprintf("owned/seed=%d", seed), func(t *testing.T) { tasksScenario(t, seed, false) })
	}
}

var taskFeeds = []config.Feed{
	{ID: "cheap", Filter: `offer.status == "ACTIVE" && offer.price < 100.0`, Template: "google-merchant", Destinations: []string{"gmc"}},
	{ID: "trusted", Filter: `seller?.status == "ACTIVE" && (rating?.average ?? 0) >= 4.0`, Template: "ceneo", Destinations: []string{"ceneo", "hook"}},
	{ID: "pl-cz", Filter: `seller?.country in ["PL", "CZ"] && offer.stock > 0`, Template: "google-merchant", Destinations: []string{"gmc"}},
	{ID: "unrated", Filter: `rating == nil`, Template: "meta-catalog", Destinations: []string{"meta"}},
}

// taskEnv is a Pipeline driven without a consumer group (export_test.go),
// on a temp store and an in-memory registry.
type taskEnv struct {
	p     *processor.Pipeline
	serde *records.Serde
	ids   [4]int // schema ids: offer, seller, rating, feed event
	set   *feeds.Set
	store *state.Store
}

func newTaskEnv(t testing.TB, fs []config.Feed, proc config.Processor, now func() time.Time) *taskEnv {
	t.Helper()
	ctx := context.Background()
	reg := srfake.New()
	t.Cleanup(reg.Close)
	cl, err := sr.NewClient(sr.URLs(reg.URL()))
	if err != nil {
		t.Fatal(err)
	}
	e := &taskEnv{serde: records.NewSerde(cl)}
	for i, k := range []records.Kind{records.KindOffer, records.KindSeller, records.KindRating, records.KindFeedEvent} {
		if e.ids[i], err = e.serde.Register(ctx, []string{"offers", "sellers", "ratings", "feed-events"}[i]+"-value", k); err != nil {
			t.Fatal(err)
		}
	}
	if e.set, err = feeds.Compile(fs, nil); err != nil {
		t.Fatal(err)
	}
	if e.store, err = state.Open(filepath.Join(t.TempDir(), "state"), e.serde, state.Options{}, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.store.Close() })
	cfg := config.Default()
	cfg.Feeds = fs
	def := cfg.Processor
	cfg.Processor = proc
	if proc.MaxEventBytes == 0 {
		cfg.Processor.MaxEventBytes = def.MaxEventBytes
	}
	e.p, err = processor.NewPipeline(processor.PipelineDeps{
		Config: &cfg, Store: e.store, Feeds: e.set, Serde: e.serde, Metrics: processor.NewMetrics(prometheus.NewRegistry()),
		Logger: zap.NewNop(), Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.p.SetEventSchemaID(e.ids[3])
	return e
}

func tasksScenario(t *testing.T, seed uint64, moving bool) {
	const (
		partitions = 4
		nSellers   = 6
		nOffers    = 90
		steps      = 500
	)
	rng := rand.New(rand.NewPCG(seed, 7))
	ctx := context.Background()
	now := time.UnixMilli(1_800_000_000_000)
	env := newTaskEnv(t, taskFeeds, config.Processor{SellerChunk: 3, MaxBatchRecords: 16, Workers: 2}, func() time.Time { return now })
	p, serde, ids, set, store := env.p, env.serde, env.ids, env.set, env.store

	// The final state, as the reference sees it.
	sellers := map[string]*records.Seller{}
	ratings := map[string]*records.Rating{}
	offers := map[string]*records.Offer{}
	versions := map[string]int64{}
	offsets := map[string]int64{}
	rec := func(topic string, part int32, key string, value []byte) *kgo.Record {
		k := topic + "/" + strconv.Itoa(int(part))
		offsets[k]++
		return &kgo.Record{Topic: topic, Partition: part, Key: []byte(key), Value: value, Offset: offsets[k] - 1, Timestamp: now}
	}
	version := func(key string) int64 { versions[key]++; return versions[key] }
	sellerRec := func(id string) *kgo.Record {
		s := &records.Seller{ID: id, Name: "Shop " + id, Country: []string{"PL", "CZ", "DE"}[rng.IntN(3)],
			Status: []string{"ACTIVE", "ACTIVE", "SUSPENDED"}[rng.IntN(3)], UpdatedAt: now, Version: version("s" + id)}
		v, err := serde.AppendSeller(nil, ids[1], s)
		if err != nil {
			t.Fatal(err)
		}
		sellers[id] = s
		return rec("sellers", 0, id, v)
	}
	ratingRec := func(id string) *kgo.Record {
		if rng.IntN(4) == 0 {
			delete(ratings, id)
			return rec("ratings", 0, id, nil)
		}
		r := &records.Rating{SellerID: id, Average: float64(rng.IntN(21)) / 4, Count: 10, PositivePct: 90, UpdatedAt: now, Version: version("r" + id)}
		v, err := serde.AppendRating(nil, ids[2], r)
		if err != nil {
			t.Fatal(err)
		}
		ratings[id] = r
		return rec("ratings", 0, id, v)
	}
	pending := make([][]*kgo.Record, partitions) // offers records not consumed yet
	offerChange := func() {
		i := rng.IntN(nOffers)
		id := "o" + strconv.Itoa(i)
		part := int32(i % partitions)
		if offers[id] != nil && rng.IntN(8) == 0 {
			delete(offers, id)
			pending[part] = append(pending[part], rec("offers", part, id, nil))
			return
		}
		o := &records.Offer{ID: id, SellerID: "s" + strconv.Itoa(rng.IntN(nSellers)), Title: "Item " + id, Description: "d",
			Category: "Electronics/Phones", PriceMinor: 1000 + rng.IntN(20000), Currency: "PLN", Stock: rng.IntN(3),
			Condition: "NEW", Status: []string{"ACTIVE", "ACTIVE", "INACTIVE"}[rng.IntN(3)], URL: "https://x/" + id,
			Images: []string{"https://x/i.jpg"}, Attributes: map[string]string{}, UpdatedAt: now, Version: version("o" + id)}
		v, err := serde.AppendOffer(nil, ids[0], o)
		if err != nil {
			t.Fatal(err)
		}
		records.DerivePrice(o) // as decoding does
		offers[id] = o
		pending[part] = append(pending[part], rec("offers", part, id, v))
	}
	owned := map[int32]bool{}
	poll := func(all bool) {
		var recs []*kgo.Record
		for part := range int32(partitions) {
			if !owned[part] {
				continue
			}
			n := len(pending[part])
			if !all {
				n = min(n, rng.IntN(12))
			}
			recs = append(recs, pending[part][:n]...)
			pending[part] = pending[part][n:]
		}
		if len(recs) == 0 {
			return
		}
		if err := p.ApplyOffers(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	setTasks := func(add, remove []int32) {
		if err := p.SetTasks(add, remove); err != nil {
			t.Fatal(err)
		}
		for _, part := range add {
			owned[part] = true
		}
		for _, part := range remove {
			delete(owned, part)
		}
	}
	table := func(recs ...*kgo.Record) {
		if err := p.ApplyTables(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}

	// The tables load first; the restart gets partition 0 alone.
	for i := range nSellers {
		table(sellerRec("s"+strconv.Itoa(i)), ratingRec("s"+strconv.Itoa(i)))
	}
	setTasks([]int32{0}, nil)
	if !moving {
		setTasks([]int32{1, 2, 3}, nil)
	}
	moves := 0
	for range steps {
		switch x := rng.IntN(100); {
		case x < 40:
			offerChange()
		case x < 55:
			table(sellerRec("s" + strconv.Itoa(rng.IntN(nSellers))))
		case x < 65:
			table(ratingRec("s" + strconv.Itoa(rng.IntN(nSellers))))
		case x < 82:
			poll(false)
		case x < 94:
			if _, err := p.RunJobChunks(ctx); err != nil {
				t.Fatal(err)
			}
		default:
			if !moving {
				continue
			}
			part := int32(rng.IntN(partitions))
			if owned[part] {
				poll(true) // a revoke comes between polls
				setTasks(nil, []int32{part})
			} else {
				setTasks([]int32{part}, nil)
			}
			moves++
		}
	}
	// The rest of the assignment arrives; everything is consumed and
	// every job finishes.
	var rest []int32
	for part := range int32(partitions) {
		if !owned[part] {
			rest = append(rest, part)
		}
	}
	setTasks(rest, nil)
	poll(true)
	for {
		more, err := p.RunJobChunks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !more {
			break
		}
	}
	if jobs, err := store.AllJobs(); err != nil || len(jobs) > 0 {
		t.Fatalf("jobs left: %v %v", jobs, err)
	}

	// The reference: every feed evaluated over the final state.
	ev := set.NewEvaluator()
	member := make([]bool, len(set.Feeds()))
	wantCounts := map[string]int64{}
	b := store.NewBatch()
	defer b.Close()
	intern := func(b []byte) string { return string(b) }
	wrong := 0
	for i := range nOffers {
		id := "o" + strconv.Itoa(i)
		var want []string
		if o := offers[id]; o != nil {
			v := feeds.View{Offer: o, Seller: sellers[o.SellerID], Rating: ratings[o.SellerID]}
			ev.Match(&v, now, member)
			for k, f := range set.Feeds() {
				if member[k] {
					want = append(want, f.ID)
					wantCounts[f.ID]++
				}
			}
		}
		var m state.Membership
		if _, err := b.GetMembership(int32(i%partitions), id, &m, intern); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, f := range m.Feeds {
			got = append(got, f.FeedID)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			wrong++
			var so records.Offer
			pres, _, _ := b.GetOffer(int32(i%partitions), id, &so)
			ro := offers[id]
			extra := ""
			if ro != nil {
				extra = fmt.Sprintf("ref seller %s %+v rating %+v; stored pres %v seller %s v%d ref v%d", ro.SellerID, sellers[ro.SellerID], ratings[ro.SellerID], pres, so.SellerID, so.Version, ro.Version)
			}
			t.Errorf("offer %s: member of %v, want %v (%s)", id, got, want, extra)
		}
	}
	counts, err := store.Counts(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range set.Feeds() {
		if counts[f.ID] != wantCounts[f.ID] {
			t.Errorf("count of %s: %d, want %d", f.ID, counts[f.ID], wantCounts[f.ID])
		}
	}
	t.Logf("%d partition moves, %d offers live, %d wrong", moves, len(offers), wrong)
}
