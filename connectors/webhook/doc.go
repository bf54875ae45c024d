// Package webhook is the generic partner of feedmill-connector-webhook: it
// POSTs each batch of items as one signed JSON document to a URL. The
// payload, signature and answer are documented in docs/connectors.md and
// by the types in this package (Payload, PayloadItem, Answer).
//
// It owns the HTTP request and the per-item answer mapping only; the
// runtime in package connectors owns retries, batching and state.
package webhook
