package state

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Run is this instance's local record of a full-pass run it scanned
// partitions of: the run itself lives in the group's run log
// (processor/runlog); the record keeps the run's fix list until this
// instance has applied it (Applied).
type Run struct {
	ID        string    `json:"id"`
	StartedAt time.Time `json:"started_at"`
	// Applied is set once the listed corrections and refreshes were
	// applied (or dropped, for a run not published).
	Applied bool `json:"applied"`
}

// Sub-prefixes under prefixRun.
const (
	_           = 0 // 'u' 0: the run counter of format 2 dirs (unused)
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
