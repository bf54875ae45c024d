package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The answers of an instance (docs/contract.md, Explain).
const (
	explainOfferJSON = `{
  "id": "o-1",
  "partition": 2,
  "offer": {"id": "o-1", "seller_id": "s-1", "status": "ACTIVE", "stock": 0, "price": 129.99, "currency": "PLN", "category": "Electronics/Phones", "version": 7},
  "seller": {"id": "s-1", "status": "ACTIVE", "country": "PL", "super_seller": false},
  "rating": null,
  "seq": 4,
  "feeds": [
    {"feed": "phones", "destinations": ["gmc"], "fingerprint": "00000000deadbeef", "sent_at": "2025-03-01T12:00:00Z", "refresh_at": "2025-03-27T08:00:00Z"},
    {"feed": "books-file", "destinations": [], "fingerprint": "0000000000000001", "sent_at": null, "refresh_at": null}
  ],
  "groups": [{"feed": "cheapest", "filter": true, "key": "p-1", "live": true, "won": false}]
}`
	explainFeedJSON = `{
  "offer": "o-1",
  "partition": 2,
  "feed": "phones",
  "filter": "offer.status == \"ACTIVE\" && offer.stock > 0 && (seller?.status == \"ACTIVE\" || offer.attributes[\"x\"])",
  "evaluated_at": "2025-03-02T10:00:00Z",
  "match": false,
  "clauses": {"op": "&&", "source": "...", "value": false, "clauses": [
    {"source": "offer.status == \"ACTIVE\"", "value": true},
    {"source": "offer.stock > 0", "value": false},
    {"op": "||", "source": "seller?.status == \"ACTIVE\" || offer.attributes[\"x\"]", "value": true, "skipped": true, "clauses": [
      {"source": "seller?.status == \"ACTIVE\"", "value": true, "skipped": true},
      {"source": "offer.attributes[\"x\"]", "value": null, "skipped": true}
    ]}
  ]},
  "first_failing": {"source": "offer.stock > 0", "value": false},
  "item": null,
  "stored": {"member": true},
  "agrees": false,
  "disagreement": "stored: member true; the filter now: false"
}`
)

// fakeInstance answers like an instance with admin token "tok".
func fakeInstance(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	answer := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer tok" {
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(`{"error": "missing or wrong bearer token"}`))
				return
			}
			if r.PathValue("id") != "o-1" {
				w.WriteHeader(http.StatusNotFound)
				_, _ = w.Write([]byte(`{"error": "offer \"` + r.PathValue("id") + `\" is not in the offers partitions this instance owns (2 of 4: 0, 2)", "partitions_owned": [0, 2], "partitions_total": 4}`))
				return
			}
			if r.URL.Path == "/api/offers/o-1/explain" && r.URL.Query().Get("feed") != "phones" {
				w.WriteHeader(http.StatusNotFound)
				_, _ = w.Write([]byte(`{"error": "unknown feed \"` + r.URL.Query().Get("feed") + `\""}`))
				return
			}
			_, _ = w.Write([]byte(body))
		}
	}
	mux.HandleFunc("GET /api/offers/{id}", answer(explainOfferJSON))
	mux.HandleFunc("GET /api/offers/{id}/explain", answer(explainFeedJSON))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestExplainCommand(t *testing.T) {
	srv := fakeInstance(t)
	// A closed port: nothing listens there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	_ = ln.Close() // only its free port is wanted
	tests := []struct {
		name  string
		args  []string
		env   string // FEEDMILL_HTTP_ADMIN_TOKEN
		code  int
		want  []string // substrings of stdout + stderr
		avoid []string
	}{
		{"stored state", []string{"-url", srv.URL, "-offer", "o-1", "-token", "tok"}, "", 0, []string{
			"offer o-1 (offers partition 2)", "status ACTIVE, stock 0", "rating: none", "last event seq 4",
			"phones  to gmc; last sent 2025-03-01T12:00:00Z; refresh due 2025-03-27T08:00:00Z",
			"books-file  no destinations; never sent; never refreshed",
			`grouped feed cheapest: candidate in group "p-1", lost`,
		}, nil},
		{"explain", []string{"-url", srv.URL + "/", "-offer", "o-1", "-feed", "phones"}, "tok", 0, []string{
			"offer o-1, feed phones: NOT in the feed",
			"false   all of (&&):",
			"    true    offer.status == \"ACTIVE\"",
			"    false   offer.stock > 0   <- first failing",
			"    true    any of (||):   (not reached)",
			"      nil     offer.attributes[\"x\"]   (not reached)",
			"first failing clause: offer.stock > 0  (false)",
			"stored: member", "DISAGREES: stored: member true; the filter now: false",
		}, []string{"item:"}},
		{"json", []string{"-url", srv.URL, "-offer", "o-1", "-feed", "phones", "-json", "-token", "tok"}, "", 0, []string{`"first_failing": {"source": "offer.stock > 0"`}, nil},
		{"no token", []string{"-url", srv.URL, "-offer", "o-1"}, "", 1, []string{"wants the admin token (401)", "FEEDMILL_HTTP_ADMIN_TOKEN"}, nil},
		{"wrong token", []string{"-url", srv.URL, "-offer", "o-1", "-token", "nope"}, "", 1, []string{"refused the admin token (401)"}, nil},
		{"offer of another instance", []string{"-url", srv.URL, "-offer", "o-2", "-token", "tok"}, "", 1, []string{"not found (404)", "(2 of 4: 0, 2)"}, nil},
		{"unknown feed", []string{"-url", srv.URL, "-offer", "o-1", "-feed", "nope", "-token", "tok"}, "", 1, []string{`not found (404): unknown feed "nope"`}, nil},
		{"unreachable", []string{"-url", closed, "-offer", "o-1", "-token", "tok"}, "", 1, []string{"cannot reach the instance", "-url"}, nil},
		{"offer missing", []string{"-url", srv.URL}, "", 2, []string{"Usage: feedmill explain"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("FEEDMILL_HTTP_ADMIN_TOKEN", tc.env)
			var out, errOut bytes.Buffer
			code := run(append([]string{"explain"}, tc.args...), &out, &errOut)
			all := out.String() + errOut.String()
			if code != tc.code {
				t.Errorf("exit %d, want %d; output:\n%s", code, tc.code, all)
			}
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("output lacks %q:\n%s", w, all)
				}
			}
			for _, w := range tc.avoid {
				if strings.Contains(all, w) {
					t.Errorf("output has %q:\n%s", w, all)
				}
			}
		})
	}
}
