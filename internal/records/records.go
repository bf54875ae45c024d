package records

import "time"

// The records of the joined view (Offer, Seller, Rating) and their size
// bounds are generated into model_gen.go from schemas/*.avsc and the
// annotation table in modelgen/model.go: edit those, then run go generate.
//
//go:generate go run ./modelgen

// Cause says why a FeedEvent was emitted.
const (
	CauseChange    = "CHANGE"
	CauseReconcile = "RECONCILE"
	CauseRefresh   = "REFRESH"
	// CauseFeedChange: a feed definition was added, changed or removed,
	// and the offer's membership follows (the backfill).
	CauseFeedChange = "FEED_CHANGE"
)

// Action is what a connector does with one (feed, destination) of an event.
const (
	ActionAdd     = "ADD"
	ActionUpdate  = "UPDATE"
	ActionRemove  = "REMOVE"
	ActionRefresh = "REFRESH"
)

// FeedEvent is the record feedmill emits to the events topic
// (docs/contract.md, FeedEvent).
type FeedEvent struct {
	EventID       string      `avro:"event_id"`
	OfferID       string      `avro:"offer_id"`
	Seq           int64       `avro:"seq"`
	EmittedAt     time.Time   `avro:"emitted_at"`
	Cause         string      `avro:"cause"`
	Entries       []FeedEntry `avro:"entries"`
	ChangedFields []string    `avro:"changed_fields"`
	Offer         *OfferView  `avro:"offer"`
}

// FeedEntry is one (feed, destination) an event affects.
type FeedEntry struct {
	FeedID      string `avro:"feed_id"`
	Destination string `avro:"destination"`
	Action      string `avro:"action"`
}

// OfferView is the joined state of an offer at emission.
type OfferView struct {
	Offer  Offer   `avro:"offer"`
	Seller *Seller `avro:"seller"`
	Rating *Rating `avro:"rating"`
}
