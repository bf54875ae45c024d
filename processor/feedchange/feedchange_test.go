package feedchange

import (
	"context"
	"slices"
	"testing"

	"go.uber.org/zap"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/processor/feedlog"
)

type fakeStream struct{ sets int }

func (s *fakeStream) SetFeeds(*feeds.Set) error { s.sets++; return nil }
func (s *fakeStream) Align(context.Context, []config.Feed, []config.Template) ([]string, error) {
	return nil, nil
}

func feed(id, filter string) config.Feed {
	return config.Feed{ID: id, Filter: filter, Template: "google-merchant", Destinations: []string{"gmc"}}
}

func inForce(t *testing.T, l *feedlog.Log) map[string]string {
	t.Helper()
	entries, _ := l.Feeds()
	out := map[string]string{}
	for _, e := range entries {
		out[e.Feed.ID] = e.Feed.Filter
	}
	return out
}

// The config file's feeds are proposals: new and changed ones go in
// force, dropped ones are held for removal; a feed the file left as it
// was keeps what the API made of it; the API's removals are held; a
// change beyond the guard is held.
func TestProposals(t *testing.T) {
	ctx := context.Background()
	l := feedlog.NewMemory()
	est := map[string][2]int64{} // feed → next, current
	c := New(Deps{Log: l, Stream: &fakeStream{}, Guard: config.Guard{MaxDrop: 0.2, MaxGrowth: 1, MinSize: 10},
		Estimate: func(_ context.Context, f config.Feed) (int64, int64, error) { return est[f.ID][0], est[f.ID][1], nil },
		Logger:   zap.NewNop()})
	file := []config.Feed{feed("a", "true"), feed("b", "offer.stock > 0")}
	if err := c.ProposeConfig(ctx, file, nil); err != nil {
		t.Fatal(err)
	}
	if got := inForce(t, l); len(got) != 2 {
		t.Fatalf("first start: %v", got)
	}
	// The API narrows b within the guard, and adds c.
	est["b"] = [2]int64{90, 100}
	if res, err := c.Put(ctx, feed("b", "offer.stock > 1"), "api"); err != nil || !res.Applied {
		t.Fatalf("Put b: %+v %v", res, err)
	}
	if res, err := c.Put(ctx, feed("c", "true"), "api"); err != nil || !res.Applied {
		t.Fatalf("Put c: %+v %v", res, err)
	}
	// A restart with the same file keeps the API's b and c.
	if err := c.ProposeConfig(ctx, file, nil); err != nil {
		t.Fatal(err)
	}
	if got := inForce(t, l); got["b"] != "offer.stock > 1" || got["c"] != "true" {
		t.Fatalf("after a restart with the file unchanged: %v", got)
	}
	// A change beyond the guard is held, and waits.
	est["b"] = [2]int64{10, 100}
	res, err := c.Put(ctx, feed("b", "offer.stock > 400"), "api")
	if err != nil || res.Applied || res.Held == nil || res.Held.Kind != feedlog.KindChange {
		t.Fatalf("Put b beyond the guard: %+v %v", res, err)
	}
	// The file drops a: held for removal, still in force.
	if err := c.ProposeConfig(ctx, file[1:], nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.Pending("a", feedlog.KindRemove); !ok || inForce(t, l)["a"] == "" {
		t.Fatalf("a dropped from the file: pending removal and still in force expected; %v", inForce(t, l))
	}
	// The API's removal is held too; an unknown feed is refused.
	if res, err := c.Delete(ctx, "c", "api"); err != nil || res.Held == nil {
		t.Fatalf("Delete c: %+v %v", res, err)
	}
	if _, err := c.Delete(ctx, "zz", "api"); err == nil {
		t.Fatal("Delete of an unknown feed: no error")
	}
	// A definition that does not compile is refused.
	if _, err := c.Put(ctx, config.Feed{ID: "bad", Filter: "offer.nope", Template: "google-merchant"}, "api"); err == nil {
		t.Fatal("Put of a feed that does not compile: no error")
	}
	var held []string
	for _, ch := range l.Changes() {
		if ch.Status == feedlog.StatusHeld {
			held = append(held, ch.FeedID+"/"+ch.Kind)
		}
	}
	slices.Sort(held)
	if want := []string{"a/remove", "b/change", "c/remove"}; !slices.Equal(held, want) {
		t.Fatalf("held %v, want %v", held, want)
	}
}
