package synth

import (
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"

	"github.com/feedmill/feedmill/config"
)

// Built-in template names (config's, the one list) and the destinations
// feeds use.
const (
	TemplateGoogle = config.TemplateGoogleMerchant
	TemplateMeta   = config.TemplateMetaCatalog
	TemplateCeneo  = config.TemplateCeneo

	DestinationGMC     = "gmc-main"
	DestinationMeta    = "meta-main"
	DestinationCeneo   = "ceneo"
	DestinationWebhook = "webhook-demo"
)

// baseFilter is the availability condition most real feeds start with.
const baseFilter = `offer.status == "ACTIVE" && offer.stock > 0`

// FeedSet returns n realistic feed definitions, deterministic from seed:
// category prefixes, price bands, brands, seller and rating conditions and
// some complex filters (attributes, recency, `in` lists, `||`), over the
// same vocabulary as the Generator. Ids are feed-0001...; templates rotate
// over the three built-ins; each feed has one or two destinations and about
// one in five publishes a file.
func FeedSet(n int, seed int64) []config.Feed {
	b := newFeedBuilder(seed)
	out := make([]config.Feed, 0, n)
	templates := []string{TemplateGoogle, TemplateMeta, TemplateCeneo}
	primary := map[string]string{TemplateGoogle: DestinationGMC, TemplateMeta: DestinationMeta, TemplateCeneo: DestinationCeneo}
	for i := range n {
		tmpl := templates[i%len(templates)]
		dests := []string{primary[tmpl]}
		if b.rng.IntN(4) == 0 {
			dests = append(dests, DestinationWebhook)
		}
		out = append(out, config.Feed{
			ID:           feedID(i + 1),
			Filter:       b.filter(),
			Template:     tmpl,
			Destinations: dests,
			File:         b.rng.IntN(5) == 0,
		})
	}
	return out
}

func feedID(n int) string {
	s := strconv.Itoa(n)
	if len(s) < 4 {
		s = strings.Repeat("0", 4-len(s)) + s
	}
	return "feed-" + s
}

// feedBuilder draws filters from the generator's vocabulary.
type feedBuilder struct {
	rng      *rand.Rand
	prefixes [4][]string // distinct category prefixes by depth (1..3)
	cats     []category
	tops     map[string]topDef
}

func newFeedBuilder(seed int64) *feedBuilder {
	cats := parseCategories()
	b := &feedBuilder{
		rng:  rand.New(rand.NewPCG(uint64(seed), 0x5eed)),
		cats: cats,
		tops: topTable(),
	}
	for depth := 1; depth <= 3; depth++ {
		seen := map[string]bool{}
		for _, c := range cats {
			segs := strings.Split(c.path, "/")
			if len(segs) < depth {
				continue
			}
			p := strings.Join(segs[:depth], "/")
			if !seen[p] {
				seen[p] = true
				b.prefixes[depth] = append(b.prefixes[depth], p)
			}
		}
	}
	return b
}

func (b *feedBuilder) pick(xs []string) string { return xs[b.rng.IntN(len(xs))] }

// category returns a startsWith condition and the top-level category.
func (b *feedBuilder) category() (string, string) {
	depth := 2
	switch r := b.rng.IntN(10); {
	case r < 2:
		depth = 1
	case r < 6:
		depth = 3
	}
	p := b.pick(b.prefixes[depth])
	top, _, _ := strings.Cut(p, "/")
	return `offer.category startsWith ` + strconv.Quote(p), top
}

func (b *feedBuilder) priceBand(top string) string {
	// Bands around the typical prices of the top category.
	var medians []float64
	for _, c := range b.cats {
		if c.top == top {
			medians = append(medians, c.median)
		}
	}
	sort.Float64s(medians)
	m := medians[b.rng.IntN(len(medians))]
	lo := roundPrice(m * (0.3 + b.rng.Float64()*0.5))
	hi := roundPrice(m * (1.2 + b.rng.Float64()*2))
	switch b.rng.IntN(4) {
	case 0:
		return `offer.price < ` + lo
	case 1:
		return `offer.price >= ` + lo
	case 2:
		return `offer.currency == "PLN" && offer.price >= ` + lo + ` && offer.price < ` + hi
	}
	return `offer.price >= ` + lo + ` && offer.price < ` + hi
}

func roundPrice(p float64) string {
	switch {
	case p >= 1000:
		return strconv.Itoa(int(p/100) * 100)
	case p >= 100:
		return strconv.Itoa(int(p/10) * 10)
	}
	return strconv.Itoa(max(1, int(p)))
}

func (b *feedBuilder) brand(top string) string {
	brands := b.tops[top].brands
	if b.rng.IntN(3) == 0 && len(brands) > 2 {
		i := b.rng.Perm(len(brands))
		list := make([]string, 0, 3)
		for _, j := range i[:2+b.rng.IntN(2)] {
			list = append(list, strconv.Quote(brands[j]))
		}
		return `(offer.brand ?? "") in [` + strings.Join(list, ", ") + `]`
	}
	return `offer.brand == ` + strconv.Quote(brands[skewed(b.rng, len(brands))])
}

func (b *feedBuilder) sellerRating() string {
	conds := []string{
		`seller?.status == "ACTIVE"`,
		`seller?.status == "ACTIVE" && (rating?.average ?? 0) >= 4.0`,
		`(rating?.average ?? 0) >= 4.5`,
		`seller?.super_seller == true`,
		`seller?.country == "PL"`,
		`(rating?.positive_pct ?? 0) >= 95`,
		`(rating?.count ?? 0) >= 100 && (rating?.average ?? 0) >= 4.2`,
		`seller != nil && seller.status != "SUSPENDED"`,
	}
	return b.pick(conds)
}

func (b *feedBuilder) complex(top string) string {
	attrs := b.tops[top].attrs
	a := attrs[b.rng.IntN(len(attrs))]
	switch b.rng.IntN(8) {
	case 0:
		return `offer.attributes[` + strconv.Quote(a.key) + `] == ` + strconv.Quote(b.pick(a.values))
	case 1:
		v1, v2 := b.pick(a.values), b.pick(a.values)
		return `(offer.attributes[` + strconv.Quote(a.key) + `] ?? "") in [` + strconv.Quote(v1) + `, ` + strconv.Quote(v2) + `]`
	case 2:
		return `now - offer.updated_at < duration("` + b.pick([]string{"168h", "720h", "1440h"}) + `")`
	case 3:
		return `offer.condition in ["USED", "REFURBISHED"]`
	case 4:
		c1, _ := b.category()
		c2, _ := b.category()
		return `(` + c1 + ` || ` + c2 + `)`
	case 5:
		return `offer.gtin != nil && offer.brand != nil`
	case 6:
		return `len(offer.images) >= 3 && offer.condition == "NEW"`
	}
	return `offer.currency in ["EUR", "CZK", "HUF"]`
}

// filter builds one filter of 1..4 conditions joined by &&.
func (b *feedBuilder) filter() string {
	catCond, top := b.category()
	parts := make([]string, 0, 5)
	if b.rng.IntN(10) < 9 {
		parts = append(parts, baseFilter)
	}
	switch r := b.rng.IntN(100); {
	case r < 30: // category only
		parts = append(parts, catCond)
	case r < 50:
		parts = append(parts, catCond, b.priceBand(top))
	case r < 65:
		parts = append(parts, catCond, b.brand(top))
	case r < 80:
		parts = append(parts, catCond, b.sellerRating())
	default:
		parts = append(parts, catCond, b.complex(top))
		if b.rng.IntN(2) == 0 {
			parts = append(parts, b.sellerRating())
		}
	}
	return strings.Join(parts, " && ")
}

// ExampleFeeds returns the feeds and the custom template `feedmill dev`
// starts with: at least one feed per built-in template, one feed on the
// custom template and one file-only feed without destinations.
func ExampleFeeds() ([]config.Feed, []config.Template) {
	feeds := []config.Feed{
		{
			ID: "phones-gmc",
			Filter: baseFilter + ` && offer.category startsWith "Electronics/Phones" && ` +
				`seller?.status == "ACTIVE" && (rating?.average ?? 0) >= 4.0`,
			Template:     TemplateGoogle,
			Destinations: []string{DestinationGMC},
			File:         true,
		},
		{
			ID:           "kitchen-meta",
			Filter:       baseFilter + ` && offer.category startsWith "Home/Kitchen" && seller?.status == "ACTIVE"`,
			Template:     TemplateMeta,
			Destinations: []string{DestinationMeta},
			File:         true,
		},
		{
			ID:           "fashion-ceneo",
			Filter:       baseFilter + ` && offer.category startsWith "Fashion" && offer.currency == "PLN" && offer.price >= 50`,
			Template:     TemplateCeneo,
			Destinations: []string{DestinationCeneo},
			File:         true,
		},
		{
			ID: "bargains-webhook",
			Filter: baseFilter + ` && offer.currency == "PLN" && offer.price < 100 && ` +
				`offer.condition == "NEW" && (rating?.average ?? 0) >= 4.5`,
			Template:     "partner-x",
			Destinations: []string{DestinationWebhook},
			File:         true,
		},
		{
			ID: "sports-fresh-gmc",
			Filter: baseFilter + ` && offer.category startsWith "Sports" && ` +
				`now - offer.updated_at < duration("720h") && (offer.brand ?? "") in ["Nike", "Adidas", "Salomon", "Garmin"]`,
			Template:     TemplateGoogle,
			Destinations: []string{DestinationGMC, DestinationWebhook},
		},
		{
			ID:       "books-file",
			Filter:   baseFilter + ` && offer.category startsWith "Books"`,
			Template: TemplateCeneo,
			File:     true,
		},
	}
	templates := []config.Template{{
		ID:   "partner-x",
		Root: "products",
		Item: "product",
		Fields: []config.TemplateField{
			{Name: "id", Value: "offer.id"},
			{Name: "name", Value: "offer.title"},
			{Name: "price", Value: "offer.price"},
			{Name: "currency", Value: "offer.currency"},
			{Name: "category", Value: "offer.category"},
			{Name: "brand", Value: "offer.brand"},
			{Name: "image", Value: "offer.images[0]"},
			{Name: "url", Value: "offer.url"},
			{Name: "seller", Value: "seller?.name"},
			{Name: "rating", Value: "rating?.average"},
		},
	}}
	return feeds, templates
}

// GroupedFeeds are grouped feeds over the synth catalog (use it with
// Options.Products): the cheapest
// active offer in stock per product, the newest offer per seller and
// category (a time), the most expensive per product among active
// sellers (max), and a numeric key.
func GroupedFeeds() []config.Feed {
	return []config.Feed{
		{ID: "cheapest-per-product", Filter: `offer.status == "ACTIVE" && offer.stock > 0 && offer.product_id != nil`,
			Group:    &config.Group{By: "offer.product_id", Pick: config.PickMin, Of: "offer.price"},
			Template: "google-merchant", Destinations: []string{"gmc-pl"}},
		{ID: "newest-per-seller-category", Filter: `offer.status == "ACTIVE"`,
			Group:    &config.Group{By: "offer.seller_id + '/' + offer.category", Pick: config.PickMax, Of: "offer.updated_at"},
			Template: "google-merchant", Destinations: []string{"meta-main"}},
		{ID: "dearest-per-product-active-seller", Filter: `seller?.status == "ACTIVE" && offer.stock > 0`,
			Group:    &config.Group{By: "offer.product_id", Pick: config.PickMax, Of: "offer.price"},
			Template: "google-merchant", Destinations: []string{"ceneo"}},
		{ID: "one-per-price-band", Filter: `offer.stock > 0`,
			Group:    &config.Group{By: "offer.price_minor / 10000", Pick: config.PickMin, Of: "offer.stock"},
			Template: "google-merchant", Destinations: []string{"gmc-pl", "ceneo"}},
	}
}
