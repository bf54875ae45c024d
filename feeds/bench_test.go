package feeds

import (
	"fmt"
	"testing"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/internal/synth"
)

// benchFeeds generates n realistic filters: category prefixes × price bands
// × seller and rating conditions × brands.
func benchFeeds(n int) []config.Feed {
	categories := []string{"Electronics/Phones", "Electronics/Laptops", "Home/Kitchen", "Fashion/Shoes", "Toys", "Sports/Bikes", "Books", "Garden/Tools", "Beauty", "Auto/Parts"}
	bands := [][2]float64{{0, 50}, {50, 200}, {200, 1000}, {1000, 100000}}
	sellers := []string{
		`seller?.status == "ACTIVE"`,
		`seller?.status == "ACTIVE" && (seller?.super_seller ?? false)`,
		`seller?.status == "ACTIVE" && (rating?.average ?? 0) >= 4.0`,
		`seller != nil && seller.country == "PL" && (rating?.positive_pct ?? 0) > 95.0`,
	}
	brands := []string{``, ` && offer.brand in ["Apple","Samsung","Xiaomi"]`, ` && offer.gtin != nil`, ` && (offer.attributes["colour"] ?? "") == "black"`}
	templates := BuiltinTemplates()
	out := make([]config.Feed, 0, n)
	for i := 0; len(out) < n; i++ {
		c := categories[i%len(categories)]
		b := bands[(i/len(categories))%len(bands)]
		s := sellers[(i/(len(categories)*len(bands)))%len(sellers)]
		br := brands[(i/(len(categories)*len(bands)*len(sellers)))%len(brands)]
		filter := fmt.Sprintf(`offer.status == "ACTIVE" && offer.stock > 0 && offer.category startsWith %q && offer.price >= %g && offer.price < %g && %s%s`, c, b[0], b[1], s, br)
		out = append(out, config.Feed{
			ID:           fmt.Sprintf("feed-%d", i),
			Filter:       filter,
			Template:     templates[i%len(templates)],
			Destinations: []string{"d"},
		})
	}
	return out
}

func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{10, 1300} {
		b.Run(fmt.Sprintf("feeds=%d", n), func(b *testing.B) {
			fs := benchFeeds(n)
			s := mustCompile(b, fs, nil)
			e := s.NewEvaluator()
			v := &View{Offer: testOffer(), Seller: testSeller(), Rating: testRating()}
			member := make([]bool, n)
			b.ReportAllocs()
			for b.Loop() {
				e.Match(v, testNow, member)
			}
		})
	}
}

func BenchmarkFingerprint(b *testing.B) {
	s := mustCompile(b, []config.Feed{
		{ID: "g", Filter: "true", Template: "google-merchant"},
		{ID: "m", Filter: "true", Template: "meta-catalog"},
		{ID: "c", Filter: "true", Template: "ceneo"},
		{ID: "x", Filter: "true", Template: "partner-x"},
	}, []config.Template{partnerX()})
	v := &View{Offer: testOffer(), Seller: testSeller(), Rating: testRating()}
	for _, t := range s.Templates() {
		b.Run(t.ID, func(b *testing.B) {
			e := s.NewEvaluator()
			b.ReportAllocs()
			for b.Loop() {
				e.Fingerprint(t, v, testNow)
			}
		})
	}
}

// benchMatch measures the per-change cost of Match over synth.FeedSet(n)
// and views of the synthetic catalog (20000 offers), one view per op.
func benchMatch(b *testing.B, plain bool) {
	views := synthViews(b, 1, 20000)
	for _, n := range []int{10, 100, 1300, 5000} {
		b.Run(fmt.Sprintf("feeds=%d", n), func(b *testing.B) {
			s := mustCompile(b, synth.FeedSet(n, 1), nil)
			e := s.NewEvaluator()
			if plain {
				e = s.NewPlainEvaluator()
			}
			member := make([]bool, n)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				e.Match(views[i%len(views)], testNow, member)
				i++
			}
		})
	}
}

func BenchmarkMatchEngine(b *testing.B) { benchMatch(b, false) }

func BenchmarkMatchPlain(b *testing.B) { benchMatch(b, true) }

// passFeeds is the full pass benchmark's feed set: "all-gmc" (every active
// offer) plus synth.FeedSet(n-1, 5).
func passFeeds(n int) []config.Feed {
	fs := []config.Feed{{ID: "all-gmc", Filter: `offer.status == "ACTIVE"`, Template: synth.TemplateGoogle, Destinations: []string{synth.DestinationGMC}, File: true}}
	return append(fs, synth.FeedSet(n-1, 5)...)
}

// BenchmarkPassMatch is the matching part of the full pass per offer:
// Match, then a visit of every matched feed (a loop over all feeds reading
// member); synthetic catalog of 20000 offers, one view per op.
// BenchmarkPassMatchList does the same with MatchList, visiting only the
// matched feeds.
func BenchmarkPassMatch(b *testing.B) { benchPassMatch(b, false) }

func BenchmarkPassMatchList(b *testing.B) { benchPassMatch(b, true) }

func benchPassMatch(b *testing.B, list bool) {
	views := synthViews(b, 1, 20000)
	for _, n := range []int{10, 1300} {
		b.Run(fmt.Sprintf("feeds=%d", n), func(b *testing.B) {
			s := mustCompile(b, passFeeds(n), nil)
			e := s.NewEvaluator()
			member := make([]bool, n)
			matched := make([]int, 0, n)
			visited := 0
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				v := views[i%len(views)]
				if list {
					matched = e.MatchList(v, testNow, nil, matched[:0])
					visited += len(matched)
				} else {
					e.Match(v, testNow, member)
					for f := range member {
						if member[f] {
							visited++
						}
					}
				}
				i++
			}
			b.ReportMetric(float64(visited)/float64(i), "matched/op")
		})
	}
}

// BenchmarkRenderSynth renders one item of each built-in template per op
// over the synthetic catalog (2000 offers).
func BenchmarkRenderSynth(b *testing.B) {
	views := synthViews(b, 1, 2000)
	var fs []config.Feed
	for _, name := range BuiltinTemplates() {
		fs = append(fs, config.Feed{ID: "f-" + name, Filter: "true", Template: name})
	}
	s := mustCompile(b, fs, nil)
	for _, t := range s.Templates() {
		b.Run(t.ID, func(b *testing.B) {
			e := s.NewEvaluator()
			var buf []byte
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				buf = e.AppendItem(buf[:0], t, views[i%len(views)], testNow)
				i++
			}
		})
	}
}
