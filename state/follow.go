package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/feedmill/feedmill/internal/records"
)

// Following a partition's changelog (standby replicas).
//
// A Follower keeps the local state of an offers partition p, which this
// instance does not own, the copy of what a restore (NewRestore) of p's
// changelog would leave, batch by batch: the offers and tombstones, the
// memberships, the seller index, the tombstone index entries, the feed
// counts, the places, candidates and winners of group partition p, the
// stored offsets of the offers topic and of the extra input topics and
// the outbox holding exactly the unacknowledged events. After each
// complete batch (the records up to and including an offset record "c")
// the partition's keys are those a restore of the changelog up to that
// record writes (the next outbox sequence is at least the restore's:
// sequences never go back), committed in one Pebble batch with the follow position ('z' 'f' p): the
// changelog offset after that batch, from which the follower resumes
// after a restart (ResumeFollow) and from which a promotion catches up.
//
// The records of a batch are buffered until its end: an unfinished tail is
// never applied. A batch larger than MaxPending (a compacted log keeps only
// the last "c", so the first batch a follower reads from the start can be
// the whole partition) is applied in parts instead, with p marked as being
// restored (RestoreIncomplete) until its end is applied.
//
// The caller keeps every other writer of p away while it follows p, as for
// a Restore: p is not owned (no task applies it, the relay does not send
// its outbox), and the tombstone sweep does not run during a call (it may
// forget expired tombstones between batches, as it does after a restore).
// Seller jobs of p are not touched.

// metaFollow keys hold the follow position of a followed partition.
const metaFollow = 'f'

// followVersion is the version byte of a follow position value.
const followVersion = 1

// ErrFollowRestart is returned (wrapped) by Follower.Add when the
// changelog can only be followed further from its start: the
// acknowledged watermark went back below events a resumed follower no
// longer knows.
var ErrFollowRestart = errors.New("the changelog must be followed from its start")

// DefaultFollowPending is the default Follower.MaxPending.
const DefaultFollowPending = 16 << 20

// FollowPosition is how far the local state of a followed partition has
// applied its changelog.
type FollowPosition struct {
	// Next is the changelog offset after the last batch applied: the
	// local state is a restore of the changelog below Next.
	Next int64
	// Acked is the acknowledged outbox watermark applied.
	Acked uint64
	// At is when that batch was applied.
	At time.Time
}

// FollowPosition returns the follow position of offers partition p (ok
// false: p is not the copy of a changelog, or a batch of it is only
// partly applied).
func (s *Store) FollowPosition(p int32) (pos FollowPosition, ok bool, err error) {
	ok, err = s.get(metaPartitionKey(nil, metaFollow, p), func(v []byte) error {
		var derr error
		pos, derr = decodeFollowPosition(v)
		return derr
	})
	if err != nil {
		return FollowPosition{}, false, fmt.Errorf("read follow position of partition %d: %w", p, err)
	}
	if ok {
		partial, err := s.RestoreIncomplete(p)
		if err != nil {
			return FollowPosition{}, false, err
		}
		ok = !partial
	}
	return pos, ok, nil
}

// DropFollow forgets the follow positions of ps: their local state is no
// longer the copy of a changelog (they are about to be owned, and written
// by this instance). Their state is kept.
func (s *Store) DropFollow(ps ...int32) error {
	b := s.db.NewBatch()
	defer b.Close()
	for _, p := range ps {
		if err := b.Delete(metaPartitionKey(nil, metaFollow, p), nil); err != nil {
			return err
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("drop follow positions: %w", err)
	}
	return nil
}

func appendFollowPosition(dst []byte, pos FollowPosition) []byte {
	dst = append(dst, followVersion)
	dst = binary.AppendVarint(dst, pos.Next)
	dst = binary.AppendUvarint(dst, pos.Acked)
	return binary.AppendVarint(dst, pos.At.UnixMilli())
}

func decodeFollowPosition(v []byte) (FollowPosition, error) {
	if len(v) == 0 || v[0] != followVersion {
		return FollowPosition{}, fmt.Errorf("%w: follow position version", ErrCorrupt)
	}
	r := reader{b: v[1:]}
	pos := FollowPosition{Next: r.varint("follow next"), Acked: r.uvarint("follow acked")}
	pos.At = time.UnixMilli(r.varint("follow time"))
	if r.err == nil && len(r.b) != 0 {
		return FollowPosition{}, fmt.Errorf("%w: %d trailing follow position bytes", ErrCorrupt, len(r.b))
	}
	return pos, r.err
}

// Follower applies the changelog of one offers partition to the local
// state, batch by batch (see above). Not safe for concurrent use.
type Follower struct {
	s           *Store
	p           int32
	offersTopic string
	extraTopics []string // as NewRestore's

	// MaxPending bounds the bytes of an unfinished batch held in memory;
	// a larger batch is applied in parts (DefaultFollowPending when 0).
	MaxPending int

	read    int64 // the changelog offset of the next record to take
	applied int64 // the offset after the last batch end applied

	pending      []followRecord // the records of the unfinished batch
	pendingBytes int
	// spill holds the writes of the batch being applied: between calls
	// only while a batch is applied in parts (marked), within the Add
	// that ends a batch otherwise.
	spill *pebble.Batch
	// marked: p is marked as being restored (a batch applied in parts).
	marked bool
	// spillRecords counts the records of the batch being applied.
	spillRecords int
	closed       bool

	// What a restore remembers (below the watermark too, unless the
	// follower resumed: complete is false then).
	complete bool
	oEvents  map[string]restoreEvent // the event an "o" record carries, by offer
	oBySeq   map[uint64][]string     // the offers of those, by sequence
	eEvents  map[uint64][]byte       // the "e" records, by sequence
	acked    uint64
	out      map[uint64]bool // the sequences in p's outbox

	// The batch being applied.
	touched   map[uint64]bool // outbox sequences it may have changed
	deltas    map[string]int64
	newAcked  uint64
	offset    int64
	hasOffset bool
	extra     []int64 // the extra offsets of the batch's offset record
	offsetSet bool    // the batch had an offset record

	key, key2 []byte
	offer     records.Offer
	mem       Membership
	rec       OutboxRecord
	names     internTable
	intern    Interner // names.intern
}

type followRecord struct {
	key, value []byte
}

// ResumeFollow returns a Follower of offers partition p (whose input is
// partition p of offersTopic and of each of extraTopics, as for
// NewRestore) that continues from p's follow position, or nil when p has
// none (FollowPosition). It reads p's outbox (the unacknowledged events).
func (s *Store) ResumeFollow(p int32, offersTopic string, extraTopics ...string) (*Follower, error) {
	pos, ok, err := s.FollowPosition(p)
	if err != nil || !ok {
		return nil, err
	}
	f := newFollower(s, p, offersTopic, extraTopics)
	f.read, f.applied, f.acked, f.newAcked = pos.Next, pos.Next, pos.Acked, pos.Acked
	// The outbox holds the "e" records above the watermark, as they were.
	prefix := outboxPrefix(nil, p)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("follow partition %d: %w", p, err)
	}
	for it.First(); it.Valid(); it.Next() {
		if len(it.Key()) != len(prefix)+8 {
			_ = it.Close() // the corrupt key is the error to report
			return nil, fmt.Errorf("follow partition %d: %w: outbox key %q", p, ErrCorrupt, it.Key())
		}
		seq := binary.BigEndian.Uint64(it.Key()[len(prefix):])
		f.eEvents[seq] = bytes.Clone(it.Value())
		f.out[seq] = true
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, fmt.Errorf("follow partition %d: %w", p, err)
	}
	s.commitMu.Lock()
	f.publishOutboxLocked(s.nextOutbox[p])
	s.commitMu.Unlock()
	return f, nil
}

// FollowFromStart returns a Follower of offers partition p (whose input
// is partition p of offersTopic and of each of extraTopics) that starts
// from the beginning of the changelog: it wipes p's state as NewRestore
// does (p is marked as being restored until the first batch end is
// applied) and forgets that this state dir wrote p's changelog
// (ChangelogWritten) and p's follow position.
func (s *Store) FollowFromStart(p int32, offersTopic string, extraTopics ...string) (*Follower, error) {
	b := s.db.NewBatch()
	for _, kind := range []byte{metaChangelogWritten, metaFollow} {
		if err := b.Delete(metaPartitionKey(nil, kind, p), nil); err != nil {
			_ = b.Close()
			return nil, err
		}
	}
	err := b.Commit(pebble.NoSync)
	_ = b.Close() // committed or failed
	if err != nil {
		return nil, fmt.Errorf("follow partition %d: %w", p, err)
	}
	r, err := s.NewRestore(p, offersTopic, extraTopics...)
	if err != nil {
		return nil, fmt.Errorf("follow partition %d: %w", p, err)
	}
	r.Abort() // the wipe is committed; p stays marked
	f := newFollower(s, p, offersTopic, extraTopics)
	f.spill, f.marked, f.complete = s.db.NewIndexedBatch(), true, true
	return f, nil
}

func newFollower(s *Store, p int32, offersTopic string, extraTopics []string) *Follower {
	f := &Follower{s: s, p: p, offersTopic: offersTopic, extraTopics: slices.Clone(extraTopics),
		oEvents: map[string]restoreEvent{}, oBySeq: map[uint64][]string{}, eEvents: map[uint64][]byte{},
		out: map[uint64]bool{}, touched: map[uint64]bool{}, deltas: map[string]int64{}, names: internTable{}}
	f.intern = f.names.intern
	return f
}

// Next returns the changelog offset of the next record Add takes: a
// consumer of the changelog starts there.
func (f *Follower) Next() int64 { return f.read }

// Position returns the changelog offset after the last batch applied, and
// whether the follower holds nothing after it (no record of an
// unfinished batch was taken).
func (f *Follower) Position() (next int64, exact bool) {
	return f.applied, len(f.pending) == 0 && f.spill == nil && f.read == f.applied
}

// Add takes the changelog record at offset, in log order (records below
// Next are skipped: a consumer may deliver them again). A record ending a
// batch (key "c") applies the batch and commits it with the follow
// position. It returns how many records that applied (0 while the batch
// is unfinished). key and value are not retained. Errors wrap
// ErrChangelogCorrupt for a record it cannot decode, ErrCorrupt for
// stored state that does not decode, or come from Pebble; after an error
// the Follower must be closed and p followed again from the start.
func (f *Follower) Add(offset int64, key, value []byte) (int, error) {
	if f.closed {
		return 0, ErrRestoreDone
	}
	if offset < f.read {
		return 0, nil
	}
	f.read = offset + 1
	end := len(key) == 1 && key[0] == ChangelogKindOffset
	if f.spill == nil {
		if !end {
			f.pending = append(f.pending, followRecord{bytes.Clone(key), bytes.Clone(value)})
			f.pendingBytes += len(key) + len(value) + 48
			max := f.MaxPending
			if max <= 0 {
				max = DefaultFollowPending
			}
			if f.pendingBytes <= max {
				return 0, nil
			}
			// Too large to hold: apply it in parts, p marked meanwhile.
			if err := f.s.db.Set(metaPartitionKey(nil, metaRestoring, f.p), nil, pebble.NoSync); err != nil {
				return 0, f.fail(err)
			}
			f.spill, f.marked = f.s.db.NewIndexedBatch(), true
			return 0, f.applyPending()
		}
		f.spill = f.s.db.NewIndexedBatch()
		if err := f.applyPending(); err != nil {
			return 0, err
		}
	}
	f.spillRecords++
	if err := f.apply(key, value); err != nil {
		return 0, f.fail(err)
	}
	if !end {
		return 0, f.flushIfFull()
	}
	n := f.spillRecords
	if err := f.finishBatch(offset + 1); err != nil {
		return 0, f.fail(err)
	}
	return n, nil
}

// applyPending applies the buffered records to the spill batch.
func (f *Follower) applyPending() error {
	for i := range f.pending {
		f.spillRecords++
		if err := f.apply(f.pending[i].key, f.pending[i].value); err != nil {
			return f.fail(err)
		}
		if err := f.flushIfFull(); err != nil {
			return err
		}
	}
	f.pending, f.pendingBytes = f.pending[:0], 0
	return nil
}

// Flush commits what a batch applied in parts has written so far (a no-op
// otherwise), so that nothing of it stays uncommitted between calls.
func (f *Follower) Flush() error {
	if f.closed || f.spill == nil || f.spill.Empty() {
		return nil
	}
	return f.commitSpill()
}

// flushIfFull commits a large spill batch of a batch applied in parts (a
// batch applied whole is committed whole).
func (f *Follower) flushIfFull() error {
	if !f.marked || f.spill.Len() < restoreBatchBytes {
		return nil
	}
	return f.commitSpill()
}

func (f *Follower) commitSpill() error {
	if err := f.spill.Commit(pebble.NoSync); err != nil {
		return f.fail(err)
	}
	if err := f.s.Err(); err != nil {
		return f.fail(err)
	}
	_ = f.spill.Close() // committed
	f.spill = f.s.db.NewIndexedBatch()
	return nil
}

func (f *Follower) fail(err error) error {
	f.Close()
	return fmt.Errorf("follow partition %d: %w", f.p, err)
}

// Close stops following: an unfinished batch is dropped (one applied in
// parts leaves p marked as being restored). What was committed stays, and
// so does the follow position of the last batch applied.
func (f *Follower) Close() {
	if f.closed {
		return
	}
	f.closed = true
	if f.spill != nil {
		_ = f.spill.Close() // discards the uncommitted part
		f.spill = nil
	}
	f.pending = nil
}

// apply applies one record to the spill batch, as Restore.Apply does.
func (f *Follower) apply(key, value []byte) error {
	if len(key) == 0 {
		return fmt.Errorf("%w: empty key", ErrChangelogCorrupt)
	}
	switch key[0] {
	case ChangelogKindOffer:
		return f.applyOffer(key[1:], value)
	case ChangelogKindOffset:
		if len(key) != 1 {
			return fmt.Errorf("%w: key %q", ErrChangelogCorrupt, key)
		}
		f.offsetSet = true
		if len(value) == 0 {
			f.offset, f.hasOffset, f.extra = 0, false, f.extra[:0]
			return nil
		}
		off, extra, err := decodeChangelogOffsets(value, f.extra)
		f.offset, f.hasOffset, f.extra = off, err == nil, extra
		return err
	case ChangelogKindPlace:
		return f.applyPlace(key, value)
	case ChangelogKindWinner:
		return f.applyWinner(key, value)
	case ChangelogKindEvent:
		if len(key) != 9 {
			return fmt.Errorf("%w: key %q", ErrChangelogCorrupt, key)
		}
		seq := binary.BigEndian.Uint64(key[1:])
		if len(value) == 0 {
			delete(f.eEvents, seq)
		} else {
			f.eEvents[seq] = bytes.Clone(value)
		}
		f.touched[seq] = true
		return nil
	case ChangelogKindAcked:
		if len(key) != 1 {
			return fmt.Errorf("%w: key %q", ErrChangelogCorrupt, key)
		}
		if len(value) == 0 {
			f.newAcked = 0
			return nil
		}
		acked, err := DecodeChangelogAcked(value)
		f.newAcked = acked
		return err
	}
	return fmt.Errorf("%w: key %q", ErrChangelogCorrupt, key)
}

// getBatch returns a copy of key's value as the spill batch sees it (nil:
// absent).
func (f *Follower) getBatch(key []byte) ([]byte, error) {
	v, closer, err := f.spill.Get(key)
	if err == pebble.ErrNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := bytes.Clone(v)
	if err := closer.Close(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: empty value of %q", ErrCorrupt, key)
	}
	return out, nil
}

func (f *Follower) applyOffer(id, value []byte) error {
	var offerVal, memVal, event []byte
	var seq uint64
	if len(value) > 0 {
		var err error
		if offerVal, memVal, seq, event, err = DecodeChangelogOffer(value); err != nil {
			return fmt.Errorf("offer %q: %w", id, err)
		}
	}
	// The event the record carries replaces the offer's (none forgets it).
	if _, ok := f.oEvents[string(id)]; ok {
		f.forgetOfferEvent(string(id))
	}
	if event != nil {
		if err := DecodeOutboxRecord(event, &f.rec); err != nil {
			return fmt.Errorf("%w: event of offer %q: %w", ErrChangelogCorrupt, id, err)
		}
		f.oEvents[string(id)] = restoreEvent{seq: seq, rec: bytes.Clone(event)}
		f.oBySeq[seq] = append(f.oBySeq[seq], string(id))
		f.touched[seq] = true
	}

	f.key = offerKey(f.key[:0], f.p, string(id))
	old, err := f.getBatch(f.key)
	if err != nil {
		return err
	}
	if !bytes.Equal(old, offerVal) {
		if err := f.indexOffer(id, old, false); err != nil {
			return err
		}
		if err := f.indexOffer(id, offerVal, true); err != nil {
			return err
		}
		if err := f.setOrDelete(f.key, offerVal); err != nil {
			return err
		}
	}
	f.key = membershipKey(f.key[:0], f.p, string(id))
	oldMem, err := f.getBatch(f.key)
	if err != nil {
		return err
	}
	if !bytes.Equal(oldMem, memVal) {
		if err := f.countMembership(id, oldMem, -1); err != nil {
			return err
		}
		if err := f.countMembership(id, memVal, 1); err != nil {
			return err
		}
		return f.setOrDelete(f.key, memVal)
	}
	return nil
}

// applyPlace applies a "p" record: the place key of group partition p,
// and its candidate key (deleted for the old place when it was live,
// written for the new one when it is live), as a restore's Finish leaves
// them.
func (f *Follower) applyPlace(key, value []byte) error {
	n := groupPartLen(key[1:])
	if n < 0 {
		return fmt.Errorf("%w: group place key %q", ErrChangelogCorrupt, key)
	}
	if len(value) > 0 && !groupValueOK(ChangelogKindPlace, value) {
		return fmt.Errorf("%w: group place %q: value %x", ErrChangelogCorrupt, key[1:], value)
	}
	f.key = appendPartition(append(f.key[:0], prefixPlace), f.p)
	f.key = append(f.key, key[1:]...)
	old, closer, err := f.spill.Get(f.key)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		old, closer, err = nil, nil, nil
	case err != nil:
		return err
	}
	same := bytes.Equal(old, value)
	var oldLive bool
	if old != nil && !same {
		f.key2, oldLive, err = appendCandidateOfPlace(f.key2[:0], f.key, old)
	}
	if closer != nil {
		err = errors.Join(err, closer.Close())
	}
	if err != nil || same {
		return err
	}
	if oldLive {
		if err := f.spill.Delete(f.key2, nil); err != nil {
			return err
		}
	}
	if len(value) == 0 {
		return f.spill.Delete(f.key, nil)
	}
	var live bool
	if f.key2, live, err = appendCandidateOfPlace(f.key2[:0], f.key, value); err != nil {
		return err
	}
	if live {
		if err := f.spill.Set(f.key2, nil, nil); err != nil {
			return err
		}
	}
	return f.spill.Set(f.key, value, nil)
}

// applyWinner applies a "w" record: the decided winner key of a group of
// group partition p.
func (f *Follower) applyWinner(key, value []byte) error {
	if n := groupPartLen(key[1:]); n != len(key)-1 {
		return fmt.Errorf("%w: group winner key %q", ErrChangelogCorrupt, key)
	}
	if len(value) > 0 && !groupValueOK(ChangelogKindWinner, value) {
		return fmt.Errorf("%w: group winner %q: value %x", ErrChangelogCorrupt, key[1:], value)
	}
	f.key = appendPartition(append(f.key[:0], prefixWinner), f.p)
	f.key = append(f.key, key[1:]...)
	if len(value) == 0 {
		return f.spill.Delete(f.key, nil)
	}
	return f.spill.Set(f.key, value, nil)
}

func (f *Follower) setOrDelete(key, val []byte) error {
	if val == nil {
		return f.spill.Delete(key, nil)
	}
	return f.spill.Set(key, val, nil)
}

// indexOffer adds (or removes) the seller index entry of a live offer
// value v, or the tombstone index entry of a tombstone, as a restore's
// Finish writes them.
func (f *Follower) indexOffer(id, v []byte, add bool) error {
	if v == nil {
		return nil
	}
	switch v[0] {
	case tagLive:
		if f.s.codec == nil {
			return fmt.Errorf("decode offer %q: the store has no codec", id)
		}
		if err := f.s.codec.UnmarshalOffer(v[1:], &f.offer); err != nil {
			return fmt.Errorf("decode offer %q: %w", id, err)
		}
		f.key2 = append(indexPrefix(f.key2[:0], f.p, f.offer.SellerID), id...)
	case tagTombstone:
		t, err := decodeTombstone(v)
		if err != nil {
			return fmt.Errorf("offer %q: %w", id, err)
		}
		f.key2 = tombstoneIndexKey(f.key2[:0], t.DeletedAt.UnixMilli(), offerKey(nil, f.p, string(id)))
	default:
		return fmt.Errorf("%w: offer %q tag %d", ErrCorrupt, id, v[0])
	}
	if add {
		return f.spill.Set(f.key2, nil, nil)
	}
	return f.spill.Delete(f.key2, nil)
}

// countMembership adds sign to the count of every feed of membership v.
func (f *Follower) countMembership(id, v []byte, sign int64) error {
	if v == nil {
		return nil
	}
	if err := DecodeMembership(v, &f.mem, f.intern); err != nil {
		return fmt.Errorf("membership %q: %w", id, err)
	}
	for i := range f.mem.Feeds {
		f.deltas[f.mem.Feeds[i].FeedID] += sign
	}
	return nil
}

// finishBatch completes the batch that ends at changelog offset next-1:
// the feed counts, the offset, the outbox, the follow position and the
// restore mark, committed with the batch's writes.
func (f *Follower) finishBatch(next int64) error {
	s, p, b := f.s, f.p, f.spill
	for feed, d := range f.deltas {
		if d == 0 {
			continue
		}
		f.key = countKey(f.key[:0], p, feed)
		cur, err := f.getBatch(f.key)
		if err != nil {
			return err
		}
		var n int64
		if cur != nil {
			if len(cur) != 8 {
				return fmt.Errorf("%w: count of %q in partition %d", ErrCorrupt, feed, p)
			}
			n = int64(binary.BigEndian.Uint64(cur))
		}
		n += d
		switch {
		case n < 0:
			return fmt.Errorf("%w: count of %q in partition %d below zero", ErrCorrupt, feed, p)
		case n == 0:
			err = b.Delete(f.key, nil)
		default:
			err = b.Set(f.key, binary.BigEndian.AppendUint64(nil, uint64(n)), nil)
		}
		if err != nil {
			return err
		}
	}
	if f.offsetSet {
		f.key = offsetKey(f.key[:0], f.offersTopic, p)
		var err error
		if f.hasOffset {
			err = b.Set(f.key, binary.BigEndian.AppendUint64(nil, uint64(f.offset)), nil)
		} else {
			err = b.Delete(f.key, nil)
		}
		if err != nil {
			return err
		}
		// As a restore: an extra topic's offset the record does not
		// carry (or carries as negative) is not stored.
		for i, topic := range f.extraTopics {
			f.key = offsetKey(f.key[:0], topic, p)
			if f.hasOffset && i < len(f.extra) && f.extra[i] >= 0 {
				err = b.Set(f.key, binary.BigEndian.AppendUint64(nil, uint64(f.extra[i])), nil)
			} else {
				err = b.Delete(f.key, nil)
			}
			if err != nil {
				return err
			}
		}
	}

	// The outbox: the events at or above the watermark, an offer's event
	// before an "e" record at the same sequence.
	switch {
	case f.newAcked < f.acked:
		// The events between the two watermarks are back in the
		// outbox. A follower that resumed knows only those that were
		// above the old one.
		if !f.complete {
			return fmt.Errorf("%w: acknowledged watermark went back from %d to %d", ErrFollowRestart, f.acked, f.newAcked)
		}
		for seq := range f.eEvents {
			if seq >= f.newAcked && seq < f.acked {
				f.touched[seq] = true
			}
		}
		for _, e := range f.oEvents {
			if e.seq >= f.newAcked && e.seq < f.acked {
				f.touched[e.seq] = true
			}
		}
	case f.newAcked > f.acked:
		if err := b.DeleteRange(outboxKey(nil, p, 0), outboxKey(nil, p, f.newAcked), nil); err != nil {
			return err
		}
		for seq := range f.out {
			if seq < f.newAcked {
				delete(f.out, seq)
			}
		}
	}
	f.acked = f.newAcked
	for seq := range f.touched {
		if seq < f.acked {
			continue
		}
		want, n := f.offerEventAt(seq)
		if n > 1 {
			// A restore refuses two events at one sequence.
			return fmt.Errorf("%w: two events at outbox sequence %d", ErrChangelogCorrupt, seq)
		}
		if want == nil {
			want = f.eEvents[seq]
		}
		f.key = outboxKey(f.key[:0], p, seq)
		var err error
		if want != nil {
			err = b.Set(f.key, want, nil)
			f.out[seq] = true
		} else if f.out[seq] {
			err = b.Delete(f.key, nil)
			delete(f.out, seq)
		}
		if err != nil {
			return err
		}
	}
	if err := b.Delete(metaPartitionKey(nil, metaRestoring, p), nil); err != nil {
		return err
	}
	now := time.Now()
	pos := metaPartitionKey(nil, metaFollow, p)
	var err error
	if !f.offerEventsAbove(f.acked) {
		err = b.Set(pos, appendFollowPosition(nil, FollowPosition{Next: next, Acked: f.acked, At: now}), nil)
	} else {
		// Offers' events are not kept where a resume finds them (a
		// resume takes the outbox for "e" records): no position, a
		// later follower starts from the beginning.
		err = b.Delete(pos, nil)
	}
	if err != nil {
		return err
	}

	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	next0 := max(s.nextOutbox[p], f.acked)
	for seq := range f.out {
		next0 = max(next0, seq+1)
	}
	if err := b.Set(metaPartitionKey(nil, metaOutboxNext, p), binary.BigEndian.AppendUint64(nil, next0), nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return err
	}
	if err := s.Err(); err != nil {
		return err
	}
	_ = b.Close() // committed
	f.spill, f.marked = nil, false
	f.publishOutboxLocked(next0)
	f.applied = next
	f.spillRecords = 0
	clear(f.touched)
	clear(f.deltas)
	f.offsetSet = false
	if len(f.names) > 4096 {
		clear(f.names)
	}
	return nil
}

// offerEventsAbove reports whether an offer record's event at or above
// seq is remembered.
func (f *Follower) offerEventsAbove(seq uint64) bool {
	for _, e := range f.oEvents {
		if e.seq >= seq {
			return true
		}
	}
	return false
}

// forgetOfferEvent forgets the event offer id's record carried.
func (f *Follower) forgetOfferEvent(id string) {
	e := f.oEvents[id]
	delete(f.oEvents, id)
	ids := slices.DeleteFunc(f.oBySeq[e.seq], func(x string) bool { return x == id })
	if len(ids) == 0 {
		delete(f.oBySeq, e.seq)
	} else {
		f.oBySeq[e.seq] = ids
	}
	f.touched[e.seq] = true
}

// offerEventAt returns the event an offer record carries at outbox
// sequence seq, and how many offers carry one there.
func (f *Follower) offerEventAt(seq uint64) (rec []byte, n int) {
	ids := f.oBySeq[seq]
	if len(ids) == 0 {
		return nil, 0
	}
	return f.oEvents[ids[0]].rec, len(ids)
}

// publishOutboxLocked sets the store's view of p's outbox to f.out, with
// next as p's next sequence (s.commitMu held; the keys are committed).
func (f *Follower) publishOutboxLocked(next uint64) {
	s, p := f.s, f.p
	s.nextOutbox[p] = max(s.nextOutbox[p], next)
	seqs := slices.Sorted(maps.Keys(f.out))
	if len(seqs) == 0 {
		s.headOutbox[p] = s.nextOutbox[p]
		delete(s.restoredOutbox, p)
		return
	}
	s.headOutbox[p] = seqs[0]
	s.restoredOutbox[p] = seqs
}
