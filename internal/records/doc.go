// Package records defines feedmill's records (docs/contract.md, Records)
// and their encodings.
//
// It owns the Go types of Offer, Seller, Rating and FeedEvent, their Avro
// schemas (schemas/*.avsc, namespace feedmill.v1, embedded in the binary),
// the Confluent Schema Registry wire format (magic byte 0, big-endian schema
// id, Avro binary body), the validation rules the schemas cannot express,
// the compact state encoding the state package stores in Pebble, and the
// headers of a reject record (AppendRejectHeaders), which the processor's
// rejects and the connectors' dead letters share.
//
// The model: upstream writes values with its own (writer) schema and names
// it by id in the 5-byte header. A Serde fetches the writer schema from the
// registry once per id, resolves it against feedmill's (reader) schema with
// Avro schema resolution, and caches the result (a "schema not found"
// answer only for SerdeOptions.UnknownSchemaTTL), so upstream may add
// optional fields with defaults, or drop fields that have one in ours,
// without breaking feedmill. After the first value of an id, decoding costs
// a header check, one lock-free map lookup and the Avro decode.
//
// Errors split in two: a *RejectError (see IsReject) is the record's fault —
// malformed header, unknown schema id, incompatible writer schema, a body
// that does not decode, or a failed Validate* rule — and the caller sends
// the original bytes to the rejects topic and goes on. Every other error
// (registry unreachable, context ended) is a broken dependency that the
// caller must retry without dropping data.
//
// The package must not know about Kafka clients or Pebble: it turns bytes
// into records and back, nothing more. It keeps no package-level mutable
// state; everything lives in a Serde.
package records
