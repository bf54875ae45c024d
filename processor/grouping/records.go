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
// Their keys name what a record is the latest word on, so the topics
// can be compacted: a consumer that reads only the last record of each
// key (ignoring older ones by sequence anyway) ends at the same state.
//
//	candidacy: key   feed 0x00 group key 0x00 offer id
//	           value 1, uvarint len + offer id, uvarint partition,
//	                 uvarint seq, order (8 bytes), live (1 byte)
//	decision:  key   offer id 0x00 feed 0x00 group key
//	           value 1, uvarint len + feed, uvarint len + group key,
//	                 won (1 byte), uvarint seq, uvarint gseq
const recordVersion = 1

// ErrBadRecord marks a record of an internal topic that does not decode.
var ErrBadRecord = errors.New("bad grouping record")

// AppendMessageKey appends the key of m's record.
func AppendMessageKey(dst []byte, m *Message) []byte {
	dst = append(dst, m.Feed...)
	dst = append(dst, 0)
	dst = append(dst, m.Key...)
	dst = append(dst, 0)
	return append(dst, m.OfferID...)
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

// DecodeMessage decodes a candidacy record into m (feed ids hold no zero
// byte: config ids cannot).
func DecodeMessage(key, value []byte, m *Message) error {
	r := rd{b: value}
	if r.byte() != recordVersion {
		return fmt.Errorf("%w: candidacy version", ErrBadRecord)
	}
	offer := r.bytes()
	m.Partition = int32(r.uvarint())
	m.Seq = r.uvarint()
	m.Order = state.Order(r.u64())
	m.Live = r.byte() == 1
	if err := r.done("candidacy"); err != nil {
		return err
	}
	i := bytes.IndexByte(key, 0)
	rest := len(key) - len(offer) - 1 // where the offer id's separator is
	if i < 0 || rest < i+1 || key[rest] != 0 || !bytes.Equal(key[rest+1:], offer) {
		return fmt.Errorf("%w: candidacy key %q is not feed, key and offer %q", ErrBadRecord, key, offer)
	}
	m.Feed, m.Key, m.OfferID = string(key[:i]), string(key[i+1:rest]), string(offer)
	return nil
}

// AppendDecisionKey appends the key of d's record.
func AppendDecisionKey(dst []byte, d *Decision) []byte {
	dst = append(dst, d.OfferID...)
	dst = append(dst, 0)
	dst = append(dst, d.Feed...)
	dst = append(dst, 0)
	return append(dst, d.Key...)
}

// AppendDecision appends the value of d's record.
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
	feed, gkey := r.bytes(), r.bytes()
	d.Won = r.byte() == 1
	d.Seq = r.uvarint()
	d.GSeq = r.uvarint()
	if err := r.done("decision"); err != nil {
		return err
	}
	n := len(key) - len(feed) - len(gkey) - 2 // the offer id's length
	if n < 0 || key[n] != 0 || key[n+1+len(feed)] != 0 || !bytes.Equal(key[n+1:n+1+len(feed)], feed) || !bytes.Equal(key[n+2+len(feed):], gkey) {
		return fmt.Errorf("%w: decision key %q is not offer, feed %q and key %q", ErrBadRecord, key, feed, gkey)
	}
	d.OfferID, d.Partition, d.Feed, d.Key = string(key[:n]), partition, string(feed), string(gkey)
	return nil
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
