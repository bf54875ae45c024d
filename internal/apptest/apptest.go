package apptest

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/internal/app"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/internal/synth"
	"github.com/feedmill/feedmill/internal/testenv"
	"github.com/feedmill/feedmill/state"
)

// Config is a default config pointed at env, with a fresh state dir, an
// HTTP listener on a free loopback port, small batches and seller chunks
// (so seller jobs span many batches) and no periodic full pass.
func Config(t testing.TB, env *testenv.Env, fs []config.Feed, ts []config.Template) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Kafka.Brokers = env.Brokers
	cfg.SchemaRegistry.URL = env.RegistryURL
	cfg.State.Dir = t.TempDir()
	cfg.State.MinFreeBytes = 0
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.Feeds = fs
	cfg.Templates = ts
	cfg.Processor.SellerChunk = 37
	cfg.Processor.MaxBatchRecords = 300
	// No automatic runs, not even the first pass at once of never
	// published file feeds: tests start passes themselves.
	cfg.FullPass.Interval = 0
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	return &cfg
}

// Logger logs warnings and errors to the test log.
func Logger(t testing.TB) *zap.Logger {
	return zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
}

// App is a running app.App owned by a test.
type App struct {
	*app.App
	t      testing.TB
	deps   app.Deps
	cancel context.CancelFunc
	done   chan error
	err    error
	ended  bool
}

// Start builds an App from cfg and d (Logger defaults to Logger(t), the
// state cache to a small one) and runs it until Stop or the end of the
// test. A Run error other than a clean stop fails the test at Stop.
func Start(t testing.TB, cfg *config.Config, d app.Deps) *App {
	t.Helper()
	if d.Logger == nil {
		d.Logger = Logger(t)
	}
	if d.State.CacheBytes == 0 {
		d.State = state.Options{CacheBytes: 8 << 20, MemTableBytes: 8 << 20}
	}
	a, err := app.New(cfg, d)
	if err != nil {
		t.Fatalf("apptest: new app: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ta := &App{App: a, t: t, deps: d, cancel: cancel, done: make(chan error, 1)}
	go func() { ta.done <- a.Run(ctx) }()
	t.Cleanup(ta.Stop)
	return ta
}

// Cancel ends the App's context without waiting (safe from inside a hook
// that runs on one of its goroutines).
func (a *App) Cancel() { a.cancel() }

// Wait waits until Run has returned and returns its error.
func (a *App) Wait() error {
	if !a.ended {
		a.err = <-a.done
		a.ended = true
	}
	return a.err
}

// Stop ends the App and waits for it; a Run error fails the test.
func (a *App) Stop() {
	a.cancel()
	if err := a.Wait(); err != nil {
		a.t.Errorf("apptest: app run: %v", err)
	}
}

// Restart stops the App and starts a new one with the same config and
// deps, on the same state dir.
func (a *App) Restart() *App {
	a.t.Helper()
	a.Stop()
	return Start(a.t, a.Config, a.deps)
}

// WaitCaughtUp waits until the App has applied every input record, no
// seller job is pending, the outbox is empty and the pipeline is ready.
func WaitCaughtUp(t testing.TB, env *testenv.Env, a *App) {
	t.Helper()
	WaitStoreCaughtUp(t, env, a.Store, a.Config.Kafka.Topics, a.Pipeline.Ready)
}

// WaitStoreCaughtUp is WaitCaughtUp for a store and readiness check. The
// grouped feeds' topics count as inputs: records flow between partitions
// through them, so the store is caught up when two checks in a row find
// every input consumed to the same end offsets and the outbox empty.
func WaitStoreCaughtUp(t testing.TB, env *testenv.Env, store *state.Store, topics config.Topics, ready func() bool) {
	t.Helper()
	cl := env.Client(t)
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(3 * time.Minute)
	var last map[string]map[int32]int64
	for {
		if time.Now().After(deadline) {
			t.Fatal("apptest: the app did not catch up within 3 minutes")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ends, err := adm.ListEndOffsets(ctx, topics.Offers, topics.Sellers, topics.Ratings, topics.GroupCandidates, topics.GroupDecisions)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		endMap := EndMap(ends)
		caught, err := store.CaughtUp(endMap)
		if err != nil {
			t.Fatal(err)
		}
		// A topic the client's metadata does not know yet (the group
		// topics the app creates at start) is listed with an error:
		// until it is listed, nothing says it was consumed.
		if ends.Error() != nil {
			caught = false
		}
		if caught && ready() {
			if reflect.DeepEqual(last, endMap) {
				return
			}
			last = endMap
		} else {
			last = nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// EndMap turns listed end offsets into the form state.Store.CaughtUp takes.
func EndMap(ends kadm.ListedOffsets) map[string]map[int32]int64 {
	out := map[string]map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if out[o.Topic] == nil {
			out[o.Topic] = map[int32]int64{}
		}
		out[o.Topic][o.Partition] = o.Offset
	})
	return out
}

// ConsumeAll reads every record of topic from the start to its end offsets.
func ConsumeAll(t testing.TB, env *testenv.Env, topic string) []*kgo.Record {
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

// ProduceCatalog makes a synthetic generator from seed and o and produces
// its initial catalog (flushed) to topics, with a client keyed like the
// upstream services (plus opts). It returns the generator, the producer
// for the change stream and the serde.
func ProduceCatalog(t testing.TB, env *testenv.Env, topics config.Topics, seed int64, o synth.Options, opts ...kgo.Opt) (*synth.Generator, *synth.Producer, *records.Serde) {
	t.Helper()
	ctx := context.Background()
	gen, err := synth.New(seed, o)
	if err != nil {
		t.Fatal(err)
	}
	serde := records.NewSerde(env.Registry(t))
	cl := env.Client(t, append([]kgo.Opt{kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil))}, opts...)...)
	prod, err := synth.NewProducer(ctx, cl, serde, topics)
	if err != nil {
		t.Fatal(err)
	}
	if err := gen.Initial(func(ch synth.Change) error { return prod.Produce(ctx, ch) }); err != nil {
		t.Fatal(err)
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return gen, prod, serde
}
