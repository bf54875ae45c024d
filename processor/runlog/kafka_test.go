package runlog_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/feedmill/feedmill/internal/testenv"
	"github.com/feedmill/feedmill/processor/runlog"
)

// openLog runs a Kafka run log on topic until the test ends and waits
// until it has caught up.
func openLog(t *testing.T, env *testenv.Env, topic string) *runlog.Kafka {
	t.Helper()
	k, err := runlog.OpenKafka([]kgo.Opt{kgo.SeedBrokers(env.Brokers...)}, topic, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		k.Close()
	})
	deadline := time.Now().Add(30 * time.Second)
	for !k.CaughtUp() {
		if time.Now().After(deadline) {
			t.Fatal("run log did not catch up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return k
}

// TestKafkaLogSharedByInstances: two instances' logs on one topic reach
// the same runs whichever instance appends; a third started later folds
// the history to the same state; a topic with two partitions is refused.
func TestKafkaLogSharedByInstances(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	a := openLog(t, env, "feedmill-runs")
	b := openLog(t, env, "feedmill-runs")
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	out, err := a.Append(ctx, runlog.Command{Op: runlog.OpStart, By: "a", At: at, Partitions: 2, FeedSet: "fs",
		Feeds: []runlog.FeedDef{{ID: "f", File: true}}, Guard: &runlog.Guard{MaxDrop: 0.2, MaxGrowth: 1}})
	if err != nil || !out.Accepted {
		t.Fatalf("start: %+v %v", out, err)
	}
	again, err := b.Append(ctx, runlog.Command{Op: runlog.OpStart, By: "b", At: at, Partitions: 2, FeedSet: "fs", Feeds: []runlog.FeedDef{{ID: "f"}}})
	if err != nil || again.Accepted || again.Run != out.Run {
		t.Fatalf("second start: %+v %v (want to join %s)", again, err, out.Run)
	}
	for p, l := range []*runlog.Kafka{a, b} {
		if _, err := l.Append(ctx, runlog.Command{Op: runlog.OpPart, Run: out.Run, By: "x", Partition: int32(p), Attempt: "t", FeedSet: "fs", Counts: []int64{3}}); err != nil {
			t.Fatal(err)
		}
	}
	c := openLog(t, env, "feedmill-runs")
	for _, l := range []*runlog.Kafka{a, b, c} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			var r runlog.Run
			l.View(func(f *runlog.Fold) { r, _ = f.Get(out.Run) })
			if r.Status == runlog.StatusPublished && r.Feeds[0].Members == 6 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("run on an instance: %+v", r)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if _, err := c.Append(ctx, runlog.Command{Op: runlog.OpApprove, Run: out.Run}); err != nil {
		t.Fatal(err)
	}

	env.CreateTopic(t, 2, "two-partitions")
	k, err := runlog.OpenKafka([]kgo.Opt{kgo.SeedBrokers(env.Brokers...)}, "two-partitions", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if err := k.Ensure(ctx); err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("a two-partition run log was accepted: %v", err)
	}
}

// TestKafkaLogCaughtUpAfterDeletedRecords: a run log whose records were
// all deleted (DeleteRecords, or compaction of a log's head) still
// catches up: the fold starts at the log's start offset.
func TestKafkaLogCaughtUpAfterDeletedRecords(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	a := openLog(t, env, "feedmill-runs")
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	if _, err := a.Append(ctx, runlog.Command{Op: runlog.OpStart, By: "a", At: at, Partitions: 1, FeedSet: "fs"}); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(env.Client(t))
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "feedmill-runs", Partition: 0, At: 1})
	resp, err := adm.DeleteRecords(ctx, offs)
	if err != nil {
		t.Fatal(err)
	}
	if err := resp.Error(); err != nil {
		t.Fatal(err)
	}
	openLog(t, env, "feedmill-runs") // fails unless it catches up
}
