// Package connectors is the shared runtime every feedmill connector binary
// runs on. A connector keeps one partner's catalog equal to feedmill's
// membership for the connector's destinations: the union, over every feed
// whose destination is one of the connector's, of the offers in that feed.
//
// The Runtime owns the Kafka consumer of the events topic, the per-offer
// state in Pebble (last applied seq and the (feed, destination) pairs the
// offer is in), batching, the rate limit, bounded concurrency, retries,
// dead letters, offset commits and the connector's metrics. A partner
// package (connectors/webhook, connectors/merchant, connectors/meta) only
// implements Partner: it turns a slice of Items into partner requests and
// reports one Result per item. Partners must not talk to Kafka or Pebble.
//
// Model, per record of the events topic:
//
//   - a record whose destination headers name none of the connector's
//     destinations is skipped without decoding;
//   - an event whose seq is not greater than the last applied seq of its
//     offer is a re-delivery and is skipped;
//   - otherwise its entries for the connector's destinations update the
//     offer's membership; an offer that is in at least one of them is
//     upserted at the partner with the event's state, an offer that left
//     the last of them is deleted, an offer removed from one feed while
//     still in another of the connector's feeds is left alone;
//   - several events for one offer in a batch collapse to the last state.
//
// Offsets are committed only up to the first record whose item the partner
// has not acknowledged (or that went to the dead-letter topic), so a crash
// or SIGTERM re-delivers exactly the unacknowledged rest, and the persisted
// seq keeps re-delivered acknowledged items from being sent twice.
//
// The per-offer state lives in the connector's own state directory, so a
// connector group is meant to run as one instance per state directory
// (static membership with kafka.instance_id keeps partitions stable).
package connectors
