package records

// Upper bounds of Avro binary encodings, computed without encoding: the
// processor uses them to keep every event within processor.max_event_bytes
// before it is built. Each bound is at least the real encoded size (a
// varint takes at most 10 bytes; strings, arrays and maps add a length or
// block framing of at most 10 bytes each, plus 10 for the end of a block).
const (
	varintMax  = 10
	blockFrame = 2 * varintMax
)

func strMax(s string) int { return len(s) + varintMax }

func optStrMax(s *string) int {
	if s == nil {
		return 1
	}
	return 1 + strMax(*s)
}

// OfferSizeMax bounds the Avro encoding of o (as written inside a
// FeedEvent's OfferView).
func OfferSizeMax(o *Offer) int {
	n := strMax(o.ID) + strMax(o.SellerID) + optStrMax(o.ProductID) + strMax(o.Title) +
		strMax(o.Description) + strMax(o.Category) + strMax(o.Currency) + strMax(o.URL) +
		optStrMax(o.Brand) + optStrMax(o.GTIN) +
		6*varintMax // price_minor, stock, condition, status, updated_at, version
	n += blockFrame
	for _, img := range o.Images {
		n += strMax(img)
	}
	n += blockFrame
	for k, v := range o.Attributes {
		n += strMax(k) + strMax(v)
	}
	return n
}

// SellerSizeMax bounds the Avro encoding of s.
func SellerSizeMax(s *Seller) int {
	return strMax(s.ID) + strMax(s.Name) + strMax(s.Country) + 4*varintMax
}

// RatingSizeMax bounds the Avro encoding of r (fixed but for the id).
func RatingSizeMax(r *Rating) int { return strMax(r.SellerID) + 2*8 + 3*varintMax }
