package state

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// The changelog of an offers partition p is a compacted Kafka topic
// partition (also numbered p) from which an instance that gains p restores
// p's state (NewRestore). The processor writes its records through the
// outbox, in the batch that makes the change they describe; state only
// defines their keys and values:
//
//   - "o" offerID: the offer's stored keys and its last event
//     (Batch.AppendChangelogOffer, DecodeChangelogOffer); a nil value (a
//     Kafka tombstone) means the offer's keys are gone.
//   - "c": the next offset of offers partition p, then those of the other
//     input topics of the partition's task (partition p of each: the
//     group candidates and decisions of grouped feeds), -1 for none
//     (AppendChangelogOffset). It ends a batch.
//   - "a": the acknowledged outbox sequence of p: every outbox record of p
//     with a smaller sequence was acknowledged by Kafka
//     (AppendChangelogAcked).
//   - "p" feed key offerID: where offerID stands in group (feed, key) of
//     group partition p (ChangelogPlaceKey, Batch.AppendChangelogPlace);
//     "w" feed key: the group's decided winner (ChangelogWinnerKey,
//     Batch.AppendChangelogWinner). Their values are the stored ones; a
//     nil value deletes. The candidates in winner order are not carried:
//     a restore rebuilds them from the live places.
//
// Compaction keeps the last record of each key, so the changelog holds the
// last value of every offer, group place and winner; the restore applies records in log order, a
// later record of a key replacing an earlier one.

// Changelog key kinds: the first byte of a changelog record key.
const (
	ChangelogKindOffer  = 'o'
	ChangelogKindOffset = 'c'
	ChangelogKindAcked  = 'a'
	// ChangelogKindEvent keys hold one event each ("e" + its outbox
	// sequence, 8 bytes big-endian; the value its encoded outbox record),
	// written before the offer records of its batch; the relay deletes
	// them (nil value) once the event was acknowledged. A restore queues
	// again those at or above the acknowledged sequence.
	ChangelogKindEvent = 'e'
	// ChangelogKindPlace keys ("p" + feed + key + offerID, the feed and
	// key length-prefixed as in the state keys) hold an offer's place in
	// a group of the group partition p: the stored 21-byte value (see
	// Batch.SetCandidacy).
	ChangelogKindPlace = 'p'
	// ChangelogKindWinner keys ("w" + feed + key) hold a group's decided
	// winner: the stored value (a decision counter, the winner's
	// partition and id).
	ChangelogKindWinner = 'w'
)

// ChangelogEventKey appends the changelog key of the event at outbox
// sequence seq to dst.
func ChangelogEventKey(dst []byte, seq uint64) []byte {
	dst = append(dst, ChangelogKindEvent)
	return binary.BigEndian.AppendUint64(dst, seq)
}

// changelogOfferVersion is the version byte of an "o" value.
const changelogOfferVersion = 1

// ErrChangelogCorrupt marks a changelog record that cannot be decoded: it
// was not written by this encoding (or a bug wrote it).
var ErrChangelogCorrupt = errors.New("corrupt changelog record")

// ChangelogOfferKey appends the changelog key of offer offerID ("o" +
// offerID) to dst.
func ChangelogOfferKey(dst []byte, offerID string) []byte {
	dst = append(dst, ChangelogKindOffer)
	return append(dst, offerID...)
}

// ChangelogPlaceKey appends the changelog key of offerID's place in group
// (feed, key) to dst.
func ChangelogPlaceKey(dst []byte, feed, key, offerID string) []byte {
	dst = append(dst, ChangelogKindPlace)
	dst = appendLenString(dst, feed)
	dst = appendLenString(dst, key)
	return append(dst, offerID...)
}

// ChangelogWinnerKey appends the changelog key of the decided winner of
// group (feed, key) to dst.
func ChangelogWinnerKey(dst []byte, feed, key string) []byte {
	dst = append(dst, ChangelogKindWinner)
	dst = appendLenString(dst, feed)
	return appendLenString(dst, key)
}

// ParseChangelogGroupKey splits a "p" or "w" changelog key into its
// feed, group key and (for "p") offer id. It returns an error wrapping
// ErrChangelogCorrupt for any other key, or one that does not decode.
func ParseChangelogGroupKey(k []byte) (feed, key, offerID string, err error) {
	n := -1
	if len(k) > 0 && (k[0] == ChangelogKindPlace || k[0] == ChangelogKindWinner) {
		n = groupPartLen(k[1:])
	}
	if n < 0 || k[0] == ChangelogKindWinner && n != len(k)-1 {
		return "", "", "", fmt.Errorf("%w: group key %q", ErrChangelogCorrupt, k)
	}
	r := k[1:] // checked by groupPartLen
	for _, dst := range [2]*string{&feed, &key} {
		l, m := int(binary.BigEndian.Uint16(r)), 2
		if l == longLen {
			v, w := binary.Uvarint(r[2:])
			l, m = int(v), 2+w
		}
		*dst = string(r[m : m+l])
		r = r[m+l:]
	}
	return feed, key, string(r), nil
}

// groupPlaceBytes and groupWinnerMin are the length of a stored place and
// the least length of a stored winner (groups.go).
const (
	groupPlaceBytes = 21
	groupWinnerMin  = 12
)

// groupPartLen returns the length of the group part (feed and key, each
// length-prefixed by appendLenString) at the start of k, or -1 when k
// does not start with two whole strings in the form appendLenString
// writes.
func groupPartLen(k []byte) int {
	n := 0
	for range 2 {
		if len(k)-n < 2 {
			return -1
		}
		l := uint64(binary.BigEndian.Uint16(k[n:]))
		n += 2
		if l == longLen {
			v, m := binary.Uvarint(k[n:])
			if m <= 0 || v < longLen || m != uvarintLen(v) {
				return -1 // the long form is only written for long strings, minimal
			}
			l, n = v, n+m
		}
		if uint64(len(k)-n) < l {
			return -1
		}
		n += int(l)
	}
	return n
}

// uvarintLen returns the length of the minimal uvarint encoding of v.
func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// groupValueOK reports whether v is a valid stored value of a place
// (kind ChangelogKindPlace: 21 bytes, the last 0 or 1) or of a winner
// (ChangelogKindWinner: at least 12 bytes).
func groupValueOK(kind byte, v []byte) bool {
	if kind == ChangelogKindPlace {
		return len(v) == groupPlaceBytes && v[groupPlaceBytes-1] <= 1
	}
	return len(v) >= groupWinnerMin
}

// groupKindName names a group record kind in errors.
func groupKindName(kind byte) string {
	if kind == ChangelogKindPlace {
		return "place"
	}
	return "winner"
}

// ChangelogOffsetKey is the changelog key of the offers partition's next
// offset ("c"); ChangelogAckedKey the key of the acknowledged outbox
// sequence ("a"). They are read-only: never modify them (an append
// copies, their capacity being their length).
var (
	ChangelogOffsetKey = []byte{ChangelogKindOffset}
	ChangelogAckedKey  = []byte{ChangelogKindAcked}
)

// AppendChangelogOffset appends the "c" value: next, the next offset of
// the offers partition to consume, then the next offset of each other
// input topic of the partition's task, in the order the restore and the
// follower are given those topics (NewRestore's extraTopics); a negative
// one (-1) means none is stored. Each is a varint: an old value is next
// alone.
func AppendChangelogOffset(dst []byte, next int64, extra ...int64) []byte {
	dst = binary.AppendVarint(dst, next)
	for _, x := range extra {
		dst = binary.AppendVarint(dst, x)
	}
	return dst
}

// DecodeChangelogOffsets decodes a "c" value: the next offset of the
// offers partition and those of the other input topics (none in an old
// value). It returns an error wrapping ErrChangelogCorrupt unless v is
// one or more whole varints.
func DecodeChangelogOffsets(v []byte) (next int64, extra []int64, err error) {
	return decodeChangelogOffsets(v, nil)
}

// decodeChangelogOffsets is DecodeChangelogOffsets appending the extra
// offsets to extra[:0].
func decodeChangelogOffsets(v []byte, extra []int64) (int64, []int64, error) {
	extra = extra[:0]
	next, n := binary.Varint(v)
	if n <= 0 {
		return 0, extra, fmt.Errorf("%w: offset value %x", ErrChangelogCorrupt, v)
	}
	for rest := v[n:]; len(rest) > 0; {
		x, m := binary.Varint(rest)
		if m <= 0 {
			return 0, extra[:0], fmt.Errorf("%w: offset value %x", ErrChangelogCorrupt, v)
		}
		extra = append(extra, x)
		rest = rest[m:]
	}
	return next, extra, nil
}

// DecodeChangelogOffset decodes the next offset of the offers partition
// from a "c" value, ignoring the offsets of other topics that follow it
// (DecodeChangelogOffsets). It returns an error wrapping
// ErrChangelogCorrupt unless v is one or more whole varints.
func DecodeChangelogOffset(v []byte) (int64, error) {
	next, n := binary.Varint(v)
	if n <= 0 {
		return 0, fmt.Errorf("%w: offset value %x", ErrChangelogCorrupt, v)
	}
	for rest := v[n:]; len(rest) > 0; {
		_, m := binary.Varint(rest)
		if m <= 0 {
			return 0, fmt.Errorf("%w: offset value %x", ErrChangelogCorrupt, v)
		}
		rest = rest[m:]
	}
	return next, nil
}

// AppendChangelogAcked appends the "a" value: seq, below which every
// outbox record of the partition was acknowledged (uvarint).
func AppendChangelogAcked(dst []byte, seq uint64) []byte {
	return binary.AppendUvarint(dst, seq)
}

// DecodeChangelogAcked decodes an "a" value. It returns an error wrapping
// ErrChangelogCorrupt unless v is exactly one uvarint.
func DecodeChangelogAcked(v []byte) (uint64, error) {
	seq, n := binary.Uvarint(v)
	if n <= 0 || n != len(v) {
		return 0, fmt.Errorf("%w: acked value %x", ErrChangelogCorrupt, v)
	}
	return seq, nil
}

// AppendChangelogOffer appends the "o" value of offer id of partition p to
// dst, as the batch sees it (its staged writes count): version byte 1,
// then uvarint length + the stored value of the offer key (live or
// tombstone; empty when absent), uvarint length + the stored membership
// (empty when absent), uvarint eventSeq, uvarint length + event.
//
// event is the offer's event as AddOutbox encoded it and eventSeq the
// sequence AddOutbox returned for it; an empty event means none (eventSeq
// is then written as 0 and ignored: 0 is a valid outbox sequence). ok is
// false, and dst returned unchanged, when neither the offer nor its
// membership exists: the caller then writes a nil value (a Kafka
// tombstone), and an event given is not carried. Not safe for concurrent
// use (like the Batch).
func (b *Batch) AppendChangelogOffer(dst []byte, p int32, id string, eventSeq uint64, event []byte) (out []byte, ok bool, err error) {
	start := len(dst)
	dst = append(dst, changelogOfferVersion)
	found := false
	b.key = offerKey(b.key[:0], p, id)
	if dst, found, err = b.appendStored(dst, b.key); err != nil {
		return dst[:start], false, fmt.Errorf("changelog of offer %q: %w", id, err)
	}
	ok = found
	b.key = membershipKey(b.key[:0], p, id)
	if dst, found, err = b.appendStored(dst, b.key); err != nil {
		return dst[:start], false, fmt.Errorf("changelog of offer %q: membership: %w", id, err)
	}
	if !ok && !found {
		return dst[:start], false, nil
	}
	if len(event) == 0 {
		eventSeq = 0
	}
	dst = binary.AppendUvarint(dst, eventSeq)
	return appendBytes(dst, event), true, nil
}

// AppendChangelogPlace appends the "p" value of offerID's place in group
// (feed, key) of group partition g to dst: the stored place as the batch
// sees it (its staged writes count). ok is false, and dst returned
// unchanged, when the offer has no place there: the caller then writes a
// nil value (a Kafka tombstone). A stored place that is not 21 bytes is
// an error wrapping ErrCorrupt. Not safe for concurrent use (like the
// Batch).
func (b *Batch) AppendChangelogPlace(dst []byte, g int32, feed, key, offerID string) (out []byte, ok bool, err error) {
	b.key = append(groupPrefix(b.key[:0], prefixPlace, g, feed, key), offerID...)
	if out, ok, err = b.appendGroupValue(dst, ChangelogKindPlace); err != nil {
		return dst, false, fmt.Errorf("changelog of group place %q %q %q: %w", feed, key, offerID, err)
	}
	return out, ok, nil
}

// AppendChangelogWinner appends the "w" value of group (feed, key) of
// group partition g to dst: the stored decided winner as the batch sees
// it (its staged writes count). ok is false, and dst returned unchanged,
// when none is stored: the caller then writes a nil value. A stored
// winner shorter than 12 bytes is an error wrapping ErrCorrupt.
func (b *Batch) AppendChangelogWinner(dst []byte, g int32, feed, key string) (out []byte, ok bool, err error) {
	b.key = groupPrefix(b.key[:0], prefixWinner, g, feed, key)
	if out, ok, err = b.appendGroupValue(dst, ChangelogKindWinner); err != nil {
		return dst, false, fmt.Errorf("changelog of group winner %q %q: %w", feed, key, err)
	}
	return out, ok, nil
}

// ScanChangelogGroups calls fn with the changelog record (key and value)
// of every place, then of every decided winner, of group partition g, as
// the batch sees them: what a copy of g's group state into the changelog
// writes (an offset record then ends the batch). key and value are valid
// only during the call. It returns fn's error, or one wrapping ErrCorrupt
// for a stored key or value that does not decode.
func (b *Batch) ScanChangelogGroups(g int32, fn func(key, value []byte) error) error {
	var ck []byte
	for _, kind := range [2]byte{ChangelogKindPlace, ChangelogKindWinner} {
		prefix := partitionPrefix(prefixPlace, g)
		if kind == ChangelogKindWinner {
			prefix = partitionPrefix(prefixWinner, g)
		}
		it, err := b.b.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
		if err != nil {
			return fmt.Errorf("scan groups of partition %d: %w", g, err)
		}
		for it.First(); it.Valid() && err == nil; it.Next() {
			k, v := it.Key(), it.Value()
			rest := k[len(prefix):]
			if n := groupPartLen(rest); n < 0 || kind == ChangelogKindWinner && n != len(rest) || !groupValueOK(kind, v) {
				err = fmt.Errorf("%w: group %s %q: value %x", ErrCorrupt, groupKindName(kind), k, v)
				break
			}
			ck = append(append(ck[:0], kind), rest...)
			err = fn(ck, v)
		}
		if err == nil {
			err = it.Error()
		}
		if cerr := it.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// appendGroupValue appends the stored value of b.key, a place or a
// winner (kind), as the batch sees it (nothing when absent).
func (b *Batch) appendGroupValue(dst []byte, kind byte) ([]byte, bool, error) {
	v, closer, err := b.b.Get(b.key)
	if errors.Is(err, pebble.ErrNotFound) {
		return dst, false, nil
	}
	if err != nil {
		return dst, false, err
	}
	if !groupValueOK(kind, v) {
		_ = closer.Close() // the value is the error to report
		return dst, false, fmt.Errorf("%w: group %s value %x", ErrCorrupt, groupKindName(kind), v)
	}
	out := append(dst, v...)
	return out, true, closer.Close()
}

// appendStored appends the value of key as the batch sees it, length
// first (an empty value when absent).
func (b *Batch) appendStored(dst, key []byte) ([]byte, bool, error) {
	v, closer, err := b.b.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return append(dst, 0), false, nil
	}
	if err != nil {
		return dst, false, err
	}
	dst = appendBytes(dst, v)
	return dst, true, closer.Close()
}

// appendChangelogOffer appends an "o" value from its parts.
func appendChangelogOffer(dst, offerVal, memVal []byte, eventSeq uint64, event []byte) []byte {
	dst = append(dst, changelogOfferVersion)
	dst = appendBytes(dst, offerVal)
	dst = appendBytes(dst, memVal)
	if len(event) == 0 {
		eventSeq = 0
	}
	dst = binary.AppendUvarint(dst, eventSeq)
	return appendBytes(dst, event)
}

// DecodeChangelogOffer decodes an "o" value (not a nil one: that is a
// tombstone). offerVal and memVal are the raw stored values of the offer
// and membership keys, nil when absent; event is the encoded outbox record
// of the offer's event and eventSeq its sequence, nil and 0 when none. The
// slices alias v. It returns an error wrapping ErrChangelogCorrupt when v
// is not a whole value of this encoding or the offer value has no valid
// tag; the membership and event encodings are not checked here.
func DecodeChangelogOffer(v []byte) (offerVal, memVal []byte, eventSeq uint64, event []byte, err error) {
	if len(v) == 0 || v[0] != changelogOfferVersion {
		return nil, nil, 0, nil, fmt.Errorf("%w: offer value version", ErrChangelogCorrupt)
	}
	r := reader{b: v[1:]}
	offerVal = r.bytes("offer")
	memVal = r.bytes("membership")
	eventSeq = r.uvarint("event seq")
	event = r.bytes("event")
	switch {
	case r.err != nil:
		return nil, nil, 0, nil, fmt.Errorf("%w: truncated offer value", ErrChangelogCorrupt)
	case len(r.b) != 0:
		return nil, nil, 0, nil, fmt.Errorf("%w: %d trailing offer value bytes", ErrChangelogCorrupt, len(r.b))
	case len(offerVal) > 0 && offerVal[0] != tagLive && offerVal[0] != tagTombstone:
		return nil, nil, 0, nil, fmt.Errorf("%w: offer tag %d", ErrChangelogCorrupt, offerVal[0])
	case len(event) == 0 && eventSeq != 0:
		return nil, nil, 0, nil, fmt.Errorf("%w: event seq %d without an event", ErrChangelogCorrupt, eventSeq)
	}
	if len(offerVal) == 0 {
		offerVal = nil
	}
	if len(memVal) == 0 {
		memVal = nil
	}
	if len(event) == 0 {
		event = nil
	}
	return offerVal, memVal, eventSeq, event, nil
}
