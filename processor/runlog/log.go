package runlog

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// Log is the run log of one instance: it folds the group's commands in
// log order and appends new ones. Safe for concurrent use.
type Log struct {
	mu       sync.Mutex
	fold     *Fold
	next     int64             // offset of the next record to fold
	outcomes map[int64]Outcome // recent outcomes by offset, for Append's waiters
	changed  chan struct{}     // closed (and replaced) on every fold
	caughtUp bool

	// produce appends one record (a nil value: a tombstone) and returns
	// its offset.
	produce func(ctx context.Context, key string, value []byte) (int64, error)
	logger  *zap.Logger
}

func newLog(logger *zap.Logger) *Log {
	return &Log{fold: NewFold(), outcomes: map[int64]Outcome{}, changed: make(chan struct{}), logger: logger}
}

// NewMemory returns a log kept in memory: one process's instances share
// it (tests, benchmarks, tools). It is caught up from the start.
func NewMemory() *Log {
	l := newLog(zap.NewNop())
	l.caughtUp = true
	l.produce = func(_ context.Context, key string, value []byte) (int64, error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		off := l.next
		l.applyLocked(off, key, value)
		return off, nil
	}
	return l
}

// apply folds the record at offset off (records below next are
// duplicates of a re-read and skipped).
func (l *Log) apply(off int64, key string, value []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.applyLocked(off, key, value)
}

func (l *Log) applyLocked(off int64, key string, value []byte) {
	if off < l.next {
		return
	}
	var c Command
	var out Outcome
	if value == nil {
		l.fold.Tombstone(key)
	} else if err := json.Unmarshal(value, &c); err != nil {
		l.logger.Warn("skipping a run log record that does not decode", zap.Int64("offset", off), zap.Error(err))
	} else {
		c.Key = key
		out = l.fold.Apply(&c)
	}
	l.outcomes[off] = out
	delete(l.outcomes, off-4096)
	l.next = off + 1
	close(l.changed)
	l.changed = make(chan struct{})
}

// Append writes c (At defaults to now) and waits until it is folded; it
// returns what folding it did.
func (l *Log) Append(ctx context.Context, c Command) (Outcome, error) {
	if c.At.IsZero() {
		c.At = time.Now()
	}
	v, err := json.Marshal(&c)
	if err != nil {
		return Outcome{}, fmt.Errorf("encode run log %s command: %w", c.Op, err)
	}
	// Keys are unique, so compaction keeps every record until Forget's
	// tombstones delete it.
	off, err := l.produce(ctx, c.Op+"/"+c.Run+"/"+rand.Text(), v)
	if err != nil {
		return Outcome{}, fmt.Errorf("write run log %s command: %w", c.Op, err)
	}
	for {
		l.mu.Lock()
		if l.next > off {
			out := l.outcomes[off]
			l.mu.Unlock()
			return out, nil
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return Outcome{}, ctx.Err()
		}
	}
}

// Forget deletes what Fold.Forget lists (tombstones) and returns how
// many records it deleted.
func (l *Log) Forget(ctx context.Context) (int, error) {
	var keys []string
	l.View(func(f *Fold) { keys = f.Forget() })
	for i, k := range keys {
		if _, err := l.produce(ctx, k, nil); err != nil {
			return i, fmt.Errorf("delete old run log records: %w", err)
		}
	}
	return len(keys), nil
}

// View calls fn with the fold under the log's lock: fn must not keep it
// or call the Log.
func (l *Log) View(fn func(f *Fold)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fn(l.fold)
}

// Changed returns a channel closed at the next fold.
func (l *Log) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

// CaughtUp reports whether the log has folded every record written
// before it started.
func (l *Log) CaughtUp() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.caughtUp
}

// Kafka is the run log on a single-partition topic.
type Kafka struct {
	*Log
	cl    *kgo.Client
	adm   *kadm.Client
	topic string
}

// produceTimeout bounds one append: a run log that cannot be written
// fails the command (a start or decision answers 503) instead of hanging.
const produceTimeout = 30 * time.Second

// OpenKafka returns the run log on topic, reading it with a client built
// from opts (brokers, TLS, SASL). Run consumes it.
func OpenKafka(opts []kgo.Opt, topic string, logger *zap.Logger) (*Kafka, error) {
	opts = append(append([]kgo.Opt(nil), opts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
		kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("run log client: %w", err)
	}
	k := &Kafka{Log: newLog(logger.Named("runlog")), cl: cl, adm: kadm.NewClient(cl), topic: topic}
	k.produce = func(ctx context.Context, key string, value []byte) (int64, error) {
		ctx, cancel := context.WithTimeout(ctx, produceTimeout)
		defer cancel()
		r := &kgo.Record{Key: []byte(key), Value: value, Partition: 0}
		if err := k.cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			return 0, err
		}
		return r.Offset, nil
	}
	return k, nil
}

// Close releases the client.
func (k *Kafka) Close() { k.cl.Close() }

// Ensure creates the topic (one partition, compacted: every record has
// its own key, and Forget's tombstones delete old runs) when it is
// missing and refuses one with more partitions: the log's order is the
// decisions' order.
func (k *Kafka) Ensure(ctx context.Context) error {
	md, err := k.adm.Metadata(ctx, k.topic)
	if err != nil {
		return fmt.Errorf("read run log topic %q: %w", k.topic, err)
	}
	if td, ok := md.Topics[k.topic]; ok && td.Err == nil {
		if n := len(td.Partitions); n != 1 {
			return fmt.Errorf("run log topic %q (kafka.topics.runs) has %d partitions; it must have exactly 1", k.topic, n)
		}
		return nil
	}
	policy := "compact"
	resp, err := k.adm.CreateTopic(ctx, 1, -1, map[string]*string{"cleanup.policy": &policy}, k.topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create run log topic %q (1 partition): %w; create it, or grant feedmill the right to", k.topic, err)
	}
	return nil
}

// Run ensures the topic, folds what it holds (CaughtUp turns true), then
// follows it until ctx ends.
func (k *Kafka) Run(ctx context.Context) error {
	var lastWarn time.Time
	warn := func(msg string, err error) {
		if time.Since(lastWarn) > 30*time.Second {
			lastWarn = time.Now()
			k.logger.Warn(msg, zap.Error(err))
		}
	}
	for {
		err := k.Ensure(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		warn("run log topic not ready; retrying", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	var end int64 = -1
	for end < 0 {
		start, err := k.offset(ctx, k.adm.ListStartOffsets)
		if err == nil {
			end, err = k.offset(ctx, k.adm.ListEndOffsets)
		}
		if err == nil {
			// Records before the start are gone: the fold begins there.
			k.mu.Lock()
			k.next = max(k.next, start)
			k.mu.Unlock()
			break
		}
		end = -1
		if ctx.Err() != nil {
			return nil
		}
		warn("reading the run log's end offset; retrying", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	k.markCaughtUp(end)
	for {
		fs := k.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if ferr == nil && !errors.Is(err, context.Canceled) {
				ferr = err
			}
		})
		if ferr != nil {
			warn("reading the run log", ferr) // the client retries
		}
		fs.EachRecord(func(r *kgo.Record) { k.apply(r.Offset, string(r.Key), r.Value) })
		k.markCaughtUp(end)
	}
}

// offset reads the log partition's start or end offset with list.
func (k *Kafka) offset(ctx context.Context, list func(context.Context, ...string) (kadm.ListedOffsets, error)) (int64, error) {
	offs, err := list(ctx, k.topic)
	if err != nil {
		return 0, err
	}
	o, ok := offs.Lookup(k.topic, 0)
	if !ok {
		return 0, fmt.Errorf("run log topic %q: no partition 0", k.topic)
	}
	return o.Offset, o.Err
}

func (k *Kafka) markCaughtUp(end int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.caughtUp && k.next >= end {
		k.caughtUp = true
		close(k.changed)
		k.changed = make(chan struct{})
	}
}
