package processor_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/internal/testenv"
	"github.com/feedmill/feedmill/processor"
	"github.com/feedmill/feedmill/state"
)

var allTopics = []string{"offers", "sellers", "ratings", "feed-events", "feedmill-rejects"}

// testConfig is a default config pointed at env.
func testConfig(t testing.TB, env *testenv.Env, fs []config.Feed, ts []config.Template) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Kafka.Brokers = env.Brokers
	cfg.SchemaRegistry.URL = env.RegistryURL
	cfg.State.Dir = t.TempDir()
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.Feeds = fs
	cfg.Templates = ts
	cfg.Processor.SellerChunk = 37 // small chunks: seller jobs span many batches
	cfg.Processor.MaxBatchRecords = 300
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	return &cfg
}

// running is a pipeline started by startPipeline.
type running struct {
	pipe  *processor.Pipeline
	store *state.Store
	reg   *prometheus.Registry
	done  chan error // Run's result, once
	stop  func()
}

// startPipeline opens the state under cfg.State.Dir and runs a pipeline
// until stop is called (or the test ends).
func startPipeline(t testing.TB, env *testenv.Env, cfg *config.Config, logger *zap.Logger) *running {
	t.Helper()
	set, err := feeds.Compile(cfg.Feeds, cfg.Templates)
	if err != nil {
		t.Fatal(err)
	}
	serde := records.NewSerde(env.Registry(t))
	store, err := state.Open(filepath.Join(cfg.State.Dir, "state"), serde, state.Options{CacheBytes: 8 << 20, MemTableBytes: 8 << 20}, logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	reg := prometheus.NewRegistry()
	pipe, err := processor.NewPipeline(ctx, processor.PipelineDeps{
		Config: cfg, Store: store, Feeds: set, Serde: serde,
		Metrics: processor.NewMetrics(reg), Logger: logger,
		KafkaOpts: []kgo.Opt{kgo.SeedBrokers(env.Brokers...)},
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- pipe.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("pipeline: %v", err)
		}
		if err := store.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	}
	t.Cleanup(stop)
	return &running{pipe: pipe, store: store, reg: reg, done: done, stop: stop}
}

// waitCaughtUp waits until every input record is applied, every seller
// job is done and the outbox is empty.
func waitCaughtUp(t testing.TB, env *testenv.Env, r *running, topics config.Topics) {
	t.Helper()
	cl := env.Client(t)
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if time.Now().After(deadline) {
			t.Fatal("pipeline did not catch up within 3 minutes")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ends, err := adm.ListEndOffsets(ctx, topics.Offers, topics.Sellers, topics.Ratings)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		caught, err := r.store.CaughtUp(endMap(ends))
		if err != nil {
			t.Fatal(err)
		}
		if caught && r.pipe.Ready() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// endMap turns listed end offsets into the form state.Store.CaughtUp takes.
func endMap(ends kadm.ListedOffsets) map[string]map[int32]int64 {
	out := map[string]map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if out[o.Topic] == nil {
			out[o.Topic] = map[int32]int64{}
		}
		out[o.Topic][o.Partition] = o.Offset
	})
	return out
}

// consumeAll reads every record of topic from the start to its end offsets.
func consumeAll(t testing.TB, env *testenv.Env, topic string) []*kgo.Record {
	t.Helper()
	adm := kadm.NewClient(env.Client(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	need := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			need[o.Partition] = o.Offset
		}
	})
	cl := env.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var out []*kgo.Record
	for len(need) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consume %s: %v (missing %v)", topic, ctx.Err(), need)
		}
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("consume %s: %v", topic, err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, r)
			if end, ok := need[r.Partition]; ok && r.Offset+1 >= end {
				delete(need, r.Partition)
			}
		})
	}
	return out
}

func testLogger(t testing.TB) *zap.Logger {
	return zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
}
