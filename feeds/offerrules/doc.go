// Package offerrules holds the business rules every output of an offer
// shares, so one offer reads the same in an XML feed (the feeds package's
// built-in templates) and through a partner API (connectors/merchant,
// connectors/meta):
//
//   - InStock: whether the offer can be bought now;
//   - AppendAmount and AppendPrice: the price in major units with exactly
//     the currency's minor-unit digits (records.MinorUnits);
//   - AppendProductType: the product type from the category path.
//
// It owns the rules, not their spelling: each format writes InStock as its
// own words ("in_stock", "IN_STOCK", "in stock", "1") and chooses where the
// values go. It must not know about templates, partners, Kafka or HTTP, and
// must not import feeds or connectors. Functions are pure, safe for
// concurrent use, and append into the buffer the caller passes in without
// allocating beyond its growth.
package offerrules
