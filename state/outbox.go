package state

import (
	"encoding/binary"
	"fmt"
)

// OutboxRecord is a record waiting in the outbox to be produced.
type OutboxRecord struct {
	Topic   string
	Key     []byte
	Value   []byte
	Headers []Header
	// SourceTimeMs is the timestamp of the input record that caused it
	// (unix ms), for the change→event latency; 0 when unknown.
	SourceTimeMs int64
}

// Header is one Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// AppendOutboxRecord appends the encoding of r to dst.
func AppendOutboxRecord(dst []byte, r *OutboxRecord) []byte {
	dst = append(dst, 1)
	dst = appendString(dst, r.Topic)
	dst = appendBytes(dst, r.Key)
	if r.Value == nil {
		dst = append(dst, 0)
	} else {
		dst = append(dst, 1)
		dst = appendBytes(dst, r.Value)
	}
	dst = binary.AppendUvarint(dst, uint64(len(r.Headers)))
	for _, h := range r.Headers {
		dst = appendString(dst, h.Key)
		dst = appendBytes(dst, h.Value)
	}
	return binary.AppendVarint(dst, r.SourceTimeMs)
}

// DecodeOutboxRecord decodes b into r. r's byte slices alias b: copy them
// if they must outlive b.
func DecodeOutboxRecord(b []byte, r *OutboxRecord) error {
	if len(b) == 0 || b[0] != 1 {
		return fmt.Errorf("%w: outbox record version", ErrCorrupt)
	}
	rd := reader{b: b[1:]}
	r.Topic = string(rd.bytes("outbox topic"))
	r.Key = rd.bytes("outbox key")
	if len(rd.b) == 0 {
		return fmt.Errorf("%w: outbox value flag", ErrCorrupt)
	}
	hasValue := rd.b[0] == 1
	rd.b = rd.b[1:]
	r.Value = nil
	if hasValue {
		r.Value = rd.bytes("outbox value")
	}
	n := rd.uvarint("outbox headers")
	if n > uint64(len(rd.b)) {
		return fmt.Errorf("%w: outbox header count", ErrCorrupt)
	}
	r.Headers = r.Headers[:0]
	for i := uint64(0); i < n && rd.err == nil; i++ {
		k := string(rd.bytes("header key"))
		r.Headers = append(r.Headers, Header{Key: k, Value: rd.bytes("header value")})
	}
	r.SourceTimeMs = rd.varint("source time")
	if rd.err != nil {
		return rd.err
	}
	return nil
}
