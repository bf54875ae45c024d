package fullpass

import (
	"slices"
	"testing"
	"time"

	"github.com/feedmill/feedmill/processor/runlog"
)

// TestFirstPassDue walks the first-pass rule through the fold's states:
// a run starts at once while a file feed of the set was never published
// and no run is running or held; a failed try is retried after a minute,
// doubled per failure in a row, at most the interval; a rejected one and
// interval 0 start nothing.
func TestFirstPassDue(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	run := func(status string, finished time.Duration, feeds ...runlog.Feed) runlog.Run {
		r := runlog.Run{Status: status, Feeds: feeds}
		if status != runlog.StatusRunning {
			at := t0.Add(finished)
			r.FinishedAt = &at
		}
		return r
	}
	file := func(id string) runlog.Feed { return runlog.Feed{ID: id, File: true} }
	noFile := func(id string) runlog.Feed { return runlog.Feed{ID: id} }
	a, b := file("a"), file("b")
	pub := map[string]time.Time{"a": t0}
	const hour = time.Hour
	cases := []struct {
		name      string
		interval  time.Duration
		now       time.Duration // after t0
		published map[string]time.Time
		runs      []runlog.Run // newest first
		never     []string
		due       bool
	}{
		{name: "fresh deployment", interval: hour, never: []string{"a", "b"}, due: true},
		{name: "interval 0: no automatic runs", interval: 0},
		{name: "every file feed published", interval: hour, published: map[string]time.Time{"a": t0, "b": t0},
			runs: []runlog.Run{run(runlog.StatusPublished, 0, a, b)}},
		{name: "a run is running", interval: hour, runs: []runlog.Run{run(runlog.StatusRunning, 0, a, b)}, never: []string{"a", "b"}},
		{name: "a run is held", interval: hour, runs: []runlog.Run{run(runlog.StatusHeld, 0, a, b)}, never: []string{"a", "b"}},
		{name: "an older run is held", interval: hour, now: hour,
			runs: []runlog.Run{run(runlog.StatusFailed, 0, a, b), run(runlog.StatusHeld, 0, a, b)}, never: []string{"a", "b"}},
		{name: "feed added after the last published run", interval: hour, published: pub,
			runs: []runlog.Run{run(runlog.StatusPublished, 0, a)}, never: []string{"b"}, due: true},
		{name: "published without a file (file turned on)", interval: hour, published: pub,
			runs: []runlog.Run{run(runlog.StatusPublished, 0, a, noFile("b"))}, never: []string{"b"}, due: true},
		{name: "failed a moment ago", interval: hour, now: 59 * time.Second, runs: []runlog.Run{run(runlog.StatusFailed, 0, a, b)},
			never: []string{"a", "b"}},
		{name: "failed a minute ago", interval: hour, now: time.Minute, runs: []runlog.Run{run(runlog.StatusFailed, 0, a, b)},
			never: []string{"a", "b"}, due: true},
		{name: "failed twice in a row: two minutes", interval: hour, now: 119 * time.Second,
			runs: []runlog.Run{run(runlog.StatusFailed, 0, a, b), run(runlog.StatusFailed, -hour, a, b)}, never: []string{"a", "b"}},
		{name: "failed twice in a row, two minutes later", interval: hour, now: 2 * time.Minute,
			runs: []runlog.Run{run(runlog.StatusFailed, 0, a, b), run(runlog.StatusFailed, -hour, a, b)}, never: []string{"a", "b"}, due: true},
		{name: "failures wait at most the interval", interval: 3 * time.Minute, now: 3 * time.Minute,
			runs: slices.Repeat([]runlog.Run{run(runlog.StatusFailed, 0, a, b)}, 10), never: []string{"a", "b"}, due: true},
		{name: "a failed run without the new feed", interval: hour, published: pub,
			runs: []runlog.Run{run(runlog.StatusFailed, 0, a), run(runlog.StatusPublished, -hour, a)}, never: []string{"b"}, due: true},
		{name: "rejected: left to the interval", interval: hour, now: hour, published: pub,
			runs: []runlog.Run{run(runlog.StatusRejected, 0, a, b), run(runlog.StatusPublished, -hour, a)}, never: []string{"b"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			published := tc.published
			if published == nil {
				published = map[string]time.Time{}
			}
			never, due := firstPassDue(tc.interval, t0.Add(tc.now), []string{"a", "b"}, published, tc.runs)
			if due != tc.due || !slices.Equal(never, tc.never) {
				t.Errorf("firstPassDue = %v, %v; want %v, %v", never, due, tc.never, tc.due)
			}
		})
	}
}
