package state

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"
)

// Format 1 kept one live member count per feed ('n' feedID) and one job
// per seller over its partitions ('j' sellerID). Format 2 keeps both per
// offers partition ('l' p feedID, 'k' p sellerID), so that the tasks of
// different partitions never write the same key. migrate converts a
// format 1 state dir in one synced batch when Open finds one: the counts
// are recounted from the memberships, each job is split into one job per
// partition it still has to scan (a job of the oldest versions, one cursor
// over the owned partitions, becomes one per partition holding the
// seller's offers), and the identity's format version is raised.
func (s *Store) migrate() error {
	var id Identity
	hasID, err := s.get(identityKey, func(v []byte) error { return json.Unmarshal(v, &id) })
	if err != nil {
		return fmt.Errorf("read state identity: %w", err)
	}
	legacy, err := s.anyKey(prefixLegacyCount)
	if err != nil {
		return err
	}
	legacyJobs, err := s.anyKey(prefixLegacyJob)
	if err != nil {
		return err
	}
	if !legacy && !legacyJobs && (!hasID || id.FormatVersion != 1) {
		return nil
	}
	b := s.db.NewBatch()
	defer func() { _ = b.Close() }()
	if err := s.migrateCounts(b); err != nil {
		return fmt.Errorf("migrate member counts: %w", err)
	}
	if err := s.migrateJobs(b); err != nil {
		return fmt.Errorf("migrate seller jobs: %w", err)
	}
	if hasID && id.FormatVersion == 1 {
		id.FormatVersion = FormatVersion
		v, err := json.Marshal(id)
		if err != nil {
			return err
		}
		if err := b.Set(identityKey, v, nil); err != nil {
			return err
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("migrate state to format %d: %w", FormatVersion, err)
	}
	s.logger.Info("state dir migrated", zap.Int("format_version", FormatVersion))
	return nil
}

func (s *Store) anyKey(prefix byte) (bool, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefix}, UpperBound: []byte{prefix + 1}})
	if err != nil {
		return false, err
	}
	defer it.Close()
	return it.First(), it.Error()
}

// migrateCounts recounts every partition's members from the memberships
// and drops the global counts.
func (s *Store) migrateCounts(b *pebble.Batch) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixMembership}, UpperBound: []byte{prefixMembership + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	counts := map[int32]map[string]int64{}
	intern := internTable{}.intern
	var m Membership
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) < 5 {
			return fmt.Errorf("%w: membership key %q", ErrCorrupt, k)
		}
		if err := DecodeMembership(it.Value(), &m, intern); err != nil {
			return fmt.Errorf("membership %q: %w", k, err)
		}
		p := int32(binary.BigEndian.Uint32(k[1:5]))
		if counts[p] == nil {
			counts[p] = map[string]int64{}
		}
		for i := range m.Feeds {
			counts[p][m.Feeds[i].FeedID]++
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	var key []byte
	for p, c := range counts {
		for feed, n := range c {
			key = countKey(key[:0], p, feed)
			if err := b.Set(key, binary.BigEndian.AppendUint64(nil, uint64(n)), nil); err != nil {
				return err
			}
		}
	}
	return b.DeleteRange([]byte{prefixLegacyCount}, []byte{prefixLegacyCount + 1}, nil)
}

// migrateJobs splits every format 1 job into per-partition jobs.
func (s *Store) migrateJobs(b *pebble.Batch) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixLegacyJob}, UpperBound: []byte{prefixLegacyJob + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	var parts []int32  // partitions with a seller index, read once
	rd := s.NewBatch() // read-only
	defer rd.Close()
	var key []byte
	for it.First(); it.Valid(); it.Next() {
		seller := string(it.Key()[1:])
		lj, err := decodeLegacyJob(seller, it.Value())
		if err != nil {
			return err
		}
		if lj.all {
			if parts == nil {
				if parts, err = s.indexPartitions(); err != nil {
					return err
				}
			}
			for _, p := range parts {
				has, err := rd.HasSellerOffers(p, seller)
				if err != nil {
					return err
				}
				if has {
					lj.parts = append(lj.parts, legacyJobPart{p: p})
				}
			}
		}
		for _, jp := range lj.parts {
			j := Job{SellerID: seller, Partition: jp.p, After: jp.after, SourceTimeMs: lj.srcMs, Changed: lj.changed}
			key = jobKey(key[:0], jp.p, seller)
			if err := b.Set(key, appendJob(nil, &j), nil); err != nil {
				return err
			}
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	return b.DeleteRange([]byte{prefixLegacyJob}, []byte{prefixLegacyJob + 1}, nil)
}

// indexPartitions lists the partitions that have seller index keys.
func (s *Store) indexPartitions() ([]int32, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixIndex}, UpperBound: []byte{prefixIndex + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	out := []int32{}
	for valid := it.First(); valid; {
		k := it.Key()
		if len(k) < 5 {
			return nil, fmt.Errorf("%w: index key %q", ErrCorrupt, k)
		}
		p := int32(binary.BigEndian.Uint32(k[1:5]))
		out = append(out, p)
		valid = it.SeekGE(prefixEnd(partitionPrefix(prefixIndex, p)))
	}
	return out, it.Error()
}

type legacyJob struct {
	parts   []legacyJobPart
	srcMs   int64
	changed uint64
	all     bool // versions 1 and 2: every partition holding the seller's offers
}

type legacyJobPart struct {
	p     int32
	after string
}

// decodeLegacyJob decodes a format 1 job ('j' sellerID), versions 1 to 3.
func decodeLegacyJob(sellerID string, b []byte) (legacyJob, error) {
	if len(b) == 0 || b[0] < 1 || b[0] > 3 {
		return legacyJob{}, fmt.Errorf("%w: job of seller %q", ErrCorrupt, sellerID)
	}
	j := legacyJob{changed: ^uint64(0)}
	if b[0] < 3 { // one cursor over the owned partitions
		if len(b) < 5 {
			return legacyJob{}, fmt.Errorf("%w: job of seller %q", ErrCorrupt, sellerID)
		}
		r := reader{b: b[5:]}
		r.bytes("job cursor")
		j.srcMs = r.varint("job time")
		if b[0] == 2 {
			j.changed = r.uvarint("job fields")
		}
		j.all = true
		return j, r.err
	}
	r := reader{b: b[1:]}
	n := r.uvarint("job partitions")
	if n > uint64(len(r.b)) {
		return legacyJob{}, fmt.Errorf("%w: job of seller %q: %d partitions", ErrCorrupt, sellerID, n)
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		if len(r.b) < 4 {
			return legacyJob{}, fmt.Errorf("%w: job of seller %q", ErrCorrupt, sellerID)
		}
		p := int32(binary.BigEndian.Uint32(r.b[:4]))
		r.b = r.b[4:]
		j.parts = append(j.parts, legacyJobPart{p: p, after: string(r.bytes("job cursor"))})
	}
	j.srcMs = r.varint("job time")
	j.changed = r.uvarint("job fields")
	return j, r.err
}
