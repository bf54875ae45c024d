package feeds

import (
	"time"

	"github.com/feedmill/feedmill/internal/records"
)

// The expression environment exists twice, with the same layout:
//
//   - checkEnv (offerVars, sellerVars, ratingVars) carries the real Go types.
//     Filters and custom template fields are type-checked and compiled
//     against it, so expr specialises its opcodes for strings, ints,
//     floats and times and rejects ill-typed programs at Compile.
//   - slotEnv (offerSlots, sellerSlots, ratingSlots) has the same fields
//     in the same order with every leaf declared as any. Programs run
//     against it. expr reaches struct fields through reflect by index, and
//     reflect must copy (allocate) a non-pointer leaf reached through a
//     pointer; an interface leaf is returned as is. Each leaf is boxed once
//     per View by the Evaluator and then read by every program without
//     allocating. The dynamic type in each slot is exactly the static type
//     of the checkEnv field, so a program sees the same values it would see
//     on checkEnv (TestEnvLayout pins the layout).
//
// The one deliberate difference from records.Offer is attributes: it is
// map[string]any, so a missing key reads as nil (docs/contract.md,
// Filters), not "".

type checkEnv struct {
	Offer  *offerVars  `expr:"offer"`
	Seller *sellerVars `expr:"seller"`
	Rating *ratingVars `expr:"rating"`
	Now    time.Time   `expr:"now"`
	// Budget is called by code Compile injects (limits.go); its name is
	// not an identifier, so programs cannot name it.
	Budget func(any) any `expr:"$budget"`
}

type offerVars struct {
	ID          string         `expr:"id"`
	SellerID    string         `expr:"seller_id"`
	ProductID   *string        `expr:"product_id"`
	Title       string         `expr:"title"`
	Description string         `expr:"description"`
	Category    string         `expr:"category"`
	PriceMinor  int            `expr:"price_minor"`
	Currency    string         `expr:"currency"`
	Stock       int            `expr:"stock"`
	Condition   string         `expr:"condition"`
	Status      string         `expr:"status"`
	URL         string         `expr:"url"`
	Images      []string       `expr:"images"`
	Brand       *string        `expr:"brand"`
	GTIN        *string        `expr:"gtin"`
	Attributes  map[string]any `expr:"attributes"`
	UpdatedAt   time.Time      `expr:"updated_at"`
	Version     int64          `expr:"version"`
	Price       float64        `expr:"price"`
}

type sellerVars struct {
	ID          string    `expr:"id"`
	Name        string    `expr:"name"`
	Country     string    `expr:"country"`
	Status      string    `expr:"status"`
	SuperSeller bool      `expr:"super_seller"`
	UpdatedAt   time.Time `expr:"updated_at"`
	Version     int64     `expr:"version"`
}

type ratingVars struct {
	SellerID    string    `expr:"seller_id"`
	Average     float64   `expr:"average"`
	Count       int64     `expr:"count"`
	PositivePct float64   `expr:"positive_pct"`
	UpdatedAt   time.Time `expr:"updated_at"`
	Version     int64     `expr:"version"`
}

type slotEnv struct {
	Offer  *offerSlots   `expr:"offer"`
	Seller *sellerSlots  `expr:"seller"`
	Rating *ratingSlots  `expr:"rating"`
	Now    any           `expr:"now"`
	Budget func(any) any `expr:"$budget"` // the Evaluator's budget.tick
}

type offerSlots struct {
	ID          any `expr:"id"`
	SellerID    any `expr:"seller_id"`
	ProductID   any `expr:"product_id"`
	Title       any `expr:"title"`
	Description any `expr:"description"`
	Category    any `expr:"category"`
	PriceMinor  any `expr:"price_minor"`
	Currency    any `expr:"currency"`
	Stock       any `expr:"stock"`
	Condition   any `expr:"condition"`
	Status      any `expr:"status"`
	URL         any `expr:"url"`
	Images      any `expr:"images"`
	Brand       any `expr:"brand"`
	GTIN        any `expr:"gtin"`
	Attributes  any `expr:"attributes"`
	UpdatedAt   any `expr:"updated_at"`
	Version     any `expr:"version"`
	Price       any `expr:"price"`
}

type sellerSlots struct {
	ID          any `expr:"id"`
	Name        any `expr:"name"`
	Country     any `expr:"country"`
	Status      any `expr:"status"`
	SuperSeller any `expr:"super_seller"`
	UpdatedAt   any `expr:"updated_at"`
	Version     any `expr:"version"`
}

type ratingSlots struct {
	SellerID    any `expr:"seller_id"`
	Average     any `expr:"average"`
	Count       any `expr:"count"`
	PositivePct any `expr:"positive_pct"`
	UpdatedAt   any `expr:"updated_at"`
	Version     any `expr:"version"`
}

// Offer field bits of usage.offer, in offerSlots order.
const (
	uOfferID uint32 = 1 << iota
	uOfferSellerID
	uOfferProductID
	uOfferTitle
	uOfferDescription
	uOfferCategory
	uOfferPriceMinor
	uOfferCurrency
	uOfferStock
	uOfferCondition
	uOfferStatus
	uOfferURL
	uOfferImages
	uOfferBrand
	uOfferGTIN
	uOfferAttributes
	uOfferUpdatedAt
	uOfferVersion
	uOfferPrice
)

// Seller and rating field bits, in slot order.
const (
	uSellerID uint32 = 1 << iota
	uSellerName
	uSellerCountry
	uSellerStatus
	uSellerSuperSeller
	uSellerUpdatedAt
	uSellerVersion
)

const (
	uRatingSellerID uint32 = 1 << iota
	uRatingAverage
	uRatingCount
	uRatingPositivePct
	uRatingUpdatedAt
	uRatingVersion
)

const allFields = ^uint32(0)

// usage says which leaves of the environment some program reads; only those
// are boxed per View.
type usage struct {
	offer, seller, rating uint32
	now                   bool
}

func (u *usage) add(o usage) {
	u.offer |= o.offer
	u.seller |= o.seller
	u.rating |= o.rating
	u.now = u.now || o.now
}

func (u usage) empty() bool {
	return u.offer == 0 && u.seller == 0 && u.rating == 0 && !u.now
}

// slots owns one slotEnv and the storage it points to; load refills it from
// a View. Not safe for concurrent use.
type slots struct {
	env    slotEnv
	offer  offerSlots
	seller sellerSlots
	rating ratingSlots
	attrs  map[string]any
}

func newSlots() *slots {
	s := &slots{attrs: make(map[string]any)}
	s.env.Offer = &s.offer
	return s
}

// load boxes the leaves named by u. Leaves not named keep stale values,
// which no program reads.
func (s *slots) load(u usage, v *View, now time.Time) {
	if u.now {
		s.env.Now = now
	}
	loadOffer(&s.offer, u.offer, v.Offer, s.attrs)
	if v.Seller == nil {
		s.env.Seller = nil
	} else {
		s.env.Seller = &s.seller
		loadSeller(&s.seller, u.seller, v.Seller)
	}
	if v.Rating == nil {
		s.env.Rating = nil
	} else {
		s.env.Rating = &s.rating
		loadRating(&s.rating, u.rating, v.Rating)
	}
}

func loadOffer(d *offerSlots, u uint32, o *records.Offer, attrs map[string]any) {
	if u == 0 {
		return
	}
	if u&uOfferID != 0 {
		d.ID = o.ID
	}
	if u&uOfferSellerID != 0 {
		d.SellerID = o.SellerID
	}
	if u&uOfferProductID != 0 {
		d.ProductID = optionalString(o.ProductID)
	}
	if u&uOfferTitle != 0 {
		d.Title = o.Title
	}
	if u&uOfferDescription != 0 {
		d.Description = o.Description
	}
	if u&uOfferCategory != 0 {
		d.Category = o.Category
	}
	if u&uOfferPriceMinor != 0 {
		d.PriceMinor = o.PriceMinor
	}
	if u&uOfferCurrency != 0 {
		d.Currency = o.Currency
	}
	if u&uOfferStock != 0 {
		d.Stock = o.Stock
	}
	if u&uOfferCondition != 0 {
		d.Condition = o.Condition
	}
	if u&uOfferStatus != 0 {
		d.Status = o.Status
	}
	if u&uOfferURL != 0 {
		d.URL = o.URL
	}
	if u&uOfferImages != 0 {
		d.Images = o.Images
	}
	if u&uOfferBrand != 0 {
		d.Brand = optionalString(o.Brand)
	}
	if u&uOfferGTIN != 0 {
		d.GTIN = optionalString(o.GTIN)
	}
	if u&uOfferAttributes != 0 {
		clear(attrs)
		for k, v := range o.Attributes {
			attrs[k] = v
		}
		d.Attributes = attrs
	}
	if u&uOfferUpdatedAt != 0 {
		d.UpdatedAt = o.UpdatedAt
	}
	if u&uOfferVersion != 0 {
		d.Version = o.Version
	}
	if u&uOfferPrice != 0 {
		d.Price = o.Price
	}
}

// optional is what expr's dereference makes of a *string: the string, or
// nil. Programs dereference pointer fields before using them, so storing
// the result saves a copy (an allocation) per run.
func optionalString(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

func loadSeller(d *sellerSlots, u uint32, s *records.Seller) {
	if u&uSellerID != 0 {
		d.ID = s.ID
	}
	if u&uSellerName != 0 {
		d.Name = s.Name
	}
	if u&uSellerCountry != 0 {
		d.Country = s.Country
	}
	if u&uSellerStatus != 0 {
		d.Status = s.Status
	}
	if u&uSellerSuperSeller != 0 {
		d.SuperSeller = s.SuperSeller
	}
	if u&uSellerUpdatedAt != 0 {
		d.UpdatedAt = s.UpdatedAt
	}
	if u&uSellerVersion != 0 {
		d.Version = s.Version
	}
}

func loadRating(d *ratingSlots, u uint32, r *records.Rating) {
	if u&uRatingSellerID != 0 {
		d.SellerID = r.SellerID
	}
	if u&uRatingAverage != 0 {
		d.Average = r.Average
	}
	if u&uRatingCount != 0 {
		d.Count = r.Count
	}
	if u&uRatingPositivePct != 0 {
		d.PositivePct = r.PositivePct
	}
	if u&uRatingUpdatedAt != 0 {
		d.UpdatedAt = r.UpdatedAt
	}
	if u&uRatingVersion != 0 {
		d.Version = r.Version
	}
}
