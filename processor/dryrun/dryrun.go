package dryrun

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/processor"
	"github.com/feedmill/feedmill/processor/grouping"
	"github.com/feedmill/feedmill/state"
)

// Bounds of a dry run.
const (
	// DefaultTimeout is a dry run's time budget, and the most a request
	// may ask for.
	DefaultTimeout = 60 * time.Second
	// DefaultSamples is how many members a dry run shows by default.
	DefaultSamples = 10
	// MaxSamples is the most members (and added or removed ids) it shows.
	MaxSamples = 100
	// yieldEvery is how many offers are evaluated between two yields of
	// the goroutine and two looks at the clock.
	yieldEvery = 256
	// joinCacheMax bounds the records per joined table cached.
	joinCacheMax = 1 << 16
)

// ErrBusy is returned by Run while another dry run is running on the
// same Runner.
var ErrBusy = errors.New("a dry run is already running on this instance; try again when it has finished")

// errOutOfTime stops a scan at the time budget.
var errOutOfTime = errors.New("dry run: time budget spent")

// Compile checks one feed definition as `feedmill validate` would in a
// config with the given custom templates: what config.Validate checks of
// a feed (destinations among others) and feeds.CompileFeed. It returns
// the one-feed Set, or a *feeds.CompileError listing every problem with
// its path relative to the definition (`filter`, `destinations[1]`,
// `group.by`).
func Compile(f config.Feed, templates []config.Template) (*feeds.Set, error) {
	set, err := feeds.CompileFeed(f, templates)
	var problems []feeds.Problem
	if err != nil {
		var ce *feeds.CompileError
		if !errors.As(err, &ce) {
			return nil, err
		}
		problems = ce.Problems
	}
	cfg := config.Default()
	cfg.Feeds, cfg.Templates = []config.Feed{f}, templates
	var ve *config.ValidationError
	if errors.As(cfg.Validate(), &ve) {
		for _, p := range ve.Problems {
			path, ok := feedPath(p.Path, f.ID)
			if !ok || slices.ContainsFunc(problems, func(q feeds.Problem) bool { return q.Path == path }) {
				continue // not the feed's, or said already by the compiler
			}
			problems = append(problems, feeds.Problem{Path: path, Message: p.Message})
		}
	}
	if len(problems) > 0 {
		return nil, &feeds.CompileError{Problems: problems}
	}
	return set, nil
}

// feedPath turns config.Validate's path of the one feed (`feeds[0].id`,
// `feeds[0] (id).destinations[1]`) into one relative to the definition.
func feedPath(p, id string) (string, bool) {
	for _, prefix := range []string{fmt.Sprintf("feeds[0] (%s).", id), "feeds[0]."} {
		if rest, ok := strings.CutPrefix(p, prefix); ok {
			return rest, true
		}
	}
	return "", false
}

// Runner runs dry runs over the local state, one at a time. Set the
// fields before the first Run; Run is safe for concurrent use (all but
// one caller get ErrBusy).
type Runner struct {
	Store *state.Store
	Serde *records.Serde
	// Coverage returns the offers partitions this instance owns (sorted)
	// and the offers topic's partition count
	// (processor.Pipeline.Coverage).
	Coverage func() (owned []int32, total int32)
	// MaxEventBytes is processor.max_event_bytes: offers the event size
	// rule leaves out of every feed are left out here too (0: its
	// default).
	MaxEventBytes int
	// Now is the clock (default time.Now): the feed is evaluated at Now
	// when Run starts, and the time budget is measured with it.
	Now func() time.Time

	busy atomic.Bool
}

// Options are one dry run's bounds.
type Options struct {
	// Timeout is the time budget; 0 or more than DefaultTimeout means
	// DefaultTimeout.
	Timeout time.Duration
	// Samples is how many members to show; 0 means DefaultSamples, more
	// than MaxSamples means MaxSamples, negative none.
	Samples int
}

// Result is what a dry run found (docs/contract.md, Explain and dry-run,
// holds its JSON form).
type Result struct {
	Feed    string `json:"feed"`
	Grouped bool   `json:"grouped"`
	// Complete is false when the time budget stopped the run: the counts
	// cover the offers scanned until then.
	Complete bool `json:"complete"`
	// Members is the number of offers the feed would hold in the
	// partitions scanned; for a grouped feed the number of keys, each
	// with its winner among those partitions.
	Members int64 `json:"members"`
	// Candidates is the number of offers whose filter holds (for a
	// grouped feed: and that have a group key).
	Candidates int64 `json:"candidates"`
	// Samples are the first members in scan order (partition, offer id);
	// for a grouped feed the winners of the first keys seen.
	Samples []Sample `json:"samples"`
	// Current compares with the feed of the same id in force; nil when
	// there is none.
	Current *Comparison `json:"current"`
	// Partitions are the offers partitions scanned whole, of
	// PartitionsTotal (0 when this instance has not yet read it).
	Partitions      []int32 `json:"partitions"`
	PartitionsTotal int32   `json:"partitions_total"`
	// Scanned is the number of offer keys read.
	Scanned int64  `json:"scanned"`
	TookMs  int64  `json:"took_ms"`
	Errors  Errors `json:"errors"`
	// Notes say what the numbers do not cover.
	Notes []string `json:"notes"`
}

// Sample is one member and the item its template renders.
type Sample struct {
	OfferID string `json:"offer_id"`
	// GroupKey is the key a grouped feed's member won.
	GroupKey string `json:"group_key,omitempty"`
	Item     string `json:"item"`
}

// Comparison is the dry run's membership against the stored membership
// of the feed of the same id in force, in the partitions scanned.
type Comparison struct {
	// Members is the feed's stored member count.
	Members   int64 `json:"members"`
	Adds      int64 `json:"adds"`
	Removes   int64 `json:"removes"`
	Unchanged int64 `json:"unchanged"`
	// SampleAdds and SampleRemoves are the smallest offer ids added and
	// removed, as many as Samples.
	SampleAdds    []string `json:"sample_adds"`
	SampleRemoves []string `json:"sample_removes"`
}

// Errors counts the run-time failures of the feed's filter, group.by and
// group.of (over every offer evaluated) and template (over every item
// rendered: each member, each candidate of a grouped feed), by kind as
// feedmill_feed_errors_total does, with the first one's message.
type Errors struct {
	Total    uint64 `json:"total"`
	Filter   uint64 `json:"filter"`
	Template uint64 `json:"template"`
	Budget   uint64 `json:"budget"`
	First    string `json:"first,omitempty"`
}

// Run evaluates set's one feed (from Compile) over the offers partitions
// this instance owns, each read from its own snapshot, on the calling
// goroutine. current is the feed set in force: a feed of the same id is
// compared with, and its size rule applies (nil: none). It returns
// ErrBusy while another Run is running, ctx's error when ctx ends, a
// state error when the store cannot be read. At the time budget it
// returns what it counted with Complete false.
func (r *Runner) Run(ctx context.Context, set *feeds.Set, current *feeds.Set, o Options) (*Result, error) {
	if len(set.Feeds()) != 1 {
		return nil, fmt.Errorf("dry run: want a set of one feed, got %d", len(set.Feeds()))
	}
	if !r.busy.CompareAndSwap(false, true) {
		return nil, ErrBusy
	}
	defer r.busy.Store(false)
	clock := r.Now
	if clock == nil {
		clock = time.Now
	}
	timeout := o.Timeout
	if timeout <= 0 || timeout > DefaultTimeout {
		timeout = DefaultTimeout
	}
	samples := o.Samples
	switch {
	case samples == 0:
		samples = DefaultSamples
	case samples > MaxSamples:
		samples = MaxSamples
	case samples < 0:
		samples = 0
	}
	start := clock()
	f := set.Feeds()[0]
	rules := current
	if rules == nil {
		rules = set
	}
	budget, err := processor.NewEventBudget(r.MaxEventBytes, rules)
	if err != nil {
		return nil, fmt.Errorf("dry run: %w", err)
	}
	s := &scan{
		r: r, ctx: ctx, clock: clock, deadline: start.Add(timeout), now: start, feed: f, budget: budget,
		ev: set.NewEvaluator(), joiner: processor.NewJoiner(r.Serde, joinCacheMax), hit: make([]bool, 1),
		samples: samples,
		res:     &Result{Feed: f.ID, Grouped: f.Grouped(), Complete: true, Samples: []Sample{}, Partitions: []int32{}, Notes: []string{}},
	}
	var names []string
	if current != nil {
		if cf, ok := current.Feed(f.ID); ok {
			s.cur = cf
			s.cmp = &Comparison{}
			s.adds, s.removes = smallest{n: samples}, smallest{n: samples}
		}
		for _, cf := range current.Feeds() {
			names = append(names, cf.ID)
			names = append(names, cf.Destinations...)
		}
	}
	s.intern = state.NewNames(names...).Intern
	if f.Grouped() {
		s.groups = map[string]*group{}
	}
	owned, total := r.Coverage()
	s.res.PartitionsTotal = total
	for _, p := range owned {
		if !clock().Before(s.deadline) {
			s.res.Complete = false
			break
		}
		if err := s.partition(p); errors.Is(err, errOutOfTime) {
			s.res.Complete = false
			break
		} else if err != nil {
			return nil, err
		}
		s.res.Partitions = append(s.res.Partitions, p)
	}
	s.finish()
	s.res.TookMs = clock().Sub(start).Milliseconds()
	s.notes(timeout)
	return s.res, nil
}

// scan is one dry run's evaluation state.
type scan struct {
	r        *Runner
	ctx      context.Context
	clock    func() time.Time
	deadline time.Time
	now      time.Time // evaluation time
	feed     *feeds.Feed
	budget   processor.EventBudget
	ev       *feeds.Evaluator
	joiner   *processor.Joiner
	intern   state.Interner
	view     feeds.View
	hit      []bool
	key      []byte
	item     []byte
	n        int
	samples  int
	res      *Result

	cur            *feeds.Feed // the feed of the same id in force, or nil
	cmp            *Comparison
	adds, removes  smallest
	groups         map[string]*group // grouped feeds: by key
	sampleKeys     []string          // grouped feeds: the keys sampled, in order seen
	firstErrorSeen bool
}

// group is one key of a grouped feed: its winner so far and the offers in
// force in the feed of the same id that are candidates of it.
type group struct {
	winner    string
	order     state.Order
	winnerCur bool // the winner is a member of the feed in force
	sampled   bool
	item      []byte   // the winner's rendered item, when sampled
	cur       []string // candidates that are members of the feed in force
}

// partition scans offers partition p from a snapshot of its own.
func (s *scan) partition(p int32) error {
	snap := s.r.Store.NewSnapshot()
	defer func() {
		_ = snap.Close() // read-only: nothing to lose
	}()
	err := snap.ScanPartition(s.ctx, p, s.intern, func(it *state.ScanItem) error {
		s.n++
		if s.n%yieldEvery == 0 {
			if !s.clock().Before(s.deadline) {
				return errOutOfTime
			}
			runtime.Gosched() // a dry run must not starve the stream
		}
		s.res.Scanned++
		return s.offer(snap, it)
	})
	if err != nil && !errors.Is(err, errOutOfTime) && s.ctx.Err() == nil {
		err = fmt.Errorf("dry run of feed %s, partition %d: %w", s.feed.ID, p, err)
	}
	return err
}

// offer evaluates one scanned offer.
func (s *scan) offer(snap *state.Snapshot, it *state.ScanItem) error {
	isCur := s.cur != nil && it.Membership != nil && it.Membership.Find(s.cur.ID) >= 0
	if isCur {
		s.cmp.Members++
	}
	in := false
	var order state.Order
	if it.Offer != nil && s.budget.Fits(it.Offer) {
		if err := s.joiner.Join(snap, it.Offer, &s.view); err != nil {
			return err
		}
		s.ev.Match(&s.view, s.now, s.hit)
		in = s.hit[0]
		if in && s.groups != nil {
			s.key, order, in = grouping.Evaluate(s.ev, s.feed, &s.view, s.now, s.key[:0])
		}
		if in {
			s.res.Candidates++
			s.item = s.ev.AppendItem(s.item[:0], s.feed.Template, &s.view, s.now)
		}
		s.noteFirstError()
	}
	if s.groups != nil {
		if in {
			s.candidate(it.OfferID, order, isCur)
		} else if isCur {
			s.cmp.Removes++
			s.removes.add(it.OfferID)
		}
		return nil
	}
	if in {
		s.res.Members++
		if len(s.res.Samples) < s.samples {
			s.res.Samples = append(s.res.Samples, Sample{OfferID: it.OfferID, Item: itemText(s.item)})
		}
	}
	if s.cmp != nil {
		switch {
		case in && isCur:
			s.cmp.Unchanged++
		case in:
			s.cmp.Adds++
			s.adds.add(it.OfferID)
		case isCur:
			s.cmp.Removes++
			s.removes.add(it.OfferID)
		}
	}
	return nil
}

// candidate enters offer id, with its key in s.key and its order, in its
// group: it wins when its order is lower, ties to the lower offer id.
func (s *scan) candidate(id string, order state.Order, isCur bool) {
	g := s.groups[string(s.key)]
	switch {
	case g == nil:
		g = &group{winner: id, order: order, winnerCur: isCur}
		if len(s.sampleKeys) < s.samples {
			g.sampled = true
			g.item = append(g.item, s.item...)
			s.sampleKeys = append(s.sampleKeys, string(s.key))
		}
		s.groups[string(s.key)] = g
	case order < g.order || order == g.order && id < g.winner:
		g.winner, g.order, g.winnerCur = id, order, isCur
		if g.sampled {
			g.item = append(g.item[:0], s.item...)
		}
	}
	if isCur {
		g.cur = append(g.cur, id)
	}
}

// noteFirstError keeps the message of the first evaluation error.
func (s *scan) noteFirstError() {
	if s.firstErrorSeen || s.ev.ErrorTotal() == 0 {
		return
	}
	s.firstErrorSeen = true
	le := s.ev.LastError(0)
	if le.Err != nil {
		s.res.Errors.First = le.Error()
	}
}

// finish computes the grouped feed's members and the comparison, and
// the error counts.
func (s *scan) finish() {
	if s.groups != nil {
		s.res.Members = int64(len(s.groups))
		for _, k := range s.sampleKeys {
			g := s.groups[k]
			s.res.Samples = append(s.res.Samples, Sample{OfferID: g.winner, GroupKey: k, Item: itemText(g.item)})
		}
		if s.cmp != nil {
			for _, g := range s.groups {
				if g.winnerCur {
					s.cmp.Unchanged++
				} else {
					s.cmp.Adds++
					s.adds.add(g.winner)
				}
				for _, id := range g.cur {
					if id != g.winner {
						s.cmp.Removes++
						s.removes.add(id)
					}
				}
			}
		}
	}
	if s.cmp != nil {
		s.cmp.SampleAdds, s.cmp.SampleRemoves = s.adds.list(), s.removes.list()
		s.res.Current = s.cmp
	}
	c := s.ev.FeedErrors(0)
	s.res.Errors.Filter = c[feeds.KindFilter]
	s.res.Errors.Template = c[feeds.KindTemplate]
	s.res.Errors.Budget = c[feeds.KindBudget]
	s.res.Errors.Total = c[feeds.KindFilter] + c[feeds.KindTemplate] + c[feeds.KindBudget]
}

// notes says what the result does not cover.
func (s *scan) notes(timeout time.Duration) {
	res := s.res
	if !res.Complete {
		res.Notes = append(res.Notes, fmt.Sprintf("stopped at the time budget (%s): the counts cover the %d offers scanned; "+
			"partitions lists those scanned whole", timeout, res.Scanned))
	}
	covered := int32(len(res.Partitions))
	if res.PartitionsTotal > 0 && covered >= res.PartitionsTotal {
		return
	}
	what := fmt.Sprintf("%d of the %d offers partitions", covered, res.PartitionsTotal)
	if res.PartitionsTotal == 0 {
		what = fmt.Sprintf("%d offers partitions (the topic's partition count is not known yet)", covered)
	}
	if res.Grouped {
		res.Notes = append(res.Notes, "groups span partitions: the winners are picked among the offers of the "+what+
			" scanned here; a key's winner may be in a partition another instance owns, so the members of the instances do not add up")
		return
	}
	res.Notes = append(res.Notes, "the counts cover the "+what+" scanned here (like GET /api/feeds): the sum over the instances is the feed's")
}

// itemText is a rendered item without its trailing newline.
func itemText(b []byte) string { return strings.TrimSuffix(string(b), "\n") }

// smallest keeps the n smallest strings added, sorted.
type smallest struct {
	n  int
	xs []string
}

func (m *smallest) add(s string) {
	if m.n <= 0 || len(m.xs) == m.n && s >= m.xs[len(m.xs)-1] {
		return
	}
	i, found := slices.BinarySearch(m.xs, s)
	if found {
		return
	}
	if len(m.xs) == m.n {
		m.xs = m.xs[:len(m.xs)-1]
	}
	m.xs = slices.Insert(m.xs, i, s)
}

// list returns the strings kept (never nil).
func (m *smallest) list() []string {
	if m.xs == nil {
		return []string{}
	}
	return m.xs
}
