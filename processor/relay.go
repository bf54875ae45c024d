package processor

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/feedmill/feedmill/state"
)

// Relay produces the outbox to Kafka in order, per partition, and deletes
// what Kafka acknowledged. After a crash it re-produces what was not yet
// deleted: consumers see a re-send with the same event_id and seq.
type Relay struct {
	store   *state.Store
	client  *kgo.Client
	events  string // the events topic; other records are rejects
	metrics *Metrics
	logger  *zap.Logger
	now     func() time.Time

	mu      sync.Mutex
	relayed map[int32]uint64 // next outbox seq to relay, per partition
	// MaxBatch bounds the records produced per round and partition.
	MaxBatch int
}

// NewRelay creates a relay that produces with client (idempotent producer).
func NewRelay(store *state.Store, client *kgo.Client, eventsTopic string, metrics *Metrics, logger *zap.Logger) *Relay {
	return &Relay{store: store, client: client, events: eventsTopic, metrics: metrics, logger: logger.Named("relay"),
		now: time.Now, relayed: map[int32]uint64{}, MaxBatch: 5000}
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

// round produces up to MaxBatch records of every partition with outbox
// records and waits for all acknowledgements. It returns how many records
// were relayed.
func (r *Relay) round(ctx context.Context) (int, error) {
	parts := r.store.OutboxPartitions()
	slices.Sort(parts)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		total int
	)
	type span struct {
		p        int32
		from, to uint64
	}
	var spans []span
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
		var last uint64
		seen := false
		n, err := r.store.ScanOutbox(p, from, r.MaxBatch, func(seq uint64, o *state.OutboxRecord) error {
			if !seen {
				from, seen = seq, true
			}
			last = seq
			rec := &kgo.Record{
				Topic: o.Topic,
				Key:   slices.Clone(o.Key),
				Value: slices.Clone(o.Value),
			}
			for _, h := range o.Headers {
				rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: h.Key, Value: slices.Clone(h.Value)})
			}
			src := o.SourceTimeMs
			isEvent := o.Topic == r.events
			wg.Add(1)
			r.client.Produce(ctx, rec, func(_ *kgo.Record, err error) {
				defer wg.Done()
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("produce to %q: %w", rec.Topic, err)
					}
					mu.Unlock()
					return
				}
				if isEvent {
					r.metrics.eventsSent.Inc()
					if src > 0 {
						r.metrics.latency.Observe(max(0, time.Since(time.UnixMilli(src)).Seconds()))
					}
				} else {
					r.metrics.rejectsSent.Inc()
				}
			})
			return nil
		})
		if err != nil {
			wg.Wait()
			return 0, err
		}
		if n > 0 {
			spans = append(spans, span{p, from, last})
			total += n
		} else {
			r.mu.Lock()
			r.relayed[p] = next
			r.mu.Unlock()
		}
	}
	wg.Wait()
	if first != nil {
		return 0, first
	}
	for _, s := range spans {
		if err := r.store.DeleteOutbox(s.p, s.from, s.to); err != nil {
			return 0, err
		}
		r.mu.Lock()
		r.relayed[s.p] = s.to + 1
		r.mu.Unlock()
	}
	r.mu.Lock()
	r.metrics.outboxDepth.Set(float64(r.store.OutboxDepth(r.relayed)))
	r.mu.Unlock()
	return total, nil
}
