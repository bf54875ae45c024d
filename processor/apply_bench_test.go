package processor_test

import (
	"context"
	"fmt"
	"path/filepath"
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
	"github.com/feedmill/feedmill/state"
)

// BenchmarkApplyChange measures the per-change cost of the streaming path
// without Kafka: decode, ordering rule, Pebble read-modify-write, matching
// every feed, fingerprints, membership diff and the outbox write, committed
// in batches of 1000 (fsync per batch). One op = one offer change.
//
//	go test ./processor -run XXX -bench ApplyChange -benchmem
func BenchmarkApplyChange(b *testing.B) {
	for _, n := range []int{10, 1300} {
		b.Run(fmt.Sprintf("feeds=%d", n), func(b *testing.B) { benchApply(b, n) })
	}
}

func benchApply(b *testing.B, nFeeds int) {
	ctx := context.Background()
	reg := srfake.New()
	b.Cleanup(reg.Close)
	cl, err := sr.NewClient(sr.URLs(reg.URL()))
	if err != nil {
		b.Fatal(err)
	}
	serde := records.NewSerde(cl)
	offerID, err := serde.Register(ctx, "offers-value", records.KindOffer)
	if err != nil {
		b.Fatal(err)
	}
	set, err := feeds.Compile(synth.FeedSet(nFeeds, 1), nil)
	if err != nil {
		b.Fatal(err)
	}
	store, err := state.Open(filepath.Join(b.TempDir(), "state"), serde, state.Options{}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = store.Close() })
	cfg := config.Default()
	id, err := serde.Register(ctx, "feed-events-value", records.KindFeedEvent)
	if err != nil {
		b.Fatal(err)
	}
	a, err := processor.NewApplier(processor.ApplierDeps{
		Store: store, Feeds: set, Serde: serde, Topics: cfg.Kafka.Topics, Processor: cfg.Processor,
		Retention: time.Hour, EventSchemaID: id, Metrics: processor.NewMetrics(prometheus.NewRegistry()), Logger: zap.NewNop(),
	})
	if err != nil {
		b.Fatal(err)
	}
	a.SetPartitions([]int32{0})
	gen, err := synth.New(1, synth.Options{Offers: 20000})
	if err != nil {
		b.Fatal(err)
	}
	var recs []*kgo.Record
	offset := int64(0)
	add := func(ch synth.Change) {
		if ch.Topic != synth.KindOffers || ch.Tombstone {
			return
		}
		v, err := serde.AppendOffer(nil, offerID, ch.Offer)
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: "offers", Key: []byte(ch.Key), Value: v, Offset: offset, Timestamp: time.Now()})
		offset++
	}
	if err := gen.Initial(func(ch synth.Change) error { add(ch); return nil }); err != nil {
		b.Fatal(err)
	}
	if err := a.Apply(ctx, recs); err != nil { // the catalog, not measured
		b.Fatal(err)
	}
	recs = recs[:0]
	for len(recs) < 50000 {
		add(gen.Next())
	}
	b.ReportAllocs()
	b.ResetTimer()
	done := 0
	for done < b.N {
		n := min(1000, b.N-done)
		start := done % len(recs)
		end := min(start+n, len(recs))
		if err := a.Apply(ctx, recs[start:end]); err != nil {
			b.Fatal(err)
		}
		done += end - start
	}
}
