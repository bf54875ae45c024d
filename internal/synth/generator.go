package synth

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/feedmill/feedmill/internal/records"
)

// Kind says which input topic a Change belongs to.
type Kind uint8

// The input topics.
const (
	KindOffers Kind = iota
	KindSellers
	KindRatings
)

// String returns the default topic name of the kind.
func (k Kind) String() string {
	switch k {
	case KindOffers:
		return "offers"
	case KindSellers:
		return "sellers"
	case KindRatings:
		return "ratings"
	}
	return "unknown"
}

// Op says what a Change does; it is informational (for tests, benchmarks
// and progress output) and not part of any record.
type Op uint8

// The operations of the change stream.
const (
	OpInitial      Op = iota // part of the initial catalog
	OpNewOffer               // a new offer
	OpPrice                  // price change
	OpStock                  // stock change (including to and from 0)
	OpStatus                 // offer status change
	OpTitle                  // title edit
	OpDetails                // description, images or attributes changed
	OpBump                   // only version and updated_at changed
	OpDelete                 // offer tombstone
	OpSellerStatus           // seller suspended or re-activated
	OpRating                 // rating drift
	OpRatingCross            // rating crossing the 4.0 threshold
	OpNewRating              // first rating of a seller
	OpDuplicate              // exact re-send of the current record
	OpLate                   // re-send of an older version or of a deleted offer

	numOps
)

// String returns a short snake_case name of the op.
func (o Op) String() string {
	switch o {
	case OpInitial:
		return "initial"
	case OpNewOffer:
		return "new_offer"
	case OpPrice:
		return "price"
	case OpStock:
		return "stock"
	case OpStatus:
		return "status"
	case OpTitle:
		return "title"
	case OpDetails:
		return "details"
	case OpBump:
		return "bump"
	case OpDelete:
		return "delete"
	case OpSellerStatus:
		return "seller_status"
	case OpRating:
		return "rating"
	case OpRatingCross:
		return "rating_cross"
	case OpNewRating:
		return "new_rating"
	case OpDuplicate:
		return "duplicate"
	case OpLate:
		return "late"
	}
	return "unknown"
}

// Change is one record of the generated input. Exactly one of Offer, Seller
// and Rating is set unless Tombstone is true. The records are shared with
// the Generator's state and must not be modified.
type Change struct {
	Topic     Kind
	Key       string
	Offer     *records.Offer
	Seller    *records.Seller
	Rating    *records.Rating
	Tombstone bool

	// Resend marks a duplicate or late copy of an earlier record: by the
	// ordering rule (docs/contract.md) it must change nothing, and State does
	// not reflect it.
	Resend bool
	// Op says what kind of change this is.
	Op Op
}

// Options configures a Generator.
type Options struct {
	// Offers is the size of the initial catalog.
	Offers int
	// Sellers is the number of sellers (default max(1, Offers/100)).
	Sellers int
	// Now is the clock for updated_at (default time.Now). Pass a fixed
	// clock for fully reproducible output.
	Now func() time.Time
	// VersionBase is added to every initial version. A producer that
	// restarts against state kept from an earlier run (feedmill dev) passes
	// a base above any version it produced before, e.g. the start time in
	// microseconds, so its changes are not ignored as late arrivals.
	VersionBase int64
	// HostileFraction is the share of offers and sellers carrying hostile
	// text (default 0.01; negative disables it).
	HostileFraction float64
	// Products, when set, is the number of distinct product ids (default
	// Offers/3) and shapes the stream for grouped feeds: prices on a
	// coarse grid (many ties), and one title edit in three also moves the
	// offer to another product. Zero leaves the stream as without it.
	Products int
}

// State is the generator's current truth: the latest version of every live
// record. Maps are fresh copies; the records are shared and read-only.
type State struct {
	Offers  map[string]*records.Offer
	Sellers map[string]*records.Seller
	Ratings map[string]*records.Rating
}

// recentSize is how many past changes are kept for late re-sends.
const recentSize = 512

// Generator produces a deterministic synthetic catalog and change stream.
// The same seed, Options (with a fixed Now) and call sequence give the same
// output. A Generator is not safe for concurrent use.
type Generator struct {
	o   Options
	rng *rand.Rand

	cats       []category
	tops       map[string]topDef
	currencies []currency
	curWeight  int
	words      []string
	phrases    []string
	hostile    []string

	sellers   []*records.Seller // by seller number
	ratings   map[string]*records.Rating
	suspended int

	offers      map[string]*records.Offer
	live        []string         // ids of live offers
	liveIdx     map[string]int   // id → index in live
	deletedVer  map[string]int64 // id → last version of a deleted offer
	deleted     []string         // ids in deletedVer, for deterministic picks
	nextOffer   int
	productSpan int

	recent  [recentSize]Change
	nRecent int
}

// New builds the initial catalog of o.Offers offers from seed.
func New(seed int64, o Options) (*Generator, error) {
	if o.Offers < 0 {
		return nil, errors.New("synth options: offers must not be negative")
	}
	if o.Sellers <= 0 {
		o.Sellers = max(1, o.Offers/100)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HostileFraction == 0 {
		o.HostileFraction = 0.01
	}
	cats := parseCategories()
	g := &Generator{
		o:           o,
		rng:         rand.New(rand.NewPCG(uint64(seed), uint64(seed)^0x9e3779b97f4a7c15)),
		cats:        cats,
		tops:        topTable(),
		currencies:  currencies(),
		words:       sellerWords(),
		phrases:     descriptionPhrases(),
		hostile:     hostileFragments(),
		ratings:     make(map[string]*records.Rating, o.Sellers),
		offers:      make(map[string]*records.Offer, o.Offers),
		liveIdx:     make(map[string]int, o.Offers),
		deletedVer:  make(map[string]int64),
		productSpan: max(1, o.Offers/3),
	}
	if o.Products > 0 {
		g.productSpan = o.Products
	}
	for _, c := range cats {
		if _, ok := g.tops[c.top]; !ok {
			return nil, fmt.Errorf("synth vocabulary: category %q has no top-level entry", c.path)
		}
	}
	for _, c := range g.currencies {
		g.curWeight += c.weight
	}
	now := g.now()
	for i := range o.Sellers {
		s := g.newSeller(i, now)
		g.sellers = append(g.sellers, s)
		if s.Status == "SUSPENDED" {
			g.suspended++
		}
		if g.rng.Float64() < 0.95 {
			g.ratings[s.ID] = g.newRating(s.ID, now)
		}
	}
	for range o.Offers {
		age := time.Duration(g.rng.Int64N(int64(90 * 24 * time.Hour)))
		o := g.newOffer(g.allocOfferID(), g.o.VersionBase+1+g.rng.Int64N(20), now.Add(-age).Truncate(time.Millisecond))
		g.putOffer(o)
	}
	return g, nil
}

// Initial calls fn with the whole current catalog: sellers, then ratings,
// then offers, each in id order. It stops at and returns fn's first error.
func (g *Generator) Initial(fn func(Change) error) error {
	for _, s := range g.sellers {
		if err := fn(Change{Topic: KindSellers, Key: s.ID, Seller: s, Op: OpInitial}); err != nil {
			return err
		}
	}
	for _, s := range g.sellers {
		r, ok := g.ratings[s.ID]
		if !ok {
			continue
		}
		if err := fn(Change{Topic: KindRatings, Key: r.SellerID, Rating: r, Op: OpInitial}); err != nil {
			return err
		}
	}
	for i := 1; i <= g.nextOffer; i++ {
		o, ok := g.offers[offerID(i)]
		if !ok {
			continue
		}
		if err := fn(Change{Topic: KindOffers, Key: o.ID, Offer: o, Op: OpInitial}); err != nil {
			return err
		}
	}
	return nil
}

// State returns copies of the maps of live offers, sellers and ratings.
func (g *Generator) State() State {
	st := State{
		Offers:  make(map[string]*records.Offer, len(g.offers)),
		Sellers: make(map[string]*records.Seller, len(g.sellers)),
		Ratings: make(map[string]*records.Rating, len(g.ratings)),
	}
	for k, v := range g.offers {
		st.Offers[k] = v
	}
	for _, s := range g.sellers {
		st.Sellers[s.ID] = s
	}
	for k, v := range g.ratings {
		st.Ratings[k] = v
	}
	return st
}

// Next returns the next change of the endless stream and applies it to the
// generator's state.
func (g *Generator) Next() Change {
	ch := g.next()
	if !ch.Resend && !ch.Tombstone {
		g.recent[g.nRecent%recentSize] = ch
		g.nRecent++
	}
	return ch
}

func (g *Generator) next() Change {
	r := g.rng.IntN(1000)
	if len(g.live) == 0 && r < 800 {
		r = 0 // nothing to update: create
	}
	switch {
	case r < 60:
		o := g.createOffer()
		g.putOffer(o)
		return offerChange(o, OpNewOffer)
	case r < 300:
		return g.updateOffer(OpPrice)
	case r < 500:
		return g.updateOffer(OpStock)
	case r < 550:
		return g.updateOffer(OpStatus)
	case r < 600:
		return g.updateOffer(OpTitle)
	case r < 640:
		return g.updateOffer(OpDetails)
	case r < 800:
		return g.updateOffer(OpBump)
	case r < 830:
		if len(g.live) == 0 {
			return g.updateRating()
		}
		return g.deleteOffer()
	case r < 845:
		return g.flipSeller()
	case r < 920:
		return g.updateRating()
	case r < 960:
		return g.duplicate()
	default:
		return g.late()
	}
}

func offerChange(o *records.Offer, op Op) Change {
	return Change{Topic: KindOffers, Key: o.ID, Offer: o, Op: op}
}

func (g *Generator) now() time.Time { return g.o.Now().UTC().Truncate(time.Millisecond) }

// stamp returns an updated_at after prev.
func (g *Generator) stamp(prev time.Time) time.Time {
	ts := g.now()
	if !ts.After(prev) {
		ts = prev.Add(time.Millisecond)
	}
	return ts
}

func (g *Generator) bump(v int64) int64 { return v + 1 + g.rng.Int64N(3) }

func offerID(n int) string {
	s := strconv.Itoa(n)
	if len(s) < 8 {
		s = strings.Repeat("0", 8-len(s)) + s
	}
	return "o" + s
}

func sellerID(n int) string {
	s := strconv.Itoa(n + 1)
	if len(s) < 6 {
		s = strings.Repeat("0", 6-len(s)) + s
	}
	return "s" + s
}

func (g *Generator) allocOfferID() string {
	g.nextOffer++
	return offerID(g.nextOffer)
}

func (g *Generator) putOffer(o *records.Offer) {
	if _, ok := g.liveIdx[o.ID]; !ok {
		g.liveIdx[o.ID] = len(g.live)
		g.live = append(g.live, o.ID)
	}
	g.offers[o.ID] = o
}

func (g *Generator) randomLive() *records.Offer {
	return g.offers[g.live[g.rng.IntN(len(g.live))]]
}

func (g *Generator) updateOffer(op Op) Change {
	prev := g.randomLive()
	o := *prev
	o.Version = g.bump(prev.Version)
	o.UpdatedAt = g.stamp(prev.UpdatedAt)
	switch op {
	case OpPrice:
		f := 1 + (g.rng.Float64()-0.5)*0.4 // ±20 %
		o.PriceMinor = g.gridPrice(max(1, int(math.Round(float64(o.PriceMinor)*f))))
		records.DerivePrice(&o)
	case OpStock:
		switch {
		case o.Stock > 0 && g.rng.IntN(4) == 0:
			o.Stock = 0
		case o.Stock == 0:
			o.Stock = 1 + g.rng.IntN(50)
		default:
			o.Stock = min(500, max(0, o.Stock+g.rng.IntN(21)-10))
		}
	case OpStatus:
		switch o.Status {
		case "ACTIVE":
			o.Status = pick(g.rng, []string{"INACTIVE", "INACTIVE", "ENDED"})
		default:
			o.Status = "ACTIVE"
		}
	case OpTitle:
		base := o.Title
		if i := strings.Index(base, " – "); i >= 0 {
			base = base[:i]
		}
		o.Title = base + " – " + pick(g.rng, []string{"SALE", "NEW 2025", "free delivery", "last units", "best price", "gift wrap", "outlet"})
		if g.o.Products > 0 && g.rng.IntN(3) == 0 {
			pid := "p" + strconv.Itoa(1+g.rng.IntN(g.productSpan))
			o.ProductID = &pid
		}
	case OpDetails:
		o.Description = g.description(&o, false) + " Updated."
		o.Images = g.images(o.ID)
	}
	p := &o
	g.offers[o.ID] = p
	return offerChange(p, op)
}

// createOffer makes a new offer; one in five re-creates a deleted id with
// a greater version.
func (g *Generator) createOffer() *records.Offer {
	if len(g.deleted) == 0 || g.rng.IntN(5) != 0 {
		return g.newOffer(g.allocOfferID(), g.o.VersionBase+1, g.now())
	}
	i := g.rng.IntN(len(g.deleted))
	id := g.deleted[i]
	g.deleted[i] = g.deleted[len(g.deleted)-1]
	g.deleted = g.deleted[:len(g.deleted)-1]
	o := g.newOffer(id, g.bump(g.deletedVer[id]), g.now())
	delete(g.deletedVer, id)
	return o
}

func (g *Generator) deleteOffer() Change {
	id := g.live[g.rng.IntN(len(g.live))]
	g.deletedVer[id] = g.offers[id].Version
	g.deleted = append(g.deleted, id)
	delete(g.offers, id)
	i := g.liveIdx[id]
	last := g.live[len(g.live)-1]
	g.live[i] = last
	g.liveIdx[last] = i
	g.live = g.live[:len(g.live)-1]
	delete(g.liveIdx, id)
	return Change{Topic: KindOffers, Key: id, Tombstone: true, Op: OpDelete}
}

// flipSeller suspends an active seller, or re-activates a suspended one when
// more than 3 % are suspended.
func (g *Generator) flipSeller() Change {
	wantSuspended := g.suspended*100 > 3*len(g.sellers)
	start := g.rng.IntN(len(g.sellers))
	idx := start
	for i := range g.sellers {
		j := (start + i) % len(g.sellers)
		if (g.sellers[j].Status == "SUSPENDED") == wantSuspended {
			idx = j
			break
		}
	}
	prev := g.sellers[idx]
	s := *prev
	s.Version = g.bump(prev.Version)
	s.UpdatedAt = g.stamp(prev.UpdatedAt)
	if s.Status == "SUSPENDED" {
		s.Status = "ACTIVE"
		g.suspended--
	} else {
		s.Status = "SUSPENDED"
		g.suspended++
	}
	g.sellers[idx] = &s
	return Change{Topic: KindSellers, Key: s.ID, Seller: &s, Op: OpSellerStatus}
}

func (g *Generator) updateRating() Change {
	sid := g.sellers[g.rng.IntN(len(g.sellers))].ID
	prev, ok := g.ratings[sid]
	if !ok {
		r := g.newRating(sid, g.now())
		g.ratings[sid] = r
		return Change{Topic: KindRatings, Key: sid, Rating: r, Op: OpNewRating}
	}
	r := *prev
	r.Version = g.bump(prev.Version)
	r.UpdatedAt = g.stamp(prev.UpdatedAt)
	r.Count += 1 + g.rng.Int64N(20)
	op := OpRating
	if g.rng.IntN(5) < 2 {
		op = OpRatingCross
		if r.Average >= 4.0 {
			r.Average = 3.8 + g.rng.Float64()*0.19
		} else {
			r.Average = 4.01 + g.rng.Float64()*0.3
		}
	} else {
		r.Average = clamp(r.Average+(g.rng.Float64()-0.5)*0.1, 1, 5)
	}
	r.Average = math.Round(r.Average*100) / 100
	r.PositivePct = positivePct(g.rng, r.Average)
	g.ratings[sid] = &r
	return Change{Topic: KindRatings, Key: sid, Rating: &r, Op: op}
}

func (g *Generator) duplicate() Change {
	if len(g.live) == 0 {
		return g.updateRating()
	}
	o := g.randomLive()
	return Change{Topic: KindOffers, Key: o.ID, Offer: o, Resend: true, Op: OpDuplicate}
}

// late re-sends a past change that is no longer current, or a duplicate
// when every recent change is still current.
func (g *Generator) late() Change {
	n := min(g.nRecent, recentSize)
	if n == 0 {
		return g.duplicate()
	}
	start := g.rng.IntN(n)
	for i := range n {
		ch := g.recent[(start+i)%n]
		if g.isStale(ch) {
			ch.Resend = true
			ch.Op = OpLate
			return ch
		}
	}
	return g.duplicate()
}

func (g *Generator) isStale(ch Change) bool {
	switch ch.Topic {
	case KindOffers:
		cur, ok := g.offers[ch.Key]
		return !ok || cur.Version > ch.Offer.Version
	case KindSellers:
		for _, s := range g.sellers {
			if s.ID == ch.Key {
				return s.Version > ch.Seller.Version
			}
		}
	case KindRatings:
		cur, ok := g.ratings[ch.Key]
		return !ok || cur.Version > ch.Rating.Version
	}
	return false
}

func (g *Generator) hostileRoll() bool {
	return g.o.HostileFraction > 0 && g.rng.Float64() < g.o.HostileFraction
}

func (g *Generator) newSeller(n int, now time.Time) *records.Seller {
	name := g.words[g.rng.IntN(len(g.words))] + g.words[g.rng.IntN(len(g.words))] + " " +
		pick(g.rng, []string{"Sp. z o.o.", "S.A.", "s.c.", "", "", "PL", "Store"})
	name = strings.TrimSpace(name)
	if g.hostileRoll() {
		name += " " + g.hostile[g.rng.IntN(len(g.hostile))]
	}
	country := "PL"
	if g.rng.IntN(100) >= 85 {
		country = pick(g.rng, []string{"CZ", "DE", "SK", "HU", "CN", "LT", "UA"})
	}
	status := "ACTIVE"
	if g.rng.IntN(100) < 3 {
		status = "SUSPENDED"
	}
	return &records.Seller{
		ID:          sellerID(n),
		Name:        name,
		Country:     country,
		Status:      status,
		SuperSeller: g.rng.IntN(100) < 15,
		UpdatedAt:   now.Add(-time.Duration(g.rng.Int64N(int64(365 * 24 * time.Hour)))).Truncate(time.Millisecond),
		Version:     g.o.VersionBase + 1 + g.rng.Int64N(10),
	}
}

func (g *Generator) newRating(sid string, now time.Time) *records.Rating {
	// Skewed high: most sellers sit between 4 and 5.
	avg := clamp(5-math.Abs(g.rng.NormFloat64()*0.7), 1, 5)
	avg = math.Round(avg*100) / 100
	return &records.Rating{
		SellerID:    sid,
		Average:     avg,
		Count:       int64(math.Exp(g.rng.Float64() * math.Log(20000))),
		PositivePct: positivePct(g.rng, avg),
		UpdatedAt:   now.Add(-time.Duration(g.rng.Int64N(int64(30 * 24 * time.Hour)))).Truncate(time.Millisecond),
		Version:     g.o.VersionBase + 1 + g.rng.Int64N(50),
	}
}

// gridPrice rounds a price in minor units to the grid of Options.Products
// streams (multiples of 500, at least 500); others keep it.
func (g *Generator) gridPrice(minor int) int {
	if g.o.Products <= 0 {
		return minor
	}
	return max(500, (minor+250)/500*500)
}

func positivePct(rng *rand.Rand, avg float64) float64 {
	p := 100 - (5-avg)*15 + rng.NormFloat64()*1.5
	return math.Round(clamp(p, 0, 100)*10) / 10
}

func (g *Generator) newOffer(id string, version int64, updated time.Time) *records.Offer {
	c := &g.cats[g.rng.IntN(len(g.cats))]
	top := g.tops[c.top]
	hostile := g.hostileRoll()

	o := &records.Offer{
		ID:        id,
		SellerID:  g.sellers[skewed(g.rng, len(g.sellers))].ID,
		Category:  c.path,
		URL:       "https://marketplace.example.pl/offer/" + id,
		Images:    g.images(id),
		UpdatedAt: updated,
		Version:   version,
	}
	if g.rng.IntN(100) < 80 {
		pid := "p" + strconv.Itoa(1+g.rng.IntN(g.productSpan))
		o.ProductID = &pid
	}
	if g.rng.IntN(100) < 92 {
		b := top.brands[skewed(g.rng, len(top.brands))]
		o.Brand = &b
	}
	if g.rng.IntN(100) < 75 {
		gtin := g.ean13()
		o.GTIN = &gtin
	}

	// Attributes: 1..4 distinct keys of the top category.
	na := 1 + g.rng.IntN(min(4, len(top.attrs)))
	o.Attributes = make(map[string]string, na)
	titleAttrs := make([]string, 0, na)
	for _, ai := range g.rng.Perm(len(top.attrs))[:na] {
		a := top.attrs[ai]
		v := a.values[g.rng.IntN(len(a.values))]
		o.Attributes[a.key] = v
		if len(titleAttrs) < 2 {
			titleAttrs = append(titleAttrs, v)
		}
	}

	// Price: log-normal around the leaf median, in one of the currencies.
	pln := c.median * math.Exp(top.sigma*g.rng.NormFloat64())
	cur := g.pickCurrency()
	amount := pln * cur.perPLN
	units := records.MinorUnits(cur.code)
	scale := math.Pow10(units)
	minor := int(math.Round(amount * scale))
	if units > 0 && amount > 10 && g.rng.IntN(2) == 0 {
		minor = int(math.Round(amount))*int(scale) - 1 // x.99 pricing
	}
	o.PriceMinor = g.gridPrice(max(1, minor))
	o.Currency = cur.code
	records.DerivePrice(o)

	if g.rng.IntN(100) < 10 {
		o.Stock = 0
	} else {
		u := g.rng.Float64()
		o.Stock = 1 + int(499*u*u*u)
	}
	switch r := g.rng.IntN(100); {
	case r < 88:
		o.Condition = "NEW"
	case r < 96:
		o.Condition = "USED"
	default:
		o.Condition = "REFURBISHED"
	}
	switch r := g.rng.IntN(100); {
	case r < 90:
		o.Status = "ACTIVE"
	case r < 97:
		o.Status = "INACTIVE"
	default:
		o.Status = "ENDED"
	}

	var tb strings.Builder
	if o.Brand != nil {
		tb.WriteString(*o.Brand)
		tb.WriteByte(' ')
	}
	tb.WriteString(c.noun)
	tb.WriteByte(' ')
	tb.WriteString(g.model())
	for _, v := range titleAttrs {
		tb.WriteByte(' ')
		tb.WriteString(v)
	}
	if o.Condition != "NEW" {
		tb.WriteString(" (")
		tb.WriteString(strings.ToLower(o.Condition))
		tb.WriteByte(')')
	}
	o.Title = tb.String()
	o.Description = g.description(o, hostile)
	if hostile {
		g.makeHostile(o)
	}
	return o
}

// makeHostile puts hostile text into the offer's free-text fields; the
// record stays valid (valid UTF-8, same ids).
func (g *Generator) makeHostile(o *records.Offer) {
	frag := func() string { return g.hostile[g.rng.IntN(len(g.hostile))] }
	switch g.rng.IntN(5) {
	case 0: // a 4000-character title
		var b strings.Builder
		for utf8.RuneCountInString(b.String()) < 4000 {
			b.WriteString(o.Title)
			b.WriteByte(' ')
			b.WriteString(frag())
			b.WriteByte(' ')
		}
		o.Title = string([]rune(b.String())[:4000])
	case 1:
		o.Title = frag() + " " + o.Title + " " + frag()
	default:
		o.Title += " " + frag()
	}
	o.Description = frag() + " " + o.Description + " " + frag() + " " + frag()
	attrs := make(map[string]string, len(o.Attributes)+1)
	for k, v := range o.Attributes {
		attrs[k] = v
	}
	attrs["note"] = frag()
	o.Attributes = attrs
	if o.Brand != nil && g.rng.IntN(3) == 0 {
		b := *o.Brand + " " + frag()
		o.Brand = &b
	}
	if g.rng.IntN(2) == 0 {
		o.URL += "?ref=feed&utm_source=<x>&q=\"a'b\""
	}
}

func (g *Generator) description(o *records.Offer, hostile bool) string {
	var b strings.Builder
	b.WriteString(o.Title)
	b.WriteString(". ")
	n := 2 + g.rng.IntN(4)
	for i := range n {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(g.phrases[g.rng.IntN(len(g.phrases))])
	}
	if hostile {
		b.WriteString(" <b>bold</b> & more")
	}
	return b.String()
}

func (g *Generator) images(id string) []string {
	n := 1 + g.rng.IntN(6)
	out := make([]string, n)
	for i := range out {
		out[i] = "https://img.example.pl/" + id + "/" + strconv.Itoa(i+1) + ".jpg"
	}
	return out
}

func (g *Generator) model() string {
	if g.rng.IntN(3) == 0 {
		return pick(g.rng, []string{"Pro", "Max", "Lite", "Plus", "Ultra", "Mini", "Air", "Neo", "Classic", "Sport", "Eco", "Prime"})
	}
	letters := "ABCDEFGHJKLMNPRSTVXZ"
	return string(letters[g.rng.IntN(len(letters))]) + strconv.Itoa(10+g.rng.IntN(990))
}

func (g *Generator) pickCurrency() currency {
	r := g.rng.IntN(g.curWeight)
	for _, c := range g.currencies {
		if r < c.weight {
			return c
		}
		r -= c.weight
	}
	return g.currencies[0]
}

// ean13 returns a valid EAN-13, mostly with the Polish 590 prefix.
func (g *Generator) ean13() string {
	var d [13]byte
	prefix := "590"
	if g.rng.IntN(4) == 0 {
		prefix = pick(g.rng, []string{"400", "500", "800", "690", "880"})
	}
	copy(d[:], prefix)
	for i := 3; i < 12; i++ {
		d[i] = byte('0' + g.rng.IntN(10))
	}
	sum := 0
	for i := range 12 {
		v := int(d[i] - '0')
		if i%2 == 1 {
			v *= 3
		}
		sum += v
	}
	d[12] = byte('0' + (10-sum%10)%10)
	return string(d[:])
}

// skewed picks an index in [0,n) favouring low indices.
func skewed(rng *rand.Rand, n int) int {
	u := rng.Float64()
	return min(n-1, int(float64(n)*u*u))
}

func pick(rng *rand.Rand, xs []string) string { return xs[rng.IntN(len(xs))] }

func clamp(v, lo, hi float64) float64 { return max(lo, min(hi, v)) }
