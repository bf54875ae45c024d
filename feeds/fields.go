package feeds

import (
	"maps"
	"slices"

	"github.com/feedmill/feedmill/internal/records"
)

// FieldMask is a set of the joined view's fields: one bit per leaf of
// offer (bits 0-18), seller (19-25) and rating (26-31), in the order of
// the records' fields, plus FieldNow (the evaluation time). Names are the
// dotted expr names of changed_fields (docs/contract.md, FeedEvent) (`offer.price_minor`,
// `seller.status`, `rating.average`, `now`).
//
// A seller or rating that appears or disappears changes all of its bits
// (DiffFields does that): `seller == nil` reads seller.id. offer.price is
// derived from price_minor and currency and has its own bit.
type FieldMask uint64

// Offer fields.
const (
	FieldOfferID FieldMask = 1 << iota
	FieldOfferSellerID
	FieldOfferProductID
	FieldOfferTitle
	FieldOfferDescription
	FieldOfferCategory
	FieldOfferPriceMinor
	FieldOfferCurrency
	FieldOfferStock
	FieldOfferCondition
	FieldOfferStatus
	FieldOfferURL
	FieldOfferImages
	FieldOfferBrand
	FieldOfferGTIN
	FieldOfferAttributes
	FieldOfferUpdatedAt
	FieldOfferVersion
	FieldOfferPrice

	FieldSellerID
	FieldSellerName
	FieldSellerCountry
	FieldSellerStatus
	FieldSellerSuperSeller
	FieldSellerUpdatedAt
	FieldSellerVersion

	FieldRatingSellerID
	FieldRatingAverage
	FieldRatingCount
	FieldRatingPositivePct
	FieldRatingUpdatedAt
	FieldRatingVersion

	// FieldNow is the evaluation time. A filter that reads now is time
	// dependent: it is affected by every change.
	FieldNow
)

const (
	offerShift  = 0
	sellerShift = 19
	ratingShift = 26
	nowShift    = 32
	numFields   = 33

	// FieldsOffer, FieldsSeller and FieldsRating are all leaves of one
	// record; FieldsAll is every field.
	FieldsOffer  FieldMask = (1<<sellerShift - 1) << offerShift
	FieldsSeller FieldMask = (1<<(ratingShift-sellerShift) - 1) << sellerShift
	FieldsRating FieldMask = (1<<(nowShift-ratingShift) - 1) << ratingShift
	FieldsAll    FieldMask = 1<<numFields - 1
)

// fieldNames lists the dotted names in bit order.
func fieldName(bit int) string {
	names := [numFields]string{
		"offer.id", "offer.seller_id", "offer.product_id", "offer.title", "offer.description",
		"offer.category", "offer.price_minor", "offer.currency", "offer.stock", "offer.condition",
		"offer.status", "offer.url", "offer.images", "offer.brand", "offer.gtin",
		"offer.attributes", "offer.updated_at", "offer.version", "offer.price",
		"seller.id", "seller.name", "seller.country", "seller.status", "seller.super_seller",
		"seller.updated_at", "seller.version",
		"rating.seller_id", "rating.average", "rating.count", "rating.positive_pct",
		"rating.updated_at", "rating.version",
		"now",
	}
	return names[bit]
}

// AppendNames appends the dotted name of every field in m, in bit order.
func (m FieldMask) AppendNames(dst []string) []string {
	for i := range numFields {
		if m&(1<<i) != 0 {
			dst = append(dst, fieldName(i))
		}
	}
	return dst
}

// FieldByName returns the bit of a dotted field name.
func FieldByName(name string) (FieldMask, bool) {
	for i := range numFields {
		if fieldName(i) == name {
			return 1 << i, true
		}
	}
	return 0, false
}

// mask converts a usage to a FieldMask.
func (u usage) mask() FieldMask {
	m := FieldMask(u.offer)<<offerShift&FieldsOffer |
		FieldMask(u.seller)<<sellerShift&FieldsSeller |
		FieldMask(u.rating)<<ratingShift&FieldsRating
	if u.now {
		m |= FieldNow
	}
	return m
}

// builtinRenders is what the built-in templates read: every offer field
// except seller_id, product_id, updated_at and version, and the seller's
// name (meta-catalog's brand fallback). TestBuiltinRenderMask pins it.
const builtinRenders = FieldOfferID | FieldOfferTitle | FieldOfferDescription | FieldOfferCategory |
	FieldOfferPriceMinor | FieldOfferCurrency | FieldOfferStock | FieldOfferCondition |
	FieldOfferStatus | FieldOfferURL | FieldOfferImages | FieldOfferBrand | FieldOfferGTIN |
	FieldOfferAttributes | FieldOfferPrice | FieldSellerName

// DiffFields returns the fields whose values differ between old and new
// (both may be nil: a missing view has no offer, seller or rating). A
// record that appears or disappears changes all its fields. FieldNow is
// never set. It allocates nothing.
func DiffFields(old, new *View) FieldMask {
	var oo, no *records.Offer
	var os, ns *records.Seller
	var or, nr *records.Rating
	if old != nil {
		oo, os, or = old.Offer, old.Seller, old.Rating
	}
	if new != nil {
		no, ns, nr = new.Offer, new.Seller, new.Rating
	}
	return diffOffer(oo, no) | diffSeller(os, ns) | diffRating(or, nr)
}

func diffOffer(a, b *records.Offer) FieldMask {
	if a == nil || b == nil {
		if a == b {
			return 0
		}
		return FieldsOffer
	}
	var m FieldMask
	set := func(differs bool, f FieldMask) {
		if differs {
			m |= f
		}
	}
	set(a.ID != b.ID, FieldOfferID)
	set(a.SellerID != b.SellerID, FieldOfferSellerID)
	set(!equalOptional(a.ProductID, b.ProductID), FieldOfferProductID)
	set(a.Title != b.Title, FieldOfferTitle)
	set(a.Description != b.Description, FieldOfferDescription)
	set(a.Category != b.Category, FieldOfferCategory)
	set(a.PriceMinor != b.PriceMinor, FieldOfferPriceMinor)
	set(a.Currency != b.Currency, FieldOfferCurrency)
	set(a.Stock != b.Stock, FieldOfferStock)
	set(a.Condition != b.Condition, FieldOfferCondition)
	set(a.Status != b.Status, FieldOfferStatus)
	set(a.URL != b.URL, FieldOfferURL)
	set(!slices.Equal(a.Images, b.Images), FieldOfferImages)
	set(!equalOptional(a.Brand, b.Brand), FieldOfferBrand)
	set(!equalOptional(a.GTIN, b.GTIN), FieldOfferGTIN)
	set(!maps.Equal(a.Attributes, b.Attributes), FieldOfferAttributes)
	set(!a.UpdatedAt.Equal(b.UpdatedAt), FieldOfferUpdatedAt)
	set(a.Version != b.Version, FieldOfferVersion)
	set(a.Price != b.Price, FieldOfferPrice)
	return m
}

func diffSeller(a, b *records.Seller) FieldMask {
	if a == nil || b == nil {
		if a == b {
			return 0
		}
		return FieldsSeller
	}
	var m FieldMask
	set := func(differs bool, f FieldMask) {
		if differs {
			m |= f
		}
	}
	set(a.ID != b.ID, FieldSellerID)
	set(a.Name != b.Name, FieldSellerName)
	set(a.Country != b.Country, FieldSellerCountry)
	set(a.Status != b.Status, FieldSellerStatus)
	set(a.SuperSeller != b.SuperSeller, FieldSellerSuperSeller)
	set(!a.UpdatedAt.Equal(b.UpdatedAt), FieldSellerUpdatedAt)
	set(a.Version != b.Version, FieldSellerVersion)
	return m
}

func diffRating(a, b *records.Rating) FieldMask {
	if a == nil || b == nil {
		if a == b {
			return 0
		}
		return FieldsRating
	}
	var m FieldMask
	set := func(differs bool, f FieldMask) {
		if differs {
			m |= f
		}
	}
	set(a.SellerID != b.SellerID, FieldRatingSellerID)
	set(a.Average != b.Average, FieldRatingAverage)
	set(a.Count != b.Count, FieldRatingCount)
	set(a.PositivePct != b.PositivePct, FieldRatingPositivePct)
	set(!a.UpdatedAt.Equal(b.UpdatedAt), FieldRatingUpdatedAt)
	set(a.Version != b.Version, FieldRatingVersion)
	return m
}

func equalOptional(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// FilterFields returns the fields feed f's filter reads (FieldNow when it
// reads now).
func (f *Feed) FilterFields() FieldMask { return f.filterFields }

// RenderFields returns the fields t's items render.
func (t *Template) RenderFields() FieldMask {
	if t.Builtin {
		return builtinRenders
	}
	return t.use.mask()
}

// Affected sets dst[i] (dst is grown to len(Feeds())) to whether a change
// of the fields in changed can alter feed i's membership or rendered item:
// its filter or its template reads one of them, or its filter reads now.
// Unaffected feeds keep their previous membership and fingerprint. Safe
// for concurrent use; allocates only to grow dst.
func (s *Set) Affected(changed FieldMask, dst []bool) []bool {
	dst = slices.Grow(dst[:0], len(s.feeds))[:len(s.feeds)]
	for i, f := range s.feeds {
		dst[i] = (f.filterFields|f.Template.RenderFields())&(changed|FieldNow) != 0
	}
	return dst
}
