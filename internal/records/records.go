package records

import "time"

// Offer is one marketplace offer (docs/contract.md, Records). The avro
// tags match the embedded schema; the expr tags are the names filters and
// custom templates use. Price is derived (see DerivePrice) and is not part
// of the Avro record.
type Offer struct {
	ID          string            `avro:"id" expr:"id"`
	SellerID    string            `avro:"seller_id" expr:"seller_id"`
	ProductID   *string           `avro:"product_id" expr:"product_id"`
	Title       string            `avro:"title" expr:"title"`
	Description string            `avro:"description" expr:"description"`
	Category    string            `avro:"category" expr:"category"`
	PriceMinor  int               `avro:"price_minor" expr:"price_minor"`
	Currency    string            `avro:"currency" expr:"currency"`
	Stock       int               `avro:"stock" expr:"stock"`
	Condition   string            `avro:"condition" expr:"condition"`
	Status      string            `avro:"status" expr:"status"`
	URL         string            `avro:"url" expr:"url"`
	Images      []string          `avro:"images" expr:"images"`
	Brand       *string           `avro:"brand" expr:"brand"`
	GTIN        *string           `avro:"gtin" expr:"gtin"`
	Attributes  map[string]string `avro:"attributes" expr:"attributes"`
	UpdatedAt   time.Time         `avro:"updated_at" expr:"updated_at"`
	Version     int64             `avro:"version" expr:"version"`

	// Price is PriceMinor in major units of Currency; set by DerivePrice
	// after every decode.
	Price float64 `avro:"-" expr:"price"`
}

// Seller is a marketplace seller (docs/contract.md, Records).
type Seller struct {
	ID          string    `avro:"id" expr:"id"`
	Name        string    `avro:"name" expr:"name"`
	Country     string    `avro:"country" expr:"country"`
	Status      string    `avro:"status" expr:"status"`
	SuperSeller bool      `avro:"super_seller" expr:"super_seller"`
	UpdatedAt   time.Time `avro:"updated_at" expr:"updated_at"`
	Version     int64     `avro:"version" expr:"version"`
}

// Rating is a seller's rating (docs/contract.md, Records), keyed by
// seller id.
type Rating struct {
	SellerID    string    `avro:"seller_id" expr:"seller_id"`
	Average     float64   `avro:"average" expr:"average"`
	Count       int64     `avro:"count" expr:"count"`
	PositivePct float64   `avro:"positive_pct" expr:"positive_pct"`
	UpdatedAt   time.Time `avro:"updated_at" expr:"updated_at"`
	Version     int64     `avro:"version" expr:"version"`
}

// Cause says why a FeedEvent was emitted.
const (
	CauseChange    = "CHANGE"
	CauseReconcile = "RECONCILE"
	CauseRefresh   = "REFRESH"
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
