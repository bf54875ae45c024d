package feeds

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/expr-lang/expr"
	"github.com/feedmill/feedmill/config"
)

func TestCompileErrors(t *testing.T) {
	good := config.Feed{ID: "ok", Filter: "true", Template: "ceneo"}
	tests := []struct {
		name      string
		feeds     []config.Feed
		templates []config.Template
		want      []Problem
	}{
		{
			name:  "unknown name with position",
			feeds: []config.Feed{good, good, {ID: "phones-gmc", Filter: `offer.stock > 0 && sellr.status == "ACTIVE"`, Template: "google-merchant"}},
			want: []Problem{
				{"feeds[1] (ok).id", `duplicate id "ok" (also feeds[0])`},
				{"feeds[2] (phones-gmc).filter", "line 1, column 20: unknown name sellr"},
			},
		},
		{
			name:  "not boolean",
			feeds: []config.Feed{{ID: "a", Filter: "offer.stock + 1", Template: "ceneo"}},
			want:  []Problem{{"feeds[0] (a).filter", "filter must be boolean, got int"}},
		},
		{
			name:  "syntax error on line 2",
			feeds: []config.Feed{{ID: "a", Filter: "offer.stock > 0 &&\n  (offer.price <", Template: "ceneo"}},
			want:  []Problem{{"feeds[0] (a).filter", "line 2, column 16: unexpected token EOF"}},
		},
		{
			name: "several at once",
			feeds: []config.Feed{
				{ID: "", Filter: "", Template: ""},
				{ID: "Bad_ID", Filter: `offer.title matches offer.description`, Template: "nope"},
				{ID: "c", Filter: `now()`, Template: "ceneo"},
				{ID: "d", Filter: `offer.status == 1`, Template: "ceneo"},
			},
			want: []Problem{
				{"feeds[0] ().id", "id is empty"},
				{"feeds[0] ().template", "template is empty"},
				{"feeds[0] ().filter", "filter is empty"},
				{"feeds[1] (Bad_ID).id", `id "Bad_ID" must match [a-z0-9][a-z0-9-]*`},
				{"feeds[1] (Bad_ID).template", `unknown template "nope" (built-in: google-merchant, meta-catalog, ceneo)`},
				{"feeds[1] (Bad_ID).filter", "column 13: matches needs a constant string pattern"},
				{"feeds[2] (c).filter", "line 1, column 1: time.Time is not callable"},
				{"feeds[3] (d).filter", "line 1, column 14: invalid operation: == (mismatched types string and int)"},
			},
		},
		{
			name:  "custom template problems",
			feeds: []config.Feed{{ID: "a", Filter: "true", Template: "partner-x"}},
			templates: []config.Template{
				{ID: "partner-x", Root: "1products", Item: "xmlitem", Fields: []config.TemplateField{
					{Name: "id", Value: "offer.id"},
					{Name: "", Value: "offer.title"},
					{Name: "images", Value: "offer.images"},
					{Name: "price", Value: "offer.prise"},
					{Name: "empty", Value: " "},
				}},
				{ID: "ceneo", Root: "r", Item: "i", Fields: []config.TemplateField{{Name: "id", Value: "offer.id"}}},
				{ID: "dup", Root: "r", Item: "i", Fields: []config.TemplateField{{Name: "id", Value: "offer.id"}}},
				{ID: "dup", Root: "r", Item: "i", Fields: []config.TemplateField{{Name: "id", Value: "offer.id"}}},
			},
			want: []Problem{
				{"templates[0] (partner-x).root", `element name "1products" is not a valid XML name (no prefixes)`},
				{"templates[0] (partner-x).item", `element name "xmlitem": names starting with xml are reserved`},
				{"templates[0] (partner-x).fields[1] ().name", "element name is empty"},
				{"templates[0] (partner-x).fields[2] (images).value", "value must be a string, number, bool or time, got []string"},
				{"templates[0] (partner-x).fields[3] (price).value", "line 1, column 7: type feeds.offerVars has no field prise"},
				{"templates[0] (partner-x).fields[4] (empty).value", "value is empty"},
				{"templates[1] (ceneo).id", `id "ceneo" is a built-in template name`},
				{"templates[3] (dup).id", `duplicate id "dup"`},
				{"feeds[0] (a).template", `unknown template "partner-x" (built-in: google-merchant, meta-catalog, ceneo)`},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.feeds, tc.templates)
			var ce *CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v, want *CompileError", err)
			}
			got := ce.Problems
			if len(got) != len(tc.want) {
				t.Fatalf("%d problems, want %d:\n%v", len(got), len(tc.want), err)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("problem %d:\n got  %s: %s\n want %s: %s", i, got[i].Path, got[i].Message, tc.want[i].Path, tc.want[i].Message)
				}
			}
			if lines := strings.Count(err.Error(), "\n") + 1; lines != len(tc.want) {
				t.Errorf("Error() has %d lines, want %d", lines, len(tc.want))
			}
		})
	}
}

func TestCompileSet(t *testing.T) {
	s := mustCompile(t, []config.Feed{
		{ID: "a", Filter: "true", Template: "ceneo", Destinations: []string{"x"}, File: true},
		{ID: "b", Filter: "true", Template: "partner-x"},
		{ID: "c", Filter: "true", Template: "ceneo"},
	}, []config.Template{partnerX(), {ID: "unused", Root: "r", Item: "i", Fields: []config.TemplateField{{Name: "id", Value: "offer.id"}}}})
	if len(s.Feeds()) != 3 || len(s.Templates()) != 2 {
		t.Fatalf("%d feeds, %d templates", len(s.Feeds()), len(s.Templates()))
	}
	for i, f := range s.Feeds() {
		if f.Index != i {
			t.Errorf("feed %s index %d, want %d", f.ID, f.Index, i)
		}
	}
	for i, tm := range s.Templates() {
		if tm.Index != i {
			t.Errorf("template %s index %d, want %d", tm.ID, tm.Index, i)
		}
	}
	a, ok := s.Feed("a")
	c, _ := s.Feed("c")
	if !ok || a.Template != c.Template || !a.Template.Builtin || !a.File || a.Destinations[0] != "x" {
		t.Errorf("feed a: %+v", a)
	}
	if _, ok := s.Feed("zzz"); ok {
		t.Error("found unknown feed")
	}
}

// TestSlotsMatchCheckedEnv runs programs the way expr would on the typed
// environment (records values, compiled by expr.Compile) and the way the
// Evaluator does (slots), and compares the results.
func TestSlotsMatchCheckedEnv(t *testing.T) {
	exprs := []string{
		`offer.id`, `offer.seller_id`, `offer.product_id`, `offer.title`, `offer.description`, `offer.category`,
		`offer.price_minor`, `offer.currency`, `offer.stock`, `offer.condition`, `offer.status`, `offer.url`,
		`offer.images`, `offer.brand`, `offer.gtin`, `offer.attributes["colour"]`, `offer.attributes["none"]`,
		`offer.updated_at`, `offer.version`, `offer.price`, `seller?.id`, `seller?.name`, `seller?.country`,
		`seller?.status`, `seller?.super_seller`, `seller?.updated_at`, `seller?.version`, `rating?.seller_id`,
		`rating?.average`, `rating?.count`, `rating?.positive_pct`, `rating?.updated_at`, `rating?.version`, `now`,
		`offer.brand == "Apple"`, `upper(offer.brand ?? "")`, `seller == nil`, `rating != nil`,
	}
	views := []*View{
		{Offer: testOffer(), Seller: testSeller(), Rating: testRating()},
		{Offer: minimalOffer()},
	}
	for _, src := range exprs {
		want := make([]any, len(views))
		for i, v := range views {
			env := checkedEnv(v)
			p, err := expr.Compile(src, expr.Env(env))
			if err != nil {
				t.Fatalf("%s: %v", src, err)
			}
			out, err := expr.Run(p, env)
			if err != nil {
				t.Fatalf("%s: %v", src, err)
			}
			want[i] = out
		}
		p, err := compileExpr(src, exprOptions(false), limits{enforce: true})
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		root := p.Node()
		u := newFieldBits().usage(&root)
		for i, v := range views {
			sl := newSlots()
			sl.load(u, v, testNow)
			got, err := expr.Run(p, &sl.env)
			if err != nil {
				t.Fatalf("%s: %v", src, err)
			}
			if !sameValue(got, want[i]) {
				t.Errorf("%s on view %d: slots %#v, typed %#v", src, i, got, want[i])
			}
		}
	}
}

func checkedEnv(v *View) checkEnv {
	o := v.Offer
	ov := &offerVars{ID: o.ID, SellerID: o.SellerID, ProductID: o.ProductID, Title: o.Title, Description: o.Description,
		Category: o.Category, PriceMinor: o.PriceMinor, Currency: o.Currency, Stock: o.Stock, Condition: o.Condition,
		Status: o.Status, URL: o.URL, Images: o.Images, Brand: o.Brand, GTIN: o.GTIN, UpdatedAt: o.UpdatedAt,
		Version: o.Version, Price: o.Price}
	if o.Attributes != nil {
		ov.Attributes = map[string]any{}
		for k, x := range o.Attributes {
			ov.Attributes[k] = x
		}
	}
	env := checkEnv{Offer: ov, Now: testNow}
	if s := v.Seller; s != nil {
		env.Seller = &sellerVars{ID: s.ID, Name: s.Name, Country: s.Country, Status: s.Status, SuperSeller: s.SuperSeller, UpdatedAt: s.UpdatedAt, Version: s.Version}
	}
	if r := v.Rating; r != nil {
		env.Rating = &ratingVars{SellerID: r.SellerID, Average: r.Average, Count: r.Count, PositivePct: r.PositivePct, UpdatedAt: r.UpdatedAt, Version: r.Version}
	}
	return env
}

// sameValue compares treating a *string as what it points to (or nil).
func sameValue(a, b any) bool {
	norm := func(x any) any {
		if p, ok := x.(*string); ok {
			if p == nil {
				return nil
			}
			return *p
		}
		return x
	}
	return reflect.DeepEqual(norm(a), norm(b))
}
