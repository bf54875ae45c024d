package state

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// ScanOffers calls fn with the id of each offer key of partition p (live
// or tombstone) after after, in key order, up to limit, seeing this
// batch's writes. It returns how many it visited. A whole-partition
// re-evaluation (after a restore) walks a partition with it.
func (b *Batch) ScanOffers(p int32, after string, limit int, fn func(offerID string) error) (int, error) {
	n, err := b.scanAfter(offerKey(nil, p, ""), after, limit, fn)
	if err != nil {
		err = fmt.Errorf("scan offers of partition %d: %w", p, err)
	}
	return n, err
}

// scanAfter calls fn with the rest of each key under prefix that is
// greater than after, in order, up to limit, seeing this batch's writes.
// It returns how many it visited; fn's error is returned as is.
func (b *Batch) scanAfter(prefix []byte, after string, limit int, fn func(rest string) error) (int, error) {
	lower := append(append([]byte(nil), prefix...), after...)
	if after != "" {
		lower = append(lower, 0) // strictly greater than after
	}
	it, err := b.b.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	n := 0
	for it.First(); it.Valid() && n < limit; it.Next() {
		if err := fn(string(it.Key()[len(prefix):])); err != nil {
			return n, err
		}
		n++
	}
	return n, it.Error()
}
