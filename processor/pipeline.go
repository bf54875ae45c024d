package processor

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kzap"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/state"
)

// Pipeline is the streaming path of one instance: it consumes the offers
// partitions assigned to it (consumer group) and every partition of the
// sellers and ratings tables, applies them (each offers partition on its
// task, the tables on the table applier: tasks.go) and relays the outbox
// to Kafka.
type Pipeline struct {
	cfg   *config.Config
	store *state.Store

	serde   *records.Serde
	metrics *Metrics
	logger  *zap.Logger
	kopts   []kgo.Opt
	now     func() time.Time

	applierDeps  ApplierDeps // of every task's applier
	tableApplier *Applier    // applies the table records; owns no partition
	relay        *Relay
	standby      *standby     // follows the changelog of standby partitions (nil: processor.standby_replicas 0)
	groupIn      *groupInputs // consumes the group topics of the owned partitions (nil before Run)

	workers    chan struct{} // one token per unit of work running (Processor.Workers)
	barrier    sync.RWMutex  // units: read; table batches, partition changes, sweep: write
	tasksMu    sync.Mutex    // guards tasks
	tasks      map[int32]*task
	restoreMu  sync.RWMutex // restores: read; the tombstone sweep: write
	jobsNotify chan struct{}
	failed     chan struct{} // closed by fail
	failErr    error
	failOnce   sync.Once

	tablesLoaded atomic.Bool
	assigned     atomic.Bool
	owned        atomic.Pointer[[]int32] // offers partitions owned, sorted
	restoreErr   atomic.Pointer[error]   // a failed restore (stops runOffers)
	offersTotal  atomic.Int32            // partitions of the offers topic
	backfilled   atomic.Int64            // offers feed change jobs re-evaluated
}

// PipelineDeps are what a Pipeline needs. KafkaOpts hold the connection
// options (brokers, TLS, SASL) shared by its clients.
type PipelineDeps struct {
	Config    *config.Config
	Store     *state.Store
	Feeds     *feeds.Set
	Serde     *records.Serde
	Metrics   *Metrics
	Logger    *zap.Logger
	KafkaOpts []kgo.Opt
	Now       func() time.Time
}

// NewPipeline prepares the applier. It does not reach the schema
// registry: Run registers the FeedEvent schema (retrying while the
// registry is down), so the process serves HTTP meanwhile.
func NewPipeline(d PipelineDeps) (*Pipeline, error) {
	if d.Now == nil {
		d.Now = time.Now
	}
	deps := ApplierDeps{
		Store: d.Store, Feeds: d.Feeds, Serde: d.Serde, Topics: d.Config.Kafka.Topics,
		Processor: d.Config.Processor, Retention: d.Config.State.TombstoneRetention,
		Now: d.Now, Metrics: d.Metrics, Logger: d.Logger,
	}
	deps.evalErrs = newEvalErrors(d.Metrics, d.Feeds, d.Logger.Named("applier"))
	a, err := NewApplier(deps)
	if err != nil {
		return nil, err
	}
	workers := d.Config.Processor.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	p := &Pipeline{
		cfg: d.Config, store: d.Store, serde: d.Serde, metrics: d.Metrics,
		logger: d.Logger.Named("pipeline"), kopts: d.KafkaOpts, now: d.Now,
		applierDeps: deps, tableApplier: a,
		workers: make(chan struct{}, workers), tasks: map[int32]*task{},
		jobsNotify: make(chan struct{}, 1), failed: make(chan struct{}),
	}
	a.onJobs = p.handJobs
	a.onTable = p.handTable
	return p, nil
}

// Ready reports whether the tables are loaded and offers partitions
// assigned and restored.
func (p *Pipeline) Ready() bool { return p.tablesLoaded.Load() && p.assigned.Load() }

// Store returns the pipeline's state store.
func (p *Pipeline) Store() *state.Store { return p.store }

// Exec runs fn on the table applier with every task paused (the barrier
// write-locked) and returns its error, which also stops the pipeline (a
// state failure). Tests use it to change state without racing the stream.
func (p *Pipeline) Exec(ctx context.Context, fn func(a *Applier) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.barrier.Lock()
	err := fn(p.tableApplier)
	p.barrier.Unlock()
	if err != nil {
		p.fail(err)
	}
	return err
}

// Run registers the FeedEvent schema (retrying until the registry
// answers; not ready meanwhile), then consumes, applies and relays until
// ctx ends or a part fails.
func (p *Pipeline) Run(ctx context.Context) error {
	id, err := p.registerEvents(ctx)
	if err != nil {
		return nil // ctx ended while the registry was down
	}
	// No task exists yet: they are created (with this id) on assignment.
	p.tableApplier.eventID = id
	base := append([]kgo.Opt{kgo.WithLogger(kzap.New(p.logger.Named("kgo"), kzap.Level(kgo.LogLevelWarn)))}, p.kopts...)
	if err := p.checkCluster(ctx, base); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	t := p.cfg.Kafka.Topics
	producer, err := kgo.NewClient(append(slices.Clone(base),
		kgo.RecordPartitioner(partitionerFor(t.GroupCandidates, t.GroupDecisions)),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.RecordRetries(10),
		kgo.RecordDeliveryTimeout(20*time.Second), // bounds a round, so a revoke (Relay.Quiesce) is bounded
		// One batch never exceeds what the topics accept (checkCluster);
		// a larger record fails alone, before buffering, and the relay
		// sends it to rejects.
		kgo.ProducerBatchMaxBytes(p.producerBatchBytes()),
		kgo.MaxBufferedRecords(50000),
	)...)
	if err != nil {
		return fmt.Errorf("producer client: %w", err)
	}
	defer producer.Close()
	// The changelog's records hold an offer and its last event: they may
	// be twice an event's size (the topic is created to take them).
	clProducer, err := kgo.NewClient(append(slices.Clone(base),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.RecordRetries(10),
		kgo.RecordDeliveryTimeout(20*time.Second),
		kgo.ProducerBatchMaxBytes(p.changelogBatchBytes()),
		kgo.MaxBufferedRecords(50000),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)...)
	if err != nil {
		return fmt.Errorf("changelog producer client: %w", err)
	}
	defer clProducer.Close()
	p.relay = NewRelay(p.store, producer, p.cfg.Kafka.Topics.Events, p.cfg.Kafka.Topics.Rejects, p.metrics, p.logger)
	p.relay.ChangelogTopic, p.relay.Changelog = p.cfg.Kafka.Topics.Changelog, clProducer
	p.relay.Owns = p.owns
	p.relay.Internal = map[string]bool{t.GroupCandidates: true, t.GroupDecisions: true}
	// The group topics are consumed whatever the set: a live feed change
	// may add a grouped feed.
	if p.groupIn, err = newGroupInputs(p, base); err != nil {
		return err
	}

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		select {
		case <-ctx.Done():
			return nil
		case <-p.failed:
			return p.failErr
		}
	})
	g.Go(func() error { return p.runJobs(ctx) })
	if p.cfg.Processor.StandbyReplicas > 0 {
		p.standby = newStandby(p, base)
		g.Go(func() error { return p.standby.run(ctx) })
	}
	g.Go(func() error { return p.relay.Run(ctx) })
	g.Go(func() error { return p.groupIn.run(ctx) })
	g.Go(func() error {
		if err := p.runTables(ctx, base, func(ctx context.Context) error { return p.runOffers(ctx, base) }); err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		return nil
	})
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// Registry retry bounds: the first retry waits registerRetryMin, each
// next one twice as long up to registerRetryMax; a failure is logged at
// most once per registerLogEvery after the first.
const (
	registerRetryMin = 250 * time.Millisecond
	registerRetryMax = 5 * time.Second
	registerLogEvery = time.Minute
)

// registerEvents registers the FeedEvent schema, retrying with back-off
// until it succeeds. It returns ctx's error if ctx ends first.
func (p *Pipeline) registerEvents(ctx context.Context) (int, error) {
	subject := p.cfg.Kafka.Topics.Events + "-value"
	wait := registerRetryMin
	var lastLog time.Time
	failures := 0
	for {
		id, err := p.serde.Register(ctx, subject, records.KindFeedEvent)
		if err == nil {
			if failures > 0 {
				p.logger.Info("schema registry reachable again: FeedEvent schema registered",
					zap.String("subject", subject), zap.Int("failed_attempts", failures))
			}
			return id, nil
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		failures++
		if now := time.Now(); failures == 1 || now.Sub(lastLog) >= registerLogEvery {
			lastLog = now
			p.logger.Warn("registering the FeedEvent schema failed; not ready, serving HTTP and retrying",
				zap.String("subject", subject), zap.Int("failed_attempts", failures), zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, registerRetryMax)
	}
}

func (p *Pipeline) updateLag(fs kgo.Fetches) {
	fs.EachPartition(func(fp kgo.FetchTopicPartition) {
		if len(fp.Records) == 0 {
			return
		}
		next := fp.Records[len(fp.Records)-1].Offset + 1
		p.metrics.lag.WithLabelValues(fp.Topic, strconv.Itoa(int(fp.Partition))).Set(float64(max(0, fp.HighWatermark-next)))
	})
}

func logFetchErrors(logger *zap.Logger, fs kgo.Fetches) error {
	var fatal error
	fs.EachError(func(topic string, partition int32, err error) {
		if errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed) {
			fatal = err
			return
		}
		logger.Warn("fetch error", zap.String("topic", topic), zap.Int32("partition", partition), zap.Error(err))
	})
	return fatal
}

// runTables loads the joined tables (TableInputs) up to their high
// watermarks, then starts next (the offers consumer) and keeps consuming
// the tables.
func (p *Pipeline) runTables(ctx context.Context, base []kgo.Opt, next func(ctx context.Context) error) error {
	tableTopics := p.tableTopics()
	admin, err := kgo.NewClient(base...)
	if err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	adm := kadm.NewClient(admin)
	var ends kadm.ListedOffsets
	for {
		ends, err = adm.ListEndOffsets(ctx, tableTopics...)
		if err == nil {
			err = ends.Error()
		}
		if err == nil {
			break
		}
		p.logger.Warn("listing table partitions failed, retrying", zap.Error(err))
		select {
		case <-ctx.Done():
			admin.Close()
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	admin.Close()
	parts := map[string]map[int32]kgo.Offset{}
	need := map[string]map[int32]int64{}
	for _, topic := range tableTopics {
		stored, err := p.store.Offsets(topic)
		if err != nil {
			return err
		}
		parts[topic] = map[int32]kgo.Offset{}
		need[topic] = map[int32]int64{}
		ends.Each(func(o kadm.ListedOffset) {
			if o.Topic != topic {
				return
			}
			if off, ok := stored[o.Partition]; ok {
				parts[topic][o.Partition] = kgo.NewOffset().At(off)
				if o.Offset > off {
					need[topic][o.Partition] = o.Offset
				}
			} else {
				parts[topic][o.Partition] = kgo.NewOffset().AtStart()
				if o.Offset > 0 {
					need[topic][o.Partition] = o.Offset
				}
			}
		})
	}
	cl, err := kgo.NewClient(append(slices.Clone(base), kgo.ConsumePartitions(parts), kgo.FetchMaxWait(200*time.Millisecond))...)
	if err != nil {
		return fmt.Errorf("tables client: %w", err)
	}
	defer cl.Close()

	// The offers consumer runs under tctx: when the table loop ends (an
	// error, or ctx) it stops too, and when it fails the loop stops.
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var g errgroup.Group
	var once sync.Once
	startOffers := func() {
		once.Do(func() {
			p.tablesLoaded.Store(true)
			p.logger.Info("tables loaded")
			g.Go(func() error {
				err := next(tctx)
				cancel()
				return err
			})
		})
	}
	caughtUp := func() bool {
		for _, m := range need {
			if len(m) > 0 {
				return false
			}
		}
		return true
	}
	if caughtUp() {
		startOffers()
	}
	loopErr := func() error {
		for {
			fs := cl.PollRecords(tctx, 5000)
			if tctx.Err() != nil {
				return tctx.Err()
			}
			if err := logFetchErrors(p.logger, fs); err != nil {
				return err
			}
			recs := fs.Records()
			if len(recs) == 0 {
				continue
			}
			p.updateLag(fs)
			if err := p.applyTables(tctx, recs); err != nil {
				return err
			}
			if !p.tablesLoaded.Load() {
				for _, r := range recs {
					if hw, ok := need[r.Topic][r.Partition]; ok && r.Offset+1 >= hw {
						delete(need[r.Topic], r.Partition)
					}
				}
				if caughtUp() {
					startOffers()
				}
			}
		}
	}()
	cancel()
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return loopErr
}

// runOffers consumes the offers topic in the consumer group, resuming every
// assigned partition from the offset stored in Pebble.
func (p *Pipeline) runOffers(ctx context.Context, base []kgo.Opt) error {
	topic := p.cfg.Kafka.Topics.Offers
	opts := append(slices.Clone(base),
		kgo.ConsumerGroup(p.cfg.Kafka.GroupID),
		kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxWait(200*time.Millisecond),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// A gained partition is restored (restoreAssigned) before it is
		// owned: until then neither the applier nor the relay touches it.
		// kgo calls this, with the group's committed offsets, before it
		// fetches them; Callbacks use Run's ctx (see below).
		kgo.AdjustFetchOffsetsFn(func(actx context.Context, offs map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
			added := make([]int32, 0, len(offs[topic]))
			committed := map[int32]int64{}
			for part, o := range offs[topic] {
				added = append(added, part)
				committed[part] = o.EpochOffset().Offset
			}
			slices.Sort(added)
			p.releaseStandby(added) // no longer followed as a standby (standby.go)
			// actx ends when the session starts revoking: a restore that
			// outlives its assignment does not make the partition ours.
			if err := p.restoreAssigned(actx, base, added, committed); err != nil {
				if ctx.Err() == nil && actx.Err() == nil {
					p.restoreErr.Store(&err)
				}
				return nil, err
			}
			if err := actx.Err(); err != nil {
				return nil, err
			}
			p.changePartitions(added, nil)
			stored, err := p.store.Offsets(topic)
			if err != nil {
				return nil, err
			}
			// A partition without local state starts from the beginning
			// of the topic, whatever the group committed: the group's
			// offset says what another state dir (or a lost one) had
			// applied, not this one.
			for part := range offs[topic] {
				if off, ok := stored[part]; ok {
					offs[topic][part] = kgo.NewOffset().At(off)
				} else {
					offs[topic][part] = kgo.NewOffset().AtStart()
				}
			}
			return offs, nil
		}),
		// Partition callbacks use Run's ctx: the client may call them
		// during Close with a context that never ends.
		// Gained partitions become owned in AdjustFetchOffsetsFn, after
		// their restore; this only marks the assignment done.
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			// Gained partitions are restored and owned (and the
			// instance ready) in AdjustFetchOffsetsFn, which kgo calls
			// after this; an assignment without offers partitions has
			// nothing to restore.
			if len(m[topic]) == 0 {
				p.changePartitions(nil, nil)
			}
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			p.changePartitions(nil, m[topic])
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			p.changePartitions(nil, m[topic])
		}),
	)
	// Static membership by default: the instance id lives in the state
	// dir (unless kafka.instance_id sets it), so a restarted process gets
	// its partitions back at once instead of after the session timeout,
	// and a stopped one keeps them for its restart. Cooperative-sticky
	// assignment moves only the partitions that must move.
	instanceID, err := p.InstanceID()
	if err != nil {
		return err
	}
	opts = append(opts, kgo.InstanceID(instanceID), kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.SessionTimeout(p.cfg.Kafka.SessionTimeout))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("offers client: %w", err)
	}
	defer cl.Close()
	for {
		// Up to a batch per owned partition: each task applies its own.
		owned, _ := p.Coverage()
		fs := cl.PollRecords(ctx, p.maxPoll()*max(1, len(owned)))
		if ctx.Err() != nil {
			cl.AllowRebalance()
			return ctx.Err()
		}
		if err := p.restoreErr.Load(); err != nil {
			cl.AllowRebalance()
			return *err
		}
		if err := logFetchErrors(p.logger, fs); err != nil {
			cl.AllowRebalance()
			return err
		}
		if !fs.Empty() {
			p.updateLag(fs)
			if err := p.applyOffers(ctx, fs); err != nil {
				cl.AllowRebalance()
				return err
			}
			// Pebble holds the truth; the group commit lets standard
			// tools show lag. A failure here loses nothing.
			if err := cl.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil {
				p.logger.Warn("committing offsets to the group failed", zap.Error(err))
			}
		}
		cl.AllowRebalance()
	}
}

// Owns reports whether this instance owns offers partition part. Safe
// for concurrent use.
func (p *Pipeline) Owns(part int32) bool { return p.owns(part) }

// owns reports whether this instance owns offers partition part.
func (p *Pipeline) owns(part int32) bool {
	owned, _ := p.Coverage()
	_, ok := slices.BinarySearch(owned, part)
	return ok
}

// tableTopics are the topics of the joined table inputs.
func (p *Pipeline) tableTopics() []string {
	var out []string
	for _, in := range TableInputs(p.cfg.Kafka.Topics) {
		out = append(out, in.Topic)
	}
	return out
}

// Coverage returns the offers partitions this instance owns (sorted) and
// the offers topic's partition count (0 before Run has read it). Safe for
// concurrent use.
func (p *Pipeline) Coverage() (owned []int32, total int32) {
	if o := p.owned.Load(); o != nil {
		owned = *o
	}
	return owned, p.offersTotal.Load()
}

// InstanceID is this instance's group instance id: kafka.instance_id, or
// the one kept in the state dir (created on first use).
func (p *Pipeline) InstanceID() (string, error) {
	if id := p.cfg.Kafka.InstanceID; id != "" {
		return id, nil
	}
	return p.store.InstanceID(newInstanceID)
}

// newInstanceID is a fresh group instance id: the host name (for the
// operator reading the group) and random bytes (for uniqueness).
func newInstanceID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "feedmill"
	}
	return host + "-" + rand.Text()[:12]
}

func (p *Pipeline) maxPoll() int {
	if n := p.cfg.Processor.MaxBatchRecords; n > 0 {
		return n
	}
	return 2000
}
