package merchant

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/jwt"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/connectors"
	"github.com/feedmill/feedmill/feeds/offerrules"
	"github.com/feedmill/feedmill/internal/records"
)

// Scope is the OAuth2 scope of the Merchant API.
const Scope = "https://www.googleapis.com/auth/content"

// SeqAttribute is the custom attribute carrying the feedmill seq of the
// state sent, for support and reconciliation.
const SeqAttribute = "feedmill_seq"

// defaultTokenURL is used when the key file has no token_uri.
const defaultTokenURL = "https://oauth2.googleapis.com/token"

// ProductInput is the body of productInputs.insert (the fields feedmill sets).
type ProductInput struct {
	OfferID           string            `json:"offerId"`
	ContentLanguage   string            `json:"contentLanguage"`
	FeedLabel         string            `json:"feedLabel"`
	ProductAttributes ProductAttributes `json:"productAttributes"`
	CustomAttributes  []CustomAttribute `json:"customAttributes,omitempty"`
}

// ProductAttributes are the product's attributes.
type ProductAttributes struct {
	Title                string   `json:"title"`
	Description          string   `json:"description,omitempty"`
	Link                 string   `json:"link"`
	ImageLink            string   `json:"imageLink,omitempty"`
	AdditionalImageLinks []string `json:"additionalImageLinks,omitempty"`
	Availability         string   `json:"availability"`
	Condition            string   `json:"condition,omitempty"`
	Price                Price    `json:"price"`
	Brand                string   `json:"brand,omitempty"`
	Gtins                []string `json:"gtins,omitempty"`
	ProductTypes         []string `json:"productTypes,omitempty"`
}

// Price is a Merchant API price: micros of the currency's major unit,
// as a decimal string (int64 in proto JSON).
type Price struct {
	AmountMicros string `json:"amountMicros"`
	CurrencyCode string `json:"currencyCode"`
}

// CustomAttribute is a name/value attribute.
type CustomAttribute struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// apiError is Google's error body.
type apiError struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
	} `json:"error"`
}

// Partner calls the Merchant API. Safe for concurrent use.
type Partner struct {
	base       string
	account    string
	dataSource string
	language   string
	feedLabel  string
	client     *http.Client
	now        func() time.Time
}

// New builds the partner from cfg: it reads the service-account key in
// merchant.credentials_file. base is the HTTP client used for the token
// endpoint and the API (nil: http.DefaultClient's transport). Every
// token fetch is bounded by retry.timeout, and a Send waits for one no
// longer than its own context allows.
func New(cfg config.Connector, base *http.Client) (*Partner, error) {
	if err := cfg.ValidatePartner(config.PartnerMerchant); err != nil {
		return nil, fmt.Errorf("merchant: %w", err)
	}
	key, err := os.ReadFile(cfg.Merchant.CredentialsFile)
	if err != nil {
		return nil, fmt.Errorf("merchant: read credentials: %w", err)
	}
	jc, err := JWTConfig(key)
	if err != nil {
		return nil, fmt.Errorf("merchant: credentials %s: %w", cfg.Merchant.CredentialsFile, err)
	}
	if base == nil {
		base = &http.Client{}
	}
	// The JWT grant runs outside any request's context (oauth2's
	// TokenSource takes none): give its client a timeout of its own so a
	// token endpoint that never answers cannot hold the fetch forever.
	tokenClient := *base
	if tokenClient.Timeout <= 0 || tokenClient.Timeout > cfg.Retry.Timeout {
		tokenClient.Timeout = cfg.Retry.Timeout
	}
	tctx := context.WithValue(context.Background(), oauth2.HTTPClient, &tokenClient)
	return NewWithTokenSource(cfg, oauth2.ReuseTokenSource(nil, jc.TokenSource(tctx)), base), nil
}

// NewWithTokenSource builds the partner with an explicit token source.
// A request waits for a token no longer than its context allows.
func NewWithTokenSource(cfg config.Connector, ts oauth2.TokenSource, base *http.Client) *Partner {
	if base == nil {
		base = &http.Client{}
	}
	rt := base.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	m := cfg.Merchant
	return &Partner{
		base:       strings.TrimSuffix(m.BaseURL, "/"),
		account:    m.AccountID,
		dataSource: m.DataSource,
		language:   m.ContentLanguage,
		feedLabel:  m.FeedLabel,
		client:     &http.Client{Transport: &authTransport{src: ts, base: rt}},
		now:        time.Now,
	}
}

// authTransport sets the bearer token of src on every request, except a
// redirect to another origin than the request the caller made: as
// http.Client does with the headers it copies, the token is not sent to a
// host the caller did not name. It is stricter than http.Client: a
// different scheme, port or subdomain counts as another origin. Unlike
// oauth2.Transport it stops waiting for a token when the request's
// context ends: a token fetch in progress goes on in the background
// (bounded by the token client's timeout) and a later request reuses it.
type authTransport struct {
	src  oauth2.TokenSource
	base http.RoundTripper
}

// crossOrigin reports whether req is a redirect that left the origin
// (scheme and host:port) of the request that started the chain.
func crossOrigin(req *http.Request) bool {
	first := req
	for first.Response != nil && first.Response.Request != nil {
		first = first.Response.Request
	}
	return first != req && (!strings.EqualFold(first.URL.Scheme, req.URL.Scheme) ||
		!strings.EqualFold(first.URL.Host, req.URL.Host))
}

type tokenResult struct {
	tok *oauth2.Token
	err error
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if crossOrigin(req) {
		if req.Header.Get("Authorization") == "" {
			return t.base.RoundTrip(req)
		}
		req2 := req.Clone(req.Context()) // RoundTrip must not modify req
		req2.Header.Del("Authorization")
		return t.base.RoundTrip(req2)
	}
	tok, err := t.token(req.Context())
	if err != nil {
		if req.Body != nil {
			_ = req.Body.Close() // RoundTrip must close the body, even on errors
		}
		return nil, err
	}
	req2 := req.Clone(req.Context()) // RoundTrip must not modify req
	tok.SetAuthHeader(req2)
	return t.base.RoundTrip(req2)
}

func (t *authTransport) token(ctx context.Context) (*oauth2.Token, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("access token: %w", err)
	}
	ch := make(chan tokenResult, 1)
	go func() {
		tok, err := t.src.Token()
		ch <- tokenResult{tok, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("access token: %w", r.err)
		}
		return r.tok, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("access token: %w", ctx.Err())
	}
}

// JWTConfig parses a Google service-account key file (the fields
// google.JWTConfigFromJSON reads) into a two-legged OAuth2 config for
// Scope.
func JWTConfig(key []byte) (*jwt.Config, error) {
	var f struct {
		Type         string `json:"type"`
		ClientEmail  string `json:"client_email"`
		PrivateKey   string `json:"private_key"`
		PrivateKeyID string `json:"private_key_id"`
		TokenURI     string `json:"token_uri"`
	}
	if err := json.Unmarshal(key, &f); err != nil {
		return nil, fmt.Errorf("parse service account key: %w", err)
	}
	if f.Type != "service_account" {
		return nil, fmt.Errorf("key type %q, want service_account", f.Type)
	}
	if f.ClientEmail == "" || f.PrivateKey == "" {
		return nil, errors.New("service account key lacks client_email or private_key")
	}
	tokenURL := f.TokenURI
	if tokenURL == "" {
		tokenURL = defaultTokenURL
	}
	return &jwt.Config{
		Email:        f.ClientEmail,
		PrivateKey:   []byte(f.PrivateKey),
		PrivateKeyID: f.PrivateKeyID,
		Scopes:       []string{Scope},
		TokenURL:     tokenURL,
	}, nil
}

// MaxItems is 1: the Merchant API takes one product input per request.
func (p *Partner) MaxItems() int { return 1 }

// Send inserts or deletes each item, one request each.
func (p *Partner) Send(ctx context.Context, items []connectors.Item) []connectors.Result {
	out := make([]connectors.Result, len(items))
	for i := range items {
		out[i] = p.send(ctx, &items[i])
	}
	return out
}

func (p *Partner) dataSourceName() string {
	return "accounts/" + p.account + "/dataSources/" + p.dataSource
}

func (p *Partner) send(ctx context.Context, it *connectors.Item) connectors.Result {
	q := url.Values{"dataSource": {p.dataSourceName()}}.Encode()
	var req *http.Request
	var err error
	switch it.Op {
	case connectors.OpUpsert:
		body, merr := json.Marshal(p.Input(it))
		if merr != nil {
			return connectors.Result{Outcome: connectors.Permanent, Message: "encode product input: " + merr.Error()}
		}
		u := p.base + "/products/v1/accounts/" + url.PathEscape(p.account) + "/productInputs:insert?" + q
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
		if req != nil {
			req.Header.Set("Content-Type", "application/json")
		}
	default:
		name := p.language + "~" + p.feedLabel + "~" + it.OfferID
		u := p.base + "/products/v1/accounts/" + url.PathEscape(p.account) + "/productInputs/" + url.PathEscape(name) + "?" + q
		req, err = http.NewRequestWithContext(ctx, http.MethodDelete, u, nil)
	}
	if err != nil {
		return connectors.ErrorResult(fmt.Errorf("build request: %w", err))
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return connectors.ErrorResult(fmt.Errorf("merchant api: %w", err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20)) // only for the error message
	if it.Op == connectors.OpDelete && resp.StatusCode == http.StatusNotFound {
		return connectors.Result{Outcome: connectors.Acked, Status: resp.StatusCode}
	}
	msg := ""
	if resp.StatusCode >= 300 {
		msg = resp.Status
		var ae apiError
		if json.Unmarshal(body, &ae) == nil && ae.Error.Message != "" {
			msg = ae.Error.Status + ": " + ae.Error.Message
		}
	}
	return connectors.StatusResult(resp.StatusCode, resp.Header, msg, p.now())
}

// Input maps an upsert item to the product input sent. Availability and
// product type follow offerrules, as the google-merchant template does, so
// an offer reads the same in the XML feed and through the API.
func (p *Partner) Input(it *connectors.Item) *ProductInput {
	o := &it.Offer.Offer
	attrs := ProductAttributes{
		Title:        o.Title,
		Description:  o.Description,
		Link:         o.URL,
		Availability: "OUT_OF_STOCK",
		Condition:    o.Condition,
		Price:        Price{AmountMicros: strconv.FormatInt(Micros(o.PriceMinor, o.Currency), 10), CurrencyCode: o.Currency},
	}
	if offerrules.InStock(o) {
		attrs.Availability = "IN_STOCK"
	}
	if len(o.Images) > 0 {
		attrs.ImageLink = o.Images[0]
		attrs.AdditionalImageLinks = o.Images[1:]
	}
	if o.Brand != nil {
		attrs.Brand = *o.Brand
	}
	if o.GTIN != nil {
		attrs.Gtins = []string{*o.GTIN}
	}
	if pt, ok := offerrules.AppendProductType(nil, o.Category); ok {
		attrs.ProductTypes = []string{string(pt)}
	}
	return &ProductInput{
		OfferID:           it.OfferID,
		ContentLanguage:   p.language,
		FeedLabel:         p.feedLabel,
		ProductAttributes: attrs,
		CustomAttributes:  []CustomAttribute{{Name: SeqAttribute, Value: strconv.FormatInt(it.Seq, 10)}},
	}
}

// Micros converts a price in minor units of currency to micros of its
// major unit (12999 PLN = 129990000).
func Micros(priceMinor int, currency string) int64 {
	m := int64(priceMinor)
	for range 6 - records.MinorUnits(currency) {
		m *= 10
	}
	return m
}
