package feedlog

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/internal/kafkalog"
)

// Sources of a feed definition.
const (
	SourceConfig = "config" // the config file, at start or reload
	SourceAPI    = "api"    // PUT or DELETE /api/feeds/{id}
)

// Kinds of held changes.
const (
	KindRemove = "remove" // the feed would go: REMOVE for all its members
	KindChange = "change" // the new definition changes the feed's size beyond the guard
)

// Statuses of a held change.
const (
	StatusHeld     = "held"
	StatusApproved = "approved"
	StatusRejected = "rejected"
)

// Entry is a feed definition in force.
type Entry struct {
	Feed   config.Feed `json:"feed"`
	Source string      `json:"source"`
	Change string      `json:"change"`
	By     string      `json:"by,omitempty"`
	At     time.Time   `json:"at"`
}

// Change is a held feed change: applied only once approved.
type Change struct {
	ID     string       `json:"id"`
	FeedID string       `json:"feed_id"`
	Kind   string       `json:"kind"`
	Feed   *config.Feed `json:"feed,omitempty"` // the new definition (kind change)
	Source string       `json:"source"`
	Reason string       `json:"reason"`
	By     string       `json:"by,omitempty"`
	At     time.Time    `json:"at"`
	Status string       `json:"status"`
	// DecidedBy and DecidedAt say who approved or rejected it, and when.
	DecidedBy string    `json:"decided_by,omitempty"`
	DecidedAt time.Time `json:"decided_at,omitzero"`
}

// record is one command of the log.
type record struct {
	Op     string       `json:"op"` // set | delete | hold | approve | reject | baseline
	FeedID string       `json:"feed_id,omitempty"`
	Feed   *config.Feed `json:"feed,omitempty"`
	Source string       `json:"source,omitempty"`
	Change string       `json:"change"`
	Kind   string       `json:"kind,omitempty"`
	Reason string       `json:"reason,omitempty"`
	By     string       `json:"by,omitempty"`
	At     time.Time    `json:"at"`
}

// Fold is the state the log's commands build.
type Fold struct {
	feeds   map[string]Entry
	changes map[string]*Change
	// baseline holds the config file's definition of each feed as last
	// proposed: a file's feed is proposed again only when it differs.
	baseline map[string]config.Feed
	version  int64 // offset of the last command that changed the feeds in force (-1: none)
}

func newFold() *Fold {
	return &Fold{feeds: map[string]Entry{}, changes: map[string]*Change{}, baseline: map[string]config.Feed{}, version: -1}
}

func (f *Fold) apply(off int64, key string, value []byte, logger *zap.Logger) {
	if value == nil {
		return // nothing deletes records of this log
	}
	var r record
	if err := json.Unmarshal(value, &r); err != nil {
		logger.Warn("skipping a feed log record that does not decode", zap.Int64("offset", off), zap.String("key", key), zap.Error(err))
		return
	}
	switch r.Op {
	case "set":
		if r.Feed == nil {
			return
		}
		f.feeds[r.Feed.ID] = Entry{Feed: *r.Feed, Source: r.Source, Change: r.Change, By: r.By, At: r.At}
		f.version = off
	case "delete":
		delete(f.feeds, r.FeedID)
		f.version = off
	case "baseline":
		if r.Feed == nil {
			delete(f.baseline, r.FeedID)
		} else {
			f.baseline[r.FeedID] = *r.Feed
		}
	case "hold":
		f.changes[r.Change] = &Change{ID: r.Change, FeedID: r.FeedID, Kind: r.Kind, Feed: r.Feed, Source: r.Source,
			Reason: r.Reason, By: r.By, At: r.At, Status: StatusHeld}
	case "approve", "reject":
		c := f.changes[r.Change]
		if c == nil {
			// Compaction kept only the decision: it carries the change.
			c = &Change{ID: r.Change, FeedID: r.FeedID, Kind: r.Kind, Feed: r.Feed, Source: r.Source, Reason: r.Reason, Status: StatusHeld}
			f.changes[r.Change] = c
		}
		if c.Status != StatusHeld {
			return
		}
		c.DecidedBy, c.DecidedAt = r.By, r.At
		if r.Op == "reject" {
			c.Status = StatusRejected
			return
		}
		c.Status = StatusApproved
		switch c.Kind {
		case KindRemove:
			delete(f.feeds, c.FeedID)
		case KindChange:
			if c.Feed != nil {
				f.feeds[c.FeedID] = Entry{Feed: *c.Feed, Source: c.Source, Change: c.ID, By: r.By, At: r.At}
			}
		}
		f.version = off
	}
}

// Log is the feed log of one instance. Safe for concurrent use.
type Log struct {
	kl     *kafkalog.Log
	fold   *Fold
	logger *zap.Logger
}

// NewMemory returns a log kept in memory (tests, tools).
func NewMemory() *Log {
	l := &Log{fold: newFold(), logger: zap.NewNop()}
	l.kl = kafkalog.NewMemory(func(off int64, key string, value []byte) { l.fold.apply(off, key, value, l.logger) })
	return l
}

// OpenKafka returns the feed log on topic, read with a client built from
// opts. Run consumes it.
func OpenKafka(opts []kgo.Opt, topic string, logger *zap.Logger) (*Log, error) {
	l := &Log{fold: newFold(), logger: logger.Named("feedlog")}
	kl, err := kafkalog.OpenKafka(opts, topic, "feed log (kafka.topics.feeds)",
		func(off int64, key string, value []byte) { l.fold.apply(off, key, value, l.logger) }, l.logger)
	if err != nil {
		return nil, err
	}
	l.kl = kl
	return l, nil
}

// Run follows the log until ctx ends.
func (l *Log) Run(ctx context.Context) error { return l.kl.Run(ctx) }

// Close releases the log's client.
func (l *Log) Close() { l.kl.Close() }

// CaughtUp reports whether every command written before the log started
// is folded.
func (l *Log) CaughtUp() bool { return l.kl.CaughtUp() }

// Changed returns a channel closed at the next fold.
func (l *Log) Changed() <-chan struct{} { return l.kl.Changed() }

// Feeds returns the feeds in force, by id, and the version of that set
// (it grows with every change; -1 before the first).
func (l *Log) Feeds() ([]Entry, int64) {
	var out []Entry
	var v int64
	l.kl.View(func() {
		for _, e := range l.fold.feeds {
			out = append(out, e)
		}
		v = l.fold.version
	})
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Feed.ID, b.Feed.ID) })
	return out, v
}

// Changes returns the held, approved and rejected changes, newest first.
func (l *Log) Changes() []Change {
	var out []Change
	l.kl.View(func() {
		for _, c := range l.fold.changes {
			out = append(out, *c)
		}
	})
	slices.SortFunc(out, func(a, b Change) int { return b.At.Compare(a.At) })
	return out
}

// Pending reports whether a held change of feedID of kind is waiting.
func (l *Log) Pending(feedID, kind string) (Change, bool) {
	var out Change
	found := false
	l.kl.View(func() {
		for _, c := range l.fold.changes {
			if c.Status == StatusHeld && c.FeedID == feedID && c.Kind == kind {
				out, found = *c, true
			}
		}
	})
	return out, found
}

// Op is a command to write with Write (several at once).
type Op struct {
	key string
	rec record
}

// SetOp puts f in force (Set).
func SetOp(f config.Feed, source, by, change string) Op {
	return Op{"feed/" + f.ID, record{Op: "set", FeedID: f.ID, Feed: &f, Source: source, By: by, Change: change}}
}

// HoldOp records a held change (Hold).
func HoldOp(c Change) Op {
	return Op{"change/" + c.ID, record{Op: "hold", FeedID: c.FeedID, Feed: c.Feed, Source: c.Source,
		Change: c.ID, Kind: c.Kind, Reason: c.Reason, By: c.By}}
}

// BaselineOp records f as the config file's definition of its feed as
// proposed.
func BaselineOp(f config.Feed) Op {
	return Op{"config/" + f.ID, record{Op: "baseline", FeedID: f.ID, Feed: &f}}
}

// ForgetBaselineOp records that the config file no longer has feed id.
func ForgetBaselineOp(id string) Op {
	return Op{"config/" + id, record{Op: "baseline", FeedID: id}}
}

// Write writes ops in order and waits until they are folded.
func (l *Log) Write(ctx context.Context, ops ...Op) error {
	recs := make([]kafkalog.Record, len(ops))
	now := time.Now().UTC()
	for i, o := range ops {
		if o.rec.At.IsZero() {
			o.rec.At = now
		}
		v, err := json.Marshal(&o.rec)
		if err != nil {
			return fmt.Errorf("encode feed log %s: %w", o.rec.Op, err)
		}
		recs[i] = kafkalog.Record{Key: o.key, Value: v}
	}
	return l.kl.AppendAll(ctx, recs...)
}

// Baseline returns the config file's feed definitions as last proposed.
func (l *Log) Baseline() map[string]config.Feed {
	out := map[string]config.Feed{}
	l.kl.View(func() {
		for id, f := range l.fold.baseline {
			out[id] = f
		}
	})
	return out
}

// NewChangeID returns a fresh change id.
func NewChangeID(now time.Time) string {
	return "fc-" + now.UTC().Format("20060102-150405") + "-" + strings.ToLower(rand.Text()[:6])
}

// Set puts f in force at once.
func (l *Log) Set(ctx context.Context, f config.Feed, source, by, change string) error {
	return l.Write(ctx, SetOp(f, source, by, change))
}

// Hold records a change to apply once approved.
func (l *Log) Hold(ctx context.Context, c Change) error { return l.Write(ctx, HoldOp(c)) }

// ErrUnknownChange and ErrDecided are what Approve and Reject return for
// a change that does not exist, or no longer waits.
var (
	ErrUnknownChange = errors.New("no such feed change")
	ErrDecided       = errors.New("the feed change was already decided")
)

// Approve applies held change id; Reject drops it.
func (l *Log) Approve(ctx context.Context, id, by string) error {
	return l.decide(ctx, id, "approve", by)
}

// Reject drops held change id.
func (l *Log) Reject(ctx context.Context, id, by string) error {
	return l.decide(ctx, id, "reject", by)
}

// decide writes the decision op on held change id. The record repeats
// the change (compaction keeps only the last record of its key).
func (l *Log) decide(ctx context.Context, id, op, by string) error {
	var c Change
	l.kl.View(func() {
		if x := l.fold.changes[id]; x != nil {
			c = *x
		}
	})
	switch c.Status {
	case "":
		return fmt.Errorf("%w %q", ErrUnknownChange, id)
	case StatusHeld:
	default:
		return fmt.Errorf("%w: %q is %s", ErrDecided, id, c.Status)
	}
	return l.append(ctx, "change/"+id, record{Op: op, Change: id, FeedID: c.FeedID, Kind: c.Kind, Feed: c.Feed,
		Source: c.Source, Reason: c.Reason, By: by})
}

func (l *Log) append(ctx context.Context, key string, r record) error {
	if r.At.IsZero() {
		r.At = time.Now().UTC()
	}
	v, err := json.Marshal(&r)
	if err != nil {
		return fmt.Errorf("encode feed log %s: %w", r.Op, err)
	}
	_, err = l.kl.Append(ctx, key, v)
	return err
}
