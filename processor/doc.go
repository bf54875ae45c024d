// Package processor is feedmill's streaming path: it consumes the offers,
// sellers and ratings topics, joins them in state, evaluates every feed for
// each change and emits ADD/UPDATE/REMOVE feed events through the outbox.
//
// The model: one Applier goroutine per instance is the only writer of offer
// state and memberships. Input records arrive in fetch batches; each batch
// becomes ONE state.Batch holding the state change, the consumed offsets and
// the outgoing records (events and rejects), committed atomically. The Relay
// produces committed outbox records to Kafka and deletes them once
// acknowledged, so a crash anywhere re-sends at most identical events (same
// event_id and seq) and loses nothing. Seller and rating changes re-evaluate
// the seller's offers as jobs that advance in bounded, committed chunks.
//
// Offers are consumed in a consumer group (partitions assigned to this
// instance, resumed from the offsets stored in Pebble); sellers and ratings
// are read whole, as tables, by every instance. processor owns no config
// parsing and no Pebble encoding: those are config's and state's.
package processor
