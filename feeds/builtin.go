package feeds

import (
	"strconv"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds/offerrules"
)

// newBuiltin returns a fresh built-in template, or nil for an unknown name.
// The names are config's (config.BuiltinTemplates, the one list); the
// formats are data: each is a node tree over the shared adapters below,
// which take their business rules (in stock, price, product type) from
// offerrules, as the partner connectors do.
func newBuiltin(name string) *Template {
	t := &Template{ID: name, Builtin: true}
	switch name {
	case config.TemplateGoogleMerchant:
		// https://support.google.com/merchants/answer/7052112
		t.shell = shellRSS
		t.item = node{name: "item", children: []node{
			{name: "g:id", str: offerID, maxRunes: 50},
			{name: "title", str: title, maxRunes: 150},
			{name: "description", str: description, maxRunes: 5000},
			{name: "link", str: link},
			{name: "g:image_link", str: mainImage},
			{name: "g:additional_image_link", str: additionalImage, each: additionalImages(10)},
			{name: "g:availability", str: availability("in_stock", "out_of_stock")},
			{name: "g:price", value: priceWithCurrency},
			{name: "g:condition", value: condition},
			{name: "g:brand", str: brand},
			{name: "g:gtin", str: gtin},
			{name: "g:identifier_exists", str: noIdentifiers},
			{name: "g:product_type", value: productType, maxRunes: 750},
		}}
	case config.TemplateMetaCatalog:
		// https://www.facebook.com/business/help/120325381656392
		t.shell = shellRSS
		t.item = node{name: "item", children: []node{
			{name: "g:id", str: offerID, maxRunes: 100},
			{name: "g:title", str: title, maxRunes: 200},
			{name: "g:description", str: description, maxRunes: 9999},
			{name: "g:availability", str: availability("in stock", "out of stock")},
			{name: "g:condition", value: condition},
			{name: "g:price", value: priceWithCurrency},
			{name: "g:link", str: link},
			{name: "g:image_link", str: mainImage},
			{name: "g:additional_image_link", str: additionalImage, each: additionalImages(10)},
			{name: "g:brand", str: brandOrSellerName, maxRunes: 100},
		}}
	case config.TemplateCeneo:
		t.shell = shellCeneo
		t.item = node{name: "o",
			attrs: []attr{
				{name: "id", str: offerID},
				{name: "url", str: link},
				{name: "price", value: priceAmount},
				{name: "avail", str: availability("1", "99")},
				{name: "stock", value: stock},
			},
			children: []node{
				{name: "cat", str: category, cdata: true},
				{name: "name", str: title, cdata: true},
				{name: "imgs", omitEmpty: true, children: []node{
					{name: "main", attrs: []attr{{name: "url", str: mainImage}}, value: nil},
					{name: "i", attrs: []attr{{name: "url", str: additionalImage}}, each: additionalImages(0)},
				}},
				{name: "desc", str: description, cdata: true},
				{name: "attrs", omitEmpty: true, children: []node{
					{name: "a", attrs: []attr{{name: "name", str: text("Producent")}}, str: brand, cdata: true},
					{name: "a", attrs: []attr{{name: "name", str: text("EAN")}}, str: gtin, cdata: true},
					{name: "a", attrs: []attr{{name: "name", str: attributeName}}, str: attributeValue, cdata: true, each: sortedAttributeKeys},
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

// The adapters: each maps the View to one raw value; the str ones return
// a string of the View (or a constant) without copying it.

func offerID(r *renderer, _ int) (string, bool) { return r.v.Offer.ID, true }

func title(r *renderer, _ int) (string, bool) { return r.v.Offer.Title, true }

func description(r *renderer, _ int) (string, bool) { return r.v.Offer.Description, true }

func link(r *renderer, _ int) (string, bool) { return r.v.Offer.URL, true }

func category(r *renderer, _ int) (string, bool) { return r.v.Offer.Category, true }

func stock(r *renderer, _ int, dst []byte) ([]byte, bool) {
	return strconv.AppendInt(dst, int64(r.v.Offer.Stock), 10), true
}

func text(s string) strValue {
	return func(_ *renderer, _ int) (string, bool) { return s, true }
}

func mainImage(r *renderer, _ int) (string, bool) {
	if len(r.v.Offer.Images) == 0 || r.v.Offer.Images[0] == "" {
		return "", false
	}
	return r.v.Offer.Images[0], true
}

// additionalImage is Images[1+i]; empty URLs are omitted.
func additionalImage(r *renderer, i int) (string, bool) {
	u := r.v.Offer.Images[1+i]
	return u, u != ""
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

// availability writes the format's words for offerrules.InStock.
func availability(yes, no string) strValue {
	return func(r *renderer, _ int) (string, bool) {
		if offerrules.InStock(r.v.Offer) {
			return yes, true
		}
		return no, true
	}
}

// priceAmount is the price in major units (offerrules.AppendAmount).
func priceAmount(r *renderer, _ int, dst []byte) ([]byte, bool) {
	return offerrules.AppendAmount(dst, r.v.Offer.PriceMinor, r.v.Offer.Currency), true
}

// priceWithCurrency is "129.99 PLN" (offerrules.AppendPrice).
func priceWithCurrency(r *renderer, _ int, dst []byte) ([]byte, bool) {
	return offerrules.AppendPrice(dst, r.v.Offer.PriceMinor, r.v.Offer.Currency), true
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

func optional(s *string) (string, bool) {
	if s == nil || *s == "" {
		return "", false
	}
	return *s, true
}

func brand(r *renderer, _ int) (string, bool) { return optional(r.v.Offer.Brand) }

func gtin(r *renderer, _ int) (string, bool) { return optional(r.v.Offer.GTIN) }

// brandOrSellerName is the brand, or the seller's name when the offer has
// none (Meta requires a brand).
func brandOrSellerName(r *renderer, _ int) (string, bool) {
	if s, ok := optional(r.v.Offer.Brand); ok {
		return s, true
	}
	if r.v.Seller == nil || r.v.Seller.Name == "" {
		return "", false
	}
	return r.v.Seller.Name, true
}

// noIdentifiers is "no" when the offer has neither brand nor GTIN.
func noIdentifiers(r *renderer, _ int) (string, bool) {
	o := r.v.Offer
	if (o.Brand == nil || *o.Brand == "") && (o.GTIN == nil || *o.GTIN == "") {
		return "no", true
	}
	return "", false
}

// productType is the category path in Google's form
// (offerrules.AppendProductType): Electronics/Phones/Smartphones →
// Electronics > Phones > Smartphones; omitted when the path is blank.
func productType(r *renderer, _ int, dst []byte) ([]byte, bool) {
	return offerrules.AppendProductType(dst, r.v.Offer.Category)
}

func attributeName(r *renderer, i int) (string, bool) { return r.keys[i], true }

func attributeValue(r *renderer, i int) (string, bool) {
	return r.v.Offer.Attributes[r.keys[i]], true
}
