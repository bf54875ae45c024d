package processor_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/processor/feedstore"
	"github.com/feedmill/feedmill/processor/fullpass"
	"github.com/feedmill/feedmill/state"
)

// A pass on an instance that owns some of the offers partitions covers
// those, says which in the run, publishes no feed file (a file must hold
// every partition's members) and is no guard baseline; once it owns them
// all, the next pass publishes the whole file.
func TestFullPassCoversOwnedPartitions(t *testing.T) {
	fs := []config.Feed{{ID: "all", Filter: `offer.stock > 0`, Template: "google-merchant", Destinations: []string{"d"}, File: true}}
	u := newApplierEnv(t, fs, config.Processor{MaxBatchRecords: 100, SellerChunk: 10})
	u.a.SetPartitions([]int32{0, 1})
	var recs []*kgo.Record
	for i, id := range []string{"a", "b", "c", "d"} {
		r := u.offerRec(offer(id, 1, 5000))
		r.Partition = int32(i % 2)
		recs = append(recs, r)
	}
	u.apply(recs...)
	set, err := feeds.Compile(fs, nil)
	if err != nil {
		t.Fatal(err)
	}
	files, err := feedstore.NewFeedFiles(filepath.Join(t.TempDir(), "feeds"), set, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	stream := &applierStream{a: u.a, owned: []int32{1}, total: 2}
	fp, err := fullpass.New(fullpass.Deps{
		Config: config.Default().FullPass, Store: u.store, Feeds: set, Files: files, Serde: u.serde, Stream: stream,
		Registry: prometheus.NewRegistry(), Logger: zap.NewNop(), Now: func() time.Time { return u.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := fp.RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != state.RunPublished || !slices.Equal(r.Partitions, []int32{1}) || r.PartitionsTotal != 2 || r.Whole() {
		t.Fatalf("partial run: status %s, partitions %v of %d", r.Status, r.Partitions, r.PartitionsTotal)
	}
	if !strings.Contains(r.Reason, "covered offers partitions [1] of 2") || r.Feeds[0].Members != 2 || r.Feeds[0].File {
		t.Errorf("partial run: reason %q, feeds %+v", r.Reason, r.Feeds)
	}
	if got := files.Current("all"); got != "" {
		t.Errorf("a partial run published the feed file (version %q)", got)
	}
	if got := fp.LastRun("all"); got != "" {
		t.Errorf("a partial run is the last run of the feed: %q", got)
	}

	stream.owned = []int32{0, 1}
	r, err = fp.RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !r.Whole() || r.Feeds[0].Members != 4 || !r.Feeds[0].File || files.Current("all") != r.ID {
		t.Errorf("whole run: %+v, file version %q", r, files.Current("all"))
	}
}

// Feed files that cannot be written fail the run (recorded, the previous
// feeds stay served) without stopping the full pass: RunOnce reports a
// *fullpass.RunFailedError.
func TestFullPassOutputFailureFailsTheRun(t *testing.T) {
	fs := []config.Feed{{ID: "all", Filter: `offer.stock > 0`, Template: "google-merchant", File: true}}
	u := newApplierEnv(t, fs, config.Processor{MaxBatchRecords: 100, SellerChunk: 10})
	u.apply(u.offerRec(offer("a", 1, 5000)))
	set, err := feeds.Compile(fs, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "feeds")
	files, err := feedstore.NewFeedFiles(dir, set, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	// The feeds dir becomes a plain file: nothing can be written under it.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("not a dir"), 0o600); err != nil {
		t.Fatal(err)
	}
	fp, err := fullpass.New(fullpass.Deps{
		Config: config.Default().FullPass, Store: u.store, Feeds: set, Files: files, Serde: u.serde,
		Stream: &applierStream{a: u.a}, Registry: prometheus.NewRegistry(), Logger: zap.NewNop(), Now: func() time.Time { return u.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = fp.RunOnce(context.Background())
	var failed *fullpass.RunFailedError
	if !errors.As(err, &failed) {
		t.Fatalf("RunOnce: %v, want a recorded failed run", err)
	}
	r, err := u.store.GetRun(failed.RunID)
	if err != nil || r.Status != state.RunFailed || !strings.Contains(r.Reason, "write feed files") {
		t.Fatalf("run %+v (%v), want failed with the reason", r, err)
	}
}
