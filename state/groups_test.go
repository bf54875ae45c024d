package state_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/state"
)

func TestOrderFloatAndTime(t *testing.T) {
	vals := []float64{math.Inf(-1), -1e300, -2.5, -1, -math.SmallestNonzeroFloat64, 0, math.SmallestNonzeroFloat64, 0.5, 1, 2.5, 1e300, math.Inf(1)}
	for i := 1; i < len(vals); i++ {
		if !(state.OrderFloat(vals[i-1], false) < state.OrderFloat(vals[i], false)) {
			t.Errorf("min: %v does not order before %v", vals[i-1], vals[i])
		}
		if !(state.OrderFloat(vals[i-1], true) > state.OrderFloat(vals[i], true)) {
			t.Errorf("max: %v does not order after %v", vals[i-1], vals[i])
		}
	}
	if state.OrderFloat(math.Copysign(0, -1), false) != state.OrderFloat(0, false) {
		t.Error("-0 and +0 order apart")
	}
	for _, max := range []bool{false, true} {
		if nan := state.OrderFloat(math.NaN(), max); nan <= state.OrderFloat(math.Inf(1), max) || nan <= state.OrderFloat(math.Inf(-1), max) {
			t.Errorf("max %v: NaN does not order last", max)
		}
	}
	t0 := time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)
	if !(state.OrderTime(t0, false) < state.OrderTime(t0.Add(time.Nanosecond), false)) || !(state.OrderTime(t0, true) > state.OrderTime(t0.Add(time.Second), true)) {
		t.Error("times do not order")
	}
}

// refGroup is the plain reference: a group's candidates, the winner
// recomputed from scratch.
type refCand struct {
	order state.Order
	part  int32
	seq   uint64
	live  bool
}

func refWinner(cands map[string]refCand) state.Winner {
	var ids []string
	for id, c := range cands {
		if c.live {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return state.Winner{}
	}
	slices.SortFunc(ids, func(a, b string) int {
		if ca, cb := cands[a], cands[b]; ca.order != cb.order {
			if ca.order < cb.order {
				return -1
			}
			return 1
		}
		if a < b {
			return -1
		}
		return 1
	})
	return state.Winner{OfferID: ids[0], Partition: cands[ids[0]].part}
}

// TestGroupCandidacyProperty applies random candidacies (moves between
// keys, value changes with many ties, removals, late and duplicate
// records) across several batches and checks, after each, the winner the
// store reports and the change it returned against the reference.
func TestGroupCandidacyProperty(t *testing.T) {
	for seed := range uint64(8) {
		s := openStore(t)
		rng := rand.New(rand.NewPCG(seed, 3))
		ref := map[string]map[string]refCand{} // key → offer → candidate
		seqs := map[string]uint64{}            // offer → last seq sent
		keys := []string{"p1", "p2", "p3"}
		offers := make([]string, 40)
		for i := range offers {
			offers[i] = fmt.Sprintf("o%02d", i)
		}
		b := s.NewBatch()
		for step := range 3000 {
			id := offers[rng.IntN(len(offers))]
			key := keys[rng.IntN(len(keys))]
			seq := seqs[id] + 1
			if rng.IntN(10) == 0 && seqs[id] > 0 {
				seq = seqs[id] - uint64(rng.IntN(2)) // a late or duplicate record
			}
			live := rng.IntN(4) != 0
			order := state.OrderFloat(float64(rng.IntN(5)), false) // many ties
			part := int32(rng.IntN(4))
			if ref[key] == nil {
				ref[key] = map[string]refCand{}
			}
			before := refWinner(ref[key])
			old, had := ref[key][id]
			wantApplied := !had || old.seq < seq
			ch, err := b.SetCandidacy(7, "feed", key, id, part, seq, order, live)
			if err != nil {
				t.Fatal(err)
			}
			if ch.Applied != wantApplied {
				t.Fatalf("seed %d step %d: applied %v, want %v", seed, step, ch.Applied, wantApplied)
			}
			if wantApplied {
				ref[key][id] = refCand{order, part, seq, live}
				seqs[id] = max(seqs[id], seq)
				if after := refWinner(ref[key]); ch.Before != before || ch.After != after {
					t.Fatalf("seed %d step %d: change %+v, want %+v → %+v", seed, step, ch, before, after)
				}
			}
			if got, err := b.GroupWinner(7, "feed", key); err != nil || got != refWinner(ref[key]) {
				t.Fatalf("seed %d step %d: winner %+v (%v), want %+v", seed, step, got, err, refWinner(ref[key]))
			}
			if step%200 == 199 {
				if err := b.Commit(false); err != nil {
					t.Fatal(err)
				}
				_ = b.Close()
				b = s.NewBatch()
			}
		}
		_ = b.Close()
	}
}

// BenchmarkGroupNonWinnerChange is the cost of a price change of an offer
// that is not its group's winner, in a group of 10 and of 20,000 offers:
// O(log n) point reads and one seek, not a scan of the group.
func BenchmarkGroupNonWinnerChange(b *testing.B) {
	for _, n := range []int{10, 20_000} {
		b.Run("group="+strconv.Itoa(n), func(b *testing.B) {
			s, err := state.Open(b.TempDir(), records.NewSerde(nil), state.Options{}, zap.NewNop())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			bt := s.NewBatch()
			seq := uint64(1)
			for i := range n {
				if _, err := bt.SetCandidacy(0, "cheapest", "product-1", fmt.Sprintf("o%06d", i), 0, seq, state.OrderFloat(float64(100+i), false), true); err != nil {
					b.Fatal(err)
				}
			}
			if err := bt.Commit(false); err != nil {
				b.Fatal(err)
			}
			_ = bt.Close()
			b.ResetTimer()
			for i := range b.N {
				seq++
				bt := s.NewBatch()
				id := fmt.Sprintf("o%06d", 1+i%(n-1)) // never o000000, the winner
				ch, err := bt.SetCandidacy(0, "cheapest", "product-1", id, 0, seq, state.OrderFloat(float64(200+i%1000), false), true)
				if err != nil || ch.After.OfferID != "o000000" {
					b.Fatalf("%+v %v", ch, err)
				}
				if err := bt.Commit(false); err != nil {
					b.Fatal(err)
				}
				_ = bt.Close()
			}
		})
	}
}
