package feedchange

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/processor/feedlog"
)

// Stream is what the changer needs of the streaming path.
type Stream interface {
	// SetFeeds puts set in force.
	SetFeeds(set *feeds.Set) error
	// Align brings the local state in line with defs: it starts the
	// backfill of the feeds whose definitions differ from those the
	// state was last aligned with, and returns their ids.
	Align(ctx context.Context, defs []config.Feed, templates []config.Template) ([]string, error)
}

// Estimate counts a feed's members under a new definition and under its
// current one (over this instance's partitions: a ratio is what the
// guard compares).
type Estimate func(ctx context.Context, f config.Feed) (next, current int64, err error)

// Deps are what a Changer needs.
type Deps struct {
	Log       *feedlog.Log
	Stream    Stream
	Guard     config.Guard
	Estimate  Estimate // nil: changes are never held for their size
	Templates []config.Template
	// OnSet is called with every set put in force (the readers of the
	// set: the full pass, the feed store, the HTTP API).
	OnSet  func(set *feeds.Set, defs []config.Feed)
	Logger *zap.Logger
}

// Changer applies feed changes. Safe for concurrent use.
type Changer struct {
	d      Deps
	logger *zap.Logger

	mu        sync.Mutex
	templates []config.Template
	set       *feeds.Set
	defs      []config.Feed
	version   int64
	err       error         // the last set that did not compile
	ready     chan struct{} // closed once the first set is in force
	readyOnce sync.Once
	kick      chan struct{}
}

// New returns a changer; Run follows the log.
func New(d Deps) *Changer {
	return &Changer{d: d, logger: d.Logger.Named("feedchange"), templates: d.Templates, version: -2,
		ready: make(chan struct{}), kick: make(chan struct{}, 1)}
}

// Ready is closed once the feed set of the log is in force (the stream
// must not consume before).
func (c *Changer) Ready() <-chan struct{} { return c.ready }

// Set returns the feed set in force and its definitions (nil before
// Ready).
func (c *Changer) Set() (*feeds.Set, []config.Feed) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.set, c.defs
}

// Run waits for the log to catch up, proposes config (the config file's
// feeds and templates), then puts every new set of the log in force until
// ctx ends.
func (c *Changer) Run(ctx context.Context, cfgFeeds []config.Feed) error {
	for !c.d.Log.CaughtUp() {
		select {
		case <-ctx.Done():
			return nil
		case <-c.d.Log.Changed():
		}
	}
	if err := c.ProposeConfig(ctx, cfgFeeds, c.d.Templates); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	for {
		changed := c.d.Log.Changed()
		if err := c.apply(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-c.kick:
		}
	}
}

// apply puts the log's set in force when it changed.
func (c *Changer) apply(ctx context.Context) error {
	entries, version := c.d.Log.Feeds()
	c.mu.Lock()
	same := version == c.version
	templates := c.templates
	c.mu.Unlock()
	if same {
		return nil
	}
	defs := make([]config.Feed, len(entries))
	for i, e := range entries {
		defs[i] = e.Feed
	}
	set, err := feeds.Compile(defs, templates)
	if err != nil {
		// A feed of the log the config's templates cannot build (a
		// template removed from the file): the set in force stays.
		c.mu.Lock()
		c.err, c.version = err, version
		c.mu.Unlock()
		c.logger.Error("the feed set of the feed log does not compile; the set in force stays; fix the templates or the feed", zap.Error(err))
		return nil
	}
	if err := c.d.Stream.SetFeeds(set); err != nil {
		return fmt.Errorf("put the feed set in force: %w", err)
	}
	changed, err := c.d.Stream.Align(ctx, defs, templates)
	if err != nil {
		return fmt.Errorf("start the backfill of changed feeds: %w", err)
	}
	c.mu.Lock()
	prev := c.defs
	c.set, c.defs, c.version, c.err = set, defs, version, nil
	c.mu.Unlock()
	if c.d.OnSet != nil {
		c.d.OnSet(set, defs)
	}
	added, modified, removed := diff(prev, defs)
	c.logger.Info("feed set in force", zap.Int("feeds", len(defs)), zap.Strings("added", added),
		zap.Strings("changed", modified), zap.Strings("removed", removed), zap.Strings("backfill", changed))
	c.readyOnce.Do(func() { close(c.ready) })
	return nil
}

// Templates returns the custom templates the set in force is built with.
func (c *Changer) Templates() []config.Template {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.templates
}

// Err returns why the log's newest set is not in force ("" when it is).
func (c *Changer) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// ProposeConfig proposes the config file's feeds and templates (at start
// and on reload). A feed the file defines differently from when it was
// last proposed (or for the first time) is put in force at once, or held
// when the change moves its size beyond the guard; a feed the file no
// longer has is held for removal. Feeds the file left as they were keep
// what the API made of them since.
func (c *Changer) ProposeConfig(ctx context.Context, fs []config.Feed, templates []config.Template) error {
	if _, err := feeds.Compile(fs, templates); err != nil {
		return fmt.Errorf("config feeds: %w", err)
	}
	c.mu.Lock()
	c.templates = templates
	c.version = -2 // compile again with these templates
	c.mu.Unlock()
	entries, _ := c.d.Log.Feeds()
	byID := map[string]feedlog.Entry{}
	for _, e := range entries {
		byID[e.Feed.ID] = e
	}
	baseline := c.d.Log.Baseline()
	var added, changed, held []string
	var ops []feedlog.Op // written at once: a first start writes every feed
	for _, f := range fs {
		if b, ok := baseline[f.ID]; ok && sameFeed(b, f) {
			continue // unchanged in the file
		}
		e, ok := byID[f.ID]
		switch {
		case ok && sameFeed(e.Feed, f):
		case ok:
			// A change: it may be held (the guard), so it is written on
			// its own.
			res, err := c.propose(ctx, f, true, feedlog.SourceConfig, "config")
			if err != nil {
				return err
			}
			if res.Held != nil {
				held = append(held, f.ID)
			} else {
				changed = append(changed, f.ID)
			}
		default:
			ops = append(ops, feedlog.SetOp(f, feedlog.SourceConfig, "config", feedlog.NewChangeID(time.Now())))
			added = append(added, f.ID)
		}
		ops = append(ops, feedlog.BaselineOp(f))
	}
	var removals []string
	for id := range baseline {
		if slices.ContainsFunc(fs, func(f config.Feed) bool { return f.ID == id }) {
			continue
		}
		if _, ok := byID[id]; ok {
			if _, err := c.remove(ctx, id, feedlog.SourceConfig, "config"); err != nil {
				return err
			}
			removals = append(removals, id)
		}
		ops = append(ops, feedlog.ForgetBaselineOp(id))
	}
	if err := c.d.Log.Write(ctx, ops...); err != nil {
		return err
	}
	slices.Sort(removals)
	c.logger.Info("config feeds proposed", zap.Strings("added", added), zap.Strings("changed", changed),
		zap.Strings("held_changes", held), zap.Strings("held_removals", removals))
	select {
	case c.kick <- struct{}{}:
	default:
	}
	return nil
}

// Result says what a proposal did.
type Result struct {
	// Change is the change's id.
	Change string `json:"change"`
	// Applied is true when the change is in force (its backfill runs);
	// otherwise Held says why it waits for approval.
	Applied bool            `json:"applied"`
	Held    *feedlog.Change `json:"held,omitempty"`
}

// ErrUnknownFeed is Delete's error for a feed not in force.
var ErrUnknownFeed = errors.New("no such feed in force")

// Put proposes feed f (by is who asks): a new feed is put in force at
// once, a change too unless it moves the feed's size beyond the guard.
// The set it makes must compile (a *feeds.CompileError otherwise).
func (c *Changer) Put(ctx context.Context, f config.Feed, by string) (Result, error) {
	entries, _ := c.d.Log.Feeds()
	defs := make([]config.Feed, 0, len(entries)+1)
	exists := false
	for _, e := range entries {
		if e.Feed.ID == f.ID {
			exists = true
			if sameFeed(e.Feed, f) {
				return Result{Change: e.Change, Applied: true}, nil
			}
			continue
		}
		defs = append(defs, e.Feed)
	}
	c.mu.Lock()
	templates := c.templates
	c.mu.Unlock()
	if _, err := feeds.Compile(append(defs, f), templates); err != nil {
		return Result{}, err
	}
	return c.propose(ctx, f, exists, feedlog.SourceAPI, by)
}

// Delete proposes the removal of feed id: always held until approved.
func (c *Changer) Delete(ctx context.Context, id, by string) (Result, error) {
	entries, _ := c.d.Log.Feeds()
	if !slices.ContainsFunc(entries, func(e feedlog.Entry) bool { return e.Feed.ID == id }) {
		return Result{}, fmt.Errorf("%w: %q", ErrUnknownFeed, id)
	}
	return c.remove(ctx, id, feedlog.SourceAPI, by)
}

func (c *Changer) propose(ctx context.Context, f config.Feed, exists bool, source, by string) (Result, error) {
	id := feedlog.NewChangeID(time.Now())
	if exists && c.d.Estimate != nil {
		next, cur, err := c.d.Estimate(ctx, f)
		if err != nil {
			return Result{}, fmt.Errorf("estimate feed %q under its new definition: %w", f.ID, err)
		}
		if reason := beyondGuard(c.d.Guard, cur, next); reason != "" {
			if p, ok := c.d.Log.Pending(f.ID, feedlog.KindChange); ok && p.Feed != nil && sameFeed(*p.Feed, f) {
				return Result{Change: p.ID, Held: &p}, nil
			}
			ch := feedlog.Change{ID: id, FeedID: f.ID, Kind: feedlog.KindChange, Feed: &f, Source: source, Reason: reason, By: by}
			if err := c.d.Log.Hold(ctx, ch); err != nil {
				return Result{}, err
			}
			ch.Status = feedlog.StatusHeld
			return Result{Change: id, Held: &ch}, nil
		}
	}
	if err := c.d.Log.Set(ctx, f, source, by, id); err != nil {
		return Result{}, err
	}
	return Result{Change: id, Applied: true}, nil
}

func (c *Changer) remove(ctx context.Context, feedID, source, by string) (Result, error) {
	if p, ok := c.d.Log.Pending(feedID, feedlog.KindRemove); ok {
		return Result{Change: p.ID, Held: &p}, nil
	}
	ch := feedlog.Change{ID: feedlog.NewChangeID(time.Now()), FeedID: feedID, Kind: feedlog.KindRemove, Source: source,
		Reason: "a removal sends REMOVE for every member of the feed", By: by}
	if err := c.d.Log.Hold(ctx, ch); err != nil {
		return Result{}, err
	}
	ch.Status = feedlog.StatusHeld
	return Result{Change: ch.ID, Held: &ch}, nil
}

// beyondGuard says why a feed going from cur to next members is beyond
// the guard ("" when it is not): the same limits as a full pass's.
func beyondGuard(g config.Guard, cur, next int64) string {
	if cur < int64(g.MinSize) && next < int64(g.MinSize) {
		return ""
	}
	switch {
	case cur > 0 && g.MaxDrop > 0 && float64(cur-next)/float64(cur) > g.MaxDrop:
		return fmt.Sprintf("the feed would drop from %d to %d members here (more than full_pass.guard.max_drop %.0f%%)", cur, next, g.MaxDrop*100)
	case cur > 0 && g.MaxGrowth > 0 && float64(next-cur)/float64(cur) > g.MaxGrowth:
		return fmt.Sprintf("the feed would grow from %d to %d members here (more than full_pass.guard.max_growth %.0f%%)", cur, next, g.MaxGrowth*100)
	}
	return ""
}

// sameFeed reports whether two definitions are the same.
func sameFeed(a, b config.Feed) bool {
	if reflect.DeepEqual(a, b) {
		return true
	}
	ja, _ := json.Marshal(a) // config.Feed always encodes
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// diff lists the feed ids added, changed and removed from prev to next.
func diff(prev, next []config.Feed) (added, changed, removed []string) {
	old := map[string]config.Feed{}
	for _, f := range prev {
		old[f.ID] = f
	}
	for _, f := range next {
		o, ok := old[f.ID]
		switch {
		case !ok:
			added = append(added, f.ID)
		case !sameFeed(o, f):
			changed = append(changed, f.ID)
		}
		delete(old, f.ID)
	}
	for id := range old {
		removed = append(removed, id)
	}
	slices.Sort(removed)
	return added, changed, removed
}
