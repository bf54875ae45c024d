package state_test

import (
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/state"
)

func openTestStore(t *testing.T, dir string) *state.Store {
	t.Helper()
	s, err := state.Open(dir, records.NewSerde(nil), state.Options{CacheBytes: 1 << 20, MemTableBytes: 1 << 20}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMembershipRoundTrip(t *testing.T) {
	cases := []state.Membership{
		{},
		{Seq: 1795601167536175},
		{Seq: 7, Feeds: []state.FeedMembership{
			{FeedID: "a", Fingerprint: 1<<63 + 5, SentAtMs: 1700000000000, Destinations: []string{"gmc", "meta"}},
			{FeedID: "file-only", Fingerprint: 42},
		}, FieldHashes: []uint32{0, 1, 0xffffffff}},
	}
	for i, m := range cases {
		b := state.AppendMembership(nil, &m)
		var got state.Membership
		if err := state.DecodeMembership(b, &got, nil); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		norm := func(m state.Membership) state.Membership {
			if len(m.Feeds) == 0 {
				m.Feeds = nil
			}
			if len(m.FieldHashes) == 0 {
				m.FieldHashes = nil
			}
			for j := range m.Feeds {
				if len(m.Feeds[j].Destinations) == 0 {
					m.Feeds[j].Destinations = nil
				}
			}
			return m
		}
		if !reflect.DeepEqual(norm(got), norm(m)) {
			t.Errorf("case %d: got %+v, want %+v", i, got, m)
		}
		// Every truncation is reported as corruption, never a panic.
		for n := 0; n < len(b); n++ {
			if err := state.DecodeMembership(b[:n], &got, nil); !errors.Is(err, state.ErrCorrupt) {
				t.Errorf("case %d truncated to %d: err %v, want ErrCorrupt", i, n, err)
			}
		}
	}
}

func FuzzDecodeMembership(f *testing.F) {
	f.Add(state.AppendMembership(nil, &state.Membership{Seq: 3, Feeds: []state.FeedMembership{{FeedID: "x", Destinations: []string{"d"}}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m state.Membership
		if err := state.DecodeMembership(b, &m, nil); err != nil {
			return
		}
		// What decodes re-encodes to the same bytes.
		if got := state.AppendMembership(nil, &m); string(got) != string(b) {
			t.Fatalf("re-encoding differs")
		}
	})
}

func TestOutboxRecordRoundTrip(t *testing.T) {
	r := state.OutboxRecord{Topic: "feed-events", Key: []byte("o1"), Value: []byte{0, 1, 2},
		Headers: []state.Header{{Key: "destination", Value: []byte("gmc")}}, SourceTimeMs: 123}
	var got state.OutboxRecord
	if err := state.DecodeOutboxRecord(state.AppendOutboxRecord(nil, &r), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Errorf("got %+v, want %+v", got, r)
	}
	tomb := state.OutboxRecord{Topic: "t", Key: []byte("k")}
	if err := state.DecodeOutboxRecord(state.AppendOutboxRecord(nil, &tomb), &got); err != nil || got.Value != nil {
		t.Errorf("nil value: %+v %v", got, err)
	}
}

// TestBatchAtomicity: nothing of an uncommitted batch is visible, and a
// committed one shows state, offsets and outbox together; outbox sequences
// continue after a reopen.
func TestBatchAtomicity(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	s := openTestStore(t, dir)
	o := &records.Offer{ID: "o1", SellerID: "s1", Currency: "PLN", Condition: "NEW", Status: "ACTIVE", Version: 1, UpdatedAt: time.UnixMilli(5)}

	b := s.NewBatch()
	if err := b.PutOffer(0, o); err != nil {
		t.Fatal(err)
	}
	if err := b.SetOffset("offers", 0, 10); err != nil {
		t.Fatal(err)
	}
	b.AddOutbox(0, &state.OutboxRecord{Topic: "feed-events", Key: []byte("o1"), Value: []byte("v")})
	var got records.Offer
	if pres, _, err := b.GetOffer(0, "o1", &got); err != nil || pres != state.Live {
		t.Fatalf("batch does not read its own write: %v %v", pres, err)
	}
	_ = b.Close() // discarded
	if offs, _ := s.Offsets("offers"); len(offs) != 0 {
		t.Fatalf("discarded batch leaked offsets %v", offs)
	}
	if n, _ := s.ScanOutbox(0, 0, 10, func(uint64, *state.OutboxRecord) error { return nil }); n != 0 {
		t.Fatalf("discarded batch leaked %d outbox records", n)
	}

	for i := range 3 {
		b := s.NewBatch()
		if err := b.SetOffset("offers", 0, int64(20+i)); err != nil {
			t.Fatal(err)
		}
		b.AddOutbox(0, &state.OutboxRecord{Topic: "feed-events", Key: []byte{byte('a' + i)}})
		if err := b.Commit(true); err != nil {
			t.Fatal(err)
		}
		_ = b.Close()
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTestStore(t, dir)
	defer s.Close()
	if offs, _ := s.Offsets("offers"); offs[0] != 22 {
		t.Fatalf("offsets after reopen %v", offs)
	}
	var seqs []uint64
	var keys string
	if _, err := s.ScanOutbox(0, 0, 10, func(seq uint64, r *state.OutboxRecord) error {
		seqs = append(seqs, seq)
		keys += string(r.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if keys != "abc" || s.NextOutbox(0) != seqs[len(seqs)-1]+1 {
		t.Fatalf("outbox after reopen: keys %q seqs %v next %d", keys, seqs, s.NextOutbox(0))
	}
	if err := s.DeleteOutbox(0, seqs[0], seqs[1]); err != nil {
		t.Fatal(err)
	}
	keys = ""
	if _, err := s.ScanOutbox(0, 0, 10, func(_ uint64, r *state.OutboxRecord) error { keys += string(r.Key); return nil }); err != nil || keys != "c" {
		t.Fatalf("after delete: %q %v", keys, err)
	}
}
