package processor

import (
	"context"
	"encoding/binary"
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

	// roundMu is held for a whole round (Quiesce waits for it).
	roundMu sync.Mutex
	mu      sync.Mutex
	relayed map[int32]uint64 // next outbox seq to relay, per partition
	// rejected holds, per partition, the outbox records already sent to
	// rejects in a round that could not be deleted (another record of the
	// partition failed): later rounds skip them.
	rejected map[int32]map[uint64]bool
	// ackedNext holds, per partition, the acknowledged watermark not yet
	// written to the changelog, and ackedEvents the outbox sequences of
	// acknowledged events whose changelog records are still to delete:
	// both go with the partition's next round.
	ackedNext   map[int32]uint64
	ackedEvents map[int32][]uint64
	// MaxBatch bounds the records produced per round and partition.
	MaxBatch int
	// ChangelogTopic names the changelog ("" when there is none) and
	// Changelog produces to it (its records can be larger than events).
	// A round produces, per partition, its changelog records first (in
	// outbox order: each batch's events, offers, then its offset record,
	// which ends the batch), then, once all were acknowledged, its events
	// and rejects: the changelog never lags an event a consumer saw, and a
	// restore re-sends the events it holds that may not have been sent.
	ChangelogTopic string
	Changelog      producer
	// Owns reports whether this instance owns offers partition p (nil:
	// every partition). The outbox of a partition it does not own is not
	// relayed: its new owner restores the partition and re-sends from the
	// changelog.
	Owns func(p int32) bool
	// Internal names feedmill's own topics between partition tasks (the
	// grouped feeds' candidacies and decisions): their records go to the
	// partition the outbox record names (the producer partitions them
	// manually, partitionerFor) and, like events, have a changelog
	// record deleted once acknowledged.
	Internal map[string]bool
}

// NewRelay creates a relay that produces with client (idempotent producer).
func NewRelay(store *state.Store, client producer, eventsTopic, rejectsTopic string, metrics *Metrics, logger *zap.Logger) *Relay {
	return &Relay{store: store, client: client, events: eventsTopic, rejects: rejectsTopic, metrics: metrics,
		logger: logger.Named("relay"), relayed: map[int32]uint64{}, rejected: map[int32]map[uint64]bool{}, ackedNext: map[int32]uint64{}, ackedEvents: map[int32][]uint64{}, MaxBatch: 5000}
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
	phase int   // phaseState or phaseOutput
	// batchEnd marks a changelog offset record: the last record of a
	// batch in its partition.
	batchEnd bool
	// watermark marks the acknowledged-watermark record a round adds (not
	// an outbox record).
	watermark bool
	err       error
}

// The steps of a round, in order.
const (
	phaseState  = iota // changelog records, in outbox order
	phaseOutput        // events and rejects
	numPhases
)

// round produces up to MaxBatch records of every owned partition with
// outbox records, in the steps of ChangelogTopic, waiting for the
// acknowledgements of each step before the next. A partition whose
// records all settled (acknowledged, or refused for good and sent to
// rejects) has them deleted; one with a retriable failure keeps them for
// a later round, which produces them again. It returns how many records
// were settled, and the first retriable failure.
func (r *Relay) round(ctx context.Context) (int, error) {
	r.roundMu.Lock()
	defer r.roundMu.Unlock()
	defer func() { r.metrics.outboxDepth.Set(float64(r.store.OutboxDepthOf(r.relays))) }()
	parts := r.store.OutboxPartitions()
	slices.Sort(parts)
	batches := map[int32][]sent{}
	taken := map[int32][]sent{} // follow-up records taken for this round
	var scanErr error
	for _, p := range parts {
		if p != state.TablePartition && r.Owns != nil && !r.Owns(p) {
			continue
		}
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
		var n int
		var err error
		// A round takes whole batches: when the window ends inside the
		// first batch (one batch can hold more records than MaxBatch),
		// it grows until it holds that batch's end.
		for limit := r.MaxBatch; ; limit *= 2 {
			batch = batch[:0]
			n, err = r.store.ScanOutbox(p, from, limit, func(seq uint64, o *state.OutboxRecord) error {
				rec := &kgo.Record{Topic: o.Topic, Key: slices.Clone(o.Key), Value: slices.Clone(o.Value)}
				for _, h := range o.Headers {
					rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: h.Key, Value: slices.Clone(h.Value)})
				}
				ph, isEnd := phaseOutput, false
				if r.Internal[o.Topic] {
					rec.Partition = o.Partition
				}
				if r.ChangelogTopic != "" && o.Topic == r.ChangelogTopic {
					rec.Partition = o.Partition
					ph = phaseState
					isEnd = string(o.Key) == string(state.ChangelogOffsetKey)
				}
				batch = append(batch, sent{seq: seq, rec: rec, srcMs: o.SourceTimeMs, phase: ph, batchEnd: isEnd})
				return nil
			})
			if err != nil || n < limit || r.ChangelogTopic == "" || p == state.TablePartition ||
				slices.ContainsFunc(batch, func(s sent) bool { return s.batchEnd }) {
				break
			}
		}
		if err != nil {
			scanErr = fmt.Errorf("relay outbox of partition %d: %w", p, err)
			break
		}
		if len(batch) == 0 {
			r.mu.Lock()
			r.relayed[p] = next
			r.mu.Unlock()
			continue
		}
		if n == len(batch) && n >= r.MaxBatch && r.ChangelogTopic != "" && p != state.TablePartition {
			// Cut inside a batch: its events come before its changelog
			// records, some of which are beyond the cut. Keep the whole
			// batches: each ends with its offset record (state first).
			last := len(batch) - 1
			for last >= 0 && !batch[last].batchEnd {
				last--
			}
			if last >= 0 {
				batch = batch[:last+1]
			}
		}
		// Before the round's batches, so they come before a batch end.
		acks := r.takeAcked(p, batch[0].seq)
		taken[p] = acks
		batch = append(acks, batch...)
		batches[p] = batch
	}
	failed := map[int32]error{}
	for ph := range numPhases {
		var wg sync.WaitGroup
		for p, batch := range batches {
			if failed[p] != nil {
				continue
			}
			for i := range batch {
				s := &batch[i]
				if s.phase != ph || (!s.watermark && r.wasRejected(p, s.seq)) {
					continue
				}
				wg.Add(1)
				r.producerOf(s).Produce(ctx, s.rec, func(_ *kgo.Record, err error) {
					defer wg.Done()
					s.err = err
					if err == nil {
						r.countSent(s)
					}
				})
			}
		}
		wg.Wait()
		for p, batch := range batches {
			if failed[p] != nil {
				continue
			}
			if err := r.settle(ctx, p, batch, ph); err != nil {
				failed[p] = err
			}
		}
	}
	total := 0
	var first error
	for _, p := range parts {
		batch, ok := batches[p]
		if !ok {
			continue
		}
		if err := failed[p]; err != nil {
			if first == nil {
				first = err
			}
			r.putBackAcked(p, taken[p])
			continue
		}
		last := batch[len(batch)-1].seq
		if err := r.store.DeleteOutbox(p, batch[0].seq, last); err != nil {
			return total, err
		}
		if off := maxChangelogOffset(batch); off >= 0 {
			if err := r.store.SetChangelogWritten(p, off); err != nil {
				return total, err
			}
		}
		r.mu.Lock()
		delete(r.rejected, p)
		r.relayed[p] = last + 1
		if p != state.TablePartition && r.ChangelogTopic != "" {
			r.ackedNext[p] = last + 1
			for i := range batch {
				if s := &batch[i]; s.phase == phaseOutput && (s.rec.Topic == r.events || r.Internal[s.rec.Topic]) {
					r.ackedEvents[p] = append(r.ackedEvents[p], s.seq)
				}
			}
		}
		r.mu.Unlock()
		total += len(batch)
	}
	return total, errors.Join(scanErr, first)
}

// producerOf is the client for s: changelog records go through the
// changelog producer.
func (r *Relay) producerOf(s *sent) producer {
	if s.phase != phaseOutput && r.Changelog != nil {
		return r.Changelog
	}
	return r.client
}

// takeAcked returns the changelog records that follow up p's earlier
// rounds, to go with its next one (phase state, at outbox sequence seq,
// the round's last): the acknowledged watermark (every outbox record of p
// below it was acknowledged, so a restore re-sends only what may not have
// been) and the deletion of the acknowledged events' records. Those a
// stop loses only make a restore re-send more (the same events) and leave
// event records below the watermark, which a restore ignores.
func (r *Relay) takeAcked(p int32, seq uint64) []sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []sent
	for _, e := range r.ackedEvents[p] {
		out = append(out, sent{seq: seq, phase: phaseState, watermark: true,
			rec: &kgo.Record{Topic: r.ChangelogTopic, Partition: p, Key: state.ChangelogEventKey(nil, e)}})
	}
	delete(r.ackedEvents, p)
	if w, ok := r.ackedNext[p]; ok {
		out = append(out, sent{seq: seq, phase: phaseState, watermark: true,
			rec: &kgo.Record{Topic: r.ChangelogTopic, Partition: p, Key: slices.Clone(state.ChangelogAckedKey), Value: state.AppendChangelogAcked(nil, w)}})
		delete(r.ackedNext, p)
	}
	return out
}

// putBackAcked returns the follow-up records of a failed round to the
// partition's next one.
func (r *Relay) putBackAcked(p int32, acks []sent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range acks {
		k := s.rec.Key
		switch {
		case len(k) == 9 && k[0] == state.ChangelogKindEvent:
			r.ackedEvents[p] = append(r.ackedEvents[p], binary.BigEndian.Uint64(k[1:]))
		case string(k) == string(state.ChangelogAckedKey):
			if w, err := state.DecodeChangelogAcked(s.rec.Value); err == nil && w > r.ackedNext[p] {
				r.ackedNext[p] = w
			}
		}
	}
}

// maxChangelogOffset is the highest offset Kafka gave the batch's
// changelog records (-1: none).
func maxChangelogOffset(batch []sent) int64 {
	off := int64(-1)
	for i := range batch {
		if s := &batch[i]; s.phase != phaseOutput && s.rec.Offset > off && s.rec.Topic != "" {
			off = s.rec.Offset
		}
	}
	return off
}

func (r *Relay) wasRejected(p int32, seq uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rejected[p][seq]
}

// relays reports whether the relay sends partition p's outbox: the
// partitions it owns and the table partition. The depth metric counts
// only those (another owner sends the rest).
func (r *Relay) relays(p int32) bool {
	return p == state.TablePartition || r.Owns == nil || r.Owns(p)
}

// Quiesce waits until the round in flight (if any) has finished. After a
// partition stops being owned, it returns once nothing of it is being
// sent: the next owner can restore it without a late write of ours.
func (r *Relay) Quiesce() {
	r.roundMu.Lock()
	defer r.roundMu.Unlock() // nothing to do while held: waiting was the point
}

// ResetPartition forgets how far partition p was relayed (its outbox was
// replaced by a restore).
func (r *Relay) ResetPartition(p int32) {
	r.mu.Lock()
	delete(r.relayed, p)
	delete(r.rejected, p)
	delete(r.ackedNext, p)
	delete(r.ackedEvents, p)
	r.mu.Unlock()
}

// settle resolves the failures of phase ph among a partition's records:
// Kafka answers "too large" or "invalid" for a whole produce batch, so a
// record failing so is produced again alone first, and only a record
// refused on its own goes to rejects. It returns the first retriable
// failure (the partition then waits for a later round).
func (r *Relay) settle(ctx context.Context, p int32, batch []sent, ph int) error {
	for i := range batch {
		s := &batch[i]
		if s.phase != ph || s.err == nil {
			continue
		}
		if permanent(s.err) {
			s.err = r.producerOf(s).ProduceSync(ctx, s.rec).FirstErr()
			if s.err == nil {
				r.countSent(s)
				continue
			}
		}
		if !permanent(s.err) || s.phase != phaseOutput {
			// A changelog record is never sent to rejects: the batch's
			// events must not go out without it. The size rule keeps
			// every changelog record within the topic's limit; a refusal
			// stops the partition and shows in produce errors.
			return fmt.Errorf("produce outbox %d/%d to %q: %w", p, s.seq, s.rec.Topic, s.err)
		}
		cause := s.err
		rej := r.failedRecord(p, s.seq, s.rec, cause)
		if err := r.client.ProduceSync(ctx, rej).FirstErr(); err != nil {
			return fmt.Errorf("send unproducible outbox record %d/%d to %q: %w", p, s.seq, r.rejects, err)
		}
		s.err = nil
		r.mu.Lock()
		if r.rejected[p] == nil {
			r.rejected[p] = map[uint64]bool{}
		}
		r.rejected[p][s.seq] = true
		r.mu.Unlock()
		r.metrics.rejectsSent.Inc()
		r.metrics.unproducible.Inc()
		r.logger.Error("outbox record refused by Kafka, sent to rejects",
			zap.String("topic", s.rec.Topic), zap.ByteString("key", truncate(s.rec.Key, 200)),
			zap.Int("bytes", len(s.rec.Key)+len(s.rec.Value)), zap.Error(cause))
	}
	return nil
}

// countSent counts an acknowledged outbox record.
func (r *Relay) countSent(s *sent) {
	if s.phase != phaseOutput || r.Internal[s.rec.Topic] {
		return
	}
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
