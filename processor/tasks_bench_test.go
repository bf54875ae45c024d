package processor_test

import (
	"context"
	"fmt"
	"hash/fnv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/internal/synth"
)

// BenchmarkTaskApply measures the streaming path over partition tasks
// without Kafka: offer changes of 4 offers partitions applied one poll at
// a time (a batch per partition), with 1 and 2 workers. One op = one
// offer change. The ratio of the two is what the worker pool buys on this
// machine's cores.
//
//	go test ./processor -run XXX -bench TaskApply -benchtime 40000x
func BenchmarkTaskApply(b *testing.B) {
	for _, n := range []int{10, 1300} {
		for _, w := range []int{1, 2} {
			b.Run(fmt.Sprintf("feeds=%d/workers=%d", n, w), func(b *testing.B) { benchTasks(b, n, w) })
		}
	}
}

func benchTasks(b *testing.B, nFeeds, workers int) {
	const partitions = 4
	ctx := context.Background()
	proc := config.Default().Processor
	proc.Workers = workers
	env := newTaskEnv(b, synth.FeedSet(nFeeds, 1), proc, time.Now)
	if err := env.p.SetTasks([]int32{0, 1, 2, 3}, nil); err != nil {
		b.Fatal(err)
	}
	gen, err := synth.New(1, synth.Options{Offers: 20000})
	if err != nil {
		b.Fatal(err)
	}
	var recs []*kgo.Record
	offsets := [partitions]int64{}
	add := func(ch synth.Change) {
		if ch.Topic != synth.KindOffers || ch.Tombstone {
			return
		}
		v, err := env.serde.AppendOffer(nil, env.ids[0], ch.Offer)
		if err != nil {
			b.Fatal(err)
		}
		h := fnv.New32a()
		_, _ = h.Write([]byte(ch.Key))
		p := int32(h.Sum32() % partitions)
		recs = append(recs, &kgo.Record{Topic: "offers", Partition: p, Key: []byte(ch.Key), Value: v, Offset: offsets[p], Timestamp: time.Now()})
		offsets[p]++
	}
	if err := gen.Initial(func(ch synth.Change) error { add(ch); return nil }); err != nil {
		b.Fatal(err)
	}
	if err := env.p.ApplyOffers(ctx, recs); err != nil { // the catalog, not measured
		b.Fatal(err)
	}
	recs = recs[:0]
	for len(recs) < 60000 {
		add(gen.Next())
	}
	const poll = 4 * 2000 // a batch per partition
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(poll, b.N-done, len(recs)-done%len(recs))
		start := done % len(recs)
		if err := env.p.ApplyOffers(ctx, recs[start:start+n]); err != nil {
			b.Fatal(err)
		}
		done += n
	}
}
