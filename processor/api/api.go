package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

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
	ID           string   `json:"id"`
	Template     string   `json:"template"`
	Destinations []string `json:"destinations"`
	File         bool     `json:"file"`
	Members      int64    `json:"members"`
	LastRun      *string  `json:"last_run"`
}

func (a *API) feeds(w http.ResponseWriter, _ *http.Request) {
	counts, err := a.Store.Counts(a.Owns)
	if err != nil {
		a.Logger.Error("read member counts", zap.Error(err))
		WriteError(w, http.StatusInternalServerError, "read member counts: "+err.Error())
		return
	}
	set := a.Feeds()
	out := make([]feedJSON, 0, len(set.Feeds()))
	for _, f := range set.Feeds() {
		fj := feedJSON{ID: f.ID, Template: f.Template.ID, Destinations: f.Destinations, File: f.File, Members: counts[f.ID]}
		if fj.Destinations == nil {
			fj.Destinations = []string{}
		}
		if a.LastRun != nil {
			if id := a.LastRun(f.ID); id != "" {
				fj.LastRun = &id
			}
		}
		out = append(out, fj)
	}
	WriteJSON(w, http.StatusOK, out)
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
