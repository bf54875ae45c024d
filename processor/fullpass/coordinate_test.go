package fullpass

import (
	"context"
	"testing"
	"time"

	"github.com/feedmill/feedmill/processor/runlog"
)

// TestRemovable: the coordinator removes the files of failed and
// rejected runs, of published runs older than the last two, and of
// leftovers older than every known run, never a run newer than every
// known one (started after the decision was taken) nor a running or held
// run.
func TestRemovable(t *testing.T) {
	log := runlog.NewMemory()
	fp := &FullPass{log: log}
	ctx := context.Background()
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	var ids []string
	for i, outcome := range []string{"published", "failed", "published", "published", "held", "running"} {
		out, err := log.Append(ctx, runlog.Command{Op: runlog.OpStart, At: t0.Add(time.Duration(i) * time.Minute), Partitions: 1,
			Feeds: []runlog.FeedDef{{ID: "f"}}, Guard: &runlog.Guard{MaxGrowth: 0.5}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, out.Run)
		n := int64(100)
		switch outcome {
		case "failed":
			_, err = log.Append(ctx, runlog.Command{Op: runlog.OpFail, Run: out.Run})
		case "published":
			_, err = log.Append(ctx, runlog.Command{Op: runlog.OpPart, Run: out.Run, Counts: []int64{n}})
		case "held":
			_, err = log.Append(ctx, runlog.Command{Op: runlog.OpPart, Run: out.Run, Counts: []int64{n * 10}})
		}
		if err != nil {
			t.Fatal(err)
		}
		if r, _ := fp.GetRun(out.Run); r.Status != outcome {
			t.Fatalf("run %d: %s, want %s (%s)", i, r.Status, outcome, r.Reason)
		}
	}
	removable := fp.removable()
	for _, tc := range []struct {
		id     string
		remove bool
	}{
		{ids[0], true},                 // published, older than the last two
		{ids[1], true},                 // failed
		{ids[2], false},                // the previous published run (readers finish)
		{ids[3], false},                // the served run
		{ids[4], false},                // held
		{ids[5], false},                // running
		{"run-20200101-000000", true},  // a leftover older than every known run
		{"run-20991231-000000", false}, // newer than every known run: started meanwhile
	} {
		if got := removable(tc.id); got != tc.remove {
			t.Errorf("removable(%s) = %v, want %v", tc.id, got, tc.remove)
		}
	}
}
