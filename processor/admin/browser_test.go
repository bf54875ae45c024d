package admin_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/internal/app"
	"github.com/feedmill/feedmill/internal/apptest"
	"github.com/feedmill/feedmill/internal/synth"
	"github.com/feedmill/feedmill/internal/testenv"
	"github.com/feedmill/feedmill/processor/runlog"
)

// chromium finds the browser: $FEEDMILL_CHROMIUM, else chromium (Debian's
// package) or Chrome on PATH. Without one the test fails under CI (CI=1,
// .ci/run installs it) and is skipped elsewhere.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("FEEDMILL_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "chromium is not installed: the admin page's browser test needs it (apt-get install -y chromium, or set FEEDMILL_CHROMIUM to a Chrome binary)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// artifactsDir is where the screenshots go: $FEEDMILL_TEST_ARTIFACTS, else
// .artifacts/screenshots at the repository's root (ignored by git).
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("FEEDMILL_TEST_ARTIFACTS")
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		root := wd
		for {
			if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
				break
			}
			parent := filepath.Dir(root)
			if parent == root {
				root = wd
				break
			}
			root = parent
		}
		dir = filepath.Join(root, ".artifacts", "screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestBrowser drives the admin page of a real app (kfake) with headless
// Chromium: it signs in with the token, reads the feeds list, a feed page
// and a dry run, starts a full pass that the guard holds, approves it and
// sees it published, and explains an offer; it checks the visible text at
// each step and saves a screenshot of each.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	browser := chromium(t)
	shots := artifactsDir(t)

	env := testenv.New(t, "offers", "sellers", "ratings", "feed-events", "feedmill-rejects")
	fs, ts := synth.ExampleFeeds()
	cfg := apptest.Config(t, env, fs, ts)
	cfg.HTTP.AdminToken = testToken
	cfg.FullPass.Guard = config.Guard{MaxDrop: 0.2, MaxGrowth: 1.0, MinSize: 5}
	gen, prod, _ := apptest.ProduceCatalog(t, env, cfg.Kafka.Topics, 7, synth.Options{Offers: 800, Sellers: 12, Products: 200, HostileFraction: -1})
	a := apptest.Start(t, cfg, app.Deps{})
	apptest.WaitCaughtUp(t, env, a)
	ctx := context.Background()

	// A first run is published (nothing to compare with), so the guard
	// has sizes to hold the next one against.
	first, _, err := a.Pass.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitRun(t, a, first, runlog.StatusPublished)
	run, err := a.Pass.GetRun(first)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(run.Feeds, func(f runlog.Feed) bool { return f.ID == "books-file" })
	if i < 0 || run.Feeds[i].Members < int64(cfg.FullPass.Guard.MinSize) {
		t.Fatalf("the first run's books-file is too small for the guard: %+v", run.Feeds)
	}
	// Every book leaves the feed: the next run is held.
	st := gen.State()
	ids := make([]string, 0, len(st.Offers))
	for id := range st.Offers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	book := ""
	for _, id := range ids {
		o := st.Offers[id]
		if strings.HasPrefix(o.Category, "Books") && o.Status == "ACTIVE" {
			book = id
			c := *o
			c.Status, c.Version = "INACTIVE", o.Version+100
			if err := prod.Produce(ctx, synth.Change{Topic: synth.KindOffers, Key: c.ID, Offer: &c}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if book == "" {
		t.Fatal("the catalog has no active book")
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	apptest.WaitCaughtUp(t, env, a)

	// The browser, as root in a container: no sandbox, no GPU, no /dev/shm.
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(browser),
		chromedp.Flag("headless", "new"),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(cancelBrowser)
	bctx, cancelTimeout := context.WithTimeout(bctx, 4*time.Minute)
	t.Cleanup(cancelTimeout)

	base := "http://" + a.Addr()
	step := 0
	// check runs actions, then reads main's visible text and wants texts
	// in it, then saves a full-page screenshot named name.
	check := func(name string, steps chromedp.Action[chromedp.Void], texts ...string) {
		t.Helper()
		err := chromedp.Do(bctx, steps)
		var text string
		if err == nil {
			text, err = chromedp.Run(bctx, chromedp.Text(chromedp.CSS("main")))
			text = strings.Join(strings.Fields(text), " ") // lines and cells as one run of words
		}
		png, serr := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if serr != nil {
			t.Errorf("%s: screenshot: %v", name, serr)
		}
		step++
		path := filepath.Join(shots, fmt.Sprintf("admin-%02d-%s.png", step, name))
		if len(png) > 0 {
			if werr := os.WriteFile(path, png, 0o644); werr != nil {
				t.Errorf("save screenshot: %v", werr)
			} else {
				t.Logf("screenshot %s", path)
			}
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, s := range texts {
			if !strings.Contains(text, s) {
				t.Errorf("%s: the page does not show %q; it shows: %s", name, s, text)
			}
		}
	}

	check("sign-in", chromedp.Steps(
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
	), "Sign in", "Admin token")

	check("feeds", chromedp.Steps(
		chromedp.SendKeys(chromedp.CSS("#token"), testToken),
		chromedp.Submit(chromedp.CSS("#token")),
		chromedp.WaitVisible(chromedp.CSS(`nav a[aria-current="page"][href="/"]`)),
	), "Feeds in force", "phones-gmc", "books-file", "google-merchant", "Last published", first)

	check("feed", chromedp.Steps(
		chromedp.Click(chromedp.CSS(`a[href="/admin/feeds/phones-gmc"]`)),
		chromedp.WaitVisible(chromedp.CSS("#sample")),
	), "Feed phones-gmc", `offer.category startsWith "Electronics/Phones"`, "Sample of members", "members in", "<g:id>")

	check("dry-run", chromedp.Steps(
		chromedp.Navigate(base+"/admin/dry-run?feed=phones-gmc"),
		chromedp.WaitVisible(chromedp.CSS("#definition")),
		chromedp.Click(chromedp.CSS(`form.dry-run button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#result")),
	), "Result for phones-gmc", "Against the feed in force", "Complete yes", "Adds: 0, removes: 0", "Sample members", "<g:id>")

	check("run-started", chromedp.Steps(
		chromedp.Navigate(base+"/admin/runs"),
		chromedp.Click(chromedp.CSS(`form[action="/admin/runs"] button`)),
		chromedp.WaitVisible(chromedp.CSS("p.notice")),
	), "Full pass started.")
	runURL, err := chromedp.Run(bctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimPrefix(strings.SplitN(runURL, "?", 2)[0], base+"/admin/runs/")
	waitRun(t, a, id, runlog.StatusHeld)

	check("run-held", chromedp.Steps(
		chromedp.Navigate(base+"/admin/runs"),
		chromedp.Click(chromedp.CSS(`a[href="/admin/runs/`+id+`"]`)),
		chromedp.WaitVisible(chromedp.CSS("section.decide")),
	), "Run "+id, "held", "books-file", "Held: decide", "Approve", "Reject")

	check("run-approved", chromedp.Steps(
		chromedp.Click(chromedp.CSS(`section.decide form[action$="/approve"] button`)),
		chromedp.WaitVisible(chromedp.CSS("p.notice")),
	), "Approved.", "Status published", "books-file")
	if r, err := a.Pass.GetRun(id); err != nil || r.Status != runlog.StatusPublished {
		t.Errorf("after Approve the run log says %q (%v)", r.Status, err)
	}

	check("explain", chromedp.Steps(
		chromedp.Navigate(base+"/admin/explain"),
		chromedp.WaitVisible(chromedp.CSS("#offer")),
		chromedp.SendKeys(chromedp.CSS("#offer"), book),
		chromedp.SetValue(chromedp.CSS("#feed"), "books-file"),
		chromedp.Submit(chromedp.CSS("#offer")),
		chromedp.WaitVisible(chromedp.CSS("#verdict")),
	), "Offer "+book+" in feed books-file: not a member", "the filter does not hold", "not a member; agrees with this evaluation",
		`First failing clause offer.status == "ACTIVE" → false`, `offer.category startsWith "Books" → true`, "Clauses", "Rendered item None")
}

// waitRun waits until run id has status want (a run that ends otherwise
// fails the test).
func waitRun(t *testing.T, a *apptest.App, id, want string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		r, err := a.Pass.GetRun(id)
		if err != nil && !errors.Is(err, runlog.ErrRunNotFound) {
			t.Fatal(err)
		}
		if r.Status == want {
			return
		}
		if err == nil && r.Status != runlog.StatusRunning {
			t.Fatalf("run %s is %s (%s), want %s", id, r.Status, r.Reason, want)
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s is still %q after 2 minutes, want %s", id, r.Status, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
