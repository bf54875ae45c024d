package state

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// metaChangelogWritten keys hold, per offers partition, the offset of the
// last changelog record this state dir wrote and Kafka acknowledged.
const metaChangelogWritten = 'w'

// SetChangelogWritten records that the changelog partition p holds this
// state dir's records up to offset (acknowledged by Kafka). Comparing it
// with the partition's end tells whether another instance wrote to the
// changelog since: then the local state of p is not current.
func (s *Store) SetChangelogWritten(p int32, offset int64) error {
	if err := s.db.Set(metaPartitionKey(nil, metaChangelogWritten, p), binary.AppendVarint(nil, offset), pebble.NoSync); err != nil {
		return fmt.Errorf("record changelog offset of partition %d: %w", p, err)
	}
	return nil
}

// ChangelogWritten returns the offset SetChangelogWritten recorded for p
// (ok false: none).
func (s *Store) ChangelogWritten(p int32) (offset int64, ok bool, err error) {
	ok, err = s.get(metaPartitionKey(nil, metaChangelogWritten, p), func(v []byte) error {
		n, k := binary.Varint(v)
		if k <= 0 {
			return fmt.Errorf("%w: changelog offset of partition %d", ErrCorrupt, p)
		}
		offset = n
		return nil
	})
	return offset, ok, err
}
