package admin

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/processor/api"
	"github.com/feedmill/feedmill/processor/dryrun"
)

// Dry-run form defaults.
const (
	// formTimeout is the time budget the form proposes.
	formTimeout = 10 * time.Second
	// exampleDefinition fills an empty form.
	exampleDefinition = `id: my-feed
filter: offer.status == "ACTIVE" && offer.stock > 0
template: google-merchant
destinations: []
file: false
`
)

type dryRunData struct {
	Definition string
	Samples    int
	Timeout    string
	Problems   []feeds.Problem
	Result     *dryrun.Result
	MaxSamples int
	MaxTimeout string
}

func newDryRunData() *dryRunData {
	return &dryRunData{Definition: exampleDefinition, Samples: dryrun.DefaultSamples, Timeout: formTimeout.String(),
		MaxSamples: dryrun.MaxSamples, MaxTimeout: dryrun.DefaultTimeout.String()}
}

// dryRunForm is GET /admin/dry-run[?feed=F]: the form, filled with the
// definition of feed F in force when asked.
func (p *Page) dryRunForm(w http.ResponseWriter, r *http.Request) {
	d := newDryRunData()
	v := view{Title: "Dry run", Nav: "dry-run", Data: d}
	if id := r.URL.Query().Get("feed"); id != "" {
		_, defs, _ := p.Feeds()
		found := false
		for i := range defs {
			if defs[i].ID == id {
				if y, err := yaml.Marshal(&defs[i]); err == nil {
					d.Definition, found = string(y), true
				}
			}
		}
		if !found {
			v.Error = "There is no feed " + id + " in force: the form holds an example."
		}
	}
	p.render(w, r, http.StatusOK, "dryrun", v)
}

// dryRunPost is POST /admin/dry-run: the definition (YAML, one feed as
// in the config's feeds list, decoded strictly) checked as `feedmill
// validate` does and evaluated over this instance's state without being
// put in force, as POST /api/feeds/dry-run does.
func (p *Page) dryRunPost(w http.ResponseWriter, r *http.Request) {
	d := newDryRunData()
	v := view{Title: "Dry run", Nav: "dry-run", Data: d}
	if err := r.ParseForm(); err != nil {
		status := http.StatusBadRequest
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			status = http.StatusRequestEntityTooLarge
		}
		v.Error = "The form could not be read: " + err.Error()
		p.render(w, r, status, "dryrun", v)
		return
	}
	d.Definition = r.PostForm.Get("definition")
	d.Timeout = strings.TrimSpace(r.PostForm.Get("timeout"))
	opts := dryrun.Options{}
	if s := strings.TrimSpace(r.PostForm.Get("samples")); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > dryrun.MaxSamples {
			v.Error = "Samples must be a whole number from 0 to " + strconv.Itoa(dryrun.MaxSamples) + "."
			p.render(w, r, http.StatusBadRequest, "dryrun", v)
			return
		}
		d.Samples, opts.Samples = n, n
		if n == 0 {
			opts.Samples = -1 // none asked for, not the default
		}
	}
	if d.Timeout != "" {
		t, err := time.ParseDuration(d.Timeout)
		if err != nil || t <= 0 {
			v.Error = "The time budget must be a duration such as 10s (at most " + dryrun.DefaultTimeout.String() + ")."
			p.render(w, r, http.StatusBadRequest, "dryrun", v)
			return
		}
		opts.Timeout = t
	}
	var f config.Feed
	if err := api.DecodeFeedYAML([]byte(d.Definition), &f); err != nil {
		v.Error = "The definition is not one feed: " + err.Error()
		p.render(w, r, http.StatusBadRequest, "dryrun", v)
		return
	}
	current, _, templates := p.Feeds()
	one, err := dryrun.Compile(f, templates)
	if err != nil {
		var ce *feeds.CompileError
		if errors.As(err, &ce) {
			d.Problems = ce.Problems
			v.Error = "Feed " + strconv.Quote(f.ID) + " does not compile."
			p.render(w, r, http.StatusBadRequest, "dryrun", v)
			return
		}
		p.Logger.Error("admin page: dry run: compile", zap.Error(err))
		v.Error = "Compiling the feed failed: " + err.Error()
		p.render(w, r, http.StatusInternalServerError, "dryrun", v)
		return
	}
	res, err := p.DryRun.Run(r.Context(), one, current, opts)
	switch {
	case errors.Is(err, dryrun.ErrBusy):
		w.Header().Set("Retry-After", "10")
		v.Error = "Another dry run is running on this instance: send the form again when it has finished."
		p.render(w, r, http.StatusTooManyRequests, "dryrun", v)
	case err != nil && r.Context().Err() != nil:
		// The client went away: nobody reads an answer.
	case err != nil:
		p.Logger.Error("admin page: dry run", zap.String("feed", f.ID), zap.Error(err))
		v.Error = "The dry run failed: " + err.Error()
		p.render(w, r, http.StatusInternalServerError, "dryrun", v)
	default:
		d.Result = res
		p.render(w, r, http.StatusOK, "dryrun", v)
	}
}
