package feeds

import (
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"

	"github.com/feedmill/feedmill/config"
)

// The two runaway filters of the fault review (issue 8, item 4).
const (
	runawayReduce = `reduce(1..2000, #acc + offer.description, "") != ""`
	runawayNested = `any(offer.images, {any(offer.images, {# == "x"})})`
)

func TestLimitsRejectRunaway(t *testing.T) {
	tests := []struct {
		name   string
		filter string
		want   string // the whole problem message
	}{
		{"reduce over a large range", runawayReduce,
			`line 1, column 9: range 1..2000 has 2000 elements, more than 100; or set unbounded: true on feed "f"`},
		{"nested any over images", runawayNested,
			`line 1, column 20: nested loop over record data: any() inside the predicate of any() costs the product of both sizes; loop once, or over a constant list; or set unbounded: true on feed "f"`},
		{"non-constant range", `any(1..len(offer.images), {# > 3})`,
			`line 1, column 6: range 1..len(offer.images): bounds must be integer constants (a range is built per record); or set unbounded: true on feed "f"`},
		{"string building in reduce", `reduce(offer.images, #acc + #, "") != ""`,
			`line 1, column 27: string building inside the predicate of reduce(): #acc + # allocates a new string per iteration; build strings outside reduce(); or set unbounded: true on feed "f"`},
		{"string building in map", `len(map(offer.images, {offer.description + #})) > 0`,
			`line 1, column 42: string building inside the predicate of map(): offer.description + # allocates a new string per iteration; build strings outside map(); or set unbounded: true on feed "f"`},
		{"nested filter over a let variable", "let imgs = offer.images;\ncount(imgs, {# in imgs}) > 1",
			`line 2, column 16: nested loop over record data: "in" on a list inside the predicate of count() costs the product of both sizes; loop once, or compare with a constant list; or set unbounded: true on feed "f"`},
		{"nested scan builtin", `all(offer.images, {len(join(offer.images)) > 0})`,
			`line 1, column 24: nested loop over record data: join() inside the predicate of all() costs the product of both sizes; loop once, or over a constant list; or set unbounded: true on feed "f"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile([]config.Feed{{ID: "f", Filter: tc.filter, Template: "ceneo"}}, nil)
			var ce *CompileError
			if !errors.As(err, &ce) || len(ce.Problems) != 1 {
				t.Fatalf("error %v, want one problem", err)
			}
			want := Problem{Path: "feeds[0] (f).filter", Message: tc.want}
			if ce.Problems[0] != want {
				t.Errorf("problem\n got  %s: %s\n want %s: %s", ce.Problems[0].Path, ce.Problems[0].Message, want.Path, want.Message)
			}
			// The opt-in accepts it.
			if _, err := Compile([]config.Feed{{ID: "f", Filter: tc.filter, Template: "ceneo", Unbounded: true}}, nil); err != nil {
				t.Errorf("with unbounded: %v", err)
			}
		})
	}
}

func TestLimitsAllowBounded(t *testing.T) {
	for _, filter := range []string{
		`any(offer.images, {# startsWith "https"})`,
		`any(offer.images, {any(["a", "b"], {# == "a"})})`,
		`any(offer.images, {# in ["a", "b"]})`,
		`all(1..5, {# > 0}) && all(-2..2, {# < 3})`,
		`reduce(offer.images, #acc + 1, 0) > 1`,
		`let xs = ["a", "b"]; any(offer.images, {any(xs, {# == "a"})})`,
		`count(filter(offer.images, {# != ""}), {# endsWith ".jpg"}) > 0`,
		`len(map(filter(offer.images, {# != ""}), {len(#)})) > 0`,
		`any(["Apple", "Samsung"], {any(offer.images, {# contains "x"})}) || true`,
	} {
		if _, err := Compile([]config.Feed{{ID: "f", Filter: filter, Template: "ceneo"}}, nil); err != nil {
			t.Errorf("%s: %v", filter, err)
		}
	}
}

func TestLimitsTemplateValue(t *testing.T) {
	tmpl := config.Template{ID: "px", Root: "r", Item: "i", Fields: []config.TemplateField{
		{Name: "all", Value: `reduce(offer.images, #acc + # + " ", "")`},
	}}
	feeds := []config.Feed{
		{ID: "a", Filter: "true", Template: "px", Unbounded: true},
		{ID: "b", Filter: "true", Template: "px"},
	}
	_, err := Compile(feeds, []config.Template{tmpl})
	var ce *CompileError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v, want *CompileError", err)
	}
	p := ce.Problems[0] // then the feeds' unknown template
	if p.Path != "templates[0] (px).fields[0] (all).value" ||
		!strings.HasPrefix(p.Message, "line 1, column 27: string building inside the predicate of reduce()") ||
		!strings.HasSuffix(p.Message, `; or set unbounded: true on every feed using template "px"`) {
		t.Errorf("problem %s: %s", p.Path, p.Message)
	}
	feeds[1].Unbounded = true
	if _, err := Compile(feeds, []config.Template{tmpl}); err != nil {
		t.Errorf("every feed unbounded: %v", err)
	}
}

// runawayView is an offer that makes the runaway filters expensive: a
// 100 KB description (the reduce builds 2000 copies of it: 200 GB) and
// 3000 images (the nested any runs 9 million predicates).
func runawayView() *View {
	o := testOffer()
	o.Description = strings.Repeat("d", 100_000)
	o.Images = make([]string, 3000)
	for i := range o.Images {
		o.Images[i] = "https://img.example/" + strings.Repeat("i", i%7)
	}
	return &View{Offer: o, Seller: testSeller(), Rating: testRating()}
}

func TestBudgetStopsRunaway(t *testing.T) {
	for _, filter := range []string{runawayReduce, runawayNested} {
		for _, plain := range []bool{false, true} {
			s := mustCompile(t, []config.Feed{
				{ID: "ok", Filter: `offer.status == "ACTIVE"`, Template: "ceneo"},
				{ID: "runaway", Filter: filter, Template: "ceneo", Unbounded: true},
			}, nil)
			e := s.NewEvaluator()
			if plain {
				e = s.NewPlainEvaluator()
			}
			v := runawayView()
			member := make([]bool, 2)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			e.Match(v, testNow, member)
			runtime.ReadMemStats(&after)
			if !member[0] || member[1] {
				t.Errorf("%s (plain %v): members %v, want [true false]", filter, plain, member)
			}
			// Bounded work: the run stopped at the budget, not at the end.
			if e.budget.steps > maxEvalSteps+1 || e.budget.bytes > 2*maxEvalBytes {
				t.Errorf("%s: ran %d steps, %d bytes; budget %d, %d", filter, e.budget.steps, e.budget.bytes, maxEvalSteps, maxEvalBytes)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
				t.Errorf("%s: allocated %d bytes", filter, alloc)
			}
			want := [NumErrorKinds]uint64{KindBudget: 1}
			if got := e.FeedErrors(1); got != want {
				t.Errorf("%s (plain %v): FeedErrors %v, want %v", filter, plain, got, want)
			}
			if got := e.FeedErrors(0); got != ([NumErrorKinds]uint64{}) {
				t.Errorf("feed ok: FeedErrors %v", got)
			}
			le := e.LastError(1)
			if le.Kind != KindBudget || le.OfferID != "offer-1" || !errors.Is(le.Err, ErrBudget) {
				t.Errorf("LastError %+v", le)
			}
			if e.ErrorTotal() != 1 || e.FilterErrors()[1] != 1 {
				t.Errorf("ErrorTotal %d, FilterErrors %v", e.ErrorTotal(), e.FilterErrors())
			}
		}
	}
}

func TestBudgetStopsRunawayTemplate(t *testing.T) {
	tmpl := config.Template{ID: "px", Root: "r", Item: "i", Fields: []config.TemplateField{
		{Name: "id", Value: `offer.id`},
		{Name: "all", Value: `reduce(1..2000, #acc + offer.description, "")`},
	}}
	s := mustCompile(t, []config.Feed{{ID: "a", Filter: "true", Template: "px", Unbounded: true}}, []config.Template{tmpl})
	e := s.NewEvaluator()
	got := string(e.AppendItem(nil, s.Templates()[0], runawayView(), testNow))
	if got != "<i><id>offer-1</id></i>\n" {
		t.Errorf("item %q", got)
	}
	if c := e.FeedErrors(0); c != ([NumErrorKinds]uint64{KindBudget: 1}) {
		t.Errorf("FeedErrors %v", c)
	}
	if le := e.LastError(0); le.Kind != KindBudget || !errors.Is(le.Err, ErrBudget) || e.RenderErrors()[0] != 1 {
		t.Errorf("LastError %+v, RenderErrors %v", le, e.RenderErrors())
	}
}

// A range built at run time is bounded by expr's memory budget.
func TestBudgetBoundsRange(t *testing.T) {
	s := mustCompile(t, []config.Feed{{ID: "r", Filter: `len(1..offer.stock) > 0`, Template: "ceneo", Unbounded: true}}, nil)
	e := s.NewEvaluator()
	v := &View{Offer: testOffer()}
	v.Offer.Stock = 50_000_000
	member := make([]bool, 1)
	e.Match(v, testNow, member)
	if member[0] || e.FeedErrors(0) != ([NumErrorKinds]uint64{KindBudget: 1}) {
		t.Errorf("member %v, FeedErrors %v", member[0], e.FeedErrors(0))
	}
}

func TestFilterAndTemplateErrors(t *testing.T) {
	tmpl := config.Template{ID: "px", Root: "r", Item: "i", Fields: []config.TemplateField{
		{Name: "id", Value: `offer.id`},
		{Name: "size", Value: `int(offer.attributes["size"]) * 2`},
	}}
	s := mustCompile(t, []config.Feed{
		{ID: "big", Filter: `int(offer.attributes["size"]) > 40`, Template: "ceneo"},
		{ID: "px", Filter: `true`, Template: "px"},
	}, []config.Template{tmpl})
	for _, plain := range []bool{false, true} {
		e := s.NewEvaluator()
		if plain {
			e = s.NewPlainEvaluator()
		}
		v := &View{Offer: testOffer()}
		v.Offer.Attributes["size"] = "XL"
		member := make([]bool, 2)
		e.Match(v, testNow, member)
		if member[0] || !member[1] {
			t.Errorf("members %v", member)
		}
		if c := e.FeedErrors(0); c != ([NumErrorKinds]uint64{KindFilter: 1}) {
			t.Errorf("feed big: FeedErrors %v", c)
		}
		le := e.LastError(0)
		if le.Kind != KindFilter || le.OfferID != "offer-1" || le.Err == nil || !strings.Contains(le.Err.Error(), `int(XL)`) {
			t.Errorf("LastError %+v", le)
		}
		if !strings.HasPrefix(le.Error(), "filter error on offer offer-1: ") {
			t.Errorf("Error() %q", le.Error())
		}
		e.AppendItem(nil, s.Feeds()[1].Template, v, testNow)
		if c := e.FeedErrors(1); c != ([NumErrorKinds]uint64{KindTemplate: 1}) {
			t.Errorf("feed px: FeedErrors %v", c)
		}
		if le := e.LastError(1); le.Kind != KindTemplate || le.OfferID != "offer-1" || le.Err == nil {
			t.Errorf("LastError %+v", le)
		}
		if e.ErrorTotal() != 2 {
			t.Errorf("ErrorTotal %d", e.ErrorTotal())
		}
	}
}

// The injected budget calls allocate nothing: a program with them
// allocates what expr allocates for it without them (expr boxes the
// elements of a []string it iterates).
func TestBudgetCallsDoNotAllocate(t *testing.T) {
	e := mustCompile(t, nil, nil).NewEvaluator()
	e.slots.load(usage{offer: allFields}, &View{Offer: testOffer()}, testNow)
	for _, src := range []string{
		`any(offer.images, {# endsWith "2.jpg"})`,
		`count(offer.images, {len(#) > 3}) == 2`,
		`let n = len(offer.images); n > 1`,
		`all(["x", "y"], {# != offer.title})`,
		`len(map(filter(offer.images, {# != ""}), {len(#)})) > 0`,
	} {
		with, err := compileExpr(src, exprOptions(true), limits{enforce: true})
		if err != nil {
			t.Fatal(err)
		}
		if root := with.Node(); !strings.Contains(ast.Dump(root), budgetName) {
			t.Errorf("%s: no budget call injected", src)
		}
		without, err := expr.Compile(src, exprOptions(true)...)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []*vm.Program{with, without} {
			if out, err := e.runProgram(p); out != true || err != nil {
				t.Fatalf("%s: %v, %v", src, out, err)
			}
		}
		a := testing.AllocsPerRun(50, func() { _, _ = e.runProgram(with) })
		b := testing.AllocsPerRun(50, func() { _, _ = e.runProgram(without) })
		if a != b {
			t.Errorf("%s: %v allocs with budget calls, %v without", src, a, b)
		}
	}
}
