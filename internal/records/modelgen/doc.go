// Command modelgen writes the Go code of feedmill's data model from one
// description: the Avro schemas of the joined view's records
// (internal/records/schemas/*.avsc, the source of truth for the wire
// format) and the annotation table in model.go, which says what Avro does
// not: which record is the view's root and which are joined table inputs
// (keyed by what, joined on which offer field), derived fields (offer.price),
// fields hidden from filters and templates, Go types that differ from the
// Avro default, and the append-only order of the stored per-field hashes.
//
// It owns the generated files, and nothing else:
//
//   - internal/records/model_gen.go: the Offer, Seller and Rating types,
//     their encoded-size bounds (OfferSizeMax, ...) and their Avro body
//     encoders (appendOffer, ...: schema order, derived fields left out,
//     enum symbols and int ranges checked before writing; encode.go holds
//     the helpers they call).
//   - feeds/model_gen.go: the expression environments (checked and slot
//     form), the usage and FieldMask bits, field names, DiffFields, the
//     allocation-free field readers of the matching engine, and the list of
//     joined tables with their per-table accessors (Joined).
//   - processor/fields_gen.go: the names and hashes of the stored per-field
//     hashes (viewFields, hashView), in the order of model.go's order.
//
// Run it with `go generate ./internal/records`; TestGeneratedUpToDate fails
// when a committed file differs from what modelgen would write. Generated
// code is specialised per field: it uses no reflection, maps or allocation
// on the per-record path. modelgen must not grow business rules (validation,
// templates): those are hand-written beside the generated code.
package main
