package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/connectors"
	"github.com/feedmill/feedmill/connectors/connectortest"
	"github.com/feedmill/feedmill/connectors/webhook"
)

const secret = "s3cret-for-tests"

// fakeReceiver is a webhook receiver that checks every request's shape,
// injects faults and applies items.
type fakeReceiver struct {
	t       testing.TB
	faults  *connectortest.Faults
	applied *connectortest.Applied
	delay   time.Duration // response time (benchmarks)

	mu        sync.Mutex
	keys      map[string]int
	requests  int
	repeatKey int
}

func newFakeReceiver(t testing.TB, faults *connectortest.Faults) *fakeReceiver {
	return &fakeReceiver{t: t, faults: faults, applied: &connectortest.Applied{}, keys: map[string]int{}}
}

func (f *fakeReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if problem := f.checkShape(r, body); problem != "" {
		f.t.Errorf("bad webhook request: %s", problem)
		http.Error(w, problem, http.StatusBadRequest)
		return
	}
	var p webhook.Payload
	_ = json.Unmarshal(body, &p) // checked by checkShape
	f.mu.Lock()
	f.requests++
	f.keys[r.Header.Get(webhook.HeaderIdempotency)]++
	if f.keys[r.Header.Get(webhook.HeaderIdempotency)] > 1 {
		f.repeatKey++
	}
	f.mu.Unlock()
	if f.delay > 0 {
		time.Sleep(f.delay) // the simulated partner's response time
	}
	fault := f.faults.Next()
	switch fault {
	case connectortest.Fault429:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "slow down", http.StatusTooManyRequests)
		return
	case connectortest.Fault500:
		http.Error(w, "boom", http.StatusInternalServerError)
		return
	case connectortest.FaultTimeout:
		f.faults.Stall(r.Context()) // never answer; the client gives up
		return
	}
	if r.Context().Err() != nil {
		return // the client gave up before the receiver got to the items
	}
	ans := webhook.Answer{Results: make([]webhook.AnswerItem, len(p.Items))}
	for i, it := range p.Items {
		ans.Results[i].OfferID = it.OfferID
		switch {
		case fault == connectortest.FaultPartial && f.faults.RetryItem():
			ans.Results[i].Status = "retry"
		case it.Op == "upsert" && connectortest.IsPoison(it.Offer.Offer.Title):
			ans.Results[i].Status, ans.Results[i].Message = "error", "title: prohibited word"
		case it.Op == "upsert":
			f.applied.Upsert(it.OfferID, connectortest.State{Seq: it.Seq, PriceMinor: it.Offer.Offer.PriceMinor, Title: it.Offer.Offer.Title})
			ans.Results[i].Status = "ok"
		default:
			f.applied.Delete(it.OfferID, it.Seq)
			ans.Results[i].Status = "ok"
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ans) // a failed write is the client's timeout
}

func (f *fakeReceiver) checkShape(r *http.Request, body []byte) string {
	if r.Method != http.MethodPost || r.URL.Path != "/hook" {
		return fmt.Sprintf("%s %s", r.Method, r.URL.Path)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		return "content type " + ct
	}
	if err := webhook.Verify([]byte(secret), r.Header, body, time.Now(), webhook.DefaultTolerance); err != nil {
		return "signature: " + err.Error()
	}
	var p webhook.Payload
	if err := json.Unmarshal(body, &p); err != nil {
		return "body: " + err.Error()
	}
	if len(p.Items) == 0 || len(p.Destinations) != 1 || p.Destinations[0] != connectortest.Destination {
		return fmt.Sprintf("payload %d items, destinations %v", len(p.Items), p.Destinations)
	}
	if got, want := r.Header.Get(webhook.HeaderIdempotency), webhook.IdempotencyKey(p.Items); got != want {
		return "idempotency key " + got + ", want " + want
	}
	seen := map[string]bool{}
	for _, it := range p.Items {
		if seen[it.OfferID] {
			return "offer twice in one request: " + it.OfferID
		}
		seen[it.OfferID] = true
		if it.OfferID == "" || it.Seq <= 0 || len(it.EventIDs) == 0 || it.EmittedAt.IsZero() || it.Cause == "" {
			return fmt.Sprintf("item %+v lacks id, seq, event ids, emitted_at or cause", it)
		}
		switch it.Op {
		case "upsert":
			if it.Offer == nil || it.Offer.Offer.ID != it.OfferID || len(it.Feeds) == 0 || it.Offer.Offer.Currency == "" {
				return "upsert without a matching offer or feeds: " + it.OfferID
			}
			if it.Action != "ADD" && it.Action != "UPDATE" && it.Action != "REFRESH" {
				return "upsert with action " + it.Action
			}
		case "delete":
			if it.Offer != nil || len(it.Feeds) != 0 || it.Action != "REMOVE" {
				return "delete with an offer, feeds or action " + it.Action + ": " + it.OfferID
			}
		default:
			return "op " + it.Op
		}
	}
	return ""
}

func TestWebhookConformance(t *testing.T) {
	faults := &connectortest.Faults{}
	recv := newFakeReceiver(t, faults)
	srv := httptest.NewServer(recv)
	defer srv.Close()
	defer faults.Release() // before Close: no handler may wait for a client that is gone
	rep := connectortest.Run(t, connectortest.Options{
		Applied: recv.applied,
		Faults:  faults,
		Configure: func(cfg *config.Connector) {
			cfg.Webhook.URL = srv.URL + "/hook"
			cfg.Webhook.Secret = secret
		},
		Build: func(cfg config.Connector) (connectors.Partner, error) {
			return webhook.New(cfg, srv.Client())
		},
		WantRetryAfter: time.Second,
		CheckSeq:       true,
	})
	recv.mu.Lock()
	defer recv.mu.Unlock()
	t.Logf("records %d (distinct events %d), requests %d, repeated idempotency keys %d, states applied %d, duplicates %d, retries %.0f, dead letters %d, faults %v",
		rep.Records, rep.Distinct, recv.requests, recv.repeatKey, rep.Applied, rep.Duplicates, rep.Retries, rep.DeadLetters, rep.Faults)
}

func TestStatusMapping(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   []connectors.Outcome
	}{
		{"empty 200 acks all", 200, "", []connectors.Outcome{connectors.Acked, connectors.Acked}},
		{"per item", 200, `{"results":[{"offer_id":"a","status":"error","message":"bad"},{"offer_id":"b","status":"retry"}]}`,
			[]connectors.Outcome{connectors.Permanent, connectors.Retryable}},
		{"missing item retried", 200, `{"results":[{"offer_id":"a","status":"ok"}]}`,
			[]connectors.Outcome{connectors.Acked, connectors.Retryable}},
		{"422 refuses all", 422, "invalid", []connectors.Outcome{connectors.Permanent, connectors.Permanent}},
		{"404 is a config problem", 404, "", []connectors.Outcome{connectors.Retryable, connectors.Retryable}},
		{"401 retried", 401, "", []connectors.Outcome{connectors.Retryable, connectors.Retryable}},
		{"503 retried", 503, "", []connectors.Outcome{connectors.Retryable, connectors.Retryable}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			cfg := config.DefaultConnector()
			cfg.Destinations = []string{"d"}
			cfg.Webhook.URL = srv.URL
			cfg.Webhook.Secret = secret
			p, err := webhook.New(cfg, srv.Client())
			if err != nil {
				t.Fatal(err)
			}
			res := p.Send(t.Context(), []connectors.Item{{OfferID: "a", Op: connectors.OpDelete}, {OfferID: "b", Op: connectors.OpDelete}})
			if len(res) != len(tc.want) {
				t.Fatalf("%d results", len(res))
			}
			for i, r := range res {
				if r.Outcome != tc.want[i] {
					t.Errorf("item %d: %v (%s), want %v", i, r.Outcome, r.Message, tc.want[i])
				}
			}
		})
	}
}

// BenchmarkConnectorThroughput drains ADD events into a receiver that
// answers after 10 ms, with the rate limit off and faults off.
func BenchmarkConnectorThroughput(b *testing.B) {
	recv := newFakeReceiver(b, &connectortest.Faults{Off: true})
	recv.delay = 10 * time.Millisecond
	srv := httptest.NewServer(recv)
	defer srv.Close()
	connectortest.Throughput(b, func(cfg config.Connector) (connectors.Partner, error) {
		return webhook.New(cfg, srv.Client())
	}, func(cfg *config.Connector) {
		cfg.Webhook.URL = srv.URL + "/hook"
		cfg.Webhook.Secret = secret
	})
}

// The signature covers the timestamp and the body; a receiver refuses a
// request signed longer ago than its tolerance (a replay) or with a
// changed timestamp, body or key.
func TestVerify(t *testing.T) {
	key := []byte(secret)
	now := time.Unix(1_760_000_000, 0)
	body := []byte(`{"items":[]}`)
	headers := func(ts int64, sig string) http.Header {
		h := http.Header{}
		h.Set(webhook.HeaderTimestamp, strconv.FormatInt(ts, 10))
		h.Set(webhook.HeaderSignature, sig)
		return h
	}
	ts := now.Unix()
	for _, tc := range []struct {
		name string
		h    http.Header
		body []byte
		want error
	}{
		{"valid", headers(ts, webhook.Sign(key, ts, body)), body, nil},
		{"valid at the tolerance", headers(ts-300, webhook.Sign(key, ts-300, body)), body, nil},
		{"replayed old request", headers(ts-301, webhook.Sign(key, ts-301, body)), body, webhook.ErrStaleTimestamp},
		{"far future", headers(ts+3600, webhook.Sign(key, ts+3600, body)), body, webhook.ErrStaleTimestamp},
		{"timestamp changed", headers(ts, webhook.Sign(key, ts-10, body)), body, webhook.ErrBadSignature},
		{"body changed", headers(ts, webhook.Sign(key, ts, body)), []byte(`{"items":[{}]}`), webhook.ErrBadSignature},
		{"other key", headers(ts, webhook.Sign([]byte("another-secret-of-16"), ts, body)), body, webhook.ErrBadSignature},
		{"body-only signature (old scheme)", headers(ts, oldSign(key, body)), body, webhook.ErrBadSignature},
		{"no timestamp", http.Header{webhook.HeaderSignature: {webhook.Sign(key, ts, body)}}, body, webhook.ErrNoSignature},
		{"bad timestamp", http.Header{webhook.HeaderSignature: {"x"}, webhook.HeaderTimestamp: {"soon"}}, body, webhook.ErrNoSignature},
		{"no signature", http.Header{webhook.HeaderTimestamp: {strconv.FormatInt(ts, 10)}}, body, webhook.ErrNoSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := webhook.Verify(key, tc.h, tc.body, now, webhook.DefaultTolerance)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Verify: %v, want %v", err, tc.want)
			}
		})
	}
}

func oldSign(key, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// The connector sends a timestamp from its clock and a signature over it
// that Verify accepts.
func TestSendSignsWithTimestamp(t *testing.T) {
	var gotTS string
	var verr error
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		gotTS = r.Header.Get(webhook.HeaderTimestamp)
		verr = webhook.Verify([]byte(secret), r.Header, body, time.Now(), webhook.DefaultTolerance)
	}))
	defer srv.Close()
	cfg := config.DefaultConnector()
	cfg.Destinations = []string{"d"}
	cfg.Webhook.URL, cfg.Webhook.Secret = srv.URL, secret
	p, err := webhook.New(cfg, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now().Unix()
	if res := p.Send(t.Context(), []connectors.Item{{OfferID: "a", Op: connectors.OpDelete}}); res[0].Outcome != connectors.Acked {
		t.Fatalf("result %+v", res[0])
	}
	ts, err := strconv.ParseInt(gotTS, 10, 64)
	if err != nil || ts < before || ts > time.Now().Unix() {
		t.Fatalf("timestamp header %q", gotTS)
	}
	if verr != nil {
		t.Fatalf("receiver: %v", verr)
	}
}

// New refuses an empty, whitespace or short secret with the key path.
func TestNewRefusesWeakSecret(t *testing.T) {
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ secret, file, wantPath string }{
		{"", file, "webhook.secret_file"},
		{"   ", "", "webhook.secret"},
		{"short", "", "webhook.secret"},
	} {
		cfg := config.DefaultConnector()
		cfg.Destinations = []string{"d"}
		cfg.Webhook.URL, cfg.Webhook.Secret, cfg.Webhook.SecretFile = "https://partner.example/hook", tc.secret, tc.file
		_, err := webhook.New(cfg, nil)
		if err == nil || !strings.Contains(err.Error(), tc.wantPath+": secret is") {
			t.Errorf("secret %q file %q: %v, want a %s problem", tc.secret, tc.file, err, tc.wantPath)
		}
	}
}
