package records

import "math"

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
)

// ValidateOffer checks the rules of CONTRACT §2 that the schema cannot
// express; key is the Kafka record key. It returns nil or a *RejectError.
// Safe for concurrent use; o is only read. Enum fields are not checked: a
// decoded Offer always holds a symbol of its enum.
func ValidateOffer(key []byte, o *Offer) error {
	switch {
	case o.ID == "":
		return reject(ReasonMissingID, nil)
	case string(key) != o.ID:
		return reject(ReasonKeyMismatch, nil)
	case o.SellerID == "":
		return reject(ReasonMissingSellerID, nil)
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
	}
	return nil
}

// ValidateSeller checks a Seller against its key (the seller id). It
// returns nil or a *RejectError. Safe for concurrent use.
func ValidateSeller(key []byte, s *Seller) error {
	switch {
	case s.ID == "":
		return reject(ReasonMissingID, nil)
	case string(key) != s.ID:
		return reject(ReasonKeyMismatch, nil)
	case s.Version <= 0:
		return reject(ReasonBadVersion, nil)
	}
	return nil
}

// ValidateRating checks a Rating against its key (the seller id): average
// in 0..5, positive_pct in 0..100 (NaN is out of range), count >= 0. It
// returns nil or a *RejectError. Safe for concurrent use.
func ValidateRating(key []byte, r *Rating) error {
	switch {
	case r.SellerID == "":
		return reject(ReasonMissingSellerID, nil)
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
