package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/feedmill/feedmill/processor/api"
	"github.com/feedmill/feedmill/processor/dryrun"
)

// TestDryRunCommand: the command posts the file (YAML or JSON by its
// extension) with the token and parameters, prints a report or the JSON
// answer, and says clearly why an instance refused or cannot be reached.
func TestDryRunCommand(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	yamlFile := write("f.yaml", "id: cheap\nfilter: offer.price < 50.0\ntemplate: ceneo\n")
	jsonFile := write("f.json", `{"id": "cheap", "filter": "offer.price < 50.0", "template": "ceneo"}`)
	result := dryrun.Result{
		Feed: "cheap", Complete: false, Members: 4, Candidates: 4, Scanned: 20, TookMs: 1200,
		Samples:    []dryrun.Sample{{OfferID: "o01", Item: "<offer>\n  <id>o01</id>\n</offer>"}},
		Current:    &dryrun.Comparison{Members: 9, Removes: 5, Unchanged: 4, SampleAdds: []string{}, SampleRemoves: []string{"o05", "o06"}},
		Partitions: []int32{0}, PartitionsTotal: 2,
		Errors: dryrun.Errors{Total: 1, Filter: 1, First: "filter error on offer o07: boom"},
		Notes:  []string{"the counts cover the 1 of the 2 offers partitions scanned here"},
	}
	type request struct {
		path, query, contentType, auth, body string
	}
	var got request
	answer := func(code int, v any) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body) // a short body from the test
			got = request{r.Method + " " + r.URL.Path, r.URL.RawQuery, r.Header.Get("Content-Type"), r.Header.Get("Authorization"), string(b)}
			api.WriteJSON(w, code, v)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	ok := answer(http.StatusOK, result)
	bad := answer(http.StatusBadRequest, api.DryRunError{Error: `feed "cheap" does not compile`, Problems: []api.DryRunProblem{
		{Path: "filter", Message: "line 1, column 7: unknown name sellr", Line: 1, Column: 7}}})
	unauthorized := answer(http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer token"})
	busy := answer(http.StatusTooManyRequests, map[string]string{"error": dryrun.ErrBusy.Error()})
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()

	tests := []struct {
		name    string
		args    []string
		code    int
		want    []string // in the output
		request *request // what the instance received
	}{
		{"report", []string{"-feed", yamlFile, "-url", ok.URL, "-token", "s3cret", "-timeout", "5s", "-samples", "3"}, 0, []string{
			"dry run of feed cheap: 20 offers scanned in 1.2s, partitions [0] of 2",
			"INCOMPLETE", "members:    4", "9 now; +0 added, -5 removed, 4 unchanged", "removed:  o05, o06",
			"errors:     1 (filter 1", "first:    filter error on offer o07: boom", "note: the counts cover", "- o01", "    <offer>", "      <id>o01</id>",
		}, &request{"POST /api/feeds/dry-run", "samples=3&timeout=5s", "application/yaml", "Bearer s3cret", "id: cheap\nfilter: offer.price < 50.0\ntemplate: ceneo\n"}},
		{"json file, json output", []string{"-feed", jsonFile, "-url", ok.URL + "/", "-json"}, 0, []string{`"feed": "cheap"`, `"sample_removes"`},
			&request{"POST /api/feeds/dry-run", "", "application/json", "", `{"id": "cheap", "filter": "offer.price < 50.0", "template": "ceneo"}`}},
		{"compile problems", []string{"-feed", yamlFile, "-url", bad.URL}, 1, []string{`f.yaml: feed "cheap" does not compile`, "  filter: line 1, column 7: unknown name sellr"}, nil},
		{"unauthorized", []string{"-feed", yamlFile, "-url", unauthorized.URL}, 1, []string{"unauthorized (401)", "-token"}, nil},
		{"busy", []string{"-feed", yamlFile, "-url", busy.URL}, 1, []string{"busy (429)", "already running"}, nil},
		{"unreachable", []string{"-feed", yamlFile, "-url", gone.URL}, 1, []string{"cannot reach feedmill at " + gone.URL}, nil},
		{"no file", []string{"-feed", filepath.Join(dir, "none.yaml"), "-url", ok.URL}, 1, []string{"none.yaml"}, nil},
		{"bad url", []string{"-feed", yamlFile, "-url", "localhost:8080"}, 1, []string{"want http://HOST:PORT"}, nil},
		{"no -feed", []string{"-url", ok.URL}, 2, []string{"usage: feedmill dry-run -feed FILE"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("FEEDMILL_HTTP_ADMIN_TOKEN", "")
			got = request{}
			var out, errOut bytes.Buffer
			code := run(append([]string{"dry-run"}, tc.args...), &out, &errOut)
			all := out.String() + errOut.String()
			if code != tc.code {
				t.Errorf("exit %d, want %d; output:\n%s", code, tc.code, all)
			}
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("output lacks %q:\n%s", w, all)
				}
			}
			if tc.request != nil && got != *tc.request {
				t.Errorf("request %+v, want %+v", got, *tc.request)
			}
			if tc.name == "json file, json output" {
				var res dryrun.Result
				if err := json.Unmarshal(out.Bytes(), &res); err != nil || res.Members != 4 {
					t.Errorf("-json output is not the answer: %v\n%s", err, out.String())
				}
			}
		})
	}
}
