package connectors

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/plugin/kzap"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/internal/clients"
	"github.com/feedmill/feedmill/internal/records"
)

// ErrRetriesExhausted is returned by Run when an item still failed
// transiently after retry.max_attempts attempts. The offsets of its records
// are not committed, so a restarted connector tries again.
var ErrRetriesExhausted = errors.New("partner retries exhausted")

// HeaderDestination names a destination of an events record. Dead-letter
// records carry the rejects layout's headers as well (docs/contract.md,
// Rejects: records.HeaderError and the source-* headers).
const HeaderDestination = "destination"

// shutdownTimeout bounds the dead-letter produce, state write and offset
// commit that follow a cancelled Run.
const shutdownTimeout = 30 * time.Second

// minCallGrace is the least time a partner call may overrun its
// retry.timeout before the Runtime abandons it (see callGrace).
const minCallGrace = 5 * time.Second

// callGrace is how long a Send may go on after its context ended before
// the Runtime stops waiting for it: retry.timeout, at least minCallGrace.
// A partner that honours ctx returns well within it; one that does not
// (a blocking call without a deadline) must not hang the connector.
func callGrace(timeout time.Duration) time.Duration {
	return max(timeout, minCallGrace)
}

// Deps are a Runtime's dependencies besides its config and partner.
type Deps struct {
	// Logger is named per component by the Runtime; nil means no logs.
	Logger *zap.Logger
	// Registerer receives the connector's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Serde decodes events; nil builds one from the config's registry.
	Serde *records.Serde
	// KafkaOpts are appended to the options built from the config (tests).
	KafkaOpts []kgo.Opt
	// Sleep waits between retries; nil waits on a timer. Tests record the
	// waits instead of sleeping.
	Sleep func(ctx context.Context, d time.Duration) error
	// Events are optional callbacks; they run on the Runtime's goroutine
	// and must not block.
	Events Events
}

// Events report what the Runtime did, for tests and embedding programs.
type Events struct {
	// Committed is called after the offset of a partition was committed.
	Committed func(topic string, partition int32, offset int64)
}

// Runtime drains the events topic for a connector's destinations into a
// Partner. Create it with New and call Run once.
type Runtime struct {
	cfg     config.Connector
	partner Partner
	log     *zap.Logger
	m       *metrics
	serde   *records.Serde
	opts    []kgo.Opt
	sleep   func(ctx context.Context, d time.Duration) error
	events  Events
	limiter *rate.Limiter
	perCall int
	grace   time.Duration // callGrace of retry.timeout
	topic   string
	dests   []string
	hwm     map[int32]int64 // guarded by mu
	mu      sync.Mutex
}

// New checks cfg (Validate) and builds a Runtime delivering to p. It opens
// nothing yet; Run connects.
func New(cfg config.Connector, p Partner, deps Deps) (*Runtime, error) {
	if p == nil {
		return nil, errors.New("connector runtime: nil partner")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("connector runtime: %w", err)
	}
	opts, err := clients.KafkaOpts(cfg.Kafka)
	if err != nil {
		return nil, fmt.Errorf("connector runtime: %w", err)
	}
	serde := deps.Serde
	if serde == nil {
		rc, err := clients.Registry(cfg.SchemaRegistry)
		if err != nil {
			return nil, fmt.Errorf("connector runtime: %w", err)
		}
		serde = records.NewSerde(rc)
	}
	log := deps.Logger
	if log == nil {
		log = zap.NewNop()
	}
	sleep := deps.Sleep
	if sleep == nil {
		sleep = waitCtx
	}
	limit := rate.Inf
	if cfg.RateLimit.PerSecond > 0 {
		limit = rate.Limit(cfg.RateLimit.PerSecond)
	}
	perCall := cfg.Batch.MaxItems
	if bl, ok := p.(BatchLimiter); ok && bl.MaxItems() > 0 && bl.MaxItems() < perCall {
		perCall = bl.MaxItems()
	}
	r := &Runtime{
		cfg:     cfg,
		partner: p,
		log:     log.Named("connector"),
		m:       newMetrics(deps.Registerer),
		serde:   serde,
		opts:    append(opts, deps.KafkaOpts...),
		sleep:   sleep,
		events:  deps.Events,
		limiter: rate.NewLimiter(limit, max(cfg.RateLimit.Burst, 1)),
		perCall: perCall,
		grace:   callGrace(cfg.Retry.Timeout),
		topic:   cfg.Kafka.Topics.Events,
		dests:   slices.Clone(cfg.Destinations),
		hwm:     make(map[int32]int64),
	}
	return r, nil
}

// Run consumes until ctx ends or a dependency fails. On ctx cancellation
// it lets partner calls in flight finish (each bounded by retry.timeout),
// starts no new ones, writes dead letters and state for what finished,
// commits exactly the acknowledged prefix of every partition, leaves the
// group and returns nil. It returns an error when Kafka, Pebble or the
// registry fail, or ErrRetriesExhausted.
func (r *Runtime) Run(ctx context.Context) error {
	st, err := openStore(r.cfg.StateDir, r.log.Named("pebble"))
	if err != nil {
		return err
	}
	defer func() {
		if err := st.close(); err != nil {
			r.log.Error("close connector state", zap.Error(err))
		}
	}()
	opts := append(slices.Clone(r.opts),
		kgo.ConsumerGroup(r.cfg.Kafka.GroupID),
		kgo.ConsumeTopics(r.topic),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.WithLogger(kzap.New(r.log.Named("kafka"))),
		kgo.OnPartitionsRevoked(r.dropPartitions),
		kgo.OnPartitionsLost(r.dropPartitions),
	)
	if r.cfg.Kafka.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(r.cfg.Kafka.InstanceID))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	r.log.Info("connector started",
		zap.Strings("destinations", r.dests),
		zap.String("topic", r.topic),
		zap.String("group", r.cfg.Kafka.GroupID))

	b := &batch{rt: r, st: st, cl: cl}
	for {
		recs := r.collect(ctx, cl, b.recs[:0])
		b.recs = recs
		var runErr error
		if len(recs) > 0 {
			runErr = b.process(ctx)
		}
		cl.AllowRebalance()
		if runErr != nil {
			return runErr
		}
		if ctx.Err() != nil {
			r.log.Info("connector stopped")
			return nil
		}
	}
}

// dropPartitions forgets the lag of partitions this member no longer owns.
func (r *Runtime) dropPartitions(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range lost[r.topic] {
		delete(r.hwm, p)
		label := strconv.Itoa(int(p))
		r.m.lag.DeleteLabelValues(r.topic, label)
		r.m.committed.DeleteLabelValues(r.topic, label)
	}
}

// collect polls one batch: up to batch.max_items records, waiting at most
// batch.max_wait after the first record.
func (r *Runtime) collect(ctx context.Context, cl *kgo.Client, buf []*kgo.Record) []*kgo.Record {
	maxItems := r.cfg.Batch.MaxItems
	buf = r.poll(ctx, cl, buf, maxItems)
	if len(buf) == 0 || len(buf) >= maxItems || ctx.Err() != nil {
		return buf
	}
	wctx, cancel := context.WithTimeout(ctx, r.cfg.Batch.MaxWait)
	defer cancel()
	for len(buf) < maxItems && wctx.Err() == nil {
		buf = r.poll(wctx, cl, buf, maxItems-len(buf))
	}
	return buf
}

func (r *Runtime) poll(ctx context.Context, cl *kgo.Client, buf []*kgo.Record, n int) []*kgo.Record {
	fs := cl.PollRecords(ctx, n)
	fs.EachError(func(topic string, p int32, err error) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, kgo.ErrClientClosed) {
			return
		}
		r.log.Warn("fetch", zap.String("topic", topic), zap.Int32("partition", p), zap.Error(err))
	})
	r.mu.Lock()
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if p.Topic == r.topic && p.HighWatermark > 0 {
			r.hwm[p.Partition] = p.HighWatermark
		}
	})
	r.mu.Unlock()
	fs.EachRecord(func(rec *kgo.Record) { buf = append(buf, rec) })
	return buf
}

// wants reports whether a record's destination headers name one of the
// connector's destinations. It does not decode the value.
func (r *Runtime) wants(hs []kgo.RecordHeader) bool {
	for i := range hs {
		if hs[i].Key != HeaderDestination {
			continue
		}
		for _, d := range r.dests {
			if string(hs[i].Value) == d {
				return true
			}
		}
	}
	return false
}

func (r *Runtime) mine(dest string) bool {
	return slices.Contains(r.dests, dest)
}

// backoff is exponential with jitter: a random duration in [d/2, d] where
// d = retry.initial * 2^(attempt-1), capped at retry.max.
func (r *Runtime) backoff(attempt int) time.Duration {
	d := r.cfg.Retry.Initial
	for i := 1; i < attempt && d < r.cfg.Retry.Max; i++ {
		d *= 2
	}
	d = min(d, r.cfg.Retry.Max)
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(half+1)
}

// itemState is the fate of one offer's item in a batch.
type itemState uint8

const (
	itemPending   itemState = iota
	itemNoSend              // nothing to tell the partner; state is persisted
	itemAcked               // partner applied it
	itemDead                // partner refused it; records dead-lettered
	itemAbandoned           // shutdown or retries exhausted; not persisted
)

// offerWork collects one offer's events of a batch.
type offerWork struct {
	st          offerState // working state
	wasKnown    bool
	wasMember   bool
	upsertSeen  bool
	removeSeen  bool
	lastAction  string
	last        *records.FeedEvent
	recs        []int // indices into batch.recs of applied events
	item        Item
	state       itemState
	message     string
	lastStatus  int
	exhausted   bool
	entriesMine []records.FeedEntry
	eventIDs    []string
}

// batch is the per-batch scratch space, reused across batches.
type batch struct {
	rt     *Runtime
	st     *store
	cl     *kgo.Client
	recs   []*kgo.Record
	done   []bool
	work   map[string]*offerWork
	order  []*offerWork
	dead   []*kgo.Record
	keyBuf []byte
	valBuf []byte
}

func (b *batch) reset() {
	b.done = slices.Grow(b.done[:0], len(b.recs))[:len(b.recs)]
	clear(b.done)
	if b.work == nil {
		b.work = make(map[string]*offerWork)
	}
	clear(b.work)
	b.order = b.order[:0]
	b.dead = b.dead[:0]
}

// process delivers one batch and commits what it can.
func (b *batch) process(ctx context.Context) error {
	r := b.rt
	start := time.Now()
	b.reset()
	if err := b.plan(ctx); err != nil {
		return err
	}
	exhausted := b.send(ctx)

	// Everything after the partner calls must happen even when ctx ended:
	// dead letters, state and offsets of what the partner acknowledged.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := b.deadLetter(fctx); err != nil {
		return err
	}
	if err := b.persist(); err != nil {
		return err
	}
	for _, w := range b.order {
		if w.state == itemAbandoned {
			continue
		}
		for _, i := range w.recs {
			b.done[i] = true
		}
	}
	if err := b.commit(fctx); err != nil {
		return err
	}
	r.m.batch.Observe(time.Since(start).Seconds())
	if exhausted != nil {
		return exhausted
	}
	return nil
}

// plan decodes the wanted records, applies the seq rule and membership,
// and builds one item per offer that needs a partner call.
func (b *batch) plan(ctx context.Context) error {
	r := b.rt
	skippedOther, stale := 0, 0
	for i, rec := range b.recs {
		if !r.wants(rec.Headers) {
			b.done[i] = true
			skippedOther++
			continue
		}
		ev := new(records.FeedEvent)
		if err := r.serde.DecodeFeedEvent(ctx, rec.Value, ev); err != nil {
			if rej, ok := records.IsReject(err); ok {
				b.dead = append(b.dead, deadLetterRecord(r.cfg.DeadLetterTopic, rec, "decode feed event: "+rej.Error()))
				r.m.deadLetters.WithLabelValues("undecodable").Inc()
				b.done[i] = true
				continue
			}
			return fmt.Errorf("decode feed event at %s/%d@%d: %w", rec.Topic, rec.Partition, rec.Offset, err)
		}
		w := b.work[ev.OfferID]
		if w == nil {
			w = &offerWork{}
			b.keyBuf = stateKey(b.keyBuf[:0], ev.OfferID)
			if err := b.st.get(b.keyBuf, &w.st); err != nil {
				return err
			}
			w.wasKnown, w.wasMember = w.st.known, w.st.member()
			b.work[ev.OfferID] = w
			b.order = append(b.order, w)
		}
		if w.st.known && ev.Seq <= w.st.seq {
			b.done[i] = true
			stale++
			continue
		}
		for _, e := range ev.Entries {
			if !r.mine(e.Destination) {
				continue
			}
			w.st.apply(e)
			w.entriesMine = append(w.entriesMine, e)
			if e.Action == records.ActionRemove {
				w.removeSeen = true
			} else {
				w.upsertSeen = true
				w.lastAction = e.Action
			}
		}
		w.st.known, w.st.seq = true, ev.Seq
		w.last = ev
		w.recs = append(w.recs, i)
		w.eventIDs = append(w.eventIDs, ev.EventID)
	}
	if skippedOther > 0 {
		r.m.skipped.WithLabelValues("other_destination").Add(float64(skippedOther))
	}
	if stale > 0 {
		r.m.skipped.WithLabelValues("stale").Add(float64(stale))
	}
	noChange := 0
	for _, w := range b.order {
		if len(w.recs) == 0 {
			w.state = itemNoSend // only stale records
			continue
		}
		ev := w.last
		w.item = Item{
			OfferID:   ev.OfferID,
			Seq:       ev.Seq,
			EventIDs:  w.eventIDs,
			EmittedAt: ev.EmittedAt,
			Cause:     ev.Cause,
			Entries:   w.entriesMine,
		}
		member := w.st.member()
		switch {
		case member && w.upsertSeen && ev.Offer != nil:
			w.item.Op = OpUpsert
			w.item.Offer = ev.Offer
			w.item.Feeds = slices.Clone(w.st.feeds)
			switch {
			case !w.wasMember:
				w.item.Action = records.ActionAdd
			case w.lastAction == records.ActionAdd:
				w.item.Action = records.ActionUpdate // joined another of our feeds
			default:
				w.item.Action = w.lastAction
			}
		case member && !w.upsertSeen:
			// Left one of our feeds but is still in another: the
			// partner keeps the offer as it is.
			w.state = itemNoSend
			noChange++
		case !member && w.wasKnown && !w.wasMember:
			// Was not in our catalog before the batch and is not
			// now (entered and left within it): nothing to tell.
			w.state = itemNoSend
			noChange++
		default:
			// Left the last of our feeds (or the event has no state
			// to upsert): make sure the partner does not hold it.
			w.item.Op = OpDelete
			w.item.Action = records.ActionRemove
		}
	}
	if noChange > 0 {
		r.m.skipped.WithLabelValues("no_change").Add(float64(noChange))
	}
	return nil
}

// send delivers every pending item, chunked, with bounded concurrency.
// It returns ErrRetriesExhausted (wrapped) when an item ran out of
// attempts.
func (b *batch) send(ctx context.Context) error {
	r := b.rt
	var pending []*offerWork
	for _, w := range b.order {
		if w.state == itemPending {
			pending = append(pending, w)
		}
	}
	var g errgroup.Group
	g.SetLimit(r.cfg.Concurrency)
	for len(pending) > 0 {
		n := min(len(pending), r.perCall)
		chunk := pending[:n]
		pending = pending[n:]
		g.Go(func() error { r.sendChunk(ctx, chunk); return nil })
	}
	_ = g.Wait() // sendChunk reports through offerWork, never an error
	for _, w := range b.order {
		if w.exhausted {
			return fmt.Errorf("offer %q: %d attempts, last status %d: %s: %w",
				w.item.OfferID, r.cfg.Retry.MaxAttempts, w.lastStatus, w.message, ErrRetriesExhausted)
		}
	}
	return nil
}

// sendChunk sends one chunk until every item is acknowledged, refused,
// or abandoned (ctx ended, attempts exhausted).
func (r *Runtime) sendChunk(ctx context.Context, todo []*offerWork) {
	items := make([]Item, 0, len(todo))
	for attempt := 1; ; attempt++ {
		if ctx.Err() != nil || r.waitRate(ctx) != nil {
			abandon(todo)
			return
		}
		items = items[:0]
		for _, w := range todo {
			items = append(items, w.item)
		}
		res, returned := r.call(ctx, items)
		if !returned {
			// The abandoned call may still read items: never reuse it.
			items = make([]Item, 0, len(todo))
		}
		var wait time.Duration
		next := todo[:0:0]
		for i, w := range todo {
			var res1 Result
			if i < len(res) {
				res1 = res[i]
			} else {
				res1 = Result{Outcome: Retryable, Message: "partner returned no result for the item"}
			}
			r.m.status.WithLabelValues(statusLabel(res1.Status)).Inc()
			w.lastStatus, w.message = res1.Status, res1.Message
			switch res1.Outcome {
			case Acked:
				w.state = itemAcked
				r.m.sent.WithLabelValues(w.item.Action).Inc()
			case Permanent:
				w.state = itemDead
			default:
				r.m.failed.WithLabelValues(w.item.Action).Inc()
				wait = max(wait, res1.RetryAfter)
				next = append(next, w)
			}
		}
		if len(next) == 0 {
			return
		}
		if attempt >= r.cfg.Retry.MaxAttempts {
			for _, w := range next {
				w.exhausted = true
			}
			abandon(next)
			return
		}
		wait = max(wait, r.backoff(attempt))
		if err := r.sleep(ctx, wait); err != nil {
			abandon(next)
			return
		}
		r.m.retries.Add(float64(len(next)))
		todo = next
	}
}

// call runs one partner Send bounded by retry.timeout. A call in flight
// is allowed to finish after ctx ends, so the partner never applies an
// item the connector did not record; but a Send that has not returned
// callGrace after its deadline is abandoned: call returns every item
// Retryable and false, and the stray call's results are ignored (the
// items are sent again, at least once).
func (r *Runtime) call(ctx context.Context, items []Item) ([]Result, bool) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.Retry.Timeout)
	defer cancel()
	done := make(chan []Result, 1)
	go func() { done <- r.partner.Send(sctx, items) }()
	select {
	case res := <-done:
		return res, true
	case <-sctx.Done():
	}
	grace := time.NewTimer(r.grace)
	defer grace.Stop()
	select {
	case res := <-done:
		return res, true
	case <-grace.C:
	}
	r.m.abandoned.Inc()
	r.log.Error("partner call ignored its deadline; abandoned",
		zap.Int("items", len(items)),
		zap.Duration("timeout", r.cfg.Retry.Timeout),
		zap.Duration("grace", r.grace))
	return All(len(items), Result{Outcome: Retryable,
		Message: "partner call did not return within retry.timeout " + r.cfg.Retry.Timeout.String()}), false
}

func abandon(ws []*offerWork) {
	for _, w := range ws {
		w.state = itemAbandoned
	}
}

// waitRate takes one token per partner call.
func (r *Runtime) waitRate(ctx context.Context) error {
	return r.limiter.Wait(ctx)
}

// deadLetter produces the dead letters of refused items and undecodable
// records, synchronously.
func (b *batch) deadLetter(ctx context.Context) error {
	r := b.rt
	for _, w := range b.order {
		if w.state != itemDead {
			continue
		}
		msg := w.message
		if msg == "" {
			msg = "partner refused the item"
		}
		msg = "partner status " + strconv.Itoa(w.lastStatus) + ": " + msg
		for _, i := range w.recs {
			b.dead = append(b.dead, deadLetterRecord(r.cfg.DeadLetterTopic, b.recs[i], msg))
		}
		r.m.deadLetters.WithLabelValues(w.item.Action).Add(float64(len(w.recs)))
	}
	if len(b.dead) == 0 {
		return nil
	}
	if err := b.cl.ProduceSync(ctx, b.dead...).FirstErr(); err != nil {
		return fmt.Errorf("produce %d dead letters to %s: %w", len(b.dead), r.cfg.DeadLetterTopic, err)
	}
	return nil
}

// deadLetterRecord copies rec for the dead-letter topic in the rejects
// layout (docs/contract.md, Rejects): the original key and value bytes,
// the original headers, and error, source-topic, source-partition and source-offset
// (records.AppendRejectHeaders, as the processor's rejects; replacing any
// the record already had, so each appears once).
func deadLetterRecord(topic string, rec *kgo.Record, msg string) *kgo.Record {
	hs := make([]kgo.RecordHeader, 0, len(rec.Headers)+4)
	for _, h := range rec.Headers {
		switch h.Key {
		case records.HeaderError, records.HeaderSourceTopic, records.HeaderSourcePartition, records.HeaderSourceOffset:
			continue
		}
		hs = append(hs, h)
	}
	hs = records.AppendRejectHeaders(hs, msg, rec.Topic, rec.Partition, rec.Offset)
	return &kgo.Record{Topic: topic, Key: rec.Key, Value: rec.Value, Headers: hs}
}

// persist writes the state of every offer whose records are done in one
// synced Pebble batch.
func (b *batch) persist() error {
	wb := b.st.db.NewBatch()
	defer wb.Close()
	n := 0
	for _, w := range b.order {
		if w.state == itemAbandoned || len(w.recs) == 0 {
			continue
		}
		b.keyBuf = stateKey(b.keyBuf[:0], w.last.OfferID)
		b.valBuf = appendState(b.valBuf[:0], &w.st)
		if err := wb.Set(b.keyBuf, b.valBuf, nil); err != nil {
			return fmt.Errorf("stage offer state: %w", err)
		}
		n++
	}
	if n == 0 {
		return nil
	}
	if err := wb.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("write offer state: %w", err)
	}
	return nil
}

// commit commits, per partition, the offset after the longest prefix of
// done records.
func (b *batch) commit(ctx context.Context) error {
	r := b.rt
	type pos struct {
		next    int64
		epoch   int32
		blocked bool
		seen    bool
	}
	parts := make(map[int32]*pos)
	for i, rec := range b.recs {
		p := parts[rec.Partition]
		if p == nil {
			p = &pos{}
			parts[rec.Partition] = p
		}
		if p.blocked {
			continue
		}
		if !b.done[i] {
			p.blocked = true
			continue
		}
		p.next, p.epoch, p.seen = rec.Offset+1, rec.LeaderEpoch, true
	}
	offsets := make(map[int32]kgo.EpochOffset)
	for part, p := range parts {
		if p.seen {
			offsets[part] = kgo.EpochOffset{Epoch: p.epoch, Offset: p.next}
		}
	}
	if len(offsets) == 0 {
		return nil
	}
	var commitErr error
	b.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{r.topic: offsets},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				commitErr = err
				return
			}
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if p.ErrorCode != 0 && commitErr == nil {
						commitErr = fmt.Errorf("partition %d: error code %d", p.Partition, p.ErrorCode)
					}
				}
			}
		})
	if commitErr != nil {
		// Not fatal for correctness: the records come again and are
		// skipped by seq. A rebalance is the usual cause.
		r.log.Warn("commit offsets", zap.Error(commitErr))
		return nil
	}
	r.mu.Lock()
	for part, eo := range offsets {
		label := strconv.Itoa(int(part))
		r.m.committed.WithLabelValues(r.topic, label).Set(float64(eo.Offset))
		if hwm, ok := r.hwm[part]; ok {
			r.m.lag.WithLabelValues(r.topic, label).Set(float64(max(hwm-eo.Offset, 0)))
		}
	}
	r.mu.Unlock()
	if r.events.Committed != nil {
		for part, eo := range offsets {
			r.events.Committed(r.topic, part, eo.Offset)
		}
	}
	return nil
}

// waitCtx waits d or until ctx ends; the default Runtime.Sleep.
func waitCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
