package admin

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/feedmill/feedmill/processor/runlog"
)

// runsShown bounds the runs list (the run log keeps runlog.Keep).
const runsShown = 100

// decideTimeout bounds waiting for a log (runs, feeds) to record a
// command, as the API waits.
const decideTimeout = 30 * time.Second

type runsData struct {
	Runs []runlog.Run
}

// runsList is GET /admin/runs.
func (p *Page) runsList(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, http.StatusOK, "runs", view{Title: "Full-pass runs", Nav: "runs", Notice: notice(r),
		Data: runsData{Runs: p.Runs.Runs(runsShown)}})
}

// startRun is POST /admin/runs: start a full pass (or find the one
// running) and show it.
func (p *Page) startRun(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), decideTimeout)
	defer cancel()
	id, started, err := p.Runs.Start(ctx)
	if err != nil {
		p.Logger.Error("admin page: start full pass", zap.Error(err))
		p.render(w, r, http.StatusServiceUnavailable, "runs", view{Title: "Full-pass runs", Nav: "runs",
			Error: "Starting a full pass failed: " + err.Error(), Data: runsData{Runs: p.Runs.Runs(runsShown)}})
		return
	}
	done := "started"
	if !started {
		done = "running"
	}
	http.Redirect(w, r, "/admin/runs/"+url.PathEscape(id)+"?done="+done, http.StatusSeeOther)
}

type runData struct {
	Run  runlog.Run
	Held bool
}

// runPage is GET /admin/runs/{id}: the run, its feeds' sizes against the
// previous published run's (the guard's comparison), and Approve and
// Reject while it is held.
func (p *Page) runPage(w http.ResponseWriter, r *http.Request) {
	p.showRun(w, r, http.StatusOK, notice(r), "")
}

func (p *Page) showRun(w http.ResponseWriter, r *http.Request, status int, notice, msg string) {
	id := r.PathValue("id")
	run, err := p.Runs.GetRun(id)
	switch {
	case errors.Is(err, runlog.ErrRunNotFound):
		p.fail(w, r, http.StatusNotFound, "Run "+id, "There is no run "+id+" in the run log (it keeps the last "+strconv.Itoa(runlog.Keep)+").")
		return
	case err != nil:
		p.Logger.Error("admin page: read run", zap.String("run", id), zap.Error(err))
		p.fail(w, r, http.StatusServiceUnavailable, "Run "+id, "Reading the run failed: "+err.Error())
		return
	}
	p.render(w, r, status, "run", view{Title: "Run " + run.ID, Nav: "runs", Notice: notice, Error: msg,
		Data: runData{Run: run, Held: run.Status == runlog.StatusHeld}})
}

// decideRun is POST /admin/runs/{id}/approve and /reject: the full
// pass's Approve or Reject, then the run's page (303), or the run's page
// with the refusal (404, 409, 503).
func (p *Page) decideRun(fn func(ctx context.Context, id string) (runlog.Run, error), done string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		ctx, cancel := context.WithTimeout(r.Context(), decideTimeout)
		defer cancel()
		_, err := fn(ctx, id)
		switch {
		case errors.Is(err, runlog.ErrRunNotFound):
			p.fail(w, r, http.StatusNotFound, "Run "+id, "There is no run "+id+": "+err.Error())
		case errors.Is(err, runlog.ErrRunNotHeld):
			p.showRun(w, r, http.StatusConflict, "", "The run is not held (any more): "+err.Error())
		case err != nil:
			p.Logger.Error("admin page: decide run", zap.String("run", id), zap.Error(err))
			p.showRun(w, r, http.StatusServiceUnavailable, "", "The decision was not recorded: "+err.Error())
		default:
			http.Redirect(w, r, "/admin/runs/"+url.PathEscape(id)+"?done="+done, http.StatusSeeOther)
		}
	}
}
