package processor_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/feedmill/feedmill/internal/testenv"
	"github.com/feedmill/feedmill/processor"
	"github.com/feedmill/feedmill/state"
)

// outboxRec is one record staged in the outbox by a relay test.
type outboxRec struct {
	p     int32
	key   string
	value []byte
}

// stageOutbox opens a store in a temp dir and commits recs to its outbox
// (to the events topic) in one batch.
func stageOutbox(t testing.TB, recs []outboxRec) *state.Store {
	t.Helper()
	store, err := state.Open(t.TempDir(), nil, state.Options{CacheBytes: 1 << 20, MemTableBytes: 1 << 20}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() }) // test teardown
	b := store.NewBatch()
	defer b.Close()
	for _, r := range recs {
		b.AddOutbox(r.p, &state.OutboxRecord{Topic: "feed-events", Key: []byte(r.key), Value: r.value,
			Headers: []state.Header{{Key: "destination", Value: []byte("d1")}}})
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	return store
}

// fakeProducer answers each Produce with outcome(key, attempt) and records
// what was acknowledged and what was sent to rejects.
type fakeProducer struct {
	dupRejects int
	outcome    func(key string, attempt int) error
	attempts   map[string]int
	acked      map[string]int
	rejected   map[string][]kgo.RecordHeader
}

func newFakeProducer(outcome func(key string, attempt int) error) *fakeProducer {
	return &fakeProducer{outcome: outcome, attempts: map[string]int{}, acked: map[string]int{}, rejected: map[string][]kgo.RecordHeader{}}
}

func (f *fakeProducer) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	k := string(r.Key)
	f.attempts[k]++
	err := f.outcome(k, f.attempts[k])
	if err == nil {
		f.acked[k]++
	}
	promise(r, err)
}

// ProduceSync takes rejects, and records produced again alone (which
// get outcome like Produce).
func (f *fakeProducer) ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults {
	var out kgo.ProduceResults
	for _, r := range rs {
		if r.Topic == "feedmill-rejects" {
			if _, dup := f.rejected[string(r.Key)]; dup {
				f.dupRejects++
			}
			f.rejected[string(r.Key)] = r.Headers
			out = append(out, kgo.ProduceResult{Record: r})
			continue
		}
		var res kgo.ProduceResult
		f.Produce(ctx, r, func(r *kgo.Record, err error) { res = kgo.ProduceResult{Record: r, Err: err} })
		out = append(out, res)
	}
	return out
}

// A partition whose record fails with a retriable error stays put; the
// other partitions are acknowledged, deleted and never sent again, and the
// depth metric counts what is left even after a failed round.
func TestRelayPartitionsAdvanceIndependently(t *testing.T) {
	store := stageOutbox(t, []outboxRec{
		{0, "a", []byte("1")}, {0, "stuck", []byte("2")}, {0, "c", []byte("3")},
		{1, "d", []byte("4")}, {1, "e", []byte("5")},
		{2, "too-big", []byte("6")}, {2, "f", []byte("7")},
	})
	down := true
	fake := newFakeProducer(func(key string, _ int) error {
		switch {
		case key == "stuck" && down:
			return kerr.NotLeaderForPartition
		case key == "too-big":
			return fmt.Errorf("%w (uncompressed_bytes=2000000)", kerr.MessageTooLarge)
		}
		return nil
	})
	reg := prometheus.NewRegistry()
	relay := processor.NewRelay(store, fake, "feed-events", "feedmill-rejects", processor.NewMetrics(reg), zap.NewNop())
	ctx := context.Background()
	if err := relay.Drain(ctx); err == nil || !strings.Contains(err.Error(), "NOT_LEADER") {
		t.Fatalf("first drain: got %v, want the retriable error", err)
	}
	// Partition 0's round is kept whole for the next one.
	if got := store.OutboxDepth(); got != 3 {
		t.Errorf("depth after the failed round: %d, want 3 (partition 0)", got)
	}
	if got := gatheredValue(t, reg, "feedmill_outbox_depth"); got != 3 {
		t.Errorf("feedmill_outbox_depth after the failed round: %v, want 3", got)
	}
	down = false
	if err := relay.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"d", "e", "f", "stuck"} {
		if fake.acked[k] != 1 {
			t.Errorf("%s acknowledged %d times, want once", k, fake.acked[k])
		}
	}
	for _, k := range []string{"a", "c"} {
		if fake.acked[k] < 1 {
			t.Errorf("%s was never acknowledged", k)
		}
	}
	if len(fake.rejected) != 1 || fake.acked["too-big"] != 0 {
		t.Fatalf("rejects %v, too-big acked %d: want only too-big rejected", fake.rejected, fake.acked["too-big"])
	}
	h := map[string]string{}
	for _, hd := range fake.rejected["too-big"] {
		h[hd.Key] = string(hd.Value)
	}
	if !strings.Contains(h["error"], "MESSAGE_TOO_LARGE") || h["source-topic"] != "feed-events" || h["source-partition"] != "2" {
		t.Errorf("reject headers %v", h)
	}
	if got := store.OutboxDepth(); got != 0 {
		t.Errorf("depth at the end: %d", got)
	}
	if got := gatheredValue(t, reg, "feedmill_unproducible_records_total"); got != 1 {
		t.Errorf("feedmill_unproducible_records_total = %v, want 1", got)
	}
}

// A record larger than the producer's batch limit, among normal records on
// a real (kfake) cluster: it goes to the rejects topic with the reason and
// without its value; every other record is in the events topic once.
func TestRelaySendsRefusedRecordToRejects(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	env := testenv.New(t, "feed-events", "feedmill-rejects")
	var recs []outboxRec
	for i := range 30 {
		recs = append(recs, outboxRec{int32(i % 3), "o" + strconv.Itoa(i), []byte("small")})
		if i == 10 {
			recs = append(recs, outboxRec{1, "huge", make([]byte, 2<<20)})
		}
	}
	store := stageOutbox(t, recs)
	client := env.Client(t, kgo.ProducerBatchMaxBytes(1<<20), kgo.RecordRetries(3))
	reg := prometheus.NewRegistry()
	relay := processor.NewRelay(store, client, "feed-events", "feedmill-rejects", processor.NewMetrics(reg), zap.NewNop())
	if err := relay.Drain(context.Background()); err != nil {
		t.Fatalf("drain: %v", err)
	}
	seen := map[string]int{}
	for _, r := range consumeAll(t, env, "feed-events") {
		seen[string(r.Key)]++
	}
	for i := range 30 {
		if k := "o" + strconv.Itoa(i); seen[k] != 1 {
			t.Errorf("%s delivered %d times, want once", k, seen[k])
		}
	}
	if seen["huge"] != 0 || len(seen) != 30 {
		t.Errorf("events topic holds %d keys (huge: %d)", len(seen), seen["huge"])
	}
	rejects := consumeAll(t, env, "feedmill-rejects")
	if len(rejects) != 1 || string(rejects[0].Key) != "huge" {
		t.Fatalf("rejects: %d records", len(rejects))
	}
	h := headerMap(rejects[0])
	if !strings.Contains(h["error"], "MESSAGE_TOO_LARGE") || h["value-omitted-bytes"] != strconv.Itoa(2<<20) || rejects[0].Value != nil {
		t.Errorf("reject: headers %v, value of %d bytes", h, len(rejects[0].Value))
	}
	if d := store.OutboxDepth(); d != 0 {
		t.Errorf("outbox depth %d after drain", d)
	}
	if d := gatheredValue(t, reg, "feedmill_outbox_depth"); d != 0 {
		t.Errorf("feedmill_outbox_depth %v after drain", d)
	}
}

// FuzzRelay drives the relay with random produce outcomes (ack, retriable
// failure, permanent failure) over records in several partitions. However
// the outcomes fall, once Kafka recovers: every record was acknowledged or
// sent to rejects, a permanently failing record is rejected exactly once
// and never acknowledged, a record of a partition that never failed is
// acknowledged exactly once, and the outbox is empty.
func FuzzRelay(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0}, uint8(9))
	f.Add([]byte{1, 0, 2, 1, 1, 0, 2, 0, 1}, uint8(12))
	f.Add([]byte{2, 2, 2, 1, 0, 0, 1, 2, 0, 0, 0, 1}, uint8(20))
	f.Fuzz(func(t *testing.T, outcomes []byte, n uint8) {
		count := int(n%40) + 1
		var recs []outboxRec
		for i := range count {
			recs = append(recs, outboxRec{int32(i % 3), "k" + strconv.Itoa(i), []byte{byte(i)}})
		}
		store := stageOutbox(t, recs)
		permanentKey := map[string]bool{}
		failed := map[int32]bool{}
		// Whether a record can ever be produced is a property of the
		// record; retriable failures come and go with the attempt.
		pick := func(i, attempt int) byte {
			if len(outcomes) == 0 {
				return 0
			}
			return outcomes[(i*7+attempt)%len(outcomes)] % 3
		}
		for i := range count {
			if pick(i, 0) == 2 {
				permanentKey["k"+strconv.Itoa(i)] = true
			}
		}
		fake := newFakeProducer(func(key string, attempt int) error {
			i, _ := strconv.Atoi(key[1:])
			switch {
			case permanentKey[key]:
				// Settled in the same round: no re-send follows.
				return kerr.MessageTooLarge
			case pick(i, attempt) != 0 && attempt < 4:
				failed[int32(i%3)] = true
				return kerr.LeaderNotAvailable
			}
			return nil
		})
		relay := processor.NewRelay(store, fake, "feed-events", "feedmill-rejects", processor.NewMetrics(prometheus.NewRegistry()), zap.NewNop())
		ctx := context.Background()
		for round := 0; ; round++ {
			if round > 10 {
				t.Fatal("outbox not drained after 10 rounds once failures stopped")
			}
			if err := relay.Drain(ctx); err == nil {
				break
			}
		}
		for _, r := range recs {
			k := r.key
			switch {
			case permanentKey[k]:
				if fake.acked[k] != 0 {
					t.Errorf("%s failed for good yet was acknowledged", k)
				}
				if _, ok := fake.rejected[k]; !ok {
					t.Errorf("%s failed for good and is not in rejects", k)
				}
			case fake.acked[k] == 0:
				t.Errorf("%s was deleted without being acknowledged", k)
			case !failed[r.p] && fake.acked[k] != 1:
				t.Errorf("%s of a partition that never failed was acknowledged %d times", k, fake.acked[k])
			}
		}
		if fake.dupRejects != 0 {
			t.Errorf("%d records were sent to rejects twice", fake.dupRejects)
		}
		if len(fake.rejected) != len(permanentKey) {
			t.Errorf("%d rejects for %d permanently failing records", len(fake.rejected), len(permanentKey))
		}
		if d := store.OutboxDepth(); d != 0 {
			t.Errorf("outbox depth %d at the end", d)
		}
	})
}

// Kafka refuses a whole produce batch as too large while each record fits
// on its own: the relay produces them again alone and rejects nothing.
func TestRelayBatchRefusalIsNotARecordFault(t *testing.T) {
	store := stageOutbox(t, []outboxRec{{0, "a", []byte("1")}, {0, "b", []byte("2")}, {1, "c", []byte("3")}})
	fake := newFakeProducer(func(key string, attempt int) error {
		if attempt == 1 && key != "c" {
			return kerr.MessageTooLarge // the batch holding a and b
		}
		return nil
	})
	reg := prometheus.NewRegistry()
	relay := processor.NewRelay(store, fake, "feed-events", "feedmill-rejects", processor.NewMetrics(reg), zap.NewNop())
	if err := relay.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(fake.rejected) != 0 {
		t.Errorf("rejected %v: records that fit alone must not go to rejects", fake.rejected)
	}
	for _, k := range []string{"a", "b", "c"} {
		if fake.acked[k] != 1 {
			t.Errorf("%s acknowledged %d times, want once", k, fake.acked[k])
		}
	}
	if got := gatheredValue(t, reg, "feedmill_events_produced_total"); got != 3 {
		t.Errorf("feedmill_events_produced_total = %v, want 3", got)
	}
}
