package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/feedmill/feedmill/internal/records"
)

// Presence says whether a key holds a live record, a tombstone or nothing.
type Presence uint8

// Presence values.
const (
	Absent Presence = iota
	Live
	Deleted
)

// Tombstone is what remains of a deleted record for tombstone_retention.
type Tombstone struct {
	Version   int64
	DeletedAt time.Time
}

const (
	tagLive      = 1
	tagTombstone = 2
)

// Batch is one atomic write: state changes, consumed offsets and outbox
// records, committed together by Commit. Reads through a Batch see its own
// uncommitted writes. A Batch is not safe for concurrent use; Close it when
// done (Commit does not close it).
type Batch struct {
	s      *Store
	b      *pebble.Batch
	key    []byte
	val    []byte
	outbox []pendingOutbox
	// outboxParts holds, per partition the batch added outbox records
	// to, the store's next sequence when the first was added and how many
	// were added (few partitions per batch: a slice, not a map).
	outboxParts []outboxPart
}

type pendingOutbox struct {
	p   int32
	seq uint64
	val []byte
}

type outboxPart struct {
	p    int32
	base uint64
	n    uint64
}

// NewBatch starts an indexed batch.
func (s *Store) NewBatch() *Batch {
	return &Batch{s: s, b: s.db.NewIndexedBatch()}
}

// Close releases the batch; an uncommitted batch is discarded.
func (b *Batch) Close() error { return b.b.Close() }

// Empty reports whether the batch holds no writes.
func (b *Batch) Empty() bool { return b.b.Empty() && len(b.outbox) == 0 }

// Size returns the batch's encoded size in bytes.
func (b *Batch) Size() int { return b.b.Len() }

func (b *Batch) get(key []byte, fn func(v []byte) error) (bool, error) {
	v, closer, err := b.b.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer closer.Close()
	return true, fn(v)
}

func (b *Batch) set(key, val []byte) error { return b.b.Set(key, val, nil) }

func decodeTombstone(v []byte) (Tombstone, error) {
	r := reader{b: v[1:]}
	t := Tombstone{Version: r.varint("tombstone version")}
	t.DeletedAt = time.UnixMilli(r.varint("tombstone time"))
	return t, r.err
}

func appendTombstone(dst []byte, version int64, at time.Time) []byte {
	dst = append(dst, tagTombstone)
	dst = binary.AppendVarint(dst, version)
	return binary.AppendVarint(dst, at.UnixMilli())
}

// getRecord reads a live-or-tombstone value and decodes the live one with
// unmarshal.
func (b *Batch) getRecord(key []byte, what string, unmarshal func([]byte) error) (Presence, Tombstone, error) {
	pres, tomb := Absent, Tombstone{}
	_, err := b.get(key, func(v []byte) error {
		if len(v) == 0 {
			return fmt.Errorf("%w: empty %s", ErrCorrupt, what)
		}
		switch v[0] {
		case tagLive:
			pres = Live
			return unmarshal(v[1:])
		case tagTombstone:
			pres = Deleted
			var err error
			tomb, err = decodeTombstone(v)
			return err
		default:
			return fmt.Errorf("%w: %s tag %d", ErrCorrupt, what, v[0])
		}
	})
	if err != nil {
		return Absent, Tombstone{}, fmt.Errorf("read %s %q: %w", what, key[1:], err)
	}
	return pres, tomb, nil
}

// GetOffer reads offer id of partition p into dst (when Live).
func (b *Batch) GetOffer(p int32, id string, dst *records.Offer) (Presence, Tombstone, error) {
	b.key = offerKey(b.key[:0], p, id)
	return b.getRecord(b.key, "offer", func(v []byte) error { return b.s.codec.UnmarshalOffer(v, dst) })
}

// PutOffer stores o as the live offer.
func (b *Batch) PutOffer(p int32, o *records.Offer) error {
	b.key = offerKey(b.key[:0], p, o.ID)
	b.val = append(b.val[:0], tagLive)
	var err error
	if b.val, err = b.s.codec.MarshalOffer(b.val, o); err != nil {
		return fmt.Errorf("encode offer %q: %w", o.ID, err)
	}
	return b.set(b.key, b.val)
}

// DeleteOffer replaces offer id with a tombstone.
func (b *Batch) DeleteOffer(p int32, id string, version int64, at time.Time) error {
	b.key = offerKey(b.key[:0], p, id)
	return b.putTombstone(version, at)
}

// putTombstone writes a tombstone at b.key and indexes it by time.
func (b *Batch) putTombstone(version int64, at time.Time) error {
	b.val = appendTombstone(b.val[:0], version, at)
	if err := b.set(b.key, b.val); err != nil {
		return err
	}
	b.val = tombstoneIndexKey(b.val[:0], at.UnixMilli(), b.key)
	return b.set(b.val, nil)
}

// SweepTombstones forgets up to limit tombstones deleted before cutoff
// (and the memberships of those offers), so a late record for them is
// accepted again as new. It returns how many it removed.
func (b *Batch) SweepTombstones(cutoff time.Time, limit int) (int, error) {
	upper := tombstoneIndexKey(nil, cutoff.UnixMilli(), nil)
	it, err := b.b.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixTombIndex}, UpperBound: upper})
	if err != nil {
		return 0, fmt.Errorf("scan tombstones: %w", err)
	}
	defer it.Close()
	n := 0
	for it.First(); it.Valid() && n < limit; it.Next() {
		idx := it.Key()
		if len(idx) < 10 {
			return n, fmt.Errorf("%w: tombstone index key", ErrCorrupt)
		}
		at := int64(binary.BigEndian.Uint64(idx[1:9]))
		key := append([]byte(nil), idx[9:]...)
		// Only a key that still holds this tombstone is forgotten: a
		// record re-created (or deleted again) since keeps its value.
		stillTomb := false
		if _, err := b.get(key, func(v []byte) error {
			if len(v) > 0 && v[0] == tagTombstone {
				t, err := decodeTombstone(v)
				stillTomb = err == nil && t.DeletedAt.UnixMilli() == at
			}
			return nil
		}); err != nil {
			return n, err
		}
		if stillTomb {
			if err := b.b.Delete(key, nil); err != nil {
				return n, err
			}
			if key[0] == prefixOffer {
				mk := append([]byte{prefixMembership}, key[1:]...)
				if err := b.b.Delete(mk, nil); err != nil {
					return n, err
				}
			}
		}
		if err := b.b.Delete(append([]byte(nil), idx...), nil); err != nil {
			return n, err
		}
		n++
	}
	return n, it.Error()
}

// PutIndex records that offerID (partition p) belongs to sellerID.
func (b *Batch) PutIndex(p int32, sellerID, offerID string) error {
	b.key = indexKey(b.key[:0], p, sellerID, offerID)
	return b.set(b.key, nil)
}

// DeleteIndex removes offerID from sellerID's index.
func (b *Batch) DeleteIndex(p int32, sellerID, offerID string) error {
	b.key = indexKey(b.key[:0], p, sellerID, offerID)
	return b.b.Delete(b.key, nil)
}

// ScanSellerOffers calls fn with up to limit offer ids of sellerID in
// partition p, greater than after, in order (seeing this batch's writes).
func (b *Batch) ScanSellerOffers(p int32, sellerID, after string, limit int, fn func(offerID string) error) (int, error) {
	n, err := b.scanAfter(indexPrefix(nil, p, sellerID), after, limit, fn)
	if err != nil {
		err = fmt.Errorf("scan offers of seller %q: %w", sellerID, err)
	}
	return n, err
}

// HasSellerOffers reports whether sellerID has any offer in partition p
// (seeing this batch's writes).
func (b *Batch) HasSellerOffers(p int32, sellerID string) (bool, error) {
	prefix := indexPrefix(nil, p, sellerID)
	it, err := b.b.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return false, fmt.Errorf("scan offers of seller %q: %w", sellerID, err)
	}
	found := it.First()
	if err := it.Close(); err != nil {
		return false, err
	}
	return found, nil
}

// GetMembership reads the membership of offer id into dst; false when none.
func (b *Batch) GetMembership(p int32, id string, dst *Membership, intern Interner) (bool, error) {
	b.key = membershipKey(b.key[:0], p, id)
	found, err := b.get(b.key, func(v []byte) error { return DecodeMembership(v, dst, intern) })
	if err != nil {
		return false, fmt.Errorf("read membership %q: %w", id, err)
	}
	if !found {
		dst.Reset()
	}
	return found, nil
}

// PutMembership stores m for offer id.
func (b *Batch) PutMembership(p int32, id string, m *Membership) error {
	b.key = membershipKey(b.key[:0], p, id)
	b.val = AppendMembership(b.val[:0], m)
	return b.set(b.key, b.val)
}

// DeleteMembership removes the membership of offer id.
func (b *Batch) DeleteMembership(p int32, id string) error {
	b.key = membershipKey(b.key[:0], p, id)
	return b.b.Delete(b.key, nil)
}

// SetOffset records that partition p of topic is consumed up to next.
func (b *Batch) SetOffset(topic string, p int32, next int64) error {
	b.key = offsetKey(b.key[:0], topic, p)
	b.val = binary.BigEndian.AppendUint64(b.val[:0], uint64(next))
	return b.set(b.key, b.val)
}

// Offset returns the stored next offset of topic partition p, as the
// batch sees it (ok false: none).
func (b *Batch) Offset(topic string, p int32) (next int64, ok bool, err error) {
	b.key = offsetKey(b.key[:0], topic, p)
	ok, err = b.get(b.key, func(v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("%w: offset of %s/%d", ErrCorrupt, topic, p)
		}
		next = int64(binary.BigEndian.Uint64(v))
		return nil
	})
	return next, ok, err
}

// SetCount stores the live member count of feedID in offers partition p.
func (b *Batch) SetCount(p int32, feedID string, n int64) error {
	b.key = countKey(b.key[:0], p, feedID)
	b.val = binary.BigEndian.AppendUint64(b.val[:0], uint64(n))
	return b.set(b.key, b.val)
}

// PutJob stores (or restarts) the job of j.SellerID in j.Partition.
func (b *Batch) PutJob(j *Job) error {
	b.key = jobKey(b.key[:0], j.Partition, j.SellerID)
	b.val = appendJob(b.val[:0], j)
	return b.set(b.key, b.val)
}

// GetJob reads the job of sellerID in partition p as the batch sees it.
func (b *Batch) GetJob(p int32, sellerID string) (Job, bool, error) {
	var j Job
	b.key = jobKey(b.key[:0], p, sellerID)
	ok, err := b.get(b.key, func(v []byte) error {
		var err error
		j, err = decodeJob(p, sellerID, v)
		return err
	})
	return j, ok, err
}

// DeleteJob removes the job of sellerID in partition p.
func (b *Batch) DeleteJob(p int32, sellerID string) error {
	b.key = jobKey(b.key[:0], p, sellerID)
	return b.b.Delete(b.key, nil)
}

// DeleteJobs removes every job of partition p.
func (b *Batch) DeleteJobs(p int32) error {
	prefix := partitionPrefix(prefixJob, p)
	return b.b.DeleteRange(prefix, prefixEnd(prefix), nil)
}

// ErrOutboxMoved is returned (wrapped) by Batch.Commit when another batch
// committed outbox records of a partition after this batch took its
// sequence numbers: each outbox partition must have one writer.
var ErrOutboxMoved = errors.New("another batch committed in between")

// AddOutbox stages r to be produced once the batch commits and returns the
// outbox sequence it will be committed at and its encoding
// (AppendOutboxRecord). The sequence is assigned now: the store's next
// sequence of p when the batch first added a record of p, plus the records
// of p added since. enc is owned by the batch: do not modify it; it is
// valid until the batch is closed. Commit fails with ErrOutboxMoved if
// another batch committed records of p in between.
func (b *Batch) AddOutbox(p int32, r *OutboxRecord) (seq uint64, enc []byte) {
	i := 0
	for i < len(b.outboxParts) && b.outboxParts[i].p != p {
		i++
	}
	if i == len(b.outboxParts) {
		b.s.commitMu.Lock()
		base := b.s.nextOutbox[p]
		b.s.commitMu.Unlock()
		b.outboxParts = append(b.outboxParts, outboxPart{p: p, base: base})
	}
	part := &b.outboxParts[i]
	seq = part.base + part.n
	part.n++
	enc = AppendOutboxRecord(nil, r)
	b.outbox = append(b.outbox, pendingOutbox{p: p, seq: seq, val: enc})
	return seq, enc[:len(enc):len(enc)]
}

// OutboxLen returns how many outbox records the batch holds.
func (b *Batch) OutboxLen() int { return len(b.outbox) }

// Commit writes everything atomically; with sync it is durable on return.
// The outbox records are committed at the sequences AddOutbox returned,
// with the next sequence of each of their partitions (the 'z' 'q' key).
// It fails with an error wrapping ErrOutboxMoved, committing nothing, when
// another batch committed records of one of those partitions since this
// one added its first, or is committing some now. Batches of different
// outbox partitions commit concurrently (Pebble groups their syncs).
func (b *Batch) Commit(sync bool) error {
	s := b.s
	s.commitMu.Lock()
	if err := s.Err(); err != nil {
		s.commitMu.Unlock()
		return fmt.Errorf("commit state batch: %w", err)
	}
	for _, part := range b.outboxParts {
		if s.nextOutbox[part.p] != part.base || s.committing[part.p] {
			s.commitMu.Unlock()
			return fmt.Errorf("outbox sequence of partition %d moved: %w", part.p, ErrOutboxMoved)
		}
	}
	for _, part := range b.outboxParts {
		s.committing[part.p] = true
	}
	s.commitMu.Unlock()
	err := b.commitReserved(sync)
	s.commitMu.Lock()
	for _, part := range b.outboxParts {
		delete(s.committing, part.p)
		if err == nil {
			s.nextOutbox[part.p] = part.base + part.n
			if _, ok := s.headOutbox[part.p]; !ok {
				s.headOutbox[part.p] = part.base
			}
		}
	}
	s.commitMu.Unlock()
	if err != nil {
		return err
	}
	if len(b.outbox) > 0 {
		select {
		case s.outboxNotify <- struct{}{}:
		default:
		}
	}
	return nil
}

// commitReserved stages the outbox records and commits, the sequences of
// their partitions reserved by Commit.
func (b *Batch) commitReserved(sync bool) error {
	for _, o := range b.outbox {
		b.key = outboxKey(b.key[:0], o.p, o.seq)
		if err := b.set(b.key, o.val); err != nil {
			return fmt.Errorf("stage outbox: %w", err)
		}
	}
	for _, part := range b.outboxParts {
		b.key = metaPartitionKey(b.key[:0], metaOutboxNext, part.p)
		b.val = binary.BigEndian.AppendUint64(b.val[:0], part.base+part.n)
		if err := b.set(b.key, b.val); err != nil {
			return fmt.Errorf("stage outbox: %w", err)
		}
	}
	wo := pebble.NoSync
	if sync {
		wo = pebble.Sync
	}
	if err := b.b.Commit(wo); err != nil {
		return fmt.Errorf("commit state batch: %w", err)
	}
	if err := b.s.Err(); err != nil {
		// Pebble reported a fatal commit error through its logger and
		// returned nil: the batch is not durable.
		return fmt.Errorf("commit state batch: %w", err)
	}
	return nil
}
