package state_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/feedmill/feedmill/state"
)

// groupTopics are the extra input topics the tests give restores and
// followers: their offsets travel in the "c" records.
var groupTopics = []string{"group-candidates", "group-decisions"}

// groupScoped: the candidate, place and winner keys of group partition p.
func groupScoped(p int32) func(k []byte) bool {
	pb := partitionBytes(p)
	return func(k []byte) bool {
		return len(k) >= 5 && (k[0] == 'g' || k[0] == 'h' || k[0] == 'w') && bytes.Equal(k[1:5], pb)
	}
}

// storedOffsets returns the stored next offset of partition p of each
// topic, -1 where none is stored.
func storedOffsets(t *testing.T, s *state.Store, p int32, topics []string) []int64 {
	t.Helper()
	b := s.NewBatch()
	defer b.Close()
	out := make([]int64, len(topics))
	for i, topic := range topics {
		next, ok, err := b.Offset(topic, p)
		must(t, err)
		out[i] = -1
		if ok {
			if next < 0 {
				t.Fatalf("offset %d stored for %s/%d: a negative offset means none", next, topic, p)
			}
			out[i] = next
		}
	}
	return out
}

// wantExtra is what the "c" value v leaves stored for the extra topics:
// its extra offsets, -1 where it has none or a negative one.
func wantExtra(t *testing.T, v []byte, topics []string) []int64 {
	t.Helper()
	out := make([]int64, len(topics))
	for i := range out {
		out[i] = -1
	}
	if len(v) == 0 {
		return out
	}
	_, extra, err := state.DecodeChangelogOffsets(v)
	must(t, err)
	for i := range out {
		if i < len(extra) && extra[i] >= 0 {
			out[i] = extra[i]
		}
	}
	return out
}

// groupLog is a changelog a source store wrote while applying random
// candidacies to group partition p, one batch per step.
type groupLog struct {
	s   *state.Store // the source, after the last batch
	log []changelogRecord
	// ends[i] is the index of the offset record ending batch i; dumps[i]
	// the source's keys of group partition p after it committed.
	ends  []int
	dumps []map[string]string
}

func (gl *groupLog) final() map[string]string { return gl.dumps[len(gl.dumps)-1] }

// sourceGroupLog plays the group task of partition p on a store: each
// batch applies a few candidacies (moves, removals, value changes with
// ties, late and duplicate records) and now and then forgets a removed
// place or an empty group's winner, then stages the changelog records of
// every place and winner it touched (as the batch sees them) and an
// offset record with extra offsets (some negative, some missing, some
// beyond the extra topics), and commits.
func sourceGroupLog(t *testing.T, seed uint64, batches int, p int32) *groupLog {
	t.Helper()
	s := openStore(t)
	rng := rand.New(rand.NewPCG(seed, 11))
	feeds := []string{"cheapest", "newest"}
	keys := []string{"k1", "k2", ""}
	long := strings.Repeat("L", 70_000) // a key in the long length form, now and then
	offers := []string{"o1", "o2", "o3", "o4", "o5", "o6"}
	seqs := map[string]uint64{}
	type placeRef struct{ feed, key, offer string }
	type groupRef struct{ feed, key string }
	var everPlaced []placeRef
	gl := &groupLog{s: s}
	offset := int64(100)
	for range batches {
		b := s.NewBatch()
		var places []placeRef
		var groups []groupRef
		touch := func(pl placeRef) {
			if !slices.Contains(places, pl) {
				places = append(places, pl)
			}
			if g := (groupRef{pl.feed, pl.key}); !slices.Contains(groups, g) {
				groups = append(groups, g)
			}
		}
		for range 1 + rng.IntN(6) {
			switch k := rng.IntN(10); {
			case k == 0 && len(everPlaced) > 0:
				pl := everPlaced[rng.IntN(len(everPlaced))]
				ok, err := b.ForgetGroupPlace(p, pl.feed, pl.key, pl.offer)
				must(t, err)
				if ok {
					places = append(places, pl) // a deletion to carry
				}
			case k == 1 && len(everPlaced) > 0:
				// The group empties, and its winner is forgotten.
				g := everPlaced[rng.IntN(len(everPlaced))]
				for _, pl := range everPlaced {
					if pl.feed == g.feed && pl.key == g.key {
						seqs[pl.offer]++
						_, err := b.SetCandidacy(p, pl.feed, pl.key, pl.offer, 0, seqs[pl.offer], 0, false)
						must(t, err)
						touch(pl)
					}
				}
				_, err := b.ForgetGroupWinner(p, g.feed, g.key) // touched: carried
				must(t, err)
			default:
				pl := placeRef{feeds[rng.IntN(len(feeds))], keys[rng.IntN(len(keys))], offers[rng.IntN(len(offers))]}
				if rng.IntN(16) == 0 {
					pl.key = long
				}
				seq := seqs[pl.offer] + 1
				if rng.IntN(8) == 0 && seqs[pl.offer] > 0 {
					seq = seqs[pl.offer] - uint64(rng.IntN(2)) // late or duplicate
				}
				seqs[pl.offer] = max(seqs[pl.offer], seq)
				order := state.OrderFloat(float64(rng.IntN(4)), pl.feed == "newest")
				_, err := b.SetCandidacy(p, pl.feed, pl.key, pl.offer, int32(rng.IntN(8)), seq, order, rng.IntN(4) != 0)
				must(t, err)
				touch(pl)
				if !slices.Contains(everPlaced, pl) {
					everPlaced = append(everPlaced, pl)
				}
			}
		}
		for _, pl := range places {
			v, ok, err := b.AppendChangelogPlace([]byte{}, p, pl.feed, pl.key, pl.offer)
			must(t, err)
			if !ok {
				v = nil
			}
			gl.log = append(gl.log, changelogRecord{state.ChangelogPlaceKey(nil, pl.feed, pl.key, pl.offer), v})
		}
		for _, g := range groups {
			v, ok, err := b.AppendChangelogWinner(nil, p, g.feed, g.key)
			must(t, err)
			if !ok {
				v = nil
			}
			gl.log = append(gl.log, changelogRecord{state.ChangelogWinnerKey(nil, g.feed, g.key), v})
		}
		offset += 1 + int64(rng.IntN(3))
		extra := make([]int64, rng.IntN(len(groupTopics)+2)) // none (an old record), fewer, all, more
		for i := range extra {
			extra[i] = offset * int64(10+i)
			if rng.IntN(5) == 0 {
				extra[i] = -1
			}
		}
		gl.log = append(gl.log, changelogRecord{state.ChangelogOffsetKey, state.AppendChangelogOffset(nil, offset, extra...)})
		gl.ends = append(gl.ends, len(gl.log)-1)
		must(t, b.Commit(false))
		_ = b.Close()
		gl.dumps = append(gl.dumps, dumpKeys(t, s, groupScoped(p)))
	}
	for _, kind := range []byte{state.ChangelogKindPlace, state.ChangelogKindWinner} {
		deletes := slices.ContainsFunc(gl.log, func(r changelogRecord) bool { return r.key[0] == kind && r.value == nil })
		if !deletes && batches >= 40 {
			t.Fatalf("seed %d: the log deletes no %c record", seed, kind)
		}
	}
	if !slices.ContainsFunc(gl.log, func(r changelogRecord) bool { return len(r.key) > 70_000 }) && batches >= 40 {
		t.Fatalf("seed %d: no key in the long form", seed)
	}
	return gl
}

// putGroupJunk gives p (and other) group state and extra offsets that a
// restore or a follower from the start must replace.
func putGroupJunk(t *testing.T, s *state.Store, p, other int32) {
	t.Helper()
	b := s.NewBatch()
	defer b.Close()
	for _, g := range []int32{p, other} {
		for i, id := range []string{"o1", "zz", "junk"} {
			_, err := b.SetCandidacy(g, "cheapest", "k1", id, g, 99, state.OrderFloat(float64(i), false), i != 2)
			must(t, err)
			_, err = b.SetCandidacy(g, "stale", "kj", id, g, 1, state.OrderFloat(1, true), true)
			must(t, err)
		}
		for _, topic := range groupTopics {
			must(t, b.SetOffset(topic, g, 777))
		}
	}
	must(t, b.Commit(true))
}

// diffKeys describes how two key dumps differ.
func diffKeys(got, want map[string]string) string {
	var extra, missing, differ []string
	for k, v := range got {
		if wv, ok := want[k]; !ok {
			extra = append(extra, fmt.Sprintf("%.40q", k))
		} else if wv != v {
			differ = append(differ, fmt.Sprintf("%.40q", k))
		}
	}
	for k := range want {
		if _, ok := got[k]; !ok {
			missing = append(missing, fmt.Sprintf("%.40q", k))
		}
	}
	return fmt.Sprintf("extra %v\n missing %v\n differ %v", extra, missing, differ)
}

// countGroupKeys counts the places, the live ones (candidate keys) and
// the winners of a dump.
func countGroupKeys(dump map[string]string) (places, candidates, winners int64) {
	for k := range dump {
		switch k[0] {
		case 'h':
			places++
		case 'g':
			candidates++
		case 'w':
			winners++
		}
	}
	return
}

// TestGroupChangelogProperty: the changelog a group task writes (the
// places and winners each batch touched, as the batch saw them, and an
// offset record) restores group partition p byte for byte (candidates,
// places, winners) with the extra offsets of the last offset record,
// from the full log and from its compaction; a Follower fed the same log
// holds the source's group state after every batch, whole, applied in
// parts or resumed after every batch, and the batch's extra offsets.
// Other partitions are left alone.
func TestGroupChangelogProperty(t *testing.T) {
	const p, other int32 = 3, 1
	for seed := range uint64(6) {
		gl := sourceGroupLog(t, seed, 40, p)
		for _, tc := range []struct {
			name string
			log  []changelogRecord
		}{{"full", gl.log}, {"compacted", compact(gl.log)}} {
			t.Run(fmt.Sprintf("seed %d/%s/restore", seed, tc.name), func(t *testing.T) {
				dst := openStore(t)
				putGroupJunk(t, dst, p, other)
				outside := func(k []byte) bool { return !partitionScoped(p)(k) && !groupTopicOffset(p)(k) }
				untouched := dumpKeys(t, dst, outside)
				r, err := dst.NewRestore(p, "offers", groupTopics...)
				must(t, err)
				for _, rec := range tc.log {
					must(t, r.Apply(rec.key, rec.value))
				}
				st, err := r.Finish()
				must(t, err)
				if got := dumpKeys(t, dst, groupScoped(p)); !maps.Equal(got, gl.final()) {
					t.Fatalf("restored group state differs from the source's:\n %s", diffKeys(got, gl.final()))
				}
				last := tc.log[len(tc.log)-1].value
				want := wantExtra(t, last, groupTopics)
				if got := storedOffsets(t, dst, p, groupTopics); !slices.Equal(got, want) || !slices.Equal(st.ExtraOffsets, want) {
					t.Fatalf("extra offsets stored %v, stats %v, want %v", got, st.ExtraOffsets, want)
				}
				if next, _ := state.DecodeChangelogOffset(last); !st.HasOffset || st.Offset != next {
					t.Fatalf("offset %d %v, want %d", st.Offset, st.HasOffset, next)
				}
				if pl, c, w := countGroupKeys(gl.final()); st.Places != pl || st.Candidates != c || st.Winners != w {
					t.Fatalf("stats places %d candidates %d winners %d, want %d %d %d", st.Places, st.Candidates, st.Winners, pl, c, w)
				}
				if after := dumpKeys(t, dst, outside); !maps.Equal(after, untouched) {
					t.Fatalf("keys outside partition %d changed:\n %s", p, diffKeys(after, untouched))
				}
			})
			ends, dumps := gl.ends, gl.dumps
			if tc.name == "compacted" {
				ends, dumps = []int{len(tc.log) - 1}, dumps[len(dumps)-1:]
			}
			for _, mode := range []followMode{{name: "whole batches"}, {name: "applied in parts", maxPending: 1}, {name: "resumed", resume: true}} {
				t.Run(fmt.Sprintf("seed %d/%s/follow %s", seed, tc.name, mode.name), func(t *testing.T) {
					followGroupLog(t, p, other, tc.log, ends, dumps, mode)
				})
			}
		}
	}
}

// groupTopicOffset: the stored offsets of the group topics of p.
func groupTopicOffset(p int32) func(k []byte) bool {
	var keys [][]byte
	for _, topic := range groupTopics {
		k := binary.BigEndian.AppendUint16([]byte{'c'}, uint16(len(topic)))
		keys = append(keys, append(append(k, topic...), partitionBytes(p)...))
	}
	return func(k []byte) bool {
		return slices.ContainsFunc(keys, func(x []byte) bool { return bytes.Equal(x, k) })
	}
}

func followGroupLog(t *testing.T, p, other int32, log []changelogRecord, ends []int, dumps []map[string]string, mode followMode) {
	s := openStore(t)
	putGroupJunk(t, s, p, other)
	outside := func(k []byte) bool {
		return !partitionScoped(p)(k) && !groupTopicOffset(p)(k)
	}
	untouched := dumpKeys(t, s, outside)
	f, err := s.FollowFromStart(p, "offers", groupTopics...)
	must(t, err)
	defer func() { f.Close() }()
	f.MaxPending = mode.maxPending
	batch := 0
	for i, rec := range log {
		n, err := f.Add(int64(i), rec.key, rec.value)
		must(t, err)
		must(t, f.Flush())
		if batch >= len(ends) || ends[batch] != i {
			if n != 0 {
				t.Fatalf("record %d is no batch end, applied %d", i, n)
			}
			continue
		}
		if got := dumpKeys(t, s, groupScoped(p)); !maps.Equal(got, dumps[batch]) {
			t.Fatalf("after batch %d (record %d): group state differs from the source's:\n %s", batch, i, diffKeys(got, dumps[batch]))
		}
		if got, want := storedOffsets(t, s, p, groupTopics), wantExtra(t, rec.value, groupTopics); !slices.Equal(got, want) {
			t.Fatalf("after batch %d: extra offsets %v, want %v", batch, got, want)
		}
		if inc, err := s.RestoreIncomplete(p); err != nil || inc {
			t.Fatalf("after batch %d: restore incomplete %v %v", batch, inc, err)
		}
		batch++
		if mode.resume {
			f.Close()
			if f, err = s.ResumeFollow(p, "offers", groupTopics...); err != nil || f == nil {
				t.Fatalf("after batch %d: resumed %v %v", batch, f, err)
			}
		}
	}
	if batch != len(ends) {
		t.Fatalf("%d batch ends applied, want %d", batch, len(ends))
	}
	if after := dumpKeys(t, s, outside); !maps.Equal(after, untouched) {
		t.Fatalf("keys outside partition %d changed:\n %s", p, diffKeys(after, untouched))
	}
}

// TestGroupChangelogSeed: the records ScanChangelogGroups gives for a
// partition, ended by an offset record, restore its group state (as a
// copy of a partition's state into an empty changelog needs); every "p"
// and "w" key parses back into its parts.
func TestGroupChangelogSeed(t *testing.T) {
	const p int32 = 5
	gl := sourceGroupLog(t, 9, 30, p)
	b := gl.s.NewBatch()
	defer b.Close()
	var log []changelogRecord
	must(t, b.ScanChangelogGroups(p, func(k, v []byte) error {
		log = append(log, changelogRecord{bytes.Clone(k), bytes.Clone(v)})
		return nil
	}))
	var none int
	must(t, b.ScanChangelogGroups(p+1, func(k, v []byte) error { none++; return nil }))
	if none != 0 {
		t.Fatalf("%d records of an empty partition", none)
	}
	stop := errors.New("stop")
	if err := b.ScanChangelogGroups(p, func(k, v []byte) error { return stop }); err != stop {
		t.Fatalf("fn's error: %v", err)
	}
	log = append(log, changelogRecord{state.ChangelogOffsetKey, state.AppendChangelogOffset(nil, 7, 8, 9)})
	dst := openStore(t)
	r, err := dst.NewRestore(p, "offers", groupTopics...)
	must(t, err)
	for _, rec := range log {
		must(t, r.Apply(rec.key, rec.value))
	}
	st, err := r.Finish()
	must(t, err)
	if got := dumpKeys(t, dst, groupScoped(p)); !maps.Equal(got, gl.final()) {
		t.Fatalf("seeded group state differs from the source's:\n %s", diffKeys(got, gl.final()))
	}
	if pl, _, w := countGroupKeys(gl.final()); int64(len(log)-1) != pl+w || st.Places != pl || st.Winners != w {
		t.Fatalf("%d records, stats %+v, want %d places and %d winners", len(log)-1, st, pl, w)
	}

	for _, rec := range gl.log {
		if rec.key[0] != state.ChangelogKindPlace && rec.key[0] != state.ChangelogKindWinner {
			continue
		}
		feed, key, offer, err := state.ParseChangelogGroupKey(rec.key)
		must(t, err)
		again := state.ChangelogWinnerKey(nil, feed, key)
		if rec.key[0] == state.ChangelogKindPlace {
			again = state.ChangelogPlaceKey(nil, feed, key, offer)
		} else if offer != "" {
			t.Fatalf("winner key %.40q: offer %q", rec.key, offer)
		}
		if !bytes.Equal(again, rec.key) {
			t.Fatalf("key %.40q parses into %q %.20q %q", rec.key, feed, key, offer)
		}
	}
	for name, rec := range badGroupRecords() {
		if rec.key[0] == 'c' {
			continue
		}
		if _, _, _, err := state.ParseChangelogGroupKey(rec.key); !errors.Is(err, state.ErrChangelogCorrupt) && strings.Contains(name, "key") {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, k := range []string{"", "o", "c", "p\x00"} {
		if _, _, _, err := state.ParseChangelogGroupKey([]byte(k)); !errors.Is(err, state.ErrChangelogCorrupt) {
			t.Errorf("%q: %v", k, err)
		}
	}
}

// TestGroupChangelogRecords: the "p" and "w" keys, and their values as a
// batch sees them (staged writes included; absent: ok false, dst
// unchanged).
func TestGroupChangelogRecords(t *testing.T) {
	if got := state.ChangelogPlaceKey([]byte("x"), "f", "kk", "o1"); string(got) != "xp\x00\x01f\x00\x02kko1" {
		t.Errorf("place key %q", got)
	}
	if got := state.ChangelogWinnerKey(nil, "f", ""); string(got) != "w\x00\x01f\x00\x00" {
		t.Errorf("winner key %q", got)
	}
	long := strings.Repeat("L", 70_000)
	if got := state.ChangelogWinnerKey(nil, long, "k"); len(got) != 1+2+3+70_000+2+1 || got[1] != 0xff || got[2] != 0xff {
		t.Errorf("winner key of a long feed: %d bytes, %x", len(got), got[:6])
	}

	s := openStore(t)
	b := s.NewBatch()
	defer b.Close()
	dst := []byte("head")
	for _, get := range []func() ([]byte, bool, error){
		func() ([]byte, bool, error) { return b.AppendChangelogPlace(dst, 2, "f", "k", "o1") },
		func() ([]byte, bool, error) { return b.AppendChangelogWinner(dst, 2, "f", "k") },
	} {
		if out, ok, err := get(); err != nil || ok || string(out) != "head" {
			t.Fatalf("absent: %q %v %v", out, ok, err)
		}
	}
	_, err := b.SetCandidacy(2, "f", "k", "o1", 5, 1, state.OrderFloat(3, false), true)
	must(t, err)
	place, ok, err := b.AppendChangelogPlace(dst, 2, "f", "k", "o1")
	if err != nil || !ok || len(place) != 4+21 || string(place[:4]) != "head" || place[4+20] != 1 {
		t.Fatalf("staged place %x %v %v", place, ok, err)
	}
	winner, ok, err := b.AppendChangelogWinner(nil, 2, "f", "k")
	if err != nil || !ok || len(winner) != 12+2 || string(winner[12:]) != "o1" || binary.BigEndian.Uint32(winner[8:]) != 5 {
		t.Fatalf("staged winner %x %v %v", winner, ok, err)
	}
	if _, ok, _ := b.AppendChangelogPlace(nil, 1, "f", "k", "o1"); ok {
		t.Fatal("a place of group partition 2 found in 1")
	}
	must(t, b.Commit(false))
	if v := storedValue(t, s, append([]byte{'h', 0, 0, 0, 2, 0, 1, 'f', 0, 1, 'k'}, "o1"...)); !bytes.Equal(v, place[4:]) {
		t.Fatalf("stored place %x, the changelog's %x", v, place[4:])
	}
}

// TestChangelogOffsets: the "c" value carries the extra offsets after
// the offers one; an old value (one varint) still decodes.
func TestChangelogOffsets(t *testing.T) {
	for _, tc := range []struct {
		next  int64
		extra []int64
	}{
		{0, nil}, {7, []int64{-1}}, {1 << 40, []int64{3, -1}}, {-1, []int64{0, 1 << 50, -5}},
	} {
		v := state.AppendChangelogOffset([]byte{}, tc.next, tc.extra...)
		next, extra, err := state.DecodeChangelogOffsets(v)
		if err != nil || next != tc.next || len(extra) != len(tc.extra) || len(extra) > 0 && !slices.Equal(extra, tc.extra) {
			t.Errorf("%d %v: decoded %d %v %v", tc.next, tc.extra, next, extra, err)
		}
		if first, err := state.DecodeChangelogOffset(v); err != nil || first != tc.next {
			t.Errorf("%d %v: DecodeChangelogOffset %d %v", tc.next, tc.extra, first, err)
		}
	}
	old := binary.AppendVarint(nil, 42) // as an older writer wrote it
	if next, extra, err := state.DecodeChangelogOffsets(old); err != nil || next != 42 || len(extra) != 0 {
		t.Errorf("old value: %d %v %v", next, extra, err)
	}
	for _, bad := range [][]byte{nil, {}, {0x80}, {2, 0x80}, {2, 4, 0xff}} {
		if _, _, err := state.DecodeChangelogOffsets(bad); !errors.Is(err, state.ErrChangelogCorrupt) {
			t.Errorf("%x: %v", bad, err)
		}
		if _, err := state.DecodeChangelogOffset(bad); !errors.Is(err, state.ErrChangelogCorrupt) {
			t.Errorf("%x: DecodeChangelogOffset %v", bad, err)
		}
	}
}

// TestOldOffsetRecordRestores: a changelog of old offset records (one
// varint) restores and is followed: the offers offset is stored, the
// extra topics' are not (a stale one is gone).
func TestOldOffsetRecordRestores(t *testing.T) {
	const p, other int32 = 2, 0
	l := followLogs{t, nil}
	oldC := func(next int64) changelogRecord {
		return changelogRecord{state.ChangelogOffsetKey, binary.AppendVarint(nil, next)}
	}
	newC := func(next int64, extra ...int64) changelogRecord {
		return changelogRecord{state.ChangelogOffsetKey, state.AppendChangelogOffset(nil, next, extra...)}
	}
	place := changelogRecord{state.ChangelogPlaceKey(nil, "f", "k", "o1"), make([]byte, 21)}
	cases := []struct {
		name  string
		log   []changelogRecord
		next  int64
		extra []int64
	}{
		{"old only", []changelogRecord{l.o("x", nil, l.mem(1), 0, nil), oldC(5), oldC(9)}, 9, []int64{-1, -1}},
		{"new then old", []changelogRecord{newC(3, 10, 20), place, oldC(4)}, 4, []int64{-1, -1}},
		{"old then new", []changelogRecord{oldC(3), place, newC(4, 11, -1, 99)}, 4, []int64{11, -1}},
		{"new then deleted", []changelogRecord{newC(3, 10, 20), {state.ChangelogOffsetKey, nil}}, -1, []int64{-1, -1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t)
			putGroupJunk(t, s, p, other)
			r, err := s.NewRestore(p, "offers", groupTopics...)
			must(t, err)
			for _, rec := range tc.log {
				must(t, r.Apply(rec.key, rec.value))
			}
			st, err := r.Finish()
			must(t, err)
			if got := storedOffsets(t, s, p, append([]string{"offers"}, groupTopics...)); got[0] != tc.next || !slices.Equal(got[1:], tc.extra) || !slices.Equal(st.ExtraOffsets, tc.extra) {
				t.Fatalf("restored offsets %v (stats %v), want %d %v", got, st.ExtraOffsets, tc.next, tc.extra)
			}
			if got := storedOffsets(t, s, other, groupTopics); !slices.Equal(got, []int64{777, 777}) {
				t.Fatalf("offsets of partition %d %v", other, got)
			}

			fs := openStore(t)
			putGroupJunk(t, fs, p, other)
			f, err := fs.FollowFromStart(p, "offers", groupTopics...)
			must(t, err)
			defer f.Close()
			for i, rec := range tc.log {
				_, err := f.Add(int64(i), rec.key, rec.value)
				must(t, err)
			}
			if got := storedOffsets(t, fs, p, append([]string{"offers"}, groupTopics...)); got[0] != tc.next || !slices.Equal(got[1:], tc.extra) {
				t.Fatalf("followed offsets %v, want %d %v", got, tc.next, tc.extra)
			}
			if g, w := dumpKeys(t, fs, groupScoped(p)), dumpKeys(t, s, groupScoped(p)); !maps.Equal(g, w) {
				t.Fatalf("followed group state differs from the restore's:\n %s", diffKeys(g, w))
			}
		})
	}
}

// badGroupRecords are "p" and "w" records a restore and a follower
// refuse.
func badGroupRecords() map[string]changelogRecord {
	place := make([]byte, 21)
	longForm := append([]byte{'w', 0xff, 0xff, 3}, "abc\x00\x00"...) // a short string in the long form
	return map[string]changelogRecord{
		"place key without a group":  {[]byte("p\x00"), place},
		"place key cut in the key":   {[]byte("p\x00\x01f\x00\x05ab"), place},
		"winner key with an offer":   {append(state.ChangelogWinnerKey(nil, "f", "k"), 'x'), make([]byte, 12)},
		"winner key in a long form":  {longForm, make([]byte, 12)},
		"place value of 20 bytes":    {state.ChangelogPlaceKey(nil, "f", "k", "o"), make([]byte, 20)},
		"place value of 22 bytes":    {state.ChangelogPlaceKey(nil, "f", "k", "o"), make([]byte, 22)},
		"place value with live 2":    {state.ChangelogPlaceKey(nil, "f", "k", "o"), append(make([]byte, 20), 2)},
		"winner value of 11 bytes":   {state.ChangelogWinnerKey(nil, "f", "k"), make([]byte, 11)},
		"offset value with a bad ex": {state.ChangelogOffsetKey, []byte{2, 0x80}},
	}
}

func TestGroupRecordErrors(t *testing.T) {
	for name, rec := range badGroupRecords() {
		t.Run(name, func(t *testing.T) {
			s := openStore(t)
			r, err := s.NewRestore(0, "offers", groupTopics...)
			must(t, err)
			if err := r.Apply(rec.key, rec.value); !errors.Is(err, state.ErrChangelogCorrupt) {
				t.Errorf("restore: %v, want ErrChangelogCorrupt", err)
			}
			r.Abort()
			f, err := s.FollowFromStart(1, "offers", groupTopics...)
			must(t, err)
			defer f.Close()
			var last error
			for i, r := range []changelogRecord{rec, {state.ChangelogOffsetKey, state.AppendChangelogOffset(nil, 1)}} {
				if _, last = f.Add(int64(i), r.key, r.value); last != nil {
					break
				}
			}
			if !errors.Is(last, state.ErrChangelogCorrupt) {
				t.Errorf("follow: %v, want ErrChangelogCorrupt", last)
			}
		})
	}
	// A nil value deletes whatever the key.
	s := openStore(t)
	r, err := s.NewRestore(0, "offers")
	must(t, err)
	must(t, r.Apply(state.ChangelogPlaceKey(nil, "f", "k", "o"), nil), r.Apply(state.ChangelogWinnerKey(nil, "f", "k"), []byte{}))
	_, err = r.Finish()
	must(t, err)
}
