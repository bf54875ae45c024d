package meta_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/connectors"
	"github.com/feedmill/feedmill/connectors/connectortest"
	"github.com/feedmill/feedmill/connectors/meta"
	"github.com/feedmill/feedmill/internal/records"
)

const (
	catalog = "987654321"
	token   = "EAAB-test-token-0001"
)

// fakeGraph is the Graph API catalog batch endpoints.
type fakeGraph struct {
	t       testing.TB
	faults  *connectortest.Faults
	applied *connectortest.Applied

	mu      sync.Mutex
	n       int
	batches map[string]*fakeBatch
	polls   int
}

type fakeBatch struct {
	reqs      []meta.Request
	pollsLeft int  // in_progress answers before finished
	failPoll  bool // answer the first poll with 500
	applied   bool
	errs      []meta.ItemError
}

func newFake(t testing.TB, faults *connectortest.Faults) *fakeGraph {
	return &fakeGraph{t: t, faults: faults, applied: &connectortest.Applied{}, batches: map[string]*fakeBatch{}}
}

func graphErr(w http.ResponseWriter, status, code int, msg string) {
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"message":%q,"type":"OAuthException","code":%d,"fbtrace_id":"x"}}`, msg, code)
}

func (f *fakeGraph) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+token || strings.Contains(r.URL.RawQuery, token) {
		f.t.Errorf("token missing from the header or leaked into the URL: %s", r.URL)
		graphErr(w, http.StatusUnauthorized, 190, "bad token")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v21.0/"+catalog+"/items_batch":
		f.itemsBatch(w, r, body)
	case r.Method == http.MethodGet && r.URL.Path == "/v21.0/"+catalog+"/check_batch_request_status":
		f.status(w, r)
	default:
		f.t.Errorf("unexpected request %s %s", r.Method, r.URL)
		graphErr(w, http.StatusNotFound, 803, "unknown path")
	}
}

func (f *fakeGraph) itemsBatch(w http.ResponseWriter, r *http.Request, body []byte) {
	form, err := url.ParseQuery(string(body))
	if err != nil || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" ||
		form.Get("item_type") != "PRODUCT_ITEM" || form.Get("allow_upsert") != "true" {
		f.t.Errorf("bad items_batch form: %v %v", err, form)
		graphErr(w, http.StatusBadRequest, 100, "bad form")
		return
	}
	var reqs []meta.Request
	if err := json.Unmarshal([]byte(form.Get("requests")), &reqs); err != nil || len(reqs) == 0 || len(reqs) > meta.MaxBatch {
		f.t.Errorf("bad requests (%d): %v", len(reqs), err)
		graphErr(w, http.StatusBadRequest, 100, "bad requests")
		return
	}
	for _, rq := range reqs {
		switch rq.Method {
		case "UPDATE":
			d := rq.Data
			if d.ID == "" || d.Title == "" || d.Link == "" || !strings.HasSuffix(d.Price, " PLN") ||
				(d.Availability != "in stock" && d.Availability != "out of stock") || len(d.InternalLabel) != 1 ||
				!strings.HasPrefix(d.InternalLabel[0], meta.SeqLabelPrefix) {
				f.t.Errorf("bad UPDATE data %+v", d)
			}
		case "DELETE":
			if rq.Data.ID == "" || rq.Data.Title != "" {
				f.t.Errorf("bad DELETE data %+v", rq.Data)
			}
		default:
			f.t.Errorf("method %q", rq.Method)
		}
	}
	fault := f.faults.Next()
	switch fault {
	case connectortest.Fault429:
		w.Header().Set("Retry-After", "1")
		graphErr(w, http.StatusTooManyRequests, 4, "Application request limit reached")
		return
	case connectortest.Fault500:
		graphErr(w, http.StatusInternalServerError, 2, "Service temporarily unavailable")
		return
	case connectortest.FaultTimeout:
		f.faults.Stall(r.Context()) // the suite reports a client that never gives up
		return
	}
	f.mu.Lock()
	f.n++
	h := "handle-" + strconv.Itoa(f.n)
	f.batches[h] = &fakeBatch{reqs: reqs, pollsLeft: f.n % 3, failPoll: fault == connectortest.FaultPartial}
	f.mu.Unlock()
	_ = json.NewEncoder(w).Encode(meta.BatchAnswer{Handles: []string{h}}) // a failed write is the client's timeout
}

// status answers a poll; the batch is applied when it finishes.
func (f *fakeGraph) status(w http.ResponseWriter, r *http.Request) {
	handle := r.URL.Query().Get("handle")
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Context().Err() != nil {
		return // the client gave up while the poll waited its turn
	}
	f.polls++
	b := f.batches[handle]
	switch {
	case b == nil:
		graphErr(w, http.StatusBadRequest, 100, "unknown handle")
		return
	case b.failPoll:
		b.failPoll = false
		graphErr(w, http.StatusInternalServerError, 1, "unknown error")
		return
	case b.pollsLeft > 0:
		b.pollsLeft--
		_ = json.NewEncoder(w).Encode(meta.StatusAnswer{Data: []meta.BatchStatus{{Status: "in_progress"}}})
		return
	}
	if !b.applied {
		b.applied = true
		for _, rq := range b.reqs {
			d := rq.Data
			if rq.Method == "DELETE" {
				f.applied.Delete(d.ID, 0)
				continue
			}
			if connectortest.IsPoison(d.Title) {
				b.errs = append(b.errs, meta.ItemError{ID: d.ID, Message: "title: policy violation"})
				continue
			}
			seq, _ := strconv.ParseInt(strings.TrimPrefix(d.InternalLabel[0], meta.SeqLabelPrefix), 10, 64)
			amount, _ := strconv.ParseFloat(strings.TrimSuffix(d.Price, " PLN"), 64)
			f.applied.Upsert(d.ID, connectortest.State{Seq: seq, PriceMinor: int(amount*100 + 0.5), Title: d.Title})
		}
	}
	_ = json.NewEncoder(w).Encode(meta.StatusAnswer{Data: []meta.BatchStatus{{Status: "finished", Errors: b.errs}}})
}

func TestMetaConformance(t *testing.T) {
	faults := &connectortest.Faults{}
	fake := newFake(t, faults)
	srv := httptest.NewServer(fake)
	defer srv.Close()
	defer faults.Release() // before Close: no handler may wait for a client that is gone
	rep := connectortest.Run(t, connectortest.Options{
		Applied: fake.applied,
		Faults:  faults,
		Configure: func(cfg *config.Connector) {
			cfg.Meta.BaseURL = srv.URL + "/v21.0"
			cfg.Meta.CatalogID = catalog
			cfg.Meta.AccessToken = token
			cfg.Meta.PollInterval = time.Millisecond
		},
		Build: func(cfg config.Connector) (connectors.Partner, error) {
			return meta.New(cfg, srv.Client())
		},
		WantRetryAfter: time.Second,
	})
	fake.mu.Lock()
	defer fake.mu.Unlock()
	t.Logf("records %d, batches %d, polls %d, states applied %d, duplicates %d, retries %.0f, dead letters %d, faults %v",
		rep.Records, fake.n, fake.polls, rep.Applied, rep.Duplicates, rep.Retries, rep.DeadLetters, rep.Faults)
}

// The price is "<amount> <currency>" with the currency's minor digits
// (offerrules.AppendPrice).
func TestRequestPrice(t *testing.T) {
	for _, tc := range []struct {
		minor    int
		currency string
		want     string
	}{
		{12999, "PLN", "129.99 PLN"},
		{5, "PLN", "0.05 PLN"},
		{12999, "JPY", "12999 JPY"},
		{1234, "KWD", "1.234 KWD"},
	} {
		it := &connectors.Item{OfferID: "o-1", Op: connectors.OpUpsert, Offer: &records.OfferView{
			Offer: records.Offer{ID: "o-1", PriceMinor: tc.minor, Currency: tc.currency}}}
		if got := meta.ToRequest(it).Data.Price; got != tc.want {
			t.Errorf("price of %d %s = %q, want %q", tc.minor, tc.currency, got, tc.want)
		}
	}
}
