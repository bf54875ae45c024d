package synth

import (
	"os"
	"reflect"
	"strconv"
	"testing"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
)

func TestFeedSetShape(t *testing.T) {
	fs := FeedSet(1300, 1)
	if len(fs) != 1300 {
		t.Fatalf("%d feeds", len(fs))
	}
	if !reflect.DeepEqual(fs, FeedSet(1300, 1)) {
		t.Fatal("FeedSet is not deterministic")
	}
	ids := map[string]bool{}
	files, templates := 0, map[string]int{}
	for i, f := range fs {
		if f.ID != feedID(i+1) || ids[f.ID] {
			t.Fatalf("feed %d id %q", i, f.ID)
		}
		ids[f.ID] = true
		if f.Filter == "" || len(f.Destinations) == 0 || len(f.Destinations) > 2 {
			t.Fatalf("feed %s: filter %q destinations %v", f.ID, f.Filter, f.Destinations)
		}
		if f.File {
			files++
		}
		templates[f.Template]++
	}
	if files < 200 || files > 330 {
		t.Errorf("%d of 1300 feeds publish a file, want about 20%%", files)
	}
	if len(templates) != 3 {
		t.Errorf("templates %v, want the three built-ins", templates)
	}
	if _, err := feeds.Compile(fs, nil); err != nil {
		t.Fatal(err)
	}
}

func TestExampleFeedsCompile(t *testing.T) {
	fs, ts := ExampleFeeds()
	if _, err := feeds.Compile(fs, ts); err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, f := range fs {
		used[f.Template] = true
	}
	for _, name := range append(feeds.BuiltinTemplates(), ts[0].ID) {
		if !used[name] {
			t.Errorf("no example feed uses template %s", name)
		}
	}
}

// TestFeedSetMatchShare evaluates FeedSet(1300) over a sample of a
// generated catalog: the filters must match a realistic share. Set
// SYNTH_SHARE_OFFERS to evaluate a larger catalog (e.g. 50000).
func TestFeedSetMatchShare(t *testing.T) {
	n := 1500
	if s := os.Getenv("SYNTH_SHARE_OFFERS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatal(err)
		}
	}
	share, perFeedEmpty, matched := matchShare(t, n, FeedSet(1300, 1))
	t.Logf("offers=%d feeds=1300: (offer,feed) match share %.4f, feeds with no member %d, offers in at least one feed %.3f",
		n, share, perFeedEmpty, matched)
	if share < 0.002 || share > 0.05 {
		t.Errorf("match share %.4f outside [0.002, 0.05]", share)
	}
	if matched < 0.3 {
		t.Errorf("only %.3f of offers are in any feed", matched)
	}
}

func matchShare(t *testing.T, offers int, fs []config.Feed) (share float64, emptyFeeds int, inAny float64) {
	t.Helper()
	set, err := feeds.Compile(fs, nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(5, Options{Offers: offers, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	st := g.State()
	ev := set.NewEvaluator()
	member := make([]bool, len(fs))
	perFeed := make([]int, len(fs))
	total, any := 0, 0
	for _, o := range st.Offers {
		v := feeds.View{Offer: o}
		if s, ok := st.Sellers[o.SellerID]; ok {
			v.Seller = s
		}
		if r, ok := st.Ratings[o.SellerID]; ok {
			v.Rating = r
		}
		ev.Match(&v, fixedNow(), member)
		hit := false
		for i, m := range member {
			if m {
				total++
				perFeed[i]++
				hit = true
			}
		}
		if hit {
			any++
		}
	}
	for i, c := range perFeed {
		if c == 0 {
			emptyFeeds++
		}
		if errs := ev.FilterErrors()[i]; errs > 0 {
			t.Errorf("feed %s: %d filter errors", fs[i].ID, errs)
		}
	}
	return float64(total) / float64(len(st.Offers)*len(fs)), emptyFeeds, float64(any) / float64(len(st.Offers))
}
