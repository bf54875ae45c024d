package grouping

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/feedmill/feedmill/state"
)

// The records of the two internal topics (docs/grouped-feeds.md). Both
// are binary, versioned by their first value byte, and for feedmill only.
//
//	candidacy: key   feed 0x00 group key
//	           value 1, uvarint len + offer id, uvarint partition,
//	                 uvarint seq, order (8 bytes), live (1 byte)
//	decision:  key   offer id
//	           value 1, uvarint len + feed, uvarint len + group key,
//	                 won (1 byte), uvarint seq, uvarint gseq
const recordVersion = 1

// ErrBadRecord marks a record of an internal topic that does not decode.
var ErrBadRecord = errors.New("bad grouping record")

// AppendMessageKey appends the key of m's record.
func AppendMessageKey(dst []byte, m *Message) []byte {
	dst = append(dst, m.Feed...)
	dst = append(dst, 0)
	return append(dst, m.Key...)
}

// AppendMessage appends the value of m's record.
func AppendMessage(dst []byte, m *Message) []byte {
	dst = append(dst, recordVersion)
	dst = binary.AppendUvarint(dst, uint64(len(m.OfferID)))
	dst = append(dst, m.OfferID...)
	dst = binary.AppendUvarint(dst, uint64(m.Partition))
	dst = binary.AppendUvarint(dst, m.Seq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.Order))
	return append(dst, boolByte(m.Live))
}

// DecodeMessage decodes a candidacy record into m (feed ids must not
// hold a zero byte: config ids cannot).
func DecodeMessage(key, value []byte, m *Message) error {
	i := bytes.IndexByte(key, 0)
	if i < 0 {
		return fmt.Errorf("%w: candidacy key without a separator", ErrBadRecord)
	}
	m.Feed, m.Key = string(key[:i]), string(key[i+1:])
	r := rd{b: value}
	if r.byte() != recordVersion {
		return fmt.Errorf("%w: candidacy version", ErrBadRecord)
	}
	m.OfferID = string(r.bytes())
	m.Partition = int32(r.uvarint())
	m.Seq = r.uvarint()
	m.Order = state.Order(r.u64())
	m.Live = r.byte() == 1
	return r.done("candidacy")
}

// AppendDecision appends the value of d's record (its key is d.OfferID).
func AppendDecision(dst []byte, d *Decision) []byte {
	dst = append(dst, recordVersion)
	dst = binary.AppendUvarint(dst, uint64(len(d.Feed)))
	dst = append(dst, d.Feed...)
	dst = binary.AppendUvarint(dst, uint64(len(d.Key)))
	dst = append(dst, d.Key...)
	dst = append(dst, boolByte(d.Won))
	dst = binary.AppendUvarint(dst, d.Seq)
	return binary.AppendUvarint(dst, d.GSeq)
}

// DecodeDecision decodes a decision record into d; partition is the
// record's (the offer's) partition.
func DecodeDecision(key, value []byte, partition int32, d *Decision) error {
	r := rd{b: value}
	if r.byte() != recordVersion {
		return fmt.Errorf("%w: decision version", ErrBadRecord)
	}
	d.OfferID, d.Partition = string(key), partition
	d.Feed = string(r.bytes())
	d.Key = string(r.bytes())
	d.Won = r.byte() == 1
	d.Seq = r.uvarint()
	d.GSeq = r.uvarint()
	return r.done("decision")
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// rd reads a record value; the first problem sticks.
type rd struct {
	b   []byte
	bad bool
}

func (r *rd) byte() byte {
	if len(r.b) < 1 {
		r.bad = true
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *rd) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.bad, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *rd) u64() uint64 {
	if len(r.b) < 8 {
		r.bad, r.b = true, nil
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *rd) bytes() []byte {
	n := r.uvarint()
	if r.bad || uint64(len(r.b)) < n {
		r.bad, r.b = true, nil
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *rd) done(what string) error {
	if r.bad || len(r.b) != 0 {
		return fmt.Errorf("%w: %s value truncated or too long", ErrBadRecord, what)
	}
	return nil
}
