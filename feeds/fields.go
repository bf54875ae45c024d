package feeds

import (
	"errors"
	"slices"
)

// FieldMask is a set of the joined view's fields: one bit per leaf of
// offer (bits 0-18), seller (19-25) and rating (26-31), in the order of
// the records' fields, plus FieldNow (the evaluation time). Names are the
// dotted expr names of changed_fields (docs/contract.md, FeedEvent)
// (`offer.price_minor`, `seller.status`, `rating.average`, `now`).
//
// The bits, their names and DiffFields are generated (model_gen.go) from
// the data model: a field's bit is its position in modelgen's append-only
// `order` list. FieldMask is stored (pending seller jobs keep the fields a
// change touched, state.Job.Changed), so an existing bit never moves: a
// new field takes the next free bit. TestFieldLayout pins the layout.
//
// A seller or rating that appears or disappears changes all of its bits
// (DiffFields does that): `seller == nil` reads seller.id. offer.price is
// derived from price_minor and currency and has its own bit.
type FieldMask uint64

// errUnknownJoined is returned by the Joined methods for a value that is no
// joined table.
var errUnknownJoined = errors.New("unknown joined table")

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

// builtinRenders is what the built-in templates read: every offer field
// except seller_id, product_id, updated_at and version, and the seller's
// name (meta-catalog's brand fallback). TestBuiltinRenderMask pins it.
const builtinRenders = FieldOfferID | FieldOfferTitle | FieldOfferDescription | FieldOfferCategory |
	FieldOfferPriceMinor | FieldOfferCurrency | FieldOfferStock | FieldOfferCondition |
	FieldOfferStatus | FieldOfferURL | FieldOfferImages | FieldOfferBrand | FieldOfferGTIN |
	FieldOfferAttributes | FieldOfferPrice | FieldSellerName

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
