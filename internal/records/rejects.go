package records

import "strconv"

// Header names of a reject record (docs/contract.md, Rejects). The
// processor's rejects topic and every connector's dead-letter topic carry
// them, built by AppendRejectHeaders.
const (
	HeaderError           = "error"
	HeaderSourceTopic     = "source-topic"
	HeaderSourcePartition = "source-partition"
	HeaderSourceOffset    = "source-offset"
)

// Header is the shape of a Kafka record header. kgo.RecordHeader and
// state.Header both have it, so AppendRejectHeaders builds either without
// this package knowing about Kafka clients or Pebble.
type Header interface {
	~struct {
		Key   string
		Value []byte
	}
}

// AppendRejectHeaders appends the headers every reject record carries to
// dst and returns it: error (reason), source-topic, source-partition and
// source-offset, in that order, naming the input record that was refused.
// The values are new slices the caller owns. Safe for concurrent use.
func AppendRejectHeaders[H Header](dst []H, reason, topic string, partition int32, offset int64) []H {
	return append(dst,
		H{Key: HeaderError, Value: []byte(reason)},
		H{Key: HeaderSourceTopic, Value: []byte(topic)},
		H{Key: HeaderSourcePartition, Value: strconv.AppendInt(nil, int64(partition), 10)},
		H{Key: HeaderSourceOffset, Value: strconv.AppendInt(nil, offset, 10)},
	)
}
