package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/state"
)

// API serves the processor's HTTP endpoints (docs/contract.md, HTTP
// endpoints). Routes are registered on a caller-supplied mux so other
// parts (the full pass) add theirs to the same listener.
type API struct {
	Store *state.Store
	// Feeds returns the feed set in force (it changes with live feed
	// changes: read it per request).
	Feeds    func() *feeds.Set
	Registry *prometheus.Registry
	Ready    func() bool
	Logger   *zap.Logger
	// LastRun returns the id of the last run that published a feed, or "".
	LastRun func(feedID string) string
	// Owns reports whether this instance owns an offers partition: the
	// member counts are those of its partitions (nil: all stored).
	Owns func(p int32) bool
	// Errors returns this instance's feedmill_feed_errors_total of a feed
	// by kind ("filter", "template", "budget"); nil: all 0.
	Errors func(feedID string) map[string]float64
	// Lint returns the static warnings of the config a feed set was
	// compiled from (feeds.Lint); nil: none. It is called once per set
	// (by pointer): the result of the latest set is kept.
	Lint func(set *feeds.Set) []feeds.Warning

	lintMu   sync.Mutex
	lintSet  *feeds.Set               // the set lintFeed belongs to
	lintFeed map[string][]warningJSON // by feed id: its own and its custom template's
}

// Register adds /healthz, /readyz, /metrics and GET /api/feeds to mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n")) // a failed write means the client went away
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if a.Ready != nil && !a.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready: loading tables or restoring partitions\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.Registry, promhttp.HandlerOpts{Registry: a.Registry}))
	mux.HandleFunc("GET /api/feeds", a.feeds)
}

type feedJSON struct {
	ID           string             `json:"id"`
	Template     string             `json:"template"`
	Destinations []string           `json:"destinations"`
	File         bool               `json:"file"`
	Members      int64              `json:"members"`
	LastRun      *string            `json:"last_run"`
	Errors       map[string]float64 `json:"errors"`
	Warnings     []warningJSON      `json:"warnings"`
}

// warningJSON is a feeds.Warning in GET /api/feeds.
type warningJSON struct {
	Path    string `json:"path"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Message string `json:"message"`
}

func (a *API) feeds(w http.ResponseWriter, _ *http.Request) {
	counts, err := a.Store.Counts(a.Owns)
	if err != nil {
		a.Logger.Error("read member counts", zap.Error(err))
		WriteError(w, http.StatusInternalServerError, "read member counts: "+err.Error())
		return
	}
	set := a.Feeds()
	warnings := a.warnings(set)
	out := make([]feedJSON, 0, len(set.Feeds()))
	for _, f := range set.Feeds() {
		fj := feedJSON{ID: f.ID, Template: f.Template.ID, Destinations: f.Destinations, File: f.File, Members: counts[f.ID],
			Errors: make(map[string]float64, feeds.NumErrorKinds), Warnings: warnings[f.ID]}
		if fj.Destinations == nil {
			fj.Destinations = []string{}
		}
		if a.LastRun != nil {
			if id := a.LastRun(f.ID); id != "" {
				fj.LastRun = &id
			}
		}
		for k := range feeds.NumErrorKinds {
			fj.Errors[feeds.ErrorKind(k).String()] = 0
		}
		if a.Errors != nil {
			for kind, n := range a.Errors(f.ID) {
				fj.Errors[kind] = n
			}
		}
		if fj.Warnings == nil {
			fj.Warnings = []warningJSON{}
		}
		out = append(out, fj)
	}
	WriteJSON(w, http.StatusOK, out)
}

// warnings returns the Lint warnings of set's feeds by feed id: a feed's
// own and those of the custom template it uses. They are computed once
// per set; the slices are shared and must not be modified.
func (a *API) warnings(set *feeds.Set) map[string][]warningJSON {
	if a.Lint == nil {
		return nil
	}
	a.lintMu.Lock()
	defer a.lintMu.Unlock()
	if a.lintSet == set {
		return a.lintFeed
	}
	byTemplate := map[string][]warningJSON{}
	byFeed := map[string][]warningJSON{}
	for _, w := range a.Lint(set) {
		wj := warningJSON{Path: w.Path, Line: w.Line, Column: w.Column, Message: w.Message}
		switch {
		case w.Feed != "":
			byFeed[w.Feed] = append(byFeed[w.Feed], wj)
		case w.Template != "":
			byTemplate[w.Template] = append(byTemplate[w.Template], wj)
		}
	}
	for _, f := range set.Feeds() {
		if f.Template != nil && !f.Template.Builtin && len(byTemplate[f.Template.ID]) > 0 {
			byFeed[f.ID] = append(byFeed[f.ID], byTemplate[f.Template.ID]...)
		}
	}
	a.lintSet, a.lintFeed = set, byFeed
	return byFeed
}

// WriteJSON writes v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // a failed write means the client went away
}

// WriteError writes {"error": msg} with status.
func WriteError(w http.ResponseWriter, status int, msg string) {
	WriteJSON(w, status, map[string]string{"error": msg})
}

// MaxBodyBytes is the request body bound LimitBodies applies by default
// (1 MiB): the API takes small JSON documents only.
const MaxBodyBytes = 1 << 20

// LimitBodies bounds every request body of next to maxBytes
// (MaxBodyBytes when 0 or less): a request whose Content-Length is larger
// gets 413 with a JSON error at once, and a body read past the bound
// fails with *http.MaxBytesError (ReadJSON answers 413 for it).
func LimitBodies(maxBytes int64, next http.Handler) http.Handler {
	if maxBytes <= 0 {
		maxBytes = MaxBodyBytes
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > maxBytes {
			w.Header().Set("Connection", "close")
			WriteError(w, http.StatusRequestEntityTooLarge, bodyTooLarge(maxBytes))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBytes)
		next.ServeHTTP(w, r)
	})
}

func bodyTooLarge(maxBytes int64) string {
	return "request body larger than " + strconv.FormatInt(maxBytes, 10) + " bytes"
}

// ReadJSON decodes the JSON body of r into dst. On failure it answers
// (413 when the body is over the LimitBodies bound, 400 when it is not
// one JSON document or has unknown fields) and returns false; the handler
// then returns without writing.
func ReadJSON(w http.ResponseWriter, r *http.Request, dst any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if err == nil {
		// Exactly one document: anything after it is an error too.
		if _, extra := dec.Token(); !errors.Is(extra, io.EOF) {
			err = errors.New("want one JSON document")
			var mbe *http.MaxBytesError
			if errors.As(extra, &mbe) {
				err = extra
			}
		}
	}
	if err == nil {
		return true
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		WriteError(w, http.StatusRequestEntityTooLarge, bodyTooLarge(mbe.Limit))
		return false
	}
	WriteError(w, http.StatusBadRequest, "decode request body: "+err.Error())
	return false
}
