// Package devstack runs an embedded Kafka-protocol broker (franz-go kfake)
// and a Confluent-compatible schema registry (franz-go srfake) on loopback,
// for `feedmill dev`, `feedmill broker` and integration tests.
//
// A Stack owns both servers: Start binds them to 127.0.0.1 (fixed or random
// ports), creates the requested topics and returns; Close stops both and,
// when persistence is on, flushes the broker state to disk.
//
// With Options.DataDir set, kfake persists topics, records and group
// offsets under DataDir/kafka, and every schema registered through the
// HTTP API is written to DataDir/registry.json (atomically, after each
// successful registration). On the next Start the schemas are re-seeded
// with their original subjects, versions and ids, so records persisted by
// the broker still resolve to their writer schemas.
//
// devstack is development and test infrastructure: it must not be used by
// the processor or connectors at run time, and it holds no package-level
// state.
package devstack
