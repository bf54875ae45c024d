package runlog

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func start(at time.Time, parts int32) Command {
	return Command{Op: OpStart, By: "a", At: at, Partitions: parts, FeedSet: "fs",
		Feeds: []FeedDef{{ID: "f1", File: true}, {ID: "f2"}}, Guard: &Guard{MaxDrop: 0.2, MaxGrowth: 1, MinSize: 10}}
}

func part(run string, p int32, by string, counts ...int64) Command {
	return Command{Op: OpPart, Run: run, By: by, At: t0.Add(time.Minute), Partition: p, Attempt: by + "-att", FeedSet: "fs", Counts: counts, Scanned: 5, Listed: 1}
}

// TestFold walks the run life cycle through table cases: each step folds
// one command and checks the outcome and the run it leaves.
func TestFold(t *testing.T) {
	type step struct {
		cmd      Command
		accepted bool
		errIs    error
		run      string // checked run ("" = the step's outcome run)
		status   string
		reason   string // substring
	}
	run1 := "run-20261130-120000"
	run2 := "run-20261130-120100"
	run3 := "run-20261130-120200"
	cases := []struct {
		name  string
		steps []step
	}{
		{"publish when every partition is in", []step{
			{cmd: start(t0, 2), accepted: true, status: StatusRunning},
			{cmd: part(run1, 1, "b", 30, 1), accepted: true, status: StatusRunning},
			{cmd: part(run1, 1, "a", 99, 9), accepted: false, run: run1, status: StatusRunning}, // the first part wins
			{cmd: part(run1, 0, "a", 70, 2), accepted: true, status: StatusPublished},
		}},
		{"start while running joins", []step{
			{cmd: start(t0, 1), accepted: true, status: StatusRunning},
			{cmd: start(t0.Add(time.Second), 1), accepted: false, run: run1, status: StatusRunning},
		}},
		{"guard holds a drop, approve publishes", []step{
			{cmd: start(t0, 1), accepted: true},
			{cmd: part(run1, 0, "a", 100, 0), accepted: true, status: StatusPublished},
			{cmd: start(t0.Add(time.Minute), 1), accepted: true},
			{cmd: part(run2, 0, "b", 50, 0), accepted: true, status: StatusHeld, reason: "feed f1 dropped from 100 to 50"},
			{cmd: Command{Op: OpApprove, Run: run2, At: t0.Add(2 * time.Minute)}, accepted: true, status: StatusPublished, reason: "approved"},
			{cmd: Command{Op: OpApprove, Run: run2}, errIs: ErrRunNotHeld, run: run2, status: StatusPublished},
			{cmd: Command{Op: OpReject, Run: "run-nope"}, errIs: ErrRunNotFound, run: run2, status: StatusPublished},
		}},
		{"a newer decision supersedes a held run", []step{
			{cmd: start(t0, 1), accepted: true},
			{cmd: part(run1, 0, "a", 100, 0), accepted: true, status: StatusPublished},
			{cmd: start(t0.Add(time.Minute), 1), accepted: true},
			{cmd: part(run2, 0, "a", 10_000, 0), accepted: true, status: StatusHeld, reason: "grew"},
			{cmd: start(t0.Add(2*time.Minute), 1), accepted: true},
			{cmd: part(run3, 0, "a", 110, 0), accepted: true, status: StatusPublished},
			{cmd: Command{Op: OpReject, Run: run2}, errIs: ErrRunNotHeld, run: run2, status: StatusRejected, reason: "superseded by " + run3},
		}},
		{"fail and late parts", []step{
			{cmd: start(t0, 2), accepted: true},
			{cmd: Command{Op: OpFail, Run: run1, Reason: "partition 1: write feed files: boom"}, accepted: true, status: StatusFailed, reason: "boom"},
			{cmd: part(run1, 1, "b", 1, 1), accepted: false, run: run1, status: StatusFailed},
			{cmd: start(t0, 2), accepted: true, run: "run-20261130-120001", status: StatusRunning}, // same clock second: the id still grows
		}},
		{"other feed definitions fail the run", []step{
			{cmd: start(t0, 2), accepted: true},
			{cmd: func() Command { c := part(run1, 0, "x", 1, 1); c.FeedSet = "other"; return c }(), accepted: true, status: StatusFailed, reason: "instance x scanned partition 0 with other feed definitions"},
		}},
		{"reject discards", []step{
			{cmd: start(t0, 1), accepted: true},
			{cmd: part(run1, 0, "a", 100, 0), accepted: true, status: StatusPublished},
			{cmd: start(t0.Add(time.Minute), 1), accepted: true},
			{cmd: part(run2, 0, "a", 0, 0), accepted: true, status: StatusHeld},
			{cmd: Command{Op: OpReject, Run: run2}, accepted: true, status: StatusRejected, reason: "rejected; held because: feed f1 dropped"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFold()
			for i, s := range tc.steps {
				c := s.cmd
				out := f.Apply(&c)
				if out.Accepted != s.accepted {
					t.Fatalf("step %d (%s): accepted %v, want %v (%+v)", i, c.Op, out.Accepted, s.accepted, out)
				}
				if s.errIs != nil && !errors.Is(out.Err, s.errIs) {
					t.Fatalf("step %d: err %v, want %v", i, out.Err, s.errIs)
				}
				id := s.run
				if id == "" {
					id = out.Run
				}
				r, ok := f.Get(id)
				if !ok {
					t.Fatalf("step %d: no run %q", i, id)
				}
				if s.status != "" && r.Status != s.status {
					t.Fatalf("step %d: run %s status %s (%s), want %s", i, id, r.Status, r.Reason, s.status)
				}
				if !strings.Contains(r.Reason, s.reason) {
					t.Fatalf("step %d: reason %q, want it to contain %q", i, r.Reason, s.reason)
				}
			}
		})
	}
}

func TestFoldSumsPartsAndApplied(t *testing.T) {
	f := NewFold()
	c := start(t0, 3)
	id := f.Apply(&c).Run
	for p, by := range []string{"a", "b", "a"} {
		c := part(id, int32(p), by, int64(10*(p+1)), 1)
		f.Apply(&c)
	}
	r, _ := f.Get(id)
	if r.Status != StatusPublished || r.Feeds[0].Members != 60 || r.Feeds[1].Members != 3 || r.Scanned != 15 || r.Listed != 3 {
		t.Fatalf("run %+v", r)
	}
	if len(r.Parts) != 3 || r.Parts[1].By != "b" || r.Applied {
		t.Fatalf("parts %+v applied %v", r.Parts, r.Applied)
	}
	f.Apply(&Command{Op: OpApplied, Run: id, Corrections: 2, Applied: []int32{0, 2}})
	if r, _ := f.Get(id); r.Applied || r.Corrections != 2 {
		t.Fatalf("applied too early: %+v", r)
	}
	f.Apply(&Command{Op: OpApplied, Run: id, Refreshes: 1, Applied: []int32{1}})
	if r, _ := f.Get(id); !r.Applied || r.Refreshes != 1 {
		t.Fatalf("not applied: %+v", r)
	}
}

// TestFoldSameOnEveryInstance folds random command sequences twice (two
// instances reading one log) and through the memory log with concurrent
// writers: the folds agree, and every run's state is one a plain reading
// of the rules allows.
func TestFoldSameOnEveryInstance(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		var cmds []Command
		at := t0
		for range 200 {
			at = at.Add(time.Duration(rng.IntN(3)) * time.Second)
			var c Command
			run := runID(t0.Add(time.Duration(rng.IntN(20)) * time.Second))
			switch rng.IntN(6) {
			case 0:
				c = start(at, int32(1+rng.IntN(3)))
			case 1, 2:
				c = part(run, int32(rng.IntN(3)), string(rune('a'+rng.IntN(3))), int64(rng.IntN(200)), 1)
			case 3:
				c = Command{Op: OpApprove, Run: run}
			case 4:
				c = Command{Op: OpReject, Run: run}
			default:
				c = Command{Op: OpFail, Run: run, Reason: "x"}
			}
			c.At = at
			cmds = append(cmds, c)
		}
		a, b := NewFold(), NewFold()
		for i := range cmds {
			ca, cb := cmds[i], cmds[i]
			if oa, ob := a.Apply(&ca), b.Apply(&cb); oa.Accepted != ob.Accepted || oa.Run != ob.Run {
				t.Fatalf("seed %d cmd %d: outcomes differ %+v %+v", seed, i, oa, ob)
			}
		}
		ra, rb := a.Runs(), b.Runs()
		if len(ra) != len(rb) {
			t.Fatalf("seed %d: %d vs %d runs", seed, len(ra), len(rb))
		}
		running := 0
		for i := range ra {
			if ra[i].ID != rb[i].ID || ra[i].Status != rb[i].Status {
				t.Fatalf("seed %d: run %d differs", seed, i)
			}
			if i > 0 && ra[i].ID >= ra[i-1].ID {
				t.Fatalf("seed %d: ids not in start order: %s after %s", seed, ra[i].ID, ra[i-1].ID)
			}
			if ra[i].Status == StatusRunning {
				running++
			}
			if ra[i].Status == StatusPublished && int32(len(ra[i].Parts)) != ra[i].PartitionsTotal {
				t.Fatalf("seed %d: run %s published with %d of %d parts", seed, ra[i].ID, len(ra[i].Parts), ra[i].PartitionsTotal)
			}
		}
		if running > 1 {
			t.Fatalf("seed %d: %d runs running", seed, running)
		}
	}
}

func TestMemoryLogConcurrentAppends(t *testing.T) {
	l := NewMemory()
	ctx := context.Background()
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := l.Append(ctx, start(t0, 1))
			if err != nil {
				t.Error(err)
			}
			ids[i] = out.Run
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("concurrent starts opened several runs: %v", ids)
		}
	}
	var n int
	l.View(func(f *Fold) { n = len(f.Runs()) })
	if n != 1 {
		t.Fatalf("%d runs", n)
	}
}

// TestForgetKeepsInstancesAgreeing: a log of many runs is bounded by the
// tombstones Forget lists; an instance that folded everything (tombstones
// included) and one that starts after compaction (reading only the
// records left) hold the same runs, the last published one (the guard's
// baseline) and the held one among them.
func TestForgetKeepsInstancesAgreeing(t *testing.T) {
	type rec struct {
		key string
		cmd *Command // nil: a tombstone
	}
	var log []rec
	old := NewFold()
	n := 0
	add := func(c Command) Outcome {
		n++
		c.Key = fmt.Sprintf("%s/%s/%d", c.Op, c.Run, n)
		log = append(log, rec{c.Key, &c})
		cc := c
		return old.Apply(&cc)
	}
	at := t0
	var baseline, held string
	for i := range Keep + 30 {
		at = at.Add(time.Hour)
		id := add(start(at, 2)).Run
		switch {
		case i == Keep+28:
			add(part(id, 0, "a", 1000, 0))
			add(part(id, 1, "a", 1000, 0))
			baseline = id
		case i == Keep+29:
			add(part(id, 0, "a", 1, 0))
			add(part(id, 1, "a", 1, 0))
			held = id
		case i%3 == 0:
			add(Command{Op: OpFail, Run: id, Reason: "x"})
		default:
			add(part(id, 0, "a", 1000, 0))
			add(part(id, 1, "a", 1000, 0))
		}
		add(Command{Op: OpApplied, Run: "run-unknown"}) // an orphan
	}
	if r, _ := old.Get(held); r.Status != StatusHeld {
		t.Fatalf("run %s: %s", held, r.Status)
	}
	keys := old.Forget()
	if len(keys) == 0 {
		t.Fatal("nothing to forget")
	}
	for _, k := range keys {
		log = append(log, rec{key: k})
		old.Tombstone(k)
	}
	if got := len(old.Runs()); got != Keep+2 {
		t.Errorf("%d runs after forgetting, want the %d newest decided plus the held one and the baseline", got, Keep)
	}
	if again := old.Forget(); len(again) != 0 {
		t.Errorf("forgetting twice lists %d keys", len(again))
	}
	// Compaction: a deleted key keeps neither its record nor (later) its
	// tombstone.
	deleted := map[string]bool{}
	for _, r := range log {
		if r.cmd == nil {
			deleted[r.key] = true
		}
	}
	fresh := NewFold()
	for _, r := range log {
		if r.cmd != nil && !deleted[r.key] {
			c := *r.cmd
			fresh.Apply(&c)
		}
	}
	a, b := old.Runs(), fresh.Runs()
	if len(a) != len(b) {
		t.Fatalf("%d runs on the old instance, %d on the fresh one", len(a), len(b))
	}
	for i := range a {
		if a[i].ID != b[i].ID || a[i].Status != b[i].Status || !slices.Equal(a[i].Parts, b[i].Parts) {
			t.Errorf("run %d: %s %s vs %s %s", i, a[i].ID, a[i].Status, b[i].ID, b[i].Status)
		}
	}
	for _, f := range []*Fold{old, fresh} {
		if p, ok := f.Published(); !ok || p.ID != baseline {
			t.Errorf("baseline %v %v, want %s", p.ID, ok, baseline)
		}
		c := Command{Op: OpApprove, Run: held}
		if out := f.Apply(&c); !out.Accepted {
			t.Errorf("approve of the held run: %+v", out)
		}
	}
}

// TestFoldFilesPublished: a file feed's publication time is the newest
// published run that had it as a file feed; held, failed and rejected
// runs publish nothing, an approval publishes at the approval's time, and
// a feed without a file (or not in any published run) is absent.
func TestFoldFilesPublished(t *testing.T) {
	f := NewFold()
	apply := func(c Command) Outcome { return f.Apply(&c) }
	want := func(step string, exp map[string]time.Time) {
		t.Helper()
		got := f.FilesPublished()
		if len(got) != len(exp) {
			t.Fatalf("%s: %v, want %v", step, got, exp)
		}
		for id, at := range exp {
			if !got[id].Equal(at) {
				t.Fatalf("%s: feed %s published at %v, want %v", step, id, got[id], at)
			}
		}
	}
	want("empty", map[string]time.Time{})
	r1 := apply(start(t0, 1)).Run
	want("running", map[string]time.Time{})
	apply(Command{Op: OpFail, Run: r1, At: t0.Add(time.Minute)})
	want("failed", map[string]time.Time{})

	r2 := apply(start(t0.Add(time.Minute), 1)).Run
	p := part(r2, 0, "a", 100, 1)
	p.At = t0.Add(2 * time.Minute)
	apply(p)
	want("published", map[string]time.Time{"f1": t0.Add(2 * time.Minute)}) // f2 has no file

	// A run with a new file feed f3 is held (f1 dropped): nothing changes
	// until it is approved.
	c := start(t0.Add(3*time.Minute), 1)
	c.Feeds = append(c.Feeds, FeedDef{ID: "f3", File: true})
	r3 := apply(c).Run
	p = part(r3, 0, "a", 1, 1, 7)
	p.At = t0.Add(4 * time.Minute)
	apply(p)
	if r, _ := f.Get(r3); r.Status != StatusHeld {
		t.Fatalf("run 3: %s, want held", r.Status)
	}
	want("held", map[string]time.Time{"f1": t0.Add(2 * time.Minute)})
	apply(Command{Op: OpApprove, Run: r3, At: t0.Add(10 * time.Minute)})
	want("approved", map[string]time.Time{"f1": t0.Add(10 * time.Minute), "f3": t0.Add(10 * time.Minute)})

	// A later run without f3 leaves f3 at its last publication.
	r4 := apply(start(t0.Add(20*time.Minute), 1)).Run
	p = part(r4, 0, "a", 1, 1)
	p.At = t0.Add(21 * time.Minute)
	apply(p)
	want("without f3", map[string]time.Time{"f1": t0.Add(21 * time.Minute), "f3": t0.Add(10 * time.Minute)})
}
