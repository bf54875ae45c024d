package dryrun_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/internal/app"
	"github.com/feedmill/feedmill/internal/apptest"
	"github.com/feedmill/feedmill/internal/synth"
	"github.com/feedmill/feedmill/internal/testenv"
	"github.com/feedmill/feedmill/processor/dryrun"
)

// TestDryRunInApp: POST /api/feeds/dry-run on a running app (kfake, every
// offers partition owned) answers what a from-scratch evaluation of the
// generated catalog gives, against the feeds in force as the stream
// stored them, behind the admin token.
func TestDryRunInApp(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	env := testenv.New(t, "offers", "sellers", "ratings", "feed-events", "feedmill-rejects")
	fs, ts := exampleFeeds()
	cfg := apptest.Config(t, env, fs, ts)
	cfg.FullPass.Interval = 0
	cfg.HTTP.AdminToken = "dry-run-admin-token"
	gen, _, _ := apptest.ProduceCatalog(t, env, cfg.Kafka.Topics, 5, synth.Options{Offers: 600, Products: 150, HostileFraction: -1})
	a := apptest.Start(t, cfg, app.Deps{})
	apptest.WaitCaughtUp(t, env, a)
	st := gen.State()
	all := func(string) bool { return true }

	post := func(t *testing.T, token, body string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, "http://"+a.Addr()+"/api/feeds/dry-run", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/yaml")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b
	}
	if code, _ := post(t, "", "id: x\nfilter: \"true\"\ntemplate: ceneo\n"); code != http.StatusUnauthorized {
		t.Errorf("without the token: %d", code)
	}
	byID := map[string]config.Feed{}
	for _, f := range fs {
		byID[f.ID] = f
	}
	narrowed := byID["phones-gmc"]
	narrowed.Filter += " && offer.price < 1500"
	grouped := byID["cheapest-per-product"]
	grouped.Filter += ` && offer.condition == "NEW"`
	grouped.Template = "partner-x"
	for _, tc := range []struct {
		name string
		feed config.Feed
	}{{"narrowed", narrowed}, {"grouped", grouped}} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.feed
			def, err := yaml.Marshal(f)
			if err != nil {
				t.Fatal(err)
			}
			code, body := post(t, cfg.HTTP.AdminToken, string(def))
			if code != http.StatusOK {
				t.Fatalf("%d %s", code, body)
			}
			var res dryrun.Result
			if err := json.Unmarshal(body, &res); err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			want, _ := reference(t, f, ts, a.Feeds, st, now, all)
			if !res.Complete || res.Members != int64(len(want)) || res.Members == 0 || len(res.Partitions) != int(testenv.Partitions) ||
				res.PartitionsTotal != testenv.Partitions || len(res.Notes) != 0 {
				t.Errorf("members %d (reference %d), complete %v, partitions %v of %d, notes %q",
					res.Members, len(want), res.Complete, res.Partitions, res.PartitionsTotal, res.Notes)
			}
			old, _ := reference(t, byID[f.ID], ts, a.Feeds, st, now, all)
			if res.Current == nil {
				t.Fatal("no comparison with the feed in force")
			}
			checkComparison(t, f.ID, res.Current, want, old)
		})
	}
}
