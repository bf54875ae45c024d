package feeds

import (
	"strconv"
	"strings"

	"github.com/feedmill/feedmill/internal/records"
)

const (
	builtinGoogle = "google-merchant"
	builtinMeta   = "meta-catalog"
	builtinCeneo  = "ceneo"
)

// newBuiltin returns a fresh built-in template, or nil for an unknown name.
// The formats are data: each is a node tree over the shared adapters below.
func newBuiltin(name string) *Template {
	t := &Template{ID: name, Builtin: true}
	switch name {
	case builtinGoogle:
		// https://support.google.com/merchants/answer/7052112
		t.shell = shellRSS
		t.item = node{name: "item", children: []node{
			{name: "g:id", value: offerID, maxRunes: 50},
			{name: "title", value: title, maxRunes: 150},
			{name: "description", value: description, maxRunes: 5000},
			{name: "link", value: link},
			{name: "g:image_link", value: mainImage},
			{name: "g:additional_image_link", value: additionalImage, each: additionalImages(10)},
			{name: "g:availability", value: availability("in_stock", "out_of_stock")},
			{name: "g:price", value: priceWithCurrency},
			{name: "g:condition", value: condition},
			{name: "g:brand", value: brand},
			{name: "g:gtin", value: gtin},
			{name: "g:identifier_exists", value: noIdentifiers},
			{name: "g:product_type", value: productType, maxRunes: 750},
		}}
	case builtinMeta:
		// https://www.facebook.com/business/help/120325381656392
		t.shell = shellRSS
		t.item = node{name: "item", children: []node{
			{name: "g:id", value: offerID, maxRunes: 100},
			{name: "g:title", value: title, maxRunes: 200},
			{name: "g:description", value: description, maxRunes: 9999},
			{name: "g:availability", value: availability("in stock", "out of stock")},
			{name: "g:condition", value: condition},
			{name: "g:price", value: priceWithCurrency},
			{name: "g:link", value: link},
			{name: "g:image_link", value: mainImage},
			{name: "g:additional_image_link", value: additionalImage, each: additionalImages(10)},
			{name: "g:brand", value: brandOrSellerName, maxRunes: 100},
		}}
	case builtinCeneo:
		t.shell = shellCeneo
		t.item = node{name: "o",
			attrs: []attr{
				{name: "id", value: offerID},
				{name: "url", value: link},
				{name: "price", value: priceAmount},
				{name: "avail", value: availability("1", "99")},
				{name: "stock", value: stock},
			},
			children: []node{
				{name: "cat", value: category, cdata: true},
				{name: "name", value: title, cdata: true},
				{name: "imgs", omitEmpty: true, children: []node{
					{name: "main", attrs: []attr{{name: "url", value: mainImage}}, value: nil},
					{name: "i", attrs: []attr{{name: "url", value: additionalImage}}, each: additionalImages(0)},
				}},
				{name: "desc", value: description, cdata: true},
				{name: "attrs", omitEmpty: true, children: []node{
					{name: "a", attrs: []attr{{name: "name", value: text("Producent")}}, value: brand, cdata: true},
					{name: "a", attrs: []attr{{name: "name", value: text("EAN")}}, value: gtin, cdata: true},
					{name: "a", attrs: []attr{{name: "name", value: attributeName}}, value: attributeValue, cdata: true, each: sortedAttributeKeys},
				}},
			},
		}
		// <main url=""/> only when there is a main image.
		t.item.children[2].children[0].each = countImages(1)
	default:
		return nil
	}
	return t
}

// The adapters: each maps the View to one raw value.

func offerID(r *renderer, _ int, dst []byte) ([]byte, bool) {
	return append(dst, r.v.Offer.ID...), true
}

func title(r *renderer, _ int, dst []byte) ([]byte, bool) {
	return append(dst, r.v.Offer.Title...), true
}

func description(r *renderer, _ int, dst []byte) ([]byte, bool) {
	return append(dst, r.v.Offer.Description...), true
}

func link(r *renderer, _ int, dst []byte) ([]byte, bool) {
	return append(dst, r.v.Offer.URL...), true
}

func category(r *renderer, _ int, dst []byte) ([]byte, bool) {
	return append(dst, r.v.Offer.Category...), true
}

func stock(r *renderer, _ int, dst []byte) ([]byte, bool) {
	return strconv.AppendInt(dst, int64(r.v.Offer.Stock), 10), true
}

func text(s string) value {
	return func(_ *renderer, _ int, dst []byte) ([]byte, bool) {
		return append(dst, s...), true
	}
}

func mainImage(r *renderer, _ int, dst []byte) ([]byte, bool) {
	if len(r.v.Offer.Images) == 0 || r.v.Offer.Images[0] == "" {
		return dst, false
	}
	return append(dst, r.v.Offer.Images[0]...), true
}

// additionalImage is Images[1+i]; empty URLs are omitted.
func additionalImage(r *renderer, i int, dst []byte) ([]byte, bool) {
	u := r.v.Offer.Images[1+i]
	if u == "" {
		return dst, false
	}
	return append(dst, u...), true
}

// additionalImages lists the images after the first, at most limit of them
// (0: all).
func additionalImages(limit int) list {
	return func(r *renderer) int {
		n := max(len(r.v.Offer.Images)-1, 0)
		if limit > 0 {
			n = min(n, limit)
		}
		return n
	}
}

// countImages is min(len(Images), n).
func countImages(n int) list {
	return func(r *renderer) int {
		if len(r.v.Offer.Images) == 0 || r.v.Offer.Images[0] == "" {
			return 0
		}
		return min(len(r.v.Offer.Images), n)
	}
}

// inStock is the availability rule shared by every format.
func inStock(o *records.Offer) bool {
	return o.Status == "ACTIVE" && o.Stock > 0
}

func availability(yes, no string) value {
	return func(r *renderer, _ int, dst []byte) ([]byte, bool) {
		if inStock(r.v.Offer) {
			return append(dst, yes...), true
		}
		return append(dst, no...), true
	}
}

// appendAmount writes PriceMinor in major units with exactly the currency's
// minor-unit digits: 12999 PLN → 129.99, 12999 JPY → 12999.
func appendAmount(dst []byte, o *records.Offer) []byte {
	minor := o.PriceMinor
	if minor < 0 {
		dst = append(dst, '-')
		minor = -minor
	}
	digits := records.MinorUnits(o.Currency)
	if digits <= 0 {
		return strconv.AppendInt(dst, int64(minor), 10)
	}
	scale := 1
	for range digits {
		scale *= 10
	}
	dst = strconv.AppendInt(dst, int64(minor/scale), 10)
	dst = append(dst, '.')
	frac := minor % scale
	for s := scale / 10; s > 1 && frac < s; s /= 10 {
		dst = append(dst, '0')
	}
	return strconv.AppendInt(dst, int64(frac), 10)
}

func priceAmount(r *renderer, _ int, dst []byte) ([]byte, bool) {
	return appendAmount(dst, r.v.Offer), true
}

func priceWithCurrency(r *renderer, _ int, dst []byte) ([]byte, bool) {
	dst = appendAmount(dst, r.v.Offer)
	dst = append(dst, ' ')
	return append(dst, r.v.Offer.Currency...), true
}

// condition lowercases the enum symbol: NEW → new.
func condition(r *renderer, _ int, dst []byte) ([]byte, bool) {
	c := r.v.Offer.Condition
	if c == "" {
		return dst, false
	}
	for i := 0; i < len(c); i++ {
		ch := c[i]
		if ch >= 'A' && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		dst = append(dst, ch)
	}
	return dst, true
}

func optional(dst []byte, s *string) ([]byte, bool) {
	if s == nil || *s == "" {
		return dst, false
	}
	return append(dst, *s...), true
}

func brand(r *renderer, _ int, dst []byte) ([]byte, bool) {
	return optional(dst, r.v.Offer.Brand)
}

func gtin(r *renderer, _ int, dst []byte) ([]byte, bool) {
	return optional(dst, r.v.Offer.GTIN)
}

// brandOrSellerName is the brand, or the seller's name when the offer has
// none (Meta requires a brand).
func brandOrSellerName(r *renderer, i int, dst []byte) ([]byte, bool) {
	if out, ok := optional(dst, r.v.Offer.Brand); ok {
		return out, true
	}
	if r.v.Seller == nil || r.v.Seller.Name == "" {
		return dst, false
	}
	return append(dst, r.v.Seller.Name...), true
}

// noIdentifiers is "no" when the offer has neither brand nor GTIN.
func noIdentifiers(r *renderer, _ int, dst []byte) ([]byte, bool) {
	o := r.v.Offer
	if (o.Brand == nil || *o.Brand == "") && (o.GTIN == nil || *o.GTIN == "") {
		return append(dst, "no"...), true
	}
	return dst, false
}

// productType turns the category path into Google's form:
// Electronics/Phones/Smartphones → Electronics > Phones > Smartphones.
func productType(r *renderer, _ int, dst []byte) ([]byte, bool) {
	start := len(dst)
	rest := r.v.Offer.Category
	for rest != "" {
		var seg string
		seg, rest, _ = strings.Cut(rest, "/")
		seg = strings.TrimSpace(seg)
		if seg == "" {
			continue
		}
		if len(dst) > start {
			dst = append(dst, " > "...)
		}
		dst = append(dst, seg...)
	}
	return dst, len(dst) > start
}

func attributeName(r *renderer, i int, dst []byte) ([]byte, bool) {
	return append(dst, r.keys[i]...), true
}

func attributeValue(r *renderer, i int, dst []byte) ([]byte, bool) {
	return append(dst, r.v.Offer.Attributes[r.keys[i]]...), true
}
