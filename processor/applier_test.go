package processor_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
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

// unit is an Applier on a temp Pebble store and an in-memory registry,
// with a settable clock; events are read back from the outbox.
type unit struct {
	t       testing.TB
	ctx     context.Context
	a       *processor.Applier
	store   *state.Store
	serde   *records.Serde
	ids     [3]int
	now     time.Time
	offset  int64
	relayed map[int32]uint64
	// changelog collects the changelog records apply read from the outbox.
	changelog []changelogRec
	// events, when not nil, collects the events groupLoop reads, and
	// topicBytes sums the key and value bytes it reads, per topic.
	events     []records.FeedEvent
	topicBytes map[string]int
}

type changelogRec struct {
	p     int32
	key   string
	value []byte
}

var unitFeeds = []config.Feed{
	{ID: "cheap", Filter: `offer.status == "ACTIVE" && offer.price < 100.0`, Template: "google-merchant", Destinations: []string{"gmc"}},
	{ID: "trusted", Filter: `seller?.status == "ACTIVE" && (rating?.average ?? 0) >= 4.0`, Template: "ceneo", Destinations: []string{"ceneo", "hook"}},
	{ID: "file-only", Filter: `offer.stock > 0`, Template: "meta-catalog", File: true},
}

func newUnit(t *testing.T) *unit {
	return newApplierEnv(t, unitFeeds, config.Processor{MaxBatchRecords: 100, SellerChunk: 2})
}

// envOptions are the optional parts of an applier test environment.
type envOptions struct {
	Templates []config.Template
	Logger    *zap.Logger          // default: no-op
	Registry  *prometheus.Registry // default: a new one
}

// newApplierEnv builds a unit with feeds fs and processor settings proc
// (shared by the unit tests, BenchmarkApplyChange and the feed error
// tests). It owns partition 0.
func newApplierEnv(t testing.TB, fs []config.Feed, proc config.Processor, opts ...envOptions) *unit {
	t.Helper()
	var o envOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	ctx := context.Background()
	reg := srfake.New()
	t.Cleanup(reg.Close)
	cl, err := sr.NewClient(sr.URLs(reg.URL()))
	if err != nil {
		t.Fatal(err)
	}
	u := &unit{t: t, ctx: ctx, serde: records.NewSerde(cl), now: time.UnixMilli(1_800_000_000_000), relayed: map[int32]uint64{}}
	for i, k := range []records.Kind{records.KindOffer, records.KindSeller, records.KindRating} {
		if u.ids[i], err = u.serde.Register(ctx, []string{"offers", "sellers", "ratings"}[i]+"-value", k); err != nil {
			t.Fatal(err)
		}
	}
	evID, err := u.serde.Register(ctx, "feed-events-value", records.KindFeedEvent)
	if err != nil {
		t.Fatal(err)
	}
	set, err := feeds.Compile(fs, o.Templates)
	if err != nil {
		t.Fatal(err)
	}
	u.store, err = state.Open(filepath.Join(t.TempDir(), "state"), u.serde, state.Options{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = u.store.Close() })
	cfg := config.Default()
	u.a, err = processor.NewApplier(processor.ApplierDeps{
		Store: u.store, Feeds: set, Serde: u.serde, Topics: cfg.Kafka.Topics, Processor: proc,
		Retention: time.Hour, EventSchemaID: evID, Now: func() time.Time { return u.now },
		Metrics: processor.NewMetrics(o.Registry), Logger: o.Logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	u.a.SetPartitions([]int32{0})
	return u
}

func offer(id string, version int64, priceMinor int) *records.Offer {
	return &records.Offer{ID: id, SellerID: "s1", Title: "Phone " + id, Description: "d", Category: "Electronics/Phones",
		PriceMinor: priceMinor, Currency: "PLN", Stock: 3, Condition: "NEW", Status: "ACTIVE", URL: "https://x/" + id,
		Images: []string{"https://x/i.jpg"}, Attributes: map[string]string{}, UpdatedAt: time.UnixMilli(1), Version: version}
}

func (u *unit) rec(topic, key string, value []byte) *kgo.Record {
	u.offset++
	return &kgo.Record{Topic: topic, Key: []byte(key), Value: value, Offset: u.offset, Timestamp: u.now}
}

func (u *unit) offerRec(o *records.Offer) *kgo.Record {
	v, err := u.serde.AppendOffer(nil, u.ids[0], o)
	if err != nil {
		u.t.Fatal(err)
	}
	return u.rec("offers", o.ID, v)
}

func (u *unit) sellerRec(s *records.Seller) *kgo.Record {
	v, err := u.serde.AppendSeller(nil, u.ids[1], s)
	if err != nil {
		u.t.Fatal(err)
	}
	return u.rec("sellers", s.ID, v)
}

func (u *unit) ratingRec(r *records.Rating) *kgo.Record {
	v, err := u.serde.AppendRating(nil, u.ids[2], r)
	if err != nil {
		u.t.Fatal(err)
	}
	return u.rec("ratings", r.SellerID, v)
}

// apply applies recs, runs seller jobs to completion, and returns the
// outbox records added since the last call as "action feed/dest" lines per
// event (rejects as "reject <reason>").
func (u *unit) apply(recs ...*kgo.Record) [][]string {
	u.t.Helper()
	if err := u.a.Apply(u.ctx, recs); err != nil {
		u.t.Fatal(err)
	}
	for {
		more, err := u.a.RunJobChunk()
		if err != nil {
			u.t.Fatal(err)
		}
		if !more {
			break
		}
	}
	var out [][]string
	parts := u.store.OutboxPartitions()
	slices.Sort(parts)
	for _, p := range parts {
		_, err := u.store.ScanOutbox(p, u.relayed[p], 1<<20, func(seq uint64, r *state.OutboxRecord) error {
			u.relayed[p] = seq + 1
			if r.Topic == config.Default().Kafka.Topics.Changelog {
				u.changelog = append(u.changelog, changelogRec{p: r.Partition, key: string(r.Key), value: slices.Clone(r.Value)})
				return nil
			}
			if r.Topic == "feedmill-rejects" {
				out = append(out, []string{"reject " + string(r.Headers[0].Value)})
				return nil
			}
			var ev records.FeedEvent
			if err := u.serde.DecodeFeedEvent(u.ctx, r.Value, &ev); err != nil {
				return err
			}
			var lines []string
			for _, e := range ev.Entries {
				lines = append(lines, e.Action+" "+e.FeedID+"/"+e.Destination)
			}
			slices.Sort(lines)
			out = append(out, lines)
			return nil
		})
		if err != nil {
			u.t.Fatal(err)
		}
	}
	return out
}

func seller(status string, version int64) *records.Seller {
	return &records.Seller{ID: "s1", Name: "Shop", Country: "PL", Status: status, UpdatedAt: time.UnixMilli(1), Version: version}
}

func rating(avg float64, version int64) *records.Rating {
	return &records.Rating{SellerID: "s1", Average: avg, Count: 10, PositivePct: 90, UpdatedAt: time.UnixMilli(1), Version: version}
}

func TestApplierOrderingAndTransitions(t *testing.T) {
	type step struct {
		name string
		recs func(u *unit) []*kgo.Record
		want [][]string
	}
	o := func(v int64, price int) func(u *unit) []*kgo.Record {
		return func(u *unit) []*kgo.Record { return []*kgo.Record{u.offerRec(offer("o1", v, price))} }
	}
	tomb := func(u *unit) []*kgo.Record { return []*kgo.Record{u.rec("offers", "o1", nil)} }
	steps := []step{
		{"new offer under 100 PLN joins cheap", o(1, 5000), [][]string{{"ADD cheap/gmc"}}},
		{"exact duplicate is a no-op", o(1, 5000), nil},
		{"price change renders differently: UPDATE", o(2, 6000), [][]string{{"UPDATE cheap/gmc"}}},
		{"late version is a no-op", o(1, 7000), nil},
		{"only version and updated_at change: no UPDATE", func(u *unit) []*kgo.Record {
			x := offer("o1", 3, 6000)
			x.UpdatedAt = time.UnixMilli(99)
			return []*kgo.Record{u.offerRec(x)}
		}, nil},
		{"price above 100 leaves cheap: REMOVE", o(4, 15000), [][]string{{"REMOVE cheap/gmc"}}},
		{"seller appears active, no rating yet: still not trusted", func(u *unit) []*kgo.Record {
			return []*kgo.Record{u.sellerRec(seller("ACTIVE", 1))}
		}, nil},
		{"rating crosses 4.0: ADD to both destinations", func(u *unit) []*kgo.Record {
			return []*kgo.Record{u.ratingRec(rating(4.2, 1))}
		}, [][]string{{"ADD trusted/ceneo", "ADD trusted/hook"}}},
		{"rating change that stays above 4.0 and renders nothing new: nothing", func(u *unit) []*kgo.Record {
			return []*kgo.Record{u.ratingRec(rating(4.5, 2))}
		}, nil},
		{"seller suspended: REMOVE from both", func(u *unit) []*kgo.Record {
			return []*kgo.Record{u.sellerRec(seller("SUSPENDED", 2))}
		}, [][]string{{"REMOVE trusted/ceneo", "REMOVE trusted/hook"}}},
		{"late seller version is a no-op", func(u *unit) []*kgo.Record {
			return []*kgo.Record{u.sellerRec(seller("ACTIVE", 1))}
		}, nil},
		{"seller re-activated: ADD again", func(u *unit) []*kgo.Record {
			return []*kgo.Record{u.sellerRec(seller("ACTIVE", 3))}
		}, [][]string{{"ADD trusted/ceneo", "ADD trusted/hook"}}},
		{"offer tombstone removes it from every feed", tomb, [][]string{{"REMOVE trusted/ceneo", "REMOVE trusted/hook"}}},
		{"second tombstone is a no-op", tomb, nil},
		{"late record within retention does not resurrect it", o(4, 5000), nil},
		{"a greater version re-creates it", o(5, 5000), [][]string{{"ADD cheap/gmc", "ADD trusted/ceneo", "ADD trusted/hook"}}},
		{"bad record is rejected, the batch goes on", func(u *unit) []*kgo.Record {
			bad := offer("o1", 9, -1)
			return []*kgo.Record{u.offerRec(bad), u.offerRec(offer("o1", 6, 15000))}
		}, [][]string{{"reject negative price_minor"}, {"REMOVE cheap/gmc", "UPDATE trusted/ceneo", "UPDATE trusted/hook"}}},
	}
	u := newUnit(t)
	for _, s := range steps {
		got := u.apply(s.recs(u)...)
		if len(got) == 0 {
			got = nil
		}
		for i := range got {
			if len(got[i]) == 1 && strings.HasPrefix(got[i][0], "reject ") && len(s.want) > i && strings.HasPrefix(s.want[i][0], "reject ") {
				if !strings.Contains(got[i][0], strings.TrimPrefix(s.want[i][0], "reject ")) {
					t.Errorf("%s: got %v, want %v", s.name, got, s.want)
				}
				got[i] = s.want[i]
			}
		}
		if !slices.EqualFunc(got, s.want, func(a, b []string) bool { return slices.Equal(a, b) }) {
			t.Errorf("%s:\n got  %v\n want %v", s.name, got, s.want)
		}
	}
	counts := u.a.Counts()
	if counts[0] != 0 || counts[1] != 1 || counts[2] != 1 {
		t.Errorf("live counts %v, want [0 1 1] (cheap, trusted, file-only)", counts)
	}
}

func TestApplierTombstoneRetention(t *testing.T) {
	u := newUnit(t)
	u.apply(u.offerRec(offer("o2", 5, 5000)))
	u.apply(u.rec("offers", "o2", nil))
	// Within retention a late version is ignored ...
	if got := u.apply(u.offerRec(offer("o2", 3, 5000))); len(got) != 0 {
		t.Fatalf("late record within retention emitted %v", got)
	}
	// ... after it and the sweep, the key is forgotten and a record with
	// any version is new again; seq still increases.
	u.now = u.now.Add(2 * time.Hour)
	n, err := u.a.SweepTombstones()
	if err != nil || n != 1 {
		t.Fatalf("sweep: %d, %v; want 1 tombstone forgotten", n, err)
	}
	if got := u.apply(u.offerRec(offer("o2", 2, 5000))); len(got) != 1 || got[0][0] != "ADD cheap/gmc" {
		t.Fatalf("record after retention: %v, want an ADD", got)
	}
}

func TestApplierSellerJobChunks(t *testing.T) {
	u := newUnit(t)
	u.apply(u.sellerRec(seller("ACTIVE", 1)), u.ratingRec(rating(4.8, 1)))
	var recs []*kgo.Record
	for i := range 7 {
		recs = append(recs, u.offerRec(offer("o"+string(rune('a'+i)), 1, 50000)))
	}
	if got := u.apply(recs...); len(got) != 7 {
		t.Fatalf("7 offers of a trusted seller: %d events, want 7", len(got))
	}
	// Suspension re-evaluates all 7 offers in chunks of 2, each committed.
	got := u.apply(u.sellerRec(seller("SUSPENDED", 2)))
	if len(got) != 7 {
		t.Fatalf("suspension: %d events, want 7", len(got))
	}
	for _, ev := range got {
		if !slices.Equal(ev, []string{"REMOVE trusted/ceneo", "REMOVE trusted/hook"}) {
			t.Errorf("suspension event %v", ev)
		}
	}
	if jobs, err := u.store.AllJobs(); err != nil || len(jobs) != 0 {
		t.Errorf("jobs left: %v %v", jobs, err)
	}
}

// A schema registry that stays down is a broken dependency: Apply retries
// for the outage limit, then returns an error that says what to check.
func TestApplyReturnsRegistryOutage(t *testing.T) {
	u := newUnit(t)
	rec := u.offerRec(offer("o1", 1, 5000))
	down, err := sr.NewClient(sr.URLs("http://127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	set, err := feeds.Compile(unitFeeds, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := processor.NewApplier(processor.ApplierDeps{
		Store: u.store, Feeds: set, Serde: records.NewSerde(down), Topics: config.Default().Kafka.Topics,
		Processor: config.Processor{MaxBatchRecords: 100, SellerChunk: 2}, Retention: time.Hour,
		Metrics: processor.NewMetrics(prometheus.NewRegistry()), Logger: zap.NewNop(), RegistryOutageLimit: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	err = a.Apply(context.Background(), []*kgo.Record{rec})
	if err == nil || !strings.Contains(err.Error(), "schema registry unavailable for 300ms") || !strings.Contains(err.Error(), "schema_registry.url") {
		t.Fatalf("Apply with the registry down: %v", err)
	}
	if offs, _ := u.store.Offsets("offers"); len(offs) != 0 {
		t.Errorf("offsets advanced past a record that was not applied: %v", offs)
	}
}

// A seller change that lands while the instance owns only some of the
// partitions holding the seller's offers: the owned ones are re-evaluated
// at once, the others when they are owned again (a restart that gets a
// subset of its partitions first), and nothing spins meanwhile.
func TestApplierSellerJobWaitsForUnownedPartitions(t *testing.T) {
	u := newUnit(t)
	u.a.SetPartitions([]int32{0, 1})
	u.apply(u.sellerRec(seller("ACTIVE", 1)), u.ratingRec(rating(4.8, 1)))
	var recs []*kgo.Record
	for i := range 6 {
		r := u.offerRec(offer(fmt.Sprintf("o%d", i), 1, 5000))
		r.Partition = int32(i % 2)
		recs = append(recs, r)
	}
	if got := u.apply(recs...); len(got) != 6 {
		t.Fatalf("initial events: %v", got)
	}
	u.a.SetPartitions([]int32{0}) // partition 1 moved away (or not back yet)
	if err := u.a.Apply(u.ctx, []*kgo.Record{u.sellerRec(seller("SUSPENDED", 2))}); err != nil {
		t.Fatal(err)
	}
	for {
		more, err := u.a.RunJobChunk()
		if err != nil {
			t.Fatal(err)
		}
		if !more {
			break
		}
	}
	got := u.apply()
	if len(got) != 3 {
		t.Fatalf("with partition 0 owned: %d events, want 3 (its offers leave trusted): %v", len(got), got)
	}
	if jobs, err := u.store.AllJobs(); u.a.PendingJobs() != 0 || err != nil || len(jobs) != 1 || jobs[0].Partition != 1 {
		t.Fatalf("pending %d (owned) / %v %v (stored), want 0 / one of partition 1: the job waits for it", u.a.PendingJobs(), jobs, err)
	}
	if more, err := u.a.RunJobChunk(); more || err != nil {
		t.Fatalf("RunJobChunk with nothing runnable: %v, %v", more, err)
	}
	u.a.SetPartitions([]int32{0, 1}) // partition 1 is back
	got = u.apply()
	if len(got) != 3 {
		t.Fatalf("after partition 1 came back: %d events, want 3: %v", len(got), got)
	}
	for _, ev := range got {
		if !slices.Equal(ev, []string{"REMOVE trusted/ceneo", "REMOVE trusted/hook"}) {
			t.Errorf("event %v, want the offer to leave trusted", ev)
		}
	}
	if jobs, err := u.store.AllJobs(); err != nil || len(jobs) != 0 {
		t.Fatalf("jobs left: %v %v", jobs, err)
	}
}
