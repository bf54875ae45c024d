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
//   - "c": the next offset of offers partition p (AppendChangelogOffset).
//   - "a": the acknowledged outbox sequence of p: every outbox record of p
//     with a smaller sequence was acknowledged by Kafka
//     (AppendChangelogAcked).
//
// Compaction keeps the last record of each key, so the changelog holds the
// last value of every offer; the restore applies records in log order, a
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

// ChangelogOffsetKey is the changelog key of the offers partition's next
// offset ("c"); ChangelogAckedKey the key of the acknowledged outbox
// sequence ("a"). They are read-only: never modify them (an append
// copies, their capacity being their length).
var (
	ChangelogOffsetKey = []byte{ChangelogKindOffset}
	ChangelogAckedKey  = []byte{ChangelogKindAcked}
)

// AppendChangelogOffset appends the "c" value: next, the next offset of
// the offers partition to consume (varint).
func AppendChangelogOffset(dst []byte, next int64) []byte {
	return binary.AppendVarint(dst, next)
}

// DecodeChangelogOffset decodes a "c" value. It returns an error wrapping
// ErrChangelogCorrupt unless v is exactly one varint.
func DecodeChangelogOffset(v []byte) (int64, error) {
	next, n := binary.Varint(v)
	if n <= 0 || n != len(v) {
		return 0, fmt.Errorf("%w: offset value %x", ErrChangelogCorrupt, v)
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
