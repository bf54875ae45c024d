package kafkalog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// Apply folds the record at offset off (a nil value is a tombstone). It
// runs under the log's lock: it must not call the Log.
type Apply func(off int64, key string, value []byte)

// Log folds a topic's records in order with Apply. Safe for concurrent
// use.
type Log struct {
	mu       sync.Mutex
	apply    Apply
	next     int64         // offset of the next record to fold
	changed  chan struct{} // closed (and replaced) on every fold
	caughtUp bool
	produce  func(ctx context.Context, key string, value []byte) (int64, error)
	logger   *zap.Logger

	cl    *kgo.Client // nil in memory
	adm   *kadm.Client
	topic string
	role  string // the config key naming the topic, for messages
}

// NewMemory returns a log kept in memory (tests, tools): caught up from
// the start.
func NewMemory(apply Apply) *Log {
	l := &Log{apply: apply, changed: make(chan struct{}), caughtUp: true, logger: zap.NewNop()}
	l.produce = func(_ context.Context, key string, value []byte) (int64, error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		off := l.next
		l.foldLocked(off, key, value)
		return off, nil
	}
	return l
}

// produceTimeout bounds one append: a log that cannot be written fails
// the command instead of hanging.
const produceTimeout = 30 * time.Second

// OpenKafka returns the log on topic (named by config key role in
// messages), read with a client built from opts. Run consumes it.
func OpenKafka(opts []kgo.Opt, topic, role string, apply Apply, logger *zap.Logger) (*Log, error) {
	opts = append(append([]kgo.Opt(nil), opts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
		kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("%s client: %w", role, err)
	}
	l := &Log{apply: apply, changed: make(chan struct{}), logger: logger, cl: cl, adm: kadm.NewClient(cl), topic: topic, role: role}
	l.produce = func(ctx context.Context, key string, value []byte) (int64, error) {
		ctx, cancel := context.WithTimeout(ctx, produceTimeout)
		defer cancel()
		r := &kgo.Record{Key: []byte(key), Value: value, Partition: 0}
		if err := l.cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			return 0, err
		}
		return r.Offset, nil
	}
	return l, nil
}

// Close releases the client.
func (l *Log) Close() {
	if l.cl != nil {
		l.cl.Close()
	}
}

func (l *Log) fold(off int64, key string, value []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.foldLocked(off, key, value)
}

func (l *Log) foldLocked(off int64, key string, value []byte) {
	if off < l.next {
		return // a duplicate of a re-read
	}
	l.apply(off, key, value)
	l.next = off + 1
	close(l.changed)
	l.changed = make(chan struct{})
}

// Append writes a record and waits until it is folded; it returns its
// offset.
func (l *Log) Append(ctx context.Context, key string, value []byte) (int64, error) {
	off, err := l.produce(ctx, key, value)
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", l.role, err)
	}
	for {
		l.mu.Lock()
		if l.next > off {
			l.mu.Unlock()
			return off, nil
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// Record is one record to append.
type Record struct {
	Key   string
	Value []byte
}

// AppendAll writes recs in order and waits until the last is folded.
func (l *Log) AppendAll(ctx context.Context, recs ...Record) error {
	if len(recs) == 0 {
		return nil
	}
	if l.cl == nil {
		for _, r := range recs {
			if _, err := l.Append(ctx, r.Key, r.Value); err != nil {
				return err
			}
		}
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, produceTimeout)
	defer cancel()
	krs := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		krs[i] = &kgo.Record{Key: []byte(r.Key), Value: r.Value, Partition: 0}
	}
	if err := l.cl.ProduceSync(pctx, krs...).FirstErr(); err != nil {
		return fmt.Errorf("write %s: %w", l.role, err)
	}
	last := krs[len(krs)-1].Offset
	for {
		l.mu.Lock()
		if l.next > last {
			l.mu.Unlock()
			return nil
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// View calls fn under the log's lock (the fold's state is the caller's:
// fn must not keep references into it or call the Log).
func (l *Log) View(fn func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fn()
}

// Changed returns a channel closed at the next fold (or when the log
// catches up).
func (l *Log) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

// CaughtUp reports whether the log folded every record written before
// it started.
func (l *Log) CaughtUp() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.caughtUp
}

// Ensure creates the topic (one partition, compacted) when it is missing
// and refuses one with more partitions: the log's order is the fold's.
func (l *Log) Ensure(ctx context.Context) error {
	md, err := l.adm.Metadata(ctx, l.topic)
	if err != nil {
		return fmt.Errorf("read %s topic %q: %w", l.role, l.topic, err)
	}
	if td, ok := md.Topics[l.topic]; ok && td.Err == nil {
		if n := len(td.Partitions); n != 1 {
			return fmt.Errorf("%s topic %q has %d partitions; it must have exactly 1", l.role, l.topic, n)
		}
		return nil
	}
	policy := "compact"
	resp, err := l.adm.CreateTopic(ctx, 1, -1, map[string]*string{"cleanup.policy": &policy}, l.topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create %s topic %q (1 partition, compacted): %w; create it, or grant feedmill the right to", l.role, l.topic, err)
	}
	return nil
}

// Run ensures the topic, folds what it holds (CaughtUp turns true), then
// follows it until ctx ends. A memory log returns at once.
func (l *Log) Run(ctx context.Context) error {
	if l.cl == nil {
		return nil
	}
	var lastWarn time.Time
	warn := func(msg string, err error) {
		if time.Since(lastWarn) > 30*time.Second {
			lastWarn = time.Now()
			l.logger.Warn(msg, zap.String("topic", l.topic), zap.Error(err))
		}
	}
	for {
		err := l.Ensure(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		warn(l.role+" topic not ready; retrying", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	var end int64 = -1
	for end < 0 {
		start, err := l.offset(ctx, l.adm.ListStartOffsets)
		if err == nil {
			end, err = l.offset(ctx, l.adm.ListEndOffsets)
		}
		if err == nil {
			l.mu.Lock()
			l.next = max(l.next, start) // records before the start are gone
			l.mu.Unlock()
			break
		}
		end = -1
		if ctx.Err() != nil {
			return nil
		}
		warn("reading the "+l.role+" end offset; retrying", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	l.markCaughtUp(end)
	for {
		fs := l.cl.PollFetches(ctx)
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
			warn("reading the "+l.role, ferr) // the client retries
		}
		fs.EachRecord(func(r *kgo.Record) { l.fold(r.Offset, string(r.Key), r.Value) })
		l.markCaughtUp(end)
	}
}

func (l *Log) offset(ctx context.Context, list func(context.Context, ...string) (kadm.ListedOffsets, error)) (int64, error) {
	offs, err := list(ctx, l.topic)
	if err != nil {
		return 0, err
	}
	o, ok := offs.Lookup(l.topic, 0)
	if !ok {
		return 0, fmt.Errorf("%s topic %q: no partition 0", l.role, l.topic)
	}
	return o.Offset, o.Err
}

func (l *Log) markCaughtUp(end int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.caughtUp && l.next >= end {
		l.caughtUp = true
		close(l.changed)
		l.changed = make(chan struct{})
	}
}
