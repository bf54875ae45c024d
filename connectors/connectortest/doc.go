// Package connectortest is the conformance suite every connector runs: a
// seeded stream of feed events (membership changes over several feeds and
// destinations, re-deliveries, undecodable records, offers a partner
// refuses) is produced to a testenv broker and drained by the real
// connectors.Runtime into the partner under test, which talks to a fake
// partner server. The run is interrupted mid-batch and restarted. The
// suite then checks that the fake holds exactly the destination's
// membership with the latest state, that no state was applied twice, and
// that dead letters hold exactly the refused and undecodable records.
//
// Fake partners use Faults to inject 429 with Retry-After, 500, timeouts
// and per-item failures on a fixed schedule. The package is for tests and
// benchmarks only.
package connectortest
