package feeds

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/internal/synth"
)

func TestMatch(t *testing.T) {
	const phones = `offer.status == "ACTIVE" && offer.stock > 0 && offer.category startsWith "Electronics/Phones" && seller?.status == "ACTIVE" && (rating?.average ?? 0) >= 4.0`
	tests := []struct {
		name   string
		filter string
		edit   func(v *View)
		want   bool
		errs   uint64 // run-time errors expected
	}{
		{"phones all good", phones, nil, true, 0},
		{"phones inactive", phones, func(v *View) { v.Offer.Status = "INACTIVE" }, false, 0},
		{"phones no stock", phones, func(v *View) { v.Offer.Stock = 0 }, false, 0},
		{"phones other category", phones, func(v *View) { v.Offer.Category = "Electronics/Laptops" }, false, 0},
		{"phones nil seller", phones, func(v *View) { v.Seller = nil }, false, 0},
		{"phones suspended seller", phones, func(v *View) { v.Seller.Status = "SUSPENDED" }, false, 0},
		{"phones nil rating", phones, func(v *View) { v.Rating = nil }, false, 0},
		{"phones low rating", phones, func(v *View) { v.Rating.Average = 3.9 }, false, 0},
		{"price float below", `offer.price < 100.5`, func(v *View) { v.Offer.PriceMinor = 10049; records.DerivePrice(v.Offer) }, true, 0},
		{"price float equal", `offer.price < 100.5`, func(v *View) { v.Offer.PriceMinor = 10050; records.DerivePrice(v.Offer) }, false, 0},
		{"price JPY", `offer.price == 12999.0`, func(v *View) { v.Offer.Currency = "JPY"; records.DerivePrice(v.Offer) }, true, 0},
		{"brand in list", `offer.brand in ["Apple","Samsung"]`, nil, true, 0},
		{"brand not in list", `offer.brand in ["Apple","Samsung"]`, func(v *View) { v.Offer.Brand = strp("Nokia") }, false, 0},
		{"nil brand in list", `offer.brand in ["Apple","Samsung"]`, func(v *View) { v.Offer.Brand = nil }, false, 0},
		{"brand equals", `offer.brand == "Apple"`, nil, true, 0},
		{"nil brand equals", `offer.brand == "Apple"`, func(v *View) { v.Offer.Brand = nil }, false, 0},
		{"nil brand is nil", `offer.brand == nil`, func(v *View) { v.Offer.Brand = nil }, true, 0},
		{"brand not nil", `offer.brand != nil`, nil, true, 0},
		{"gtin ?? fallback", `(offer.gtin ?? "none") == "none"`, func(v *View) { v.Offer.GTIN = nil }, true, 0},
		{"attr present", `offer.attributes["colour"] == "black"`, nil, true, 0},
		{"attr missing == nil", `offer.attributes["weight"] == nil`, nil, true, 0},
		{"attr present != nil", `offer.attributes["colour"] != nil`, nil, true, 0},
		{"attr missing ?? default", `(offer.attributes["weight"] ?? "") == ""`, nil, true, 0},
		{"attr present ?? default", `(offer.attributes["colour"] ?? "") == "black"`, nil, true, 0},
		{"attr missing compare", `offer.attributes["weight"] == "1kg"`, nil, false, 0},
		{"attr empty value not nil", `offer.attributes["empty"] == nil`, func(v *View) { v.Offer.Attributes["empty"] = "" }, false, 0},
		{"attr nil map", `offer.attributes["colour"] == nil`, func(v *View) { v.Offer.Attributes = nil }, true, 0},
		{"stale", `now - offer.updated_at > duration("720h")`, func(v *View) { v.Offer.UpdatedAt = testNow.Add(-31 * 24 * time.Hour) }, true, 0},
		{"fresh", `now - offer.updated_at > duration("720h")`, nil, false, 0},
		{"seller nil", `seller == nil`, func(v *View) { v.Seller = nil }, true, 0},
		{"seller known", `seller == nil`, nil, false, 0},
		{"rating not nil", `rating != nil && rating.count > 100`, nil, true, 0},
		{"images", `len(offer.images) > 1`, nil, true, 0},
		{"one image", `len(offer.images) > 1`, func(v *View) { v.Offer.Images = v.Offer.Images[:1] }, false, 0},
		{"super seller", `seller?.super_seller ?? false`, nil, false, 0},
		{"matches const", `offer.title matches "^Phone X"`, nil, true, 0},
		{"product_id nil", `offer.product_id == nil`, nil, true, 0},
		{"nil dereference is an error", `seller.status == "ACTIVE"`, func(v *View) { v.Seller = nil }, false, 1},
		{"attr missing startsWith", `offer.attributes["weight"] startsWith "1"`, nil, false, 0},
		{"seller status != with nil seller", `seller?.status != "SUSPENDED"`, func(v *View) { v.Seller = nil }, true, 0},
		{"seller country with nil seller", `seller?.country == "PL"`, func(v *View) { v.Seller = nil }, false, 0},
		{"rating count with nil rating", `rating?.count == 120`, func(v *View) { v.Rating = nil }, false, 0},
		{"rating count", `rating?.count == 120`, nil, true, 0},
		{"bool chain as filter, nil", `seller?.super_seller`, func(v *View) { v.Seller = nil }, false, 0},
		{"bool chain as filter", `seller?.super_seller`, func(v *View) { v.Seller.SuperSeller = true }, true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := mustCompile(t, []config.Feed{
				{ID: "always", Filter: "true", Template: "google-merchant"},
				{ID: "f", Filter: tc.filter, Template: "google-merchant"},
			}, nil)
			v := &View{Offer: testOffer(), Seller: testSeller(), Rating: testRating()}
			if tc.edit != nil {
				tc.edit(v)
			}
			e := s.NewEvaluator()
			member := make([]bool, 2)
			e.Match(v, testNow, member)
			if !member[0] {
				t.Errorf("feed always: false")
			}
			if member[1] != tc.want {
				t.Errorf("%s = %v, want %v", tc.filter, member[1], tc.want)
			}
			if got := e.FilterErrors()[1]; got != tc.errs {
				t.Errorf("filter errors %d, want %d", got, tc.errs)
			}
		})
	}
}

// TestMatchReusesEnvironment checks that one Evaluator gives the same
// answers for a sequence of different views as fresh Evaluators do (no
// stale boxed field leaks from one View to the next).
func TestMatchReusesEnvironment(t *testing.T) {
	s := mustCompile(t, []config.Feed{
		{ID: "a", Filter: `offer.attributes["colour"] == nil`, Template: "ceneo"},
		{ID: "b", Filter: `seller?.name == "Good Shop"`, Template: "ceneo"},
		{ID: "c", Filter: `(rating?.average ?? 0) > 4`, Template: "ceneo"},
	}, nil)
	views := []*View{
		{Offer: testOffer(), Seller: testSeller(), Rating: testRating()},
		{Offer: &records.Offer{ID: "x"}},
		{Offer: testOffer(), Seller: &records.Seller{Name: "Other"}},
		{Offer: &records.Offer{ID: "y", Attributes: map[string]string{"size": "L"}}, Rating: &records.Rating{Average: 5}},
	}
	shared := s.NewEvaluator()
	got, want := make([]bool, 3), make([]bool, 3)
	for i, v := range views {
		shared.Match(v, testNow, got)
		s.NewEvaluator().Match(v, testNow, want)
		for j := range got {
			if got[j] != want[j] {
				t.Errorf("view %d feed %d: reused %v, fresh %v", i, j, got[j], want[j])
			}
		}
	}
}

func TestMatchAllocs(t *testing.T) {
	fs := benchFeeds(300)
	s := mustCompile(t, fs, nil)
	e := s.NewEvaluator()
	v := &View{Offer: testOffer(), Seller: testSeller(), Rating: testRating()}
	member := make([]bool, len(fs))
	e.Match(v, testNow, member)
	allocs := testing.AllocsPerRun(20, func() { e.Match(v, testNow, member) })
	// The fields the filters read are boxed once per call; nothing per feed.
	if allocs > 16 {
		t.Errorf("Match over %d feeds: %v allocs, want at most 16", len(fs), allocs)
	}
}

// checkMatchList asserts that MatchList, with and without member, reports
// exactly the feeds Match sets, in increasing order, after what matched
// already held, for the engine and the plain evaluator alike.
func checkMatchList(t testing.TB, s *Set, views []*View) {
	t.Helper()
	n := len(s.Feeds())
	ref := s.NewEvaluator()
	evs := []*Evaluator{s.NewEvaluator(), s.NewPlainEvaluator()}
	want, member := make([]bool, n), make([]bool, n)
	matched := []int{-7}
	for vi, v := range views {
		ref.Match(v, testNow, want)
		for k, e := range evs {
			for _, m := range [][]bool{nil, member} {
				if m != nil {
					for i := range m {
						m[i] = vi%2 == 0 // stale values must be overwritten
					}
				}
				matched = e.MatchList(v, testNow, m, matched[:1])
				if matched[0] != -7 {
					t.Fatalf("evaluator %d view %d: MatchList overwrote the prefix of matched", k, vi)
				}
				got := matched[1:]
				j := 0
				for i := range n {
					if !want[i] {
						continue
					}
					if j >= len(got) || got[j] != i {
						t.Fatalf("evaluator %d view %d: matched %v, want feed %d at position %d", k, vi, got, i, j)
					}
					j++
				}
				if j != len(got) {
					t.Fatalf("evaluator %d view %d: matched %v has %d extra feeds", k, vi, got, len(got)-j)
				}
				for i := range m {
					if m[i] != want[i] {
						t.Fatalf("evaluator %d view %d: member[%d] = %v, want %v", k, vi, i, m[i], want[i])
					}
				}
			}
		}
	}
	for k, e := range evs {
		for i := range n {
			// each evaluator ran every view twice
			if a, b := e.FilterErrors()[i], 2*ref.FilterErrors()[i]; a != b {
				t.Fatalf("evaluator %d feed %d: %d filter errors, want %d", k, i, a, b)
			}
		}
	}
}

// TestMatchListEqualsMatch checks MatchList against Match over random
// filters and views (errors included) and over the synthetic feed set and
// catalog.
func TestMatchListEqualsMatch(t *testing.T) {
	for seed := range uint64(3) {
		r := rand.New(rand.NewPCG(seed, 11))
		s := mustCompile(t, genFeeds(r, 200), nil)
		views := make([]*View, 400)
		for i := range views {
			views[i] = genView(r)
		}
		checkMatchList(t, s, views)
	}
	s := mustCompile(t, synth.FeedSet(1300, 5), nil)
	checkMatchList(t, s, synthViews(t, 3, 500))
	// Every feed a candidate: longer lists than the insertion sort takes.
	var fs []config.Feed
	for i := range 100 {
		fs = append(fs, config.Feed{ID: fmt.Sprintf("t%d", i), Filter: "true", Template: "ceneo"})
	}
	checkMatchList(t, mustCompile(t, fs, nil), synthViews(t, 3, 5))
}

func TestMatchListAllocs(t *testing.T) {
	s := mustCompile(t, synth.FeedSet(1300, 1), nil)
	views := synthViews(t, 1, 200)
	e := s.NewEvaluator()
	matched := make([]int, 0, 1300)
	i := 0
	allocs := testing.AllocsPerRun(200, func() {
		matched = e.MatchList(views[i%len(views)], testNow, nil, matched[:0])
		i++
	})
	// As Match: opaque atoms box the leaves they read once per call.
	if allocs > 8 {
		t.Errorf("MatchList over 1300 feeds: %v allocs, want at most 8", allocs)
	}
}

// MatchOnly agrees with Match on the feeds it evaluates and leaves the
// others alone.
func TestMatchOnlyEqualsMatch(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 9))
	fs := genFeeds(r, 60)
	set, err := Compile(fs, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev, only := set.NewEvaluator(), set.NewEvaluator()
	n := len(fs)
	want, got := make([]bool, n), make([]bool, n)
	for k := range 300 {
		v := genView(r)
		ev.Match(v, testNow, want)
		var idx []int
		for i := range n {
			got[i] = i%2 == 0 // untouched entries keep this
			if (i+k)%3 == 0 {
				idx = append(idx, i)
			}
		}
		only.MatchOnly(v, testNow, idx, got)
		for i := range n {
			w := i%2 == 0
			if (i+k)%3 == 0 {
				w = want[i]
			}
			if got[i] != w {
				t.Fatalf("view %d feed %d (%s): MatchOnly %v, want %v", k, i, fs[i].Filter, got[i], w)
			}
		}
	}
}
