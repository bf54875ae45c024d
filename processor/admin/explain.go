package admin

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"go.uber.org/zap"
)

// explanation is the answer of GET /api/offers/{id}/explain
// (docs/contract.md, Explain), as the page shows it.
type explanation struct {
	Offer        string    `json:"offer"`
	Partition    int32     `json:"partition"`
	Feed         string    `json:"feed"`
	Filter       string    `json:"filter"`
	EvaluatedAt  time.Time `json:"evaluated_at"`
	Match        bool      `json:"match"`
	FilterError  string    `json:"filter_error"`
	Clauses      clause    `json:"clauses"`
	FirstFailing *clause   `json:"first_failing"`
	Item         *string   `json:"item"`
	RenderError  string    `json:"render_error"`
	Group        *struct {
		InGroup bool   `json:"in_group"`
		Key     string `json:"key"`
		Value   any    `json:"value"`
		Pick    string `json:"pick"`
		Error   string `json:"error"`
	} `json:"group"`
	Stored struct {
		Member bool `json:"member"`
		Group  *struct {
			Key    string `json:"key"`
			Filter bool   `json:"filter"`
			Live   bool   `json:"live"`
			Won    bool   `json:"won"`
		} `json:"group"`
	} `json:"stored"`
	Agrees       bool   `json:"agrees"`
	Disagreement string `json:"disagreement"`
}

// clause is one clause of an explanation; Value nil when it gave nil or
// failed.
type clause struct {
	Op      string   `json:"op"`
	Source  string   `json:"source"`
	Value   *bool    `json:"value"`
	Error   string   `json:"error"`
	Skipped bool     `json:"skipped"`
	Clauses []clause `json:"clauses"`
}

type explainData struct {
	Offer, Feed string
	Feeds       []string
	X           *explanation
}

// explainPage is GET /admin/explain?offer=ID&feed=F: the form, and with
// both fields the explanation the API gives, or its refusal (a 404 names
// the partitions this instance owns).
func (p *Page) explainPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := explainData{Offer: q.Get("offer"), Feed: q.Get("feed")}
	set, _, _ := p.Feeds()
	for _, f := range set.Feeds() {
		d.Feeds = append(d.Feeds, f.ID)
	}
	v := view{Title: "Explain an offer", Nav: "explain", Data: &d}
	switch {
	case d.Offer == "" && d.Feed == "":
		p.render(w, r, http.StatusOK, "explain", v)
		return
	case d.Offer == "" || d.Feed == "":
		v.Error = "Give both an offer id and a feed."
		p.render(w, r, http.StatusBadRequest, "explain", v)
		return
	}
	status, body := p.callAPI(r, "/api/offers/"+url.PathEscape(d.Offer)+"/explain?feed="+url.QueryEscape(d.Feed))
	if status != http.StatusOK {
		v.Error = apiError(status, body)
		p.render(w, r, status, "explain", v)
		return
	}
	var x explanation
	if err := json.Unmarshal(body, &x); err != nil {
		p.Logger.Error("admin page: decode explanation", zap.Error(err))
		v.Error = "The explanation could not be read: " + err.Error()
		p.render(w, r, http.StatusInternalServerError, "explain", v)
		return
	}
	d.X = &x
	p.render(w, r, http.StatusOK, "explain", v)
}

// callAPI asks the API handler for GET target in-process (no network, no
// admin token: the page checked its own) and returns the status and
// body.
func (p *Page) callAPI(r *http.Request, target string) (int, []byte) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, target, nil)
	if err != nil {
		return http.StatusBadRequest, []byte(`{"error":` + strconv.Quote(err.Error()) + `}`)
	}
	req.RemoteAddr = r.RemoteAddr
	rec := &recorder{header: http.Header{}}
	p.API.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return rec.status, rec.body.Bytes()
}

// apiError is the message of an API error answer ({"error": ...}).
func apiError(status int, body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	return http.StatusText(status) + ": " + string(bytes.TrimSpace(body))
}

// recorder is the http.ResponseWriter of an in-process API call.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
