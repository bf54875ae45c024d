package feeds

import (
	"slices"
	"strings"
	"testing"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/internal/synth"
)

func TestLint(t *testing.T) {
	type want struct {
		line, column int
		contains     string
	}
	tests := []struct {
		name   string
		filter string
		want   []want // nil: no warning
	}{
		// (a) seller and rating without ?.
		{"seller field", `seller.status == "ACTIVE"`, []want{{1, 1, "seller.status fails when seller is nil"}}},
		{"seller field suggests ?.", `seller.status == "ACTIVE"`, []want{{1, 1, "write seller?.status"}}},
		{"rating field after &&", `offer.stock > 0 && rating.average >= 4`, []want{{1, 20, "rating.average fails when rating is nil"}}},
		{"?? does not make a field read safe", `(rating.average ?? 0) >= 4`, []want{{1, 2, "write rating?.average (with ?? 0"}}},
		{"let alias of seller", `let s = seller; s.status == "x"`, []want{{1, 17, "s.status fails when seller is nil"}}},
		{"second line", "offer.status == \"ACTIVE\" &&\n  seller.country == \"PL\"", []want{{2, 3, "seller.country"}}},
		{"nil-safe", `seller?.status == "ACTIVE" && (rating?.average ?? 0) >= 4.0`, nil},
		{"guarded by != nil", `seller != nil && seller.status != "SUSPENDED"`, nil},
		{"guarded by == nil ||", `seller == nil || seller.status == "ACTIVE"`, nil},
		{"guarded by not", `!(rating == nil) && rating.count > 10`, nil},
		{"guarded by a ?. comparison", `seller?.status == "ACTIVE" && seller.country == "PL"`, nil},
		{"guarded by a ternary", `seller != nil ? seller.status == "ACTIVE" : false`, nil},
		{"guarded by if/else", `if rating == nil { false } else { rating.average > 4 }`, nil},
		{"guarded in the else branch", `rating == nil ? false : rating.average > 4`, nil},
		{"guard inside || does not hold", `(seller != nil || offer.stock > 0) && seller.status == "x"`, []want{{1, 39, "seller.status"}}},
		{"guard on the right of && does not hold on the left", `seller.status == "x" && seller != nil`, []want{{1, 1, "seller.status"}}},

		// (b) conversions of text
		{"int of an attribute", `int(offer.attributes["size"]) > 3`, []want{{1, 1, "int(offer.attributes.size) fails when offer.attributes.size is missing or not a whole number"}}},
		{"float of an attribute", `float(offer.attributes.weight) < 2.5`, []want{{1, 1, "float(offer.attributes.weight) fails"}}},
		{"int of a string field", `int(offer.title) > 3`, []want{{1, 1, "offer.title is not a whole number"}}},
		{"duration of an attribute", `duration(offer.attributes.warranty) > duration("720h")`, []want{{1, 1, "not a duration"}}},
		{"?? does not make it a number", `int(offer.attributes.size ?? "0") > 3`, []want{{1, 1, "int(offer.attributes.size ?? \"0\") fails"}}},
		{"conversion checked by matches", `offer.attributes.size matches "^[0-9]+$" && int(offer.attributes.size) > 3`, nil},
		{"conversion checked by in", `offer.attributes["size"] in ["1", "2"] && int(offer.attributes["size"]) > 1`, nil},
		{"conversion of numbers", `int(offer.price) > 3 && float(offer.stock) > 1.5`, nil},
		{"conversion of a constant", `now - offer.updated_at < duration("720h")`, nil},

		// (c) constant index into a list
		{"index 5", `offer.images[5] != ""`, []want{{1, 13, "offer.images[5] fails when offer.images has fewer than 6 elements"}}},
		{"index 0", `offer.images[0] endsWith ".jpg"`, []want{{1, 13, "use first(offer.images)"}}},
		{"index -1", `offer.images[-1] endsWith ".jpg"`, []want{{1, 13, "use last(offer.images)"}}},
		{"?.[] does not help", `offer.images?.[2] == nil`, []want{{1, 15, "fewer than 3 elements"}}},
		{"index into split", `split(offer.category, "/")[2] == "Phones"`, []want{{1, 27, "fewer than 3 elements"}}},
		{"guard too short", `len(offer.images) > 1 && offer.images[2] != ""`, []want{{1, 38, "offer.images[2]"}}},
		{"guarded by len >", `len(offer.images) > 5 && offer.images[5] != ""`, nil},
		{"guarded by len >=", `len(offer.images) >= 3 && offer.images[2] != "" && offer.images[-3] != ""`, nil},
		{"guarded by reversed len", `2 < len(offer.images) && offer.images[2] != ""`, nil},
		{"guarded by len == 0 ||", `len(offer.images) == 0 || offer.images[0] != ""`, nil},
		{"guarded by first", `first(offer.images) != nil && offer.images[0] endsWith ".jpg"`, nil},
		{"first and last are safe", `first(offer.images) != nil && last(offer.images) != nil`, nil},
		{"slices are safe", `len(offer.images[0:3]) > 1`, nil},

		// (d) nil where nil fails
		{"optional field in lower", `lower(offer.brand) == "apple"`, []want{{1, 1, "offer.brand is nil when it is not set, and lower() fails on nil"}}},
		{"optional chain compared", `rating?.average >= 4`, []want{{1, 17, "rating?.average is nil when the offer's seller has no rating, and >= fails on nil"}}},
		{"optional chain compared suggests ??", `rating?.average >= 4`, []want{{1, 17, "write (rating?.average ?? 0)"}}},
		{"optional bool in &&", `seller?.super_seller && offer.stock > 0`, []want{{1, 9, "write seller?.super_seller == true"}}},
		{"optional bool negated", `!seller?.super_seller`, []want{{1, 10, "the operator ! fails on nil"}}},
		{"attribute compared with a number", `offer.attributes["size"] > 3`, []want{{1, 26, "always fails: attribute values are strings"}}},
		{"attribute compared with a string", `offer.attributes.size > "M"`, []want{{1, 23, "offer.attributes.size is nil when the offer has no such attribute"}}},
		{"optional field concatenated", `offer.brand + " " + offer.title == "x"`, []want{{1, 13, "+ fails on nil"}}},
		{"string of nil", `string(offer.gtin) != ""`, []want{{1, 1, `is "<nil>" when offer.gtin is nil`}}},
		{"len of an attribute", `len(offer.attributes.colour) > 3`, []want{{1, 1, "len() fails on nil"}}},
		{"lower of first", `lower(first(offer.images)) endsWith ".jpg"`, []want{{1, 1, "the list is empty"}}},
		{"modulo by a field", `offer.price_minor % offer.stock == 0`, []want{{1, 19, "fails when offer.stock is 0"}}},
		{"time of an optional chain", `now - seller?.updated_at > duration("1h")`, []want{{1, 5, "check seller?.updated_at != nil first"}}},
		{"nil-safe comparisons", `offer.brand == "Apple" && offer.gtin != nil && offer.attributes.colour == "red" && offer.attributes.size in ["M"]`, nil},
		{"nil-safe string operators", `offer.brand startsWith "A" || offer.attributes.colour contains "re" || offer.brand matches "^A"`, nil},
		{"defaults with ??", `(offer.brand ?? "") in ["Nike"] && lower(offer.brand ?? "") != "x" && (rating?.count ?? 0) >= 100`, nil},
		{"optional bool compared", `seller?.super_seller == true`, nil},
		{"optional bool as the whole filter", `seller?.super_seller`, nil},
		{"guarded optional", `offer.brand != nil && lower(offer.brand) == "apple"`, nil},
		{"guarded chain", `rating != nil && rating?.average >= 4`, nil},
		{"guard by comparison", `rating?.average >= 4 && rating?.count > 10`, []want{{1, 17, "rating?.average is nil"}}},
		{"modulo by a constant", `offer.stock % 2 == 0`, nil},
		{"nil-safe predicate", `all(offer.images, # startsWith "https://") && any(offer.images, len(#) > 3)`, nil},

		{"does not compile: skipped", `seller.nope == 1`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Lint([]config.Feed{{ID: "f", Filter: tc.filter, Template: "google-merchant"}}, nil)
			if len(got) != len(tc.want) {
				t.Fatalf("%s: %d warnings, want %d: %v", tc.filter, len(got), len(tc.want), got)
			}
			for i, w := range tc.want {
				g := got[i]
				if g.Path != "feeds[0] (f).filter" || g.Feed != "f" || g.Template != "" {
					t.Errorf("warning %d: path %q feed %q template %q", i, g.Path, g.Feed, g.Template)
				}
				if g.Line != w.line || g.Column != w.column || !strings.Contains(g.Message, w.contains) {
					t.Errorf("warning %d: %s\nwant %d:%d containing %q", i, g, w.line, w.column, w.contains)
				}
			}
		})
	}
}

func TestLintGroupsAndTemplates(t *testing.T) {
	fs := []config.Feed{
		{ID: "ok", Filter: `offer.stock > 0`, Template: "google-merchant"},
		{ID: "grouped", Filter: `offer.stock > 0`, Template: "partner",
			Group: &config.Group{By: `lower(offer.brand)`, Pick: config.PickMax, Of: `rating.average`}},
	}
	ts := []config.Template{{ID: "partner", Root: "items", Item: "item", Fields: []config.TemplateField{
		{Name: "id", Value: "offer.id"},
		{Name: "image", Value: "offer.images[0]"},
		{Name: "main-image", Value: "first(offer.images)"},
		{Name: "seller", Value: "seller.name"},
		{Name: "safe-seller", Value: "seller?.name"},
		{Name: "colour", Value: "offer.attributes.colour"},
	}}}
	got := Lint(fs, ts)
	var lines []string
	for _, w := range got {
		lines = append(lines, w.Path+" feed="+w.Feed+" template="+w.Template)
	}
	want := []string{
		"feeds[1] (grouped).group.by feed=grouped template=",
		"feeds[1] (grouped).group.of feed=grouped template=",
		"templates[0] (partner).fields[1] (image).value feed= template=partner",
		"templates[0] (partner).fields[3] (seller).value feed= template=partner",
	}
	if !slices.Equal(lines, want) {
		t.Fatalf("warnings:\n%s\nwant:\n%s\n(%v)", strings.Join(lines, "\n"), strings.Join(want, "\n"), got)
	}
	if !strings.Contains(got[0].Message, "in no group") || !strings.Contains(got[2].Message, "element is left out") {
		t.Errorf("consequences: %q, %q", got[0].Message, got[2].Message)
	}
	if s := got[2].String(); s != "templates[0] (partner).fields[1] (image).value:1:13: "+got[2].Message {
		t.Errorf("String() = %q", s)
	}
}

// TestLintExampleFeeds pins what Lint says of the repo's own feeds: the
// synthetic feed sets and example configs are clean, except the
// partner-x template's image (offer.images[0]): an offer without images
// renders without it and counts a template error.
func TestLintExampleFeeds(t *testing.T) {
	for _, seed := range []int64{1, 2, 3} {
		if got := Lint(synth.FeedSet(500, seed), nil); len(got) > 0 {
			t.Errorf("FeedSet(500, %d): %v", seed, got)
		}
	}
	if got := Lint(synth.GroupedFeeds(), nil); len(got) > 0 {
		t.Errorf("GroupedFeeds: %v", got)
	}
	fs, ts := synth.ExampleFeeds()
	got := Lint(fs, ts)
	if len(got) != 1 || got[0].Path != "templates[0] (partner-x).fields[6] (image).value" {
		t.Errorf("ExampleFeeds: %v", got)
	}
	cfg, err := config.Load("../config/testdata/example.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := Lint(cfg.Feeds, cfg.Templates); len(got) > 0 {
		t.Errorf("config/testdata/example.yaml: %v", got)
	}
}

// FuzzLint: Lint never panics, whatever the expression, and reports
// positions inside it.
func FuzzLint(f *testing.F) {
	for _, s := range []string{
		`seller.status == "ACTIVE" && int(offer.attributes.size) > 3`,
		`len(offer.images) > 2 && offer.images[2] != "" || lower(offer.brand) == "x"`,
		`let s = seller; s != nil ? s.status == "x" : rating?.average >= 4`,
		`all(offer.images, # startsWith "https") && split(offer.title, " ")[-1] == "x"`,
		`!seller?.super_seller && offer.stock % offer.stock == 0`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		for _, w := range Lint([]config.Feed{{ID: "f", Filter: src}}, []config.Template{{ID: "t", Fields: []config.TemplateField{{Name: "v", Value: src}}}}) {
			if w.Line < 1 || w.Column < 1 || w.Line > strings.Count(src, "\n")+1 {
				t.Fatalf("%q: bad position %s", src, w)
			}
		}
	})
}
