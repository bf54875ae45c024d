package merchant_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/connectors"
	"github.com/feedmill/feedmill/connectors/connectortest"
	"github.com/feedmill/feedmill/connectors/merchant"
)

const (
	account    = "123456"
	dataSource = "ds-feedmill"
	email      = "feedmill@project.iam.gserviceaccount.com"
)

// fakeMerchant is the Merchant API and Google's token endpoint.
type fakeMerchant struct {
	t       testing.TB
	faults  *connectortest.Faults
	applied *connectortest.Applied
	tokens  atomic.Int64
	held    map[string]bool // guarded by applied's order: only touched under mu below
	mu      chan struct{}
}

func newFake(t testing.TB, faults *connectortest.Faults) *fakeMerchant {
	f := &fakeMerchant{t: t, faults: faults, applied: &connectortest.Applied{}, held: map[string]bool{}, mu: make(chan struct{}, 1)}
	return f
}

func (f *fakeMerchant) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/token" {
		f.token(w, r)
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer tok-") {
		f.t.Errorf("request without the access token: %s %s", r.Method, r.URL)
		http.Error(w, `{"error":{"code":401,"message":"no token","status":"UNAUTHENTICATED"}}`, http.StatusUnauthorized)
		return
	}
	if got, want := r.URL.Query().Get("dataSource"), "accounts/"+account+"/dataSources/"+dataSource; got != want {
		f.t.Errorf("dataSource %q, want %q", got, want)
	}
	prefix := "/products/v1/accounts/" + account + "/productInputs"
	// Read the whole body first: the server notices a client that gave
	// up only once the body is consumed.
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	switch fault := f.faults.Next(); fault {
	case connectortest.Fault429, connectortest.FaultPartial:
		w.Header().Set("Retry-After", "1")
		http.Error(w, `{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED"}}`, http.StatusTooManyRequests)
		return
	case connectortest.Fault500:
		http.Error(w, `{"error":{"code":500,"message":"internal","status":"INTERNAL"}}`, http.StatusInternalServerError)
		return
	case connectortest.FaultTimeout:
		f.faults.Stall(r.Context()) // the suite reports a client that never gives up
		return
	}
	f.mu <- struct{}{}
	defer func() { <-f.mu }()
	if r.Context().Err() != nil {
		return // the client gave up while the request waited its turn
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == prefix+":insert":
		var in merchant.ProductInput
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			f.t.Errorf("insert body: %v", err)
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		a := in.ProductAttributes
		micros, err := strconv.ParseInt(a.Price.AmountMicros, 10, 64)
		if in.OfferID == "" || in.ContentLanguage != "pl" || in.FeedLabel != "PL" || a.Link == "" || a.Title == "" ||
			err != nil || micros <= 0 || micros%10000 != 0 || a.Price.CurrencyCode != "PLN" ||
			(a.Availability != "IN_STOCK" && a.Availability != "OUT_OF_STOCK") ||
			len(in.CustomAttributes) != 1 || in.CustomAttributes[0].Name != merchant.SeqAttribute {
			f.t.Errorf("bad product input: %+v", in)
			http.Error(w, "bad input", http.StatusBadRequest)
			return
		}
		if connectortest.IsPoison(a.Title) {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":{"code":400,"message":"[title] prohibited content","status":"INVALID_ARGUMENT"}}`)
			return
		}
		seq, _ := strconv.ParseInt(in.CustomAttributes[0].Value, 10, 64) // checked by the seq assertions
		f.applied.Upsert(in.OfferID, connectortest.State{Seq: seq, PriceMinor: int(micros / 10000), Title: a.Title})
		f.held[in.OfferID] = true
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"name": "accounts/" + account + "/productInputs/pl~PL~" + in.OfferID, "offerId": in.OfferID})
	case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, prefix+"/"):
		name := strings.TrimPrefix(r.URL.Path, prefix+"/")
		parts := strings.Split(name, "~")
		if len(parts) != 3 || parts[0] != "pl" || parts[1] != "PL" {
			f.t.Errorf("bad product input name %q", name)
			http.Error(w, "bad name", http.StatusBadRequest)
			return
		}
		if !f.held[parts[2]] {
			http.Error(w, `{"error":{"code":404,"message":"not found","status":"NOT_FOUND"}}`, http.StatusNotFound)
			return
		}
		delete(f.held, parts[2])
		f.applied.Delete(parts[2], 0)
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "{}")
	default:
		f.t.Errorf("unexpected request %s %s", r.Method, r.URL)
		http.Error(w, "no route", http.StatusNotFound)
	}
}

// token checks the two-legged JWT grant and hands out a token.
func (f *fakeMerchant) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.Form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		f.t.Errorf("token request grant %q", r.Form.Get("grant_type"))
		http.Error(w, "bad grant", http.StatusBadRequest)
		return
	}
	parts := strings.Split(r.Form.Get("assertion"), ".")
	var claims struct {
		Iss   string `json:"iss"`
		Scope string `json:"scope"`
	}
	if len(parts) != 3 {
		f.t.Errorf("assertion is not a JWT")
		return
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || json.Unmarshal(raw, &claims) != nil || claims.Iss != email || claims.Scope != merchant.Scope {
		f.t.Errorf("assertion claims %s", raw)
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":"tok-%d","token_type":"Bearer","expires_in":3600}`, f.tokens.Add(1))
}

func writeKey(t *testing.T, tokenURL string) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := json.Marshal(map[string]string{
		"type": "service_account", "client_email": email, "private_key_id": "kid-1",
		"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"token_uri":   tokenURL,
	})
	path := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(path, key, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func configure(srv *httptest.Server, keyFile string) func(*config.Connector) {
	return func(cfg *config.Connector) {
		cfg.Merchant.BaseURL = srv.URL
		cfg.Merchant.AccountID = account
		cfg.Merchant.DataSource = dataSource
		cfg.Merchant.ContentLanguage = "pl"
		cfg.Merchant.FeedLabel = "PL"
		cfg.Merchant.CredentialsFile = keyFile
		cfg.Concurrency = 8
	}
}

func TestMerchantConformance(t *testing.T) {
	faults := &connectortest.Faults{}
	fake := newFake(t, faults)
	srv := httptest.NewServer(fake)
	defer srv.Close()
	defer faults.Release() // before Close: no handler may wait for a client that is gone
	keyFile := writeKey(t, srv.URL+"/token")
	rep := connectortest.Run(t, connectortest.Options{
		Applied:   fake.applied,
		Faults:    faults,
		Configure: configure(srv, keyFile),
		Build: func(cfg config.Connector) (connectors.Partner, error) {
			return merchant.New(cfg, srv.Client())
		},
		Offers:         80,
		Steps:          700,
		WantRetryAfter: time.Second,
	})
	if fake.tokens.Load() == 0 {
		t.Error("no access token was requested")
	}
	t.Logf("records %d, states applied %d, duplicates %d, retries %.0f, dead letters %d, tokens %d, faults %v",
		rep.Records, rep.Applied, rep.Duplicates, rep.Retries, rep.DeadLetters, fake.tokens.Load(), rep.Faults)
}

func TestMicros(t *testing.T) {
	for _, tc := range []struct {
		minor    int
		currency string
		want     int64
	}{
		{12999, "PLN", 129_990_000},
		{12999, "JPY", 12_999_000_000},
		{1234, "KWD", 1_234_000},
	} {
		if got := merchant.Micros(tc.minor, tc.currency); got != tc.want {
			t.Errorf("Micros(%d, %s) = %d, want %d", tc.minor, tc.currency, got, tc.want)
		}
	}
}

// TestTokenEndpointNeverAnswers: a token endpoint that holds the request
// must not hold Send past its context, nor the token fetch past
// retry.timeout.
func TestTokenEndpointNeverAnswers(t *testing.T) {
	faults := &connectortest.Faults{}
	var tokenCalls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			tokenCalls.Add(1)
			faults.Stall(r.Context())
			return
		}
		t.Errorf("API request %s %s without a token", r.Method, r.URL)
	}))
	defer srv.Close()
	defer faults.Release()
	cfg := config.DefaultConnector()
	cfg.Destinations = []string{"d"}
	cfg.Retry.Timeout = 200 * time.Millisecond
	configure(srv, writeKey(t, srv.URL+"/token"))(&cfg)
	p, err := merchant.New(cfg, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		timeout time.Duration
	}{
		{"send deadline before the token client's", 50 * time.Millisecond},
		{"token client's timeout first", time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), tc.timeout)
			defer cancel()
			start := time.Now()
			res := p.Send(ctx, []connectors.Item{{OfferID: "o-1", Op: connectors.OpDelete, Action: "REMOVE"}})
			if took := time.Since(start); took > 10*time.Second {
				t.Fatalf("Send took %s", took)
			}
			if len(res) != 1 || res[0].Outcome != connectors.Retryable || res[0].Status != 0 {
				t.Fatalf("results %+v, want one Retryable without status", res)
			}
		})
	}
	if faults.Overdue() != 0 || tokenCalls.Load() == 0 {
		t.Fatalf("token requests %d, overdue %d: the token fetch must give up after retry.timeout", tokenCalls.Load(), faults.Overdue())
	}
}

// The bearer token follows a redirect on the same host and is dropped on
// a redirect to another host (here another port: both servers listen on
// 127.0.0.1).
func TestTokenNotSentAcrossRedirect(t *testing.T) {
	var gotAuth atomic.Pointer[string]
	record := func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		gotAuth.Store(&auth)
		w.WriteHeader(http.StatusOK)
	}
	other := httptest.NewServer(http.HandlerFunc(record))
	defer other.Close()
	var origin *httptest.Server
	origin = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/final/"):
			record(w, r)
		case strings.HasPrefix(r.URL.Path, "/same-host/"):
			http.Redirect(w, r, origin.URL+"/final"+r.URL.RequestURI(), http.StatusTemporaryRedirect)
		default:
			http.Redirect(w, r, other.URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
		}
	}))
	defer origin.Close()

	for _, tc := range []struct {
		name, base, want string
	}{
		{"other host", origin.URL, ""},
		{"same host", origin.URL + "/same-host", "Bearer tok-static"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gotAuth.Store(nil)
			cfg := config.DefaultConnector()
			cfg.Merchant.BaseURL = tc.base
			cfg.Merchant.AccountID = account
			cfg.Merchant.DataSource = dataSource
			ts := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "tok-static", TokenType: "Bearer"})
			p := merchant.NewWithTokenSource(cfg, ts, nil)
			res := p.Send(t.Context(), []connectors.Item{{OfferID: "o-1", Op: connectors.OpDelete}})
			if res[0].Outcome != connectors.Acked {
				t.Fatalf("result %+v", res[0])
			}
			got := gotAuth.Load()
			if got == nil {
				t.Fatal("the redirect target was not reached")
			}
			if *got != tc.want {
				t.Fatalf("Authorization at the redirect target = %q, want %q", *got, tc.want)
			}
		})
	}
}
