package state

import (
	"encoding/binary"
	"fmt"
	"math"
)

// OutboxRecord is a record waiting in the outbox to be produced.
type OutboxRecord struct {
	Topic string
	// Partition is the Kafka partition of Topic to produce to, or
	// PartitionByKey (-1) to let the producer pick it from Key. Note that
	// the zero value is partition 0: a record meant to be partitioned by
	// key must say PartitionByKey. A changelog record names its partition
	// (the offers partition it belongs to).
	Partition int32
	Key       []byte
	Value     []byte
	Headers   []Header
	// SourceTimeMs is the timestamp of the input record that caused it
	// (unix ms), for the change→event latency; 0 when unknown.
	SourceTimeMs int64
}

// Header is one Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// PartitionByKey in OutboxRecord.Partition lets the producer pick the
// partition from the record key.
const PartitionByKey int32 = -1

// outboxRecordVersion is the encoding AppendOutboxRecord writes. Version 1
// had no partition (it decodes as PartitionByKey).
const outboxRecordVersion = 2

// AppendOutboxRecord appends the encoding of r to dst: a version byte
// (2), varint partition, topic, key, value or none, headers, varint
// source time.
func AppendOutboxRecord(dst []byte, r *OutboxRecord) []byte {
	dst = append(dst, outboxRecordVersion)
	dst = binary.AppendVarint(dst, int64(r.Partition))
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

// DecodeOutboxRecord decodes b (version 1 or 2) into r; a version 1
// record decodes with Partition PartitionByKey. r's byte slices alias b:
// copy them if they must outlive b. It returns an error wrapping
// ErrCorrupt when b is not a whole record.
func DecodeOutboxRecord(b []byte, r *OutboxRecord) error {
	if len(b) == 0 || b[0] < 1 || b[0] > outboxRecordVersion {
		return fmt.Errorf("%w: outbox record version", ErrCorrupt)
	}
	rd := reader{b: b[1:]}
	r.Partition = PartitionByKey
	if b[0] >= 2 {
		p := rd.varint("outbox partition")
		if p < -1 || p > math.MaxInt32 {
			return fmt.Errorf("%w: outbox partition %d", ErrCorrupt, p)
		}
		r.Partition = int32(p)
	}
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
