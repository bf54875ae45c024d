package admin

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/processor/api"
	"github.com/feedmill/feedmill/processor/dryrun"
	"github.com/feedmill/feedmill/processor/feedlog"
)

//go:embed templates/*.html static/admin.css
var files embed.FS

// Page serves the admin web page (package doc). Set its fields, then call
// Register once; it is safe for concurrent requests from then on. Feeds,
// Counts, Runs, Changes, DryRun and API are required; the other funcs may
// be nil.
type Page struct {
	// Token is http.admin_token: "" leaves the page open, like /api/*.
	Token string
	// Feeds returns the feed set in force with the definitions and the
	// custom templates it was compiled from (read per request: live feed
	// changes replace it).
	Feeds func() (*feeds.Set, []config.Feed, []config.Template)
	// Counts returns each feed's live member count in the offers
	// partitions this instance owns (state.Store.Counts).
	Counts func() (map[string]int64, error)
	// Coverage returns the offers partitions this instance owns, sorted,
	// and the offers topic's partition count (0 while unknown).
	Coverage func() (owned []int32, total int32)
	// Errors returns this instance's feedmill_feed_errors_total of a feed
	// by kind; nil: all 0.
	Errors func(feedID string) map[string]float64
	// Backfill returns, per feed, this instance's partitions still
	// re-evaluating for a feed change, and the offers re-evaluated since
	// start; nil: none shown.
	Backfill func() (map[string]int, int64)
	// SetErr says why the feed log's newest set is not in force (nil when
	// it is); nil func: never shown.
	SetErr func() error
	// Runs is the full pass (*fullpass.FullPass): the runs, and Start,
	// Approve and Reject.
	Runs api.Runs
	// Changes is the feed log: the held and decided feed changes,
	// Approve and Reject.
	Changes *feedlog.Log
	// DryRun runs the dry runs of the dry-run page and of a feed page's
	// sample: the instance's one runner, so they wait for each other and
	// for the API's.
	DryRun *dryrun.Runner
	// API serves GET /api/offers/{id}/explain (the app's mux): the
	// explain page asks it in-process, without the admin token.
	API http.Handler
	// Now is the clock of sessions (default time.Now).
	Now    func() time.Time
	Logger *zap.Logger

	pages   map[string]*template.Template
	static  fs.FS
	cop     http.CrossOriginProtection
	lintMu  sync.Mutex
	lintSet *feeds.Set
	lint    map[string][]feeds.Warning // by feed id: its own and its custom template's
}

// Register adds the page's routes to mux: GET / and the /admin/* paths
// (docs/contract.md, HTTP endpoints). It panics if the embedded templates
// do not parse, which the package's tests rule out.
func (p *Page) Register(mux *http.ServeMux) {
	if p.Logger == nil {
		p.Logger = zap.NewNop()
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	p.pages = parsePages()
	static, err := fs.Sub(files, "static")
	if err != nil {
		panic(fmt.Sprintf("admin: embedded static files: %v", err))
	}
	p.static = static

	mux.HandleFunc("GET /admin/static/admin.css", p.css)
	mux.HandleFunc("GET /admin/sign-in", p.signInForm)
	mux.HandleFunc("POST /admin/sign-in", p.signIn)
	mux.HandleFunc("POST /admin/sign-out", p.signOut)
	mux.HandleFunc("GET /admin/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})

	mux.HandleFunc("GET /{$}", p.guard(p.feedsList))
	mux.HandleFunc("GET /admin/feeds/{id}", p.guard(p.feedPage))
	mux.HandleFunc("GET /admin/runs", p.guard(p.runsList))
	mux.HandleFunc("POST /admin/runs", p.guard(p.startRun))
	mux.HandleFunc("GET /admin/runs/{id}", p.guard(p.runPage))
	mux.HandleFunc("POST /admin/runs/{id}/approve", p.guard(p.decideRun(p.Runs.Approve, "approved")))
	mux.HandleFunc("POST /admin/runs/{id}/reject", p.guard(p.decideRun(p.Runs.Reject, "rejected")))
	mux.HandleFunc("GET /admin/changes", p.guard(p.changesPage))
	mux.HandleFunc("POST /admin/changes/{id}/approve", p.guard(p.decideChange(p.Changes.Approve, "approved")))
	mux.HandleFunc("POST /admin/changes/{id}/reject", p.guard(p.decideChange(p.Changes.Reject, "rejected")))
	mux.HandleFunc("GET /admin/explain", p.guard(p.explainPage))
	mux.HandleFunc("GET /admin/dry-run", p.guard(p.dryRunForm))
	mux.HandleFunc("POST /admin/dry-run", p.guard(p.dryRunPost))
}

// pageNames are the templates/<name>.html files, each executed within
// templates/layout.html.
var pageNames = []string{"signin", "error", "feeds", "feed", "runs", "run", "changes", "explain", "dryrun"}

func parsePages() map[string]*template.Template {
	out := make(map[string]*template.Template, len(pageNames))
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			panic(fmt.Sprintf("admin: embedded template %s: %v", name, err))
		}
		out[name] = t
	}
	return out
}

// funcs are the templates' helpers; they only format.
var funcs = template.FuncMap{
	"time":     formatTime,
	"join":     func(s []string) string { return strings.Join(s, ", ") },
	"pct":      formatChange,
	"int64ptr": formatInt64Ptr,
	"boolptr":  formatBoolPtr,
	"yesno": func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	},
	"partitions": api.PartitionList,
	"percent":    func(share float64) string { return strconv.FormatFloat(share*100, 'f', -1, 64) },
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func formatChange(c *float64) string {
	if c == nil {
		return "—"
	}
	return fmt.Sprintf("%+.1f%%", *c*100)
}

func formatInt64Ptr(n *int64) string {
	if n == nil {
		return "—"
	}
	return strconv.FormatInt(*n, 10)
}

func formatBoolPtr(b *bool) string {
	if b == nil {
		return "nil"
	}
	return strconv.FormatBool(*b)
}

// view is what the layout needs around a page's own data.
type view struct {
	Title string
	// Nav is the section the page belongs to ("feeds", "runs", ...).
	Nav string
	// SignOut shows the sign-out button (a token is configured and the
	// browser holds a session).
	SignOut bool
	// Notice is a message of success; Error one of failure.
	Notice, Error string
	Data          any
}

// render executes page name with v into a buffer, then writes it with
// status: a template failure is a 500, never half a page.
func (p *Page) render(w http.ResponseWriter, r *http.Request, status int, name string, v view) {
	v.SignOut = p.Token != "" && p.sessionValid(r)
	var b bytes.Buffer
	if err := p.pages[name].ExecuteTemplate(&b, "layout.html", v); err != nil {
		p.Logger.Error("admin page: render", zap.String("page", name), zap.Error(err))
		http.Error(w, "admin page: render "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes()) // a failed write means the client went away
}

// fail shows an error page with status.
func (p *Page) fail(w http.ResponseWriter, r *http.Request, status int, title, msg string) {
	p.render(w, r, status, "error", view{Title: title, Error: msg})
}

// securityHeaders are set on every page answer: no scripts, no frames,
// forms only to this origin, nothing cached.
func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

func (p *Page) css(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "max-age=300")
	http.ServeFileFS(w, r, p.static, "admin.css")
}

// notices are the messages a redirect after a form may ask for
// (?done=...): only these are shown, so a link cannot put words on the
// page.
var notices = map[string]string{
	"approved": "Approved.",
	"rejected": "Rejected.",
	"started":  "Full pass started.",
	"running":  "A full pass was already running: this is it.",
}

func notice(r *http.Request) string { return notices[r.URL.Query().Get("done")] }

// by names who decides from the page, as the API names its callers.
func by(r *http.Request) string { return "admin page " + r.RemoteAddr }
