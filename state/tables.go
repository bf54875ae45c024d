package state

import (
	"fmt"
	"time"
)

// Table is a joined table input (sellers, ratings, ...) kept whole by
// every instance: records by key, live or as a tombstone. Tables are
// numbered in the order of the data model's joined inputs (feeds.Joined);
// TablePrefixes gives each its key prefix. Values are stored as the
// caller encodes them: state does not know the record types.
type Table uint8

// The joined tables, in data-model order.
const (
	TableSellers Table = iota
	TableRatings
	NumTables
)

// tablePrefixes are the key prefixes of the tables. A new joined input
// adds one here (and to docs/ARCHITECTURE.md's key layout).
var tablePrefixes = [NumTables]byte{prefixSeller, prefixRating}

var tableNames = [NumTables]string{"seller", "rating"}

func (t Table) String() string {
	if t < NumTables {
		return tableNames[t]
	}
	return fmt.Sprintf("table %d", t)
}

func tableKey(dst []byte, t Table, key string) []byte {
	dst = append(dst, tablePrefixes[t])
	return append(dst, key...)
}

// GetTable reads record key of table t: unmarshal gets its encoding when
// it is Live; a Deleted one returns its tombstone.
func (b *Batch) GetTable(t Table, key string, unmarshal func([]byte) error) (Presence, Tombstone, error) {
	b.key = tableKey(b.key[:0], t, key)
	return b.getRecord(b.key, t.String(), unmarshal)
}

// PutTable stores the live record key of table t, encoded by marshal
// (which appends to the buffer it is given).
func (b *Batch) PutTable(t Table, key string, marshal func(dst []byte) ([]byte, error)) error {
	b.key = tableKey(b.key[:0], t, key)
	b.val = append(b.val[:0], tagLive)
	var err error
	if b.val, err = marshal(b.val); err != nil {
		return fmt.Errorf("encode %s %q: %w", t, key, err)
	}
	return b.set(b.key, b.val)
}

// DeleteTable replaces record key of table t with a tombstone that
// remembers version.
func (b *Batch) DeleteTable(t Table, key string, version int64, at time.Time) error {
	b.key = tableKey(b.key[:0], t, key)
	return b.putTombstone(version, at)
}

// GetTable reads record key of table t from the snapshot (see
// Batch.GetTable; the tombstone is not read).
func (sn *Snapshot) GetTable(t Table, key string, unmarshal func([]byte) error) (Presence, Tombstone, error) {
	sn.key = tableKey(sn.key[:0], t, key)
	pres, err := sn.getRecord(sn.key, t.String(), unmarshal)
	return pres, Tombstone{}, err
}
