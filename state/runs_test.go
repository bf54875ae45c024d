package state_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/state"
)

func openStore(t *testing.T) *state.Store {
	t.Helper()
	s, err := state.Open(t.TempDir(), records.NewSerde(nil), state.Options{CacheBytes: 1 << 20, MemTableBytes: 1 << 20}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestRunsNewestFirstAndFixes(t *testing.T) {
	s := openStore(t)
	ids := []string{"run-20261130-120000", "run-20261130-120100", "run-20261130-120200"}
	for _, id := range ids {
		if err := s.PutRun(&state.Run{ID: id, StartedAt: time.UnixMilli(1)}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	if err := s.Runs(func(r *state.Run) bool { got = append(got, r.ID); return true }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0] != ids[2] || got[2] != ids[0] {
		t.Fatalf("runs %v, want newest first of %v", got, ids)
	}
	if _, err := s.GetRun("run-nope"); err == nil {
		t.Error("unknown run: no error")
	}

	w := s.NewFixWriter(ids[1])
	want := []state.Fix{{0, "a", state.FixReconcile}, {0, "b", state.FixRefresh}, {3, "a", state.FixReconcile | state.FixRefresh}}
	for _, f := range want {
		if err := w.Add(f.Partition, f.OfferID, f.Flags); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	// Paged scan: 2, then the rest.
	var seen []state.Fix
	first, p, after := true, int32(0), ""
	for {
		n, err := s.ScanFixes(ids[1], first, p, after, 2, func(f state.Fix) error { seen = append(seen, f); return nil })
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		first, p, after = false, seen[len(seen)-1].Partition, seen[len(seen)-1].OfferID
	}
	if len(seen) != len(want) {
		t.Fatalf("fixes %v, want %v", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Errorf("fix %d: %v, want %v", i, seen[i], want[i])
		}
	}
	if err := s.DeleteFixesOf(ids[1], 0); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.ScanFixes(ids[1], true, 0, "", 10, func(state.Fix) error { return nil }); n != 1 {
		t.Errorf("%d fixes after deleting partition 0's, want partition 3's one", n)
	}
	if err := s.DeleteRun(ids[1]); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.ScanFixes(ids[1], true, 0, "", 10, func(state.Fix) error { return nil }); n != 0 {
		t.Errorf("%d fixes after delete", n)
	}
	if _, err := s.GetRun(ids[1]); !errors.Is(err, state.ErrRunNotFound) {
		t.Errorf("deleted run: %v", err)
	}
}

func TestSnapshotScanJoinsOffersAndMemberships(t *testing.T) {
	s := openStore(t)
	b := s.NewBatch()
	offer := func(id string) *records.Offer {
		return &records.Offer{ID: id, SellerID: "s1", Title: "t", Category: "c", PriceMinor: 1, Currency: "PLN",
			Condition: "NEW", Status: "ACTIVE", URL: "u", Images: []string{}, Attributes: map[string]string{}, Version: 1}
	}
	mem := &state.Membership{Seq: 1, Feeds: []state.FeedMembership{{FeedID: "f", Fingerprint: 7, Destinations: []string{"d"}}}}
	for _, op := range []error{
		b.PutOffer(0, offer("a")),            // offer without membership
		b.PutOffer(0, offer("b")),            // offer with membership
		b.PutMembership(0, "b", mem),         //
		b.PutMembership(0, "c", mem),         // membership without offer
		b.DeleteOffer(1, "d", 3, time.Now()), // tombstone with membership
		b.PutMembership(1, "d", mem),
	} {
		if op != nil {
			t.Fatal(op)
		}
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
	snap := s.NewSnapshot()
	defer snap.Close()
	// A write after the snapshot is not seen.
	b = s.NewBatch()
	if err := b.PutOffer(0, offer("e")); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
	type row struct {
		p          int32
		id         string
		offer, mem bool
	}
	var got []row
	if err := snap.Scan(context.Background(), nil, func(it *state.ScanItem) error {
		got = append(got, row{it.Partition, it.OfferID, it.Offer != nil, it.Membership != nil})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []row{{0, "a", true, false}, {0, "b", true, true}, {0, "c", false, true}, {1, "d", false, true}}
	if len(got) != len(want) {
		t.Fatalf("scan %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("row %d: %v, want %v", i, got[i], want[i])
		}
	}
	// One partition's scan sees exactly that partition's rows.
	for p := range int32(3) {
		var part []row
		if err := snap.ScanPartition(context.Background(), p, nil, func(it *state.ScanItem) error {
			part = append(part, row{it.Partition, it.OfferID, it.Offer != nil, it.Membership != nil})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		wantP := slices.DeleteFunc(slices.Clone(want), func(r row) bool { return r.p != p })
		if !slices.Equal(part, wantP) {
			t.Errorf("partition %d: %v, want %v", p, part, wantP)
		}
	}
}
