package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
	"go.uber.org/zap"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/processor"
	"github.com/feedmill/feedmill/processor/api"
	"github.com/feedmill/feedmill/processor/dryrun"
	"github.com/feedmill/feedmill/state"
)

var dryRunFeeds = []config.Feed{
	{ID: "cheap", Filter: `offer.status == "ACTIVE" && offer.price < 100.0`, Template: "google-merchant", Destinations: []string{"gmc"}},
}

var dryRunTemplates = []config.Template{{ID: "partner-x", Root: "products", Item: "product",
	Fields: []config.TemplateField{{Name: "id", Value: "offer.id"}, {Name: "price", Value: "offer.price"}}}}

// newDryRunServer fills a temp store through the applier with 20 offers
// priced 10, 20, ... 200 PLN (so "cheap" holds the first 9) and serves
// the dry-run endpoint over it, behind the admin token "s3cret" and the
// body bound, as the app does. now is the Runner's clock.
func newDryRunServer(t *testing.T, now func() time.Time) *httptest.Server {
	t.Helper()
	ctx := context.Background()
	reg := srfake.New()
	t.Cleanup(reg.Close)
	cl, err := sr.NewClient(sr.URLs(reg.URL()))
	if err != nil {
		t.Fatal(err)
	}
	serde := records.NewSerde(cl)
	offerID, err := serde.Register(ctx, "offers-value", records.KindOffer)
	if err != nil {
		t.Fatal(err)
	}
	evID, err := serde.Register(ctx, "feed-events-value", records.KindFeedEvent)
	if err != nil {
		t.Fatal(err)
	}
	set, err := feeds.Compile(dryRunFeeds, dryRunTemplates)
	if err != nil {
		t.Fatal(err)
	}
	store, err := state.Open(filepath.Join(t.TempDir(), "state"), serde, state.Options{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	a, err := processor.NewApplier(processor.ApplierDeps{
		Store: store, Feeds: set, Serde: serde, Topics: config.Default().Kafka.Topics,
		Processor: config.Processor{MaxBatchRecords: 100, SellerChunk: 10}, Retention: time.Hour, EventSchemaID: evID,
		Metrics: processor.NewMetrics(prometheus.NewRegistry()), Logger: zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetPartitions([]int32{0}); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for i := 1; i <= 20; i++ {
		o := &records.Offer{ID: fmt.Sprintf("o%02d", i), SellerID: "s1", Title: "Phone", Description: "d", Category: "Electronics/Phones",
			PriceMinor: i * 1000, Currency: "PLN", Stock: i % 3, Condition: "NEW", Status: "ACTIVE", URL: "https://x/o",
			Images: []string{"https://x/i.jpg"}, Attributes: map[string]string{}, UpdatedAt: time.UnixMilli(1), Version: 1}
		v, err := serde.AppendOffer(nil, offerID, o)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: "offers", Key: []byte(o.ID), Value: v, Offset: int64(i)})
	}
	if err := a.Apply(ctx, recs); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	(&api.DryRunAPI{
		Runner:    &dryrun.Runner{Store: store, Serde: serde, Coverage: func() ([]int32, int32) { return []int32{0}, 1 }, Now: now},
		Feeds:     func() *feeds.Set { return set },
		Templates: func() []config.Template { return dryRunTemplates },
		Logger:    zap.NewNop(),
	}).Register(mux)
	srv := httptest.NewServer(api.AdminAuth("s3cret", api.LimitBodies(0, mux)))
	t.Cleanup(srv.Close)
	return srv
}

func postDryRun(t *testing.T, srv *httptest.Server, query, contentType, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/api/feeds/dry-run"+query, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, answer
}

// TestDryRunHTTP: a YAML and a JSON definition give the same answer, in
// the contract's shape; strict decoding, compile problems with their
// paths, lines and columns, and bad parameters are 400s.
func TestDryRunHTTP(t *testing.T) {
	srv := newDryRunServer(t, nil)
	yamlBody := `
id: cheap
filter: offer.status == "ACTIVE" && offer.price < 50.0
template: google-merchant
destinations: [gmc]
`
	jsonBody := `{"id": "cheap", "filter": "offer.status == \"ACTIVE\" && offer.price < 50.0", "template": "google-merchant", "destinations": ["gmc"]}`
	var answers []dryrun.Result
	for _, tc := range []struct{ ct, body string }{
		{"application/yaml", yamlBody},
		{"", yamlBody},
		{"application/json; charset=utf-8", jsonBody},
	} {
		code, body := postDryRun(t, srv, "?samples=3", tc.ct, tc.body)
		if code != http.StatusOK {
			t.Fatalf("%q: %d %s", tc.ct, code, body)
		}
		var keys map[string]any
		if err := json.Unmarshal(body, &keys); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"feed", "grouped", "complete", "members", "candidates", "samples", "current", "partitions",
			"partitions_total", "scanned", "took_ms", "errors", "notes"} {
			if _, ok := keys[k]; !ok {
				t.Errorf("%q: answer lacks %q: %s", tc.ct, k, body)
			}
		}
		var res dryrun.Result
		if err := json.Unmarshal(body, &res); err != nil {
			t.Fatal(err)
		}
		res.TookMs = 0
		answers = append(answers, res)
	}
	res := answers[0]
	for _, other := range answers[1:] {
		if !reflect.DeepEqual(other, res) {
			t.Errorf("answers differ:\n%+v\n%+v", res, other)
		}
	}
	if res.Members != 4 || !res.Complete || res.Scanned != 20 || len(res.Samples) != 3 || res.Samples[0].OfferID != "o01" ||
		!strings.HasPrefix(res.Samples[0].Item, "<item>") {
		t.Errorf("result %+v", res)
	}
	if c := res.Current; c == nil || c.Members != 9 || c.Adds != 0 || c.Removes != 5 || c.Unchanged != 4 ||
		!slices.Equal(c.SampleRemoves, []string{"o05", "o06", "o07"}) {
		t.Errorf("comparison %+v", res.Current)
	}

	for _, tc := range []struct {
		name, query, ct, body string
		code                  int
		want                  []string // in the body
	}{
		{"unknown YAML key", "", "application/yaml", "id: a\nfilter: \"true\"\ntemplate: ceneo\nfiltre: x\n", 400, []string{"line 4", "filtre"}},
		{"unknown JSON key", "", "application/json", `{"id": "a", "filter": "true", "template": "ceneo", "extra": 1}`, 400, []string{"unknown field", "extra"}},
		{"two JSON documents", "", "application/json", `{"id": "a"} {}`, 400, []string{"one JSON document"}},
		{"a YAML list", "", "application/yaml", "- id: a\n  filter: \"true\"\n  template: ceneo\n", 400, []string{"without the leading -"}},
		{"two YAML documents", "", "application/yaml", "id: a\n---\nid: b\n", 400, []string{"second YAML document"}},
		{"empty body", "", "application/yaml", "", 400, []string{"empty"}},
		{"other content type", "", "text/plain", "id: a", 415, []string{"application/json or application/yaml"}},
		{"bad timeout", "?timeout=soon", "application/yaml", yamlBody, 400, []string{"timeout"}},
		{"too many samples", "?samples=1000", "application/yaml", yamlBody, 400, []string{"samples"}},
		{"compile problems", "", "application/yaml", "id: x\nfilter: offer.stock > 0 && sellr.status == \"A\"\ntemplate: partner-x\ndestinations: [a, a]\ngroup: {by: offer.product_id, pick: first, of: offer.price}\n", 400,
			[]string{`"error": "feed \"x\" does not compile"`, `"path": "filter"`, `"line": 1`, `"column": 20`, `"path": "group.pick"`, `"path": "destinations[1]"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := postDryRun(t, srv, tc.query, tc.ct, tc.body)
			if code != tc.code {
				t.Fatalf("status %d, want %d: %s", code, tc.code, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(body), w) {
					t.Errorf("body lacks %q: %s", w, body)
				}
			}
			var e struct {
				Error string `json:"error"`
			}
			if json.Unmarshal(body, &e) != nil || e.Error == "" {
				t.Errorf("not a JSON error: %s", body)
			}
		})
	}
}

// TestDryRunHTTPOneAtATime: a request while a dry run runs gets 429 with
// a JSON error; the running one answers.
func TestDryRunHTTPOneAtATime(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	calls := 0
	srv := newDryRunServer(t, func() time.Time {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 2 { // the first run's first look at the clock after its start
			close(entered)
			<-release
		}
		return time.UnixMilli(1_800_000_000_000)
	})
	body := "id: a\nfilter: offer.stock > 0\ntemplate: ceneo\n"
	first := make(chan int, 1)
	go func() {
		code, _ := postDryRun(t, srv, "", "application/yaml", body)
		first <- code
	}()
	<-entered
	code, answer := postDryRun(t, srv, "", "application/yaml", body)
	if code != http.StatusTooManyRequests || !strings.Contains(string(answer), "already running") {
		t.Errorf("second request: %d %s, want 429 saying one is running", code, answer)
	}
	close(release)
	if code := <-first; code != http.StatusOK {
		t.Errorf("first request: %d", code)
	}
}

// TestDryRunJSONNamesMatchConfig: the JSON form of a definition has the
// config's YAML keys, so neither can gain a key the other lacks.
func TestDryRunJSONNamesMatchConfig(t *testing.T) {
	keys := func(t reflect.Type, tag string) []string {
		var out []string
		for i := range t.NumField() {
			out = append(out, strings.Split(t.Field(i).Tag.Get(tag), ",")[0])
		}
		return out
	}
	jsonFeed, jsonGroup := api.DryRunDefinitionTypes()
	if got, want := keys(jsonFeed, "json"), keys(reflect.TypeFor[config.Feed](), "yaml"); !slices.Equal(got, want) {
		t.Errorf("feed keys: JSON %q, config %q", got, want)
	}
	if got, want := keys(jsonGroup, "json"), keys(reflect.TypeFor[config.Group](), "yaml"); !slices.Equal(got, want) {
		t.Errorf("group keys: JSON %q, config %q", got, want)
	}
}

// A dry run answers with the definition's static warnings.
func TestDryRunWarnings(t *testing.T) {
	got := api.LintFeed(config.Feed{ID: "w", Filter: `seller.status == "ACTIVE"`, Template: "google-merchant"}, nil)
	if len(got) != 1 || got[0].Path == "" || got[0].Line == 0 {
		t.Fatalf("warnings %+v, want one for the nil-unsafe seller access", got)
	}
	if got := api.LintFeed(config.Feed{ID: "ok", Filter: `seller?.status == "ACTIVE"`, Template: "google-merchant"}, nil); len(got) != 0 {
		t.Fatalf("warnings %+v for a nil-safe filter", got)
	}
}
