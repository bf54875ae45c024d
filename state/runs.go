package state

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Run statuses (docs/contract.md, HTTP endpoints).
const (
	RunRunning   = "running"
	RunPublished = "published"
	RunHeld      = "held"
	RunRejected  = "rejected"
	RunFailed    = "failed"
)

// Run is one full pass as kept in state and shown by /api/runs. The JSON
// field names are the contract's.
type Run struct {
	ID          string     `json:"id"`
	Status      string     `json:"status"`
	StartedAt   time.Time  `json:"started_at"`
	FinishedAt  *time.Time `json:"finished_at"`
	Feeds       []RunFeed  `json:"feeds"`
	Corrections int64      `json:"corrections"`
	Refreshes   int64      `json:"refreshes"`
	Reason      string     `json:"reason"`

	// Scanned is how many offer keys the pass read.
	Scanned int64 `json:"scanned"`
	// Listed is how many offers the pass listed for correction or refresh.
	Listed int64 `json:"listed"`
	// Applied is set once the listed corrections and refreshes were
	// applied (or discarded); a published run without it is resumed on
	// start.
	Applied bool `json:"applied"`
	// NowMs is the evaluation time of the pass (unix ms).
	NowMs int64 `json:"now_ms"`
	// Partitions are the offers partitions the pass covered (the ones
	// this instance owned when it started), of PartitionsTotal.
	Partitions      []int32 `json:"partitions"`
	PartitionsTotal int32   `json:"partitions_total"`
}

// Whole reports whether the run covered every offers partition (runs
// stored before coverage was recorded count as whole).
func (r *Run) Whole() bool {
	return r.PartitionsTotal == 0 || int32(len(r.Partitions)) >= r.PartitionsTotal
}

// RunFeed is one feed's size in a run. Previous and Change are nil when the
// last published run did not have the feed.
type RunFeed struct {
	ID       string   `json:"id"`
	Members  int64    `json:"members"`
	Previous *int64   `json:"previous"`
	Change   *float64 `json:"change"`
	// File says whether the run wrote the feed's document.
	File bool `json:"file"`
}

// Sub-prefixes under prefixRun.
const (
	runSeqKey   = 0 // 'u' 0: last run number
	runRecord   = 1 // 'u' 1 id: Run JSON
	runFixTable = 2 // 'u' 2 len(id) id p offerID: fix flags
)

// Fix flags: why a run listed an offer.
const (
	FixReconcile byte = 1 << iota // stored membership differs from the pass
	FixRefresh                    // an entry is due for refresh
)

// Fix is one offer listed by a run.
type Fix struct {
	Partition int32
	OfferID   string
	Flags     byte
}

func runKey(id string) []byte { return append([]byte{prefixRun, runRecord}, id...) }

func fixPrefix(runID string) []byte {
	return appendLenString([]byte{prefixRun, runFixTable}, runID)
}

// NextRunID allocates the id of a new run. Ids sort in creation order.
// Callers serialise run creation (one full pass at a time).
func (s *Store) NextRunID() (string, error) {
	key := []byte{prefixRun, runSeqKey}
	var n uint64
	if _, err := s.get(key, func(v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("%w: run counter", ErrCorrupt)
		}
		n = binary.BigEndian.Uint64(v)
		return nil
	}); err != nil {
		return "", fmt.Errorf("read run counter: %w", err)
	}
	n++
	if err := s.db.Set(key, binary.BigEndian.AppendUint64(nil, n), pebble.Sync); err != nil {
		return "", fmt.Errorf("write run counter: %w", err)
	}
	id := strconv.FormatUint(n, 10)
	for len(id) < 6 {
		id = "0" + id
	}
	return "run-" + id, nil
}

// PutRun stores r durably.
func (s *Store) PutRun(r *Run) error {
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode run %s: %w", r.ID, err)
	}
	if err := s.db.Set(runKey(r.ID), v, pebble.Sync); err != nil {
		return fmt.Errorf("store run %s: %w", r.ID, err)
	}
	return nil
}

// ErrRunNotFound is returned by GetRun for an unknown id.
var ErrRunNotFound = errors.New("run not found")

// ErrRunNotHeld is returned when approving or rejecting a run that is not
// held.
var ErrRunNotHeld = errors.New("run is not held")

// GetRun reads run id; ErrRunNotFound when absent.
func (s *Store) GetRun(id string) (Run, error) {
	var r Run
	found, err := s.get(runKey(id), func(v []byte) error { return json.Unmarshal(v, &r) })
	if err != nil {
		return Run{}, fmt.Errorf("read run %s: %w", id, err)
	}
	if !found {
		return Run{}, fmt.Errorf("run %q: %w", id, ErrRunNotFound)
	}
	return r, nil
}

// Runs calls fn for each stored run, newest first, until fn returns false.
func (s *Store) Runs(fn func(r *Run) bool) error {
	lower := []byte{prefixRun, runRecord}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return fmt.Errorf("scan runs: %w", err)
	}
	defer it.Close()
	for it.Last(); it.Valid(); it.Prev() {
		var r Run
		if err := json.Unmarshal(it.Value(), &r); err != nil {
			return fmt.Errorf("%w: run %q: %v", ErrCorrupt, it.Key()[2:], err)
		}
		if !fn(&r) {
			break
		}
	}
	return it.Error()
}

// FixWriter appends a run's fix list in bounded unsynced batches; Flush
// makes it durable. Not safe for concurrent use.
type FixWriter struct {
	s      *Store
	prefix []byte
	b      *pebble.Batch
	key    []byte
	n      int
}

// NewFixWriter starts writing the fix list of runID.
func (s *Store) NewFixWriter(runID string) *FixWriter {
	return &FixWriter{s: s, prefix: fixPrefix(runID), b: s.db.NewBatch()}
}

// Add lists offer id of partition p with flags.
func (w *FixWriter) Add(p int32, id string, flags byte) error {
	w.key = appendPartition(append(w.key[:0], w.prefix...), p)
	w.key = append(w.key, id...)
	if err := w.b.Set(w.key, []byte{flags}, nil); err != nil {
		return fmt.Errorf("list fix %q: %w", id, err)
	}
	w.n++
	if w.b.Len() > 1<<20 {
		return w.commit(false)
	}
	return nil
}

func (w *FixWriter) commit(sync bool) error {
	wo := pebble.NoSync
	if sync {
		wo = pebble.Sync
	}
	if err := w.b.Commit(wo); err != nil {
		return fmt.Errorf("write fix list: %w", err)
	}
	if err := w.b.Close(); err != nil {
		return fmt.Errorf("write fix list: %w", err)
	}
	w.b = w.s.db.NewBatch()
	return nil
}

// Len returns how many fixes were added.
func (w *FixWriter) Len() int { return w.n }

// Flush commits what was added, durably.
func (w *FixWriter) Flush() error { return w.commit(true) }

// Close discards anything not flushed.
func (w *FixWriter) Close() error { return w.b.Close() }

// ScanFixes calls fn for up to limit fixes of runID after (p, afterID) in
// key order (from the start when first is true).
func (s *Store) ScanFixes(runID string, first bool, p int32, afterID string, limit int, fn func(f Fix) error) (int, error) {
	prefix := fixPrefix(runID)
	lower := prefix
	if !first {
		lower = append(appendPartition(append([]byte(nil), prefix...), p), afterID...)
		lower = append(lower, 0)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return 0, fmt.Errorf("scan fixes of %s: %w", runID, err)
	}
	defer it.Close()
	n := 0
	for it.First(); it.Valid() && n < limit; it.Next() {
		k := it.Key()[len(prefix):]
		v := it.Value()
		if len(k) < 4 || len(v) != 1 {
			return n, fmt.Errorf("%w: fix of run %s", ErrCorrupt, runID)
		}
		if err := fn(Fix{Partition: int32(binary.BigEndian.Uint32(k)), OfferID: string(k[4:]), Flags: v[0]}); err != nil {
			return n, err
		}
		n++
	}
	return n, it.Error()
}

// DeleteFixesOf removes the fixes of partition p from runID's list (a
// partition scanned again starts a fresh list).
func (s *Store) DeleteFixesOf(runID string, p int32) error {
	prefix := appendPartition(fixPrefix(runID), p)
	if err := s.db.DeleteRange(prefix, prefixEnd(prefix), pebble.Sync); err != nil {
		return fmt.Errorf("delete fixes of %s partition %d: %w", runID, p, err)
	}
	return nil
}

// DeleteRun removes the local record of run id and its fix list.
func (s *Store) DeleteRun(id string) error {
	if err := s.DeleteFixes(id); err != nil {
		return err
	}
	if err := s.db.Delete(runKey(id), pebble.Sync); err != nil {
		return fmt.Errorf("delete run %s: %w", id, err)
	}
	return nil
}

// DeleteFixes removes the fix list of runID.
func (s *Store) DeleteFixes(runID string) error {
	prefix := fixPrefix(runID)
	if err := s.db.DeleteRange(prefix, prefixEnd(prefix), pebble.Sync); err != nil {
		return fmt.Errorf("delete fixes of %s: %w", runID, err)
	}
	return nil
}
