package synth

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/feedmill/feedmill/internal/records"
)

func fixedNow() time.Time { return time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC) }

func newTestGen(t *testing.T, seed int64, offers int) *Generator {
	t.Helper()
	g, err := New(seed, Options{Offers: offers, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func collect(t *testing.T, g *Generator, stream int) []Change {
	t.Helper()
	var out []Change
	if err := g.Initial(func(ch Change) error { out = append(out, ch); return nil }); err != nil {
		t.Fatal(err)
	}
	for range stream {
		out = append(out, g.Next())
	}
	return out
}

func TestDeterminism(t *testing.T) {
	a := collect(t, newTestGen(t, 42, 2000), 5000)
	b := collect(t, newTestGen(t, 42, 2000), 5000)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed gave different output")
	}
	c := collect(t, newTestGen(t, 43, 2000), 5000)
	if reflect.DeepEqual(a, c) {
		t.Fatal("different seeds gave the same output")
	}
}

// TestVersionsIncrease checks the ordering rule the stream promises: every
// non-resend record has a greater version than anything sent before for
// its key (tombstones included), and resends never do.
func TestVersionsIncrease(t *testing.T) {
	g := newTestGen(t, 7, 3000)
	last := map[string]int64{}
	check := func(ch Change) {
		key := ch.Topic.String() + "/" + ch.Key
		if ch.Tombstone {
			if ch.Resend {
				t.Fatalf("resent tombstone for %s", key)
			}
			return
		}
		v := version(ch)
		prev, seen := last[key]
		if ch.Resend {
			if !seen || v > prev {
				t.Fatalf("%s resend %s has version %d above the last sent %d", ch.Op, key, v, prev)
			}
			return
		}
		if seen && v <= prev {
			t.Fatalf("%s %s version %d not above %d", ch.Op, key, v, prev)
		}
		last[key] = v
	}
	if err := g.Initial(func(ch Change) error { check(ch); return nil }); err != nil {
		t.Fatal(err)
	}
	ops := map[Op]int{}
	for range 30000 {
		ch := g.Next()
		ops[ch.Op]++
		check(ch)
	}
	for op := OpNewOffer; op < numOps; op++ {
		if ops[op] == 0 {
			t.Errorf("op %s never generated", op)
		}
	}
}

func version(ch Change) int64 {
	switch {
	case ch.Offer != nil:
		return ch.Offer.Version
	case ch.Seller != nil:
		return ch.Seller.Version
	case ch.Rating != nil:
		return ch.Rating.Version
	}
	return -1
}

func TestStateMatchesStream(t *testing.T) {
	g := newTestGen(t, 9, 1000)
	truth := State{Offers: map[string]*records.Offer{}, Sellers: map[string]*records.Seller{}, Ratings: map[string]*records.Rating{}}
	apply := func(ch Change) {
		if ch.Resend {
			return
		}
		switch ch.Topic {
		case KindOffers:
			if ch.Tombstone {
				delete(truth.Offers, ch.Key)
			} else {
				truth.Offers[ch.Key] = ch.Offer
			}
		case KindSellers:
			truth.Sellers[ch.Key] = ch.Seller
		case KindRatings:
			truth.Ratings[ch.Key] = ch.Rating
		}
	}
	if err := g.Initial(func(ch Change) error { apply(ch); return nil }); err != nil {
		t.Fatal(err)
	}
	for range 20000 {
		apply(g.Next())
	}
	if !reflect.DeepEqual(truth, g.State()) {
		t.Fatal("State differs from the applied stream")
	}
}

func TestInvariants(t *testing.T) {
	g := newTestGen(t, 1, 20000)
	hostile, eur, zeroStock, noBrand, active := 0, 0, 0, 0, 0
	checkOffer := func(o *records.Offer, key string) {
		t.Helper()
		switch {
		case o.ID == "" || o.ID != key:
			t.Fatalf("offer id %q, key %q", o.ID, key)
		case o.SellerID == "":
			t.Fatalf("offer %s has no seller", o.ID)
		case o.PriceMinor <= 0 || o.Stock < 0 || o.Stock > 500:
			t.Fatalf("offer %s price %d stock %d", o.ID, o.PriceMinor, o.Stock)
		case math.Abs(o.Price-derived(o)) > 1e-9:
			t.Fatalf("offer %s price %v does not match %d %s", o.ID, o.Price, o.PriceMinor, o.Currency)
		case len(o.Images) < 1 || len(o.Images) > 6:
			t.Fatalf("offer %s has %d images", o.ID, len(o.Images))
		case len(strings.Split(o.Category, "/")) < 3:
			t.Fatalf("offer %s category %q", o.ID, o.Category)
		case o.UpdatedAt.IsZero() || o.Version <= 0:
			t.Fatalf("offer %s updated_at %v version %d", o.ID, o.UpdatedAt, o.Version)
		}
		if err := records.ValidateOffer([]byte(key), o); err != nil {
			t.Fatalf("offer %s: %v", o.ID, err)
		}
		if !oneOf(o.Condition, "NEW", "USED", "REFURBISHED") || !oneOf(o.Status, "ACTIVE", "INACTIVE", "ENDED") {
			t.Fatalf("offer %s enums %q %q", o.ID, o.Condition, o.Status)
		}
		strs := []string{o.ID, o.Title, o.Description, o.URL, o.Category, o.Currency}
		strs = append(strs, o.Images...)
		for k, v := range o.Attributes {
			strs = append(strs, k, v)
		}
		if o.Brand != nil {
			strs = append(strs, *o.Brand)
		}
		for _, s := range strs {
			if !utf8.ValidString(s) {
				t.Fatalf("offer %s has invalid UTF-8 %q", o.ID, s)
			}
		}
		if o.GTIN != nil && len(*o.GTIN) != 13 {
			t.Fatalf("offer %s gtin %q", o.ID, *o.GTIN)
		}
	}
	err := g.Initial(func(ch Change) error {
		switch ch.Topic {
		case KindOffers:
			o := ch.Offer
			checkOffer(o, ch.Key)
			if isHostile(o) {
				hostile++
			}
			if o.Currency == "EUR" {
				eur++
			}
			if o.Stock == 0 {
				zeroStock++
			}
			if o.Brand == nil {
				noBrand++
			}
			if o.Status == "ACTIVE" {
				active++
			}
		case KindSellers:
			s := ch.Seller
			if err := records.ValidateSeller([]byte(ch.Key), s); err != nil {
				t.Fatal(err)
			}
			if s.ID != ch.Key || !oneOf(s.Status, "ACTIVE", "SUSPENDED") || len(s.Country) != 2 || !utf8.ValidString(s.Name) {
				t.Fatalf("bad seller %+v", s)
			}
		case KindRatings:
			r := ch.Rating
			if err := records.ValidateRating([]byte(ch.Key), r); err != nil {
				t.Fatal(err)
			}
			if r.SellerID != ch.Key || r.Average < 1 || r.Average > 5 || r.PositivePct < 0 || r.PositivePct > 100 || r.Count < 0 {
				t.Fatalf("bad rating %+v", r)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20000
	share := func(c int) float64 { return float64(c) / n }
	for _, c := range []struct {
		name   string
		got    float64
		lo, hi float64
	}{
		{"hostile", share(hostile), 0.005, 0.02},
		{"EUR", share(eur), 0.02, 0.08},
		{"zero stock", share(zeroStock), 0.07, 0.14},
		{"no brand", share(noBrand), 0.04, 0.12},
		{"active", share(active), 0.85, 0.95},
	} {
		if c.got < c.lo || c.got > c.hi {
			t.Errorf("%s share %.3f outside [%.3f, %.3f]", c.name, c.got, c.lo, c.hi)
		}
	}
	for range 20000 {
		ch := g.Next()
		if ch.Topic == KindOffers && !ch.Tombstone {
			checkOffer(ch.Offer, ch.Key)
		}
	}
}

// isHostile reports whether the offer carries text that stresses XML
// rendering (control characters, markup, bidi overrides, huge titles).
func isHostile(o *records.Offer) bool {
	if _, ok := o.Attributes["note"]; ok {
		return true
	}
	return utf8.RuneCountInString(o.Title) >= 4000
}

func oneOf(s string, xs ...string) bool {
	for _, x := range xs {
		if s == x {
			return true
		}
	}
	return false
}

func TestCategoryTree(t *testing.T) {
	cats := parseCategories()
	lines := 0
	for _, l := range strings.Split(categoryTable, "\n") {
		if strings.TrimSpace(l) != "" {
			lines++
		}
	}
	if len(cats) != lines {
		t.Fatalf("%d of %d category lines parse", len(cats), lines)
	}
	if len(cats) < 180 {
		t.Fatalf("%d leaf categories, want about 200", len(cats))
	}
	seen := map[string]bool{}
	for _, c := range cats {
		if seen[c.path] {
			t.Fatalf("duplicate category %q", c.path)
		}
		seen[c.path] = true
		// No leaf is also an inner node: startsWith filters stay exact.
		for other := range seen {
			if strings.HasPrefix(other, c.path+"/") || strings.HasPrefix(c.path, other+"/") {
				t.Fatalf("category %q is nested in %q", c.path, other)
			}
		}
	}
}

func derived(o *records.Offer) float64 {
	c := *o
	records.DerivePrice(&c)
	return c.Price
}
