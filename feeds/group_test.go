package feeds

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/internal/records"
)

// TestCompileGroup: group.by and group.of are compiled and type-checked
// like filters (unknown fields, types, line and column); a valid grouped
// feed compiles (path "").
func TestCompileGroup(t *testing.T) {
	for _, tc := range []struct {
		name  string
		group config.Group
		path  string // of the one problem
		want  string // in its message
	}{
		{"valid min by product of price", config.Group{By: "offer.product_id", Pick: "min", Of: "offer.price"}, "", ""},
		{"valid max of a time", config.Group{By: "offer.seller_id + '/' + offer.category", Pick: "max", Of: "offer.updated_at"}, "", ""},
		{"valid rating of the seller", config.Group{By: "offer.product_id", Pick: "max", Of: "rating?.average ?? 0"}, "", ""},
		{"bad pick", config.Group{By: "offer.product_id", Pick: "first", Of: "offer.price"}, "feeds[0] (g).group.pick", `must be "min" or "max", got "first"`},
		{"empty by", config.Group{By: " ", Pick: "min", Of: "offer.price"}, "feeds[0] (g).group.by", "by is empty"},
		{"unknown field", config.Group{By: "offer.product", Pick: "min", Of: "offer.price"}, "feeds[0] (g).group.by", "line 1, column"},
		{"key of a list", config.Group{By: "offer.images", Pick: "min", Of: "offer.price"}, "feeds[0] (g).group.by", "got []string"},
		{"key of a time", config.Group{By: "offer.updated_at", Pick: "min", Of: "offer.price"}, "feeds[0] (g).group.by", "a group key must be a string, number or bool, got time.Time"},
		{"value of a string", config.Group{By: "offer.product_id", Pick: "min", Of: "offer.title"}, "feeds[0] (g).group.of", "group.of must give a number or a time, got string"},
		{"syntax", config.Group{By: "offer.product_id", Pick: "min", Of: "offer.price +"}, "feeds[0] (g).group.of", "line 1, column"},
		{"of reads now", config.Group{By: "offer.product_id", Pick: "min", Of: "now - offer.updated_at"}, "feeds[0] (g).group.of", "of must not read now"},
		{"by reads now", config.Group{By: "now.Hour() > 12", Pick: "min", Of: "offer.price"}, "feeds[0] (g).group.by", "by must not read now"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := tc.group
			set, err := Compile([]config.Feed{{ID: "g", Filter: "offer.stock > 0", Template: "google-merchant", Group: &g}}, nil)
			if tc.path == "" {
				if err != nil || !set.Feeds()[0].Grouped() {
					t.Fatalf("Compile: %v, want a grouped feed", err)
				}
				return
			}
			var ce *CompileError
			if !errors.As(err, &ce) || len(ce.Problems) != 1 {
				t.Fatalf("Compile: %v, want one problem", err)
			}
			p := ce.Problems[0]
			if p.Path != tc.path || !strings.Contains(p.Message, tc.want) {
				t.Errorf("problem %s: %s, want %s: ...%s...", p.Path, p.Message, tc.path, tc.want)
			}
		})
	}
}

// TestEvaluatorGroup: the key's text and the picked value of grouped
// feeds, and no group for a nil key or value or a failure (counted as the
// feed's filter error).
func TestEvaluatorGroup(t *testing.T) {
	fs := []config.Feed{
		{ID: "by-product", Filter: "true", Template: "google-merchant", Group: &config.Group{By: "offer.product_id", Pick: "min", Of: "offer.price"}},
		{ID: "by-seller-newest", Filter: "true", Template: "google-merchant", Group: &config.Group{By: "offer.seller_id", Pick: "max", Of: "offer.updated_at"}},
		{ID: "by-stock", Filter: "true", Template: "google-merchant", Group: &config.Group{By: "offer.stock > 0", Pick: "max", Of: "rating?.average"}},
		{ID: "by-number", Filter: "true", Template: "google-merchant", Group: &config.Group{By: "offer.price_minor / 100", Pick: "min", Of: "offer.price_minor"}},
	}
	set, err := Compile(fs, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	pid := "p-42"
	o := &records.Offer{ID: "o1", SellerID: "s1", ProductID: &pid, PriceMinor: 1999, Currency: "PLN", Stock: 3, UpdatedAt: now.Add(-time.Hour)}
	records.DerivePrice(o)
	noProduct := *o
	noProduct.ProductID = nil
	ev := set.NewEvaluator()
	for _, tc := range []struct {
		feed    int
		v       View
		key     string
		val     GroupValue
		max, ok bool
	}{
		{0, View{Offer: o}, "p-42", GroupValue{Num: 19.99}, false, true},
		{0, View{Offer: &noProduct}, "", GroupValue{}, false, false},
		{1, View{Offer: o}, "s1", GroupValue{Time: now.Add(-time.Hour), IsTime: true}, true, true},
		{2, View{Offer: o, Rating: &records.Rating{SellerID: "s1", Average: 4.5}}, "true", GroupValue{Num: 4.5}, true, true},
		{2, View{Offer: o}, "true", GroupValue{}, true, false},           // no rating: a nil value
		{3, View{Offer: o}, "19.99", GroupValue{Num: 1999}, false, true}, // expr divides as floats
	} {
		f := set.Feeds()[tc.feed]
		k, val, max, ok := ev.Group(f, &tc.v, now, nil)
		if string(k) != tc.key && ok || !val.Time.Equal(tc.val.Time) || val.Num != tc.val.Num || val.IsTime != tc.val.IsTime || max != tc.max || ok != tc.ok {
			t.Errorf("%s on %+v: key %q value %+v max %v ok %v; want %q %+v %v %v", f.ID, tc.v.Offer.ProductID, k, val, max, ok, tc.key, tc.val, tc.max, tc.ok)
		}
	}
	if n := ev.FilterErrors()[0]; n != 0 {
		t.Errorf("a nil key counted %d errors", n)
	}
}
