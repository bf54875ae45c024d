// Package feedlog is the group's feed log (kafka.topics.feeds): the feed
// definitions in force and the held feed changes, as commands on a
// single-partition compacted topic that every instance folds in the same
// order (internal/kafkalog). Which changes are applied at once and which
// are held is decided by processor/feedchange.
package feedlog
