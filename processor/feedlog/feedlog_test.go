package feedlog

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"go.uber.org/zap"

	"github.com/feedmill/feedmill/config"
)

func feed(id, filter string) config.Feed {
	return config.Feed{ID: id, Filter: filter, Template: "google-merchant", Destinations: []string{"gmc"}}
}

// The fold: set puts a feed in force, a held change waits, approve
// applies it (a removal or a new definition), reject drops it, and a
// decided change cannot be decided again.
func TestFold(t *testing.T) {
	ctx := context.Background()
	l := NewMemory()
	if err := l.Write(ctx, SetOp(feed("a", "true"), SourceConfig, "config", "c1"), SetOp(feed("b", "true"), SourceAPI, "x", "c2")); err != nil {
		t.Fatal(err)
	}
	entries, v := l.Feeds()
	if len(entries) != 2 || entries[0].Feed.ID != "a" || entries[1].Source != SourceAPI || v < 0 {
		t.Fatalf("feeds %+v version %d", entries, v)
	}
	narrowed := feed("a", "false")
	if err := l.Hold(ctx, Change{ID: "h1", FeedID: "a", Kind: KindChange, Feed: &narrowed, Source: SourceAPI}); err != nil {
		t.Fatal(err)
	}
	if err := l.Hold(ctx, Change{ID: "h2", FeedID: "b", Kind: KindRemove, Source: SourceAPI}); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.Pending("b", KindRemove); !ok {
		t.Fatal("the removal of b is not pending")
	}
	if entries, v2 := l.Feeds(); len(entries) != 2 || v2 != v || entries[0].Feed.Filter != "true" {
		t.Fatalf("held changes changed the feeds in force: %+v", entries)
	}
	if err := l.Approve(ctx, "h1", "me"); err != nil {
		t.Fatal(err)
	}
	if err := l.Reject(ctx, "h2", "me"); err != nil {
		t.Fatal(err)
	}
	entries, _ = l.Feeds()
	if len(entries) != 2 || entries[0].Feed.Filter != "false" {
		t.Fatalf("after approving the change and rejecting the removal: %+v", entries)
	}
	if err := l.Approve(ctx, "h2", "me"); !errors.Is(err, ErrDecided) {
		t.Errorf("approving a rejected change: %v, want ErrDecided", err)
	}
	if err := l.Approve(ctx, "nope", "me"); !errors.Is(err, ErrUnknownChange) {
		t.Errorf("approving an unknown change: %v, want ErrUnknownChange", err)
	}
	for _, c := range l.Changes() {
		if want := map[string]string{"h1": StatusApproved, "h2": StatusRejected}[c.ID]; c.Status != want || c.DecidedBy != "me" {
			t.Errorf("change %s: %+v, want %s by me", c.ID, c, want)
		}
	}
}

// Compaction keeps only the last record of a key: an approval whose hold
// was compacted away still applies the change it carries.
func TestApprovalAloneApplies(t *testing.T) {
	f := newFold()
	f.apply(0, "feed/b", mustJSON(t, record{Op: "set", FeedID: "b", Feed: ptr(feed("b", "true"))}), zap.NewNop())
	// The "hold" record of change/h was compacted; its approval remains.
	f.apply(5, "change/h", mustJSON(t, record{Op: "approve", Change: "h", FeedID: "b", Kind: KindRemove, By: "me"}), zap.NewNop())
	if _, ok := f.feeds["b"]; ok || f.changes["h"].Status != StatusApproved {
		t.Fatalf("feeds %v, change %+v: want b removed by the approval alone", f.feeds, f.changes["h"])
	}
	// A record that does not decode is skipped, not fatal.
	f.apply(6, "feed/x", []byte("{"), zap.NewNop())
	if f.version != 5 {
		t.Errorf("version %d after a bad record, want 5", f.version)
	}
}

func ptr[T any](v T) *T { return &v }

func mustJSON(t *testing.T, r record) []byte {
	t.Helper()
	b, err := json.Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
