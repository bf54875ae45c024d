package runlog

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/feedmill/feedmill/internal/kafkalog"
)

// Log is the run log of one instance: it folds the group's commands in
// log order and appends new ones. Safe for concurrent use.
type Log struct {
	kl       *kafkalog.Log
	fold     *Fold             // guarded by kl's lock (View)
	outcomes map[int64]Outcome // recent outcomes by offset, for Append's waiters
	logger   *zap.Logger
}

func newLog(logger *zap.Logger) *Log {
	return &Log{fold: NewFold(), outcomes: map[int64]Outcome{}, logger: logger}
}

// NewMemory returns a log kept in memory: one process's instances share
// it (tests, benchmarks, tools). It is caught up from the start.
func NewMemory() *Log {
	l := newLog(zap.NewNop())
	l.kl = kafkalog.NewMemory(l.apply)
	return l
}

// apply folds the record at offset off (under kl's lock).
func (l *Log) apply(off int64, key string, value []byte) {
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
	off, err := l.kl.Append(ctx, c.Op+"/"+c.Run+"/"+rand.Text(), v)
	if err != nil {
		return Outcome{}, fmt.Errorf("write run log %s command: %w", c.Op, err)
	}
	var out Outcome
	l.kl.View(func() { out = l.outcomes[off] })
	return out, nil
}

// Forget deletes what Fold.Forget lists (tombstones) and returns how
// many records it deleted.
func (l *Log) Forget(ctx context.Context) (int, error) {
	var keys []string
	l.View(func(f *Fold) { keys = f.Forget() })
	for i, k := range keys {
		if _, err := l.kl.Append(ctx, k, nil); err != nil {
			return i, fmt.Errorf("delete old run log records: %w", err)
		}
	}
	return len(keys), nil
}

// View calls fn with the fold under the log's lock: fn must not keep it
// or call the Log.
func (l *Log) View(fn func(f *Fold)) { l.kl.View(func() { fn(l.fold) }) }

// Changed returns a channel closed at the next fold.
func (l *Log) Changed() <-chan struct{} { return l.kl.Changed() }

// CaughtUp reports whether the log has folded every record written
// before it started.
func (l *Log) CaughtUp() bool { return l.kl.CaughtUp() }

// Kafka is the run log on a single-partition topic.
type Kafka struct {
	*Log
}

// OpenKafka returns the run log on topic, reading it with a client built
// from opts (brokers, TLS, SASL). Run consumes it.
func OpenKafka(opts []kgo.Opt, topic string, logger *zap.Logger) (*Kafka, error) {
	l := newLog(logger.Named("runlog"))
	kl, err := kafkalog.OpenKafka(opts, topic, "run log (kafka.topics.runs)", l.apply, l.logger)
	if err != nil {
		return nil, err
	}
	l.kl = kl
	return &Kafka{Log: l}, nil
}

// Close releases the client.
func (k *Kafka) Close() { k.kl.Close() }

// Ensure creates the topic (one partition, compacted: every record has
// its own key, and Forget's tombstones delete old runs) when it is
// missing and refuses one with more partitions: the log's order is the
// decisions' order.
func (k *Kafka) Ensure(ctx context.Context) error { return k.kl.Ensure(ctx) }

// Run ensures the topic, folds what it holds (CaughtUp turns true), then
// follows it until ctx ends.
func (k *Kafka) Run(ctx context.Context) error { return k.kl.Run(ctx) }
