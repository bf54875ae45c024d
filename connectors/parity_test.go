package connectors_test

import (
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/connectors"
	"github.com/feedmill/feedmill/connectors/merchant"
	"github.com/feedmill/feedmill/connectors/meta"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/internal/records"
)

// One offer must read the same in a built-in XML feed and through the
// partner API it feeds: availability, price text and product type come
// from one set of rules (feeds/offerrules). These tests render each offer
// with the google-merchant and meta-catalog templates and capture the
// Merchant API and Graph API requests the connectors send for it.

var parityNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func strp(s string) *string { return &s }

// parityOffers vary what the shared rules decide: stock and status,
// currencies with 0, 2, 3 and 4 minor digits, and category paths with
// blanks around and between their segments.
func parityOffers() []*records.Offer {
	base := func(id string, mod func(o *records.Offer)) *records.Offer {
		o := &records.Offer{
			ID: id, SellerID: "seller-1", Title: "Phone X 128 GB", Description: "A phone.",
			Category: "Electronics/Phones/Smartphones", PriceMinor: 12999, Currency: "PLN",
			Stock: 5, Condition: "NEW", Status: "ACTIVE", URL: "https://shop.example/o/" + id,
			Images: []string{"https://img.example/1.jpg", "https://img.example/2.jpg"},
			Brand:  strp("Apple"), GTIN: strp("0194253000000"), UpdatedAt: parityNow, Version: 1,
		}
		mod(o)
		records.DerivePrice(o)
		return o
	}
	return []*records.Offer{
		base("plain", func(*records.Offer) {}),
		base("blank-around-segments", func(o *records.Offer) { o.Category = " Electronics / Phones /\tSmartphones " }),
		base("empty-segments", func(o *records.Offer) { o.Category = "Home & Garden//Tools/" }),
		base("blank-category", func(o *records.Offer) { o.Category = " / " }),
		base("no-category", func(o *records.Offer) { o.Category = "" }),
		base("no-stock", func(o *records.Offer) { o.Stock = 0 }),
		base("inactive", func(o *records.Offer) { o.Status = "INACTIVE" }),
		base("ended", func(o *records.Offer) { o.Status = "ENDED"; o.Condition = "USED" }),
		base("jpy", func(o *records.Offer) { o.Currency = "JPY"; o.PriceMinor = 12999 }),
		base("kwd", func(o *records.Offer) { o.Currency = "KWD"; o.PriceMinor = 5 }),
		base("clf", func(o *records.Offer) { o.Currency = "CLF"; o.PriceMinor = 10001 }),
		base("cents", func(o *records.Offer) { o.PriceMinor = 105; o.Condition = "REFURBISHED" }),
	}
}

// xmlItem is an item of the google-merchant or meta-catalog template, by
// local element name.
type xmlItem struct {
	ID                   string   `xml:"id"`
	Title                string   `xml:"title"`
	Description          string   `xml:"description"`
	Link                 string   `xml:"link"`
	ImageLink            string   `xml:"image_link"`
	AdditionalImageLinks []string `xml:"additional_image_link"`
	Availability         string   `xml:"availability"`
	Price                string   `xml:"price"`
	Condition            string   `xml:"condition"`
	Brand                string   `xml:"brand"`
	GTIN                 string   `xml:"gtin"`
	ProductTypes         []string `xml:"product_type"`
}

// renderItem renders o alone with the built-in template and parses the
// item back.
func renderItem(t *testing.T, template string, o *records.Offer) xmlItem {
	t.Helper()
	set, err := feeds.Compile([]config.Feed{{ID: "parity", Filter: "true", Template: template, File: true}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := set.Feeds()[0]
	v := &feeds.View{Offer: o, Seller: &records.Seller{ID: "seller-1", Name: "Good Shop", Status: "ACTIVE"}}
	doc := f.Template.AppendHeader(nil, f, parityNow)
	doc = set.NewEvaluator().AppendItem(doc, f.Template, v, parityNow)
	doc = f.Template.AppendFooter(doc)
	var rss struct {
		Items []xmlItem `xml:"channel>item"`
	}
	if err := xml.Unmarshal(doc, &rss); err != nil {
		t.Fatalf("%s document: %v\n%s", template, err, doc)
	}
	if len(rss.Items) != 1 {
		t.Fatalf("%s document has %d items, want 1\n%s", template, len(rss.Items), doc)
	}
	return rss.Items[0]
}

func upsert(o *records.Offer) connectors.Item {
	return connectors.Item{OfferID: o.ID, Op: connectors.OpUpsert, Action: records.ActionAdd, Seq: 7,
		Offer: &records.OfferView{Offer: *o, Seller: &records.Seller{ID: "seller-1", Name: "Good Shop", Status: "ACTIVE"}}}
}

// priceMicros reads an XML price ("129.99 PLN") as Merchant API micros of
// the major unit and the currency code.
func priceMicros(t *testing.T, text string) (int64, string) {
	t.Helper()
	amount, currency, ok := strings.Cut(text, " ")
	whole, frac, _ := strings.Cut(amount, ".")
	n, err := strconv.ParseInt(whole+frac, 10, 64)
	if !ok || err != nil || len(frac) > 6 {
		t.Fatalf("price %q is not \"<amount> <currency>\"", text)
	}
	for range 6 - len(frac) {
		n *= 10
	}
	return n, currency
}

// merchantInputs sends offers through the merchant partner to a fake
// Merchant API and returns the product inputs it received, by offer id.
func merchantInputs(t *testing.T, offers []*records.Offer) map[string]merchant.ProductInput {
	t.Helper()
	var mu sync.Mutex
	got := map[string]merchant.ProductInput{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in merchant.ProductInput
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			t.Errorf("product input: %v", err)
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		mu.Lock()
		got[in.OfferID] = in
		mu.Unlock()
		_, _ = io.WriteString(w, "{}")
	}))
	t.Cleanup(srv.Close)
	cfg := config.DefaultConnector()
	cfg.Merchant.BaseURL = srv.URL
	cfg.Merchant.AccountID = "123456"
	cfg.Merchant.DataSource = "ds-feedmill"
	ts := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "tok-static", TokenType: "Bearer"})
	p := merchant.NewWithTokenSource(cfg, ts, srv.Client())
	for _, o := range offers {
		if res := p.Send(t.Context(), []connectors.Item{upsert(o)}); res[0].Outcome != connectors.Acked {
			t.Fatalf("send %s: %+v", o.ID, res[0])
		}
	}
	return got
}

// metaRequests sends offers through the meta partner to a fake Graph API
// and returns the items_batch requests it received, by offer id.
func metaRequests(t *testing.T, offers []*records.Offer) map[string]meta.Request {
	t.Helper()
	var mu sync.Mutex
	got := map[string]meta.Request{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if strings.HasSuffix(r.URL.Path, "/check_batch_request_status") {
			_, _ = io.WriteString(w, `{"data":[{"status":"finished","errors":[]}]}`)
			return
		}
		if err := r.ParseForm(); err != nil {
			t.Errorf("items_batch form: %v", err)
		}
		var reqs []meta.Request
		dec := json.NewDecoder(strings.NewReader(r.PostForm.Get("requests")))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&reqs); err != nil {
			t.Errorf("items_batch requests: %v", err)
		}
		mu.Lock()
		for _, rq := range reqs {
			got[rq.Data.ID] = rq
		}
		mu.Unlock()
		_, _ = io.WriteString(w, `{"handles":["h-1"]}`)
	}))
	t.Cleanup(srv.Close)
	cfg := config.DefaultConnector()
	cfg.Meta.BaseURL = srv.URL + "/v21.0"
	cfg.Meta.CatalogID = "987654321"
	cfg.Meta.AccessToken = "EAAB-test-token-0001"
	cfg.Meta.PollInterval = time.Millisecond
	p, err := meta.New(cfg, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	items := make([]connectors.Item, len(offers))
	for i, o := range offers {
		items[i] = upsert(o)
	}
	for i, res := range p.Send(t.Context(), items) {
		if res.Outcome != connectors.Acked {
			t.Fatalf("send %s: %+v", items[i].OfferID, res)
		}
	}
	return got
}

func TestMerchantAPIMatchesGoogleMerchantFeed(t *testing.T) {
	offers := parityOffers()
	inputs := merchantInputs(t, offers)
	for _, o := range offers {
		t.Run(o.ID, func(t *testing.T) {
			item := renderItem(t, config.TemplateGoogleMerchant, o)
			in, ok := inputs[o.ID]
			if !ok {
				t.Fatal("no product input sent")
			}
			a := in.ProductAttributes
			if want := strings.ToUpper(item.Availability); a.Availability != want {
				t.Errorf("availability: API %q, feed %q", a.Availability, item.Availability)
			}
			micros, currency := priceMicros(t, item.Price)
			if a.Price.AmountMicros != strconv.FormatInt(micros, 10) || a.Price.CurrencyCode != currency {
				t.Errorf("price: API %s micros %s, feed %q", a.Price.AmountMicros, a.Price.CurrencyCode, item.Price)
			}
			if strings.Join(a.ProductTypes, "|") != strings.Join(item.ProductTypes, "|") {
				t.Errorf("product type: API %q, feed %q", a.ProductTypes, item.ProductTypes)
			}
			if in.OfferID != item.ID || a.Title != item.Title || a.Description != item.Description || a.Link != item.Link ||
				a.ImageLink != item.ImageLink || strings.Join(a.AdditionalImageLinks, " ") != strings.Join(item.AdditionalImageLinks, " ") ||
				strings.ToLower(a.Condition) != item.Condition || a.Brand != item.Brand || strings.Join(a.Gtins, " ") != item.GTIN {
				t.Errorf("API %+v (offer id %q), feed %+v", a, in.OfferID, item)
			}
		})
	}
}

// Meta's items_batch request and the meta-catalog template agree on the
// fields both carry. (The template falls back to the seller's name for a
// missing brand; the offers here all have one.)
func TestMetaAPIMatchesMetaCatalogFeed(t *testing.T) {
	offers := parityOffers()
	reqs := metaRequests(t, offers)
	for _, o := range offers {
		t.Run(o.ID, func(t *testing.T) {
			item := renderItem(t, config.TemplateMetaCatalog, o)
			rq, ok := reqs[o.ID]
			if !ok {
				t.Fatal("no items_batch request sent")
			}
			d := rq.Data
			if rq.Method != "UPDATE" {
				t.Errorf("method %q, want UPDATE", rq.Method)
			}
			if d.Availability != item.Availability {
				t.Errorf("availability: API %q, feed %q", d.Availability, item.Availability)
			}
			if d.Price != item.Price {
				t.Errorf("price: API %q, feed %q", d.Price, item.Price)
			}
			if d.ID != item.ID || d.Title != item.Title || d.Description != item.Description || d.Link != item.Link ||
				d.ImageLink != item.ImageLink || strings.Join(d.AdditionalImageLink, " ") != strings.Join(item.AdditionalImageLinks, " ") ||
				d.Condition != item.Condition || d.Brand != item.Brand {
				t.Errorf("API %+v, feed %+v", d, item)
			}
		})
	}
}
