package feeds

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/internal/synth"
)

// Shared pools: constants in filters and values in offers come from the
// same lists, so equality and bounds are hit exactly.
var (
	genStatuses   = []string{"ACTIVE", "INACTIVE", "DELETED", "", "active"}
	genConditions = []string{"NEW", "USED", "REFURBISHED"}
	genCurrencies = []string{"PLN", "EUR", "JPY", "CZK", "XXX"}
	genCategories = []string{"Electronics/Phones/Smartphones", "Electronics/Phones", "Electronics/Laptops", "Electronics",
		"Home/Kitchen/Knives", "Home", "Toys", "", "Élec/\x00<&]]>", "Electronics/Phones/Smartphones/Refurb"}
	genPrefixes = []string{"Electronics", "Electronics/", "Electronics/Phones", "Electronics/Phones/Smartphones", "E", "",
		"Home/Kitchen", "Home", "Toys", "Élec", "Electronics/Laptop", "Z"}
	genBrands     = []string{"Apple", "Samsung", "Xiaomi", "", "apple", "<script>"}
	genSellerSt   = []string{"ACTIVE", "SUSPENDED", ""}
	genCountries  = []string{"PL", "DE", "CZ", ""}
	genColours    = []string{"black", "white", "", "red"}
	genNums       = []string{"0", "1", "5", "50", "129.99", "129", "130", "100.5", "4", "4.0", "4.5", "95", "95.0", "-1", "12999", "0.5", "120", "3"}
	genPriceMinor = []int{0, 1, 50, 5000, 10050, 10049, 12999, 12900, 13000, 400, 450, 9500}
	genAverages   = []float64{0, 3.9, 4, 4.2, 4.5, 5, 95}
)

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func quoteList(r *rand.Rand, xs []string, n int) string {
	parts := make([]string, 0, n)
	for range n {
		parts = append(parts, strconv.Quote(pick(r, xs)))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func numList(r *rand.Rand, n int) string {
	parts := make([]string, 0, n)
	for range n {
		parts = append(parts, pick(r, genNums))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// genAtom returns one leaf condition over all fields and operators,
// including forms the engine runs as opaque programs.
func genAtom(r *rand.Rand) string {
	cmp := func() string { return pick(r, []string{"==", "!=", "<", "<=", ">", ">="}) }
	eq := func() string { return pick(r, []string{"==", "!="}) }
	switch r.IntN(44) {
	case 0:
		return `offer.status ` + eq() + ` ` + strconv.Quote(pick(r, genStatuses))
	case 1:
		return `offer.condition in ` + quoteList(r, genConditions, 1+r.IntN(3))
	case 2:
		return `offer.currency ` + eq() + ` ` + strconv.Quote(pick(r, genCurrencies))
	case 3:
		return `offer.category startsWith ` + strconv.Quote(pick(r, genPrefixes))
	case 4:
		return `offer.category endsWith ` + strconv.Quote(pick(r, []string{"Phones", "s", "", "Knives"}))
	case 5:
		return `offer.title contains ` + strconv.Quote(pick(r, []string{"Phone", "<", "", "x"}))
	case 6:
		return `offer.price ` + cmp() + ` ` + pick(r, genNums)
	case 7:
		return `offer.stock ` + cmp() + ` ` + pick(r, genNums)
	case 8:
		return `offer.price_minor ` + cmp() + ` ` + pick(r, genNums)
	case 9:
		return pick(r, genNums) + ` ` + cmp() + ` offer.price`
	case 10:
		return `offer.brand ` + eq() + ` ` + strconv.Quote(pick(r, genBrands))
	case 11:
		return `offer.brand ` + eq() + ` nil`
	case 12:
		return `(offer.brand ?? "") in ` + quoteList(r, genBrands, 1+r.IntN(3))
	case 13:
		return `offer.brand in ` + quoteList(r, genBrands, 1+r.IntN(3))
	case 14:
		return `offer.gtin ` + eq() + ` nil`
	case 15:
		return `(offer.gtin ?? "none") == "none"`
	case 16:
		return `seller?.status ` + eq() + ` ` + strconv.Quote(pick(r, genSellerSt))
	case 17:
		return `seller.status ` + eq() + ` ` + strconv.Quote(pick(r, genSellerSt))
	case 18:
		return pick(r, []string{`seller?.super_seller`, `seller?.super_seller == true`, `(seller?.super_seller ?? false)`, `seller?.super_seller != false`, `seller.super_seller`})
	case 19:
		return pick(r, []string{`seller == nil`, `seller != nil`, `rating == nil`, `rating != nil`})
	case 20:
		return `seller?.country in ` + quoteList(r, genCountries, 1+r.IntN(3))
	case 21:
		return `(rating?.average ?? 0) ` + cmp() + ` ` + pick(r, genNums)
	case 22:
		return `rating?.average ` + cmp() + ` ` + pick(r, genNums)
	case 23:
		return `rating?.count ` + eq() + ` ` + pick(r, genNums)
	case 24:
		return `(rating?.count ?? 0) ` + cmp() + ` ` + pick(r, genNums)
	case 25:
		return `rating?.count in ` + numList(r, 1+r.IntN(3))
	case 26:
		return `(rating?.positive_pct ?? 0.0) ` + cmp() + ` ` + pick(r, genNums)
	case 27:
		return `rating.count ` + cmp() + ` ` + pick(r, genNums)
	case 28:
		return `offer.attributes["colour"] ` + eq() + ` ` + strconv.Quote(pick(r, genColours))
	case 29:
		return `(offer.attributes["colour"] ?? "") in ` + quoteList(r, genColours, 1+r.IntN(3))
	case 30:
		return `offer.attributes["weight"] ` + eq() + ` nil`
	case 31:
		return `offer.attributes.colour startsWith ` + strconv.Quote(pick(r, []string{"b", "", "w"}))
	case 32:
		return `offer.stock in ` + numList(r, 1+r.IntN(3))
	case 33:
		return `offer.price in ` + numList(r, 1+r.IntN(3))
	case 34:
		return `offer.currency not in ` + quoteList(r, genCurrencies, 1+r.IntN(3))
	case 35:
		return `len(offer.images) ` + cmp() + ` ` + pick(r, []string{"0", "1", "2"})
	case 36:
		return `now - offer.updated_at > duration(` + strconv.Quote(pick(r, []string{"1h", "720h", "2h"})) + `)`
	case 37:
		return `offer.title matches "^Phone"`
	case 38:
		return `offer.stock * 2 > ` + pick(r, genNums)
	case 39:
		return `upper(offer.currency) == "PLN"`
	case 40:
		return pick(r, []string{`offer.attributes["flag"]`, `offer.attributes["colour"]`, `true`, `false`})
	case 41:
		return `(offer.stock > 0 ? seller?.super_seller : rating?.count > 3)`
	case 42:
		return `offer.version ` + cmp() + ` ` + pick(r, genNums)
	}
	return `(seller?.version ?? 0) ` + cmp() + ` ` + pick(r, genNums)
}

// genFilter builds a random boolean expression of atoms.
func genFilter(r *rand.Rand, depth int) string {
	if depth <= 0 || r.IntN(3) == 0 {
		return genAtom(r)
	}
	switch r.IntN(6) {
	case 0, 1, 2:
		return genFilter(r, depth-1) + pick(r, []string{" && ", " and "}) + genFilter(r, depth-1)
	case 3:
		return "(" + genFilter(r, depth-1) + pick(r, []string{" || ", " or "}) + genFilter(r, depth-1) + ")"
	case 4:
		return pick(r, []string{"!", "not "}) + "(" + genFilter(r, depth-1) + ")"
	}
	return "(" + genFilter(r, depth-1) + " && " + genFilter(r, depth-1) + ")"
}

func genFeeds(r *rand.Rand, n int) []config.Feed {
	out := make([]config.Feed, n)
	for i := range out {
		out[i] = config.Feed{ID: fmt.Sprintf("f%d", i), Filter: genFilter(r, 3), Template: "ceneo"}
	}
	return out
}

func optStr(r *rand.Rand, xs []string) *string {
	if r.IntN(3) == 0 {
		return nil
	}
	return strp(pick(r, xs))
}

// genView returns a random View: nil seller and rating, nil brand, hostile
// strings, prices on the filters' bounds.
func genView(r *rand.Rand) *View {
	o := &records.Offer{
		ID:          fmt.Sprintf("o%d", r.IntN(100)),
		SellerID:    "s1",
		ProductID:   optStr(r, []string{"p1", ""}),
		Title:       pick(r, []string{"Phone X", "<b>Phone</b>", "", "x\x00]]>", "Phone"}),
		Category:    pick(r, genCategories),
		PriceMinor:  pick(r, genPriceMinor),
		Currency:    pick(r, genCurrencies),
		Stock:       pick(r, []int{0, 1, 2, 5, -1, 50}),
		Condition:   pick(r, genConditions),
		Status:      pick(r, genStatuses),
		Brand:       optStr(r, genBrands),
		GTIN:        optStr(r, []string{"none", "0194253000000"}),
		UpdatedAt:   testNow.Add(-time.Duration(r.IntN(2000)) * time.Hour),
		Version:     int64(r.IntN(10)),
		Images:      []string{"a", "b", "c"}[:r.IntN(4)],
		Description: "d",
	}
	if r.IntN(4) > 0 {
		o.Attributes = map[string]string{}
		if r.IntN(3) > 0 {
			o.Attributes["colour"] = pick(r, genColours)
		}
		if r.IntN(3) == 0 {
			o.Attributes["flag"] = "yes"
		}
		if r.IntN(3) == 0 {
			o.Attributes["weight"] = "1kg"
		}
	}
	records.DerivePrice(o)
	if r.IntN(8) == 0 {
		o.Price = pick(r, []float64{4, 4.5, 95, 100.5, 129.99, 50})
	}
	v := &View{Offer: o}
	if r.IntN(4) > 0 {
		v.Seller = &records.Seller{ID: "s1", Name: "n", Country: pick(r, genCountries), Status: pick(r, genSellerSt), SuperSeller: r.IntN(2) == 0, Version: int64(r.IntN(6))}
	}
	if r.IntN(4) > 0 {
		v.Rating = &records.Rating{SellerID: "s1", Average: pick(r, genAverages), Count: int64(pick(r, []int{0, 3, 5, 100, 120})), PositivePct: pick(r, genAverages)}
	}
	return v
}

// checkEqual asserts engine == plain for every (view, feed), including
// the run-time error counts.
func checkEqual(t testing.TB, s *Set, fs []config.Feed, views []*View) {
	t.Helper()
	eng, plain := s.NewEvaluator(), s.NewPlainEvaluator()
	got, want := make([]bool, len(fs)), make([]bool, len(fs))
	for vi, v := range views {
		eng.Match(v, testNow, got)
		plain.Match(v, testNow, want)
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("view %d %+v seller=%+v rating=%+v\nfilter %s: engine %v, plain %v", vi, *v.Offer, v.Seller, v.Rating, fs[i].Filter, got[i], want[i])
			}
		}
		for i := range fs {
			if a, b := eng.FilterErrors()[i], plain.FilterErrors()[i]; a != b {
				t.Fatalf("view %d filter %s: engine errors %d, plain %d", vi, fs[i].Filter, a, b)
			}
		}
	}
}

// TestEngineEqualsPlain is the property test: random filters from a
// grammar over every field and operator × random offers; the engine must
// agree with running every program, membership and error counts alike.
func TestEngineEqualsPlain(t *testing.T) {
	for seed := range uint64(6) {
		r := rand.New(rand.NewPCG(seed, 42))
		fs := genFeeds(r, 250)
		s := mustCompile(t, fs, nil)
		views := make([]*View, 800)
		for i := range views {
			views[i] = genView(r)
		}
		checkEqual(t, s, fs, views)
	}
}

// TestMatchChangedEqualsPlain: after a random change, MatchChanged from
// the previous membership and DiffFields equals a full evaluation.
func TestMatchChangedEqualsPlain(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	fs := genFeeds(r, 250)
	s := mustCompile(t, fs, nil)
	plain := s.NewPlainEvaluator()
	evs := []*Evaluator{s.NewEvaluator(), s.NewPlainEvaluator()}
	prev, want, got := make([]bool, len(fs)), make([]bool, len(fs)), make([]bool, len(fs))
	for range 1000 {
		old := genView(r)
		nv := mutate(r, old)
		plain.Match(old, testNow, prev)
		plain.Match(nv, testNow, want)
		changed := DiffFields(old, nv)
		for k, e := range evs {
			e.MatchChanged(nv, testNow, changed, prev, got)
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("evaluator %d: changed %v filter %s: got %v, want %v", k, changed.AppendNames(nil), fs[i].Filter, got[i], want[i])
				}
			}
		}
	}
}

// mutate copies v and changes one to three of its parts.
func mutate(r *rand.Rand, v *View) *View {
	n := genView(r)
	o := *v.Offer
	out := &View{Offer: &o, Seller: v.Seller, Rating: v.Rating}
	for range 1 + r.IntN(3) {
		switch r.IntN(12) {
		case 0:
			out.Seller = n.Seller
		case 1:
			out.Rating = n.Rating
		case 2:
			o.Category = n.Offer.Category
		case 3:
			o.PriceMinor, o.Price = n.Offer.PriceMinor, n.Offer.Price
		case 4:
			o.Brand = n.Offer.Brand
		case 5:
			o.Attributes = n.Offer.Attributes
		case 6:
			o.Stock = n.Offer.Stock
		case 7:
			o.Status = n.Offer.Status
		case 8:
			o.UpdatedAt = n.Offer.UpdatedAt
		case 9:
			o.Images = n.Offer.Images
		case 10:
			if out.Seller != nil && n.Seller != nil {
				s := *out.Seller
				s.Status, s.SuperSeller = n.Seller.Status, n.Seller.SuperSeller
				out.Seller = &s
			}
		default:
			o.Title = n.Offer.Title
		}
	}
	return out
}

// TestEngineSynthFeeds checks the realistic feed set against the
// generator's catalog and that it is decomposed as intended.
func TestEngineSynthFeeds(t *testing.T) {
	fs := synth.FeedSet(1300, 1)
	s := mustCompile(t, fs, nil)
	st := s.EngineStats()
	if st.Always > 0 {
		t.Errorf("%d of %d synth feeds have no required atom", st.Always, st.Feeds)
	}
	views := synthViews(t, 1, 3000)
	checkEqual(t, s, fs, views)
}

func synthViews(t testing.TB, seed int64, n int) []*View {
	g, err := synth.New(seed, synth.Options{Offers: n, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	sellers := map[string]*records.Seller{}
	ratings := map[string]*records.Rating{}
	var views []*View
	err = g.Initial(func(c synth.Change) error {
		switch {
		case c.Seller != nil:
			sellers[c.Seller.ID] = c.Seller
		case c.Rating != nil:
			ratings[c.Rating.SellerID] = c.Rating
		case c.Offer != nil:
			views = append(views, &View{Offer: c.Offer, Seller: sellers[c.Offer.SellerID], Rating: ratings[c.Offer.SellerID]})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return views
}

func TestEngineDecomposition(t *testing.T) {
	tests := []struct {
		filter         string
		atoms, opaque  int
		alwaysEvaluate bool
	}{
		{`offer.status == "ACTIVE" && offer.stock > 0 && offer.category startsWith "Electronics/Phones" && seller?.status == "ACTIVE" && (rating?.average ?? 0) >= 4.0`, 5, 0, false},
		{`offer.brand in ["Apple", "Samsung"] || offer.category startsWith "Toys"`, 2, 0, false},
		{`now - offer.updated_at > duration("720h")`, 1, 1, true},
		{`!(offer.status == "ACTIVE")`, 1, 0, true},
		{`seller.status == "ACTIVE" && offer.category startsWith "Toys"`, 2, 0, true},
		{`seller?.status == "ACTIVE" && offer.category startsWith "Toys"`, 2, 0, false},
		{`len(offer.images) > 1 && offer.category startsWith "Toys"`, 2, 1, true},
	}
	for _, tc := range tests {
		t.Run(tc.filter, func(t *testing.T) {
			s := mustCompile(t, []config.Feed{{ID: "f", Filter: tc.filter, Template: "ceneo"}}, nil)
			st := s.EngineStats()
			if st.Atoms != tc.atoms || st.Opaque != tc.opaque || (st.Always == 1) != tc.alwaysEvaluate {
				t.Errorf("stats %+v, want atoms %d opaque %d always %v", st, tc.atoms, tc.opaque, tc.alwaysEvaluate)
			}
		})
	}
}

func TestEngineSharesAtoms(t *testing.T) {
	fs := []config.Feed{
		{ID: "a", Filter: `offer.status == "ACTIVE" && offer.category startsWith "Toys"`, Template: "ceneo"},
		{ID: "b", Filter: `offer.status == "ACTIVE" && offer.category startsWith "Toys/Lego"`, Template: "ceneo"},
		{ID: "c", Filter: `offer.category startsWith "Toys" and offer.status == "ACTIVE"`, Template: "ceneo"},
	}
	s := mustCompile(t, fs, nil)
	if got := s.EngineStats().Atoms; got != 3 {
		t.Errorf("atoms %d, want 3", got)
	}
}

// TestFieldMasks: the fields a filter reads, and what a built-in template
// renders: a change of any other field leaves the fingerprint alone.
func TestFieldMasks(t *testing.T) {
	s := mustCompile(t, []config.Feed{
		{ID: "a", Filter: `offer.status == "ACTIVE" && (rating?.average ?? 0) > 4`, Template: "google-merchant"},
		{ID: "b", Filter: `now - offer.updated_at > duration("1h")`, Template: "meta-catalog"},
		{ID: "c", Filter: `seller == nil`, Template: "ceneo"},
	}, nil)
	want := []FieldMask{FieldOfferStatus | FieldRatingAverage, FieldNow | FieldOfferUpdatedAt, FieldSellerID}
	for i, f := range s.Feeds() {
		if f.FilterFields() != want[i] {
			t.Errorf("feed %s reads %v, want %v", f.ID, f.FilterFields().AppendNames(nil), want[i].AppendNames(nil))
		}
	}
	aff := s.Affected(FieldOfferVersion|FieldRatingCount, nil)
	if aff[0] || !aff[1] || aff[2] {
		t.Errorf("affected by version/count: %v, want [false true false]", aff)
	}
	aff = s.Affected(FieldOfferTitle, aff)
	if !aff[0] || !aff[1] || !aff[2] {
		t.Errorf("affected by title: %v, want all", aff)
	}

	e := s.NewEvaluator()
	r := rand.New(rand.NewPCG(3, 3))
	for range 500 {
		old := genView(r)
		nv := mutate(r, old)
		nv.Offer.Version++
		nv.Offer.UpdatedAt = nv.Offer.UpdatedAt.Add(time.Minute)
		changed := DiffFields(old, nv)
		for _, tm := range s.Templates() {
			if changed&tm.RenderFields() != 0 {
				continue
			}
			if a, b := e.Fingerprint(tm, old, testNow), e.Fingerprint(tm, nv, testNow); a != b {
				t.Fatalf("template %s: fingerprint changed for %v outside its render fields", tm.ID, changed.AppendNames(nil))
			}
		}
	}
}

func TestFieldNames(t *testing.T) {
	all := FieldsAll.AppendNames(nil)
	// now keeps its bit when fields are appended after it (TestFieldLayout).
	if len(all) != numFields || all[0] != "offer.id" || FieldNow.AppendNames(nil)[0] != "now" {
		t.Fatalf("names %v", all)
	}
	for i, n := range all {
		if m, ok := FieldByName(n); !ok || m != 1<<i {
			t.Errorf("FieldByName(%q) = %v, %v", n, m, ok)
		}
	}
	// The bits follow the env's slot order (the usage bits).
	u := usage{offer: uOfferPrice, seller: uSellerVersion, rating: uRatingSellerID, now: true}
	if got := u.mask(); got != FieldOfferPrice|FieldSellerVersion|FieldRatingSellerID|FieldNow {
		t.Errorf("usage mask %v", got.AppendNames(nil))
	}
}

func TestEngineMatchAllocs(t *testing.T) {
	fs := synth.FeedSet(1300, 1)
	s := mustCompile(t, fs, nil)
	views := synthViews(t, 1, 200)
	e := s.NewEvaluator()
	member := make([]bool, len(fs))
	i := 0
	allocs := testing.AllocsPerRun(200, func() {
		e.Match(views[i%len(views)], testNow, member)
		i++
	})
	// Opaque atoms box the leaves they read once per call; nothing per feed.
	if allocs > 8 {
		t.Errorf("Match over %d feeds: %v allocs, want at most 8", len(fs), allocs)
	}
}

// FuzzMatch compiles a fuzzed filter and compares the engine with plain
// evaluation on random views.
func FuzzMatch(f *testing.F) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		f.Add(genFilter(r, 3), uint64(r.IntN(1000)))
	}
	f.Add(`offer.status == "ACTIVE" && offer.category startsWith "Electronics/Phones" && seller?.status == "ACTIVE" && (rating?.average ?? 0) >= 4.0`, uint64(1))
	f.Fuzz(func(t *testing.T, filter string, seed uint64) {
		fs := []config.Feed{{ID: "f", Filter: filter, Template: "ceneo"}, {ID: "g", Filter: `offer.category startsWith "E" || (` + filter + `)`, Template: "ceneo"}}
		s, err := Compile(fs, nil)
		if err != nil {
			return
		}
		r := rand.New(rand.NewPCG(seed, 9))
		views := make([]*View, 50)
		for i := range views {
			views[i] = genView(r)
		}
		checkEqual(t, s, fs, views)
	})
}

// TestEngineGenerationWrap: results stay right across the wrap of the
// per-offer generation counter (memoised atoms and candidates of the
// last generations must not be taken for the new ones).
func TestEngineGenerationWrap(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	fs := genFeeds(r, 100)
	s := mustCompile(t, fs, nil)
	views := make([]*View, 50)
	for i := range views {
		views[i] = genView(r)
	}
	e, plain := s.NewEvaluator(), s.NewPlainEvaluator()
	got, want := make([]bool, len(fs)), make([]bool, len(fs))
	e.run.gen = maxGen - 20
	for i, v := range views {
		e.Match(v, testNow, got)
		plain.Match(v, testNow, want)
		for j := range got {
			if got[j] != want[j] {
				t.Fatalf("view %d (generation %d) feed %d: engine %v, plain %v", i, e.run.gen, j, got[j], want[j])
			}
		}
	}
	if e.run.gen > maxGen || e.run.gen >= 50 {
		t.Fatalf("generation %d did not wrap", e.run.gen)
	}
}
