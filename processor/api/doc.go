// Package api is the processor's HTTP API: health, readiness and metrics,
// GET /api/feeds, the full-pass runs endpoints, the admin bearer-token
// guard and request body bounds, and the JSON answer helpers every
// handler uses (errors are {"error": "..."}). It owns no state: it reads
// the store and drives the full pass through the small interfaces it
// declares. Feed files are served by processor/feedstore.
package api
