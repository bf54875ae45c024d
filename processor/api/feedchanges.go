package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/processor/feedchange"
	"github.com/feedmill/feedmill/processor/feedlog"
)

// FeedChangesAPI serves live feed changes (docs/contract.md, Live feed
// changes): PUT /api/feeds/{id} and DELETE /api/feeds/{id} propose a
// change; GET /api/feed-changes lists the held and decided ones; POST
// /api/feed-changes/{id}/approve and /reject decide a held one; GET
// /api/feeds/backfill shows this instance's backfill.
type FeedChangesAPI struct {
	Changer *feedchange.Changer
	Log     *feedlog.Log
	// Backfill returns, per feed, the partitions of this instance still
	// re-evaluating for a feed change, and the offers re-evaluated so far.
	Backfill func() (map[string]int, int64)
	Logger   *zap.Logger
}

// Register adds the endpoints to mux.
func (a *FeedChangesAPI) Register(mux *http.ServeMux) {
	mux.HandleFunc("PUT /api/feeds/{id}", a.put)
	mux.HandleFunc("DELETE /api/feeds/{id}", a.delete)
	mux.HandleFunc("GET /api/feeds/backfill", a.backfill)
	mux.HandleFunc("GET /api/feed-changes", a.list)
	mux.HandleFunc("POST /api/feed-changes/{id}/approve", func(w http.ResponseWriter, r *http.Request) {
		a.decide(w, r, a.Log.Approve)
	})
	mux.HandleFunc("POST /api/feed-changes/{id}/reject", func(w http.ResponseWriter, r *http.Request) {
		a.decide(w, r, a.Log.Reject)
	})
}

// feedChangeTimeout bounds waiting for the feed log to record a change.
const feedChangeTimeout = 30 * time.Second

// by names who asks: the admin token's holder, from the remote address.
func by(r *http.Request) string { return "api " + r.RemoteAddr }

func (a *FeedChangesAPI) put(w http.ResponseWriter, r *http.Request) {
	f, ok := readFeedDefinition(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	if f.ID == "" {
		f.ID = id
	}
	if f.ID != id {
		WriteError(w, http.StatusBadRequest, "the body's id "+strconv.Quote(f.ID)+" differs from the path's "+strconv.Quote(id))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), feedChangeTimeout)
	defer cancel()
	res, err := a.Changer.Put(ctx, f, by(r))
	var ce *feeds.CompileError
	switch {
	case errors.As(err, &ce):
		out := DryRunError{Error: "feed " + strconv.Quote(f.ID) + " does not compile with the feeds in force", Problems: make([]DryRunProblem, 0, len(ce.Problems))}
		for _, p := range ce.Problems {
			out.Problems = append(out.Problems, problemJSON(p))
		}
		WriteJSON(w, http.StatusBadRequest, out)
	case err != nil:
		a.Logger.Warn("feed change not recorded", zap.String("feed", f.ID), zap.Error(err))
		WriteError(w, http.StatusServiceUnavailable, "the feed log cannot be written: "+err.Error())
	case res.Held != nil:
		WriteJSON(w, http.StatusAccepted, res)
	default:
		WriteJSON(w, http.StatusOK, res)
	}
}

func (a *FeedChangesAPI) delete(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), feedChangeTimeout)
	defer cancel()
	res, err := a.Changer.Delete(ctx, r.PathValue("id"), by(r))
	switch {
	case errors.Is(err, feedchange.ErrUnknownFeed):
		WriteError(w, http.StatusNotFound, err.Error())
	case err != nil:
		a.Logger.Warn("feed removal not recorded", zap.String("feed", r.PathValue("id")), zap.Error(err))
		WriteError(w, http.StatusServiceUnavailable, "the feed log cannot be written: "+err.Error())
	default:
		WriteJSON(w, http.StatusAccepted, res)
	}
}

func (a *FeedChangesAPI) list(w http.ResponseWriter, _ *http.Request) {
	out := a.Log.Changes()
	if out == nil {
		out = []feedlog.Change{}
	}
	WriteJSON(w, http.StatusOK, out)
}

func (a *FeedChangesAPI) decide(w http.ResponseWriter, r *http.Request, fn func(ctx context.Context, id, by string) error) {
	ctx, cancel := context.WithTimeout(r.Context(), feedChangeTimeout)
	defer cancel()
	id := r.PathValue("id")
	err := fn(ctx, id, by(r))
	switch {
	case errors.Is(err, feedlog.ErrUnknownChange):
		WriteError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, feedlog.ErrDecided):
		WriteError(w, http.StatusConflict, err.Error())
	case err != nil:
		WriteError(w, http.StatusServiceUnavailable, "the feed log cannot be written: "+err.Error())
	default:
		for _, c := range a.Log.Changes() {
			if c.ID == id {
				WriteJSON(w, http.StatusOK, c)
				return
			}
		}
		WriteError(w, http.StatusNotFound, "feed change "+strconv.Quote(id)+" not found after its decision")
	}
}

type backfillJSON struct {
	// Partitions counts, per feed, this instance's partitions still
	// re-evaluating their offers for a change of that feed.
	Partitions map[string]int `json:"partitions"`
	// Offers is how many offers this instance re-evaluated for feed
	// changes since it started.
	Offers int64 `json:"offers"`
	// Error says why the feed log's newest set is not in force.
	Error string `json:"error,omitempty"`
}

func (a *FeedChangesAPI) backfill(w http.ResponseWriter, _ *http.Request) {
	parts, offers := a.Backfill()
	out := backfillJSON{Partitions: parts, Offers: offers}
	if err := a.Changer.Err(); err != nil {
		out.Error = err.Error()
	}
	WriteJSON(w, http.StatusOK, out)
}
