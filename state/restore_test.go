package state_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/state"
)

const changelogTopic = "offers-changelog"

type changelogRecord struct{ key, value []byte }

// change is one offer change of a source batch: what it does to the
// state and whether it emits an event.
type change struct {
	id    string
	apply func(b *state.Batch) error
	event bool
}

// sourceStore plays the processor on one offers partition: each step is
// one batch that applies changes, stages their events, then the changelog
// records of the offers it touched and of the offset, through the outbox.
type sourceStore struct {
	t      *testing.T
	s      *state.Store
	p      int32
	offset int64
	// events is the last event of each offer as the changelog carries it.
	events map[string]outboxEntry
}

func (src *sourceStore) step(changes ...change) {
	t := src.t
	b := src.s.NewBatch()
	defer b.Close()
	type touched struct {
		id  string
		seq uint64
		enc []byte
	}
	var ts []touched
	for _, c := range changes {
		must(t, c.apply(b))
		tc := touched{id: c.id}
		if c.event {
			tc.seq, tc.enc = b.AddOutbox(src.p, &state.OutboxRecord{Topic: "events", Partition: state.PartitionByKey,
				Key: []byte(c.id), Value: []byte("event of " + c.id), SourceTimeMs: src.offset})
		}
		ts = append(ts, tc)
	}
	// A reject in the same outbox: not carried by the changelog.
	b.AddOutbox(src.p, &state.OutboxRecord{Topic: "rejects", Partition: state.PartitionByKey, Key: []byte("r")})
	for _, tc := range ts {
		val, ok, err := b.AppendChangelogOffer(nil, src.p, tc.id, tc.seq, tc.enc)
		must(t, err)
		rec := &state.OutboxRecord{Topic: changelogTopic, Partition: src.p, Key: state.ChangelogOfferKey(nil, tc.id)}
		if ok {
			rec.Value = val
		}
		b.AddOutbox(src.p, rec)
		if ok && tc.enc != nil {
			src.events[tc.id] = outboxEntry{tc.seq, string(tc.enc)}
		} else {
			delete(src.events, tc.id)
		}
	}
	src.offset++
	must(t, b.SetOffset("offers", src.p, src.offset))
	b.AddOutbox(src.p, &state.OutboxRecord{Topic: changelogTopic, Partition: src.p, Key: state.ChangelogOffsetKey,
		Value: state.AppendChangelogOffset(nil, src.offset)})
	must(t, b.Commit(false))
}

// changelog reads the changelog records the source staged, in order.
func (src *sourceStore) changelog() []changelogRecord {
	var out []changelogRecord
	_, err := src.s.ScanOutbox(src.p, 0, 1<<20, func(_ uint64, r *state.OutboxRecord) error {
		if r.Topic != changelogTopic {
			return nil
		}
		if r.Partition != src.p {
			src.t.Fatalf("changelog record of partition %d in outbox %d", r.Partition, src.p)
		}
		out = append(out, changelogRecord{bytes.Clone(r.Key), bytes.Clone(r.Value)})
		return nil
	})
	must(src.t, err)
	return out
}

// compact keeps the last record of each key, in the order of those.
func compact(log []changelogRecord) []changelogRecord {
	last := map[string]int{}
	for i, r := range log {
		last[string(r.key)] = i
	}
	var out []changelogRecord
	for i, r := range log {
		if last[string(r.key)] == i {
			out = append(out, r)
		}
	}
	return out
}

// dumpKeys returns the committed keys and values for which keep is true.
func dumpKeys(t *testing.T, s *state.Store, keep func(k []byte) bool) map[string]string {
	t.Helper()
	it, err := s.DB().NewIter(&pebble.IterOptions{})
	must(t, err)
	defer it.Close()
	out := map[string]string{}
	for it.First(); it.Valid(); it.Next() {
		if keep(it.Key()) {
			out[string(it.Key())] = string(it.Value())
		}
	}
	must(t, it.Error())
	return out
}

func partitionBytes(p int32) []byte { return binary.BigEndian.AppendUint32(nil, uint32(p)) }

// offerScoped: the offer, membership and seller index keys of p.
func offerScoped(p int32) func(k []byte) bool {
	pb := partitionBytes(p)
	return func(k []byte) bool {
		return len(k) >= 5 && (k[0] == 'o' || k[0] == 'm' || k[0] == 'x') && bytes.Equal(k[1:5], pb)
	}
}

// partitionScoped: every key a restore of p may change.
func partitionScoped(p int32) func(k []byte) bool {
	pb := partitionBytes(p)
	offset := append([]byte{'c', 0, 6}, "offers"...)
	offset = append(offset, pb...)
	return func(k []byte) bool {
		switch {
		case len(k) >= 5 && bytes.IndexByte([]byte("omxqghw"), k[0]) >= 0 && bytes.Equal(k[1:5], pb):
			return true
		case k[0] == 't' && len(k) >= 14 && k[9] == 'o' && bytes.Equal(k[10:14], pb):
			return true
		case k[0] == 'l' && len(k) >= 5 && bytes.Equal(k[1:5], pb):
			return true
		case k[0] == 'z':
			return true
		}
		return bytes.Equal(k, offset)
	}
}

// partitionMembers counts the members of each feed in partition p.
func partitionMembers(t *testing.T, s *state.Store, p int32) map[string]int64 {
	t.Helper()
	snap := s.NewSnapshot()
	defer snap.Close()
	out := map[string]int64{}
	must(t, snap.Scan(context.Background(), nil, func(it *state.ScanItem) error {
		if it.Partition == p && it.Membership != nil {
			for _, f := range it.Membership.Feeds {
				out[f.FeedID]++
			}
		}
		return nil
	}))
	return out
}

func sellerOffers(t *testing.T, s *state.Store, p int32, seller string) []string {
	t.Helper()
	b := s.NewBatch()
	defer b.Close()
	var ids []string
	_, err := b.ScanSellerOffers(p, seller, "", 100, func(id string) error { ids = append(ids, id); return nil })
	must(t, err)
	return ids
}

// TestRestoreRoundTrip: a store restored from the changelog a source
// store wrote holds the source's partition (offers, tombstones,
// memberships, seller and tombstone indexes, offset, unacknowledged
// events at their sequences) whatever it held for that partition before,
// leaves other partitions alone and keeps the feed counts right; the full
// log and its compaction restore the same.
func TestRestoreRoundTrip(t *testing.T) {
	const p, other int32 = 2, 1
	t0 := time.UnixMilli(1_700_000_000_000)
	t1, t2 := t0.Add(time.Hour), t0.Add(2*time.Hour)

	src := &sourceStore{t: t, s: openStore(t), p: p, events: map[string]outboxEntry{}}
	put := func(id, seller string, v int64, feeds ...string) change {
		return change{id: id, apply: func(b *state.Batch) error {
			var old records.Offer
			if pres, _, err := b.GetOffer(p, id, &old); err != nil {
				return err
			} else if pres == state.Live && old.SellerID != seller {
				if err := b.DeleteIndex(p, old.SellerID, id); err != nil {
					return err
				}
			}
			if err := b.PutOffer(p, testOffer(id, seller, v)); err != nil {
				return err
			}
			if err := b.PutIndex(p, seller, id); err != nil {
				return err
			}
			if feeds == nil {
				return b.DeleteMembership(p, id)
			}
			return b.PutMembership(p, id, testMembership(v, feeds...))
		}, event: true}
	}
	del := func(id, seller string, v int64, at time.Time) change {
		return change{id: id, apply: func(b *state.Batch) error {
			if err := b.DeleteOffer(p, id, v, at); err != nil {
				return err
			}
			return b.DeleteIndex(p, seller, id)
		}, event: true}
	}
	quiet := func(c change) change { c.event = false; return c }

	src.step(put("a", "s1", 1, "f1", "f2"), put("b", "s1", 1, "f1"), put("c", "s2", 1), put("e", "s2", 1, "f2"))
	acked := src.s.NextOutbox(p)                                     // everything of step 1 is acknowledged
	src.step(put("a", "s3", 2, "f1"))                                // a moves to seller s3
	src.step(del("c", "s2", 2, t1), del("b", "s1", 2, t1))           // b keeps its membership
	src.step(put("d", "s2", 1, "f1"), put("f", "s1", 1, "f2", "f3")) //
	src.step(del("d", "s2", 2, t0))                                  //
	src.step(change{id: "d", apply: func(b *state.Batch) error {     // the sweep forgets d
		n, err := b.SweepTombstones(t0.Add(time.Minute), 10)
		if err == nil && n != 1 {
			err = errors.New("sweep did not forget d")
		}
		return err
	}})
	src.step(quiet(put("a", "s3", 3, "f1", "f3")), put("f", "s1", 2, "f2")) // a's change emits nothing
	log := src.changelog()
	// The relay writes the acknowledged watermark as it goes.
	log = slices.Insert(log, 2, changelogRecord{state.ChangelogAckedKey, state.AppendChangelogAcked(nil, 1)})
	log = append(log, changelogRecord{state.ChangelogAckedKey, state.AppendChangelogAcked(nil, acked)})

	var wantEvents []outboxEntry
	for _, e := range src.events {
		if e.seq >= acked {
			wantEvents = append(wantEvents, e)
		}
	}
	slices.SortFunc(wantEvents, func(a, b outboxEntry) int { return int(a.seq) - int(b.seq) })
	if len(wantEvents) != 3 || len(src.events) != 4 { // b's, c's and f's; e's is acknowledged, a's forgotten
		t.Fatalf("test setup: events %v above %d: %v", src.events, acked, wantEvents)
	}
	srcMembers := partitionMembers(t, src.s, p)

	for _, tc := range []struct {
		name string
		log  []changelogRecord
	}{{"full log", log}, {"compacted", compact(log)}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "dst")
			dst := openTestStore(t, dir)
			defer func() { _ = dst.Close() }()
			// Junk state of p, and state of another partition.
			b := dst.NewBatch()
			must(t,
				b.PutOffer(p, testOffer("a", "sX", 9)), b.PutIndex(p, "sX", "a"),
				b.PutOffer(p, testOffer("zz", "sJ", 1)), b.PutIndex(p, "sJ", "zz"),
				b.PutMembership(p, "zz", testMembership(1, "f1", "f4")),
				b.DeleteOffer(p, "junk", 1, t0.Add(-time.Hour)),
				b.SetOffset("offers", p, 999),
				b.PutOffer(other, testOffer("q1", "s1", 1)), b.PutIndex(other, "s1", "q1"),
				b.PutMembership(other, "q1", testMembership(1, "f1")),
				b.DeleteOffer(other, "q2", 1, t2),
				b.SetOffset("offers", other, 55),
				b.SetCount(other, "f1", 1),
				b.SetCount(p, "f1", 1), b.SetCount(p, "f4", 1), // wiped, then recounted
				b.PutJob(&state.Job{SellerID: "s1", Partition: p}),
			)
			for range 3 {
				b.AddOutbox(p, &state.OutboxRecord{Topic: "events", Key: []byte("junk")})
			}
			b.AddOutbox(other, &state.OutboxRecord{Topic: "events", Key: []byte("q1")})
			must(t, b.Commit(true))
			_ = b.Close()
			untouched := dumpKeys(t, dst, func(k []byte) bool { return !partitionScoped(p)(k) })
			otherMembers := partitionMembers(t, dst, other)

			r, err := dst.NewRestore(p, "offers")
			must(t, err)
			if inc, err := dst.RestoreIncomplete(p); err != nil || !inc {
				t.Errorf("during restore: incomplete %v %v", inc, err)
			}
			var applied int64
			for _, rec := range tc.log {
				must(t, r.Apply(rec.key, rec.value))
				applied += int64(len(rec.value))
			}
			st, err := r.Finish()
			must(t, err)
			if inc, err := dst.RestoreIncomplete(p); err != nil || inc {
				t.Errorf("after restore: incomplete %v %v", inc, err)
			}
			if err := r.Apply(state.ChangelogAckedKey, nil); !errors.Is(err, state.ErrRestoreDone) {
				t.Errorf("Apply after Finish: %v", err)
			}
			r.Abort() // a no-op after Finish

			// Offers, tombstones, memberships, seller index: as in the source.
			want, got := dumpKeys(t, src.s, offerScoped(p)), dumpKeys(t, dst, offerScoped(p))
			if !maps.Equal(got, want) {
				t.Errorf("partition keys differ:\n got %q\nwant %q", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
			}
			for seller, ids := range map[string][]string{"s1": {"f"}, "s2": {"e"}, "s3": {"a"}, "sX": nil, "sJ": nil} {
				if got := sellerOffers(t, dst, p, seller); !slices.Equal(got, ids) {
					t.Errorf("offers of seller %s: %v, want %v", seller, got, ids)
				}
				b := dst.NewBatch()
				has, err := b.HasSellerOffers(p, seller)
				_ = b.Close()
				if err != nil || has != (len(ids) > 0) {
					t.Errorf("HasSellerOffers(%s) %v %v", seller, has, err)
				}
			}
			wantStats := state.RestoreStats{Offers: 3, Tombstones: 2, Memberships: 4, Events: 3,
				Offset: src.offset, HasOffset: true, Bytes: applied}
			gotStats := st
			gotStats.Counts = nil
			if !reflect.DeepEqual(gotStats, wantStats) {
				t.Errorf("stats %+v, want %+v", gotStats, wantStats)
			}

			// Other partitions, jobs, tables: untouched.
			if after := dumpKeys(t, dst, func(k []byte) bool { return !partitionScoped(p)(k) }); !maps.Equal(after, untouched) {
				t.Errorf("keys outside partition %d changed", p)
			}
			if jobs, err := dst.AllJobs(); err != nil || len(jobs) != 1 {
				t.Errorf("jobs %v %v", jobs, err)
			}

			// Counts: the other partition's members plus the source's.
			counts, err := dst.Counts(nil)
			must(t, err)
			for _, feed := range []string{"f1", "f2", "f3", "f4"} {
				if want := otherMembers[feed] + srcMembers[feed]; counts[feed] != want {
					t.Errorf("count of %s: %d, want %d", feed, counts[feed], want)
				}
				if st.Counts[feed] != srcMembers[feed] {
					t.Errorf("restored count of %s: %d, want %d", feed, st.Counts[feed], srcMembers[feed])
				}
			}

			// Offsets.
			offs, err := dst.Offsets("offers")
			must(t, err)
			if !maps.Equal(offs, map[int32]int64{p: src.offset, other: 55}) {
				t.Errorf("offsets %v", offs)
			}

			// Outbox: the unacknowledged last events at their sequences.
			if got := scanOutbox(t, dst, p); !slices.Equal(got, wantEvents) {
				t.Errorf("outbox %v, want %v", got, wantEvents)
			}
			wantNext := wantEvents[len(wantEvents)-1].seq + 1
			if next := dst.NextOutbox(p); next != wantNext {
				t.Errorf("next outbox %d, want %d", next, wantNext)
			}
			if depth := dst.OutboxDepth(); depth != 4 { // and the other partition's
				t.Errorf("outbox depth %d, want 4", depth)
			}
			if head := dst.OutboxHead(p); head != wantEvents[0].seq {
				t.Errorf("outbox head %d, want %d", head, wantEvents[0].seq)
			}
			must(t, dst.DeleteOutbox(p, wantEvents[0].seq, wantEvents[0].seq))
			if depth := dst.OutboxDepth(); depth != 3 {
				t.Errorf("outbox depth after a delete %d, want 3", depth)
			}
			b = dst.NewBatch()
			seq, _ := b.AddOutbox(p, &state.OutboxRecord{Topic: "events"})
			must(t, b.Commit(true))
			_ = b.Close()
			if seq != wantNext {
				t.Errorf("next record got seq %d, want %d", seq, wantNext)
			}

			// The tombstone index: p's junk entry (t0-1h) is gone, b and c
			// (t1) are indexed, the other partition's q2 (t2) stays.
			b = dst.NewBatch()
			n, err := b.SweepTombstones(t1.Add(time.Millisecond), 100)
			must(t, err, b.Commit(true))
			_ = b.Close()
			if n != 2 {
				t.Errorf("swept %d tombstones, want 2", n)
			}
			for _, k := range [][]byte{offerKeyOf(p, "b"), memKeyOf(p, "b"), offerKeyOf(p, "c")} {
				if v := storedValue(t, dst, k); v != nil {
					t.Errorf("%q not swept", k)
				}
			}
			if storedValue(t, dst, offerKeyOf(other, "q2")) == nil {
				t.Error("other partition's tombstone swept")
			}

			// The outbox sequence is durable.
			must(t, dst.Close())
			dst = openTestStore(t, dir)
			if next := dst.NextOutbox(p); next != wantNext+1 {
				t.Errorf("next outbox after reopen %d, want %d", next, wantNext+1)
			}
		})
	}
}

// TestRestoreApply: records apply in log order, a later record of a key
// replacing an earlier one and a nil value deleting; events below the
// acknowledged watermark are not put back.
func TestRestoreApply(t *testing.T) {
	const p = 4
	serde := records.NewSerde(nil)
	live := func(id, seller string, v int64) []byte {
		b, err := serde.MarshalOffer([]byte{1}, testOffer(id, seller, v))
		must(t, err)
		return b
	}
	mem := func(feeds ...string) []byte { return state.AppendMembership(nil, testMembership(1, feeds...)) }
	ev := func(key string) []byte {
		return state.AppendOutboxRecord(nil, &state.OutboxRecord{Topic: "events", Partition: -1, Key: []byte(key)})
	}
	o := func(id string, offerVal, memVal []byte, seq uint64, event []byte) changelogRecord {
		return changelogRecord{state.ChangelogOfferKey(nil, id), state.AppendChangelogOfferValue(nil, offerVal, memVal, seq, event)}
	}
	gone := func(id string) changelogRecord { return changelogRecord{state.ChangelogOfferKey(nil, id), nil} }
	c := func(next int64) changelogRecord {
		return changelogRecord{state.ChangelogOffsetKey, state.AppendChangelogOffset(nil, next)}
	}
	a := func(seq uint64) changelogRecord {
		return changelogRecord{state.ChangelogAckedKey, state.AppendChangelogAcked(nil, seq)}
	}
	tomb := state.AppendTombstoneValue(nil, 3, time.UnixMilli(1000))
	type want struct {
		offers   map[string][]byte // id → stored value
		mems     map[string][]byte
		sellers  map[string][]string
		outbox   []outboxEntry
		next     uint64
		offset   int64
		hasOff   bool
		counts   map[string]int64
		tombs    int64
		wantErrs error // from Finish
	}
	cases := []struct {
		name string
		log  []changelogRecord
		want want
	}{
		{"later replaces earlier", []changelogRecord{
			o("x", live("x", "s1", 1), mem("f1"), 3, ev("x1")),
			o("x", live("x", "s2", 2), mem("f2"), 4, ev("x2")),
		}, want{offers: map[string][]byte{"x": live("x", "s2", 2)}, mems: map[string][]byte{"x": mem("f2")},
			sellers: map[string][]string{"s1": nil, "s2": {"x"}}, outbox: []outboxEntry{{4, string(ev("x2"))}}, next: 5,
			counts: map[string]int64{"f1": 0, "f2": 1}}},
		{"nil deletes", []changelogRecord{
			o("x", live("x", "s1", 1), mem("f1"), 3, ev("x1")),
			o("y", tomb, mem("f1"), 0, nil),
			gone("x"),
		}, want{mems: map[string][]byte{"y": mem("f1")}, offers: map[string][]byte{"y": tomb},
			sellers: map[string][]string{"s1": nil}, counts: map[string]int64{"f1": 1}, tombs: 1}},
		{"deleted then back", []changelogRecord{
			o("x", live("x", "s1", 1), nil, 0, nil), gone("x"), o("x", live("x", "s1", 2), nil, 7, ev("x")),
		}, want{offers: map[string][]byte{"x": live("x", "s1", 2)}, sellers: map[string][]string{"s1": {"x"}},
			outbox: []outboxEntry{{7, string(ev("x"))}}, next: 8}},
		{"a record without event forgets it", []changelogRecord{
			o("x", live("x", "s1", 1), nil, 3, ev("x1")), o("x", live("x", "s1", 2), nil, 0, nil),
		}, want{offers: map[string][]byte{"x": live("x", "s1", 2)}, sellers: map[string][]string{"s1": {"x"}}}},
		{"watermark", []changelogRecord{
			a(2), o("x", nil, mem("f1"), 3, ev("x")), o("y", nil, mem("f1", "f2"), 5, ev("y")), o("z", nil, nil, 0, ev("z")), a(4),
		}, want{mems: map[string][]byte{"x": mem("f1"), "y": mem("f1", "f2"), "z": nil}, outbox: []outboxEntry{{5, string(ev("y"))}}, next: 6,
			counts: map[string]int64{"f1": 2, "f2": 1}}},
		{"watermark above events", []changelogRecord{o("x", nil, mem(), 3, ev("x")), a(10)},
			want{mems: map[string][]byte{"x": mem()}, next: 10}},
		{"offset replaced", []changelogRecord{c(5), c(9)}, want{offset: 9, hasOff: true}},
		{"offset deleted", []changelogRecord{c(5), {state.ChangelogOffsetKey, nil}}, want{}},
		{"two events at one sequence", []changelogRecord{o("x", nil, mem(), 3, ev("x")), o("y", nil, mem(), 3, ev("y"))},
			want{wantErrs: state.ErrChangelogCorrupt}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t)
			r, err := s.NewRestore(p, "offers")
			must(t, err)
			for _, rec := range tc.log {
				must(t, r.Apply(rec.key, rec.value))
			}
			st, err := r.Finish()
			if tc.want.wantErrs != nil {
				if !errors.Is(err, tc.want.wantErrs) {
					t.Fatalf("Finish: %v, want %v", err, tc.want.wantErrs)
				}
				r.Abort()
				if inc, _ := s.RestoreIncomplete(p); !inc {
					t.Error("a failed restore is not marked incomplete")
				}
				return
			}
			must(t, err)
			for id, v := range tc.want.offers {
				if got := storedValue(t, s, offerKeyOf(p, id)); !bytes.Equal(got, v) {
					t.Errorf("offer %s: %x, want %x", id, got, v)
				}
			}
			if got := dumpKeys(t, s, func(k []byte) bool { return k[0] == 'o' }); len(got) != len(tc.want.offers) {
				t.Errorf("%d offers, want %d", len(got), len(tc.want.offers))
			}
			nm := 0
			for id, v := range tc.want.mems {
				if got := storedValue(t, s, memKeyOf(p, id)); !bytes.Equal(got, v) {
					t.Errorf("membership %s: %x, want %x", id, got, v)
				}
				if v != nil {
					nm++
				}
			}
			if got := dumpKeys(t, s, func(k []byte) bool { return k[0] == 'm' }); len(got) != nm {
				t.Errorf("%d memberships, want %d", len(got), nm)
			}
			for seller, ids := range tc.want.sellers {
				if got := sellerOffers(t, s, p, seller); !slices.Equal(got, ids) {
					t.Errorf("offers of seller %s: %v, want %v", seller, got, ids)
				}
			}
			if got := scanOutbox(t, s, p); !slices.Equal(got, tc.want.outbox) {
				t.Errorf("outbox %v, want %v", got, tc.want.outbox)
			}
			if next := s.NextOutbox(p); next != tc.want.next {
				t.Errorf("next %d, want %d", next, tc.want.next)
			}
			offs, err := s.Offsets("offers")
			must(t, err)
			if off, ok := offs[p]; ok != tc.want.hasOff || off != tc.want.offset || st.HasOffset != ok || st.Offset != off {
				t.Errorf("offset %d %v (stats %d %v), want %d %v", off, ok, st.Offset, st.HasOffset, tc.want.offset, tc.want.hasOff)
			}
			counts, err := s.Counts(nil)
			must(t, err)
			for feed, n := range tc.want.counts {
				if counts[feed] != n {
					t.Errorf("count of %s: %d, want %d", feed, counts[feed], n)
				}
			}
			if st.Tombstones != tc.want.tombs || st.Events != int64(len(tc.want.outbox)) {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestRestoreApplyErrors(t *testing.T) {
	s := openStore(t)
	for name, rec := range map[string]changelogRecord{
		"empty key":       {nil, []byte{1}},
		"unknown kind":    {[]byte("q"), []byte{1}},
		"long offset key": {[]byte("cc"), state.AppendChangelogOffset(nil, 1)},
		"bad offset":      {state.ChangelogOffsetKey, []byte{0x80}},
		"bad acked":       {state.ChangelogAckedKey, []byte{1, 1}},
		"bad offer":       {state.ChangelogOfferKey(nil, "x"), []byte{1, 2}},
		"bad event":       {state.ChangelogOfferKey(nil, "x"), state.AppendChangelogOfferValue(nil, nil, nil, 1, []byte{9})},
	} {
		r, err := s.NewRestore(0, "offers")
		must(t, err)
		if err := r.Apply(rec.key, rec.value); !errors.Is(err, state.ErrChangelogCorrupt) {
			t.Errorf("%s: %v, want ErrChangelogCorrupt", name, err)
		}
		r.Abort()
	}
}

// TestRestoreAgainAfterCrash: a restore that did not finish leaves the
// partition marked, without counts; the next one counts it once.
func TestRestoreAgainAfterCrash(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	s := openTestStore(t, dir)
	b := s.NewBatch()
	must(t, b.PutMembership(0, "x", testMembership(1, "f1")), b.PutMembership(1, "y", testMembership(1, "f1")), b.SetCount(0, "f1", 1), b.SetCount(1, "f1", 1))
	must(t, b.Commit(true))
	_ = b.Close()
	log := []changelogRecord{{state.ChangelogOfferKey(nil, "x"), state.AppendChangelogOfferValue(nil, nil, state.AppendMembership(nil, testMembership(2, "f1")), 0, nil)}}

	r, err := s.NewRestore(0, "offers")
	must(t, err)
	must(t, r.Apply(log[0].key, log[0].value))
	r.Abort() // the process dies here
	must(t, s.Close())

	s = openTestStore(t, dir)
	defer s.Close()
	if inc, err := s.RestoreIncomplete(0); err != nil || !inc {
		t.Fatalf("incomplete %v %v", inc, err)
	}
	if counts, _ := s.Counts(nil); counts["f1"] != 1 {
		t.Fatalf("count during restore %d, want 1", counts["f1"])
	}
	r, err = s.NewRestore(0, "offers")
	must(t, err)
	must(t, r.Apply(log[0].key, log[0].value))
	st, err := r.Finish()
	must(t, err)
	if counts, _ := s.Counts(nil); counts["f1"] != 2 || st.Counts["f1"] != 1 {
		t.Errorf("count after restore %d (restored %d), want 2 (1)", counts["f1"], st.Counts["f1"])
	}
}
