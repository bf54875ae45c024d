package runlog

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Run statuses (docs/contract.md, HTTP endpoints).
const (
	StatusRunning   = "running"
	StatusPublished = "published"
	StatusHeld      = "held"
	StatusRejected  = "rejected"
	StatusFailed    = "failed"
)

// Ops of a Command.
const (
	OpStart   = "start"   // start a run (ignored while one is running)
	OpPart    = "part"    // one partition's parts of the running run are stored
	OpFail    = "fail"    // the running run failed (a store error, a timeout)
	OpApprove = "approve" // publish a held run
	OpReject  = "reject"  // discard a held run
	OpApplied = "applied" // an instance applied its corrections and refreshes
)

// ErrRunNotFound: no run has that id.
var ErrRunNotFound = errors.New("run not found")

// ErrRunNotHeld: approve or reject of a run that is not held.
var ErrRunNotHeld = errors.New("run is not held")

// Guard holds a run whose feed sizes moved more than these bounds
// (config.Guard, carried by the start command so that every instance
// decides with the same limits).
type Guard struct {
	MaxDrop   float64 `json:"max_drop"`
	MaxGrowth float64 `json:"max_growth"`
	MinSize   int     `json:"min_size"`
}

// FeedDef is one feed of a run: its id and whether it has a file.
type FeedDef struct {
	ID   string `json:"id"`
	File bool   `json:"file,omitempty"`
}

// Command is one record of the run log (its JSON value; Key is the
// record's key, set by the log).
type Command struct {
	Key string `json:"-"`

	Op  string    `json:"op"`
	Run string    `json:"run,omitempty"`
	By  string    `json:"by"` // instance id of the producer
	At  time.Time `json:"at"`

	// start: the run covers Partitions offers partitions and evaluates
	// Feeds (whose definitions hash to FeedSet) at At.
	Partitions int32     `json:"partitions,omitempty"`
	Feeds      []FeedDef `json:"feeds,omitempty"`
	FeedSet    string    `json:"feed_set,omitempty"`
	Guard      *Guard    `json:"guard,omitempty"`

	// part: partition Partition's part files are stored under Attempt;
	// Counts are the members per feed (Feeds' order of the start).
	Partition int32   `json:"partition"`
	Attempt   string  `json:"attempt,omitempty"`
	Counts    []int64 `json:"counts,omitempty"`
	Scanned   int64   `json:"scanned,omitempty"`
	Listed    int64   `json:"listed,omitempty"`

	// fail, approve, reject: why.
	Reason string `json:"reason,omitempty"`

	// applied: what an instance's corrections and refreshes emitted, and
	// the partitions whose parts it stored (its lists are settled).
	Corrections int64   `json:"corrections,omitempty"`
	Refreshes   int64   `json:"refreshes,omitempty"`
	Applied     []int32 `json:"applied,omitempty"`
}

// Run is one full pass as the fold knows it and /api/runs shows it.
type Run struct {
	ID          string     `json:"id"`
	Status      string     `json:"status"`
	StartedAt   time.Time  `json:"started_at"`
	FinishedAt  *time.Time `json:"finished_at"`
	Feeds       []Feed     `json:"feeds"`
	Corrections int64      `json:"corrections"`
	Refreshes   int64      `json:"refreshes"`
	Reason      string     `json:"reason"`
	// StartedBy is the instance that started the run.
	StartedBy string `json:"started_by"`
	// Scanned and Listed sum the partitions' offer keys read and offers
	// listed for correction or refresh.
	Scanned int64 `json:"scanned"`
	Listed  int64 `json:"listed"`
	// NowMs is the evaluation time of every partition (unix ms).
	NowMs int64 `json:"now_ms"`
	// Parts are the partitions whose parts are stored, in partition order.
	Parts           []Part `json:"parts"`
	PartitionsTotal int32  `json:"partitions_total"`
	// FeedSet fingerprints the feed definitions every part must have
	// been evaluated with.
	FeedSet string `json:"feed_set"`
	Guard   Guard  `json:"guard"`
	// Applied is set once the instance of every part has applied its
	// listed corrections and refreshes (a published run).
	Applied bool `json:"applied"`

	applied map[int32]bool
	keys    []string // the log keys of its records (its start's first)
}

// Part is one partition's stored parts of a run.
type Part struct {
	Partition int32  `json:"partition"`
	Attempt   string `json:"attempt"`
	By        string `json:"by"`
}

// Feed is one feed's size in a run. Previous and Change are nil when the
// last published run did not have the feed.
type Feed struct {
	ID       string   `json:"id"`
	Members  int64    `json:"members"`
	Previous *int64   `json:"previous"`
	Change   *float64 `json:"change"`
	File     bool     `json:"file"`
}

// Done reports whether partition p's parts are stored.
func (r *Run) Done(p int32) bool {
	_, ok := slices.BinarySearchFunc(r.Parts, p, func(x Part, p int32) int { return int(x.Partition) - int(p) })
	return ok
}

// Missing lists the partitions whose parts are not stored yet.
func (r *Run) Missing() []int32 {
	var out []int32
	for p := range r.PartitionsTotal {
		if !r.Done(p) {
			out = append(out, p)
		}
	}
	return out
}

// Final reports whether the run's status can no longer change.
func (r *Run) Final() bool {
	return r.Status == StatusPublished || r.Status == StatusRejected || r.Status == StatusFailed
}

// clone copies r deeply enough for a reader.
func (r *Run) clone() Run {
	c := *r
	c.Feeds = slices.Clone(r.Feeds)
	c.Parts = slices.Clone(r.Parts)
	c.applied, c.keys = nil, nil
	if r.FinishedAt != nil {
		t := *r.FinishedAt
		c.FinishedAt = &t
	}
	return c
}

// Outcome is what folding one command did.
type Outcome struct {
	// Run is the run the command concerned: for start, the new run or
	// the one already running.
	Run string
	// Accepted is false when the command changed nothing (a start while
	// a run is running, a part already stored, a decision on a run that
	// is not held); Err then says why for decisions.
	Accepted bool
	Err      error
}

// Fold is the state of the run log: every instance folding the same
// records in the same order holds the same runs. Not safe for concurrent
// use (Log guards it).
type Fold struct {
	runs      []*Run // in start order (ids sort the same way)
	byID      map[string]*Run
	byKey     map[string]*Run // a run's start key → the run
	running   *Run
	published *Run // last published run: the guard's baseline and the served version
	lastStart time.Time
	orphans   map[string]bool // keys of records that concern no known run
}

// NewFold returns an empty fold.
func NewFold() *Fold {
	return &Fold{byID: map[string]*Run{}, byKey: map[string]*Run{}, orphans: map[string]bool{}}
}

// Keep is how many decided runs the log keeps (Forget leaves them).
const Keep = 50

// Apply folds one command and notes its key with the run it concerned.
func (f *Fold) Apply(c *Command) Outcome {
	out := f.apply(c)
	if c.Key == "" {
		return out
	}
	if r, ok := f.byID[out.Run]; ok {
		if len(r.keys) == 0 {
			f.byKey[c.Key] = r
		}
		r.keys = append(r.keys, c.Key)
	} else {
		f.orphans[c.Key] = true
	}
	return out
}

// Tombstone folds the deletion of the record with key: a run whose start
// record is deleted is forgotten (every instance reads the same
// tombstones, in the same place).
func (f *Fold) Tombstone(key string) {
	delete(f.orphans, key)
	r, ok := f.byKey[key]
	if !ok {
		return
	}
	delete(f.byKey, key)
	delete(f.byID, r.ID)
	f.runs = slices.DeleteFunc(f.runs, func(x *Run) bool { return x == r })
	if f.running == r {
		f.running = nil
	}
	if f.published == r {
		f.published = nil
	}
}

// Forget lists the keys whose deletion (tombstones) bounds the log: the
// records of decided runs beyond the newest Keep, never the last
// published run (the guard's baseline) or a running or held run, and
// records that concern no known run. Appending tombstones for them
// keeps the log small while every instance, however late it starts
// reading, folds the same runs.
func (f *Fold) Forget() []string {
	var keys []string
	for k := range f.orphans {
		keys = append(keys, k)
	}
	decided := 0
	for i := len(f.runs) - 1; i >= 0; i-- {
		r := f.runs[i]
		if !r.Final() || r == f.published {
			continue
		}
		if decided++; decided > Keep && len(r.keys) > 0 {
			// The start key last: a run is forgotten once all its
			// other records are gone.
			keys = append(keys, r.keys[1:]...)
			keys = append(keys, r.keys[0])
		}
	}
	slices.Sort(keys[:len(f.orphans)])
	return keys
}

func (f *Fold) apply(c *Command) Outcome {
	switch c.Op {
	case OpStart:
		return f.start(c)
	case OpPart:
		return f.part(c)
	case OpFail:
		r := f.running
		if r == nil || r.ID != c.Run {
			return Outcome{Run: c.Run}
		}
		f.finish(r, StatusFailed, c.Reason, c.At)
		return Outcome{Run: r.ID, Accepted: true}
	case OpApprove, OpReject:
		r, ok := f.byID[c.Run]
		if !ok {
			return Outcome{Run: c.Run, Err: fmt.Errorf("run %q: %w", c.Run, ErrRunNotFound)}
		}
		if r.Status != StatusHeld {
			return Outcome{Run: c.Run, Err: fmt.Errorf("%s %s (%s): %w", c.Op, c.Run, r.Status, ErrRunNotHeld)}
		}
		if c.Op == OpReject {
			f.finish(r, StatusRejected, "rejected; held because: "+r.Reason, c.At)
		} else {
			f.finish(r, StatusPublished, "approved; held because: "+r.Reason, c.At)
			f.published = r
		}
		return Outcome{Run: r.ID, Accepted: true}
	case OpApplied:
		r, ok := f.byID[c.Run]
		if !ok {
			return Outcome{Run: c.Run}
		}
		r.Corrections += c.Corrections
		r.Refreshes += c.Refreshes
		if r.applied == nil {
			r.applied = map[int32]bool{}
		}
		for _, p := range c.Applied {
			r.applied[p] = true
		}
		r.Applied = r.Status == StatusPublished && len(r.Parts) > 0
		for _, pt := range r.Parts {
			if !r.applied[pt.Partition] {
				r.Applied = false
			}
		}
		return Outcome{Run: r.ID, Accepted: true}
	}
	return Outcome{Run: c.Run} // an op from a newer version: ignored
}

// runID names a run started at t: ids sort in start order.
func runID(t time.Time) string { return "run-" + t.UTC().Format("20060102-150405") }

func (f *Fold) start(c *Command) Outcome {
	if f.running != nil {
		return Outcome{Run: f.running.ID}
	}
	if c.Partitions <= 0 {
		return Outcome{}
	}
	// Ids come from the start time, strictly increasing in log order
	// (one second apart at least), so they sort in start order even
	// across clocks that disagree.
	t := c.At.UTC().Truncate(time.Second)
	if !t.After(f.lastStart) {
		t = f.lastStart.Add(time.Second)
	}
	f.lastStart = t
	r := &Run{
		ID: runID(t), Status: StatusRunning, StartedAt: c.At, StartedBy: c.By, NowMs: c.At.UnixMilli(),
		PartitionsTotal: c.Partitions, FeedSet: c.FeedSet, Feeds: make([]Feed, len(c.Feeds)), Parts: []Part{},
	}
	if c.Guard != nil {
		r.Guard = *c.Guard
	}
	for i, d := range c.Feeds {
		r.Feeds[i] = Feed{ID: d.ID, File: d.File}
	}
	f.runs = append(f.runs, r)
	f.byID[r.ID] = r
	f.running = r
	return Outcome{Run: r.ID, Accepted: true}
}

func (f *Fold) part(c *Command) Outcome {
	r := f.running
	if r == nil || r.ID != c.Run || c.Partition < 0 || c.Partition >= r.PartitionsTotal || r.Done(c.Partition) {
		return Outcome{Run: c.Run}
	}
	if c.FeedSet != r.FeedSet || len(c.Counts) != len(r.Feeds) {
		f.finish(r, StatusFailed, fmt.Sprintf("instance %s scanned partition %d with other feed definitions than the run's "+
			"(started by %s): every instance of the group must run the same feeds and templates", c.By, c.Partition, r.StartedBy), c.At)
		return Outcome{Run: r.ID, Accepted: true}
	}
	i, _ := slices.BinarySearchFunc(r.Parts, c.Partition, func(x Part, p int32) int { return int(x.Partition) - int(p) })
	r.Parts = slices.Insert(r.Parts, i, Part{Partition: c.Partition, Attempt: c.Attempt, By: c.By})
	for j, n := range c.Counts {
		r.Feeds[j].Members += n
	}
	r.Scanned += c.Scanned
	r.Listed += c.Listed
	if int32(len(r.Parts)) < r.PartitionsTotal {
		return Outcome{Run: r.ID, Accepted: true}
	}
	compareWith(r.Feeds, f.published)
	if reason := guardReason(r.Guard, r.Feeds); reason != "" {
		f.finish(r, StatusHeld, reason, c.At)
	} else {
		f.finish(r, StatusPublished, "", c.At)
		f.published = r
	}
	return Outcome{Run: r.ID, Accepted: true}
}

// finish sets r's final (or held) status; a held or published run
// supersedes the runs held before it.
func (f *Fold) finish(r *Run, status, reason string, at time.Time) {
	if f.running == r {
		f.running = nil
	}
	t := at
	r.FinishedAt = &t
	r.Status, r.Reason = status, reason
	if status != StatusHeld && status != StatusPublished {
		return
	}
	for _, o := range f.runs {
		if o != r && o.Status == StatusHeld && o.ID < r.ID {
			o.Status, o.Reason = StatusRejected, "superseded by "+r.ID+"; held because: "+o.Reason
			o.FinishedAt = &t
		}
	}
}

// Runs returns copies of every run, newest first.
func (f *Fold) Runs() []Run {
	out := make([]Run, 0, len(f.runs))
	for i := len(f.runs) - 1; i >= 0; i-- {
		out = append(out, f.runs[i].clone())
	}
	return out
}

// Get returns a copy of run id.
func (f *Fold) Get(id string) (Run, bool) {
	r, ok := f.byID[id]
	if !ok {
		return Run{}, false
	}
	return r.clone(), true
}

// Running returns a copy of the running run.
func (f *Fold) Running() (Run, bool) {
	if f.running == nil {
		return Run{}, false
	}
	return f.running.clone(), true
}

// Published returns a copy of the last published run.
func (f *Fold) Published() (Run, bool) {
	if f.published == nil {
		return Run{}, false
	}
	return f.published.clone(), true
}

// FilesPublished returns, for each feed that a published run the fold
// still knows included as a file feed, when the newest such run was
// published (its FinishedAt: the part completing it, or its approval). A
// feed absent from the map has never been published as a file, as far
// as the fold knows (Forget keeps the last published run, which includes
// every feed of the set it started with).
func (f *Fold) FilesPublished() map[string]time.Time {
	out := map[string]time.Time{}
	for _, r := range f.runs {
		if r.Status != StatusPublished || r.FinishedAt == nil {
			continue
		}
		for _, fd := range r.Feeds {
			if at, ok := out[fd.ID]; fd.File && (!ok || r.FinishedAt.After(at)) {
				out[fd.ID] = *r.FinishedAt
			}
		}
	}
	return out
}

// LastStart is when the newest run started (zero before any).
func (f *Fold) LastStart() time.Time {
	if len(f.runs) == 0 {
		return time.Time{}
	}
	return f.runs[len(f.runs)-1].StartedAt
}

// compareWith fills Previous and Change of each feed from prev.
func compareWith(fs []Feed, prev *Run) {
	if prev == nil {
		return
	}
	for i := range fs {
		for _, pf := range prev.Feeds {
			if pf.ID != fs[i].ID {
				continue
			}
			p := pf.Members
			fs[i].Previous = &p
			if p > 0 {
				c := float64(fs[i].Members-p) / float64(p)
				fs[i].Change = &c
			}
			break
		}
	}
}

// guardReason returns why the guard holds a run with these feed sizes, or
// "" to publish it. A feed is checked when it was in the last published
// run and either size is at least min_size.
func guardReason(g Guard, fs []Feed) string {
	var reasons []string
	for _, f := range fs {
		if f.Previous == nil {
			continue
		}
		prev, cur := *f.Previous, f.Members
		if max(prev, cur) < int64(g.MinSize) {
			continue
		}
		change := math.Inf(1)
		if prev > 0 {
			change = float64(cur-prev) / float64(prev)
		}
		switch {
		case change < -g.MaxDrop:
			reasons = append(reasons, "feed "+f.ID+" dropped from "+strconv.FormatInt(prev, 10)+" to "+
				strconv.FormatInt(cur, 10)+" ("+pct(change)+", max_drop "+pct(g.MaxDrop)+")")
		case change > g.MaxGrowth:
			reasons = append(reasons, "feed "+f.ID+" grew from "+strconv.FormatInt(prev, 10)+" to "+
				strconv.FormatInt(cur, 10)+" ("+pct(change)+", max_growth "+pct(g.MaxGrowth)+")")
		}
	}
	return strings.Join(reasons, "; ")
}

func pct(f float64) string {
	if math.IsInf(f, 0) {
		return "+inf%"
	}
	s := strconv.FormatFloat(f*100, 'f', 1, 64) + "%"
	if f > 0 {
		s = "+" + s
	}
	return s
}
