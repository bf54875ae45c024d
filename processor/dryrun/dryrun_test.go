package dryrun_test

import (
	"context"
	"errors"
	"hash/crc32"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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
	"github.com/feedmill/feedmill/internal/synth"
	"github.com/feedmill/feedmill/processor"
	"github.com/feedmill/feedmill/processor/dryrun"
	"github.com/feedmill/feedmill/state"
)

// partitions is the offers partition count of the test store.
const partitions = 2

// partitionOf is the offers partition of an offer id in the test store.
func partitionOf(id string) int32 { return int32(crc32.ChecksumIEEE([]byte(id)) % partitions) }

// env is an Applier owning both partitions of a temp Pebble store, fed
// through the real apply path (the pattern of processor/applier_test.go's
// newApplierEnv), with the group topics played back in process, and a
// dry-run Runner over the same store.
type env struct {
	t       testing.TB
	ctx     context.Context
	a       *processor.Applier
	store   *state.Store
	serde   *records.Serde
	set     *feeds.Set // in force
	cfg     []config.Feed
	tmpl    []config.Template
	ids     [3]int
	now     time.Time
	offset  int64
	relayed map[int32]uint64
	runner  *dryrun.Runner
}

func newEnv(t testing.TB, fs []config.Feed, ts []config.Template) *env {
	t.Helper()
	ctx := context.Background()
	reg := srfake.New()
	t.Cleanup(reg.Close)
	cl, err := sr.NewClient(sr.URLs(reg.URL()))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: ctx, serde: records.NewSerde(cl), cfg: fs, tmpl: ts, now: time.UnixMilli(1_800_000_000_000), relayed: map[int32]uint64{}}
	for i, k := range []records.Kind{records.KindOffer, records.KindSeller, records.KindRating} {
		if e.ids[i], err = e.serde.Register(ctx, []string{"offers", "sellers", "ratings"}[i]+"-value", k); err != nil {
			t.Fatal(err)
		}
	}
	evID, err := e.serde.Register(ctx, "feed-events-value", records.KindFeedEvent)
	if err != nil {
		t.Fatal(err)
	}
	if e.set, err = feeds.Compile(fs, ts); err != nil {
		t.Fatal(err)
	}
	e.store, err = state.Open(filepath.Join(t.TempDir(), "state"), e.serde, state.Options{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.store.Close() })
	e.a, err = processor.NewApplier(processor.ApplierDeps{
		Store: e.store, Feeds: e.set, Serde: e.serde, Topics: config.Default().Kafka.Topics,
		Processor: config.Processor{MaxBatchRecords: 200, SellerChunk: 50}, Retention: time.Hour,
		EventSchemaID: evID, Now: func() time.Time { return e.now },
		Metrics: processor.NewMetrics(prometheus.NewRegistry()), Logger: zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.a.SetPartitions([]int32{0, 1}); err != nil {
		t.Fatal(err)
	}
	e.runner = &dryrun.Runner{
		Store: e.store, Serde: e.serde,
		Coverage: func() ([]int32, int32) { return []int32{0, 1}, partitions },
		Now:      func() time.Time { return e.now },
	}
	return e
}

// record turns a generated change into an input record.
func (e *env) record(ch synth.Change) *kgo.Record {
	e.offset++
	r := &kgo.Record{Key: []byte(ch.Key), Offset: e.offset, Timestamp: e.now}
	var err error
	switch ch.Topic {
	case synth.KindOffers:
		r.Topic, r.Partition = "offers", partitionOf(ch.Key)
		if !ch.Tombstone {
			r.Value, err = e.serde.AppendOffer(nil, e.ids[0], ch.Offer)
		}
	case synth.KindSellers:
		r.Topic = "sellers"
		if !ch.Tombstone {
			r.Value, err = e.serde.AppendSeller(nil, e.ids[1], ch.Seller)
		}
	case synth.KindRatings:
		r.Topic = "ratings"
		if !ch.Tombstone {
			r.Value, err = e.serde.AppendRating(nil, e.ids[2], ch.Rating)
		}
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// apply applies recs, runs the seller jobs, and plays the group topics
// until no candidacy or decision is left (the relay's part: the outbox
// is read and deleted).
func (e *env) apply(recs []*kgo.Record) {
	e.t.Helper()
	topics := config.Default().Kafka.Topics
	for len(recs) > 0 {
		if err := e.a.Apply(e.ctx, recs); err != nil {
			e.t.Fatal(err)
		}
		for {
			more, err := e.a.RunJobChunk()
			if err != nil {
				e.t.Fatal(err)
			}
			if !more {
				break
			}
		}
		recs = nil
		for _, p := range e.store.OutboxPartitions() {
			from := e.relayed[p]
			_, err := e.store.ScanOutbox(p, from, 1<<30, func(seq uint64, r *state.OutboxRecord) error {
				e.relayed[p] = seq + 1
				if r.Topic == topics.GroupCandidates || r.Topic == topics.GroupDecisions {
					e.offset++
					recs = append(recs, &kgo.Record{Topic: r.Topic, Partition: r.Partition, Key: slices.Clone(r.Key),
						Value: slices.Clone(r.Value), Offset: e.offset, Timestamp: e.now})
				}
				return nil
			})
			if err != nil {
				e.t.Fatal(err)
			}
			if e.relayed[p] > from {
				if err := e.store.DeleteOutbox(p, from, e.relayed[p]-1); err != nil {
					e.t.Fatal(err)
				}
			}
		}
	}
}

// generate applies a synthetic catalog and changes changes of its stream
// and returns the generator (its State is the final truth).
func (e *env) generate(offers, changes int) *synth.Generator {
	e.t.Helper()
	gen, err := synth.New(7, synth.Options{Offers: offers, Products: offers / 4, HostileFraction: -1, Now: func() time.Time { return e.now }})
	if err != nil {
		e.t.Fatal(err)
	}
	var recs []*kgo.Record
	if err := gen.Initial(func(ch synth.Change) error { recs = append(recs, e.record(ch)); return nil }); err != nil {
		e.t.Fatal(err)
	}
	e.apply(recs)
	for range changes / 200 {
		recs = recs[:0]
		for range 200 {
			recs = append(recs, e.record(gen.Next()))
		}
		e.apply(recs)
	}
	return gen
}

// reference evaluates feed definition f from scratch over st, the
// generator's final state, in the partitions owned: every filter, and for
// a grouped feed the best candidate of each key (ties to the lowest offer
// id). It returns the members, their rendered items and, for a grouped
// feed, the winner of each key.
func (e *env) reference(f config.Feed, st synth.State, owned []int32) (members map[string]string, winners map[string]string) {
	e.t.Helper()
	return reference(e.t, f, e.tmpl, e.set, st, e.now, func(id string) bool { return slices.Contains(owned, partitionOf(id)) })
}

// reference evaluates f (with templates) from scratch over st at now, for
// the offers keep keeps, under the size rule of the set in force.
func reference(t testing.TB, f config.Feed, templates []config.Template, inForce *feeds.Set, st synth.State, now time.Time,
	keep func(id string) bool) (members map[string]string, winners map[string]string) {
	t.Helper()
	set, err := feeds.CompileFeed(f, templates)
	if err != nil {
		t.Fatal(err)
	}
	fd := set.Feeds()[0]
	budget, err := processor.NewEventBudget(0, inForce)
	if err != nil {
		t.Fatal(err)
	}
	ev := set.NewEvaluator()
	hit := make([]bool, 1)
	type best struct {
		id    string
		order state.Order
		view  *feeds.View
	}
	groups := map[string]best{}
	members = map[string]string{}
	for id, o := range st.Offers {
		if !keep(id) || !budget.Fits(o) {
			continue
		}
		oc := *o
		records.DerivePrice(&oc)
		v := &feeds.View{Offer: &oc, Seller: st.Sellers[o.SellerID], Rating: st.Ratings[o.SellerID]}
		ev.Match(v, now, hit)
		if !hit[0] {
			continue
		}
		if !fd.Grouped() {
			members[id] = string(ev.AppendItem(nil, fd.Template, v, now))
			continue
		}
		key, val, pickMax, ok := ev.Group(fd, v, now, nil)
		if !ok {
			continue
		}
		order := state.OrderFloat(val.Num, pickMax)
		if val.IsTime {
			order = state.OrderTime(val.Time, pickMax)
		}
		if b, seen := groups[string(key)]; !seen || order < b.order || order == b.order && id < b.id {
			groups[string(key)] = best{id: id, order: order, view: v}
		}
	}
	if !fd.Grouped() {
		return members, nil
	}
	winners = map[string]string{}
	for k, b := range groups {
		winners[k] = b.id
		members[b.id] = string(ev.AppendItem(nil, fd.Template, b.view, now))
	}
	return members, winners
}

// check runs a dry run of f and compares it with the reference: the
// members, the samples and their items, the grouped feed's winners, and
// the adds, removes and unchanged against the reference of the feed of
// the same id in force (the stream's stored membership must equal it).
func (e *env) check(f config.Feed, st synth.State, owned []int32) *dryrun.Result {
	e.t.Helper()
	set, err := dryrun.Compile(f, e.tmpl)
	if err != nil {
		e.t.Fatalf("compile %s: %v", f.ID, err)
	}
	res, err := e.runner.Run(e.ctx, set, e.set, dryrun.Options{})
	if err != nil {
		e.t.Fatalf("dry run of %s: %v", f.ID, err)
	}
	want, winners := e.reference(f, st, owned)
	if !res.Complete || res.Grouped != (f.Group != nil) {
		e.t.Errorf("%s: complete %v grouped %v", f.ID, res.Complete, res.Grouped)
	}
	if res.Members != int64(len(want)) {
		e.t.Errorf("%s: %d members, the reference has %d", f.ID, res.Members, len(want))
	}
	if n := min(len(want), dryrun.DefaultSamples); len(res.Samples) != n {
		e.t.Errorf("%s: %d samples, want %d", f.ID, len(res.Samples), n)
	}
	for _, s := range res.Samples {
		item, ok := want[s.OfferID]
		switch {
		case !ok:
			e.t.Errorf("%s: sample %s is not a member of the reference", f.ID, s.OfferID)
		case s.Item != strings.TrimSuffix(item, "\n"):
			e.t.Errorf("%s: sample %s renders\n%s\nthe reference\n%s", f.ID, s.OfferID, s.Item, item)
		case winners != nil && winners[s.GroupKey] != s.OfferID:
			e.t.Errorf("%s: sample %s is the winner of %q, the reference's is %s", f.ID, s.OfferID, s.GroupKey, winners[s.GroupKey])
		}
	}
	var cur config.Feed
	inForce := false
	for _, c := range e.cfg {
		if c.ID == f.ID {
			cur, inForce = c, true
		}
	}
	if !inForce {
		if res.Current != nil {
			e.t.Errorf("%s: compared with a feed in force: %+v", f.ID, res.Current)
		}
		return res
	}
	if res.Current == nil {
		e.t.Fatalf("%s: no comparison with the feed in force", f.ID)
	}
	// The stored members are the stream's: a grouped feed's winners over
	// every partition, of which those in the owned ones are stored here.
	old, _ := e.reference(cur, st, []int32{0, 1})
	maps.DeleteFunc(old, func(id, _ string) bool { return !slices.Contains(owned, partitionOf(id)) })
	checkComparison(e.t, f.ID, res.Current, want, old)
	return res
}

// checkComparison checks a dry run's comparison c against the difference
// of the references of the dry run's feed (want) and of the feed in
// force (old).
func checkComparison(t testing.TB, id string, c *dryrun.Comparison, want, old map[string]string) {
	t.Helper()
	var adds, removes []string
	unchanged := 0
	for id := range want {
		if _, ok := old[id]; ok {
			unchanged++
		} else {
			adds = append(adds, id)
		}
	}
	for id := range old {
		if _, ok := want[id]; !ok {
			removes = append(removes, id)
		}
	}
	slices.Sort(adds)
	slices.Sort(removes)
	if c.Members != int64(len(old)) || c.Adds != int64(len(adds)) || c.Removes != int64(len(removes)) || c.Unchanged != int64(unchanged) {
		t.Errorf("%s: in force %d, +%d -%d =%d; the references' difference: in force %d, +%d -%d =%d",
			id, c.Members, c.Adds, c.Removes, c.Unchanged, len(old), len(adds), len(removes), unchanged)
	}
	if w := adds[:min(len(adds), dryrun.DefaultSamples)]; !slices.Equal(c.SampleAdds, w) {
		t.Errorf("%s: sample adds %v, want %v", id, c.SampleAdds, w)
	}
	if w := removes[:min(len(removes), dryrun.DefaultSamples)]; !slices.Equal(c.SampleRemoves, w) {
		t.Errorf("%s: sample removes %v, want %v", id, c.SampleRemoves, w)
	}
}

func exampleFeeds() ([]config.Feed, []config.Template) {
	fs, ts := synth.ExampleFeeds()
	return append(fs, synth.GroupedFeeds()...), ts
}

// TestDryRunEqualsFromScratch: a dry run of each feed in force, over a
// store filled through the applier from a generated catalog and stream,
// holds what a from-scratch evaluation of the generator's final state
// holds (grouped feeds: each key's best offer), and nothing is added or
// removed against the feed in force.
func TestDryRunEqualsFromScratch(t *testing.T) {
	fs, ts := exampleFeeds()
	e := newEnv(t, fs, ts)
	st := e.generate(800, 2000).State()
	empty := 0
	for _, f := range fs {
		t.Run(f.ID, func(t *testing.T) {
			e.t = t
			res := e.check(f, st, []int32{0, 1})
			if c := res.Current; c.Adds != 0 || c.Removes != 0 {
				t.Errorf("the same definition adds %d and removes %d", c.Adds, c.Removes)
			}
			if res.Members == 0 {
				empty++
			}
			if !slices.Equal(res.Partitions, []int32{0, 1}) || res.PartitionsTotal != partitions || len(res.Notes) != 0 {
				t.Errorf("partitions %v of %d, notes %q: want both, no notes", res.Partitions, res.PartitionsTotal, res.Notes)
			}
		})
	}
	if empty > 1 {
		t.Errorf("%d feeds of %d have no members: the test catalog does not exercise them", empty, len(fs))
	}
}

// TestDryRunAgainstFeedInForce: a definition narrowing (or changing) a
// feed in force adds and removes the difference of the two from-scratch
// evaluations, for plain and grouped feeds; a new id compares with
// nothing; with one partition of two owned, only its offers count and a
// note says so.
func TestDryRunAgainstFeedInForce(t *testing.T) {
	fs, ts := exampleFeeds()
	e := newEnv(t, fs, ts)
	st := e.generate(800, 2000).State()
	byID := func(id string) config.Feed {
		for _, f := range fs {
			if f.ID == id {
				return f
			}
		}
		t.Fatalf("no feed %s", id)
		return config.Feed{}
	}
	narrowed := byID("phones-gmc")
	narrowed.Filter += " && offer.price < 1500"
	grouped := byID("cheapest-per-product")
	grouped.Filter += ` && offer.condition == "NEW"`
	repicked := byID("cheapest-per-product")
	repicked.Group = &config.Group{By: repicked.Group.By, Pick: config.PickMax, Of: repicked.Group.Of}
	fresh := config.Feed{ID: "not-in-force", Filter: `offer.stock > 3`, Template: "partner-x"}
	for _, f := range []config.Feed{narrowed, grouped, repicked, fresh} {
		t.Run(f.ID, func(t *testing.T) {
			e.t = t
			res := e.check(f, st, []int32{0, 1})
			if c := res.Current; f.ID == narrowed.ID && (c.Adds != 0 || c.Removes == 0) {
				t.Errorf("narrowed filter: +%d -%d; want removes only", c.Adds, c.Removes)
			}
		})
	}
	e.runner.Coverage = func() ([]int32, int32) { return []int32{1}, partitions }
	for _, f := range []config.Feed{narrowed, grouped} {
		t.Run("one partition/"+f.ID, func(t *testing.T) {
			e.t = t
			res := e.check(f, st, []int32{1})
			if !slices.Equal(res.Partitions, []int32{1}) || len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "1 of the 2 offers partitions") {
				t.Errorf("partitions %v, notes %q", res.Partitions, res.Notes)
			}
			if f.Group != nil && !strings.Contains(res.Notes[0], "groups span partitions") {
				t.Errorf("grouped feed's note %q", res.Notes[0])
			}
		})
	}
}

// TestDryRunErrors: run-time failures are counted by kind with the first
// message.
func TestDryRunErrors(t *testing.T) {
	fs, ts := exampleFeeds()
	e := newEnv(t, fs, ts)
	e.generate(200, 0)
	f := config.Feed{ID: "errs", Filter: `offer.attributes["nope"] > 3`, Template: "ceneo"}
	set, err := dryrun.Compile(f, ts)
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.runner.Run(e.ctx, set, e.set, dryrun.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors.Filter == 0 || res.Errors.Total != res.Errors.Filter+res.Errors.Template+res.Errors.Budget ||
		!strings.HasPrefix(res.Errors.First, "filter error on offer ") {
		t.Errorf("errors %+v, want filter errors with the first message", res.Errors)
	}
}

// TestDryRunTimeBudget: at the time budget the run stops and returns what
// it counted, Complete false.
func TestDryRunTimeBudget(t *testing.T) {
	fs, ts := exampleFeeds()
	e := newEnv(t, fs, ts)
	e.generate(1200, 0)
	calls := 0
	e.runner.Now = func() time.Time {
		calls++
		if calls <= 2 { // the start and the first partition's check
			return e.now
		}
		return e.now.Add(time.Hour)
	}
	set, err := dryrun.Compile(fs[0], ts)
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.runner.Run(e.ctx, set, e.set, dryrun.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Complete || res.Scanned == 0 || res.Scanned >= 1200 || len(res.Partitions) != 0 {
		t.Errorf("complete %v, scanned %d of 1200, partitions %v: want stopped within the first partition", res.Complete, res.Scanned, res.Partitions)
	}
	if len(res.Notes) == 0 || !strings.Contains(res.Notes[0], "time budget (1s)") {
		t.Errorf("notes %q", res.Notes)
	}
	if res.Current == nil || res.Current.Members == 0 {
		t.Errorf("the comparison counts what was scanned: %+v", res.Current)
	}
}

// TestDryRunOneAtATime: a second run while one runs gets ErrBusy; once
// the first returns, the next one runs.
func TestDryRunOneAtATime(t *testing.T) {
	fs, ts := exampleFeeds()
	e := newEnv(t, fs, ts)
	e.generate(50, 0)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	calls := 0
	e.runner.Now = func() time.Time {
		calls++
		if calls == 2 { // inside the first run, after it started
			once.Do(func() { close(entered) })
			<-release
		}
		return e.now
	}
	set, err := dryrun.Compile(fs[0], ts)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := e.runner.Run(e.ctx, set, e.set, dryrun.Options{})
		done <- err
	}()
	<-entered
	if _, err := e.runner.Run(e.ctx, set, e.set, dryrun.Options{}); !errors.Is(err, dryrun.ErrBusy) {
		t.Errorf("second run: %v, want ErrBusy", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("first run: %v", err)
	}
	if _, err := e.runner.Run(e.ctx, set, e.set, dryrun.Options{}); err != nil {
		t.Errorf("run after the first ended: %v", err)
	}
}

// TestCompile: the config's checks of a feed and the compiler's, with
// paths relative to the definition, each path once.
func TestCompile(t *testing.T) {
	_, ts := exampleFeeds()
	_, err := dryrun.Compile(config.Feed{ID: "x", Filter: "", Template: "partner-x", Destinations: []string{"a", "a"},
		Group: &config.Group{By: "offer.nope", Pick: "min", Of: "offer.price"}}, ts)
	var ce *feeds.CompileError
	if !errors.As(err, &ce) {
		t.Fatalf("Compile: %v, want a *feeds.CompileError", err)
	}
	var paths []string
	for _, p := range ce.Problems {
		paths = append(paths, p.Path)
	}
	if want := []string{"filter", "group.by", "destinations[1]"}; !slices.Equal(paths, want) {
		t.Errorf("paths %q, want %q (problems %v)", paths, want, ce.Problems)
	}
	if _, err := dryrun.Compile(config.Feed{ID: "x", Filter: "true", Template: "partner-x"}, ts); err != nil {
		t.Errorf("a good definition: %v", err)
	}
}
