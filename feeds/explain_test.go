package feeds

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/internal/synth"
)

// describe prints a clause tree compactly: a leaf as T, F, N (nil) or E
// (error) and its source, a group as its operator and its value over
// its operands in brackets; a ~ marks a skipped clause.
func describe(c *Clause) string {
	var b strings.Builder
	var walk func(c *Clause)
	walk = func(c *Clause) {
		if c.Skipped {
			b.WriteByte('~')
		}
		switch {
		case c.Err != nil:
			b.WriteByte('E')
		case c.Nil:
			b.WriteByte('N')
		case c.Value:
			b.WriteByte('T')
		default:
			b.WriteByte('F')
		}
		if c.Op == "" {
			b.WriteString(":" + c.Source)
			return
		}
		b.WriteString(c.Op + "[")
		for i := range c.Clauses {
			if i > 0 {
				b.WriteString(", ")
			}
			walk(&c.Clauses[i])
		}
		b.WriteByte(']')
	}
	walk(c)
	return b.String()
}

// TestExplainClauses: the filter's top-level &&, || and ! are broken into
// clauses with their text as written, values, failures, what the
// evaluation skips and the first failing clause; the verdict is Match's.
func TestExplainClauses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		filter  string
		view    func(v *View)
		want    string // describe(Root)
		match   bool
		failing string // FirstFailing's source; "" for none
		err     string // in Explanation.Err
	}{
		{
			name: "one leaf", filter: `offer.stock > 0`,
			want: "T:offer.stock > 0", match: true,
		},
		{
			name: "one false leaf", filter: ` (offer.stock > 10) `,
			want: "F:offer.stock > 10", failing: "offer.stock > 10",
		},
		{
			name:   "chain of three, the second false",
			filter: `offer.status == "ACTIVE" && offer.stock > 10 && seller?.status == "ACTIVE"`,
			want:   `F&&[T:offer.status == "ACTIVE", F:offer.stock > 10, ~T:seller?.status == "ACTIVE"]`, failing: "offer.stock > 10",
		},
		{
			name:   "nesting",
			filter: `offer.stock > 0 && (offer.currency == "EUR" || (rating?.average ?? 0) >= 4.5)`,
			want:   `T&&[T:offer.stock > 0, T||[F:offer.currency == "EUR", T:(rating?.average ?? 0) >= 4.5]]`, match: true,
		},
		{
			name:   "or stops at the first true",
			filter: `offer.currency == "PLN" or offer.currency == "EUR"`,
			want:   `T||[T:offer.currency == "PLN", ~F:offer.currency == "EUR"]`, match: true,
		},
		{
			name:    "failing alternative of a chain",
			filter:  `offer.stock > 0 && (offer.currency == "EUR" || offer.brand == "Samsung")`,
			want:    `F&&[T:offer.stock > 0, F||[F:offer.currency == "EUR", F:offer.brand == "Samsung"]]`,
			failing: `offer.currency == "EUR" || offer.brand == "Samsung"`,
		},
		{
			name:   "not and words",
			filter: `not (offer.condition == "USED") and !(offer.stock == 0 or offer.price > 1000)`,
			want:   `T&&[T![F:offer.condition == "USED"], T![F||[F:offer.stock == 0, F:offer.price > 1000]]]`, match: true,
		},
		{
			name:   "parenthesised chain joins the chain",
			filter: `(offer.stock > 0 && offer.currency == "PLN") && offer.condition == "NEW"`,
			want:   `T&&[T:offer.stock > 0, T:offer.currency == "PLN", T:offer.condition == "NEW"]`, match: true,
		},
		{
			name:   "chained comparison and not in stay leaves",
			filter: `0 < offer.stock < 10 && offer.currency not in ["EUR", "USD"]`,
			want:   `T&&[T:0 < offer.stock < 10, T:offer.currency not in ["EUR", "USD"]]`, match: true,
		},
		{
			name:   "text as written: unicode, comments, new lines",
			filter: "offer.title != \"Żółw ślimak\" /* not the turtle */\n  &&\n  offer.seller_id == \"seller-1\"",
			want:   "T&&[T:offer.title != \"Żółw ślimak\" /* not the turtle */, T:offer.seller_id == \"seller-1\"]", match: true,
		},
		{
			name:    "run-time failure fails the filter",
			filter:  `offer.stock > 0 && offer.attributes["size"] > 3 && offer.currency == "PLN"`,
			want:    `E&&[T:offer.stock > 0, E:offer.attributes["size"] > 3, ~T:offer.currency == "PLN"]`,
			failing: `offer.attributes["size"] > 3`, err: "size",
		},
		{
			name:   "a failure skipped by && does not count",
			filter: `offer.stock > 100 && offer.attributes["size"] > 3`,
			want:   `F&&[F:offer.stock > 100, ~E:offer.attributes["size"] > 3]`, failing: "offer.stock > 100",
		},
		{
			name:   "nil at the top is false",
			filter: `offer.stock > 0 && offer.attributes["flag"]`,
			want:   `N&&[T:offer.stock > 0, N:offer.attributes["flag"]]`, failing: `offer.attributes["flag"]`,
		},
		{
			name:   "nil before another operand fails",
			filter: `offer.attributes["flag"] && offer.stock > 0`,
			want:   `E&&[N:offer.attributes["flag"], ~T:offer.stock > 0]`, failing: `offer.attributes["flag"]`, err: "nil",
		},
		{
			name:   "a value that is not a boolean fails",
			filter: `offer.stock > 0 && offer.attributes["colour"]`,
			want:   `E&&[T:offer.stock > 0, E:offer.attributes["colour"]]`, failing: `offer.attributes["colour"]`, err: "bool",
		},
		{
			name:   "seller missing",
			filter: `offer.stock > 0 && seller != nil && seller.status == "ACTIVE"`,
			view:   func(v *View) { v.Seller = nil },
			want:   `F&&[T:offer.stock > 0, F:seller != nil, ~E:seller.status == "ACTIVE"]`, failing: "seller != nil",
		},
		{
			name:   "now",
			filter: `now - offer.updated_at < duration("30m") || offer.version > 5`,
			want:   `T||[F:now - offer.updated_at < duration("30m"), T:offer.version > 5]`, match: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set := mustCompile(t, []config.Feed{
				{ID: "other", Filter: "offer.stock > 1", Template: "ceneo"},
				{ID: "f", Filter: tc.filter, Template: "ceneo"},
			}, nil)
			v := &View{Offer: testOffer(), Seller: testSeller(), Rating: testRating()}
			if tc.view != nil {
				tc.view(v)
			}
			f, _ := set.Feed("f")
			x, err := set.NewEvaluator().Explain(f, v, testNow)
			if err != nil {
				t.Fatal(err)
			}
			if got := describe(&x.Root); got != tc.want {
				t.Errorf("clauses\n got %s\nwant %s", got, tc.want)
			}
			member := make([]bool, 2)
			set.NewPlainEvaluator().Match(v, testNow, member)
			if x.Match != tc.match || x.Match != member[1] || x.Root.Holds() != x.Match {
				t.Errorf("Match %v, root holds %v; want %v (Match says %v)", x.Match, x.Root.Holds(), tc.match, member[1])
			}
			var failing string
			if x.FirstFailing != nil {
				failing = x.FirstFailing.Source
			}
			if failing != tc.failing {
				t.Errorf("first failing %q, want %q", failing, tc.failing)
			}
			switch {
			case tc.err == "" && x.Err != nil:
				t.Errorf("Err %v, want none", x.Err)
			case tc.err != "" && (x.Err == nil || !strings.Contains(x.Err.Error(), tc.err)):
				t.Errorf("Err %v, want one containing %q", x.Err, tc.err)
			}
			if x.Filter != tc.filter || x.FeedID != "f" {
				t.Errorf("feed %q filter %q", x.FeedID, x.Filter)
			}
			if x.Match != (len(x.Item) > 0) {
				t.Errorf("item %q for Match %v", x.Item, x.Match)
			}
			if x.Group != nil {
				t.Errorf("group %+v for a feed without one", x.Group)
			}
		})
	}
}

// TestExplainItemAndGroup: a matching offer's rendered item is
// AppendItem's; a grouped feed gets its key and value, matching or not,
// and its failures.
func TestExplainItemAndGroup(t *testing.T) {
	set := mustCompile(t, []config.Feed{
		{ID: "cheapest", Filter: `offer.stock > 0`, Template: "google-merchant",
			Group: &config.Group{By: "offer.product_id", Pick: config.PickMin, Of: "offer.price"}},
		{ID: "by-size", Filter: `offer.stock > 100`, Template: "ceneo",
			Group: &config.Group{By: `offer.attributes["size"]`, Pick: config.PickMax, Of: "offer.updated_at"}},
		{ID: "bad-key", Filter: `true`, Template: "ceneo",
			Group: &config.Group{By: `offer.attributes["size"] + 1`, Pick: config.PickMax, Of: "offer.price"}},
	}, nil)
	o := testOffer()
	o.ProductID = strp("p-1")
	v := &View{Offer: o, Seller: testSeller(), Rating: testRating()}
	e := set.NewEvaluator()

	f, _ := set.Feed("cheapest")
	x, err := e.Explain(f, v, testNow)
	if err != nil {
		t.Fatal(err)
	}
	want := set.NewEvaluator().AppendItem(nil, f.Template, v, testNow)
	if !x.Match || string(x.Item) != string(want) || x.RenderErr != nil {
		t.Errorf("match %v item %q render error %v, want %q", x.Match, x.Item, x.RenderErr, want)
	}
	if g := x.Group; g == nil || !g.InGroup || g.Key != "p-1" || g.Value.Num != o.Price || g.PickMax || g.Err != nil {
		t.Errorf("group %+v, want p-1 at %v (min)", g, o.Price)
	}

	f, _ = set.Feed("by-size")
	x, _ = e.Explain(f, v, testNow)
	if x.Match || x.Item != nil {
		t.Errorf("match %v item %q, want no match", x.Match, x.Item)
	}
	if g := x.Group; g == nil || !g.InGroup || g.Key != "6.1" || !g.Value.IsTime || !g.Value.Time.Equal(o.UpdatedAt) || !g.PickMax {
		t.Errorf("group %+v, want 6.1 at %v (max)", g, o.UpdatedAt)
	}

	f, _ = set.Feed("bad-key")
	x, _ = e.Explain(f, v, testNow)
	if g := x.Group; g == nil || g.InGroup || g.Err == nil {
		t.Errorf("group %+v, want a failure", g)
	}

	other := mustCompile(t, []config.Feed{{ID: "cheapest", Filter: "true", Template: "ceneo"}}, nil)
	if _, err := e.Explain(other.Feeds()[0], v, testNow); !errors.Is(err, ErrForeignFeed) {
		t.Errorf("feed of another set: %v, want ErrForeignFeed", err)
	}
}

// TestExplainRenderError: a custom template value failing at run time is
// reported with the item (the element omitted).
func TestExplainRenderError(t *testing.T) {
	set := mustCompile(t, []config.Feed{{ID: "f", Filter: "true", Template: "t"}}, []config.Template{{
		ID: "t", Root: "items", Item: "item",
		Fields: []config.TemplateField{{Name: "id", Value: "offer.id"}, {Name: "size", Value: `offer.attributes["size"] * 2`}},
	}})
	v := &View{Offer: testOffer()}
	x, err := set.NewEvaluator().Explain(set.Feeds()[0], v, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if !x.Match || !strings.Contains(string(x.Item), "<id>offer-1</id>") || x.RenderErr == nil {
		t.Errorf("item %q render error %v, want the item and a failure", x.Item, x.RenderErr)
	}
}

// TestExplainEqualsMatch is the property test: over synthetic offers
// (the initial catalog and a change stream, joined with their seller and
// rating) and random feed sets (synth.FeedSet's realistic filters and the
// engine tests' grammar of nested and/or/not), Explain's verdict is
// Match's for every feed, and so is the value of its clause tree.
func TestExplainEqualsMatch(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for seed := range int64(2) {
		fs := synth.FeedSet(120, seed)
		realistic := len(fs)
		fs = append(fs, genFeeds(rand.New(rand.NewPCG(uint64(seed), 9)), 120)...)
		for i := range fs {
			fs[i].ID = fmt.Sprintf("feed-%04d", i)
		}
		set := mustCompile(t, fs, nil)
		g, err := synth.New(seed, synth.Options{Offers: 300, Sellers: 20, Now: func() time.Time { return now }, Products: 50})
		if err != nil {
			t.Fatal(err)
		}
		sellers := map[string]*records.Seller{}
		ratings := map[string]*records.Rating{}
		var views []*View
		apply := func(ch synth.Change) error {
			switch {
			case ch.Seller != nil:
				sellers[ch.Key] = ch.Seller
			case ch.Rating != nil:
				ratings[ch.Key] = ch.Rating
			case ch.Offer != nil:
				views = append(views, &View{Offer: ch.Offer})
			}
			return nil
		}
		if err := g.Initial(apply); err != nil {
			t.Fatal(err)
		}
		for range 300 {
			_ = apply(g.Next()) // apply returns no error
		}
		// Explain compiles its clauses on every call: each offer is
		// explained for ten feeds at random.
		r := rand.New(rand.NewPCG(uint64(seed), 10))
		ex, plain, eng := set.NewEvaluator(), set.NewPlainEvaluator(), set.NewEvaluator()
		want, got := make([]bool, len(fs)), make([]bool, len(fs))
		matched := 0
		for _, v := range views {
			v.Seller, v.Rating = sellers[v.Offer.SellerID], ratings[v.Offer.SellerID]
			plain.Match(v, now, want)
			eng.Match(v, now, got)
			for i, f := range set.Feeds() {
				if r.IntN(len(fs)) >= 10 {
					continue
				}
				if want[i] {
					matched++
				}
				x, err := ex.Explain(f, v, now)
				if err != nil {
					t.Fatal(err)
				}
				if x.Match != want[i] || x.Match != got[i] {
					t.Fatalf("offer %s feed %s (%s): Explain %v, plain Match %v, Match %v", v.Offer.ID, f.ID, fs[i].Filter, x.Match, want[i], got[i])
				}
				if x.Root.Holds() != x.Match {
					t.Fatalf("offer %s feed %s (%s): clauses %s, Match %v", v.Offer.ID, f.ID, fs[i].Filter, describe(&x.Root), x.Match)
				}
				checkLeaves(t, &x.Root, fs[i].Filter, i < realistic)
			}
		}
		if matched < 100 {
			t.Errorf("seed %d: %d matching (offer, feed) pairs explained: too few to test", seed, matched)
		}
	}
}

// checkLeaves: every leaf's text is the filter's; synth.FeedSet's
// filters join their conditions with top-level && only, so each one is
// a leaf of one chain.
func checkLeaves(t *testing.T, root *Clause, filter string, realistic bool) {
	t.Helper()
	leaves := 0
	var walk func(c *Clause)
	walk = func(c *Clause) {
		if c.Op != "" {
			for i := range c.Clauses {
				walk(&c.Clauses[i])
			}
			return
		}
		leaves++
		if c.Source == "" || !strings.Contains(filter, c.Source) {
			t.Fatalf("filter %s: leaf %q is not its text", filter, c.Source)
		}
	}
	walk(root)
	if want := strings.Count(filter, "&&") + strings.Count(filter, "||") + 1; realistic && leaves != want {
		t.Fatalf("filter %s: %d leaves (%s), want %d", filter, leaves, describe(root), want)
	}
}
