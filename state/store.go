package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"

	"github.com/feedmill/feedmill/internal/records"
)

// Store is the Pebble database of one feedmill instance.
//
// Reads through Store methods are safe for concurrent use. Writes go through
// Batch; Batch.Commit serialises outbox sequence assignment so that outbox
// keys are committed in increasing order per partition, which the relay
// relies on.
type Store struct {
	db     *pebble.DB
	codec  Codec
	logger *zap.Logger
	// failure is set when Pebble reports a fatal error (pebbleLogger).
	failure *failure

	commitMu sync.Mutex
	// committing marks the outbox partitions a batch is committing
	// (Batch.Commit): another batch of one of them fails.
	committing map[int32]bool
	// nextOutbox is the next outbox sequence number per partition.
	nextOutbox map[int32]uint64
	// headOutbox is the lowest outbox sequence number not yet deleted per
	// partition (== nextOutbox when the partition's outbox is empty).
	headOutbox map[int32]uint64
	// restoredOutbox holds, per partition, the sequences a restore put
	// back in the outbox (sorted), which leave holes between them, until
	// the head passes them: OutboxDepth counts those, not the span.
	restoredOutbox map[int32][]uint64
	// outboxNotify is signalled (non-blocking) after every commit that
	// added outbox records.
	outboxNotify chan struct{}
}

// Codec encodes the records kept in state (a *records.Serde).
type Codec interface {
	MarshalOffer(dst []byte, o *records.Offer) ([]byte, error)
	UnmarshalOffer(b []byte, o *records.Offer) error
	MarshalSeller(dst []byte, s *records.Seller) ([]byte, error)
	UnmarshalSeller(b []byte, s *records.Seller) error
	MarshalRating(dst []byte, r *records.Rating) ([]byte, error)
	UnmarshalRating(b []byte, r *records.Rating) error
}

// Options tunes Pebble; zero values take defaults.
type Options struct {
	// CacheBytes is the block cache size (default 256 MiB).
	CacheBytes int64
	// MemTableBytes is the memtable size (default 64 MiB).
	MemTableBytes uint64
	// FS is the file system (default the OS's); tests inject failures.
	FS vfs.FS
}

// Open opens (creating if needed) the state in dir.
func Open(dir string, codec Codec, o Options, logger *zap.Logger) (*Store, error) {
	if o.CacheBytes <= 0 {
		o.CacheBytes = 256 << 20
	}
	if o.MemTableBytes == 0 {
		o.MemTableBytes = 64 << 20
	}
	cache := pebble.NewCache(o.CacheBytes)
	defer cache.Unref()
	// Pebble's Fatalf would exit the process with no shutdown; ours
	// marks the store failed instead (Store.Failed, Store.Err).
	failed := newFailure()
	popts := &pebble.Options{
		Cache:        cache,
		MemTableSize: o.MemTableBytes,
		Logger:       newPebbleLogger(logger.Named("pebble"), time.Now, failed.fail),
		FS:           o.FS,
	}
	db, err := pebble.Open(dir, popts)
	if err != nil {
		return nil, fmt.Errorf("open state %q: %w", dir, err)
	}
	s := &Store{db: db, codec: codec, logger: logger, failure: failed, committing: map[int32]bool{}, nextOutbox: map[int32]uint64{}, headOutbox: map[int32]uint64{}, restoredOutbox: map[int32][]uint64{}, outboxNotify: make(chan struct{}, 1)}
	if err := s.migrate(); err != nil {
		_ = db.Close() // the migration error is what the caller needs
		return nil, err
	}
	if err := s.loadOutboxHeads(); err != nil {
		_ = db.Close() // the load error is what the caller needs
		return nil, err
	}
	return s, nil
}

// Close flushes and closes the database.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close state: %w", err)
	}
	return nil
}

// DB exposes the underlying Pebble database to state-package siblings in
// other files (full pass snapshots, metrics). Callers outside state use the
// typed methods.
func (s *Store) DB() *pebble.DB { return s.db }

// OutboxNotify is signalled after each commit that added outbox records.
func (s *Store) OutboxNotify() <-chan struct{} { return s.outboxNotify }

// loadOutboxHeads sets the next and head outbox sequence of every
// partition from the outbox keys and the stored next sequences ('z' 'q'):
// next is the larger of the last key + 1 and the stored next, so
// sequences never go back, even once a partition's outbox is empty.
func (s *Store) loadOutboxHeads() error {
	if err := s.loadOutboxNext(); err != nil {
		return err
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixOutbox}, UpperBound: []byte{prefixOutbox + 1}})
	if err != nil {
		return fmt.Errorf("scan outbox: %w", err)
	}
	defer it.Close()
	// Jump from partition to partition: SeekLT to the end of each one.
	for valid := it.First(); valid; {
		k := it.Key()
		if len(k) != 13 {
			return fmt.Errorf("%w: outbox key length %d", ErrCorrupt, len(k))
		}
		p := int32(binary.BigEndian.Uint32(k[1:5]))
		s.headOutbox[p] = binary.BigEndian.Uint64(k[5:13])
		end := outboxPrefix(nil, p)
		end = prefixEnd(end)
		if !it.SeekLT(end) {
			break
		}
		last := binary.BigEndian.Uint64(it.Key()[5:13])
		s.nextOutbox[p] = max(s.nextOutbox[p], last+1)
		valid = it.SeekGE(end)
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("scan outbox: %w", err)
	}
	// A partition whose outbox is empty has its head at its next.
	for p, next := range s.nextOutbox {
		if _, ok := s.headOutbox[p]; !ok {
			s.headOutbox[p] = next
		}
	}
	return nil
}

// loadOutboxNext reads the stored next outbox sequences into s.nextOutbox.
func (s *Store) loadOutboxNext() error {
	prefix := []byte{prefixMeta, metaOutboxNext}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("scan outbox next: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) != 6 || len(v) != 8 {
			return fmt.Errorf("%w: outbox next key %q", ErrCorrupt, k)
		}
		s.nextOutbox[int32(binary.BigEndian.Uint32(k[2:6]))] = binary.BigEndian.Uint64(v)
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("scan outbox next: %w", err)
	}
	return nil
}

// SetOutboxNext raises the next outbox sequence of partition p to next,
// durably (Sync); it never lowers it (a smaller next is a no-op), since
// sequences must not go back: a changelog's acknowledged watermark is a
// sequence. Records of p committed from then on get sequences from next.
// Safe for concurrent use; a batch that added records of p before the
// change fails its Commit with ErrOutboxMoved.
func (s *Store) SetOutboxNext(p int32, next uint64) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	if next <= s.nextOutbox[p] {
		return nil
	}
	v := binary.BigEndian.AppendUint64(nil, next)
	if err := s.db.Set(metaPartitionKey(nil, metaOutboxNext, p), v, pebble.Sync); err != nil {
		return fmt.Errorf("set outbox next of partition %d: %w", p, err)
	}
	s.raiseOutboxNextLocked(p, next)
	return nil
}

// raiseOutboxNextLocked sets the in-memory next of p to next (> the
// current); a partition with an empty outbox moves its head along. The
// caller holds commitMu and has stored next.
func (s *Store) raiseOutboxNextLocked(p int32, next uint64) {
	old := s.nextOutbox[p]
	s.nextOutbox[p] = next
	if head, ok := s.headOutbox[p]; !ok || head >= old {
		s.headOutbox[p] = next
	}
}

func (s *Store) get(key []byte, fn func(v []byte) error) (bool, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer closer.Close()
	return true, fn(v)
}

// Offsets returns the stored next offset to consume per partition of topic.
func (s *Store) Offsets(topic string) (map[int32]int64, error) {
	prefix := append([]byte{prefixOffset}, binary.BigEndian.AppendUint16(nil, uint16(len(topic)))...)
	prefix = append(prefix, topic...)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("scan offsets of %q: %w", topic, err)
	}
	defer it.Close()
	out := map[int32]int64{}
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()[len(prefix):]
		v := it.Value()
		if len(k) != 4 || len(v) != 8 {
			return nil, fmt.Errorf("%w: offset of %q", ErrCorrupt, topic)
		}
		out[int32(binary.BigEndian.Uint32(k))] = int64(binary.BigEndian.Uint64(v))
	}
	return out, it.Error()
}

// Counts returns the stored live member count per feed id, summed over
// the offers partitions keep accepts (nil: all of them).
func (s *Store) Counts(keep func(p int32) bool) (map[string]int64, error) {
	out := map[string]int64{}
	err := s.scanCounts(nil, func(p int32, feed string, n int64) {
		if keep == nil || keep(p) {
			out[feed] += n
		}
	})
	return out, err
}

// PartitionCounts returns the stored live member count per feed id of
// offers partition p.
func (s *Store) PartitionCounts(p int32) (map[string]int64, error) {
	out := map[string]int64{}
	err := s.scanCounts(partitionPrefix(prefixCount, p), func(_ int32, feed string, n int64) { out[feed] = n })
	return out, err
}

func (s *Store) scanCounts(prefix []byte, fn func(p int32, feed string, n int64)) error {
	if prefix == nil {
		prefix = []byte{prefixCount}
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("scan counts: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		k, v := it.Key(), it.Value()
		if len(v) != 8 || len(k) < 5 {
			return fmt.Errorf("%w: count key %q", ErrCorrupt, k)
		}
		fn(int32(binary.BigEndian.Uint32(k[1:5])), string(k[5:]), int64(binary.BigEndian.Uint64(v)))
	}
	return it.Error()
}

// Job is a pending re-evaluation of the offers of one seller in one
// offers partition, after a seller or rating change. It advances in
// bounded chunks, each committed with its events by the partition's task.
// A job of a partition the instance does not own stays pending until it
// is owned again, so its memberships catch up with every table change the
// instance applied, whatever moved when.
type Job struct {
	SellerID  string
	Partition int32
	// After is the last offer id done ("" = none yet).
	After string
	// SourceTimeMs is the timestamp of the change that started the job.
	SourceTimeMs int64
	// Changed is the feeds.FieldMask of the joined-view fields the
	// change(s) touched; only feeds reading them are re-evaluated.
	Changed uint64
	// Feeds names the feeds a feed change job (a backfill: SellerID has
	// the FeedJobPrefix) re-evaluates the partition's offers for.
	Feeds []string
}

// FeedJobPrefix starts the seller id of a feed change job: a job that
// re-evaluates every offer of its partition after the feed set changed
// (no seller id starts with a zero byte).
const FeedJobPrefix = "\x00feeds/"

// Job encodings: version 4 has no feeds; version 5 appends them.
const (
	jobVersion      = 4
	jobVersionFeeds = 5
)

func appendJob(dst []byte, j *Job) []byte {
	v := byte(jobVersion)
	if len(j.Feeds) > 0 {
		v = jobVersionFeeds
	}
	dst = append(dst, v)
	dst = appendString(dst, j.After)
	dst = binary.AppendVarint(dst, j.SourceTimeMs)
	dst = binary.AppendUvarint(dst, j.Changed)
	if v == jobVersionFeeds {
		dst = binary.AppendUvarint(dst, uint64(len(j.Feeds)))
		for _, f := range j.Feeds {
			dst = appendString(dst, f)
		}
	}
	return dst
}

func decodeJob(p int32, sellerID string, b []byte) (Job, error) {
	if len(b) == 0 || (b[0] != jobVersion && b[0] != jobVersionFeeds) {
		return Job{}, fmt.Errorf("%w: job of seller %q in partition %d", ErrCorrupt, sellerID, p)
	}
	r := reader{b: b[1:]}
	j := Job{SellerID: sellerID, Partition: p}
	j.After = string(r.bytes("job cursor"))
	j.SourceTimeMs = r.varint("job time")
	j.Changed = r.uvarint("job fields")
	if b[0] == jobVersionFeeds {
		n := r.uvarint("job feeds")
		if n > uint64(len(r.b)) {
			return Job{}, fmt.Errorf("%w: job feed count %d", ErrCorrupt, n)
		}
		for range n {
			j.Feeds = append(j.Feeds, string(r.bytes("job feed")))
		}
	}
	if r.err != nil {
		return Job{}, fmt.Errorf("job of seller %q in partition %d: %w", sellerID, p, r.err)
	}
	return j, nil
}

// Jobs returns the pending seller jobs of offers partition p, by seller id.
func (s *Store) Jobs(p int32) ([]Job, error) { return s.jobs(partitionPrefix(prefixJob, p)) }

// AllJobs returns every pending seller job, by partition and seller id.
func (s *Store) AllJobs() ([]Job, error) { return s.jobs([]byte{prefixJob}) }

func (s *Store) jobs(prefix []byte) ([]Job, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("scan jobs: %w", err)
	}
	defer it.Close()
	var out []Job
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) < 5 {
			return nil, fmt.Errorf("%w: job key %q", ErrCorrupt, k)
		}
		j, err := decodeJob(int32(binary.BigEndian.Uint32(k[1:5])), string(k[5:]), it.Value())
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, it.Error()
}

// OutboxPartitions lists the partitions that have outbox records.
func (s *Store) OutboxPartitions() []int32 {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	out := make([]int32, 0, len(s.nextOutbox))
	for p := range s.nextOutbox {
		out = append(out, p)
	}
	return out
}

// ScanOutbox calls fn for up to max outbox records of partition p with a
// sequence greater than or equal to from, in order. The record passed to fn
// aliases iterator memory valid only during the call. It returns the number
// of records visited.
func (s *Store) ScanOutbox(p int32, from uint64, max int, fn func(seq uint64, r *OutboxRecord) error) (int, error) {
	lower := outboxKey(nil, p, from)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(outboxPrefix(nil, p))})
	if err != nil {
		return 0, fmt.Errorf("scan outbox of partition %d: %w", p, err)
	}
	defer it.Close()
	var rec OutboxRecord
	n := 0
	for it.First(); it.Valid() && n < max; it.Next() {
		seq := binary.BigEndian.Uint64(it.Key()[5:13])
		if err := DecodeOutboxRecord(it.Value(), &rec); err != nil {
			return n, fmt.Errorf("outbox %d/%d: %w", p, seq, err)
		}
		if err := fn(seq, &rec); err != nil {
			return n, err
		}
		n++
	}
	return n, it.Error()
}

// OutboxEmpty reports whether every committed outbox record has been
// relayed and deleted.
func (s *Store) OutboxEmpty() (bool, error) {
	for _, p := range s.OutboxPartitions() {
		n, err := s.ScanOutbox(p, 0, 1, func(uint64, *OutboxRecord) error { return nil })
		if err != nil || n > 0 {
			return false, err
		}
	}
	return true, nil
}

// CaughtUp reports whether the state has applied every input record below
// ends (topic → partition → end offset), no seller job is pending and the
// outbox is empty: everything the input caused has been produced. Tests,
// the crash test and the bench harness wait on it.
func (s *Store) CaughtUp(ends map[string]map[int32]int64) (bool, error) {
	for topic, parts := range ends {
		stored, err := s.Offsets(topic)
		if err != nil {
			return false, err
		}
		for p, end := range parts {
			if end > 0 && stored[p] < end {
				return false, nil
			}
		}
	}
	jobs, err := s.AllJobs()
	if err != nil || len(jobs) > 0 {
		return false, err
	}
	return s.OutboxEmpty()
}

// DeleteOutbox deletes the outbox records of partition p with sequence in
// [from, to] after they were acknowledged. The relay deletes prefixes:
// every record of p below from is already deleted.
func (s *Store) DeleteOutbox(p int32, from, to uint64) error {
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange(outboxKey(nil, p, from), outboxKey(nil, p, to+1), nil); err != nil {
		return fmt.Errorf("delete outbox %d [%d,%d]: %w", p, from, to, err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("delete outbox %d [%d,%d]: %w", p, from, to, err)
	}
	s.commitMu.Lock()
	if to+1 > s.headOutbox[p] {
		s.headOutbox[p] = to + 1
	}
	if rs := s.restoredOutbox[p]; len(rs) > 0 && rs[len(rs)-1] < s.headOutbox[p] {
		delete(s.restoredOutbox, p)
	}
	s.commitMu.Unlock()
	return nil
}

// OutboxDepth returns the number of records committed to the outbox and
// not yet deleted (acknowledged by Kafka or sent to rejects), from the
// store's own per-partition bounds: it is right whatever the relay did.
func (s *Store) OutboxDepth() int64 { return s.OutboxDepthOf(nil) }

// OutboxDepthOf is OutboxDepth over the partitions for which keep reports
// true (nil: all).
func (s *Store) OutboxDepthOf(keep func(p int32) bool) int64 {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	var n int64
	for p, next := range s.nextOutbox {
		if keep != nil && !keep(p) {
			continue
		}
		head := s.headOutbox[p]
		if rs := s.restoredOutbox[p]; len(rs) > 0 {
			i, _ := slices.BinarySearch(rs, head)
			n += int64(len(rs) - i)
			head = max(head, rs[len(rs)-1]+1)
		}
		if next > head {
			n += int64(next - head)
		}
	}
	return n
}

// OutboxHead returns the lowest outbox sequence of partition p that may
// still be in the outbox: every record of p below it was deleted. After a
// restore of p it is the first sequence the restore put back (or the next
// sequence), wherever a relay of p had got to before.
func (s *Store) OutboxHead(p int32) uint64 {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	return s.headOutbox[p]
}

// NextOutbox returns the next outbox sequence number of partition p: every
// committed record of p has a smaller one.
func (s *Store) NextOutbox(p int32) uint64 {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	return s.nextOutbox[p]
}

var _ io.Closer = (*pebble.Batch)(nil)
