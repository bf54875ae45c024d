// Package synth generates realistic, deterministic synthetic input for
// feedmill: a catalog of offers, sellers and ratings, an endless change
// stream over it, and sets of feed definitions that match a realistic share
// of that catalog. It backs `feedmill gen`, `feedmill dev`, integration
// tests and benchmarks.
//
// The model: a Generator owns the current truth (State). New builds the
// initial catalog from a seed; Initial emits it; every Next call draws one
// change (price, stock, status, title and no-op edits, new offers,
// tombstones, seller suspensions, rating threshold crossings, duplicates
// and late re-sends), applies it to the truth and returns it. The same seed
// and a fixed clock give byte-identical output, so tests can compute their
// expectations from State independently of the processor under test.
// About 1 % of offers and sellers carry hostile text (markup, `]]>`,
// control characters, bidi overrides, emoji, 4000-character titles) that is
// still valid UTF-8 and therefore a valid Avro record.
//
// FeedSet and ExampleFeeds build config.Feed values over the same category
// and brand vocabulary. Producer writes changes to Kafka in the Confluent
// wire format through records.Serde.
//
// synth is test and demo tooling: it must never be imported by the
// processor, state or connectors, and a Generator is not safe for
// concurrent use.
package synth
