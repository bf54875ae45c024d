package records

import (
	"math"
	"strconv"
)

// Bounds of the decoded records, checked by the Validate* functions. A
// record over one of them is rejected (it goes to the rejects topic with
// the reason) instead of being stored: ids are parts of state keys and
// partner requests, and lists and text are held, diffed and rendered per
// offer, so one hostile record must not cost unbounded memory or time.
// The Avro decoder itself stops at 65,536 elements per list and 4 MiB per
// string; these bounds are far tighter.
const (
	// MaxIDBytes bounds offer ids, seller ids and product ids (in UTF-8
	// bytes). Well below the 65,535 a state key can length-prefix.
	MaxIDBytes = 1024
	// MaxImages bounds the images of an offer.
	MaxImages = 1000
	// MaxAttributes bounds the attributes of an offer.
	MaxAttributes = 1000
	// MaxDescriptionBytes bounds an offer's description (64 KiB).
	MaxDescriptionBytes = 64 << 10
	// MaxTextBytes bounds every other text field: an offer's title,
	// category, url, brand, gtin, each image URL, each attribute key and
	// value, a seller's name and country (8 KiB).
	MaxTextBytes = 8 << 10
)

// Reject reasons of the validators. They are stable: operators grep the
// rejects topic for them.
const (
	ReasonMissingID         = "missing id"
	ReasonKeyMismatch       = "key differs from id"
	ReasonMissingSellerID   = "missing seller_id"
	ReasonNegativePrice     = "negative price_minor"
	ReasonNegativeStock     = "negative stock"
	ReasonStockRange        = "stock out of range"
	ReasonBadCurrency       = "currency is not 3 upper-case letters"
	ReasonBadVersion        = "non-positive version"
	ReasonAverageRange      = "average out of range 0..5"
	ReasonPositivePctRange  = "positive_pct out of range 0..100"
	ReasonNegativeCount     = "negative count"
	ReasonKeyMismatchSeller = "key differs from seller_id"

	ReasonIDTooLong         = "id over 1024 bytes"         // MaxIDBytes
	ReasonSellerIDTooLong   = "seller_id over 1024 bytes"  // MaxIDBytes
	ReasonProductIDTooLong  = "product_id over 1024 bytes" // MaxIDBytes
	ReasonTooManyImages     = "more than 1000 images"      // MaxImages
	ReasonTooManyAttributes = "more than 1000 attributes"  // MaxAttributes
)

// A text field over its bound is rejected with the reason "<field> over
// <bound> bytes", e.g. "description over 65536 bytes", "title over 8192
// bytes", "images[] over 8192 bytes", "attributes over 8192 bytes" (a key
// or a value).

// ValidateOffer checks the rules of docs/contract.md, Records that the
// schema cannot express and the bounds above; key is the Kafka record
// key. It returns nil or a *RejectError. Safe for concurrent use; o is
// only read. Enum fields are not checked: a decoded Offer always holds a
// symbol of its enum. It does not allocate unless it rejects.
func ValidateOffer(key []byte, o *Offer) error {
	switch {
	case o.ID == "":
		return reject(ReasonMissingID, nil)
	case len(o.ID) > MaxIDBytes:
		return reject(ReasonIDTooLong, nil)
	case string(key) != o.ID:
		return reject(ReasonKeyMismatch, nil)
	case o.SellerID == "":
		return reject(ReasonMissingSellerID, nil)
	case len(o.SellerID) > MaxIDBytes:
		return reject(ReasonSellerIDTooLong, nil)
	case o.ProductID != nil && len(*o.ProductID) > MaxIDBytes:
		return reject(ReasonProductIDTooLong, nil)
	case o.PriceMinor < 0:
		return reject(ReasonNegativePrice, nil)
	case o.Stock < 0:
		return reject(ReasonNegativeStock, nil)
	case o.Stock > math.MaxInt32:
		return reject(ReasonStockRange, nil)
	case !isCurrencyCode(o.Currency):
		return reject(ReasonBadCurrency, nil)
	case o.Version <= 0:
		return reject(ReasonBadVersion, nil)
	case len(o.Images) > MaxImages:
		return reject(ReasonTooManyImages, nil)
	case len(o.Attributes) > MaxAttributes:
		return reject(ReasonTooManyAttributes, nil)
	case len(o.Description) > MaxDescriptionBytes:
		return tooLong("description", MaxDescriptionBytes)
	}
	return offerText(o)
}

// offerText checks the bounded text fields of o other than description.
func offerText(o *Offer) error {
	for _, f := range [...]struct {
		name string
		v    string
	}{{"title", o.Title}, {"category", o.Category}, {"url", o.URL}} {
		if len(f.v) > MaxTextBytes {
			return tooLong(f.name, MaxTextBytes)
		}
	}
	if o.Brand != nil && len(*o.Brand) > MaxTextBytes {
		return tooLong("brand", MaxTextBytes)
	}
	if o.GTIN != nil && len(*o.GTIN) > MaxTextBytes {
		return tooLong("gtin", MaxTextBytes)
	}
	for _, img := range o.Images {
		if len(img) > MaxTextBytes {
			return tooLong("images[]", MaxTextBytes)
		}
	}
	for k, v := range o.Attributes {
		if len(k) > MaxTextBytes || len(v) > MaxTextBytes {
			return tooLong("attributes", MaxTextBytes)
		}
	}
	return nil
}

// tooLong is the reject of a text field over its bound.
func tooLong(field string, bound int) *RejectError {
	return reject(field+" over "+strconv.Itoa(bound)+" bytes", nil)
}

// ValidateSeller checks a Seller against its key (the seller id) and the
// bounds above. It returns nil or a *RejectError. Safe for concurrent use.
func ValidateSeller(key []byte, s *Seller) error {
	switch {
	case s.ID == "":
		return reject(ReasonMissingID, nil)
	case len(s.ID) > MaxIDBytes:
		return reject(ReasonIDTooLong, nil)
	case string(key) != s.ID:
		return reject(ReasonKeyMismatch, nil)
	case s.Version <= 0:
		return reject(ReasonBadVersion, nil)
	case len(s.Name) > MaxTextBytes:
		return tooLong("name", MaxTextBytes)
	case len(s.Country) > MaxTextBytes:
		return tooLong("country", MaxTextBytes)
	}
	return nil
}

// ValidateRating checks a Rating against its key (the seller id): average
// in 0..5, positive_pct in 0..100 (NaN is out of range), count >= 0,
// seller_id within MaxIDBytes. It
// returns nil or a *RejectError. Safe for concurrent use.
func ValidateRating(key []byte, r *Rating) error {
	switch {
	case r.SellerID == "":
		return reject(ReasonMissingSellerID, nil)
	case len(r.SellerID) > MaxIDBytes:
		return reject(ReasonSellerIDTooLong, nil)
	case string(key) != r.SellerID:
		return reject(ReasonKeyMismatchSeller, nil)
	case !(r.Average >= 0 && r.Average <= 5):
		return reject(ReasonAverageRange, nil)
	case !(r.PositivePct >= 0 && r.PositivePct <= 100):
		return reject(ReasonPositivePctRange, nil)
	case r.Count < 0:
		return reject(ReasonNegativeCount, nil)
	case r.Version <= 0:
		return reject(ReasonBadVersion, nil)
	}
	return nil
}

func isCurrencyCode(c string) bool {
	if len(c) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if c[i] < 'A' || c[i] > 'Z' {
			return false
		}
	}
	return true
}
