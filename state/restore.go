package state

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/feedmill/feedmill/internal/records"
)

// restoreBatchBytes bounds the Pebble batches a restore writes: memory is
// this plus the events it remembers.
const restoreBatchBytes = 4 << 20

// Restore rebuilds the state of one offers partition p, and of group
// partition p (the same task's), from its changelog (see
// ChangelogOfferKey): NewRestore wipes p, Apply applies the changelog
// records in log order, Finish rebuilds what the changelog does not carry
// and commits. A Restore is not safe for concurrent use.
//
// The caller must keep every other writer of p away while a Restore of p
// is open: no batch touching p's offers, memberships, groups or outbox
// commits and the relay neither scans nor deletes p's outbox until Finish
// or Abort returns. Restores of different partitions, and writes of other
// partitions, may go on (p's feed counts are p's own keys: a caller that
// keeps them in memory takes RestoreStats.Counts).
//
// Crash safety: NewRestore durably marks p as being restored in the batch
// that wipes it, and Finish clears the mark in its last, synced batch. A
// crash (or an Abort) in between leaves p partly restored, without a
// stored offset of the offers topic, and RestoreIncomplete(p) true: the
// partition must be restored again.
type Restore struct {
	s           *Store
	p           int32
	offersTopic string
	// extraTopics are the other input topics of p's task, in the order
	// of the extra offsets of a "c" record.
	extraTopics []string

	b   *pebble.Batch
	key []byte
	// events remembers the last event of each restored offer, by offer id.
	events map[string]restoreEvent
	// seqEvents remembers the "e" records, by outbox sequence.
	seqEvents map[uint64][]byte
	offset    int64
	hasOffset bool
	extra     []int64 // the extra offsets of the last "c" record
	acked     uint64
	bytes     int64
	done      bool
	rec       OutboxRecord // scratch, to check events
}

type restoreEvent struct {
	seq uint64
	rec []byte
}

// RestoreStats says what a Restore restored.
type RestoreStats struct {
	// Offers and Tombstones count the restored live and deleted offers.
	Offers, Tombstones int64
	// Memberships counts the restored memberships.
	Memberships int64
	// Events counts the events put back in the outbox (at or above the
	// acknowledged watermark).
	Events int64
	// Offset is the restored next offset of the offers partition, when
	// HasOffset (the changelog had a "c" record).
	Offset    int64
	HasOffset bool
	// ExtraOffsets holds the restored next offset of each extra input
	// topic (NewRestore's extraTopics, in that order), -1 where none was
	// restored (no "c" record, or one without that topic's offset): the
	// stored offsets of those topics for p are these (nil without extra
	// topics).
	ExtraOffsets []int64
	// Places counts the restored group places of group partition p (live
	// or not), Candidates the live ones (each got its candidate key back)
	// and Winners the restored decided winners.
	Places, Candidates, Winners int64
	// Bytes is the total size of the changelog values applied.
	Bytes int64
	// Counts is the restored live member count of each feed in the
	// partition (the feed counts of the partition are replaced by these).
	Counts map[string]int64
}

// ErrRestoreDone is returned by Apply and Finish after Finish or Abort.
var ErrRestoreDone = errors.New("restore already finished")

// NewRestore starts restoring offers partition p, whose input is
// partition p of offersTopic and of each of extraTopics (the other input
// topics of p's task: the "c" record carries their offsets in this
// order). It wipes p's state: offers ('o' p), their memberships ('m' p),
// the seller index ('x' p), the tombstone index entries of p's offers
// ('t'), p's outbox ('q' p), the candidates, places and winners of group
// partition p ('g' p, 'h' p, 'w' p), the stored offsets of partition p of
// offersTopic and extraTopics and p's feed counts ('l' p). Seller jobs
// are not touched. The wipe is committed (without sync) before
// NewRestore returns; see Restore for what a crash leaves. Errors come
// from Pebble or from a stored value that does not decode (ErrCorrupt).
func (s *Store) NewRestore(p int32, offersTopic string, extraTopics ...string) (*Restore, error) {
	r := &Restore{s: s, p: p, offersTopic: offersTopic, extraTopics: slices.Clone(extraTopics), b: s.db.NewBatch(),
		events: map[string]restoreEvent{}, seqEvents: map[uint64][]byte{}}
	if err := r.wipe(); err != nil {
		r.Abort()
		return nil, fmt.Errorf("restore partition %d: wipe: %w", p, err)
	}
	return r, nil
}

func (r *Restore) wipe() error {
	s, p := r.s, r.p
	marker := metaPartitionKey(nil, metaRestoring, p)
	restarted, err := s.get(marker, func([]byte) error { return nil })
	if err != nil {
		return err
	}
	if !restarted {
		if err := r.b.Set(marker, nil, nil); err != nil {
			return err
		}
	}
	if err := r.b.Delete(offsetKey(nil, r.offersTopic, p), nil); err != nil {
		return err
	}
	for _, topic := range r.extraTopics {
		if err := r.b.Delete(offsetKey(nil, topic, p), nil); err != nil {
			return err
		}
	}
	for _, prefix := range [][]byte{
		offerKey(nil, p, ""), membershipKey(nil, p, ""), partitionPrefix(prefixIndex, p), outboxPrefix(nil, p),
		partitionPrefix(prefixCount, p),
		partitionPrefix(prefixCandidate, p), partitionPrefix(prefixPlace, p), partitionPrefix(prefixWinner, p),
	} {
		if err := r.b.DeleteRange(prefix, prefixEnd(prefix), nil); err != nil {
			return err
		}
	}
	// The tombstone index is ordered by time: read all of it, keep p's.
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixTombIndex}, UpperBound: []byte{prefixTombIndex + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	offerPrefix := offerKey(nil, p, "")
	for it.First(); it.Valid(); it.Next() {
		if k := it.Key(); len(k) >= 9 && bytes.HasPrefix(k[9:], offerPrefix) {
			if err := r.b.Delete(k, nil); err != nil {
				return err
			}
			if err := r.flushIfFull(); err != nil {
				return err
			}
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	if err := r.flush(pebble.NoSync); err != nil {
		return err
	}
	s.commitMu.Lock()
	s.headOutbox[p] = s.nextOutbox[p]
	delete(s.restoredOutbox, p)
	s.commitMu.Unlock()
	return nil
}

// memberCounts reads the stored memberships of p: how many of them each
// feed has, and how many there are.
func (r *Restore) memberCounts() (map[string]int64, int64, error) {
	prefix := membershipKey(nil, r.p, "")
	it, err := r.s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, 0, err
	}
	defer it.Close()
	counts := map[string]int64{}
	intern := internTable{}.intern
	var m Membership
	var n int64
	for it.First(); it.Valid(); it.Next() {
		if err := DecodeMembership(it.Value(), &m, intern); err != nil {
			return nil, 0, fmt.Errorf("membership %q: %w", it.Key()[len(prefix):], err)
		}
		for i := range m.Feeds {
			counts[m.Feeds[i].FeedID]++
		}
		n++
	}
	return counts, n, it.Error()
}

func (r *Restore) flushIfFull() error {
	if r.b.Len() < restoreBatchBytes {
		return nil
	}
	return r.flush(pebble.NoSync)
}

func (r *Restore) flush(wo *pebble.WriteOptions) error {
	if r.b.Empty() {
		return nil
	}
	if err := r.b.Commit(wo); err != nil {
		return err
	}
	if err := r.s.Err(); err != nil {
		return err // a fatal Pebble error: the commit is not durable
	}
	r.b.Reset()
	return nil
}

// Apply applies one changelog record of p, in log order: a later record
// of a key replaces an earlier one, and a nil (or empty) value deletes.
// "o" offerID writes (or deletes) the offer key and the membership key of
// the offer as the value carries them, and remembers the offer's event (a
// value without one, or a nil value, forgets it); "p" and "w" write (or
// delete) the place or the decided winner of a group of group partition
// p; "c" remembers the offsets of the offers partition and of the extra
// topics, "a" the acknowledged outbox sequence. Writes are committed
// (without sync) in batches of about 4 MiB. key and value are not
// retained. It returns an error wrapping ErrChangelogCorrupt for a
// record it cannot decode (or an unknown key), ErrRestoreDone after
// Finish or Abort; after an error, Abort.
func (r *Restore) Apply(key, value []byte) error {
	if r.done {
		return ErrRestoreDone
	}
	if len(key) == 0 {
		return fmt.Errorf("restore partition %d: %w: empty key", r.p, ErrChangelogCorrupt)
	}
	r.bytes += int64(len(value))
	var err error
	switch key[0] {
	case ChangelogKindOffer:
		err = r.applyOffer(key[1:], value)
	case ChangelogKindOffset:
		switch {
		case len(key) != 1:
			err = fmt.Errorf("%w: key %q", ErrChangelogCorrupt, key)
		case len(value) == 0:
			r.offset, r.hasOffset, r.extra = 0, false, r.extra[:0]
		default:
			r.offset, r.extra, err = decodeChangelogOffsets(value, r.extra)
			r.hasOffset = err == nil
		}
	case ChangelogKindPlace, ChangelogKindWinner:
		err = r.applyGroup(key, value)
	case ChangelogKindEvent:
		switch {
		case len(key) != 9:
			err = fmt.Errorf("%w: key %q", ErrChangelogCorrupt, key)
		case len(value) == 0:
			delete(r.seqEvents, binary.BigEndian.Uint64(key[1:]))
		default:
			r.seqEvents[binary.BigEndian.Uint64(key[1:])] = slices.Clone(value)
		}
	case ChangelogKindAcked:
		switch {
		case len(key) != 1:
			err = fmt.Errorf("%w: key %q", ErrChangelogCorrupt, key)
		case len(value) == 0:
			r.acked = 0
		default:
			r.acked, err = DecodeChangelogAcked(value)
		}
	default:
		err = fmt.Errorf("%w: key %q", ErrChangelogCorrupt, key)
	}
	if err == nil {
		err = r.flushIfFull()
	}
	if err != nil {
		return fmt.Errorf("restore partition %d: %w", r.p, err)
	}
	return nil
}

func (r *Restore) applyOffer(id, value []byte) error {
	r.key = append(append(r.key[:0], prefixOffer), appendPartition(nil, r.p)...)
	r.key = append(r.key, id...)
	if len(value) == 0 {
		delete(r.events, string(id))
		if err := r.b.Delete(r.key, nil); err != nil {
			return err
		}
		r.key[0] = prefixMembership
		return r.b.Delete(r.key, nil)
	}
	offerVal, memVal, seq, event, err := DecodeChangelogOffer(value)
	if err != nil {
		return fmt.Errorf("offer %q: %w", id, err)
	}
	for _, kv := range [2]struct {
		prefix byte
		val    []byte
	}{{prefixOffer, offerVal}, {prefixMembership, memVal}} {
		r.key[0] = kv.prefix
		if kv.val == nil {
			err = r.b.Delete(r.key, nil)
		} else {
			err = r.b.Set(r.key, kv.val, nil)
		}
		if err != nil {
			return err
		}
	}
	if event == nil {
		delete(r.events, string(id))
		return nil
	}
	if err := DecodeOutboxRecord(event, &r.rec); err != nil {
		return fmt.Errorf("%w: event of offer %q: %w", ErrChangelogCorrupt, id, err)
	}
	if e, ok := r.events[string(id)]; ok {
		r.events[string(id)] = restoreEvent{seq: seq, rec: append(e.rec[:0], event...)}
	} else {
		r.events[string(id)] = restoreEvent{seq: seq, rec: slices.Clone(event)}
	}
	return nil
}

// Finish completes the restore: it rebuilds p's seller index from the
// restored live offers (decoded with the store's codec), the tombstone
// index from the restored offer tombstones and the candidate keys of
// group partition p from the restored live places; sets the stored offset
// of the offers topic partition p, and those of the extra topics the
// record carries (not negative ones), when the changelog had one; puts the
// remembered events whose sequence is at or above the acknowledged
// watermark back in p's outbox at their sequences; raises p's next outbox
// sequence to the largest of the last of those + 1, the watermark and its
// current value; stores p's feed counts of the restored memberships; and
// clears the restore mark, committing the last batch with sync. It returns
// an error wrapping ErrChangelogCorrupt when two remembered events have
// the same sequence, ErrCorrupt for a restored value that does not
// decode, ErrRestoreDone after Finish or Abort; after an error, Abort.
func (r *Restore) Finish() (RestoreStats, error) {
	if r.done {
		return RestoreStats{}, ErrRestoreDone
	}
	st, err := r.finish()
	if err != nil {
		return RestoreStats{}, fmt.Errorf("restore partition %d: %w", r.p, err)
	}
	return st, nil
}

func (r *Restore) finish() (RestoreStats, error) {
	s, p := r.s, r.p
	st := RestoreStats{Offset: r.offset, HasOffset: r.hasOffset, Bytes: r.bytes}
	if err := r.flush(pebble.NoSync); err != nil {
		return st, err
	}
	if err := r.rebuildIndexes(&st); err != nil {
		return st, err
	}
	if err := r.rebuildCandidates(&st); err != nil {
		return st, err
	}
	counts, n, err := r.memberCounts()
	if err != nil {
		return st, err
	}
	st.Memberships = n
	st.Counts = counts
	var key []byte
	for feed, n := range counts {
		key = countKey(key[:0], p, feed)
		if err := r.b.Set(key, binary.BigEndian.AppendUint64(nil, uint64(n)), nil); err != nil {
			return st, err
		}
	}
	if len(r.extraTopics) > 0 {
		st.ExtraOffsets = make([]int64, len(r.extraTopics))
		for i := range st.ExtraOffsets {
			st.ExtraOffsets[i] = -1
		}
	}
	if r.hasOffset {
		if err := r.b.Set(offsetKey(nil, r.offersTopic, p), binary.BigEndian.AppendUint64(nil, uint64(r.offset)), nil); err != nil {
			return st, err
		}
		for i, topic := range r.extraTopics {
			if i < len(r.extra) && r.extra[i] >= 0 {
				st.ExtraOffsets[i] = r.extra[i]
				err = r.b.Set(offsetKey(key[:0], topic, p), binary.BigEndian.AppendUint64(nil, uint64(r.extra[i])), nil)
			} else {
				err = r.b.Delete(offsetKey(key[:0], topic, p), nil) // wiped already
			}
			if err != nil {
				return st, err
			}
		}
	}
	events := make([]restoreEvent, 0, len(r.events)+len(r.seqEvents))
	for _, e := range r.events {
		if e.seq >= r.acked {
			events = append(events, e)
		}
	}
	have := make(map[uint64]bool, len(events))
	for _, e := range events {
		have[e.seq] = true
	}
	for seq, rec := range r.seqEvents {
		if seq >= r.acked && !have[seq] {
			events = append(events, restoreEvent{seq: seq, rec: rec})
		}
	}
	slices.SortFunc(events, func(a, b restoreEvent) int { return cmp.Compare(a.seq, b.seq) })
	for i, e := range events {
		if i > 0 && events[i-1].seq == e.seq {
			return st, fmt.Errorf("%w: two events at outbox sequence %d", ErrChangelogCorrupt, e.seq)
		}
		key = outboxKey(key[:0], p, e.seq)
		if err := r.b.Set(key, e.rec, nil); err != nil {
			return st, err
		}
	}
	st.Events = int64(len(events))
	if err := r.b.Delete(metaPartitionKey(nil, metaRestoring, p), nil); err != nil {
		return st, err
	}

	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	next := max(s.nextOutbox[p], r.acked)
	if len(events) > 0 {
		next = max(next, events[len(events)-1].seq+1)
	}
	if err := r.b.Set(metaPartitionKey(nil, metaOutboxNext, p), binary.BigEndian.AppendUint64(nil, next), nil); err != nil {
		return st, err
	}
	if err := r.flush(pebble.Sync); err != nil {
		return st, err
	}
	s.nextOutbox[p] = next
	s.headOutbox[p] = next
	if len(events) > 0 {
		s.headOutbox[p] = events[0].seq
		seqs := make([]uint64, len(events))
		for i, e := range events {
			seqs[i] = e.seq
		}
		s.restoredOutbox[p] = seqs
		select {
		case s.outboxNotify <- struct{}{}:
		default:
		}
	}
	r.done = true
	_ = r.b.Close() // committed; closing only releases it
	return st, nil
}

// rebuildIndexes writes the seller index and the tombstone index of the
// restored offers of p.
func (r *Restore) rebuildIndexes(st *RestoreStats) error {
	prefix := offerKey(nil, r.p, "")
	it, err := r.s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	defer it.Close()
	var (
		offer records.Offer
		key   []byte
	)
	for it.First(); it.Valid(); it.Next() {
		k, v := it.Key(), it.Value()
		id := k[len(prefix):]
		if len(v) == 0 {
			return fmt.Errorf("%w: empty offer %q", ErrCorrupt, id)
		}
		switch v[0] {
		case tagLive:
			if r.s.codec == nil {
				return fmt.Errorf("decode offer %q: the store has no codec", id)
			}
			if err := r.s.codec.UnmarshalOffer(v[1:], &offer); err != nil {
				return fmt.Errorf("decode offer %q: %w", id, err)
			}
			key = append(indexPrefix(key[:0], r.p, offer.SellerID), id...)
			st.Offers++
		case tagTombstone:
			t, err := decodeTombstone(v)
			if err != nil {
				return fmt.Errorf("offer %q: %w", id, err)
			}
			key = tombstoneIndexKey(key[:0], t.DeletedAt.UnixMilli(), k)
			st.Tombstones++
		default:
			return fmt.Errorf("%w: offer %q tag %d", ErrCorrupt, id, v[0])
		}
		if err := r.b.Set(key, nil, nil); err != nil {
			return err
		}
		if err := r.flushIfFull(); err != nil {
			return err
		}
	}
	return it.Error()
}

// applyGroup applies a "p" (place) or "w" (winner) record: it writes or
// deletes the 'h' or 'w' key of group partition p.
func (r *Restore) applyGroup(key, value []byte) error {
	kind := key[0]
	n := groupPartLen(key[1:])
	if n < 0 || kind == ChangelogKindWinner && n != len(key)-1 {
		return fmt.Errorf("%w: group %s key %q", ErrChangelogCorrupt, groupKindName(kind), key)
	}
	prefix := byte(prefixPlace)
	if kind == ChangelogKindWinner {
		prefix = prefixWinner
	}
	r.key = appendPartition(append(r.key[:0], prefix), r.p)
	r.key = append(r.key, key[1:]...)
	if len(value) == 0 {
		return r.b.Delete(r.key, nil)
	}
	if !groupValueOK(kind, value) {
		return fmt.Errorf("%w: group %s %q: value %x", ErrChangelogCorrupt, groupKindName(kind), key[1:], value)
	}
	return r.b.Set(r.key, value, nil)
}

// rebuildCandidates writes the candidate key of every restored live
// place of group partition p and counts the places and winners.
func (r *Restore) rebuildCandidates(st *RestoreStats) error {
	prefix := partitionPrefix(prefixPlace, r.p)
	it, err := r.s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	defer it.Close()
	var key []byte
	for it.First(); it.Valid(); it.Next() {
		k, v := it.Key(), it.Value()
		st.Places++
		var live bool
		if key, live, err = appendCandidateOfPlace(key[:0], k, v); err != nil {
			return err
		}
		if !live {
			continue
		}
		st.Candidates++
		if err := r.b.Set(key, nil, nil); err != nil {
			return err
		}
		if err := r.flushIfFull(); err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	prefix = partitionPrefix(prefixWinner, r.p)
	wit, err := r.s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	defer wit.Close()
	for wit.First(); wit.Valid(); wit.Next() {
		st.Winners++
	}
	return wit.Error()
}

// appendCandidateOfPlace appends to dst the candidate key ('g') of the
// place stored at placeKey ('h' g feed key offerID) with value v, when
// the place is live (live false: nothing appended). It returns an error
// wrapping ErrCorrupt when the key or the value does not decode.
func appendCandidateOfPlace(dst, placeKey, v []byte) (out []byte, live bool, err error) {
	const head = 5 // kind and partition
	n := -1
	if len(placeKey) >= head {
		n = groupPartLen(placeKey[head:])
	}
	if n < 0 || !groupValueOK(ChangelogKindPlace, v) {
		return dst, false, fmt.Errorf("%w: group place %q: value %x", ErrCorrupt, placeKey, v)
	}
	if v[groupPlaceBytes-1] != 1 {
		return dst, false, nil
	}
	dst = append(dst, prefixCandidate)
	dst = append(dst, placeKey[1:head+n]...) // partition, feed, key
	dst = append(dst, v[:8]...)              // order
	return append(dst, placeKey[head+n:]...), true, nil
}

// Abort ends a restore that failed or is given up: what was committed
// stays (see Restore: p remains marked as being restored unless Finish
// succeeded). It is a no-op after Finish or Abort.
func (r *Restore) Abort() {
	if r.done {
		return
	}
	r.done = true
	_ = r.b.Close() // discards the uncommitted writes; nothing to report
}

// RestoreIncomplete reports whether a restore of offers partition p was
// started (NewRestore) and has not finished: p's state is partial and must
// be restored again before it is used.
func (s *Store) RestoreIncomplete(p int32) (bool, error) {
	found, err := s.get(metaPartitionKey(nil, metaRestoring, p), func([]byte) error { return nil })
	if err != nil {
		return false, fmt.Errorf("read restore mark of partition %d: %w", p, err)
	}
	return found, nil
}
