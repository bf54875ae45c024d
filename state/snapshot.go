package state

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/feedmill/feedmill/internal/records"
)

// Snapshot is a consistent read-only view of the whole state at one
// instant, for the full pass. Streaming writes go on meanwhile and are not
// seen. A Snapshot is not safe for concurrent use; Close it when done.
type Snapshot struct {
	s    *Store
	snap *pebble.Snapshot
	key  []byte
}

// NewSnapshot takes a snapshot of the state.
func (s *Store) NewSnapshot() *Snapshot {
	return &Snapshot{s: s, snap: s.db.NewSnapshot()}
}

// Close releases the snapshot.
func (sn *Snapshot) Close() error { return sn.snap.Close() }

func (sn *Snapshot) getRecord(key []byte, what string, unmarshal func([]byte) error) (Presence, error) {
	v, closer, err := sn.snap.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return Absent, nil
	}
	if err != nil {
		return Absent, fmt.Errorf("read %s %q: %w", what, key[1:], err)
	}
	defer closer.Close()
	if len(v) == 0 {
		return Absent, fmt.Errorf("%w: empty %s %q", ErrCorrupt, what, key[1:])
	}
	switch v[0] {
	case tagLive:
		if err := unmarshal(v[1:]); err != nil {
			return Absent, fmt.Errorf("decode %s %q: %w", what, key[1:], err)
		}
		return Live, nil
	case tagTombstone:
		return Deleted, nil
	}
	return Absent, fmt.Errorf("%w: %s tag %d", ErrCorrupt, what, v[0])
}

// ScanItem is one offer key seen by Scan. Offer is nil when the offer is
// deleted or unknown (a membership without a live offer); Membership is
// nil when none is stored. Both point at buffers reused by the next call:
// copy what must be kept.
type ScanItem struct {
	Partition  int32
	OfferID    string
	Offer      *records.Offer
	Membership *Membership
}

// Scan co-iterates offers and memberships in key order (partition, offer
// id) and calls fn once per offer id that has either. Memory does not
// depend on the number of offers: records are decoded into reused buffers.
// OfferID is a fresh string per item. It stops at the first error from fn
// or when ctx ends.
func (sn *Snapshot) Scan(ctx context.Context, intern Interner, fn func(it *ScanItem) error) error {
	return sn.scan(ctx, []byte{prefixOffer}, []byte{prefixOffer + 1}, []byte{prefixMembership}, []byte{prefixMembership + 1}, intern, fn)
}

// ScanPartition is Scan over the offer keys of partition p alone.
func (sn *Snapshot) ScanPartition(ctx context.Context, p int32, intern Interner, fn func(it *ScanItem) error) error {
	ol := appendPartition([]byte{prefixOffer}, p)
	ml := appendPartition([]byte{prefixMembership}, p)
	return sn.scan(ctx, ol, prefixEnd(ol), ml, prefixEnd(ml), intern, fn)
}

func (sn *Snapshot) scan(ctx context.Context, olo, ohi, mlo, mhi []byte, intern Interner, fn func(it *ScanItem) error) error {
	oit, err := sn.snap.NewIter(&pebble.IterOptions{LowerBound: olo, UpperBound: ohi})
	if err != nil {
		return fmt.Errorf("scan offers: %w", err)
	}
	defer oit.Close()
	mit, err := sn.snap.NewIter(&pebble.IterOptions{LowerBound: mlo, UpperBound: mhi})
	if err != nil {
		return fmt.Errorf("scan memberships: %w", err)
	}
	defer mit.Close()
	var (
		offer records.Offer
		mem   Membership
		item  ScanItem
	)
	oValid, mValid := oit.First(), mit.First()
	for n := 0; oValid || mValid; n++ {
		if n&1023 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		// Suffixes (partition + offer id) order the same in both ranges.
		var ok, mk []byte
		if oValid {
			ok = oit.Key()[1:]
		}
		if mValid {
			mk = mit.Key()[1:]
		}
		useO, useM := oValid, mValid
		if oValid && mValid {
			switch c := bytes.Compare(ok, mk); {
			case c < 0:
				useM = false
			case c > 0:
				useO = false
			}
		}
		k := ok
		if !useO {
			k = mk
		}
		if len(k) < 4 {
			return fmt.Errorf("%w: offer key %q", ErrCorrupt, k)
		}
		item = ScanItem{Partition: int32(binary.BigEndian.Uint32(k)), OfferID: string(k[4:])}
		if useO {
			v := oit.Value()
			if len(v) == 0 {
				return fmt.Errorf("%w: empty offer %q", ErrCorrupt, item.OfferID)
			}
			if v[0] == tagLive {
				offer = records.Offer{}
				if err := sn.s.codec.UnmarshalOffer(v[1:], &offer); err != nil {
					return fmt.Errorf("decode offer %q: %w", item.OfferID, err)
				}
				item.Offer = &offer
			}
			oValid = oit.Next()
		}
		if useM {
			if err := DecodeMembership(mit.Value(), &mem, intern); err != nil {
				return fmt.Errorf("membership %q: %w", item.OfferID, err)
			}
			item.Membership = &mem
			mValid = mit.Next()
		}
		if err := fn(&item); err != nil {
			return err
		}
	}
	if err := oit.Error(); err != nil {
		return fmt.Errorf("scan offers: %w", err)
	}
	if err := mit.Error(); err != nil {
		return fmt.Errorf("scan memberships: %w", err)
	}
	return nil
}
