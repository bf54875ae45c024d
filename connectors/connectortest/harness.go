package connectortest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/connectors"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/internal/testenv"
)

// Topics the suite uses.
const (
	EventsTopic     = "feed-events"
	DeadLetterTopic = config.DefaultDeadLetterTopic
)

// runTimeout guards a whole suite run against a hung connector; it is a
// failure guard, not a timing assertion.
const runTimeout = 120 * time.Second

// Options configure one suite run.
type Options struct {
	// Build returns the partner under test for cfg, pointed at the fake.
	Build func(cfg config.Connector) (connectors.Partner, error)
	// Applied is what the fake partner applied.
	Applied *Applied
	// Faults is the fake's fault injector (for the report).
	Faults *Faults
	// Configure sets the partner section of cfg (and may tune batching).
	Configure func(cfg *config.Connector)
	// Seed, Offers and Steps shape the scenario; zero values give 1, 150, 1500.
	Seed          uint64
	Offers, Steps int
	// RestartAfterCalls cancels the first connector run while its n-th
	// partner call is in flight; 0 means 3.
	RestartAfterCalls int
	// WantRetryAfter, when set, requires the runtime to have waited at
	// least this long once (a 429 with Retry-After was honoured).
	WantRetryAfter time.Duration
	// CheckSeq compares the partner's seq with the last one sent; set it
	// for partners whose protocol carries the seq.
	CheckSeq bool
}

// Report is what a suite run observed.
type Report struct {
	Records, Distinct  int
	Applied            int
	Duplicates         int
	Excused            int // repeats of states whose call got no answer
	OutOfOrder         int
	Retries            float64
	DeadLetters        int
	Faults             map[Fault]int
	LongestWait        time.Duration
	Restarts           int
	PartnerCallsBefore int
}

// Run executes the suite and fails t on any violation.
func Run(t *testing.T, o Options) Report {
	t.Helper()
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Offers == 0 {
		o.Offers = 150
	}
	if o.Steps == 0 {
		o.Steps = 1500
	}
	if o.RestartAfterCalls == 0 {
		o.RestartAfterCalls = 3
	}
	env := testenv.New(t, EventsTopic, DeadLetterTopic)
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	if o.Faults != nil {
		// Every partner call has returned once Run returns; release any
		// stalled handler so the caller's server Close cannot wait on it.
		defer o.Faults.Release()
	}

	sc := Generate(o.Seed, o.Offers, o.Steps)
	serde := records.NewSerde(env.Registry(t))
	schemaID, err := serde.Register(ctx, EventsTopic+"-value", records.KindFeedEvent)
	if err != nil {
		t.Fatalf("register feed event schema: %v", err)
	}
	recs := make([]*kgo.Record, 0, len(sc.Events))
	for _, ge := range sc.Events {
		v := ge.Garbage
		if ge.Event != nil {
			if v, err = serde.AppendFeedEvent(nil, schemaID, ge.Event); err != nil {
				t.Fatalf("encode event: %v", err)
			}
		}
		recs = append(recs, &kgo.Record{Topic: EventsTopic, Key: []byte(ge.Key), Value: v, Headers: ge.Headers})
	}
	producer := env.Client(t, kgo.DefaultProduceTopic(EventsTopic), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	split := len(recs) * 7 / 10
	end := &endOffsets{m: map[int32]int64{}}
	produce := func(rs []*kgo.Record) {
		res := producer.ProduceSync(ctx, rs...)
		if err := res.FirstErr(); err != nil {
			t.Fatalf("produce events: %v", err)
		}
		for _, r := range res {
			end.set(r.Record.Partition, r.Record.Offset+1)
		}
	}
	produce(recs[:split])

	cfg := config.DefaultConnector()
	cfg.Kafka.Brokers = env.Brokers
	cfg.Kafka.GroupID = "connector-under-test"
	cfg.Kafka.Topics.Events = EventsTopic
	cfg.SchemaRegistry.URL = env.RegistryURL
	cfg.Destinations = []string{Destination}
	cfg.DeadLetterTopic = DeadLetterTopic
	cfg.StateDir = t.TempDir()
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.Batch.MaxItems = 40
	cfg.Batch.MaxWait = 20 * time.Millisecond
	cfg.Concurrency = 3
	cfg.Retry.Initial = 5 * time.Millisecond
	cfg.Retry.Max = 100 * time.Millisecond
	cfg.Retry.MaxAttempts = 100
	cfg.Retry.Timeout = 300 * time.Millisecond
	if o.Configure != nil {
		o.Configure(&cfg)
	}
	built, err := o.Build(cfg)
	if err != nil {
		t.Fatalf("build partner: %v", err)
	}
	inner := &unanswered{Partner: built, applied: o.Applied}
	sleeps := &sleepRecorder{}
	reg1, reg2 := prometheus.NewRegistry(), prometheus.NewRegistry()
	var rep Report

	// First run: interrupted while its n-th partner call is in flight.
	{
		rctx, rcancel := context.WithCancel(ctx)
		p := &interrupting{Partner: inner, after: int64(o.RestartAfterCalls), cancel: rcancel}
		rt := newRuntime(t, cfg, p, reg1, sleeps, nil)
		if err := rt.Run(rctx); err != nil {
			t.Fatalf("first run: %v", err)
		}
		rcancel()
		rep.PartnerCallsBefore = int(p.calls.Load())
		rep.Restarts = 1
	}
	// Second run on the same state and group, with the rest of the stream
	// arriving while it runs; stop when every partition is committed to
	// its end.
	{
		rctx, rcancel := context.WithCancel(ctx)
		defer rcancel()
		committed := &endOffsets{m: map[int32]int64{}}
		var produced atomic.Bool
		onCommit := func(_ string, p int32, off int64) {
			committed.set(p, off)
			if produced.Load() && committed.covers(end) {
				rcancel()
			}
		}
		rt := newRuntime(t, cfg, inner, reg2, sleeps, onCommit)
		done := make(chan error, 1)
		go func() { done <- rt.Run(rctx) }()
		produce(recs[split:])
		produced.Store(true)
		if committed.covers(end) {
			rcancel()
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("second run: %v", err)
			}
		case <-ctx.Done():
			rcancel()
			<-done
			t.Fatalf("connector did not commit every partition to its end (%v) before the guard; committed %v", end.snapshot(), committed.snapshot())
		}
		if ctx.Err() != nil {
			t.Fatalf("suite guard expired: committed %v, end %v", committed.snapshot(), end.snapshot())
		}
	}

	// The partner holds exactly the destination's membership, latest state.
	got := o.Applied.Catalog()
	var diffs []string
	for id, want := range sc.Expected {
		g, ok := got[id]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%s: missing (want price %d)", id, want.PriceMinor))
		case g.PriceMinor != want.PriceMinor || g.Title != want.Title:
			diffs = append(diffs, fmt.Sprintf("%s: holds price %d title %q, want %d %q", id, g.PriceMinor, g.Title, want.PriceMinor, want.Title))
		}
	}
	for id := range got {
		if _, ok := sc.Expected[id]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: held but not a member of %s", id, Destination))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Errorf("partner catalog differs from the membership of %s (%d offers expected, %d held):\n%v", Destination, len(sc.Expected), len(got), diffs)
	}
	rep.Applied, rep.Duplicates, rep.OutOfOrder = o.Applied.Counts()
	rep.Excused = o.Applied.Excused()
	if rep.Duplicates != 0 {
		t.Errorf("%d states applied more than once", rep.Duplicates)
	}
	if rep.OutOfOrder != 0 {
		t.Errorf("%d states applied after a newer one", rep.OutOfOrder)
	}

	// Dead letters: exactly the refused and the undecodable records.
	rep.DeadLetters = checkDeadLetters(t, ctx, env, sc, recs)
	rep.Records, rep.Distinct = len(recs), sc.Distinct
	rep.Retries = counterValue(t, reg1, "feedmill_connector_retries_total") + counterValue(t, reg2, "feedmill_connector_retries_total")
	rep.LongestWait = sleeps.longest()
	if o.Faults != nil {
		rep.Faults = o.Faults.Injected()
	}
	if o.Faults != nil {
		if n := o.Faults.Overdue(); n > 0 {
			t.Errorf("%d stalled partner requests were still open after %s: a partner call without a deadline (retry.timeout %s)", n, StallLimit, cfg.Retry.Timeout)
		}
	}
	if o.WantRetryAfter > 0 && rep.LongestWait < o.WantRetryAfter {
		t.Errorf("longest retry wait %s, want at least the Retry-After %s", rep.LongestWait, o.WantRetryAfter)
	}
	return rep
}

func newRuntime(t *testing.T, cfg config.Connector, p connectors.Partner, reg *prometheus.Registry, s *sleepRecorder,
	onCommit func(string, int32, int64)) *connectors.Runtime {
	t.Helper()
	rt, err := connectors.New(cfg, p, connectors.Deps{
		Logger:     zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)),
		Registerer: reg,
		Sleep:      s.sleep,
		Events:     connectors.Events{Committed: onCommit},
	})
	if err != nil {
		t.Fatalf("new runtime: %v", err)
	}
	return rt
}

func checkDeadLetters(t *testing.T, ctx context.Context, env *testenv.Env, sc *Scenario, produced []*kgo.Record) int {
	t.Helper()
	cl := env.Client(t, kgo.ConsumeTopics(DeadLetterTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	// Read up to the end offsets of the dead-letter topic.
	endCl := env.Client(t)
	ends, err := listEnds(ctx, endCl, DeadLetterTopic)
	if err != nil {
		t.Fatalf("dead-letter end offsets: %v", err)
	}
	want := 0
	for _, e := range ends {
		want += int(e)
	}
	var got []*kgo.Record
	for len(got) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read dead letters: got %d of %d", len(got), want)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, r) })
	}
	bySource := make(map[sourcePos]*kgo.Record, len(produced))
	for _, p := range produced {
		bySource[sourcePos{p.Partition, p.Offset}] = p
	}
	allowed := map[string]bool{}
	for k := range sc.Poison {
		allowed[k] = true
	}
	for _, k := range sc.GarbageMine {
		allowed[k] = true
	}
	seen := map[string]bool{}
	for _, r := range got {
		k := string(r.Key)
		seen[k] = true
		if !allowed[k] {
			t.Errorf("dead letter for %q, which is neither refused nor undecodable (error %q)", k, header(r, records.HeaderError))
		}
		if header(r, records.HeaderError) == "" || header(r, records.HeaderSourceTopic) != EventsTopic ||
			header(r, records.HeaderSourceOffset) == "" || header(r, records.HeaderSourcePartition) == "" {
			t.Errorf("dead letter for %q lacks error/source headers: %v", k, r.Headers)
		}
		checkRejectLayout(t, r, bySource)
	}
	for _, k := range sc.GarbageMine {
		if !seen[k] {
			t.Errorf("undecodable record %q was not dead-lettered", k)
		}
	}
	for _, k := range sc.GarbageOther {
		if seen[k] {
			t.Errorf("record %q for another destination was decoded and dead-lettered", k)
		}
	}
	for k := range sc.Poison {
		if _, member := sc.Expected[k]; member {
			t.Errorf("refused offer %q is in the expected catalog", k)
		}
	}
	return len(got)
}

type sourcePos struct {
	partition int32
	offset    int64
}

// checkRejectLayout checks a dead letter against the rejects layout
// (docs/contract.md, Rejects): each of error, source-topic,
// source-partition, source-offset exactly once, naming a produced record whose key and value bytes the
// dead letter carries unchanged.
func checkRejectLayout(t *testing.T, r *kgo.Record, bySource map[sourcePos]*kgo.Record) {
	t.Helper()
	for _, h := range []string{records.HeaderError, records.HeaderSourceTopic, records.HeaderSourcePartition, records.HeaderSourceOffset} {
		n := 0
		for _, rh := range r.Headers {
			if rh.Key == h {
				n++
			}
		}
		if n != 1 {
			t.Errorf("dead letter for %q has %d %q headers, want 1", r.Key, n, h)
		}
	}
	part, perr := strconv.ParseInt(header(r, records.HeaderSourcePartition), 10, 32)
	off, oerr := strconv.ParseInt(header(r, records.HeaderSourceOffset), 10, 64)
	if perr != nil || oerr != nil {
		t.Errorf("dead letter for %q: source-partition %q, source-offset %q are not numbers", r.Key,
			header(r, records.HeaderSourcePartition), header(r, records.HeaderSourceOffset))
		return
	}
	src := bySource[sourcePos{int32(part), off}]
	switch {
	case src == nil:
		t.Errorf("dead letter for %q names %s/%d@%d, which was not produced", r.Key, EventsTopic, part, off)
	case !bytes.Equal(src.Key, r.Key) || !bytes.Equal(src.Value, r.Value):
		t.Errorf("dead letter for %q (%d/%d): key or value differs from the original record's bytes", r.Key, part, off)
	}
}

// unanswered reports to Applied every item whose call got no answer
// (status 0, retryable: a timeout or network error), so that the partner
// applying it again on the re-send does not count as a duplicate.
type unanswered struct {
	connectors.Partner
	applied *Applied
}

func (p *unanswered) Send(ctx context.Context, items []connectors.Item) []connectors.Result {
	res := p.Partner.Send(ctx, items)
	for i := range items {
		if i < len(res) && res[i].Outcome == connectors.Retryable && res[i].Status == 0 {
			p.applied.Unconfirmed(items[i].OfferID, items[i].Seq, items[i].Op == connectors.OpDelete)
		}
	}
	return res
}

// MaxItems keeps the wrapped partner's batch limit.
func (p *unanswered) MaxItems() int {
	if bl, ok := p.Partner.(connectors.BatchLimiter); ok {
		return bl.MaxItems()
	}
	return 0
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// interrupting cancels the run while its after-th call is in flight.
type interrupting struct {
	connectors.Partner
	after  int64
	calls  atomic.Int64
	cancel context.CancelFunc
}

func (p *interrupting) Send(ctx context.Context, items []connectors.Item) []connectors.Result {
	if p.calls.Add(1) == p.after {
		p.cancel()
	}
	return p.Partner.Send(ctx, items)
}

// MaxItems keeps the wrapped partner's batch limit.
func (p *interrupting) MaxItems() int {
	if bl, ok := p.Partner.(connectors.BatchLimiter); ok {
		return bl.MaxItems()
	}
	return 0
}

// sleepRecorder replaces the runtime's retry waits: it records them and
// returns at once, so retries cost no wall time in tests.
type sleepRecorder struct {
	mu  sync.Mutex
	max time.Duration
}

func (s *sleepRecorder) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.max = max(s.max, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleepRecorder) longest() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.max
}

type endOffsets struct {
	mu sync.Mutex
	m  map[int32]int64
}

func (e *endOffsets) set(p int32, off int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if off > e.m[p] {
		e.m[p] = off
	}
}

func (e *endOffsets) covers(target *endOffsets) bool {
	target.mu.Lock()
	want := make(map[int32]int64, len(target.m))
	for k, v := range target.m {
		want[k] = v
	}
	target.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	for p, off := range want {
		if e.m[p] < off {
			return false
		}
	}
	return true
}

func (e *endOffsets) snapshot() map[int32]int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[int32]int64, len(e.m))
	for k, v := range e.m {
		out[k] = v
	}
	return out
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

var errNoPartitions = errors.New("no partitions")
