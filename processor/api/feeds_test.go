package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/processor/api"
	"github.com/feedmill/feedmill/state"
)

func TestFeedsErrorsAndWarnings(t *testing.T) {
	store, err := state.Open(t.TempDir(), nil, state.Options{CacheBytes: 1 << 20, MemTableBytes: 1 << 20}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() }) // a test store; nothing to keep
	defs := []config.Feed{
		{ID: "phones", Filter: `seller.status == "ACTIVE"`, Template: "google-merchant", Destinations: []string{"gmc"}},
		{ID: "partner", Filter: `offer.stock > 0`, Template: "partner-x"},
		{ID: "clean", Filter: `seller?.status == "ACTIVE"`, Template: "ceneo"},
	}
	templates := []config.Template{{ID: "partner-x", Root: "products", Item: "product", Fields: []config.TemplateField{
		{Name: "id", Value: "offer.id"},
		{Name: "image", Value: "offer.images[0]"},
	}}}
	compile := func() *feeds.Set {
		set, err := feeds.Compile(defs, templates)
		if err != nil {
			t.Fatal(err)
		}
		return set
	}
	set := compile()
	lints := 0
	a := &api.API{
		Store: store, Feeds: func() *feeds.Set { return set }, Registry: prometheus.NewRegistry(), Logger: zap.NewNop(),
		Errors: func(id string) map[string]float64 {
			if id == "phones" {
				return map[string]float64{"filter": 7, "budget": 1}
			}
			return nil
		},
		Lint: func(s *feeds.Set) []feeds.Warning {
			lints++
			return feeds.Lint(defs, templates)
		},
	}
	mux := http.NewServeMux()
	a.Register(mux)

	type feedAnswer struct {
		ID       string             `json:"id"`
		Errors   map[string]float64 `json:"errors"`
		Warnings []struct {
			Path    string `json:"path"`
			Line    int    `json:"line"`
			Column  int    `json:"column"`
			Message string `json:"message"`
		} `json:"warnings"`
	}
	get := func() []feedAnswer {
		t.Helper()
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/feeds", nil))
		if w.Code != http.StatusOK {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		var out []feedAnswer
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatalf("%v: %s", err, w.Body)
		}
		if len(out) != 3 {
			t.Fatalf("%d feeds: %s", len(out), w.Body)
		}
		return out
	}

	got := get()
	if e := got[0].Errors; len(e) != 3 || e["filter"] != 7 || e["template"] != 0 || e["budget"] != 1 {
		t.Errorf("phones errors %v", e)
	}
	if e := got[1].Errors; len(e) != 3 || e["filter"]+e["template"]+e["budget"] != 0 {
		t.Errorf("partner errors %v, want every kind at 0", e)
	}
	if w := got[0].Warnings; len(w) != 1 || w[0].Path != "feeds[0] (phones).filter" || w[0].Line != 1 || w[0].Column != 1 || w[0].Message == "" {
		t.Errorf("phones warnings %+v", w)
	}
	if w := got[1].Warnings; len(w) != 1 || w[0].Path != "templates[0] (partner-x).fields[1] (image).value" || w[0].Column != 13 {
		t.Errorf("partner warnings (its template's) %+v", w)
	}
	if got[2].Warnings == nil || len(got[2].Warnings) != 0 {
		t.Errorf("clean warnings %+v, want []", got[2].Warnings)
	}

	get()
	if lints != 1 {
		t.Errorf("Lint called %d times for one set, want 1", lints)
	}
	set = compile() // a new set in force
	get()
	if lints != 2 {
		t.Errorf("Lint called %d times for two sets, want 2", lints)
	}
}
