// Package kafkalog is a log of commands on a single-partition compacted
// Kafka topic that every instance of a group reads whole and follows, in
// the same order: the transport of the feed log (processor/feedlog). The
// caller folds the records; Append writes one and waits until it is
// folded.
package kafkalog
