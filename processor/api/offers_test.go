package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/internal/app"
	"github.com/feedmill/feedmill/internal/apptest"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/internal/synth"
	"github.com/feedmill/feedmill/internal/testenv"
	"github.com/feedmill/feedmill/processor"
	"github.com/feedmill/feedmill/processor/api"
	"github.com/feedmill/feedmill/state"
)

const offersToken = "offers-test-token-0123456789"

// offerAnswer and explainAnswer are the endpoints' JSON (docs/contract.md).
type offerAnswer struct {
	ID        string         `json:"id"`
	Partition int32          `json:"partition"`
	Offer     map[string]any `json:"offer"`
	Deleted   *struct {
		Version   int64     `json:"version"`
		DeletedAt time.Time `json:"deleted_at"`
	} `json:"deleted"`
	Seller map[string]any `json:"seller"`
	Rating map[string]any `json:"rating"`
	Seq    int64          `json:"seq"`
	Feeds  []struct {
		Feed         string     `json:"feed"`
		Destinations []string   `json:"destinations"`
		Fingerprint  string     `json:"fingerprint"`
		SentAt       *time.Time `json:"sent_at"`
		RefreshAt    *time.Time `json:"refresh_at"`
	} `json:"feeds"`
	Groups []struct {
		Feed   string `json:"feed"`
		Filter bool   `json:"filter"`
		Key    string `json:"key"`
		Live   bool   `json:"live"`
		Won    bool   `json:"won"`
	} `json:"groups"`
}

type clauseAnswer struct {
	Op      string         `json:"op"`
	Source  string         `json:"source"`
	Value   *bool          `json:"value"`
	Error   string         `json:"error"`
	Skipped bool           `json:"skipped"`
	Clauses []clauseAnswer `json:"clauses"`
}

type explainAnswer struct {
	Offer        string        `json:"offer"`
	Partition    int32         `json:"partition"`
	Feed         string        `json:"feed"`
	Filter       string        `json:"filter"`
	Match        bool          `json:"match"`
	FilterError  string        `json:"filter_error"`
	Clauses      clauseAnswer  `json:"clauses"`
	FirstFailing *clauseAnswer `json:"first_failing"`
	Item         *string       `json:"item"`
	Group        *struct {
		InGroup bool   `json:"in_group"`
		Key     string `json:"key"`
		Value   any    `json:"value"`
		Pick    string `json:"pick"`
	} `json:"group"`
	Stored struct {
		Member bool `json:"member"`
		Group  *struct {
			Key  string `json:"key"`
			Live bool   `json:"live"`
		} `json:"group"`
	} `json:"stored"`
	Agrees       bool   `json:"agrees"`
	Disagreement string `json:"disagreement"`
}

type errorAnswer struct {
	Error           string  `json:"error"`
	PartitionsOwned []int32 `json:"partitions_owned"`
	PartitionsTotal int32   `json:"partitions_total"`
}

// get GETs base+path with token ("" for none) and decodes the JSON answer
// into dst; it returns the status.
func get(t *testing.T, base, path, token string, dst any) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(dst); err != nil {
		t.Fatalf("GET %s: status %d, decode: %v", path, resp.StatusCode, err)
	}
	return resp.StatusCode
}

// TestOffersAPI runs an app on a synthetic catalog and change stream and
// asks both endpoints about every offer: the stored state is what the
// feeds decide for the generator's truth, every explanation's verdict is
// Match's and agrees with the stored membership (grouped feeds
// included); then the error answers and the admin token.
func TestOffersAPI(t *testing.T) {
	env := testenv.New(t, "offers", "sellers", "ratings", "feed-events", "feedmill-rejects")
	fs := []config.Feed{
		{ID: "in-stock", Filter: `offer.status == "ACTIVE" && offer.stock > 0 && (seller?.status == "ACTIVE" || (rating?.average ?? 0) >= 4.5)`,
			Template: config.TemplateCeneo, Destinations: []string{"ceneo"}},
		{ID: "file-only", Filter: `offer.stock > 0 and not (offer.currency in ["EUR"])`, Template: config.TemplateGoogleMerchant, File: true},
		synth.GroupedFeeds()[0], // the cheapest active offer in stock per product
	}
	cfg := apptest.Config(t, env, fs, nil)
	cfg.HTTP.AdminToken = offersToken
	gen, prod, _ := apptest.ProduceCatalog(t, env, cfg.Kafka.Topics, 11, synth.Options{Offers: 150, Sellers: 8, Products: 40})
	ctx := context.Background()
	for range 150 {
		if err := prod.Produce(ctx, gen.Next()); err != nil {
			t.Fatal(err)
		}
	}
	// And one offer deleted for sure.
	truth := gen.State()
	var gone string
	for id := range truth.Offers {
		gone = id
		break
	}
	delete(truth.Offers, gone)
	if err := prod.Produce(ctx, synth.Change{Topic: synth.KindOffers, Key: gone, Tombstone: true}); err != nil {
		t.Fatal(err)
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	a := apptest.Start(t, cfg, app.Deps{})
	apptest.WaitCaughtUp(t, env, a)
	base := "http://" + a.Addr()
	set := a.Feeds
	ev := set.NewEvaluator()
	member := make([]bool, len(set.Feeds()))
	matched := 0
	for id, o := range truth.Offers {
		v := &feeds.View{Offer: o, Seller: truth.Sellers[o.SellerID], Rating: truth.Ratings[o.SellerID]}
		var got offerAnswer
		if code := get(t, base, "/api/offers/"+url.PathEscape(id), offersToken, &got); code != http.StatusOK {
			t.Fatalf("GET offer %s: %d", id, code)
		}
		if got.ID != id || got.Offer["id"] != id || got.Offer["seller_id"] != o.SellerID || got.Deleted != nil {
			t.Fatalf("offer %s: %+v", id, got)
		}
		if (got.Seller == nil) != (v.Seller == nil) || (got.Rating == nil) != (v.Rating == nil) {
			t.Fatalf("offer %s: seller %v rating %v, want %v %v", id, got.Seller, got.Rating, v.Seller, v.Rating)
		}
		ev.Match(v, time.Now(), member)
		var in []string
		for _, e := range got.Feeds {
			in = append(in, e.Feed)
			if e.Feed == "in-stock" {
				checkRefresh(t, id, e.SentAt, e.RefreshAt, cfg.FullPass.RefreshAfter)
			} else if e.Feed == "file-only" && (e.RefreshAt != nil || e.SentAt != nil) {
				t.Errorf("offer %s: a feed without destinations sent at %v, refreshed at %v", id, e.SentAt, e.RefreshAt)
			}
		}
		for i, f := range set.Feeds() {
			if !f.Grouped() && member[i] != slices.Contains(in, f.ID) {
				t.Errorf("offer %s feed %s: stored %v, Match %v", id, f.ID, in, member[i])
			}
			var x explainAnswer
			if code := get(t, base, "/api/offers/"+url.PathEscape(id)+"/explain?feed="+f.ID, offersToken, &x); code != http.StatusOK {
				t.Fatalf("explain offer %s feed %s: %d", id, f.ID, code)
			}
			if x.Match != member[i] || x.Partition != got.Partition || x.Feed != f.ID || x.Offer != id {
				t.Fatalf("explain offer %s feed %s: %+v, Match %v", id, f.ID, x, member[i])
			}
			if !x.Agrees {
				t.Errorf("explain offer %s feed %s: disagrees: %s", id, f.ID, x.Disagreement)
			}
			if x.Match != (x.Item != nil) || x.Match != (x.FirstFailing == nil) {
				t.Errorf("explain offer %s feed %s: match %v, item %v, first failing %+v", id, f.ID, x.Match, x.Item, x.FirstFailing)
			}
			if x.Clauses.Op != "&&" || x.Clauses.Value == nil || *x.Clauses.Value != x.Match {
				t.Errorf("explain offer %s feed %s: clauses %+v", id, f.ID, x.Clauses)
			}
			if f.Grouped() != (x.Group != nil) {
				t.Errorf("explain offer %s feed %s: group %+v", id, f.ID, x.Group)
			}
			if x.Match {
				matched++
			}
		}
	}
	if matched == 0 {
		t.Fatal("no offer is in any feed: the test tests nothing")
	}

	t.Run("deleted", func(t *testing.T) {
		id := gone
		var got offerAnswer
		if code := get(t, base, "/api/offers/"+id, offersToken, &got); code != http.StatusOK || got.Deleted == nil || got.Offer != nil || len(got.Feeds) != 0 {
			t.Fatalf("GET deleted offer %s: %d %+v", id, code, got)
		}
		var e errorAnswer
		if code := get(t, base, "/api/offers/"+id+"/explain?feed=in-stock", offersToken, &e); code != http.StatusNotFound || !strings.Contains(e.Error, "deleted") {
			t.Fatalf("explain deleted offer: %d %+v", code, e)
		}
	})

	var some string
	for id := range truth.Offers {
		some = id
		break
	}
	for _, tc := range []struct {
		name, path, token string
		code              int
		want              string
	}{
		{"no token", "/api/offers/" + some, "", http.StatusUnauthorized, "token"},
		{"no token, explain", "/api/offers/" + some + "/explain?feed=in-stock", "", http.StatusUnauthorized, "token"},
		{"wrong token", "/api/offers/" + some, "nope", http.StatusUnauthorized, "token"},
		{"unknown offer", "/api/offers/no-such-offer", offersToken, http.StatusNotFound, "not stored in any offers partition (this instance owns all 4)"},
		{"unknown feed", "/api/offers/" + some + "/explain?feed=nope", offersToken, http.StatusNotFound, `unknown feed "nope"`},
		{"missing feed", "/api/offers/" + some + "/explain", offersToken, http.StatusBadRequest, "feed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e errorAnswer
			if code := get(t, base, tc.path, tc.token, &e); code != tc.code || !strings.Contains(e.Error, tc.want) {
				t.Fatalf("%d %q, want %d ...%s...", code, e.Error, tc.code, tc.want)
			}
		})
	}

	t.Run("partition of another instance", func(t *testing.T) {
		var got offerAnswer
		get(t, base, "/api/offers/"+some, offersToken, &got)
		others := []int32{}
		for p := range int32(testenv.Partitions) {
			if p != got.Partition {
				others = append(others, p)
			}
		}
		narrow := &api.OffersAPI{
			Store: a.Store, Feeds: func() *feeds.Set { return set },
			Coverage: func() ([]int32, int32) { return others, testenv.Partitions },
			Join: func(b *state.Batch, o *records.Offer, v *feeds.View) error {
				return processor.NewJoiner(a.Serde, 0).Join(b, o, v)
			},
			Logger: zap.NewNop(),
		}
		mux := http.NewServeMux()
		narrow.Register(mux)
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		var e errorAnswer
		code := get(t, srv.URL, "/api/offers/"+some+"/explain?feed=in-stock", "", &e)
		want := fmt.Sprintf("(3 of 4: %s)", strings.Trim(strings.Join(strings.Fields(fmt.Sprint(others)), ", "), "[]"))
		if code != http.StatusNotFound || !slices.Equal(e.PartitionsOwned, others) || e.PartitionsTotal != 4 || !strings.Contains(e.Error, want) {
			t.Fatalf("%d %+v, want 404 naming %s", code, e, want)
		}
	})
}

// checkRefresh: refresh_at is the first instant the refresh schedule
// (processor.RefreshDue) makes the entry due.
func checkRefresh(t *testing.T, id string, sentAt, at *time.Time, after time.Duration) {
	t.Helper()
	if sentAt == nil || at == nil {
		t.Errorf("offer %s: no refresh time", id)
		return
	}
	cycle := after.Milliseconds()
	phase := processor.RefreshPhaseMs(id, cycle)
	ms := at.UnixMilli()
	if !processor.RefreshDue(phase, sentAt.UnixMilli(), ms, cycle) || processor.RefreshDue(phase, sentAt.UnixMilli(), ms-1, cycle) {
		t.Errorf("offer %s sent at %v: refresh at %v is not the first due instant", id, sentAt, at)
	}
}
