package state

import (
	"encoding/json"
	"fmt"
)

// metaAligned ('z' 'F') holds the fingerprint of each feed definition
// the local state was last brought in line with (live feed changes): a
// JSON object, feed id → fingerprint.
const metaAligned = 'F'

// AlignedFeeds returns the feed fingerprints the state was last aligned
// with; ok is false when none was stored yet.
func (s *Store) AlignedFeeds() (fps map[string]string, ok bool, err error) {
	ok, err = s.get([]byte{prefixMeta, metaAligned}, func(v []byte) error { return json.Unmarshal(v, &fps) })
	if err != nil {
		return nil, false, fmt.Errorf("read the aligned feed set: %w", err)
	}
	return fps, ok, nil
}

// PutAlignedFeeds stores the feed fingerprints the state is aligned with
// (in the batch that starts their backfill).
func (b *Batch) PutAlignedFeeds(fps map[string]string) error {
	v, err := json.Marshal(fps)
	if err != nil {
		return err
	}
	return b.set([]byte{prefixMeta, metaAligned}, v)
}
