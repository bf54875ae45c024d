package connectortest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/connectors"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/internal/testenv"
)

// Throughput produces b.N ADD events for distinct offers, then times one
// Runtime draining them into the partner built by build, and reports
// items/s. The rate limit is off; configure may tune the rest.
func Throughput(b *testing.B, build func(cfg config.Connector) (connectors.Partner, error), configure func(*config.Connector)) {
	env := testenv.New(b, EventsTopic, DeadLetterTopic)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	serde := records.NewSerde(env.Registry(b))
	schemaID, err := serde.Register(ctx, EventsTopic+"-value", records.KindFeedEvent)
	if err != nil {
		b.Fatal(err)
	}
	producer := env.Client(b, kgo.DefaultProduceTopic(EventsTopic), kgo.MaxBufferedRecords(1<<20))
	end := &endOffsets{m: map[int32]int64{}}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	recs := make([]*kgo.Record, 0, b.N)
	for i := range b.N {
		id := fmt.Sprintf("o-%08d", i)
		ev := &records.FeedEvent{EventID: "ev-" + id, OfferID: id, Seq: 1, EmittedAt: base, Cause: records.CauseChange,
			Entries: []records.FeedEntry{{FeedID: "feed-a", Destination: Destination, Action: records.ActionAdd}},
			Offer: &records.OfferView{Offer: records.Offer{ID: id, Title: "Offer " + id, PriceMinor: 1999, Currency: "PLN",
				Stock: 1, Condition: "NEW", Status: "ACTIVE", URL: "https://shop.example/" + id, Attributes: map[string]string{}, UpdatedAt: base}}}
		v, err := serde.AppendFeedEvent(nil, schemaID, ev)
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Key: []byte(id), Value: v, Headers: []kgo.RecordHeader{{Key: "destination", Value: []byte(Destination)}}})
	}
	res := producer.ProduceSync(ctx, recs...)
	if err := res.FirstErr(); err != nil {
		b.Fatal(err)
	}
	for _, r := range res {
		end.set(r.Record.Partition, r.Record.Offset+1)
	}
	cfg := config.DefaultConnector()
	cfg.Kafka.Brokers = env.Brokers
	cfg.Kafka.Topics.Events = EventsTopic
	cfg.SchemaRegistry.URL = env.RegistryURL
	cfg.Destinations = []string{Destination}
	cfg.DeadLetterTopic = DeadLetterTopic
	cfg.StateDir = b.TempDir()
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.RateLimit.PerSecond = 0
	if configure != nil {
		configure(&cfg)
	}
	p, err := build(cfg)
	if err != nil {
		b.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	committed := &endOffsets{m: map[int32]int64{}}
	rt, err := connectors.New(cfg, p, connectors.Deps{
		Registerer: prometheus.NewRegistry(),
		Events: connectors.Events{Committed: func(_ string, part int32, off int64) {
			committed.set(part, off)
			if committed.covers(end) {
				rcancel()
			}
		}},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	if err := rt.Run(rctx); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if !committed.covers(end) {
		b.Fatalf("stopped before draining: committed %v, end %v", committed.snapshot(), end.snapshot())
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "items/s")
}
