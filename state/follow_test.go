package state_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/state"
)

// followLogs builds changelog records from their parts.
type followLogs struct {
	t     *testing.T
	serde *records.Serde
}

func (l followLogs) live(id, seller string, v int64) []byte {
	b, err := l.serde.MarshalOffer([]byte{1}, testOffer(id, seller, v))
	must(l.t, err)
	return b
}

func (followLogs) mem(seq int64, feeds ...string) []byte {
	return state.AppendMembership(nil, testMembership(seq, feeds...))
}

func (followLogs) tomb(v int64, atMs int64) []byte {
	return state.AppendTombstoneValue(nil, v, time.UnixMilli(atMs))
}

func (followLogs) ev(key string) []byte {
	return state.AppendOutboxRecord(nil, &state.OutboxRecord{Topic: "events", Partition: -1, Key: []byte(key), Value: []byte("v" + key)})
}

func (followLogs) o(id string, offerVal, memVal []byte, seq uint64, event []byte) changelogRecord {
	return changelogRecord{state.ChangelogOfferKey(nil, id), state.AppendChangelogOfferValue(nil, offerVal, memVal, seq, event)}
}

func (followLogs) gone(id string) changelogRecord {
	return changelogRecord{state.ChangelogOfferKey(nil, id), nil}
}

func (l followLogs) e(seq uint64, key string) changelogRecord {
	return changelogRecord{state.ChangelogEventKey(nil, seq), l.ev(key)}
}

func (followLogs) eGone(seq uint64) changelogRecord {
	return changelogRecord{state.ChangelogEventKey(nil, seq), nil}
}

func (followLogs) c(next int64) changelogRecord {
	return changelogRecord{state.ChangelogOffsetKey, state.AppendChangelogOffset(nil, next)}
}

func (followLogs) a(seq uint64) changelogRecord {
	return changelogRecord{state.ChangelogAckedKey, state.AppendChangelogAcked(nil, seq)}
}

// randomLog is a changelog as the processor and its relay write it, with
// the odd record a writer of an older version wrote and the odd
// watermark that goes back: batches of events
// ("e") then offer records (live, deleted, gone; with or without a
// membership; now and then carrying an event themselves), each ended by
// an offset record; between them the relay's deletions of acknowledged
// events and its watermark; last, now and then, an unfinished batch.
func randomLog(t *testing.T, seed uint64, batches int) []changelogRecord {
	l := followLogs{t, records.NewSerde(nil)}
	rng := rand.New(rand.NewPCG(seed, 3))
	ids := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	sellers := []string{"s1", "s2", "s3"}
	feedIDs := []string{"f1", "f2", "f3", "f4"}
	var log []changelogRecord
	var seq, acked uint64
	var emitted []uint64
	offset := int64(0)
	version := int64(0)
	batch := func(last bool) {
		if rng.IntN(2) == 0 && seq > acked {
			w := acked + uint64(rng.IntN(int(seq-acked)+1))
			for _, s := range emitted {
				if s < w && rng.IntN(3) > 0 {
					log = append(log, l.eGone(s))
				}
			}
			emitted = slices.DeleteFunc(emitted, func(s uint64) bool { return s < w })
			if w > acked || rng.IntN(4) == 0 {
				log = append(log, l.a(w))
				acked = w
			}
		}
		if rng.IntN(12) == 0 && acked > 0 {
			// A later writer's lower watermark (after an unfinished
			// round that carried the higher one was superseded).
			acked -= uint64(rng.IntN(int(min(acked, 4)))) + 1
			log = append(log, l.a(acked))
		}
		for range 1 + rng.IntN(4) {
			id := ids[rng.IntN(len(ids))]
			for range rng.IntN(3) {
				log = append(log, l.e(seq, fmt.Sprintf("%s@%d", id, seq)))
				emitted = append(emitted, seq)
				seq++
			}
			version++
			var offerVal, memVal, event []byte
			var evSeq uint64
			switch k := rng.IntN(10); {
			case k == 0:
				log = append(log, l.gone(id))
				continue
			case k < 3:
				offerVal = l.tomb(version, 1_700_000_000_000+int64(rng.IntN(5))*1000)
			default:
				offerVal = l.live(id, sellers[rng.IntN(len(sellers))], version)
			}
			if k := rng.IntN(4); k > 0 {
				var fs []string
				for _, f := range feedIDs {
					if rng.IntN(2) == 0 {
						fs = append(fs, f)
					}
				}
				memVal = l.mem(version, fs...)
			}
			if rng.IntN(8) == 0 { // an older writer's event in the offer record
				event, evSeq = l.ev(fmt.Sprintf("%s@%d", id, seq)), seq
				seq++
			}
			log = append(log, l.o(id, offerVal, memVal, evSeq, event))
		}
		seq += uint64(rng.IntN(3)) // rejects, and the changelog records' own sequences
		if last {
			return
		}
		offset += 1 + int64(rng.IntN(5))
		log = append(log, l.c(offset))
	}
	for range batches {
		batch(false)
	}
	if rng.IntN(2) == 0 {
		batch(true)
	}
	return log
}

// followedKeys: every key of p a restore writes, but the 'z' singletons.
func followedKeys(p int32) func(k []byte) bool {
	scoped := partitionScoped(p)
	return func(k []byte) bool { return k[0] != 'z' && scoped(k) }
}

// restoreOf restores partition p of s (a new store when nil) from log.
func restoreOf(t *testing.T, s *state.Store, p int32, log []changelogRecord) *state.Store {
	t.Helper()
	if s == nil {
		s = openStore(t)
	}
	r, err := s.NewRestore(p, "offers")
	must(t, err)
	for _, rec := range log {
		must(t, r.Apply(rec.key, rec.value))
	}
	_, err = r.Finish()
	must(t, err)
	return s
}

// checkFollowed fails the test unless p's state in got is the state a
// restore of log leaves, key by key (the outbox sequence may be higher:
// it never goes back). The restore is made in want (a new store when
// nil).
func checkFollowed(t *testing.T, where string, got, want *state.Store, p int32, log []changelogRecord) {
	t.Helper()
	want = restoreOf(t, want, p, log)
	g, w := dumpKeys(t, got, followedKeys(p)), dumpKeys(t, want, followedKeys(p))
	if !maps.Equal(g, w) {
		var extra, missing, differ []string
		for k, v := range g {
			if wv, ok := w[k]; !ok {
				extra = append(extra, fmt.Sprintf("%q", k))
			} else if wv != v {
				differ = append(differ, fmt.Sprintf("%q", k))
			}
		}
		for k := range w {
			if _, ok := g[k]; !ok {
				missing = append(missing, fmt.Sprintf("%q", k))
			}
		}
		t.Fatalf("%s: partition %d differs from a restore of %d records:\n extra %v\n missing %v\n differ %v",
			where, p, len(log), extra, missing, differ)
	}
	gn, wn := got.NextOutbox(p), want.NextOutbox(p)
	if gn < wn {
		t.Fatalf("%s: next outbox sequence %d, a restore's %d", where, gn, wn)
	}
	// The depth counts the records put back, and the span from the last
	// of them to a higher next sequence (as after a restore into a store
	// whose next sequence was higher).
	if gd, wd := got.OutboxDepthOf(func(x int32) bool { return x == p }), want.OutboxDepth(); gd < wd || gn == wn && gd != wd {
		t.Fatalf("%s: outbox depth %d, a restore's %d (next %d, a restore's %d)", where, gd, wd, gn, wn)
	}
	if len(scanOutbox(t, want, p)) > 0 {
		if gh, wh := got.OutboxHead(p), want.OutboxHead(p); gh != wh {
			t.Fatalf("%s: outbox head %d, a restore's %d", where, gh, wh)
		}
	}
	gc, err := got.PartitionCounts(p)
	must(t, err)
	wc, err := want.PartitionCounts(p)
	must(t, err)
	if !maps.Equal(gc, wc) {
		t.Fatalf("%s: counts %v, a restore's %v", where, gc, wc)
	}
	if inc, err := got.RestoreIncomplete(p); err != nil || inc {
		t.Fatalf("%s: restore incomplete %v %v", where, inc, err)
	}
}

// batchEnds returns the index of every offset record of log.
func batchEnds(log []changelogRecord) []int {
	var out []int
	for i, r := range log {
		if bytes.Equal(r.key, state.ChangelogOffsetKey) {
			out = append(out, i)
		}
	}
	return out
}

// hasOfferEvents reports whether an offer record of log carries an event.
func hasOfferEvents(t *testing.T, log []changelogRecord) bool {
	for _, r := range log {
		if r.key[0] == state.ChangelogKindOffer && r.value != nil {
			_, _, _, ev, err := state.DecodeChangelogOffer(r.value)
			must(t, err)
			if ev != nil {
				return true
			}
		}
	}
	return false
}

// mergeBatches puts the records of each batch of b (but its offset
// record) before the offset record of the same batch of a: a log of both
// writers' records, a's offsets. Batches of b past a's end are dropped.
func mergeBatches(a, b []changelogRecord) []changelogRecord {
	var bodies [][]changelogRecord
	var cur []changelogRecord
	for _, r := range b {
		if bytes.Equal(r.key, state.ChangelogOffsetKey) {
			bodies, cur = append(bodies, cur), nil
			continue
		}
		cur = append(cur, r)
	}
	out := make([]changelogRecord, 0, len(a)+len(b))
	batch := 0
	for _, r := range a {
		if bytes.Equal(r.key, state.ChangelogOffsetKey) && batch < len(bodies) {
			out = append(out, bodies[batch]...)
			batch++
		}
		out = append(out, r)
	}
	return out
}

// followMode is how a test hands the changelog to a Follower.
type followMode struct {
	name string
	// maxPending, when set, makes batches larger than it apply in parts.
	maxPending int
	// resume closes the follower after every batch and resumes it.
	resume bool
	// again hands the last records of every batch over a second time.
	again bool
	// junk fills p (and another partition) with other state first.
	junk bool
	// reopen closes and reopens the store before every resume.
	reopen bool
}

var followModes = []followMode{
	{name: "whole batches"},
	{name: "applied in parts", maxPending: 1},
	{name: "resumed after every batch", resume: true},
	{name: "resumed after a reopen", resume: true, reopen: true},
	{name: "records delivered twice", again: true},
	{name: "over other state", junk: true, maxPending: 200},
}

// TestFollowMatchesRestore: after every batch a Follower applies, the
// partition's keys are those a restore of the changelog up to that batch
// writes, whatever the batches' sizes, resumes and re-deliveries; an
// unfinished batch at the end is not applied.
func TestFollowMatchesRestore(t *testing.T) {
	l := followLogs{t, records.NewSerde(nil)}
	const p, other int32 = 3, 1
	cases := []struct {
		name string
		log  []changelogRecord
	}{
		{"offers, events, watermark", []changelogRecord{
			l.e(0, "a0"), l.e(1, "b1"),
			l.o("a", l.live("a", "s1", 1), l.mem(1, "f1", "f2"), 0, nil),
			l.o("b", l.live("b", "s1", 1), l.mem(1, "f1"), 0, nil),
			l.o("c", l.live("c", "s2", 1), nil, 0, nil),
			l.c(3),
			l.eGone(0), l.a(2),
			l.e(5, "a5"),
			l.o("a", l.live("a", "s3", 2), l.mem(2, "f1"), 0, nil), // a moves to seller s3
			l.c(4),
			l.eGone(1), l.eGone(5), l.a(9),
			l.o("b", l.tomb(2, 1_700_000_000_000), l.mem(2), 0, nil), // b deleted, keeps a membership
			l.gone("c"),
			l.e(10, "c10"),
			l.c(9),
		}},
		{"deleted, then back", []changelogRecord{
			l.o("x", l.live("x", "s1", 1), l.mem(1, "f1"), 0, nil), l.c(1),
			l.o("x", l.tomb(2, 1_700_000_001_000), nil, 0, nil), l.c(2),
			l.gone("x"), l.c(3),
			l.o("x", l.live("x", "s2", 3), l.mem(3, "f2"), 0, nil), l.c(4),
			l.o("x", l.tomb(4, 1_700_000_002_000), l.mem(4, "f2"), 0, nil), l.c(5),
		}},
		{"events in offer records", []changelogRecord{
			l.o("x", l.live("x", "s1", 1), l.mem(1, "f1"), 3, l.ev("x3")),
			l.o("y", nil, l.mem(1, "f1", "f2"), 5, l.ev("y5")),
			l.e(5, "e5"), // an offer's event comes first
			l.e(6, "e6"),
			l.c(1),
			l.o("x", l.live("x", "s1", 2), l.mem(2, "f1"), 0, nil), // forgets x's event
			l.a(4), l.c(2),
			l.o("y", nil, nil, 0, nil), l.c(3), // y's event is forgotten, e5 shows
			l.a(6), l.c(4),
		}},
		{"watermark goes back", []changelogRecord{
			l.e(3, "e3"), l.e(4, "e4"), l.o("x", nil, l.mem(1, "f1"), 5, l.ev("x5")), l.c(1),
			l.a(6), l.eGone(3), l.c(2), // all acknowledged, e4's deletion lost
			l.a(4), l.c(3), // a later writer's lower watermark: e4 is back
			l.a(7), l.c(4),
		}},
		{"offset records", []changelogRecord{
			l.c(5), l.o("x", nil, l.mem(1), 0, nil), {state.ChangelogOffsetKey, nil}, l.c(9), l.c(11),
		}},
		{"unfinished batch at the end", []changelogRecord{
			l.o("x", l.live("x", "s1", 1), l.mem(1, "f1"), 0, nil), l.e(0, "x0"), l.c(1),
			l.e(1, "x1"), l.o("x", l.live("x", "s2", 2), l.mem(2, "f2"), 0, nil), l.a(1),
		}},
		{"empty", nil},
	}
	for i := range 4 {
		seed := uint64(i + 1)
		cases = append(cases, struct {
			name string
			log  []changelogRecord
		}{fmt.Sprintf("random %d", seed), randomLog(t, seed, 30)})
	}
	for i := range 2 {
		seed := uint64(i + 1)
		// A group task's records (TestGroupChangelogProperty) among
		// an offer task's.
		groups := sourceGroupLog(t, seed, 20, p).log
		cases = append(cases, struct {
			name string
			log  []changelogRecord
		}{fmt.Sprintf("offers and groups %d", seed), mergeBatches(randomLog(t, seed+4, 20), groups)})
	}
	for _, tc := range cases {
		for _, mode := range followModes {
			t.Run(tc.name+"/"+mode.name, func(t *testing.T) { followLog(t, p, other, tc.log, mode) })
		}
	}
}

func followLog(t *testing.T, p, other int32, log []changelogRecord, mode followMode) {
	dir := filepath.Join(t.TempDir(), "state")
	s := openTestStore(t, dir)
	defer func() { _ = s.Close() }()
	restored := openStore(t) // restores of p, to compare with
	var untouched map[string]string
	if mode.junk {
		b := s.NewBatch()
		must(t,
			b.PutOffer(p, testOffer("a", "sX", 9)), b.PutIndex(p, "sX", "a"),
			b.PutOffer(p, testOffer("zz", "sJ", 1)), b.PutIndex(p, "sJ", "zz"),
			b.PutMembership(p, "zz", testMembership(1, "f1", "f4")),
			b.DeleteOffer(p, "junk", 1, time.UnixMilli(1_600_000_000_000)),
			b.SetOffset("offers", p, 999),
			b.SetCount(p, "f1", 7),
			b.PutOffer(other, testOffer("q1", "s1", 1)), b.PutIndex(other, "s1", "q1"),
			b.PutMembership(other, "q1", testMembership(1, "f1")),
			b.DeleteOffer(other, "q2", 1, time.UnixMilli(1_700_000_000_000)),
			b.SetOffset("offers", other, 55),
			b.SetCount(other, "f1", 1),
		)
		for range 30 {
			b.AddOutbox(p, &state.OutboxRecord{Topic: "events", Key: []byte("junk")})
		}
		b.AddOutbox(other, &state.OutboxRecord{Topic: "events", Key: []byte("q1")})
		must(t, b.Commit(true))
		_ = b.Close()
		putGroupJunk(t, s, p, other)
		must(t, s.SetChangelogWritten(p, 12345))
		untouched = dumpKeys(t, s, func(k []byte) bool { return !partitionScoped(p)(k) && !bytes.HasPrefix(k, []byte("zq")) })
	}

	f, err := s.FollowFromStart(p, "offers")
	must(t, err)
	f.MaxPending = mode.maxPending
	if _, ok, err := s.ChangelogWritten(p); err != nil || ok {
		t.Fatalf("following from the start keeps the changelog offset written: %v %v", ok, err)
	}
	legacy := hasOfferEvents(t, log)
	ends := batchEnds(log)
	resumedAt := -1
	applied := 0
	for i := 0; i < len(log); i++ {
		rec := log[i]
		n, err := f.Add(int64(i), rec.key, rec.value)
		if errors.Is(err, state.ErrFollowRestart) && mode.resume {
			// A resumed follower cannot say what a watermark going
			// back brings back: start again.
			f, err = s.FollowFromStart(p, "offers")
			must(t, err)
			i, applied = -1, 0
			continue
		}
		must(t, err)
		must(t, f.Flush())
		applied += n
		if !slices.Contains(ends, i) {
			if n != 0 {
				t.Fatalf("record %d is no batch end, applied %d", i, n)
			}
			continue
		}
		if next, exact := f.Position(); next != int64(i+1) || !exact {
			t.Fatalf("after the batch ending at %d: position %d exact %v", i, next, exact)
		}
		if applied != i+1 {
			t.Fatalf("after the batch ending at %d: applied %d records in all", i, applied)
		}
		checkFollowed(t, fmt.Sprintf("after record %d", i), s, restored, p, log[:i+1])
		pos, ok, err := s.FollowPosition(p)
		must(t, err)
		if !ok && !legacy || ok && pos.Next != int64(i+1) {
			t.Fatalf("after record %d: follow position %+v %v (offer events: %v)", i, pos, ok, legacy)
		}
		if mode.again {
			for j := max(0, i-2); j <= i; j++ {
				if n, err := f.Add(int64(j), log[j].key, log[j].value); err != nil || n != 0 {
					t.Fatalf("record %d again: %d %v", j, n, err)
				}
			}
		}
		if mode.resume && i > resumedAt {
			resumedAt = i
			f.Close()
			if mode.reopen {
				must(t, s.Close())
				s = openTestStore(t, dir)
			}
			f, err = s.ResumeFollow(p, "offers")
			must(t, err)
			if f == nil && legacy {
				// Offers' events above the watermark are not kept where
				// a resume finds them: start again.
				f, err = s.FollowFromStart(p, "offers")
				must(t, err)
				i, applied = -1, 0
				continue
			}
			if f == nil || f.Next() != int64(i+1) {
				t.Fatalf("after record %d: resumed %v", i, f)
			}
			checkFollowed(t, fmt.Sprintf("resumed after record %d", i), s, restored, p, log[:i+1])
		}
	}
	last := -1
	if len(ends) > 0 {
		last = ends[len(ends)-1]
	}
	next, exact := f.Position()
	if next != int64(last+1) || exact != (last >= 0 && last == len(log)-1) {
		t.Fatalf("at the end: position %d exact %v (last batch end %d of %d records)", next, exact, last, len(log))
	}
	f.Close()
	// An unfinished batch held in memory is dropped; one applied in
	// parts leaves p marked (a restore must finish it); and so does a
	// follower that never applied a batch end.
	tail := len(log) - 1 - last
	inc, err := s.RestoreIncomplete(p)
	must(t, err)
	switch {
	case last < 0 && !inc:
		t.Fatal("at the end: a follower that applied no batch end left the partition as if whole")
	case last >= 0 && inc && (tail == 0 || mode.maxPending == 0):
		t.Fatalf("at the end: partition marked (unfinished records %d)", tail)
	case !inc:
		checkFollowed(t, "at the end", s, restored, p, log[:last+1])
	}
	if mode.junk {
		after := dumpKeys(t, s, func(k []byte) bool { return !partitionScoped(p)(k) && !bytes.HasPrefix(k, []byte("zq")) })
		if !maps.Equal(after, untouched) {
			t.Errorf("keys outside partition %d changed", p)
		}
	}
}

// TestFollowInParts: a batch larger than MaxPending is applied in parts,
// with the partition marked as being restored (and no follow position)
// until its end; a follower closed in between leaves it marked.
func TestFollowInParts(t *testing.T) {
	l := followLogs{t, records.NewSerde(nil)}
	const p = 2
	s := openStore(t)
	f, err := s.FollowFromStart(p, "offers")
	must(t, err)
	log := []changelogRecord{l.o("x", l.live("x", "s1", 1), l.mem(1, "f1"), 0, nil), l.c(1)}
	for i, r := range log {
		_, err := f.Add(int64(i), r.key, r.value)
		must(t, err)
	}
	if inc, _ := s.RestoreIncomplete(p); inc {
		t.Fatal("marked after a whole batch")
	}
	f.MaxPending = 100
	for i := range 20 {
		id := fmt.Sprintf("y%02d", i)
		r := l.o(id, l.live(id, "s2", 1), l.mem(1, "f2"), 0, nil)
		log = append(log, r)
		_, err := f.Add(int64(len(log)-1), r.key, r.value)
		must(t, err)
	}
	must(t, f.Flush())
	if inc, _ := s.RestoreIncomplete(p); !inc {
		t.Fatal("a batch applied in parts does not mark the partition")
	}
	if _, ok, _ := s.FollowPosition(p); ok {
		t.Fatal("a follow position while a batch is applied in parts")
	}
	if next, exact := f.Position(); next != 2 || exact {
		t.Fatalf("position %d exact %v", next, exact)
	}
	// Closed here: the partition stays marked and cannot be resumed.
	f.Close()
	if inc, _ := s.RestoreIncomplete(p); !inc {
		t.Fatal("closing in the middle of a batch clears the mark")
	}
	if f2, err := s.ResumeFollow(p, "offers"); err != nil || f2 != nil {
		t.Fatalf("resumed in the middle of a batch: %v %v", f2, err)
	}
	// From the start again, to the end of the batch.
	log = append(log, l.c(2))
	f, err = s.FollowFromStart(p, "offers")
	must(t, err)
	f.MaxPending = 100
	for i, r := range log {
		_, err := f.Add(int64(i), r.key, r.value)
		must(t, err)
	}
	checkFollowed(t, "after the large batch", s, nil, p, log)
}

// TestFollowErrors: a record that does not decode, and a watermark that
// goes back, fail the follower; so do two events at one sequence.
func TestFollowErrors(t *testing.T) {
	l := followLogs{t, records.NewSerde(nil)}
	cases := []struct {
		name string
		log  []changelogRecord
	}{
		{"unknown key", []changelogRecord{{[]byte("?x"), []byte("v")}, l.c(1)}},
		{"bad offset", []changelogRecord{{state.ChangelogOffsetKey, []byte{0x80}}}},
		{"bad offer", []changelogRecord{{state.ChangelogOfferKey(nil, "x"), []byte{9}}, l.c(1)}},
		{"two events at one sequence", []changelogRecord{
			l.o("x", nil, l.mem(1), 3, l.ev("x")), l.o("y", nil, l.mem(1), 3, l.ev("y")), l.c(1)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t)
			f, err := s.FollowFromStart(1, "offers")
			must(t, err)
			var last error
			for i, r := range tc.log {
				if _, last = f.Add(int64(i), r.key, r.value); last != nil {
					break
				}
			}
			if !errors.Is(last, state.ErrChangelogCorrupt) {
				t.Fatalf("error %v, want ErrChangelogCorrupt", last)
			}
			if _, err := f.Add(100, state.ChangelogOffsetKey, nil); !errors.Is(err, state.ErrRestoreDone) {
				t.Fatalf("Add after a failure: %v", err)
			}
		})
	}
}

// TestDropFollow: a dropped follow position is gone; the state stays.
func TestDropFollow(t *testing.T) {
	l := followLogs{t, records.NewSerde(nil)}
	s := openStore(t)
	f, err := s.FollowFromStart(4, "offers")
	must(t, err)
	log := []changelogRecord{l.o("x", l.live("x", "s1", 1), l.mem(1, "f1"), 0, nil), l.c(1)}
	for i, r := range log {
		_, err := f.Add(int64(i), r.key, r.value)
		must(t, err)
	}
	f.Close()
	pos, ok, err := s.FollowPosition(4)
	if err != nil || !ok || pos.Next != 2 || time.Since(pos.At) > time.Minute {
		t.Fatalf("follow position %+v %v %v", pos, ok, err)
	}
	must(t, s.DropFollow(4, 5))
	if _, ok, _ := s.FollowPosition(4); ok {
		t.Fatal("follow position kept")
	}
	checkFollowed(t, "dropped", s, nil, 4, log)
}
