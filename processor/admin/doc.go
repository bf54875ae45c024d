// Package admin is the processor's admin web page: server-rendered HTML
// (html/template, embedded templates and one small CSS file, no
// JavaScript) at / and /admin/*, for people, beside the JSON API of
// processor/api for programs (docs/contract.md, HTTP endpoints; README,
// Admin page).
//
// The pages show the feeds in force with their member counts, errors,
// warnings, last publication and backfill (/), one feed's definition,
// warnings and a sample of members from a short dry run of its own
// definition (/admin/feeds/{id}), the full-pass runs with their sizes and
// the guard's previous sizes, with Approve and Reject for a held run
// (/admin/runs), the held feed changes with Approve and Reject
// (/admin/changes), an offer's explanation in a feed (/admin/explain) and
// a dry run of a feed definition (/admin/dry-run). Forms are plain HTML
// forms that POST; the answer redirects to the page that shows the
// outcome.
//
// Page reads and acts through the same Go-level dependencies as the API
// handlers (the full pass's api.Runs, the feed log, the dry-run runner,
// the member counts and feed errors), passed in as fields; the explain
// page asks the API's own GET /api/offers/{id}/explain handler in-process
// and shows its answer, so the page and the API cannot disagree.
//
// Access follows http.admin_token like /api/*: with a token, a browser
// signs in once by posting it (a form) and gets a session cookie
// (HttpOnly, SameSite=Strict, path /, 12 h) holding an HMAC of the token,
// not the token; a request with "Authorization: Bearer <token>" is let in
// too. Without a token the page is open, as /api/* is. Every POST is
// refused when it comes from another origin (Sec-Fetch-Site, Origin or
// Referer against Host: net/http.CrossOriginProtection), so another site
// cannot make a signed-in browser approve a run. /api/* keeps the bearer
// token only: it does not accept the cookie.
//
// The package owns no state and starts no goroutines; it must not import
// the streaming pipeline (processor) or the app wiring (internal/app).
// Page is safe for concurrent requests once registered.
package admin
