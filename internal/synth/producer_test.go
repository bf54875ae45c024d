package synth

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/internal/testenv"
)

func TestProducerRun(t *testing.T) {
	topics := config.Topics{Offers: "offers", Sellers: "sellers", Ratings: "ratings"}
	env := testenv.New(t, topics.Offers, topics.Sellers, topics.Ratings)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	serde := records.NewSerde(env.Registry(t))
	p, err := NewProducer(ctx, env.Client(t), serde, topics)
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(3, Options{Offers: 300, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	const stream = 400
	var progressed int
	if err := p.Run(ctx, g, RunOptions{Initial: true, Count: stream, Progress: func(sent int, _ float64) { progressed = sent }}); err != nil {
		t.Fatal(err)
	}

	// Replay the same generator to know exactly what was sent.
	want, err := New(3, Options{Offers: 300, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	var sent []Change
	if err := want.Initial(func(ch Change) error { sent = append(sent, ch); return nil }); err != nil {
		t.Fatal(err)
	}
	for range stream {
		sent = append(sent, want.Next())
	}
	if progressed != len(sent) {
		t.Errorf("final progress %d, want %d", progressed, len(sent))
	}

	// Per topic and key, records arrive in send order.
	type tk struct{ topic, key string }
	expect := map[tk][]Change{}
	for _, ch := range sent {
		k := tk{ch.Topic.String(), ch.Key}
		expect[k] = append(expect[k], ch)
	}
	cons := env.Client(t,
		kgo.ConsumeTopics(topics.Offers, topics.Sellers, topics.Ratings),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	got := 0
	for got < len(sent) {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("after %d of %d records: %v", got, len(sent), err)
		}
		for _, r := range fs.Records() {
			k := tk{r.Topic, string(r.Key)}
			q := expect[k]
			if len(q) == 0 {
				t.Fatalf("unexpected record %s/%s", r.Topic, r.Key)
			}
			ch := q[0]
			expect[k] = q[1:]
			got++
			checkRecord(ctx, t, serde, r, ch)
		}
	}
}

func checkRecord(ctx context.Context, t *testing.T, serde *records.Serde, r *kgo.Record, ch Change) {
	t.Helper()
	if ch.Tombstone {
		if r.Value != nil {
			t.Fatalf("tombstone %s/%s has a value", r.Topic, r.Key)
		}
		return
	}
	switch ch.Topic {
	case KindOffers:
		var o records.Offer
		if err := serde.DecodeOffer(ctx, r.Value, &o); err != nil {
			t.Fatal(err)
		}
		if err := records.ValidateOffer(r.Key, &o); err != nil {
			t.Fatalf("offer %s: %v", r.Key, err)
		}
		if o.Version != ch.Offer.Version || o.Title != ch.Offer.Title || o.PriceMinor != ch.Offer.PriceMinor ||
			!o.UpdatedAt.Equal(ch.Offer.UpdatedAt) || o.Price != ch.Offer.Price {
			t.Fatalf("offer %s decoded differently:\n got %+v\nwant %+v", r.Key, o, *ch.Offer)
		}
	case KindSellers:
		var s records.Seller
		if err := serde.DecodeSeller(ctx, r.Value, &s); err != nil {
			t.Fatal(err)
		}
		if s.Version != ch.Seller.Version || s.Status != ch.Seller.Status || s.Name != ch.Seller.Name {
			t.Fatalf("seller %s decoded differently", r.Key)
		}
	case KindRatings:
		var rt records.Rating
		if err := serde.DecodeRating(ctx, r.Value, &rt); err != nil {
			t.Fatal(err)
		}
		if rt.Version != ch.Rating.Version || rt.Average != ch.Rating.Average {
			t.Fatalf("rating %s decoded differently", r.Key)
		}
	}
}

func TestProducerRunStopsOnCancel(t *testing.T) {
	topics := config.Topics{Offers: "offers", Sellers: "sellers", Ratings: "ratings"}
	env := testenv.New(t, topics.Offers, topics.Sellers, topics.Ratings)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := NewProducer(ctx, env.Client(t), records.NewSerde(env.Registry(t)), topics)
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(4, Options{Offers: 10, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	// Count < 0 sends only the initial catalog.
	if err := p.Run(ctx, g, RunOptions{Initial: true, Count: -1}); err != nil {
		t.Fatal(err)
	}
	// A rate-limited bounded run completes.
	if err := p.Run(ctx, g, RunOptions{Count: 50, Rate: 1e5}); err != nil {
		t.Fatal(err)
	}
	// An endless run ends with ctx and reports no error.
	for _, o := range []RunOptions{{}, {Rate: 100}} {
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- p.Run(runCtx, g, o) }()
		stop()
		if err := <-done; err != nil {
			t.Fatalf("cancelled endless run %+v: %v", o, err)
		}
	}
}

// BenchmarkProducerInitial produces a 20k-offer catalog (plus sellers and
// ratings) to the embedded broker per iteration.
func BenchmarkProducerInitial(b *testing.B) {
	topics := config.Topics{Offers: "offers", Sellers: "sellers", Ratings: "ratings"}
	env := testenv.New(b, topics.Offers, topics.Sellers, topics.Ratings)
	ctx := context.Background()
	p, err := NewProducer(ctx, env.Client(b), records.NewSerde(env.Registry(b)), topics)
	if err != nil {
		b.Fatal(err)
	}
	g, err := New(1, Options{Offers: 20000, Now: fixedNow})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	sent := 0
	for b.Loop() {
		if err := p.Run(ctx, g, RunOptions{Initial: true, Count: -1, Progress: func(n int, _ float64) { sent = n }}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(sent)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
