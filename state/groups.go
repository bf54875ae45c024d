package state

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Candidates of grouped feeds (docs/grouped-feeds.md), kept by the group
// task of group partition g, in three key families:
//
//	'g' g feed key order offer      → (empty): the candidates in winner order
//	'h' g feed key offer            → order, offer partition, seq, live: where
//	                                  the offer stands (a removed one is kept
//	                                  as not live, so a stale record cannot
//	                                  bring it back)
//	'w' g feed key                  → decision counter, the winner last
//	                                  decided ("" when none)
//
// The winner of (feed, key) is the first 'g' key under its prefix: a
// change costs a few point reads and one seek, O(log n) in the group's
// size, never a scan of the group.

// Order encodes a group value so that byte order is winner order: the
// smallest value first for pick min; for pick max the order is inverted.
// Ties are broken by offer id (the lowest first), which follows in the key.
type Order uint64

// OrderFloat orders f; NaN sorts after every number, for min and max.
func OrderFloat(f float64, max bool) Order {
	var u uint64
	switch {
	case math.IsNaN(f):
		return Order(math.MaxUint64)
	case f == 0:
		u = 1 << 63 // +0 and -0 are one value
	default:
		u = math.Float64bits(f)
		if u&(1<<63) != 0 {
			u = ^u // negative: larger magnitude first
		} else {
			u |= 1 << 63
		}
	}
	if max {
		u = ^u // never MaxUint64: u is not 0
	}
	return Order(u)
}

// OrderTime orders t.
func OrderTime(t time.Time, max bool) Order {
	u := uint64(t.UnixNano()) ^ (1 << 63)
	if max {
		u = ^u
	}
	return Order(u)
}

// Place is an offer's standing in a group: its value's order, its offers
// partition and the sequence of the candidacy that put it there.
type Place struct {
	Order     Order
	Partition int32
	Seq       uint64
	Live      bool
}

// Winner is a group's winning offer ("" when the group has none).
type Winner struct {
	OfferID   string
	Partition int32
}

// GroupChange is what applying one candidacy did to its group.
type GroupChange struct {
	// Applied is false when the candidacy was older than the one stored
	// (a late or duplicate record): nothing changed.
	Applied bool
	// Before and After are the group's winner; they differ when the
	// winner changed (a decision to send to both offers).
	Before, After Winner
	// Decision counts the group's winner changes: it numbers this one
	// (decisions of one group about one offer at one candidacy are
	// ordered by it).
	Decision uint64
}

func groupPrefix(dst []byte, kind byte, g int32, feed, key string) []byte {
	dst = append(dst, kind)
	dst = appendPartition(dst, g)
	dst = appendLenString(dst, feed)
	return appendLenString(dst, key)
}

// SetCandidacy applies one candidacy of offerID to (feed, key) in group
// partition g: live puts the offer at order (moving it if it stood
// elsewhere in the group), not live removes it. seq orders the offer's
// candidacies: one not newer than the stored one is ignored. It returns
// the group's winner before and after.
func (b *Batch) SetCandidacy(g int32, feed, key, offerID string, partition int32, seq uint64, order Order, live bool) (GroupChange, error) {
	var ch GroupChange
	prefix := groupPrefix(nil, prefixCandidate, g, feed, key)
	placeKey := append(groupPrefix(nil, prefixPlace, g, feed, key), offerID...)
	old, found, err := b.place(placeKey)
	if err != nil {
		return ch, err
	}
	if found && old.Seq >= seq {
		return ch, nil
	}
	ch.Applied = true
	winKey := groupPrefix(nil, prefixWinner, g, feed, key)
	if ch.Before, ch.Decision, err = b.decidedWinner(winKey); err != nil {
		return ch, err
	}
	if found && old.Live {
		if err := b.b.Delete(candidateKey(prefix, old.Order, offerID), nil); err != nil {
			return ch, fmt.Errorf("group candidate: %w", err)
		}
	}
	if live {
		if err := b.set(candidateKey(prefix, order, offerID), nil); err != nil {
			return ch, fmt.Errorf("group candidate: %w", err)
		}
	}
	v := binary.BigEndian.AppendUint64(nil, uint64(order))
	v = appendPartition(v, partition)
	v = binary.BigEndian.AppendUint64(v, seq)
	if live {
		v = append(v, 1)
	} else {
		v = append(v, 0)
	}
	if err := b.set(placeKey, v); err != nil {
		return ch, fmt.Errorf("group place: %w", err)
	}
	if ch.After, err = b.firstCandidate(g, feed, key, prefix); err != nil {
		return ch, err
	}
	if ch.After != ch.Before {
		// The record stays when the group empties: its counter goes on.
		ch.Decision++
		v := binary.BigEndian.AppendUint64(nil, ch.Decision)
		v = appendPartition(v, ch.After.Partition)
		if err := b.set(winKey, append(v, ch.After.OfferID...)); err != nil {
			return ch, fmt.Errorf("group winner: %w", err)
		}
	}
	return ch, nil
}

func candidateKey(prefix []byte, order Order, offerID string) []byte {
	k := binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), uint64(order))
	return append(k, offerID...)
}

func (b *Batch) place(key []byte) (Place, bool, error) {
	var pl Place
	found, err := b.get(key, func(v []byte) error {
		if len(v) != 21 {
			return fmt.Errorf("%w: group place of %d bytes", ErrCorrupt, len(v))
		}
		pl = Place{Order: Order(binary.BigEndian.Uint64(v)), Partition: int32(binary.BigEndian.Uint32(v[8:])),
			Seq: binary.BigEndian.Uint64(v[12:]), Live: v[20] == 1}
		return nil
	})
	if err != nil {
		return pl, false, fmt.Errorf("read group place: %w", err)
	}
	return pl, found, nil
}

// GroupPlace returns where offerID stands in (feed, key) of group partition g.
func (b *Batch) GroupPlace(g int32, feed, key, offerID string) (Place, bool, error) {
	return b.place(append(groupPrefix(nil, prefixPlace, g, feed, key), offerID...))
}

func (b *Batch) decidedWinner(key []byte) (Winner, uint64, error) {
	var w Winner
	var n uint64
	_, err := b.get(key, func(v []byte) error {
		if len(v) < 12 {
			return fmt.Errorf("%w: group winner", ErrCorrupt)
		}
		n = binary.BigEndian.Uint64(v)
		w = Winner{Partition: int32(binary.BigEndian.Uint32(v[8:])), OfferID: string(v[12:])}
		if w.OfferID == "" {
			w.Partition = 0
		}
		return nil
	})
	if err != nil {
		return w, 0, fmt.Errorf("read group winner: %w", err)
	}
	return w, n, nil
}

// firstCandidate seeks the first candidate of the group: its winner.
func (b *Batch) firstCandidate(g int32, feed, key string, prefix []byte) (Winner, error) {
	it, err := b.b.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return Winner{}, fmt.Errorf("group winner: %w", err)
	}
	defer it.Close()
	if !it.First() {
		return Winner{}, it.Error()
	}
	k := it.Key()
	if len(k) < len(prefix)+8 || !bytes.HasPrefix(k, prefix) {
		return Winner{}, fmt.Errorf("%w: group candidate key", ErrCorrupt)
	}
	offerID := string(k[len(prefix)+8:])
	pl, found, err := b.GroupPlace(g, feed, key, offerID)
	if err != nil {
		return Winner{}, err
	}
	if !found {
		return Winner{}, fmt.Errorf("%w: group candidate %q without a place", ErrCorrupt, offerID)
	}
	return Winner{OfferID: offerID, Partition: pl.Partition}, nil
}

// GroupWinner returns the winner last decided for (feed, key) of group
// partition g.
func (b *Batch) GroupWinner(g int32, feed, key string) (Winner, error) {
	w, _, err := b.decidedWinner(groupPrefix(nil, prefixWinner, g, feed, key))
	return w, err
}
