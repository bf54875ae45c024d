package admin

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/feedmill/feedmill/processor/feedlog"
)

// changeRow is a feed change with its new definition as YAML.
type changeRow struct {
	feedlog.Change
	YAML string
	Held bool
}

type backfillRow struct {
	Feed       string
	Partitions int
}

type changesData struct {
	Held, Decided []changeRow
	Backfill      []backfillRow
	Backfilled    int64
}

// changesPage is GET /admin/changes: the held feed changes with Approve
// and Reject, the decided ones, and this instance's backfill.
func (p *Page) changesPage(w http.ResponseWriter, r *http.Request) {
	p.showChanges(w, r, http.StatusOK, notice(r), "")
}

func (p *Page) showChanges(w http.ResponseWriter, r *http.Request, status int, notice, msg string) {
	d := changesData{}
	for _, c := range p.Changes.Changes() {
		row := changeRow{Change: c, Held: c.Status == feedlog.StatusHeld}
		if c.Feed != nil {
			if y, err := yaml.Marshal(c.Feed); err == nil {
				row.YAML = string(y)
			}
		}
		if row.Held {
			d.Held = append(d.Held, row)
		} else {
			d.Decided = append(d.Decided, row)
		}
	}
	if p.Backfill != nil {
		var parts map[string]int
		parts, d.Backfilled = p.Backfill()
		for f, n := range parts {
			if n > 0 {
				d.Backfill = append(d.Backfill, backfillRow{Feed: f, Partitions: n})
			}
		}
		slices.SortFunc(d.Backfill, func(a, b backfillRow) int { return strings.Compare(a.Feed, b.Feed) })
	}
	if msg == "" && p.SetErr != nil {
		if err := p.SetErr(); err != nil {
			msg = "The feed log's newest feed set is not in force: " + err.Error()
		}
	}
	p.render(w, r, status, "changes", view{Title: "Feed changes", Nav: "changes", Notice: notice, Error: msg, Data: d})
}

// decideChange is POST /admin/changes/{id}/approve and /reject: the feed
// log's Approve or Reject, then the changes page (303), or the page with
// the refusal (404, 409, 503).
func (p *Page) decideChange(fn func(ctx context.Context, id, by string) error, done string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		ctx, cancel := context.WithTimeout(r.Context(), decideTimeout)
		defer cancel()
		err := fn(ctx, id, by(r))
		switch {
		case errors.Is(err, feedlog.ErrUnknownChange):
			p.showChanges(w, r, http.StatusNotFound, "", "There is no feed change "+id+".")
		case errors.Is(err, feedlog.ErrDecided):
			p.showChanges(w, r, http.StatusConflict, "", "The change was already decided: "+err.Error())
		case err != nil:
			p.Logger.Error("admin page: decide feed change", zap.String("change", id), zap.Error(err))
			p.showChanges(w, r, http.StatusServiceUnavailable, "", "The feed log cannot be written: "+err.Error())
		default:
			http.Redirect(w, r, "/admin/changes?done="+done, http.StatusSeeOther)
		}
	}
}
