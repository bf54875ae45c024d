package processor_test

import (
	"context"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/internal/apptest"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/internal/synth"
	"github.com/feedmill/feedmill/internal/testenv"
)

// malformed is one bad input record and the reject reason it must get.
type malformed struct {
	name   string
	topic  string
	key    string
	value  []byte
	reason string // substring of the error header
}

func wire(id int, body []byte) []byte {
	b := []byte{0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(id))
	return append(b, body...)
}

// malformedRecords builds a record of every reject kind.
func malformedRecords(t *testing.T, ctx context.Context, env *testenv.Env, serde *records.Serde, p *synth.Producer, sample *records.Offer) []malformed {
	t.Helper()
	offerID := p.SchemaID(synth.KindOffers)
	enc := func(o records.Offer) []byte {
		b, err := serde.AppendOffer(nil, offerID, &o)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	neg := *sample
	neg.ID, neg.PriceMinor = "bad-negative-price", -5
	mismatch := *sample
	mismatch.ID = "bad-key-mismatch"
	noID := *sample
	noID.ID = ""
	good := enc(*sample)

	// A writer schema with an enum symbol our reader does not know.
	text := strings.Replace(serde.SchemaText(records.KindOffer), `"REFURBISHED"]`, `"REFURBISHED","BROKEN"]`, 1)
	ss, err := env.Registry(t).CreateSchema(ctx, "offers-value", sr.Schema{Schema: text, Type: sr.TypeAvro})
	if err != nil {
		t.Fatalf("register broken-enum schema: %v", err)
	}
	ws, err := avro.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	broken := *sample
	broken.ID, broken.Condition = "bad-enum", "BROKEN"
	brokenBody, err := avro.Marshal(ws, &broken)
	if err != nil {
		t.Fatal(err)
	}
	sellerBody, err := serde.AppendSeller(nil, p.SchemaID(synth.KindSellers), &records.Seller{
		ID: "s-bad", Name: "x", Country: "PL", Status: "ACTIVE", UpdatedAt: time.UnixMilli(1), Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	ratingBody, err := serde.AppendRating(nil, p.SchemaID(synth.KindRatings), &records.Rating{
		SellerID: "s-bad-rating", Average: 7.5, Count: 3, PositivePct: 50, UpdatedAt: time.UnixMilli(1), Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	return []malformed{
		{"not wire format", "offers", "bad-1", []byte("hello, not avro"), "magic"},
		{"short header", "offers", "bad-2", []byte{0, 0, 1}, ""},
		{"unknown schema id", "offers", "bad-3", wire(987654, good[5:]), "unknown schema id"},
		{"garbage body", "offers", "bad-4", wire(offerID, []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2}), ""},
		{"trailing bytes", "offers", sample.ID, append(append([]byte(nil), good...), 1, 2, 3), ""},
		{"negative price", "offers", "bad-negative-price", enc(neg), "price"},
		{"key differs from id", "offers", "bad-key-other", enc(mismatch), "key"},
		{"missing id", "offers", "", enc(noID), ""},
		{"unknown enum symbol", "offers", "bad-enum", wire(ss.ID, brokenBody), ""},
		{"seller record on offers", "offers", "s-bad", sellerBody, ""},
		{"rating out of range", "ratings", "s-bad-rating", ratingBody, "average"},
		{"seller key mismatch", "sellers", "s-other", sellerBody, "key"},
		{"seller garbage", "sellers", "s-garbage", []byte{0, 0, 0, 0, 1, 0xff}, ""},
	}
}

func TestStreamEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx := context.Background()
	env := testenv.New(t, allTopics...)
	t.Log("env started")
	example, templates := synth.ExampleFeeds()
	fs := append(example, synth.FeedSet(60, 7)...)
	cfg := testConfig(t, env, fs, templates)
	set, err := feeds.Compile(cfg.Feeds, cfg.Templates)
	if err != nil {
		t.Fatal(err)
	}

	// A catalog where each seller has hundreds of offers.
	gen, prod, serde := apptest.ProduceCatalog(t, env, cfg.Kafka.Topics, 42, synth.Options{Offers: 4000, Sellers: 12, HostileFraction: 0.02})

	t.Log("initial catalog produced")
	// Start the processor while the stream is still coming.
	run := startPipeline(t, env, cfg, testLogger(t))
	ops := map[synth.Op]int{}
	for i := 0; i < 6000; i++ {
		ch := gen.Next()
		ops[ch.Op]++
		if err := prod.Produce(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	// Explicit seller suspension and re-activation of a seller with
	// hundreds of offers, then a tombstone of another seller.
	st := gen.State()
	var big *records.Seller
	for _, s := range st.Sellers {
		if big == nil || s.ID < big.ID {
			big = s
		}
	}
	sus := *big
	sus.Status, sus.Version = "SUSPENDED", big.Version+10
	back := sus
	back.Status, back.Version = "ACTIVE", sus.Version+10
	for _, s := range []*records.Seller{&sus, &back} {
		if err := prod.Produce(ctx, synth.Change{Topic: synth.KindSellers, Key: s.ID, Seller: s}); err != nil {
			t.Fatal(err)
		}
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var sample *records.Offer
	for _, o := range st.Offers {
		if sample == nil || o.ID < sample.ID {
			sample = o
		}
	}
	bad := malformedRecords(t, ctx, env, serde, prod, sample)
	raw := env.Client(t)
	for _, m := range bad {
		r := &kgo.Record{Topic: m.topic, Key: []byte(m.key), Value: m.value}
		if err := raw.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	for op, n := range ops {
		t.Logf("stream op %-14s %d", op, n)
	}

	t.Log("stream produced")
	waitCaughtUp(t, env, run, cfg.Kafka.Topics)
	t.Log("caught up")

	// Every delivery rule over the whole event stream.
	model := newEventModel(set)
	for _, r := range consumeAll(t, env, cfg.Kafka.Topics.Events) {
		var ev records.FeedEvent
		if err := serde.DecodeFeedEvent(ctx, r.Value, &ev); err != nil {
			t.Fatalf("decode feed event at %d/%d: %v", r.Partition, r.Offset, err)
		}
		if ev.Cause != records.CauseChange {
			t.Errorf("event %s: cause %s, want CHANGE", ev.EventID, ev.Cause)
		}
		model.apply(r, &ev)
	}
	t.Logf("events %d (re-sends %d), entries %v", model.events, model.resends, model.actions)
	if model.actions[records.ActionUpdate] == 0 || model.actions[records.ActionRemove] == 0 || model.actions[records.ActionAdd] == 0 {
		t.Errorf("stream should produce ADD, UPDATE and REMOVE entries, got %v", model.actions)
	}
	want, wantItems := expectedMembers(set, gen.State(), time.Now())
	model.checkFinal(t, want, wantItems)

	// Every malformed record is in the rejects topic with its bytes and
	// headers; nothing else is.
	rejects := consumeAll(t, env, cfg.Kafka.Topics.Rejects)
	if len(rejects) != len(bad) {
		t.Errorf("rejects: got %d records, want %d", len(rejects), len(bad))
	}
	for _, m := range bad {
		found := false
		for _, r := range rejects {
			if string(r.Key) != m.key || string(r.Value) != string(m.value) {
				continue
			}
			found = true
			h := map[string]string{}
			for _, hd := range r.Headers {
				h[hd.Key] = string(hd.Value)
			}
			if h["source-topic"] != m.topic || h["source-partition"] == "" || h["source-offset"] == "" || h["error"] == "" {
				t.Errorf("%s: reject headers %v", m.name, h)
			}
			if m.reason != "" && !strings.Contains(h["error"], m.reason) {
				t.Errorf("%s: reject reason %q should mention %q", m.name, h["error"], m.reason)
			}
		}
		if !found {
			t.Errorf("%s: not in the rejects topic with its original key and bytes", m.name)
		}
	}

	// A restart on the same state resumes from the stored offsets and emits
	// nothing new.
	before := model.events
	run.Stop()
	run = startPipeline(t, env, cfg, testLogger(t))
	waitCaughtUp(t, env, run, cfg.Kafka.Topics)
	after := consumeAll(t, env, cfg.Kafka.Topics.Events)
	if len(after) != before {
		t.Errorf("restart emitted %d more events", len(after)-before)
	}
}
