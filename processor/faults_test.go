package processor_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/internal/app"
	"github.com/feedmill/feedmill/internal/apptest"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/internal/synth"
	"github.com/feedmill/feedmill/internal/testenv"
	"github.com/feedmill/feedmill/processor"
	"github.com/feedmill/feedmill/state"
)

// gatheredValue reads a gauge or counter without labels from reg.
func gatheredValue(t testing.TB, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var m *dto.Metric = mf.GetMetric()[0]
		if g := m.GetGauge(); g != nil {
			return g.GetValue()
		}
		return m.GetCounter().GetValue()
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

func headerMap(r *kgo.Record) map[string]string {
	h := map[string]string{}
	for _, hd := range r.Headers {
		h[hd.Key] = string(hd.Value)
	}
	return h
}

// hugeOffer is o with enough images to make its event over 1 MB (each
// image within the decode limits).
func hugeOffer(o records.Offer, version int64) records.Offer {
	o.Version = version
	o.Images = nil
	for i := range 200 {
		o.Images = append(o.Images, fmt.Sprintf("https://img.example/%d/%s", i, strings.Repeat("x", 7000)))
	}
	return o
}

// One offer whose event would be larger than the broker accepts, among
// normal traffic: it is rejected at apply time with the reason, it is in no
// feed while it is too large, every other event is delivered exactly once,
// and the outbox depth metric reads 0 at the end.
func TestOversizedOfferAmongTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx := context.Background()
	env := testenv.New(t, allTopics...)
	// The input topic takes the large record (upstream's choice); the
	// events topic keeps the broker default of about 1 MiB.
	big := "8388608"
	if _, err := kadm.NewClient(env.Client(t)).AlterTopicConfigs(ctx,
		[]kadm.AlterConfig{{Name: "max.message.bytes", Value: &big}}, "offers"); err != nil {
		t.Fatal(err)
	}
	example, templates := synth.ExampleFeeds()
	cfg := testConfig(t, env, example, templates)
	set, err := feeds.Compile(cfg.Feeds, cfg.Templates)
	if err != nil {
		t.Fatal(err)
	}
	gen, prod, serde := apptest.ProduceCatalog(t, env, cfg.Kafka.Topics, 7, synth.Options{Offers: 1500, Sellers: 10},
		kgo.ProducerBatchMaxBytes(8<<20))
	run := startPipeline(t, env, cfg, testLogger(t))
	for range 1500 {
		if err := prod.Produce(ctx, gen.Next()); err != nil {
			t.Fatal(err)
		}
	}

	// Two members: A grows too large and shrinks back, B grows and stays
	// too large; C is a new offer that is too large from the start.
	st := gen.State()
	before, _ := expectedMembers(set, st, time.Now())
	var ids []string
	for id := range before {
		ids = append(ids, id)
	}
	if len(ids) < 2 {
		t.Fatalf("catalog has %d members, need 2", len(ids))
	}
	a, b := *st.Offers[min(ids[0], ids[1])], *st.Offers[max(ids[0], ids[1])]
	aHuge, bHuge := hugeOffer(a, a.Version+10), hugeOffer(b, b.Version+10)
	aBack := a
	aBack.Version, aBack.Title = a.Version+20, a.Title+" (back)"
	cHuge := hugeOffer(a, 1)
	cHuge.ID = "zz-huge-new"
	for _, o := range []*records.Offer{&aHuge, &bHuge, &cHuge, &aBack} {
		if err := prod.Produce(ctx, synth.Change{Topic: synth.KindOffers, Key: o.ID, Offer: o}); err != nil {
			t.Fatal(err)
		}
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, env, run, cfg.Kafka.Topics)

	model := newEventModel(set)
	for _, r := range consumeAll(t, env, cfg.Kafka.Topics.Events) {
		if n := len(r.Key) + len(r.Value); n > cfg.Processor.MaxEventBytes {
			t.Errorf("event of offer %s is %d bytes, over max_event_bytes", r.Key, n)
		}
		var ev records.FeedEvent
		if err := serde.DecodeFeedEvent(ctx, r.Value, &ev); err != nil {
			t.Fatal(err)
		}
		model.apply(r, &ev)
	}
	t.Logf("events %d, entries %v, members %d", model.events, model.actions, len(model.members))
	if model.resends != 0 {
		t.Errorf("%d events were delivered more than once", model.resends)
	}
	st.Offers[a.ID] = &aBack
	delete(st.Offers, b.ID) // too large: in no feed
	want, wantItems := expectedMembers(set, st, time.Now())
	if len(model.members[b.ID]) != 0 {
		t.Errorf("too-large offer %s is still announced in %v", b.ID, model.members[b.ID])
	}
	model.checkFinal(t, want, wantItems)

	rejects := consumeAll(t, env, cfg.Kafka.Topics.Rejects)
	if len(rejects) != 3 {
		t.Errorf("rejects: got %d records, want 3 (one per too-large record)", len(rejects))
	}
	for _, r := range rejects {
		h := headerMap(r)
		if !strings.Contains(h["error"], "offer too large") || h["source-topic"] != "offers" || r.Value != nil {
			t.Errorf("reject of %s: headers %v, value of %d bytes", r.Key, h, len(r.Value))
		}
		if n, _ := strconv.Atoi(h["value-omitted-bytes"]); n < 1<<20 {
			t.Errorf("reject of %s: value-omitted-bytes %q", r.Key, h["value-omitted-bytes"])
		}
	}
	if d := gatheredValue(t, run.Registry, "feedmill_outbox_depth"); d != 0 {
		t.Errorf("feedmill_outbox_depth = %v after the outbox drained", d)
	}
	if n := gatheredValue(t, run.Registry, "feedmill_unproducible_records_total"); n != 0 {
		t.Errorf("%v records reached Kafka too large: the size rule should have stopped them", n)
	}
}

// A fresh state dir under a group that has committed offsets rebuilds the
// whole membership from the beginning of the topics.
func TestEmptyStateDirRebuildsUnderExistingGroup(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx := context.Background()
	env := testenv.New(t, allTopics...)
	example, templates := synth.ExampleFeeds()
	cfg := testConfig(t, env, example, templates)
	// The same static member before and after the loss (an id from the
	// config survives it; one persisted in the lost dir would make the
	// group wait for the old member's session timeout first).
	cfg.Kafka.InstanceID = "host-a"
	apptest.ProduceCatalog(t, env, cfg.Kafka.Topics, 11, synth.Options{Offers: 2000, Sellers: 10})
	run := startPipeline(t, env, cfg, testLogger(t))
	waitCaughtUp(t, env, run, cfg.Kafka.Topics)
	first, err := run.Store.Counts(nil)
	if err != nil {
		t.Fatal(err)
	}
	run.Stop()

	// The group's offsets are at the end of the topic now.
	offs, err := kadm.NewClient(env.Client(t)).FetchOffsets(ctx, cfg.Kafka.GroupID)
	if err != nil || len(offs) == 0 {
		t.Fatalf("group %s has no committed offsets (%v): the test would prove nothing", cfg.Kafka.GroupID, err)
	}

	lost := *cfg
	lost.State.Dir = t.TempDir()
	run = startPipeline(t, env, &lost, testLogger(t))
	waitCaughtUp(t, env, run, cfg.Kafka.Topics)
	second, err := run.Store.Counts(nil)
	if err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	for _, f := range example {
		total += first[f.ID]
		if first[f.ID] != second[f.ID] {
			t.Errorf("feed %s: %d members on the first state dir, %d after rebuilding an empty one", f.ID, first[f.ID], second[f.ID])
		}
	}
	if total == 0 {
		t.Fatal("no feed has members: the test would prove nothing")
	}
}

// runUntilError runs an app on cfg and returns Run's error (it must stop
// by itself).
func runUntilError(t *testing.T, cfg *config.Config) error {
	t.Helper()
	a, err := app.New(cfg, app.Deps{Logger: testLogger(t)})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err = a.Run(ctx)
	if ctx.Err() != nil {
		t.Fatal("the app did not stop by itself")
	}
	return err
}

// A state dir built for other topics, another group or other partition
// counts is refused with an error that says what differs and what to do.
func TestStateDirOfAnotherConfigurationIsRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	env := testenv.New(t, append(allTopics, "offers-eu")...)
	env.CreateTopic(t, 7, "offers-wide")
	example, templates := synth.ExampleFeeds()
	cfg := testConfig(t, env, example, templates)
	run := startPipeline(t, env, cfg, testLogger(t))
	waitCaughtUp(t, env, run, cfg.Kafka.Topics)
	run.Stop()

	tests := []struct {
		name   string
		change func(c *config.Config)
		want   string
	}{
		{"other offers topic", func(c *config.Config) { c.Kafka.Topics.Offers = "offers-eu" }, `kafka.topics.offers: stored "offers", now "offers-eu"`},
		{"other group", func(c *config.Config) { c.Kafka.GroupID = "other" }, `kafka.group_id: stored "feedmill", now "other"`},
		{"other partition count", func(c *config.Config) { c.Kafka.Topics.Offers = "offers-wide" }, "partitions of offers topic: stored 4, now 7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := *cfg
			tt.change(&c)
			err := runUntilError(t, &c)
			if !errors.Is(err, state.ErrIdentity) {
				t.Fatalf("got %v, want a state identity error", err)
			}
			for _, s := range []string{tt.want, cfg.State.Dir, "empty directory"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q should contain %q", err, s)
				}
			}
		})
	}
	// The original configuration still runs on it.
	run = startPipeline(t, env, cfg, testLogger(t))
	waitCaughtUp(t, env, run, cfg.Kafka.Topics)
}

// An error of work run on the applier goroutine is the state failing: it
// stops the pipeline and the app with that error, instead of being
// swallowed.
func TestExecErrorStopsTheApp(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	env := testenv.New(t, allTopics...)
	example, templates := synth.ExampleFeeds()
	cfg := testConfig(t, env, example, templates)
	a, err := app.New(cfg, app.Deps{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	boom := errors.New("state broken")
	if err := a.Pipeline.Exec(ctx, func(*processor.Applier) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Exec: %v", err)
	}
	if err := <-done; !errors.Is(err, boom) {
		t.Fatalf("app Run: %v, want the applier's error", err)
	}
}

// A state dir the changelog has never seen (one from before the changelog,
// or a changelog deleted) is copied into it at start, so a new owner of
// its partitions restores every offer, not only those changed since.
func TestChangelogSeededFromLocalState(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx := context.Background()
	env := testenv.New(t, allTopics...)
	example, templates := synth.ExampleFeeds()
	example = append(example, synth.GroupedFeeds()...) // group state is copied too
	cfg := testConfig(t, env, example, templates)
	cfg.Kafka.InstanceID = "host-a"
	gen, prod, serde := apptest.ProduceCatalog(t, env, cfg.Kafka.Topics, 13, synth.Options{Offers: 1500, Sellers: 10, Products: 100})
	run := startPipeline(t, env, cfg, testLogger(t))
	waitCaughtUp(t, env, run, cfg.Kafka.Topics)
	want, err := run.Store.Counts(nil)
	if err != nil {
		t.Fatal(err)
	}
	run.Stop()
	// The changelog is lost; the state dir is not.
	adm := kadm.NewClient(env.Client(t))
	if _, err := adm.DeleteTopics(ctx, cfg.Kafka.Topics.Changelog); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; {
		md, err := adm.Metadata(ctx, cfg.Kafka.Topics.Changelog)
		if err != nil {
			t.Fatal(err)
		}
		if td, ok := md.Topics[cfg.Kafka.Topics.Changelog]; !ok || td.Err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the changelog topic was not deleted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	run = startPipeline(t, env, cfg, testLogger(t))
	waitCaughtUp(t, env, run, cfg.Kafka.Topics)
	for deadline := time.Now().Add(time.Minute); ; { // every partition copied
		ends, err := adm.ListEndOffsets(ctx, cfg.Kafka.Topics.Changelog)
		if err != nil {
			t.Fatal(err)
		}
		copied := 0
		ends.Each(func(o kadm.ListedOffset) {
			if o.Offset > 0 {
				copied++
			}
		})
		if copied == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 4 partitions copied into the changelog", copied)
		}
		time.Sleep(20 * time.Millisecond)
	}
	run.Stop()
	// A new owner (an empty state dir) restores it all from the changelog.
	fresh := *cfg
	fresh.State.Dir = t.TempDir()
	run = startPipeline(t, env, &fresh, testLogger(t))
	waitCaughtUp(t, env, run, cfg.Kafka.Topics)
	got, err := run.Store.Counts(nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := gatheredValue(t, run.Registry, "feedmill_restored_offers_total"); n < 1500 {
		t.Errorf("restored %v offers, want the whole catalog (1500)", n)
	}
	for _, f := range example {
		if got[f.ID] != want[f.ID] {
			t.Errorf("feed %s: %d members before, %d after the restore", f.ID, want[f.ID], got[f.ID])
		}
	}
	// The restored state (groups included) goes on from there: after
	// more changes the events still end at the reference.
	for range 3000 {
		if err := prod.Produce(ctx, gen.Next()); err != nil {
			t.Fatal(err)
		}
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, env, run, cfg.Kafka.Topics)
	model, set := replayEvents(t, env, cfg, serde, nil)
	model.checkGenerated(t, set, gen)
}
