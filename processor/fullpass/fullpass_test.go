package fullpass_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/internal/app"
	"github.com/feedmill/feedmill/internal/apptest"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/internal/synth"
	"github.com/feedmill/feedmill/internal/testenv"
	"github.com/feedmill/feedmill/processor"
	"github.com/feedmill/feedmill/processor/fullpass"
	"github.com/feedmill/feedmill/processor/runlog"
	"github.com/feedmill/feedmill/state"
)

// testClock is a settable clock shared by the pipeline and the full pass.
type testClock struct {
	mu sync.Mutex
	d  time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.d)
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.d += d
	c.mu.Unlock()
}

const adminToken = "s3cret-token"

// passEnv is a running app (pipeline, full pass and HTTP server) with the
// admin token.
type passEnv struct {
	t     *testing.T
	env   *testenv.Env
	cfg   *config.Config
	set   *feeds.Set
	run   *apptest.App
	fp    *fullpass.FullPass
	url   string
	reg   *prometheus.Registry
	stopF func()
}

// startPass runs an app at clk on cfg's state dir (with the admin token)
// and waits until it is caught up. hook is the full pass's OnPartition
// test hook (may be nil); it receives the cancel of the app's context. t
// reports failures, owner (the test or a parent test) stops everything at
// its end.
func startPass(t, owner *testing.T, env *testenv.Env, cfg *config.Config, clk *testClock, hook func(cancel func(), p int32)) *passEnv {
	t.Helper()
	cfg.HTTP.AdminToken = adminToken
	var a *apptest.App
	deps := app.Deps{Logger: testLogger(t), Now: clk.Now}
	if hook != nil {
		deps.OnPartition = func(_ context.Context, p int32) { hook(a.Cancel, p) }
	}
	a = apptest.Start(owner, cfg, deps)
	waitCaughtUp(t, env, a)
	pe := &passEnv{t: t, env: env, cfg: cfg, set: a.Feeds, run: a, fp: a.Pass, url: "http://" + a.Addr(), reg: a.Registry}
	stopped := false
	pe.stopF = func() {
		if stopped {
			return
		}
		stopped = true
		a.Cancel()
		if err := a.Wait(); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("app: %v", err)
		}
	}
	owner.Cleanup(pe.stopF)
	return pe
}

func testLogger(t testing.TB) *zap.Logger { return apptest.Logger(t) }

func waitCaughtUp(t testing.TB, env *testenv.Env, a *apptest.App) {
	t.Helper()
	apptest.WaitCaughtUp(t, env, a)
}

var allTopics = []string{"offers", "sellers", "ratings", "feed-events", "feedmill-rejects"}

// do sends one request; token "" sends none.
func (pe *passEnv) do(method, path, token string, hdr map[string]string) (*http.Response, []byte) {
	pe.t.Helper()
	req, err := http.NewRequest(method, pe.url+path, nil)
	if err != nil {
		pe.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	cl := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	resp, err := cl.Do(req)
	if err != nil {
		pe.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		pe.t.Fatal(err)
	}
	return resp, body
}

func (pe *passEnv) getRun(id string) runlog.Run {
	pe.t.Helper()
	resp, body := pe.do("GET", "/api/runs/"+id, adminToken, nil)
	if resp.StatusCode != 200 {
		pe.t.Fatalf("GET run %s: %d %s", id, resp.StatusCode, body)
	}
	var r runlog.Run
	if err := json.Unmarshal(body, &r); err != nil {
		pe.t.Fatal(err)
	}
	return r
}

// waitRun polls run id until it is finished (and, when published, its
// corrections applied).
func (pe *passEnv) waitRun(id string) runlog.Run {
	pe.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		r := pe.getRun(id)
		if r.Status != runlog.StatusRunning && (r.Status != runlog.StatusPublished || r.Applied) {
			return r
		}
		time.Sleep(20 * time.Millisecond)
	}
	pe.t.Fatalf("run %s did not finish", id)
	return runlog.Run{}
}

// pass starts a pass through the API and waits for it; the outbox is then
// relayed.
func (pe *passEnv) pass() runlog.Run {
	pe.t.Helper()
	resp, body := pe.do("POST", "/api/runs", adminToken, nil)
	if resp.StatusCode != http.StatusAccepted {
		pe.t.Fatalf("POST /api/runs: %d %s", resp.StatusCode, body)
	}
	var out struct{ ID string }
	if err := json.Unmarshal(body, &out); err != nil || out.ID == "" {
		pe.t.Fatalf("POST /api/runs body %s: %v", body, err)
	}
	if loc := resp.Header.Get("Location"); loc != "/api/runs/"+out.ID {
		pe.t.Errorf("Location %q", loc)
	}
	r := pe.waitRun(out.ID)
	waitCaughtUp(pe.t, pe.env, pe.run)
	return r
}

// itemElement is the element name of one item per template.
func itemElement(template string) string {
	switch template {
	case synth.TemplateCeneo:
		return "o"
	case "partner-x":
		return "product"
	}
	return "item"
}

// fetchFeed GETs a feed, checks it parses strictly and returns its item
// count and ETag.
func (pe *passEnv) fetchFeed(f *feeds.Feed) (int, string, []byte) {
	pe.t.Helper()
	resp, body := pe.do("GET", "/feeds/"+f.ID+".xml", "", nil)
	if resp.StatusCode != 200 {
		pe.t.Fatalf("GET feed %s: %d %s", f.ID, resp.StatusCode, body)
	}
	return countItems(pe.t, f, body), resp.Header.Get("ETag"), body
}

// waitFeed fetches f until its ETag is not oldTag (the coordinator
// switches the files once a run is published) or a deadline passes.
func (pe *passEnv) waitFeed(f *feeds.Feed, oldTag string) (int, string, []byte) {
	pe.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, tag, body := pe.fetchFeed(f)
		if tag != oldTag || time.Now().After(deadline) {
			return n, tag, body
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func countItems(t *testing.T, f *feeds.Feed, doc []byte) int {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(doc))
	dec.Strict = true
	n, depth, itemDepth := 0, 0, -1
	name := itemElement(f.Template.ID)
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("feed %s is not well-formed XML: %v", f.ID, err)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			depth++
			if e.Name.Local == name && (itemDepth < 0 || depth == itemDepth) {
				itemDepth = depth
				n++
			}
		case xml.EndElement:
			depth--
		}
	}
	return n
}

// events returns the feed events not in seen (adding them to seen).
func newEvents(t *testing.T, env *testenv.Env, serde *records.Serde, topic string, seen map[string]bool) []records.FeedEvent {
	t.Helper()
	var out []records.FeedEvent
	for _, r := range apptest.ConsumeAll(t, env, topic) {
		var ev records.FeedEvent
		if err := serde.DecodeFeedEvent(context.Background(), r.Value, &ev); err != nil {
			t.Fatal(err)
		}
		if seen[ev.EventID] {
			continue
		}
		seen[ev.EventID] = true
		out = append(out, ev)
	}
	return out
}

func copyMembership(m *state.Membership) state.Membership {
	c := state.Membership{Seq: m.Seq, FieldHashes: slices.Clone(m.FieldHashes), Groups: slices.Clone(m.Groups)}
	for _, f := range m.Feeds {
		f.Destinations = slices.Clone(f.Destinations)
		c.Feeds = append(c.Feeds, f)
	}
	return c
}

func TestFullPass(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx := context.Background()
	env := testenv.New(t, allTopics...)
	example, templates := synth.ExampleFeeds()
	cfg := apptest.Config(t, env, append(append(example, synth.FeedSet(20, 3)...), synth.GroupedFeeds()...), templates)
	cfg.FullPass.Interval = 0
	cfg.FullPass.Guard = config.Guard{MaxDrop: 0.2, MaxGrowth: 1.0, MinSize: 20}
	clk := &testClock{}

	gen, prod, serde := apptest.ProduceCatalog(t, env, cfg.Kafka.Topics, 11, synth.Options{Offers: 3000, Sellers: 30, HostileFraction: 0.05, Products: 300})
	owner := t
	pe := startPass(t, owner, env, cfg, clk, nil)
	seen := map[string]bool{}
	newEvents(t, env, serde, cfg.Kafka.Topics.Events, seen)
	phones, _ := pe.set.Feed("phones-gmc")
	books, _ := pe.set.Feed("books-file")

	t.Run("http before the first publication", func(t *testing.T) {
		pe.t = t
		for _, tc := range []struct {
			path, token string
			want        int
		}{
			{"/feeds/phones-gmc.xml", "", http.StatusServiceUnavailable},
			{"/feeds/nope.xml", "", http.StatusNotFound},
			{"/feeds/sports-fresh-gmc.xml", "", http.StatusNotFound}, // file: false
			{"/feeds/phones-gmc", "", http.StatusNotFound},
			{"/api/runs", "", http.StatusUnauthorized},
			{"/api/feeds", "", http.StatusUnauthorized},
			{"/api/feeds", "wrong", http.StatusUnauthorized},
			{"/api/runs/run-999999", adminToken, http.StatusNotFound},
			{"/api/runs", adminToken, http.StatusOK},
			{"/api/feeds", adminToken, http.StatusOK},
			{"/metrics", "", http.StatusOK},
		} {
			resp, body := pe.do("GET", tc.path, tc.token, nil)
			if resp.StatusCode != tc.want {
				t.Errorf("GET %s (token %q): %d, want %d (%s)", tc.path, tc.token, resp.StatusCode, tc.want, body)
			}
			if tc.want >= 400 && !strings.HasPrefix(tc.path, "/feeds/") || tc.want == http.StatusUnauthorized {
				var e struct{ Error string }
				if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
					t.Errorf("GET %s: error body %q is not {\"error\": ...}", tc.path, body)
				}
			}
		}
		resp, _ := pe.do("POST", "/api/runs", "", nil)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST /api/runs without token: %d", resp.StatusCode)
		}
	})

	var first runlog.Run
	t.Run("first pass publishes every file feed and emits nothing", func(t *testing.T) {
		pe.t = t
		first = pe.pass()
		if first.Status != runlog.StatusPublished || first.Corrections != 0 || first.Refreshes != 0 {
			t.Fatalf("first run %+v", first)
		}
		if evs := newEvents(t, env, serde, cfg.Kafka.Topics.Events, seen); len(evs) != 0 {
			t.Errorf("a pass over a drift-free state emitted %d events, first %+v", len(evs), evs[0])
		}
		counts, err := pe.run.Store.Counts(nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range pe.set.Feeds() {
			var rf *runlog.Feed
			for i := range first.Feeds {
				if first.Feeds[i].ID == f.ID {
					rf = &first.Feeds[i]
				}
			}
			if rf == nil || rf.Members != counts[f.ID] {
				t.Errorf("feed %s: run size %+v, live members %d", f.ID, rf, counts[f.ID])
			}
			if !f.File {
				continue
			}
			n, etag, body := pe.fetchFeed(f)
			if int64(n) != counts[f.ID] {
				t.Errorf("feed %s: %d items served, %d members", f.ID, n, counts[f.ID])
			}
			if n == 0 && f.ID != "bargains-webhook" {
				t.Errorf("feed %s is empty: the catalog should fill it", f.ID)
			}
			// gzip serves the same document under its own ETag.
			resp, gz := pe.do("GET", "/feeds/"+f.ID+".xml", "", map[string]string{"Accept-Encoding": "gzip"})
			if resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("ETag") == etag {
				t.Errorf("feed %s gzip: encoding %q etag %q", f.ID, resp.Header.Get("Content-Encoding"), resp.Header.Get("ETag"))
			}
			zr, err := gzip.NewReader(bytes.NewReader(gz))
			if err != nil {
				t.Fatal(err)
			}
			plain, err := io.ReadAll(zr)
			if err != nil || !bytes.Equal(plain, body) {
				t.Errorf("feed %s: gunzipped document differs (%v)", f.ID, err)
			}
			resp, _ = pe.do("GET", "/feeds/"+f.ID+".xml", "", map[string]string{"If-None-Match": etag})
			if resp.StatusCode != http.StatusNotModified {
				t.Errorf("feed %s If-None-Match: %d, want 304", f.ID, resp.StatusCode)
			}
			resp, _ = pe.do("GET", "/feeds/"+f.ID+".xml", "", map[string]string{"If-None-Match": `"other"`})
			if resp.StatusCode != http.StatusOK {
				t.Errorf("feed %s other ETag: %d, want 200", f.ID, resp.StatusCode)
			}
		}
		_, body := pe.do("GET", "/api/feeds", adminToken, nil)
		var fs []struct {
			ID      string  `json:"id"`
			LastRun *string `json:"last_run"`
		}
		if err := json.Unmarshal(body, &fs); err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			if f.LastRun == nil || *f.LastRun != first.ID {
				t.Errorf("/api/feeds %s last_run %v, want %s", f.ID, f.LastRun, first.ID)
			}
		}
	})

	t.Run("reconcile repairs exactly the injected drift", func(t *testing.T) {
		pe.t = t
		// Pick: lost = a member of a feed with destinations (its entry is
		// deleted: a lost ADD); stale = a live offer given a bogus entry of
		// a feed it is not in; fprint = a member whose fingerprint changes.
		type pick struct {
			p   int32
			id  string
			mem state.Membership
		}
		var lost, stale, fprint *pick
		snap := pe.run.Store.NewSnapshot()
		err := snap.Scan(ctx, nil, func(it *state.ScanItem) error {
			if it.Offer == nil || it.Membership == nil {
				return nil
			}
			withDest := slices.IndexFunc(it.Membership.Feeds, func(f state.FeedMembership) bool { return len(f.Destinations) > 0 })
			switch {
			case withDest >= 0 && lost == nil:
				lost = &pick{it.Partition, it.OfferID, copyMembership(it.Membership)}
			case withDest >= 0 && fprint == nil:
				fprint = &pick{it.Partition, it.OfferID, copyMembership(it.Membership)}
			case it.Membership.Find(phones.ID) < 0 && stale == nil:
				stale = &pick{it.Partition, it.OfferID, copyMembership(it.Membership)}
			}
			return nil
		})
		if cerr := snap.Close(); err == nil {
			err = cerr
		}
		if err != nil || lost == nil || stale == nil || fprint == nil {
			t.Fatalf("picking offers: %v", err)
		}
		want := map[string][]records.FeedEntry{}
		entries := func(fm state.FeedMembership, action string) []records.FeedEntry {
			var out []records.FeedEntry
			for _, d := range fm.Destinations {
				out = append(out, records.FeedEntry{FeedID: fm.FeedID, Destination: d, Action: action})
			}
			return out
		}
		li := slices.IndexFunc(lost.mem.Feeds, func(f state.FeedMembership) bool { return len(f.Destinations) > 0 })
		want[lost.id] = entries(lost.mem.Feeds[li], records.ActionAdd)
		lost.mem.Feeds = slices.Delete(lost.mem.Feeds, li, li+1)
		bogus := state.FeedMembership{FeedID: phones.ID, Fingerprint: 42, SentAtMs: clk.Now().UnixMilli(), Destinations: phones.Destinations}
		want[stale.id] = entries(bogus, records.ActionRemove)
		stale.mem.Feeds = append(stale.mem.Feeds, bogus)
		fi := slices.IndexFunc(fprint.mem.Feeds, func(f state.FeedMembership) bool { return len(f.Destinations) > 0 })
		want[fprint.id] = entries(fprint.mem.Feeds[fi], records.ActionUpdate)
		fprint.mem.Feeds[fi].Fingerprint ^= 0xdead
		err = pe.run.Pipeline.Exec(ctx, func(*processor.Applier) error {
			b := pe.run.Store.NewBatch()
			defer b.Close()
			for _, pk := range []*pick{lost, stale, fprint} {
				if err := b.PutMembership(pk.p, pk.id, &pk.mem); err != nil {
					return err
				}
			}
			return b.Commit(true)
		})
		if err != nil {
			t.Fatal(err)
		}
		r := pe.pass()
		if r.Status != runlog.StatusPublished || r.Corrections != 3 || r.Refreshes != 0 {
			t.Errorf("run %s: status %s corrections %d refreshes %d, want published/3/0", r.ID, r.Status, r.Corrections, r.Refreshes)
		}
		evs := newEvents(t, env, serde, cfg.Kafka.Topics.Events, seen)
		if len(evs) != 3 {
			t.Fatalf("got %d events, want 3: %+v", len(evs), evs)
		}
		for _, ev := range evs {
			if ev.Cause != records.CauseReconcile {
				t.Errorf("event %s cause %s", ev.EventID, ev.Cause)
			}
			w, ok := want[ev.OfferID]
			if !ok || !slices.Equal(ev.Entries, w) {
				t.Errorf("offer %s: entries %+v, want %+v", ev.OfferID, ev.Entries, w)
			}
			delete(want, ev.OfferID)
		}
		if r := pe.pass(); r.Corrections != 0 || r.Refreshes != 0 {
			t.Errorf("pass after repair: %+v", r)
		}
		if evs := newEvents(t, env, serde, cfg.Kafka.Topics.Events, seen); len(evs) != 0 {
			t.Errorf("pass after repair emitted %d events", len(evs))
		}
	})

	t.Run("guard hold, restart, approve", func(t *testing.T) {
		pe.t = t
		st := gen.State()
		var booksOffers []*records.Offer
		for _, o := range st.Offers {
			if strings.HasPrefix(o.Category, "Books") && o.Status == "ACTIVE" {
				c := *o
				c.Status, c.Version = "INACTIVE", o.Version+100
				booksOffers = append(booksOffers, &c)
			}
		}
		for _, o := range booksOffers {
			if err := prod.Produce(ctx, synth.Change{Topic: synth.KindOffers, Key: o.ID, Offer: o}); err != nil {
				t.Fatal(err)
			}
		}
		if err := prod.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		waitCaughtUp(t, env, pe.run)
		_, oldTag, _ := pe.fetchFeed(books)
		r := pe.pass()
		if r.Status != runlog.StatusHeld || !strings.Contains(r.Reason, "books-file") {
			t.Fatalf("run %+v should be held for books-file", r)
		}
		if _, tag, _ := pe.fetchFeed(books); tag != oldTag {
			t.Errorf("held run switched the file: %s → %s", oldTag, tag)
		}
		_, metrics := pe.do("GET", "/metrics", "", nil)
		if !strings.Contains(string(metrics), "feedmill_runs_held 1") {
			t.Errorf("metrics should show one held run")
		}
		resp, _ := pe.do("POST", "/api/runs/"+first.ID+"/approve", adminToken, nil)
		if resp.StatusCode != http.StatusConflict {
			t.Errorf("approve of a published run: %d, want 409", resp.StatusCode)
		}
		pe.stopF()
		pe = startPass(t, owner, env, cfg, clk, nil)
		if got := pe.getRun(r.ID); got.Status != runlog.StatusHeld {
			t.Fatalf("after restart run %s is %s", r.ID, got.Status)
		}
		resp, body := pe.do("POST", "/api/runs/"+r.ID+"/approve", adminToken, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("approve: %d %s", resp.StatusCode, body)
		}
		if got := pe.waitRun(r.ID); got.Status != runlog.StatusPublished {
			t.Errorf("approved run is %s", got.Status)
		}
		if n, tag, _ := pe.waitFeed(books, oldTag); tag == oldTag || n != 0 {
			t.Errorf("approved run: books-file serves %d items under %s", n, tag)
		}
	})

	t.Run("guard hold, restart, reject", func(t *testing.T) {
		pe.t = t
		st := gen.State()
		for _, o := range st.Offers {
			if strings.HasPrefix(o.Category, "Books") && o.Status == "ACTIVE" {
				c := *o
				c.Version = o.Version + 200
				if err := prod.Produce(ctx, synth.Change{Topic: synth.KindOffers, Key: c.ID, Offer: &c}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := prod.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		waitCaughtUp(t, env, pe.run)
		_, oldTag, _ := pe.fetchFeed(books)
		r := pe.pass()
		if r.Status != runlog.StatusHeld {
			t.Fatalf("run %+v should be held (books-file grew from 0)", r)
		}
		pe.stopF()
		pe = startPass(t, owner, env, cfg, clk, nil)
		resp, body := pe.do("POST", "/api/runs/"+r.ID+"/reject", adminToken, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("reject: %d %s", resp.StatusCode, body)
		}
		if got := pe.getRun(r.ID); got.Status != runlog.StatusRejected {
			t.Errorf("rejected run is %s", got.Status)
		}
		if resp, _ := pe.do("POST", "/api/runs/"+r.ID+"/reject", adminToken, nil); resp.StatusCode != http.StatusConflict {
			t.Errorf("second reject: %d, want 409", resp.StatusCode)
		}
		if _, tag, _ := pe.fetchFeed(books); tag != oldTag {
			t.Errorf("rejected run switched the file")
		}
		waitGone(t, filepath.Join(cfg.State.Dir, "feeds", "runs", r.ID))
		// The next pass compares with the published (empty) books feed and
		// holds again; approving it brings the books back.
		r2 := pe.pass()
		if r2.Status != runlog.StatusHeld {
			t.Fatalf("next run %s: %s", r2.ID, r2.Status)
		}
		if _, err := pe.fp.Approve(ctx, r2.ID); err != nil {
			t.Fatal(err)
		}
		if got := pe.waitRun(r2.ID); got.Status != runlog.StatusPublished {
			t.Errorf("approved run is %s", got.Status)
		}
		waitCaughtUp(t, env, pe.run)
	})

	t.Run("refresh after refresh_after", func(t *testing.T) {
		pe.t = t
		// 29 days later every entry is older than refresh_after. Some
		// feeds depend on now, so sizes move: the guard is lifted here.
		cfg.FullPass.Guard.MinSize = 1 << 30
		newEvents(t, env, serde, cfg.Kafka.Topics.Events, seen) // the live changes above
		pe.stopF()
		clk.Advance(29 * 24 * time.Hour)
		pe = startPass(t, owner, env, cfg, clk, nil)
		r := pe.pass()
		if r.Status != runlog.StatusPublished || r.Refreshes == 0 {
			t.Fatalf("run %+v: want published with refreshes", r)
		}
		evs := newEvents(t, env, serde, cfg.Kafka.Topics.Events, seen)
		refreshEvents := 0
		type key struct{ offer, feed string }
		refreshed := map[key]bool{}
		for _, ev := range evs {
			switch ev.Cause {
			case records.CauseRefresh:
				refreshEvents++
				for _, e := range ev.Entries {
					if e.Action != records.ActionRefresh {
						t.Errorf("REFRESH event %s has a %s entry", ev.EventID, e.Action)
					}
					refreshed[key{ev.OfferID, e.FeedID}] = true
				}
			case records.CauseReconcile:
			default:
				t.Errorf("event %s cause %s during a pass", ev.EventID, ev.Cause)
			}
		}
		if int64(refreshEvents) != r.Refreshes {
			t.Errorf("%d REFRESH events, run says %d", refreshEvents, r.Refreshes)
		}
		// Every entry with destinations was sent within the pass; every
		// refreshed entry is a member.
		now := clk.Now()
		snap := pe.run.Store.NewSnapshot()
		members := 0
		err := snap.Scan(ctx, nil, func(it *state.ScanItem) error {
			if it.Membership == nil {
				return nil
			}
			for _, f := range it.Membership.Feeds {
				if len(f.Destinations) == 0 {
					continue
				}
				members++
				if age := now.Sub(time.UnixMilli(f.SentAtMs)); age > time.Hour {
					t.Errorf("offer %s feed %s last sent %v ago after the pass", it.OfferID, f.FeedID, age)
				}
				delete(refreshed, key{it.OfferID, f.FeedID})
			}
			return nil
		})
		if cerr := snap.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(refreshed) != 0 {
			t.Errorf("%d refreshed entries are not members, e.g. %v", len(refreshed), refreshed)
		}
		t.Logf("refresh run: %d REFRESH events over %d member entries with destinations, %d corrections", refreshEvents, members, r.Corrections)
		// Nothing is due right after.
		if r := pe.pass(); r.Refreshes != 0 || r.Corrections != 0 {
			t.Errorf("pass right after the refresh: %+v", r)
		}
		if evs := newEvents(t, env, serde, cfg.Kafka.Topics.Events, seen); len(evs) != 0 {
			t.Errorf("pass right after the refresh emitted %d events", len(evs))
		}
	})

	t.Run("one run at a time", func(t *testing.T) {
		pe.t = t
		pe.stopF()
		entered, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		pe = startPass(t, owner, env, cfg, clk, func(func(), int32) {
			once.Do(func() { close(entered) })
			<-release
		})
		resp, body := pe.do("POST", "/api/runs", adminToken, nil)
		var a, b struct{ ID string }
		if err := json.Unmarshal(body, &a); err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST: %d %s", resp.StatusCode, body)
		}
		<-entered
		resp, body = pe.do("POST", "/api/runs", adminToken, nil)
		if err := json.Unmarshal(body, &b); err != nil || resp.StatusCode != http.StatusAccepted || b.ID != a.ID {
			t.Errorf("POST during run %s: %d %s", a.ID, resp.StatusCode, body)
		}
		if got := pe.getRun(a.ID); got.Status != runlog.StatusRunning {
			t.Errorf("run %s is %s during the pass", a.ID, got.Status)
		}
		close(release)
		if got := pe.waitRun(a.ID); got.Status != runlog.StatusPublished {
			t.Errorf("run %s: %s", a.ID, got.Status)
		}
		_, body = pe.do("GET", "/api/runs", adminToken, nil)
		var runs []runlog.Run
		if err := json.Unmarshal(body, &runs); err != nil {
			t.Fatal(err)
		}
		if len(runs) < 2 || runs[0].ID != a.ID || runs[0].ID <= runs[1].ID {
			t.Errorf("runs are not newest first: %v", runs)
		}
	})

	t.Run("crash in the middle of a pass resumes the run", func(t *testing.T) {
		pe.t = t
		pe.stopF()
		interrupted := make(chan struct{})
		var once sync.Once
		pe = startPass(t, owner, env, cfg, clk, func(cancel func(), p int32) {
			once.Do(func() { cancel(); close(interrupted) })
		})
		_, oldTag, _ := pe.fetchFeed(phones)
		resp, body := pe.do("POST", "/api/runs", adminToken, nil)
		var a struct{ ID string }
		if err := json.Unmarshal(body, &a); err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST: %d %s", resp.StatusCode, body)
		}
		// The hook stops the whole app mid-pass, like a crash: the
		// partition it was scanning has no part.
		<-interrupted
		pe.stopF()
		pe = startPass(t, owner, env, cfg, clk, nil)
		// The restarted instance scans the partitions without parts and
		// the run completes.
		r := pe.waitRun(a.ID)
		if r.Status != runlog.StatusPublished || int32(len(r.Parts)) != r.PartitionsTotal {
			t.Fatalf("resumed run: %+v", r)
		}
		i := slices.IndexFunc(r.Feeds, func(f runlog.Feed) bool { return f.ID == phones.ID })
		deadline := time.Now().Add(time.Minute)
		for {
			n, tag, _ := pe.fetchFeed(phones)
			if tag != oldTag && i >= 0 && int64(n) == r.Feeds[i].Members {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("resumed pass serves %d items under %s, run %+v", n, tag, r.Feeds)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// waitGone waits until path no longer exists (the coordinator removes old
// runs' files after each decision).
func waitGone(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := os.Stat(path)
		if os.IsNotExist(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s remains: %v", path, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
