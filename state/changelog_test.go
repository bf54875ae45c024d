package state_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/state"
)

func testOffer(id, seller string, version int64) *records.Offer {
	return &records.Offer{ID: id, SellerID: seller, Title: "t", Category: "c", PriceMinor: 100 + int(version), Currency: "PLN",
		Condition: "NEW", Status: "ACTIVE", URL: "u", Images: []string{}, Attributes: map[string]string{}, Version: version}
}

func testMembership(seq int64, feeds ...string) *state.Membership {
	m := &state.Membership{Seq: seq}
	for _, f := range feeds {
		m.Feeds = append(m.Feeds, state.FeedMembership{FeedID: f, Fingerprint: uint64(seq), Destinations: []string{"d"}})
	}
	return m
}

func must(t *testing.T, errs ...error) {
	t.Helper()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// storedValue returns the committed value of key (nil when absent).
func storedValue(t *testing.T, s *state.Store, key []byte) []byte {
	t.Helper()
	v, closer, err := s.DB().Get(key)
	if err != nil {
		return nil
	}
	defer closer.Close()
	return bytes.Clone(v)
}

func offerKeyOf(p int32, id string) []byte {
	return append([]byte{'o', byte(p >> 24), byte(p >> 16), byte(p >> 8), byte(p)}, id...)
}

func memKeyOf(p int32, id string) []byte {
	k := offerKeyOf(p, id)
	k[0] = 'm'
	return k
}

// TestChangelogOfferValue: the "o" value carries the stored offer and
// membership values as the batch sees them (staged writes included) and
// the event; it is absent when neither key exists.
func TestChangelogOfferValue(t *testing.T) {
	s := openStore(t)
	const p = 3
	at := time.UnixMilli(1_700_000_000_000)
	b := s.NewBatch()
	must(t,
		b.PutOffer(p, testOffer("live", "s1", 1)),
		b.PutMembership(p, "live", testMembership(4, "f1", "f2")),
		b.DeleteOffer(p, "dead", 7, at),
		b.PutMembership(p, "dead", testMembership(9, "f1")),
		b.PutMembership(p, "memonly", testMembership(1)),
		b.PutOffer(p+1, testOffer("other", "s1", 1)), // another partition
	)
	must(t, b.Commit(true))
	_ = b.Close()

	b = s.NewBatch()
	defer b.Close()
	must(t, b.PutOffer(p, testOffer("staged", "s2", 2))) // not committed
	event := state.AppendOutboxRecord(nil, &state.OutboxRecord{Topic: "events", Partition: state.PartitionByKey, Key: []byte("live"), Value: []byte("e")})
	cases := []struct {
		name             string
		id               string
		seq              uint64
		event            []byte
		ok               bool
		offerVal, memVal []byte
		wantSeq          uint64
	}{
		{name: "live with event", id: "live", seq: 12, event: event, ok: true,
			offerVal: storedValue(t, s, offerKeyOf(p, "live")), memVal: storedValue(t, s, memKeyOf(p, "live")), wantSeq: 12},
		{name: "event at sequence 0", id: "live", seq: 0, event: event, ok: true,
			offerVal: storedValue(t, s, offerKeyOf(p, "live")), memVal: storedValue(t, s, memKeyOf(p, "live"))},
		{name: "tombstone without event", id: "dead", seq: 5, ok: true, // seq without event is dropped
			offerVal: state.AppendTombstoneValue(nil, 7, at), memVal: storedValue(t, s, memKeyOf(p, "dead"))},
		{name: "membership only", id: "memonly", ok: true, memVal: storedValue(t, s, memKeyOf(p, "memonly"))},
		{name: "staged write", id: "staged", ok: true, offerVal: func() []byte {
			v, err := records.NewSerde(nil).MarshalOffer([]byte{1}, testOffer("staged", "s2", 2))
			must(t, err)
			return v
		}()},
		{name: "absent", id: "nothing", seq: 3, event: event},
		{name: "other partition", id: "other"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []byte("keep")
			out, ok, err := b.AppendChangelogOffer(prefix, p, tc.id, tc.seq, tc.event)
			if err != nil || ok != tc.ok {
				t.Fatalf("ok %v err %v, want ok %v", ok, err, tc.ok)
			}
			if !bytes.HasPrefix(out, []byte("keep")) {
				t.Fatalf("dst prefix lost: %q", out)
			}
			if !ok {
				if len(out) != len(prefix) {
					t.Fatalf("absent offer appended %q", out[len(prefix):])
				}
				return
			}
			offerVal, memVal, seq, ev, err := state.DecodeChangelogOffer(out[len(prefix):])
			if err != nil {
				t.Fatal(err)
			}
			wantEvent := tc.event
			if len(tc.offerVal) == 0 {
				tc.offerVal = nil
			}
			if !bytes.Equal(offerVal, tc.offerVal) || (offerVal == nil) != (tc.offerVal == nil) {
				t.Errorf("offer value %x, want %x", offerVal, tc.offerVal)
			}
			if !bytes.Equal(memVal, tc.memVal) || (memVal == nil) != (tc.memVal == nil) {
				t.Errorf("membership value %x, want %x", memVal, tc.memVal)
			}
			if seq != tc.wantSeq || !bytes.Equal(ev, wantEvent) || (ev == nil) != (wantEvent == nil) {
				t.Errorf("event %d %x, want %d %x", seq, ev, tc.wantSeq, wantEvent)
			}
		})
	}
}

func TestDecodeChangelogOfferErrors(t *testing.T) {
	good := state.AppendChangelogOfferValue(nil, []byte{1, 2, 3}, []byte{1, 0, 0, 0}, 7, []byte{2, 1})
	if _, _, _, _, err := state.DecodeChangelogOffer(good); err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":             {},
		"version":           append([]byte{2}, good[1:]...),
		"trailing":          append(bytes.Clone(good), 0),
		"offer tag":         state.AppendChangelogOfferValue(nil, []byte{9}, nil, 0, nil),
		"seq without event": {1, 0, 0, 5, 0},
	}
	for n := 1; n < len(good); n++ {
		cases["truncated "+string(rune('0'+n))] = good[:n]
	}
	for name, v := range cases {
		if _, _, _, _, err := state.DecodeChangelogOffer(v); !errors.Is(err, state.ErrChangelogCorrupt) {
			t.Errorf("%s: err %v, want ErrChangelogCorrupt", name, err)
		}
	}
}

func FuzzDecodeChangelogOffer(f *testing.F) {
	f.Add(state.AppendChangelogOfferValue(nil, []byte{1, 2}, []byte{1, 0, 0, 0}, 3, []byte{2, 1}))
	f.Add(state.AppendChangelogOfferValue(nil, nil, nil, 0, nil))
	f.Fuzz(func(t *testing.T, v []byte) {
		offerVal, memVal, seq, event, err := state.DecodeChangelogOffer(v)
		if err != nil {
			return
		}
		// What decodes re-encodes to a value that decodes the same.
		re := state.AppendChangelogOfferValue(nil, offerVal, memVal, seq, event)
		o2, m2, s2, e2, err := state.DecodeChangelogOffer(re)
		if err != nil || !bytes.Equal(o2, offerVal) || !bytes.Equal(m2, memVal) || s2 != seq || !bytes.Equal(e2, event) {
			t.Fatalf("re-encoding decodes differently: %v", err)
		}
	})
}

func TestChangelogOffsetAndAcked(t *testing.T) {
	for _, next := range []int64{0, 1, -1, 1 << 40, -1 << 62} {
		got, err := state.DecodeChangelogOffset(state.AppendChangelogOffset(nil, next))
		if err != nil || got != next {
			t.Errorf("offset %d: got %d %v", next, got, err)
		}
	}
	for _, seq := range []uint64{0, 1, 300, 1<<64 - 1} {
		got, err := state.DecodeChangelogAcked(state.AppendChangelogAcked(nil, seq))
		if err != nil || got != seq {
			t.Errorf("acked %d: got %d %v", seq, got, err)
		}
	}
	for _, bad := range [][]byte{nil, {0x80}, {1, 0x80}} { // {1, 2} is two offsets (TestChangelogOffsets)
		if _, err := state.DecodeChangelogOffset(bad); !errors.Is(err, state.ErrChangelogCorrupt) {
			t.Errorf("offset %x: err %v", bad, err)
		}
	}
	for _, bad := range [][]byte{nil, {0x80}, {1, 2}} {
		if _, err := state.DecodeChangelogAcked(bad); !errors.Is(err, state.ErrChangelogCorrupt) {
			t.Errorf("acked %x: err %v", bad, err)
		}
	}
	if string(state.ChangelogOfferKey([]byte("x"), "id1")) != "xoid1" || string(state.ChangelogOffsetKey) != "c" || string(state.ChangelogAckedKey) != "a" {
		t.Error("changelog keys")
	}
}

func TestOutboxRecordPartition(t *testing.T) {
	for _, p := range []int32{state.PartitionByKey, 0, 7, 1<<31 - 1} {
		r := state.OutboxRecord{Topic: "t", Partition: p, Key: []byte("k"), Value: []byte("v")}
		var got state.OutboxRecord
		if err := state.DecodeOutboxRecord(state.AppendOutboxRecord(nil, &r), &got); err != nil || got.Partition != p {
			t.Errorf("partition %d: got %d %v", p, got.Partition, err)
		}
	}
	// Version 1 (no partition) decodes as PartitionByKey. A version 2
	// record of partition -1 is version 1's with the version byte changed
	// and the one-byte varint(-1) inserted.
	v2 := state.AppendOutboxRecord(nil, &state.OutboxRecord{Topic: "t", Partition: -1, Key: []byte("k"), SourceTimeMs: 5})
	v1 := append([]byte{1}, v2[2:]...)
	got := state.OutboxRecord{Partition: 3}
	if err := state.DecodeOutboxRecord(v1, &got); err != nil || got.Partition != state.PartitionByKey || got.Topic != "t" || string(got.Key) != "k" || got.SourceTimeMs != 5 {
		t.Errorf("version 1: %+v %v", got, err)
	}
	if err := state.DecodeOutboxRecord(append([]byte{3}, v2[1:]...), &got); !errors.Is(err, state.ErrCorrupt) {
		t.Errorf("version 3: %v", err)
	}
}

type outboxEntry struct {
	seq uint64
	enc string
}

func scanOutbox(t *testing.T, s *state.Store, p int32) []outboxEntry {
	t.Helper()
	var out []outboxEntry
	if _, err := s.ScanOutbox(p, 0, 1<<20, func(seq uint64, r *state.OutboxRecord) error {
		out = append(out, outboxEntry{seq, string(state.AppendOutboxRecord(nil, r))})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAddOutboxSequences: AddOutbox returns the sequence each record is
// committed at (per partition, continuing after earlier commits) and its
// encoding.
func TestAddOutboxSequences(t *testing.T) {
	s := openStore(t)
	want := map[int32][]outboxEntry{}
	for round := range 2 {
		b := s.NewBatch()
		for i, p := range []int32{0, 5, 0, state.TablePartition, 0} {
			seq, enc := b.AddOutbox(p, &state.OutboxRecord{Topic: "t", Partition: p, Key: []byte{byte(round), byte(i)}})
			want[p] = append(want[p], outboxEntry{seq, string(enc)})
		}
		must(t, b.Commit(false))
		_ = b.Close()
	}
	for p, entries := range want {
		for i, e := range entries {
			if e.seq != uint64(i) {
				t.Errorf("partition %d record %d: seq %d", p, i, e.seq)
			}
		}
		got := scanOutbox(t, s, p)
		if len(got) != len(entries) {
			t.Fatalf("partition %d: outbox %v, want %v", p, got, entries)
		}
		for i := range got {
			if got[i] != entries[i] {
				t.Errorf("partition %d: outbox[%d] %v, want %v", p, i, got[i], entries[i])
			}
		}
		if next := s.NextOutbox(p); next != uint64(len(entries)) {
			t.Errorf("partition %d: next %d", p, next)
		}
	}
}

// TestAddOutboxMoved: a batch whose sequences another batch took in the
// meantime fails to commit, and commits nothing.
func TestAddOutboxMoved(t *testing.T) {
	s := openStore(t)
	b1, b2 := s.NewBatch(), s.NewBatch()
	defer b1.Close()
	defer b2.Close()
	must(t, b1.SetOffset("offers", 0, 5))
	seq1, _ := b1.AddOutbox(0, &state.OutboxRecord{Topic: "t", Key: []byte("1")})
	b1.AddOutbox(1, &state.OutboxRecord{Topic: "t", Key: []byte("1")}) // partition 1 did not move
	seq2, _ := b2.AddOutbox(0, &state.OutboxRecord{Topic: "t", Key: []byte("2")})
	if seq1 != 0 || seq2 != 0 {
		t.Fatalf("seqs %d %d", seq1, seq2)
	}
	must(t, b2.Commit(false))
	err := b1.Commit(false)
	if !errors.Is(err, state.ErrOutboxMoved) || err.Error() != "outbox sequence of partition 0 moved: another batch committed in between" {
		t.Fatalf("err %v", err)
	}
	if offs, _ := s.Offsets("offers"); len(offs) != 0 {
		t.Errorf("failed commit wrote offsets %v", offs)
	}
	if got := scanOutbox(t, s, 0); len(got) != 1 || s.NextOutbox(0) != 1 || s.NextOutbox(1) != 0 {
		t.Errorf("outbox %v next %d %d", got, s.NextOutbox(0), s.NextOutbox(1))
	}
}

// TestOutboxNextSurvivesEmptyOutbox: once acknowledged records are deleted
// and the store reopened, sequences continue where they were; SetOutboxNext
// raises them, durably, and never lowers them.
func TestOutboxNextSurvivesEmptyOutbox(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	s := openTestStore(t, dir)
	for range 3 {
		b := s.NewBatch()
		b.AddOutbox(2, &state.OutboxRecord{Topic: "t"})
		must(t, b.Commit(false))
		_ = b.Close()
	}
	must(t, s.DeleteOutbox(2, 0, 2))
	must(t, s.Close())

	s = openTestStore(t, dir)
	if next, depth := s.NextOutbox(2), s.OutboxDepth(); next != 3 || depth != 0 {
		t.Fatalf("after reopen: next %d depth %d, want 3 0", next, depth)
	}
	b := s.NewBatch()
	if seq, _ := b.AddOutbox(2, &state.OutboxRecord{Topic: "t"}); seq != 3 {
		t.Fatalf("seq after reopen %d, want 3", seq)
	}
	must(t, b.Commit(false))
	_ = b.Close()
	if depth := s.OutboxDepth(); depth != 1 {
		t.Errorf("depth %d", depth)
	}

	must(t, s.SetOutboxNext(2, 2)) // lower: ignored
	if next := s.NextOutbox(2); next != 4 {
		t.Errorf("next lowered to %d", next)
	}
	must(t, s.DeleteOutbox(2, 3, 3))
	must(t, s.SetOutboxNext(2, 10), s.SetOutboxNext(7, 20))
	if next, depth := s.NextOutbox(2), s.OutboxDepth(); next != 10 || depth != 0 {
		t.Errorf("after SetOutboxNext: next %d depth %d", next, depth)
	}
	must(t, s.Close())
	s = openTestStore(t, dir)
	defer s.Close()
	if s.NextOutbox(2) != 10 || s.NextOutbox(7) != 20 || s.OutboxDepth() != 0 {
		t.Errorf("after reopen: next %d %d depth %d", s.NextOutbox(2), s.NextOutbox(7), s.OutboxDepth())
	}
}
