package admin_test

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
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
	"github.com/feedmill/feedmill/processor/admin"
	"github.com/feedmill/feedmill/processor/api"
	"github.com/feedmill/feedmill/processor/dryrun"
	"github.com/feedmill/feedmill/processor/feedlog"
	"github.com/feedmill/feedmill/processor/runlog"
	"github.com/feedmill/feedmill/state"
)

const testToken = "admin-page-test-token-0123456789"

var testFeeds = []config.Feed{
	{ID: "cheap", Filter: `offer.status == "ACTIVE" && offer.price < 100.0`, Template: "google-merchant", Destinations: []string{"gmc"}, File: true},
	{ID: "partner", Filter: `offer.stock > 0`, Template: "partner-x"},
}

// partner-x's image value draws a lint warning (a constant list index).
var testTemplates = []config.Template{{ID: "partner-x", Root: "products", Item: "product",
	Fields: []config.TemplateField{{Name: "id", Value: "offer.id"}, {Name: "image", Value: "offer.images[0]"}}}}

// fakeRuns is an api.Runs over a few runs in memory.
type fakeRuns struct {
	mu   sync.Mutex
	runs []runlog.Run // newest first
	next int
}

func (f *fakeRuns) Start(context.Context) (string, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.runs {
		if r.Status == runlog.StatusRunning {
			return r.ID, false, nil
		}
	}
	f.next++
	id := fmt.Sprintf("run-new-%d", f.next)
	f.runs = append([]runlog.Run{{ID: id, Status: runlog.StatusRunning, StartedAt: time.Now()}}, f.runs...)
	return id, true, nil
}

func (f *fakeRuns) decide(id, status string) (runlog.Run, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.runs {
		if f.runs[i].ID != id {
			continue
		}
		if f.runs[i].Status != runlog.StatusHeld {
			return f.runs[i], fmt.Errorf("approve %s (%s): %w", id, f.runs[i].Status, runlog.ErrRunNotHeld)
		}
		f.runs[i].Status = status
		at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
		f.runs[i].FinishedAt = &at
		return f.runs[i], nil
	}
	return runlog.Run{}, fmt.Errorf("run %q: %w", id, runlog.ErrRunNotFound)
}

func (f *fakeRuns) Approve(_ context.Context, id string) (runlog.Run, error) {
	return f.decide(id, runlog.StatusPublished)
}

func (f *fakeRuns) Reject(_ context.Context, id string) (runlog.Run, error) {
	return f.decide(id, runlog.StatusRejected)
}

func (f *fakeRuns) Runs(limit int) []runlog.Run {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]runlog.Run(nil), f.runs[:min(limit, len(f.runs))]...)
}

func (f *fakeRuns) GetRun(id string) (runlog.Run, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.runs {
		if r.ID == id {
			return r, nil
		}
	}
	return runlog.Run{}, fmt.Errorf("run %q: %w", id, runlog.ErrRunNotFound)
}

// fixture is a page over a real store of 20 offers (o01..o20 priced 10,
// 20, ... 200 PLN: "cheap" holds o01..o09), fake runs (one published,
// one held), a feed log in memory with one held removal, and the API's
// offers handlers, served as the app serves them.
type fixture struct {
	srv     *httptest.Server
	runs    *fakeRuns
	changes *feedlog.Log
	change  string // the held change's id
	now     time.Time
	clock   func() time.Time
	mu      sync.Mutex
}

func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func newFixture(t *testing.T, token string) *fixture {
	t.Helper()
	ctx := context.Background()
	reg := srfake.New()
	t.Cleanup(reg.Close)
	cl, err := sr.NewClient(sr.URLs(reg.URL()))
	if err != nil {
		t.Fatal(err)
	}
	serde := records.NewSerde(cl)
	offerSchema, err := serde.Register(ctx, "offers-value", records.KindOffer)
	if err != nil {
		t.Fatal(err)
	}
	evSchema, err := serde.Register(ctx, "feed-events-value", records.KindFeedEvent)
	if err != nil {
		t.Fatal(err)
	}
	set, err := feeds.Compile(testFeeds, testTemplates)
	if err != nil {
		t.Fatal(err)
	}
	store, err := state.Open(filepath.Join(t.TempDir(), "state"), serde, state.Options{CacheBytes: 1 << 20, MemTableBytes: 1 << 20}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() }) // a test store: nothing to keep
	ap, err := processor.NewApplier(processor.ApplierDeps{
		Store: store, Feeds: set, Serde: serde, Topics: config.Default().Kafka.Topics,
		Processor: config.Processor{MaxBatchRecords: 100, SellerChunk: 10}, Retention: time.Hour, EventSchemaID: evSchema,
		Metrics: processor.NewMetrics(prometheus.NewRegistry()), Logger: zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ap.SetPartitions([]int32{0}); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for i := 1; i <= 20; i++ {
		o := &records.Offer{ID: fmt.Sprintf("o%02d", i), SellerID: "s1", Title: fmt.Sprintf("Phone <%d>", i), Description: "d",
			Category: "Electronics/Phones", PriceMinor: i * 1000, Currency: "PLN", Stock: i % 3, Condition: "NEW", Status: "ACTIVE",
			URL: "https://x/o", Images: []string{"https://x/i.jpg"}, Attributes: map[string]string{}, UpdatedAt: time.UnixMilli(1), Version: 1}
		v, err := serde.AppendOffer(nil, offerSchema, o)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: "offers", Key: []byte(o.ID), Value: v, Offset: int64(i)})
	}
	if err := ap.Apply(ctx, recs); err != nil {
		t.Fatal(err)
	}

	f := &fixture{now: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	f.clock = func() time.Time {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.now
	}
	published := time.Date(2026, 3, 1, 8, 0, 5, 0, time.UTC)
	prev := int64(9)
	change := -0.5
	f.runs = &fakeRuns{runs: []runlog.Run{
		{ID: "run-20260302-080000", Status: runlog.StatusHeld, StartedAt: published.Add(24 * time.Hour), PartitionsTotal: 1,
			Reason: "feed cheap shrank by 50.0% (9 to 4)", Guard: runlog.Guard{MaxDrop: 0.2, MaxGrowth: 1, MinSize: 2},
			Feeds: []runlog.Feed{{ID: "cheap", Members: 4, Previous: &prev, Change: &change, File: true}}},
		{ID: "run-20260301-080000", Status: runlog.StatusPublished, StartedAt: published.Add(-5 * time.Second), FinishedAt: &published,
			PartitionsTotal: 1, Parts: []runlog.Part{{Partition: 0, Attempt: "a", By: "i1"}},
			Feeds: []runlog.Feed{{ID: "cheap", Members: 9, File: true}}},
	}}
	f.changes = feedlog.NewMemory()
	f.change = "fc-20260302-090000-abcdef"
	if err := f.changes.Hold(ctx, feedlog.Change{ID: f.change, FeedID: "partner", Kind: feedlog.KindRemove, Source: feedlog.SourceAPI,
		Reason: "a removal sends REMOVE for every member", By: "api 127.0.0.1:1", At: f.now, Status: feedlog.StatusHeld}); err != nil {
		t.Fatal(err)
	}
	coverage := func() ([]int32, int32) { return []int32{0}, 1 }
	mux := http.NewServeMux()
	(&api.OffersAPI{Store: store, Feeds: func() *feeds.Set { return set }, Coverage: coverage,
		Join: func(b *state.Batch, o *records.Offer, v *feeds.View) error {
			return processor.NewJoiner(serde, 0).Join(b, o, v)
		},
		Logger: zap.NewNop()}).Register(mux)
	(&admin.Page{
		Token:    token,
		Feeds:    func() (*feeds.Set, []config.Feed, []config.Template) { return set, testFeeds, testTemplates },
		Counts:   func() (map[string]int64, error) { return store.Counts(nil) },
		Coverage: coverage,
		Errors: func(id string) map[string]float64 {
			if id == "partner" {
				return map[string]float64{"template": 3}
			}
			return nil
		},
		Backfill: func() (map[string]int, int64) { return map[string]int{"partner": 1}, 42 },
		Runs:     f.runs,
		Changes:  f.changes,
		DryRun:   &dryrun.Runner{Store: store, Serde: serde, Coverage: coverage},
		API:      mux,
		Now:      f.clock,
		Logger:   zap.NewNop(),
	}).Register(mux)
	f.srv = httptest.NewServer(api.AdminAuth(token, api.LimitBodies(0, mux)))
	t.Cleanup(f.srv.Close)
	return f
}

// answer is one response, its body as the text a reader sees (tags
// dropped, entities decoded, spaces folded) and as sent.
type answer struct {
	code int
	hdr  http.Header
	text string
	raw  string
}

var (
	tags        = regexp.MustCompile(`(?s)<[^>]*>`)
	spaces      = regexp.MustCompile(`\s+`)
	punctuation = regexp.MustCompile(` ([,.;:)])|(\() `)
)

// visible is the text of an HTML page as a reader sees it: tags dropped,
// entities decoded, spaces folded (none before punctuation).
func visible(body string) string {
	text := spaces.ReplaceAllString(tags.ReplaceAllString(body, " "), " ")
	return strings.TrimSpace(html.UnescapeString(punctuation.ReplaceAllString(text, "$1$2")))
}

// request sends method path with form (nil: none) and headers (pairs),
// without following redirects.
func (f *fixture) request(t *testing.T, method, path string, form url.Values, headers ...string) answer {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, f.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{code: resp.StatusCode, hdr: resp.Header, text: visible(string(b)), raw: string(b)}
}

// signIn posts the token and returns the session cookie header.
func (f *fixture) signIn(t *testing.T) string {
	t.Helper()
	a := f.request(t, "POST", "/admin/sign-in", url.Values{"token": {testToken}, "next": {"/"}}, "Origin", f.srv.URL)
	if a.code != http.StatusSeeOther {
		t.Fatalf("sign in: %d %s", a.code, a.text)
	}
	for _, c := range (&http.Response{Header: a.hdr}).Cookies() {
		if c.Name == admin.CookieName {
			return c.Name + "=" + c.Value
		}
	}
	t.Fatal("sign in set no session cookie")
	return ""
}

func wantText(t *testing.T, what string, a answer, code int, texts ...string) {
	t.Helper()
	if a.code != code {
		t.Errorf("%s: status %d, want %d; page: %.600s", what, a.code, code, a.text)
	}
	for _, s := range texts {
		if !strings.Contains(a.text, s) {
			t.Errorf("%s: the page does not show %q; page: %.1500s", what, s, a.text)
		}
	}
}

// TestSignIn: with a token, every page needs a session (or the bearer
// token); posting the token sets an HttpOnly, SameSite=Strict cookie that
// holds no token and ends after 12 h; /api/* ignores the cookie.
func TestSignIn(t *testing.T) {
	f := newFixture(t, testToken)
	for _, path := range []string{"/", "/admin/feeds/cheap", "/admin/runs", "/admin/runs/run-20260302-080000", "/admin/changes", "/admin/explain", "/admin/dry-run"} {
		a := f.request(t, "GET", path, nil)
		wantText(t, "GET "+path+" without a session", a, http.StatusUnauthorized, "Sign in", "Admin token")
		if !strings.Contains(a.raw, `name="next" value="`+path+`"`) {
			t.Errorf("GET %s: the sign-in form does not come back to %s", path, path)
		}
		if a.hdr.Get("Content-Security-Policy") == "" || a.hdr.Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: security headers missing: %v", path, a.hdr)
		}
	}
	wantText(t, "POST without a session", f.request(t, "POST", "/admin/runs/run-20260302-080000/approve", url.Values{}, "Origin", f.srv.URL),
		http.StatusUnauthorized, "Sign in")
	if r, _ := f.runs.GetRun("run-20260302-080000"); r.Status != runlog.StatusHeld {
		t.Fatalf("an unsigned POST decided the run: %s", r.Status)
	}

	wrong := f.request(t, "POST", "/admin/sign-in", url.Values{"token": {"not-the-token"}, "next": {"/admin/runs"}}, "Origin", f.srv.URL)
	wantText(t, "wrong token", wrong, http.StatusUnauthorized, "Wrong token")
	if len(wrong.hdr.Values("Set-Cookie")) != 0 {
		t.Errorf("a wrong token set a cookie: %v", wrong.hdr.Values("Set-Cookie"))
	}

	ok := f.request(t, "POST", "/admin/sign-in", url.Values{"token": {testToken}, "next": {"/admin/runs"}}, "Origin", f.srv.URL)
	if ok.code != http.StatusSeeOther || ok.hdr.Get("Location") != "/admin/runs" {
		t.Fatalf("sign in: %d to %q", ok.code, ok.hdr.Get("Location"))
	}
	setCookie := ok.hdr.Get("Set-Cookie")
	for _, attr := range []string{admin.CookieName + "=", "Path=/", "HttpOnly", "SameSite=Strict", "Max-Age=43200"} {
		if !strings.Contains(setCookie, attr) {
			t.Errorf("session cookie %q lacks %s", setCookie, attr)
		}
	}
	if strings.Contains(setCookie, testToken) {
		t.Errorf("the session cookie holds the token: %q", setCookie)
	}
	cookie := f.signIn(t)
	wantText(t, "GET / signed in", f.request(t, "GET", "/", nil, "Cookie", cookie), http.StatusOK, "Feeds in force", "cheap", "Sign out")
	wantText(t, "GET / with the bearer token", f.request(t, "GET", "/", nil, "Authorization", "bearer "+testToken), http.StatusOK, "cheap")
	wantText(t, "GET / with a wrong bearer token", f.request(t, "GET", "/", nil, "Authorization", "Bearer nope"), http.StatusUnauthorized, "Sign in")

	// Forged and stale cookies.
	name, value, _ := strings.Cut(cookie, "=")
	forged := name + "=" + value[:len(value)-4] + "0000"
	if forged == cookie {
		forged = name + "=" + value[:len(value)-4] + "1111"
	}
	wantText(t, "forged cookie", f.request(t, "GET", "/", nil, "Cookie", forged), http.StatusUnauthorized, "Sign in")
	wantText(t, "cookie of another token", f.request(t, "GET", "/", nil, "Cookie", name+"=v1.1772442000.00"), http.StatusUnauthorized, "Sign in")

	// The API keeps its bearer token: the cookie is not one.
	if a := f.request(t, "GET", "/api/offers/o01", nil, "Cookie", cookie); a.code != http.StatusUnauthorized {
		t.Errorf("GET /api/offers/o01 with the session cookie: %d, want 401", a.code)
	}

	// A sign-in link cannot send the browser elsewhere.
	for _, next := range []string{"//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"} {
		a := f.request(t, "POST", "/admin/sign-in", url.Values{"token": {testToken}, "next": {next}}, "Origin", f.srv.URL)
		if a.code != http.StatusSeeOther || a.hdr.Get("Location") != "/" {
			t.Errorf("sign in with next %q: %d to %q, want /", next, a.code, a.hdr.Get("Location"))
		}
	}
	// Signed in, the sign-in page sends the browser on.
	if a := f.request(t, "GET", "/admin/sign-in?next=/admin/changes", nil, "Cookie", cookie); a.code != http.StatusSeeOther || a.hdr.Get("Location") != "/admin/changes" {
		t.Errorf("GET /admin/sign-in signed in: %d to %q", a.code, a.hdr.Get("Location"))
	}

	// Sign-out clears the cookie.
	out := f.request(t, "POST", "/admin/sign-out", url.Values{}, "Cookie", cookie, "Origin", f.srv.URL)
	if out.code != http.StatusSeeOther || !strings.Contains(out.hdr.Get("Set-Cookie"), "Max-Age=0") {
		t.Errorf("sign out: %d, Set-Cookie %q", out.code, out.hdr.Get("Set-Cookie"))
	}

	// Sessions end after 12 hours.
	f.advance(admin.SessionTTL - time.Minute)
	wantText(t, "session near its end", f.request(t, "GET", "/", nil, "Cookie", cookie), http.StatusOK, "cheap")
	f.advance(2 * time.Minute)
	wantText(t, "expired session", f.request(t, "GET", "/", nil, "Cookie", cookie), http.StatusUnauthorized, "Sign in")
}

// TestCrossOriginRefused: a form posted from another origin is refused
// (403) whatever the session, and changes nothing.
func TestCrossOriginRefused(t *testing.T) {
	for _, token := range []string{testToken, ""} {
		t.Run(fmt.Sprintf("token %v", token != ""), func(t *testing.T) {
			f := newFixture(t, token)
			cookie := ""
			if token != "" {
				cookie = f.signIn(t)
			}
			for _, h := range [][]string{
				{"Origin", "http://evil.example"},
				{"Sec-Fetch-Site", "cross-site"},
				{"Sec-Fetch-Site", "same-site", "Origin", "http://sub.example"},
				{"Referer", "http://evil.example/page"},
			} {
				hs := append([]string{"Cookie", cookie}, h...)
				for _, path := range []string{"/admin/runs/run-20260302-080000/approve", "/admin/runs/run-20260302-080000/reject",
					"/admin/changes/" + f.change + "/approve", "/admin/runs", "/admin/dry-run", "/admin/sign-in", "/admin/sign-out"} {
					a := f.request(t, "POST", path, url.Values{"token": {testToken}, "definition": {"id: x\nfilter: \"true\"\ntemplate: ceneo\n"}}, hs...)
					wantText(t, fmt.Sprintf("POST %s with %v", path, h), a, http.StatusForbidden, "cross-origin request refused")
					if len(a.hdr.Values("Set-Cookie")) != 0 {
						t.Errorf("POST %s with %v set a cookie", path, h)
					}
				}
			}
			if r, _ := f.runs.GetRun("run-20260302-080000"); r.Status != runlog.StatusHeld {
				t.Errorf("a cross-origin POST decided the run: %s", r.Status)
			}
			if len(f.runs.Runs(10)) != 2 {
				t.Errorf("a cross-origin POST started a run")
			}
			if c := f.changes.Changes(); c[0].Status != feedlog.StatusHeld {
				t.Errorf("a cross-origin POST decided the feed change: %s", c[0].Status)
			}
			// The same form from the page's own origin goes through.
			a := f.request(t, "POST", "/admin/runs/run-20260302-080000/approve", url.Values{}, "Cookie", cookie, "Origin", f.srv.URL, "Sec-Fetch-Site", "same-origin")
			if a.code != http.StatusSeeOther {
				t.Errorf("same-origin approve: %d %s", a.code, a.text)
			}
		})
	}
}

// TestOpenWithoutToken: without a token the pages need no sign-in and
// show no sign-out.
func TestOpenWithoutToken(t *testing.T) {
	f := newFixture(t, "")
	a := f.request(t, "GET", "/", nil)
	wantText(t, "GET / open", a, http.StatusOK, "Feeds in force", "cheap", "partner")
	if strings.Contains(a.text, "Sign out") {
		t.Error("an open page shows Sign out")
	}
	wantText(t, "GET /admin/sign-in open", f.request(t, "GET", "/admin/sign-in", nil), http.StatusSeeOther)
	css := f.request(t, "GET", "/admin/static/admin.css", nil)
	if css.code != http.StatusOK || !strings.HasPrefix(css.hdr.Get("Content-Type"), "text/css") || !strings.Contains(css.raw, "font") {
		t.Errorf("GET the CSS: %d %q", css.code, css.hdr.Get("Content-Type"))
	}
	if a := f.request(t, "GET", "/admin/", nil); a.code != http.StatusSeeOther || a.hdr.Get("Location") != "/" {
		t.Errorf("GET /admin/: %d to %q", a.code, a.hdr.Get("Location"))
	}
}

// TestPages: what each page shows, its forms and its errors, signed in.
func TestPages(t *testing.T) {
	f := newFixture(t, testToken)
	cookie := f.signIn(t)
	get := func(path string) answer { return f.request(t, "GET", path, nil, "Cookie", cookie) }
	post := func(path string, form url.Values) answer {
		return f.request(t, "POST", path, form, "Cookie", cookie, "Origin", f.srv.URL)
	}

	t.Run("feeds", func(t *testing.T) {
		a := get("/")
		wantText(t, "feeds list", a, http.StatusOK,
			"offers partitions 0 of 1", "42 offers re-evaluated",
			"cheap google-merchant gmc cheap.xml 9 filter 0, template 0, budget 0 0 2026-03-01 08:00:05 UTC (run-20260301-080000) none",
			"partner partner-x none no 14 filter 0, template 3, budget 0 1 no file 1 partitions pending")
		if !strings.Contains(a.raw, `href="/admin/feeds/cheap"`) || !strings.Contains(a.raw, `href="/feeds/cheap.xml"`) {
			t.Error("the feeds list does not link the feed page and the file")
		}
	})

	t.Run("feed", func(t *testing.T) {
		a := get("/admin/feeds/cheap")
		wantText(t, "feed page", a, http.StatusOK, "Feed cheap", `offer.status == "ACTIVE" && offer.price < 100.0`,
			"google-merchant (built-in)", "Destinations gmc", "/feeds/cheap.xml, last published 2026-03-01 08:00:05 UTC by run-20260301-080000",
			"Members: 9 in offers partitions 0 of 1", "None: feedmill validate has nothing to say",
			"9 members in 20 offers scanned", "The stream stored 9: 0 would be added, 0 removed.", "o01", "<title>Phone &lt;1&gt;</title>")
		if strings.Contains(a.raw, "Phone <1>") {
			t.Error("the sample item is not escaped")
		}
		if !strings.Contains(a.raw, `href="/admin/explain?offer=o01&amp;feed=cheap"`) {
			t.Error("a sample member does not link its explanation")
		}
		wantText(t, "feed page with warnings", get("/admin/feeds/partner"), http.StatusOK, "Warnings", "templates[0] (partner-x).fields[1] (image).value", "line 1")
		wantText(t, "unknown feed", get("/admin/feeds/nope"), http.StatusNotFound, "There is no feed nope in force.")
	})

	t.Run("runs", func(t *testing.T) {
		wantText(t, "runs list", get("/admin/runs"), http.StatusOK, "Start a full pass now",
			"run-20260302-080000 held", "run-20260301-080000 published 2026-03-01 08:00:00 UTC 2026-03-01 08:00:05 UTC 1 0 0 0 1 of 1")
		held := get("/admin/runs/run-20260302-080000")
		wantText(t, "held run", held, http.StatusOK, "Status held", "feed cheap shrank by 50.0% (9 to 4)",
			"shrinks by more than 20% or grows by more than 100%", "Held: decide", "Approve", "Reject", "cheap 4 9 -50.0% yes")
		if !strings.Contains(held.raw, `<form method="post" action="/admin/runs/run-20260302-080000/approve"`) {
			t.Error("the held run has no approve form")
		}
		a := post("/admin/runs/run-20260302-080000/approve", url.Values{})
		if a.code != http.StatusSeeOther || a.hdr.Get("Location") != "/admin/runs/run-20260302-080000?done=approved" {
			t.Fatalf("approve: %d to %q", a.code, a.hdr.Get("Location"))
		}
		after := get(a.hdr.Get("Location"))
		wantText(t, "approved run", after, http.StatusOK, "Approved.", "Status published")
		if strings.Contains(after.text, "Held: decide") {
			t.Error("a published run offers a decision")
		}
		wantText(t, "approve twice", post("/admin/runs/run-20260302-080000/approve", url.Values{}), http.StatusConflict, "The run is not held", "Status published")
		wantText(t, "reject published", post("/admin/runs/run-20260302-080000/reject", url.Values{}), http.StatusConflict, "The run is not held")
		wantText(t, "unknown run", get("/admin/runs/run-nope"), http.StatusNotFound, "There is no run run-nope")
		wantText(t, "approve unknown run", post("/admin/runs/run-nope/approve", url.Values{}), http.StatusNotFound, "There is no run run-nope")
		start := post("/admin/runs", url.Values{})
		if start.code != http.StatusSeeOther || start.hdr.Get("Location") != "/admin/runs/run-new-1?done=started" {
			t.Fatalf("start: %d to %q", start.code, start.hdr.Get("Location"))
		}
		wantText(t, "started run", get(start.hdr.Get("Location")), http.StatusOK, "Full pass started.", "Status running")
		if again := post("/admin/runs", url.Values{}); again.hdr.Get("Location") != "/admin/runs/run-new-1?done=running" {
			t.Errorf("start while running: to %q", again.hdr.Get("Location"))
		}
		// Only known notices are shown.
		if a := get("/admin/runs?done=%3Cb%3Ehacked%3C/b%3E"); strings.Contains(a.text, "hacked") {
			t.Error("a link put words on the page")
		}
	})

	t.Run("changes", func(t *testing.T) {
		wantText(t, "changes", get("/admin/changes"), http.StatusOK, f.change+" partner remove a removal sends REMOVE for every member",
			"partner: 1 partitions still re-evaluating", "42 offers re-evaluated")
		a := post("/admin/changes/"+f.change+"/reject", url.Values{})
		if a.code != http.StatusSeeOther || a.hdr.Get("Location") != "/admin/changes?done=rejected" {
			t.Fatalf("reject change: %d to %q", a.code, a.hdr.Get("Location"))
		}
		after := get(a.hdr.Get("Location"))
		wantText(t, "rejected change", after, http.StatusOK, "Rejected.", "No feed change is held.", f.change+" partner remove rejected")
		wantText(t, "approve decided", post("/admin/changes/"+f.change+"/approve", url.Values{}), http.StatusConflict, "already decided")
		wantText(t, "approve unknown", post("/admin/changes/fc-nope/approve", url.Values{}), http.StatusNotFound, "There is no feed change fc-nope.")
	})

	t.Run("explain", func(t *testing.T) {
		wantText(t, "explain form", get("/admin/explain"), http.StatusOK, "Offer id", "Feed", "cheap", "partner")
		in := get("/admin/explain?offer=o01&feed=cheap")
		wantText(t, "explain member", in, http.StatusOK, "Offer o01 in feed cheap: a member", "the filter holds",
			"member; agrees with this evaluation", `offer.status == "ACTIVE" → true`, "offer.price < 100.0 → true", "Rendered item", "<title>Phone &lt;1&gt;</title>")
		if strings.Contains(in.text, "First failing clause") {
			t.Error("a member shows a failing clause")
		}
		out := get("/admin/explain?offer=o15&feed=cheap")
		wantText(t, "explain non-member", out, http.StatusOK, "Offer o15 in feed cheap: not a member", "the filter does not hold",
			"First failing clause offer.price < 100.0 → false", "None: the offer is not a member")
		if !strings.Contains(out.raw, `<option value="cheap" selected>`) || !strings.Contains(out.raw, `value="o15"`) {
			t.Error("the form does not keep the offer and feed asked for")
		}
		wantText(t, "explain unknown offer", get("/admin/explain?offer=o99&feed=cheap"), http.StatusNotFound, `offer "o99" is not stored in any offers partition`)
		wantText(t, "explain unknown feed", get("/admin/explain?offer=o01&feed=nope"), http.StatusNotFound, `unknown feed "nope"`)
		wantText(t, "explain without feed", get("/admin/explain?offer=o01"), http.StatusBadRequest, "Give both an offer id and a feed.")
		odd := get("/admin/explain?offer=" + url.QueryEscape("a/<b>&c") + "&feed=cheap")
		wantText(t, "explain odd id", odd, http.StatusNotFound, `offer "a/<b>&c"`)
		if strings.Contains(odd.raw, "<b>") {
			t.Error("the offer id is not escaped")
		}
	})

	t.Run("dry run", func(t *testing.T) {
		wantText(t, "dry-run form", get("/admin/dry-run"), http.StatusOK, "Feed definition", "id: my-feed")
		wantText(t, "dry-run form of a feed", get("/admin/dry-run?feed=cheap"), http.StatusOK, "id: cheap", "offer.price < 100.0")
		wantText(t, "dry-run form of an unknown feed", get("/admin/dry-run?feed=nope"), http.StatusOK, "There is no feed nope in force")
		def := "id: cheap\nfilter: offer.status == \"ACTIVE\" && offer.price < 50.0\ntemplate: google-merchant\ndestinations: [gmc]\nfile: true\n"
		a := post("/admin/dry-run", url.Values{"definition": {def}, "samples": {"2"}, "timeout": {"5s"}})
		wantText(t, "dry run", a, http.StatusOK, "Result for cheap", "Members 4", "Complete yes", "Scanned 20 offers in partitions 0 of 1",
			"In force: 9 members. Adds: 0, removes: 5, unchanged: 4.", "Removed, for example: o05, o06", "Sample members", "o01", "o02")
		if strings.Contains(a.text, "o03 <") {
			t.Error("more samples than asked for")
		}
		wantText(t, "dry run, unknown key", post("/admin/dry-run", url.Values{"definition": {"id: x\nfilter: \"true\"\ntemplate: ceneo\nnope: 1\n"}}),
			http.StatusBadRequest, "The definition is not one feed", "field nope not found")
		bad := post("/admin/dry-run", url.Values{"definition": {"id: x\nfilter: offer.sellr == 1 <script>\ntemplate: ceneo\n"}})
		wantText(t, "dry run, compile error", bad, http.StatusBadRequest, `Feed "x" does not compile.`, "Problems", "filter:")
		if strings.Contains(bad.raw, "<script>") {
			t.Error("the definition is not escaped")
		}
		wantText(t, "dry run, bad samples", post("/admin/dry-run", url.Values{"definition": {def}, "samples": {"1000"}}), http.StatusBadRequest, "Samples must be")
		wantText(t, "dry run, bad timeout", post("/admin/dry-run", url.Values{"definition": {def}, "timeout": {"soon"}}), http.StatusBadRequest, "The time budget must be")
		wantText(t, "dry run, empty", post("/admin/dry-run", url.Values{"definition": {""}}), http.StatusBadRequest, "the definition is empty")
	})
}
