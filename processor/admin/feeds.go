package admin

import (
	"context"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/processor/dryrun"
	"github.com/feedmill/feedmill/processor/runlog"
)

// feedRow is one feed of the feeds list.
type feedRow struct {
	ID           string
	Template     string
	Destinations []string
	File         bool
	Grouped      bool
	// Members is the live member count in this instance's partitions.
	Members int64
	// Errors are feedmill_feed_errors_total on this instance, by kind in
	// feeds.ErrorKind order.
	Errors   []errorCount
	Warnings int
	// Published is when the last published run that included the feed
	// as a file was published, and that run (zero, "" when none).
	Published time.Time
	RunID     string
	// Backfill is the number of this instance's partitions still
	// re-evaluating for a change of the feed.
	Backfill int
}

type errorCount struct {
	Kind string
	N    float64
}

// coverage is the instance's share of the offers partitions.
type coverage struct {
	Owned []int32
	Total int32
}

type feedsData struct {
	Feeds    []feedRow
	Coverage coverage
	// Backfilled is how many offers this instance re-evaluated for feed
	// changes since it started.
	Backfilled int64
}

// feedsList is GET /: the feeds in force.
func (p *Page) feedsList(w http.ResponseWriter, r *http.Request) {
	set, defs, templates := p.Feeds()
	counts, err := p.Counts()
	if err != nil {
		p.Logger.Error("admin page: read member counts", zap.Error(err))
		p.fail(w, r, http.StatusInternalServerError, "Feeds", "Reading the member counts failed: "+err.Error())
		return
	}
	warnings := p.warnings(set, defs, templates)
	published := p.published()
	var pending map[string]int
	d := feedsData{}
	if p.Backfill != nil {
		pending, d.Backfilled = p.Backfill()
	}
	if p.Coverage != nil {
		d.Coverage.Owned, d.Coverage.Total = p.Coverage()
	}
	for _, f := range set.Feeds() {
		row := feedRow{ID: f.ID, Template: f.Template.ID, Destinations: f.Destinations, File: f.File, Grouped: f.Grouped(),
			Members: counts[f.ID], Errors: p.feedErrors(f.ID), Warnings: len(warnings[f.ID]), Backfill: pending[f.ID]}
		if pub, ok := published[f.ID]; ok {
			row.Published, row.RunID = pub.at, pub.run
		}
		d.Feeds = append(d.Feeds, row)
	}
	v := view{Title: "Feeds", Nav: "feeds", Data: d}
	if p.SetErr != nil {
		if err := p.SetErr(); err != nil {
			v.Error = "The feed log's newest feed set is not in force: " + err.Error()
		}
	}
	p.render(w, r, http.StatusOK, "feeds", v)
}

func (p *Page) feedErrors(feedID string) []errorCount {
	var byKind map[string]float64
	if p.Errors != nil {
		byKind = p.Errors(feedID)
	}
	out := make([]errorCount, 0, feeds.NumErrorKinds)
	for k := range feeds.NumErrorKinds {
		kind := feeds.ErrorKind(k).String()
		out = append(out, errorCount{Kind: kind, N: byKind[kind]})
	}
	return out
}

// publication is a feed file's last publication.
type publication struct {
	at  time.Time
	run string
}

// published returns, per file feed, the last publication among the runs
// the run log keeps (runlog.Keep): the run and when it was published (by
// its last part or its approval), as the run log's fold computes
// feedmill_feed_last_published_timestamp_seconds.
func (p *Page) published() map[string]publication {
	out := map[string]publication{}
	for _, run := range p.Runs.Runs(runlog.Keep) {
		if run.Status != runlog.StatusPublished || run.FinishedAt == nil {
			continue
		}
		for _, f := range run.Feeds {
			if last, ok := out[f.ID]; f.File && (!ok || run.FinishedAt.After(last.at)) {
				out[f.ID] = publication{at: *run.FinishedAt, run: run.ID}
			}
		}
	}
	return out
}

// warnings returns feeds.Lint's warnings of the definitions set was
// compiled from, by feed id (its own and its custom template's). They
// are computed once per set.
func (p *Page) warnings(set *feeds.Set, defs []config.Feed, templates []config.Template) map[string][]feeds.Warning {
	p.lintMu.Lock()
	defer p.lintMu.Unlock()
	if p.lintSet == set && p.lint != nil {
		return p.lint
	}
	byTemplate := map[string][]feeds.Warning{}
	byFeed := map[string][]feeds.Warning{}
	for _, w := range feeds.Lint(defs, templates) {
		switch {
		case w.Feed != "":
			byFeed[w.Feed] = append(byFeed[w.Feed], w)
		case w.Template != "":
			byTemplate[w.Template] = append(byTemplate[w.Template], w)
		}
	}
	for _, f := range set.Feeds() {
		if f.Template != nil && !f.Template.Builtin {
			byFeed[f.ID] = append(byFeed[f.ID], byTemplate[f.Template.ID]...)
		}
	}
	p.lintSet, p.lint = set, byFeed
	return byFeed
}

// Bounds of a feed page's sample.
const (
	// sampleTimeout is the time budget of the dry run that samples a
	// feed's members.
	sampleTimeout = 3 * time.Second
	// sampleMembers is how many members it shows.
	sampleMembers = 10
)

type feedData struct {
	Def      config.Feed
	YAML     string
	Builtin  bool
	File     bool
	Members  int64
	Errors   []errorCount
	Warnings []feeds.Warning
	// Published and RunID: the feed file's last publication.
	Published time.Time
	RunID     string
	Coverage  coverage
	// Sample is the dry run of the feed's own definition; SampleError
	// says why there is none.
	Sample      *dryrun.Result
	SampleError string
	SampleTime  time.Duration
}

// feedPage is GET /admin/feeds/{id}: the definition, the warnings and a
// sample of members from a short dry run of the definition in force.
func (p *Page) feedPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	set, defs, templates := p.Feeds()
	f, ok := set.Feed(id)
	var def *config.Feed
	for i := range defs {
		if defs[i].ID == id {
			def = &defs[i]
		}
	}
	if !ok || def == nil {
		p.fail(w, r, http.StatusNotFound, "Feed "+id, "There is no feed "+id+" in force.")
		return
	}
	counts, err := p.Counts()
	if err != nil {
		p.Logger.Error("admin page: read member counts", zap.Error(err))
		p.fail(w, r, http.StatusInternalServerError, "Feed "+id, "Reading the member counts failed: "+err.Error())
		return
	}
	d := feedData{Def: *def, Builtin: f.Template.Builtin, File: f.File, Members: counts[id], Errors: p.feedErrors(id),
		Warnings: p.warnings(set, defs, templates)[id], SampleTime: sampleTimeout}
	if y, err := yaml.Marshal(def); err == nil {
		d.YAML = string(y)
	}
	if pub, ok := p.published()[id]; ok {
		d.Published, d.RunID = pub.at, pub.run
	}
	if p.Coverage != nil {
		d.Coverage.Owned, d.Coverage.Total = p.Coverage()
	}
	d.Sample, d.SampleError = p.sample(r.Context(), *def, templates, set)
	p.render(w, r, http.StatusOK, "feed", view{Title: "Feed " + id, Nav: "feeds", Data: d})
}

// sample dry-runs def (a feed in force) for a few members within
// sampleTimeout; the message says why there is no result.
func (p *Page) sample(ctx context.Context, def config.Feed, templates []config.Template, current *feeds.Set) (*dryrun.Result, string) {
	if p.DryRun == nil {
		return nil, "Dry runs are not available on this instance."
	}
	one, err := dryrun.Compile(def, templates)
	if err != nil {
		return nil, "The definition does not compile on its own: " + err.Error()
	}
	res, err := p.DryRun.Run(ctx, one, current, dryrun.Options{Timeout: sampleTimeout, Samples: sampleMembers})
	switch {
	case errors.Is(err, dryrun.ErrBusy):
		return nil, "Another dry run is running on this instance: reload the page in a moment for a sample of members."
	case err != nil:
		p.Logger.Error("admin page: sample a feed", zap.String("feed", def.ID), zap.Error(err))
		return nil, "The dry run failed: " + err.Error()
	}
	return res, ""
}
