package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/processor/dryrun"
)

// DryRunAPI serves POST /api/feeds/dry-run: one feed definition (YAML or
// JSON, by Content-Type) evaluated over this instance's state without
// being put in force (docs/contract.md, Explain and dry-run).
type DryRunAPI struct {
	Runner *dryrun.Runner
	// Feeds returns the feed set in force (it changes with live feed
	// changes: read it per request); a feed of the dry run's id in it is
	// compared with.
	Feeds func() *feeds.Set
	// Templates returns the custom templates the definition may name:
	// those the feed set in force is built with (read per request, like
	// Feeds).
	Templates func() []config.Template
	Logger    *zap.Logger
}

// Register adds POST /api/feeds/dry-run to mux.
func (a *DryRunAPI) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/feeds/dry-run", a.dryRun)
}

// DryRunProblem is one problem of a definition that does not compile:
// its path in the definition (`filter`, `group.by`, `destinations[1]`)
// and the message; Line and Column (1-based, within the expression) when
// the compiler gave them.
type DryRunProblem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
}

// DryRunError is the body of a dry run's 400 answer when the definition
// does not compile.
type DryRunError struct {
	Error    string          `json:"error"`
	Problems []DryRunProblem `json:"problems"`
}

func (a *DryRunAPI) dryRun(w http.ResponseWriter, r *http.Request) {
	opts, msg := dryRunOptions(r)
	if msg != "" {
		WriteError(w, http.StatusBadRequest, msg)
		return
	}
	fc, ok := readFeedDefinition(w, r)
	if !ok {
		return
	}
	set, err := dryrun.Compile(fc, a.Templates())
	if err != nil {
		var ce *feeds.CompileError
		if !errors.As(err, &ce) {
			a.Logger.Error("dry run: compile", zap.Error(err))
			WriteError(w, http.StatusInternalServerError, "compile feed: "+err.Error())
			return
		}
		out := DryRunError{Error: "feed " + strconv.Quote(fc.ID) + " does not compile", Problems: make([]DryRunProblem, 0, len(ce.Problems))}
		for _, p := range ce.Problems {
			out.Problems = append(out.Problems, problemJSON(p))
		}
		WriteJSON(w, http.StatusBadRequest, out)
		return
	}
	res, err := a.Runner.Run(r.Context(), set, a.Feeds(), opts)
	switch {
	case errors.Is(err, dryrun.ErrBusy):
		w.Header().Set("Retry-After", "10")
		WriteError(w, http.StatusTooManyRequests, err.Error())
	case err != nil && r.Context().Err() != nil:
		// The client went away: nobody reads an answer.
	case err != nil:
		a.Logger.Error("dry run", zap.String("feed", fc.ID), zap.Error(err))
		WriteError(w, http.StatusInternalServerError, err.Error())
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false) // the items are XML: keep them readable
		// A failed write means the client went away.
		_ = enc.Encode(dryRunAnswer{Result: res, Warnings: LintFeed(fc, a.Templates())})
	}
}

// dryRunAnswer is the dry run's result with the definition's static
// warnings (feeds.Lint: what is likely to fail at run time).
type dryRunAnswer struct {
	*dryrun.Result
	Warnings []warningJSON `json:"warnings"`
}

// LintFeed returns the Lint warnings of one feed definition: its own and
// those of the custom template it names.
func LintFeed(f config.Feed, templates []config.Template) []warningJSON {
	out := []warningJSON{}
	for _, w := range feeds.Lint([]config.Feed{f}, templates) {
		if w.Feed == f.ID || w.Template == f.Template {
			out = append(out, warningJSON{Path: w.Path, Line: w.Line, Column: w.Column, Message: w.Message})
		}
	}
	return out
}

// dryRunOptions reads ?timeout= (a Go duration, lowers the time budget)
// and ?samples= (0..dryrun.MaxSamples); a message says what is wrong.
func dryRunOptions(r *http.Request) (dryrun.Options, string) {
	var o dryrun.Options
	q := r.URL.Query()
	if s := q.Get("timeout"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return o, "timeout must be a positive duration such as 10s (it can only lower the " + dryrun.DefaultTimeout.String() + " budget)"
		}
		o.Timeout = d
	}
	if s := q.Get("samples"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > dryrun.MaxSamples {
			return o, "samples must be an integer from 0 to " + strconv.Itoa(dryrun.MaxSamples)
		}
		o.Samples = n
		if n == 0 {
			o.Samples = -1 // none asked for, not the default
		}
	}
	return o, ""
}

// feedDefinitionJSON is config.Feed with JSON names (the YAML keys).
type feedDefinitionJSON struct {
	ID           string               `json:"id"`
	Filter       string               `json:"filter"`
	Template     string               `json:"template"`
	Destinations []string             `json:"destinations"`
	File         bool                 `json:"file"`
	Unbounded    bool                 `json:"unbounded"`
	Group        *groupDefinitionJSON `json:"group"`
}

type groupDefinitionJSON struct {
	By   string `json:"by"`
	Pick string `json:"pick"`
	Of   string `json:"of"`
}

// readFeedDefinition decodes the body as one feed definition, strictly
// (an unknown key is an error): JSON for application/json (or +json),
// YAML for application/yaml, text/yaml and their x- forms, or no
// Content-Type. On failure it answers (400, 413, 415) and returns false.
func readFeedDefinition(w http.ResponseWriter, r *http.Request) (config.Feed, bool) {
	var f config.Feed
	isJSON := false
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		switch {
		case err != nil:
			WriteError(w, http.StatusUnsupportedMediaType, "Content-Type "+strconv.Quote(ct)+": "+err.Error())
			return f, false
		case mt == "application/json" || strings.HasSuffix(mt, "+json"):
			isJSON = true
		case mt == "application/yaml" || mt == "application/x-yaml" || mt == "text/yaml" || mt == "text/x-yaml":
		default:
			WriteError(w, http.StatusUnsupportedMediaType, "Content-Type "+strconv.Quote(mt)+": send the feed definition as application/json or application/yaml")
			return f, false
		}
	}
	if isJSON {
		var d feedDefinitionJSON
		if !ReadJSON(w, r, &d) {
			return f, false
		}
		f = config.Feed{ID: d.ID, Filter: d.Filter, Template: d.Template, Destinations: d.Destinations, File: d.File, Unbounded: d.Unbounded}
		if d.Group != nil {
			f.Group = &config.Group{By: d.Group.By, Pick: d.Group.Pick, Of: d.Group.Of}
		}
		return f, true
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			WriteError(w, http.StatusRequestEntityTooLarge, bodyTooLarge(mbe.Limit))
			return f, false
		}
		WriteError(w, http.StatusBadRequest, "read request body: "+err.Error())
		return f, false
	}
	if err := DecodeFeedYAML(body, &f); err != nil {
		WriteError(w, http.StatusBadRequest, "decode feed definition: "+err.Error())
		return f, false
	}
	return f, true
}

// DecodeFeedYAML decodes exactly one YAML document holding one feed
// definition, as the config decodes a feeds[] entry: unknown keys are
// errors, with their line.
func DecodeFeedYAML(data []byte, f *config.Feed) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("the definition is empty: want one feed")
		}
		return err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return err
		}
		return errors.New("a second YAML document starts at line " + strconv.Itoa(extra.Line) + ": want one feed definition")
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return errors.New("want one feed definition: a mapping with id, filter, template, ... (one entry of the config's feeds, without the leading -)")
	}
	// Decoding the node again checks the keys against config.Feed.
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	return strict.Decode(f)
}

// exprPosition finds the position the feeds compiler puts at the start
// of a message ("line 2, column 16: ...").
var exprPosition = regexp.MustCompile(`^line (\d+), column (\d+): `)

func problemJSON(p feeds.Problem) DryRunProblem {
	out := DryRunProblem{Path: p.Path, Message: p.Message}
	if m := exprPosition.FindStringSubmatch(p.Message); m != nil {
		out.Line, _ = strconv.Atoi(m[1])   // digits: cannot fail
		out.Column, _ = strconv.Atoi(m[2]) // digits: cannot fail
	}
	return out
}
