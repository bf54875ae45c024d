// Package state owns everything feedmill keeps in Pebble: the joined offer
// state (offers, sellers, ratings, the seller → offers index), each offer's
// feed memberships, the consumed offset of every input partition, the
// transactional outbox of records still to be produced, seller
// re-evaluation jobs and live member counts.
//
// The one rule this package exists for: a state change, the input offsets it
// consumed and the records it must emit are written in ONE Pebble batch
// (Batch.Commit). A crash at any instant therefore leaves either all of them
// or none of them. Side effects (producing to Kafka) happen after the commit
// and are driven from the outbox, which is only deleted once acknowledged.
//
// Offer-scoped keys carry the offers partition so that a partition's state is
// a set of contiguous key ranges. That is what lets an instance that gains
// an offers partition restore it from the partition's compacted changelog
// topic (changelog.go defines its records, which the processor writes
// through the outbox; Store.NewRestore wipes and rebuilds the partition). state never imports processor and knows
// nothing about Kafka clients.
package state
