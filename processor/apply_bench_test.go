package processor_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/internal/synth"
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
	u := newApplierEnv(b, synth.FeedSet(nFeeds, 1), config.Default().Processor)
	a, serde, offerID := u.a, u.serde, u.ids[0]
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
