package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/feedmill/feedmill/processor/runlog"
)

// Runs is what the runs endpoints need of the full pass
// (*fullpass.FullPass), which answers from the group's run log: every
// instance answers the same.
type Runs interface {
	// Start starts a pass, or returns the id of the one running.
	Start(ctx context.Context) (id string, started bool, err error)
	// Approve and Reject decide a held run; runlog.ErrRunNotHeld when it
	// is not held, runlog.ErrRunNotFound when unknown.
	Approve(ctx context.Context, id string) (runlog.Run, error)
	Reject(ctx context.Context, id string) (runlog.Run, error)
	// Runs lists up to limit runs, newest first.
	Runs(limit int) []runlog.Run
	// GetRun returns one run; runlog.ErrRunNotFound when unknown.
	GetRun(id string) (runlog.Run, error)
}

// RunsAPI serves the full-pass runs: GET /api/runs, GET /api/runs/{id},
// POST /api/runs, POST /api/runs/{id}/approve and
// POST /api/runs/{id}/reject (docs/contract.md, HTTP endpoints).
type RunsAPI struct {
	Runs   Runs
	Logger *zap.Logger
}

// Register adds the runs endpoints to mux.
func (a *RunsAPI) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/runs", a.list)
	mux.HandleFunc("GET /api/runs/{id}", a.get)
	mux.HandleFunc("POST /api/runs", a.start)
	mux.HandleFunc("POST /api/runs/{id}/approve", func(w http.ResponseWriter, r *http.Request) {
		a.decide(w, r, a.Runs.Approve)
	})
	mux.HandleFunc("POST /api/runs/{id}/reject", func(w http.ResponseWriter, r *http.Request) {
		a.decide(w, r, a.Runs.Reject)
	})
}

func (a *RunsAPI) list(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			WriteError(w, http.StatusBadRequest, "limit must be a positive integer")
			return
		}
		limit = n
	}
	out := a.Runs.Runs(limit)
	if out == nil {
		out = []runlog.Run{}
	}
	WriteJSON(w, http.StatusOK, out)
}

func (a *RunsAPI) get(w http.ResponseWriter, r *http.Request) {
	run, err := a.Runs.GetRun(r.PathValue("id"))
	if err != nil {
		a.runError(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, run)
}

// decideTimeout bounds waiting for the run log to record a command.
const decideTimeout = 30 * time.Second

func (a *RunsAPI) start(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), decideTimeout)
	defer cancel()
	id, _, err := a.Runs.Start(ctx)
	if err != nil {
		a.Logger.Error("start full pass", zap.Error(err))
		WriteError(w, http.StatusServiceUnavailable, "start full pass: "+err.Error())
		return
	}
	w.Header().Set("Location", "/api/runs/"+id)
	WriteJSON(w, http.StatusAccepted, map[string]string{"id": id})
}

func (a *RunsAPI) decide(w http.ResponseWriter, r *http.Request, fn func(ctx context.Context, id string) (runlog.Run, error)) {
	ctx, cancel := context.WithTimeout(r.Context(), decideTimeout)
	defer cancel()
	run, err := fn(ctx, r.PathValue("id"))
	if err != nil {
		a.runError(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, run)
}

func (a *RunsAPI) runError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, runlog.ErrRunNotFound):
		WriteError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, runlog.ErrRunNotHeld):
		WriteError(w, http.StatusConflict, err.Error())
	default:
		a.Logger.Error("runs api", zap.Error(err))
		WriteError(w, http.StatusServiceUnavailable, err.Error())
	}
}

// AdminAuth protects every /api/ path of next with the bearer token: a
// request without "Authorization: Bearer <token>" gets 401 with a JSON
// error. The scheme is matched case-insensitively (RFC 9110 §11.1); the
// token comparison is constant-time. An empty token disables it.
func AdminAuth(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := []byte(token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api" || strings.HasPrefix(r.URL.Path, "/api/") {
			got, ok := BearerToken(r.Header.Get("Authorization"))
			if !ok || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="feedmill"`)
				WriteError(w, http.StatusUnauthorized, "missing or wrong bearer token")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// BearerToken returns the credentials of an Authorization header value
// with the Bearer scheme in any letter case.
func BearerToken(h string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimLeft(token, " ")
	return token, token != ""
}
