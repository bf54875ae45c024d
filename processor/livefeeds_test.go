package processor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/internal/apptest"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/internal/synth"
	"github.com/feedmill/feedmill/internal/testenv"
)

// httpDo sends a request to a's HTTP API and returns the status and body.
func httpDo(t *testing.T, a *apptest.App, method, path, contentType string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+a.Addr()+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// TestLiveFeedChanges: on a running processor, a feed added and a feed
// narrowed through PUT /api/feeds/{id} and a feed removed through DELETE
// take effect without a full pass: the removal waits, held, until it is
// approved, and afterwards the feed-events replayed with seq dedupe equal
// a from-scratch evaluation of the set in force at each step. The
// backfill's events say FEED_CHANGE.
func TestLiveFeedChanges(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx := context.Background()
	env := testenv.New(t, allTopics...)
	example, templates := synth.ExampleFeeds()
	cfg := testConfig(t, env, append(example, synth.FeedSet(10, 4)...), templates)
	cfg.FullPass.Interval = 0
	gen, prod, serde := apptest.ProduceCatalog(t, env, cfg.Kafka.Topics, 5, synth.Options{Offers: 2000, Sellers: 10, Products: 200})
	run := startPipeline(t, env, cfg, testLogger(t))
	waitCaughtUp(t, env, run, cfg.Kafka.Topics)

	// The reference follows the set in force.
	inForce := slices.Clone(cfg.Feeds)
	// ever holds every definition the events may name: the model checks
	// each event's items against its feed's template.
	ever := slices.Clone(cfg.Feeds)
	put := func(f config.Feed, want int) {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"id": f.ID, "filter": f.Filter, "template": f.Template, "destinations": f.Destinations, "file": f.File})
		status, out := httpDo(t, run, "PUT", "/api/feeds/"+f.ID, "application/json", body)
		if status != want {
			t.Fatalf("PUT %s: %d %s, want %d", f.ID, status, out, want)
		}
		if i := slices.IndexFunc(inForce, func(x config.Feed) bool { return x.ID == f.ID }); i >= 0 {
			inForce[i] = f
		} else {
			inForce = append(inForce, f)
		}
		if i := slices.IndexFunc(ever, func(x config.Feed) bool { return x.ID == f.ID }); i >= 0 {
			ever[i] = f
		} else {
			ever = append(ever, f)
		}
	}
	check := func(step string) {
		t.Helper()
		waitCaughtUp(t, env, run, cfg.Kafka.Topics)
		all, err := feeds.Compile(ever, cfg.Templates)
		if err != nil {
			t.Fatal(err)
		}
		set, err := feeds.Compile(inForce, cfg.Templates)
		if err != nil {
			t.Fatal(err)
		}
		model := newEventModel(all)
		for _, r := range consumeAll(t, env, cfg.Kafka.Topics.Events) {
			var ev records.FeedEvent
			if err := serde.DecodeFeedEvent(ctx, r.Value, &ev); err != nil {
				t.Fatal(err)
			}
			model.apply(r, &ev)
		}
		t.Logf("%s: events %d, entries %v", step, model.events, model.actions)
		model.checkGenerated(t, set, gen)
	}

	// A new feed is put in force at once.
	put(config.Feed{ID: "live-cheap-phones", Filter: `offer.category startsWith "Electronics/Phones" && offer.price < 1500`,
		Template: "google-merchant", Destinations: []string{"gmc-main"}}, http.StatusOK)
	// A narrowing beyond the guard (max_drop 20%) is held until approved;
	// a dry run of it first says how many members it will keep.
	var listed []struct {
		ID      string `json:"id"`
		Members int64  `json:"members"`
	}
	_, body := httpDo(t, run, "GET", "/api/feeds", "", nil)
	if err := json.Unmarshal(body, &listed); err != nil {
		t.Fatal(err)
	}
	members := map[string]int64{}
	for _, l := range listed {
		members[l.ID] = l.Members
	}
	big := 0 // the largest feed of the config: above the guard's min_size
	for i, f := range inForce {
		if members[f.ID] > members[inForce[big].ID] {
			big = i
		}
	}
	narrowed := inForce[big]
	narrowed.Filter = "(" + narrowed.Filter + `) && offer.stock > 400`
	defJSON, _ := json.Marshal(map[string]any{"id": narrowed.ID, "filter": narrowed.Filter, "template": narrowed.Template,
		"destinations": narrowed.Destinations, "file": narrowed.File})
	status, out := httpDo(t, run, "POST", "/api/feeds/dry-run", "application/json", defJSON)
	var dry struct {
		Complete bool  `json:"complete"`
		Members  int64 `json:"members"`
	}
	if err := json.Unmarshal(out, &dry); status != http.StatusOK || err != nil || !dry.Complete {
		t.Fatalf("dry run: %d %s (%v)", status, out, err)
	}
	status, out = httpDo(t, run, "PUT", "/api/feeds/"+narrowed.ID, "application/json", defJSON)
	var held struct {
		Change string
		Held   *struct{ Status, Kind, Reason string }
	}
	if err := json.Unmarshal(out, &held); status != http.StatusAccepted || err != nil || held.Held == nil || held.Held.Kind != "change" {
		t.Fatalf("PUT of a narrowing beyond the guard: %d %s, want 202 and a held change", status, out)
	}
	t.Logf("held: %s", held.Held.Reason)
	if status, out := httpDo(t, run, "POST", "/api/feed-changes/"+held.Change+"/approve", "", nil); status != http.StatusOK {
		t.Fatalf("approve %s: %d %s", held.Change, status, out)
	}
	inForce[big], ever[big] = narrowed, narrowed
	// The dry run's count is what the change produced (no offer changed
	// in between).
	waitCaughtUp(t, env, run, cfg.Kafka.Topics)
	_, out = httpDo(t, run, "GET", "/api/feeds", "", nil)
	if err := json.Unmarshal(out, &listed); err != nil {
		t.Fatal(err)
	}
	for _, f := range listed {
		if f.ID == narrowed.ID && f.Members != dry.Members {
			t.Errorf("feed %s: the dry run counted %d members, the change made %d", f.ID, dry.Members, f.Members)
		}
	}
	for range 1000 {
		if err := prod.Produce(ctx, gen.Next()); err != nil {
			t.Fatal(err)
		}
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	check("after an addition and a narrowing")
	causes := map[string]int{}
	for _, r := range consumeAll(t, env, cfg.Kafka.Topics.Events) {
		var ev records.FeedEvent
		if err := serde.DecodeFeedEvent(ctx, r.Value, &ev); err != nil {
			t.Fatal(err)
		}
		causes[ev.Cause]++
	}
	if causes[records.CauseFeedChange] == 0 {
		t.Errorf("no event says FEED_CHANGE: %v", causes)
	}

	// A removal is held: nothing changes until it is approved.
	gone := "" // the largest feed after the narrowed one: its removal sends REMOVEs
	for i, f := range inForce {
		if i != big && (gone == "" || members[f.ID] > members[gone]) && f.ID != "live-cheap-phones" {
			gone = f.ID
		}
	}
	status, out = httpDo(t, run, "DELETE", "/api/feeds/"+gone, "", nil)
	if status != http.StatusAccepted {
		t.Fatalf("DELETE %s: %d %s, want 202", gone, status, out)
	}
	var res struct {
		Change  string
		Applied bool
		Held    *struct{ ID, Status, Kind string }
	}
	if err := json.Unmarshal(out, &res); err != nil || res.Held == nil || res.Held.Status != "held" || res.Held.Kind != "remove" {
		t.Fatalf("DELETE answer %s (%v): want a held removal", out, err)
	}
	time.Sleep(500 * time.Millisecond) // nothing may happen meanwhile (not a timing assert)
	check("with the removal held")
	status, out = httpDo(t, run, "POST", "/api/feed-changes/"+res.Change+"/approve", "", nil)
	if status != http.StatusOK {
		t.Fatalf("approve %s: %d %s", res.Change, status, out)
	}
	inForce = slices.DeleteFunc(inForce, func(f config.Feed) bool { return f.ID == gone })
	check("after the removal was approved")
	if status, _ := httpDo(t, run, "POST", "/api/feed-changes/"+res.Change+"/approve", "", nil); status != http.StatusConflict {
		t.Errorf("approving a decided change again: %d, want 409", status)
	}

	// A restart keeps the set in force (the feed log), whatever the file says.
	run.Stop()
	run = startPipeline(t, env, cfg, testLogger(t))
	check("after a restart with the old config file")
}
