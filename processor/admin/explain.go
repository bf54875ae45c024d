package admin

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"go.uber.org/zap"

	"github.com/feedmill/feedmill/processor/api"
)

type explainData struct {
	Offer, Feed string
	Feeds       []string
	X           *api.Explanation // the API's answer (docs/contract.md, Explain)
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
	var x api.Explanation
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
