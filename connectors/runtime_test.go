package connectors_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/connectors"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/internal/testenv"
)

// memPartner records every call.
type memPartner struct {
	mu    sync.Mutex
	held  map[string]int64
	calls map[string][]string // offer -> ops/actions in order
}

func (m *memPartner) Send(_ context.Context, items []connectors.Item) []connectors.Result {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, it := range items {
		m.calls[it.OfferID] = append(m.calls[it.OfferID], it.Op.String()+":"+it.Action)
		if it.Op == connectors.OpUpsert {
			m.held[it.OfferID] = it.Seq
		} else {
			delete(m.held, it.OfferID)
		}
	}
	return connectors.All(len(items), connectors.Result{Outcome: connectors.Acked, Status: 200})
}

type step struct {
	seq     int64
	entries []records.FeedEntry
}

func e(feed, dest, action string) records.FeedEntry {
	return records.FeedEntry{FeedID: feed, Destination: dest, Action: action}
}

// TestMembershipSemantics drives the real Runtime over small event
// histories and checks what the partner ends up holding.
func TestMembershipSemantics(t *testing.T) {
	const mine, other = "d1", "d2"
	cases := []struct {
		name     string
		steps    []step
		wantHeld bool
		wantSeq  int64
		noDelete bool
		noCalls  bool
	}{
		{name: "removed from one feed, still in another: stays",
			steps: []step{
				{1, []records.FeedEntry{e("a", mine, "ADD")}},
				{2, []records.FeedEntry{e("b", mine, "ADD")}},
				{3, []records.FeedEntry{e("a", mine, "REMOVE")}},
			}, wantHeld: true, wantSeq: 2, noDelete: true},
		{name: "removed from the last feed: deleted",
			steps: []step{
				{1, []records.FeedEntry{e("a", mine, "ADD")}},
				{2, []records.FeedEntry{e("a", mine, "UPDATE")}},
				{3, []records.FeedEntry{e("a", mine, "REMOVE")}},
			}, wantHeld: false},
		{name: "feed with two destinations, removed for the other only: stays",
			steps: []step{
				{1, []records.FeedEntry{e("ab", mine, "ADD"), e("ab", other, "ADD")}},
				{2, []records.FeedEntry{e("ab", other, "REMOVE")}},
			}, wantHeld: true, wantSeq: 1, noDelete: true},
		{name: "other destination only: never sent",
			steps: []step{
				{1, []records.FeedEntry{e("c", other, "ADD")}},
				{2, []records.FeedEntry{e("c", other, "UPDATE")}},
			}, noCalls: true},
		{name: "stale and repeated seqs ignored",
			steps: []step{
				{1, []records.FeedEntry{e("a", mine, "ADD")}},
				{3, []records.FeedEntry{e("a", mine, "UPDATE")}},
				{2, []records.FeedEntry{e("a", mine, "REMOVE")}},
				{3, []records.FeedEntry{e("a", mine, "REMOVE")}},
			}, wantHeld: true, wantSeq: 3, noDelete: true},
		{name: "re-added after leaving",
			steps: []step{
				{1, []records.FeedEntry{e("a", mine, "ADD")}},
				{2, []records.FeedEntry{e("a", mine, "REMOVE")}},
				{3, []records.FeedEntry{e("b", mine, "ADD")}},
			}, wantHeld: true, wantSeq: 3},
	}
	env := testenv.New(t, "feed-events", "dead")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	serde := records.NewSerde(env.Registry(t))
	id, err := serde.Register(ctx, "feed-events-value", records.KindFeedEvent)
	if err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for ci, c := range cases {
		offer := "offer-" + string(rune('a'+ci))
		for _, s := range c.steps {
			ev := &records.FeedEvent{EventID: offer + "-" + string(rune('0'+s.seq)), OfferID: offer, Seq: s.seq,
				Cause: records.CauseChange, Entries: s.entries,
				Offer: &records.OfferView{Offer: records.Offer{ID: offer, Title: "t", Currency: "PLN", Condition: "NEW", Status: "ACTIVE", Attributes: map[string]string{}}}}
			v, err := serde.AppendFeedEvent(nil, id, ev)
			if err != nil {
				t.Fatal(err)
			}
			var hs []kgo.RecordHeader
			seen := map[string]bool{}
			for _, en := range s.entries {
				if !seen[en.Destination] {
					seen[en.Destination] = true
					hs = append(hs, kgo.RecordHeader{Key: connectors.HeaderDestination, Value: []byte(en.Destination)})
				}
			}
			recs = append(recs, &kgo.Record{Topic: "feed-events", Key: []byte(offer), Value: v, Headers: hs})
		}
	}
	prod := env.Client(t)
	res := prod.ProduceSync(ctx, recs...)
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	end := map[int32]int64{}
	for _, r := range res {
		end[r.Record.Partition] = max(end[r.Record.Partition], r.Record.Offset+1)
	}
	cfg := config.DefaultConnector()
	cfg.Kafka.Brokers = env.Brokers
	cfg.SchemaRegistry.URL = env.RegistryURL
	cfg.Destinations = []string{mine}
	cfg.DeadLetterTopic = "dead"
	cfg.StateDir = t.TempDir()
	cfg.Batch.MaxItems = 2 // several batches, so both collapse and cross-batch paths run
	cfg.Batch.MaxWait = time.Millisecond
	p := &memPartner{held: map[string]int64{}, calls: map[string][]string{}}
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	var mu sync.Mutex
	committed := map[int32]int64{}
	rt, err := connectors.New(cfg, p, connectors.Deps{Events: connectors.Events{Committed: func(_ string, part int32, off int64) {
		mu.Lock()
		defer mu.Unlock()
		committed[part] = off
		for pp, o := range end {
			if committed[pp] < o {
				return
			}
		}
		rcancel()
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Run(rctx); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("runtime did not drain the topic")
	}
	for ci, c := range cases {
		offer := "offer-" + string(rune('a'+ci))
		t.Run(c.name, func(t *testing.T) {
			seq, held := p.held[offer]
			if held != c.wantHeld || (held && seq != c.wantSeq) {
				t.Errorf("held %v seq %d, want %v seq %d (calls %v)", held, seq, c.wantHeld, c.wantSeq, p.calls[offer])
			}
			for _, call := range p.calls[offer] {
				if c.noDelete && call == "delete:REMOVE" {
					t.Errorf("delete sent: %v", p.calls[offer])
				}
			}
			if c.noCalls && len(p.calls[offer]) > 0 {
				t.Errorf("calls for another destination: %v", p.calls[offer])
			}
		})
	}
}
