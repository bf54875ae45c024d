package grouping_test

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"go.uber.org/zap"

	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/processor/grouping"
	"github.com/feedmill/feedmill/state"
)

// offer is the simulated offer side: what the offer is now, its
// candidacy as announced and the flag its decisions left.
type offer struct {
	live  bool
	key   string
	value int
	cand  grouping.Candidacy
	flag  grouping.Flag
	part  int32
}

// TestProtocolEqualsGroupBy runs the two stages over random offer
// changes (moves between keys, value changes with ties, leaving and
// coming back), delivering the messages of each partition in order but
// interleaving partitions at random, and duplicating some. Once every
// message is delivered, the members (offers whose flag says they won
// their current key) must be exactly a group-by-min over the final
// offers, ties to the lowest id.
func TestProtocolEqualsGroupBy(t *testing.T) {
	const groupParts, offerParts = 3, 4
	for seed := range uint64(30) {
		rng := rand.New(rand.NewPCG(seed, 5))
		store, err := state.Open(filepath.Join(t.TempDir(), "s"), records.NewSerde(nil), state.Options{}, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		offers := map[string]*offer{}
		var ids []string
		for i := range 30 {
			id := fmt.Sprintf("o%02d", i)
			ids = append(ids, id)
			offers[id] = &offer{part: int32(rng.IntN(offerParts))}
		}
		keys := []string{"k1", "k2", "k3", "k4"}
		toGroup := make([][]grouping.Message, groupParts)  // per group partition, in order
		toOffer := make([][]grouping.Decision, offerParts) // per offers partition, in order
		deliverOne := func() bool {
			var ready []int
			for g := range toGroup {
				if len(toGroup[g]) > 0 {
					ready = append(ready, g)
				}
			}
			for p := range toOffer {
				if len(toOffer[p]) > 0 {
					ready = append(ready, groupParts+p)
				}
			}
			if len(ready) == 0 {
				return false
			}
			q := ready[rng.IntN(len(ready))]
			if q < groupParts {
				m := toGroup[q][0]
				if rng.IntN(8) != 0 { // sometimes delivered twice
					toGroup[q] = toGroup[q][1:]
				}
				b := store.NewBatch()
				_, ds, err := grouping.ApplyCandidacy(b, int32(q), m)
				if err != nil {
					t.Fatal(err)
				}
				if err := b.Commit(false); err != nil {
					t.Fatal(err)
				}
				_ = b.Close()
				for _, d := range ds {
					toOffer[d.Partition] = append(toOffer[d.Partition], d)
				}
				return true
			}
			p := q - groupParts
			d := toOffer[p][0]
			toOffer[p] = toOffer[p][1:]
			o := offers[d.OfferID]
			o.flag = grouping.ApplyDecision(o.flag, d)
			return true
		}
		for range 600 {
			id := ids[rng.IntN(len(ids))]
			o := offers[id]
			switch rng.IntN(4) {
			case 0:
				o.live = !o.live
			case 1:
				o.key = keys[rng.IntN(len(keys))]
				o.live = true
			default:
				o.value = rng.IntN(4)
			}
			next, msgs := grouping.Next(o.cand, "f", id, o.part, o.live, o.key, state.OrderFloat(float64(o.value), false), 0)
			o.cand = next
			for _, m := range msgs {
				g := grouping.GroupPartition(m.Feed, m.Key, groupParts)
				toGroup[g] = append(toGroup[g], m)
			}
			for range rng.IntN(3) {
				deliverOne()
			}
		}
		for deliverOne() {
		}
		// The reference: group-by-min over the final offers.
		want := map[string]string{}
		for _, id := range ids { // ids ascend: the first of a value wins ties
			o := offers[id]
			if !o.live {
				continue
			}
			if w, ok := want[o.key]; !ok || o.value < offers[w].value {
				want[o.key] = id
			}
		}
		got := map[string]string{}
		for _, id := range ids {
			o := offers[id]
			if grouping.Member(o.cand, o.flag) {
				if prev, dup := got[o.cand.Key]; dup {
					t.Fatalf("seed %d: key %s has two members, %s and %s", seed, o.cand.Key, prev, id)
				}
				got[o.cand.Key] = id
			}
		}
		for _, k := range keys {
			if got[k] != want[k] {
				t.Errorf("seed %d: key %s: member %q, want %q", seed, k, got[k], want[k])
			}
		}
		if err := store.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRecordsRoundTrip(t *testing.T) {
	msgs := []grouping.Message{
		{Feed: "cheap", Key: "p-1", OfferID: "o1", Partition: 7, Seq: 1 << 50, Order: state.OrderFloat(12.5, false), Live: true},
		{Feed: "f", Key: "", OfferID: "", Partition: 0, Seq: 1},
		{Feed: "f", Key: "a\x00b", OfferID: "x", Partition: 3, Seq: 2, Order: 9},
	}
	for _, m := range msgs {
		var got grouping.Message
		if err := grouping.DecodeMessage(grouping.AppendMessageKey(nil, &m), grouping.AppendMessage(nil, &m), &got); err != nil || got != m {
			t.Fatalf("message %+v: got %+v, %v", m, got, err)
		}
		v := grouping.AppendMessage(nil, &m)
		for n := range len(v) {
			if err := grouping.DecodeMessage(grouping.AppendMessageKey(nil, &m), v[:n], &got); err == nil {
				t.Fatalf("message truncated to %d: no error", n)
			}
		}
	}
	decs := []grouping.Decision{
		{Feed: "cheap", Key: "p-1", OfferID: "o1", Partition: 4, Won: true, Seq: 3, GSeq: 9},
		{Feed: "f", Key: "", OfferID: "o", Partition: 0},
	}
	for _, d := range decs {
		var got grouping.Decision
		v := grouping.AppendDecision(nil, &d)
		k := grouping.AppendDecisionKey(nil, &d)
		if err := grouping.DecodeDecision(k, v, d.Partition, &got); err != nil || got != d {
			t.Fatalf("decision %+v: got %+v, %v", d, got, err)
		}
		for n := range len(v) {
			if err := grouping.DecodeDecision(k, v[:n], d.Partition, &got); err == nil {
				t.Fatalf("decision truncated to %d: no error", n)
			}
		}
	}
	m := msgs[0]
	v := grouping.AppendMessage(nil, &m)
	for _, k := range []string{"nosep", "cheap\x00p-1\x00o2", "cheap\x00p-1o1", "o1"} {
		if err := grouping.DecodeMessage([]byte(k), v, new(grouping.Message)); err == nil {
			t.Errorf("candidacy key %q for offer o1: no error", k)
		}
	}
	d := decs[0]
	dv := grouping.AppendDecision(nil, &d)
	for _, k := range []string{"o1", "o1\x00cheap\x00p-2", "o1\x00chea\x00p-1", "\x00cheap\x00p-1x"} {
		if err := grouping.DecodeDecision([]byte(k), dv, 0, new(grouping.Decision)); err == nil {
			t.Errorf("decision key %q: no error", k)
		}
	}
}
