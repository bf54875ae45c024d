package processor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/state"
)

// producer is the part of *kgo.Client the relay uses (a fake in tests).
type producer interface {
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
	ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults
}

// Relay produces the outbox to Kafka in order, per partition, and deletes
// what Kafka acknowledged. After a crash it re-produces what was not yet
// deleted: consumers see a re-send with the same event_id and seq.
//
// Each outbox partition advances on its own: a partition whose records
// fail with a retriable error stays where it is and is retried, while the
// others are acknowledged and deleted. A record Kafka can never accept
// (too large, invalid) is sent to the rejects topic with the reason and
// deleted, so it never blocks what follows it.
type Relay struct {
	store   *state.Store
	client  producer
	events  string // the events topic; other records are rejects
	rejects string
	metrics *Metrics
	logger  *zap.Logger

	mu      sync.Mutex
	relayed map[int32]uint64 // next outbox seq to relay, per partition
	// MaxBatch bounds the records produced per round and partition.
	MaxBatch int
}

// NewRelay creates a relay that produces with client (idempotent producer).
func NewRelay(store *state.Store, client producer, eventsTopic, rejectsTopic string, metrics *Metrics, logger *zap.Logger) *Relay {
	return &Relay{store: store, client: client, events: eventsTopic, rejects: rejectsTopic, metrics: metrics,
		logger: logger.Named("relay"), relayed: map[int32]uint64{}, MaxBatch: 5000}
}

// Run relays until ctx ends.
func (r *Relay) Run(ctx context.Context) error {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	failing := false
	backoff := 100 * time.Millisecond
	for {
		n, err := r.round(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			r.metrics.produceErrors.Inc()
			if !failing {
				r.logger.Warn("producing outbox failed, retrying", zap.Error(err))
				failing = true
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		if failing {
			r.logger.Info("producing outbox recovered")
			failing = false
		}
		backoff = 100 * time.Millisecond
		if n > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.store.OutboxNotify():
		case <-tick.C:
		}
	}
}

// Drain relays until the outbox is empty (used by tests and shutdown).
func (r *Relay) Drain(ctx context.Context) error {
	for {
		n, err := r.round(ctx)
		if err != nil || n == 0 {
			return err
		}
	}
}

// sent is one produced outbox record and its outcome.
type sent struct {
	seq   uint64
	rec   *kgo.Record
	srcMs int64 // timestamp of the input that caused it, for the latency
	err   error
}

// round produces up to MaxBatch records of every partition with outbox
// records and waits for all acknowledgements. Per partition it then
// deletes the longest prefix that Kafka acknowledged or that went to the
// rejects topic. It returns how many records were settled, and the first
// retriable failure (the records from there on are produced again by a
// later round).
func (r *Relay) round(ctx context.Context) (int, error) {
	defer func() { r.metrics.outboxDepth.Set(float64(r.store.OutboxDepth())) }()
	parts := r.store.OutboxPartitions()
	slices.Sort(parts)
	var wg sync.WaitGroup
	batches := map[int32][]sent{}
	for _, p := range parts {
		r.mu.Lock()
		from := r.relayed[p]
		r.mu.Unlock()
		// Read next before scanning: every record below it is committed,
		// so if the scan finds none of them they are all relayed.
		next := r.store.NextOutbox(p)
		if next <= from {
			continue
		}
		var batch []sent
		_, err := r.store.ScanOutbox(p, from, r.MaxBatch, func(seq uint64, o *state.OutboxRecord) error {
			rec := &kgo.Record{Topic: o.Topic, Key: slices.Clone(o.Key), Value: slices.Clone(o.Value)}
			for _, h := range o.Headers {
				rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: h.Key, Value: slices.Clone(h.Value)})
			}
			batch = append(batch, sent{seq: seq, rec: rec, srcMs: o.SourceTimeMs})
			return nil
		})
		if err != nil {
			// Settle what the earlier partitions produced, so it is not
			// produced again; then report the state error.
			wg.Wait()
			n, serr := r.settleAll(ctx, parts, batches)
			return n, errors.Join(err, serr)
		}
		if len(batch) == 0 {
			r.mu.Lock()
			r.relayed[p] = next
			r.mu.Unlock()
			continue
		}
		for i := range batch {
			s := &batch[i]
			wg.Add(1)
			r.client.Produce(ctx, s.rec, func(_ *kgo.Record, err error) {
				defer wg.Done()
				s.err = err
				if err == nil {
					r.countSent(s)
				}
			})
		}
		batches[p] = batch
	}
	wg.Wait()
	return r.settleAll(ctx, parts, batches)
}

// settleAll settles every produced partition batch (settle) and deletes
// what is done. It returns how many records were settled and the first
// retriable failure.
func (r *Relay) settleAll(ctx context.Context, parts []int32, batches map[int32][]sent) (int, error) {
	var first error
	total := 0
	for _, p := range parts {
		batch := batches[p]
		settled, err := r.settle(ctx, p, batch)
		if settled > 0 {
			if derr := r.store.DeleteOutbox(p, batch[0].seq, batch[settled-1].seq); derr != nil {
				return total, derr
			}
			r.mu.Lock()
			r.relayed[p] = batch[settled-1].seq + 1
			r.mu.Unlock()
			total += settled
		}
		if err != nil && first == nil {
			first = err
		}
	}
	return total, first
}

// settle walks a partition's produced records in order and returns how
// many of them, from the start, are done: acknowledged, or not accepted by
// Kafka for a reason no retry can cure and sent to the rejects topic. It
// stops at the first retriable failure and returns it.
//
// Kafka answers "too large" or "invalid" for a whole produce batch, so a
// record failing so is produced again alone first: only a record refused
// on its own goes to rejects.
func (r *Relay) settle(ctx context.Context, p int32, batch []sent) (int, error) {
	for i := range batch {
		s := &batch[i]
		if s.err == nil {
			continue
		}
		if permanent(s.err) {
			s.err = r.client.ProduceSync(ctx, s.rec).FirstErr()
			if s.err == nil {
				r.countSent(s)
				continue
			}
		}
		if !permanent(s.err) {
			return i, fmt.Errorf("produce outbox %d/%d to %q: %w", p, s.seq, s.rec.Topic, s.err)
		}
		rej := r.failedRecord(p, s.seq, s.rec, s.err)
		if err := r.client.ProduceSync(ctx, rej).FirstErr(); err != nil {
			return i, fmt.Errorf("send unproducible outbox record %d/%d to %q: %w", p, s.seq, r.rejects, err)
		}
		r.metrics.rejectsSent.Inc()
		r.metrics.unproducible.Inc()
		r.logger.Error("outbox record refused by Kafka, sent to rejects",
			zap.String("topic", s.rec.Topic), zap.ByteString("key", truncate(s.rec.Key, 200)),
			zap.Int("bytes", len(s.rec.Key)+len(s.rec.Value)), zap.Error(s.err))
	}
	return len(batch), nil
}

// countSent counts an acknowledged outbox record.
func (r *Relay) countSent(s *sent) {
	if s.rec.Topic != r.events {
		r.metrics.rejectsSent.Inc()
		return
	}
	r.metrics.eventsSent.Inc()
	if s.srcMs > 0 {
		r.metrics.latency.Observe(max(0, time.Since(time.UnixMilli(s.srcMs)).Seconds()))
	}
}

// permanent reports whether a produce error is about the record itself,
// so producing it again can never succeed. Errors about the cluster or
// our permissions (unknown topic, authorization, timeouts) are not: they
// are retried, and they show in feedmill_produce_errors_total.
func permanent(err error) bool {
	for _, e := range []error{kerr.MessageTooLarge, kerr.RecordListTooLarge, kerr.InvalidRecord,
		kerr.CorruptMessage, kerr.InvalidTimestamp} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// rejectKeyMax bounds the key of a reject made from an unproducible
// record, and rejectValueMax its value: past them they are left out (and
// their size said in a header), so the reject itself always fits.
const (
	rejectKeyMax   = 1 << 10
	rejectValueMax = 8 << 10
)

// failedRecord is the reject record for an outbox record Kafka refused.
// Its source-* headers name the outbox: the topic it was meant for, the
// offers partition and the outbox sequence.
func (r *Relay) failedRecord(p int32, seq uint64, rec *kgo.Record, cause error) *kgo.Record {
	out := &kgo.Record{Topic: r.rejects, Key: rec.Key, Value: rec.Value}
	for _, h := range rejectHeaders(fmt.Sprintf("produce to %s: %v", rec.Topic, cause), rec.Topic, p, int64(seq)) {
		out.Headers = append(out.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	if len(out.Key) > rejectKeyMax {
		out.Headers = append(out.Headers, kgo.RecordHeader{Key: "key-truncated-from", Value: strconv.AppendInt(nil, int64(len(out.Key)), 10)})
		out.Key = out.Key[:rejectKeyMax]
	}
	if len(out.Value) > rejectValueMax {
		out.Headers = append(out.Headers, kgo.RecordHeader{Key: "value-omitted-bytes", Value: strconv.AppendInt(nil, int64(len(out.Value)), 10)})
		out.Value = nil
	}
	return out
}

// rejectHeaders are the headers of every reject record (the contract's
// error and source-* headers), built by records like the connectors'
// dead letters.
func rejectHeaders(reason, topic string, partition int32, offset int64) []state.Header {
	return records.AppendRejectHeaders([]state.Header(nil), reason, topic, partition, offset)
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
