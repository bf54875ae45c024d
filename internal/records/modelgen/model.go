package main

// model is the part of the data model that the .avsc files do not say.
// Field order, names, Avro types and field docs come from the schemas.
//
// Adding a field to a record: add it to the .avsc (with a default, so
// older writers still resolve), append its dotted name to order, add a
// note only if its Go type is not the Avro default, then `go generate
// ./internal/records`.
//
// Adding a joined table input: write its .avsc, add a table to joined
// (its key field, the offer field it joins on), append its fields to
// order, then regenerate; the hand-written parts are the ones that really
// differ (validation rules, the Kind and serde methods, the state keys,
// its topic in config).
var model = description{
	root: table{
		name:   "offer",
		schema: "offer.avsc",
		doc: `Offer is one marketplace offer (docs/contract.md, Records), the
root of the joined view. The avro tags match the embedded schema; the
expr tags are the names filters and custom templates use. Price is
derived (see DerivePrice) and is not part of the Avro record.`,
		key: "id",
		notes: map[string]note{
			"price_minor": {goType: "int"},
		},
		derived: []derived{{
			name:   "price",
			goType: "float64",
			doc: `Price is PriceMinor in major units of Currency; set by DerivePrice
after every decode.`,
		}},
	},
	joined: []table{
		{
			name:   "seller",
			schema: "seller.avsc",
			doc:    `Seller is a marketplace seller (docs/contract.md, Records).`,
			key:    "id",
			joinOn: "seller_id",
		},
		{
			name:   "rating",
			schema: "rating.avsc",
			doc: `Rating is a seller's rating (docs/contract.md, Records), keyed by
seller id.`,
			key:    "seller_id",
			joinOn: "seller_id",
		},
	},
	// order numbers the view's fields: FieldMask bit i is order[i], and
	// the stored per-field hashes (state.Membership.FieldHashes) are
	// order without the derived fields and now. Both are stored (pending
	// seller jobs keep a FieldMask), so the list is append only:
	// reordering or removing a name breaks stored state. A record's
	// fields need not be contiguous.
	order: []string{
		"offer.id", "offer.seller_id", "offer.product_id", "offer.title", "offer.description",
		"offer.category", "offer.price_minor", "offer.currency", "offer.stock", "offer.condition",
		"offer.status", "offer.url", "offer.images", "offer.brand", "offer.gtin",
		"offer.attributes", "offer.updated_at", "offer.version", "offer.price",
		"seller.id", "seller.name", "seller.country", "seller.status", "seller.super_seller",
		"seller.updated_at", "seller.version",
		"rating.seller_id", "rating.average", "rating.count", "rating.positive_pct",
		"rating.updated_at", "rating.version",
		"now",
	},
}

// description is the annotation table's type.
type description struct {
	root   table    // the record the view is keyed by (offer)
	joined []table  // joined table inputs, in FieldMask order
	order  []string // append only; "now" is the evaluation time
}

// table is one record of the joined view.
type table struct {
	name   string // expr root and dotted-name prefix: "offer"
	schema string // file in internal/records/schemas
	doc    string // Go doc of the record type
	key    string // the field that equals the Kafka key
	joinOn string // joined tables: the root's field holding this table's key
	notes  map[string]note
	// derived fields follow the Avro fields in the Go type (avro:"-");
	// they are in the expr environment and FieldMask, never in the hashes.
	derived []derived
}

// note is what a field needs beyond its Avro type.
type note struct {
	goType string // Go type when not the Avro default (long: int64, int: int)
	hidden bool   // not in the expr environment, FieldMask, diff or hashes (absent from order)
}

type derived struct {
	name, goType, doc string
}
