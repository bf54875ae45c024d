package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/connectors"
	"github.com/feedmill/feedmill/internal/records"
)

// Header names of a webhook request.
const (
	// HeaderSignature is "sha256=" and the hex HMAC-SHA256, keyed with
	// the shared secret, of the timestamp, ".", and the raw body.
	HeaderSignature = "X-Feedmill-Signature"
	// HeaderTimestamp is when the request was signed, in unix seconds.
	HeaderTimestamp   = "X-Feedmill-Timestamp"
	HeaderIdempotency = "Idempotency-Key"
)

// DefaultTolerance is how far a receiver should let a request's
// timestamp be from its own clock (either way) before refusing it as a
// replay. The connector signs each attempt afresh, so a retry is never
// refused for its age.
const DefaultTolerance = 5 * time.Minute

// Errors of Verify. Receivers answer all of them with 401.
var (
	// ErrNoSignature: the signature or timestamp header is missing, or
	// the timestamp is not an integer.
	ErrNoSignature = errors.New("webhook: missing signature or timestamp")
	// ErrStaleTimestamp: the timestamp is further from now than the
	// tolerance: a replay of an old request, or a clock far off.
	ErrStaleTimestamp = errors.New("webhook: timestamp outside the tolerance")
	// ErrBadSignature: the signature does not match the body, the
	// timestamp and the secret.
	ErrBadSignature = errors.New("webhook: signature mismatch")
)

// maxAnswer bounds the answer body read from the receiver.
const maxAnswer = 4 << 20

// Payload is the JSON body of one webhook request.
type Payload struct {
	// Destinations are the connector's destinations.
	Destinations []string      `json:"destinations"`
	Items        []PayloadItem `json:"items"`
}

// PayloadItem is one offer's state. Op "upsert" carries Offer; op
// "delete" has none.
type PayloadItem struct {
	OfferID   string      `json:"offer_id"`
	Op        string      `json:"op"`     // upsert or delete
	Action    string      `json:"action"` // ADD, UPDATE, REFRESH, REMOVE
	Seq       int64       `json:"seq"`
	EventIDs  []string    `json:"event_ids"`
	EmittedAt time.Time   `json:"emitted_at"`
	Cause     string      `json:"cause"`
	Feeds     []FeedRef   `json:"feeds"` // the (feed, destination) pairs the offer is in now
	Offer     *OfferState `json:"offer,omitempty"`
}

// FeedRef names a feed and one of its destinations.
type FeedRef struct {
	FeedID      string `json:"feed_id"`
	Destination string `json:"destination"`
}

// OfferState is the joined view of an offer; field names are the Avro
// field names (docs/contract.md, Records), price is also given in major units.
type OfferState struct {
	Offer  Offer   `json:"offer"`
	Seller *Seller `json:"seller"`
	Rating *Rating `json:"rating"`
}

// Offer is records.Offer in JSON.
type Offer struct {
	ID          string            `json:"id"`
	SellerID    string            `json:"seller_id"`
	ProductID   *string           `json:"product_id"`
	Title       string            `json:"title"`
	Description string            `json:"description"`
	Category    string            `json:"category"`
	PriceMinor  int               `json:"price_minor"`
	Price       float64           `json:"price"`
	Currency    string            `json:"currency"`
	Stock       int               `json:"stock"`
	Condition   string            `json:"condition"`
	Status      string            `json:"status"`
	URL         string            `json:"url"`
	Images      []string          `json:"images"`
	Brand       *string           `json:"brand"`
	GTIN        *string           `json:"gtin"`
	Attributes  map[string]string `json:"attributes"`
	UpdatedAt   time.Time         `json:"updated_at"`
	Version     int64             `json:"version"`
}

// Seller is records.Seller in JSON.
type Seller struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Country     string    `json:"country"`
	Status      string    `json:"status"`
	SuperSeller bool      `json:"super_seller"`
	UpdatedAt   time.Time `json:"updated_at"`
	Version     int64     `json:"version"`
}

// Rating is records.Rating in JSON.
type Rating struct {
	SellerID    string    `json:"seller_id"`
	Average     float64   `json:"average"`
	Count       int64     `json:"count"`
	PositivePct float64   `json:"positive_pct"`
	UpdatedAt   time.Time `json:"updated_at"`
	Version     int64     `json:"version"`
}

// Answer is the optional JSON body of a 2xx answer that reports items one
// by one. An empty body, or one without results, acknowledges every item.
type Answer struct {
	Results []AnswerItem `json:"results"`
}

// AnswerItem is the receiver's verdict on one item.
type AnswerItem struct {
	OfferID string `json:"offer_id"`
	// Status: "ok" (applied), "retry" (transient; sent again later),
	// "error" (refused for good; dead-lettered with Message).
	Status            string `json:"status"`
	Message           string `json:"message,omitempty"`
	RetryAfterSeconds int    `json:"retry_after_seconds,omitempty"`
}

// Partner posts batches to a webhook URL. It is safe for concurrent use.
type Partner struct {
	url          string
	secret       []byte
	destinations []string
	client       *http.Client
	now          func() time.Time
}

// New builds the webhook partner from the connector config; hc nil means
// a default client (the runtime bounds every call with retry.timeout).
func New(cfg config.Connector, hc *http.Client) (*Partner, error) {
	if err := cfg.ValidatePartner(config.PartnerWebhook); err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	secret, err := cfg.Webhook.ResolveSecret()
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	if hc == nil {
		hc = &http.Client{}
	}
	return &Partner{url: cfg.Webhook.URL, secret: []byte(secret), destinations: cfg.Destinations, client: hc, now: time.Now}, nil
}

// Sign returns the X-Feedmill-Signature value of body sent with the
// X-Feedmill-Timestamp timestamp (unix seconds): "sha256=" and the hex
// HMAC-SHA256, keyed with secret, of the decimal timestamp, ".", and body.
func Sign(secret []byte, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(strconv.AppendInt(nil, timestamp, 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks the signature headers of a webhook request with the raw
// body: the timestamp must be within tolerance of now (either way) and
// the signature must match, compared in constant time. It returns nil,
// ErrNoSignature, ErrStaleTimestamp or ErrBadSignature (wrapped with the
// facts; use errors.Is). Call it before parsing the body.
func Verify(secret []byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	sig, tsText := h.Get(HeaderSignature), h.Get(HeaderTimestamp)
	if sig == "" || tsText == "" {
		return ErrNoSignature
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q", ErrNoSignature, tsText)
	}
	if age := now.Sub(time.Unix(ts, 0)); age > tolerance || age < -tolerance {
		return fmt.Errorf("%w: signed %s ago, tolerance %s", ErrStaleTimestamp, age.Truncate(time.Second), tolerance)
	}
	if !hmac.Equal([]byte(sig), []byte(Sign(secret, ts, body))) {
		return ErrBadSignature
	}
	return nil
}

// IdempotencyKey returns the Idempotency-Key of a payload: the hex SHA-256
// of every item's event ids, in order, each followed by a newline. A retry
// of the same items carries the same key.
func IdempotencyKey(items []PayloadItem) string {
	h := sha256.New()
	for _, it := range items {
		for _, id := range it.EventIDs {
			h.Write([]byte(id))
			h.Write([]byte{'\n'})
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Send posts items as one Payload and maps the answer to results.
func (p *Partner) Send(ctx context.Context, items []connectors.Item) []connectors.Result {
	payload := Payload{Destinations: p.destinations, Items: make([]PayloadItem, len(items))}
	for i := range items {
		payload.Items[i] = toPayload(&items[i])
	}
	body, err := json.Marshal(&payload)
	if err != nil {
		return connectors.All(len(items), connectors.Result{Outcome: connectors.Permanent, Message: "encode payload: " + err.Error()})
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return connectors.All(len(items), connectors.ErrorResult(fmt.Errorf("build request: %w", err)))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "feedmill-connector-webhook")
	req.Header.Set(HeaderIdempotency, IdempotencyKey(payload.Items))
	ts := p.now().Unix()
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(p.secret, ts, body))
	resp, err := p.client.Do(req)
	if err != nil {
		return connectors.All(len(items), connectors.ErrorResult(fmt.Errorf("post webhook: %w", err)))
	}
	defer resp.Body.Close()
	ans, readErr := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if readErr != nil && resp.StatusCode < 300 {
		return connectors.All(len(items), connectors.ErrorResult(fmt.Errorf("read webhook answer: %w", readErr)))
	}
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		msg := resp.Status
		if len(ans) > 0 {
			msg += ": " + string(truncate(ans, 512))
		}
		res := connectors.StatusResult(resp.StatusCode, resp.Header, msg, p.now())
		if resp.StatusCode == http.StatusNotFound {
			res.Outcome = connectors.Retryable // the URL is wrong, not the items
		}
		return connectors.All(len(items), res)
	}
	return answerResults(items, resp.StatusCode, ans)
}

func answerResults(items []connectors.Item, status int, body []byte) []connectors.Result {
	ok := connectors.Result{Outcome: connectors.Acked, Status: status}
	if len(bytes.TrimSpace(body)) == 0 {
		return connectors.All(len(items), ok)
	}
	var a Answer
	if err := json.Unmarshal(body, &a); err != nil {
		// The receiver took the request but its answer is unreadable:
		// send again, the idempotency key makes that safe.
		return connectors.All(len(items), connectors.Result{Outcome: connectors.Retryable, Status: status, Message: "decode webhook answer: " + err.Error()})
	}
	if a.Results == nil {
		return connectors.All(len(items), ok)
	}
	byID := make(map[string]AnswerItem, len(a.Results))
	for _, r := range a.Results {
		byID[r.OfferID] = r
	}
	out := make([]connectors.Result, len(items))
	for i := range items {
		r, found := byID[items[i].OfferID]
		switch {
		case !found:
			out[i] = connectors.Result{Outcome: connectors.Retryable, Status: status, Message: "no result for the item in the answer"}
		case r.Status == "ok":
			out[i] = ok
		case r.Status == "error":
			out[i] = connectors.Result{Outcome: connectors.Permanent, Status: status, Message: r.Message}
		default:
			out[i] = connectors.Result{Outcome: connectors.Retryable, Status: status, Message: r.Message,
				RetryAfter: time.Duration(r.RetryAfterSeconds) * time.Second}
		}
	}
	return out
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

func toPayload(it *connectors.Item) PayloadItem {
	p := PayloadItem{
		OfferID:   it.OfferID,
		Op:        it.Op.String(),
		Action:    it.Action,
		Seq:       it.Seq,
		EventIDs:  it.EventIDs,
		EmittedAt: it.EmittedAt.UTC(),
		Cause:     it.Cause,
		Feeds:     make([]FeedRef, len(it.Feeds)),
	}
	for i, f := range it.Feeds {
		p.Feeds[i] = FeedRef{FeedID: f.FeedID, Destination: f.Destination}
	}
	if it.Op == connectors.OpUpsert && it.Offer != nil {
		p.Offer = toOfferState(it.Offer)
	}
	return p
}

func toOfferState(v *records.OfferView) *OfferState {
	o := &v.Offer
	s := &OfferState{Offer: Offer{
		ID: o.ID, SellerID: o.SellerID, ProductID: o.ProductID, Title: o.Title,
		Description: o.Description, Category: o.Category, PriceMinor: o.PriceMinor,
		Price: o.Price, Currency: o.Currency, Stock: o.Stock, Condition: o.Condition,
		Status: o.Status, URL: o.URL, Images: o.Images, Brand: o.Brand, GTIN: o.GTIN,
		Attributes: o.Attributes, UpdatedAt: o.UpdatedAt.UTC(), Version: o.Version,
	}}
	if v.Seller != nil {
		sl := v.Seller
		s.Seller = &Seller{ID: sl.ID, Name: sl.Name, Country: sl.Country, Status: sl.Status,
			SuperSeller: sl.SuperSeller, UpdatedAt: sl.UpdatedAt.UTC(), Version: sl.Version}
	}
	if v.Rating != nil {
		r := v.Rating
		s.Rating = &Rating{SellerID: r.SellerID, Average: r.Average, Count: r.Count,
			PositivePct: r.PositivePct, UpdatedAt: r.UpdatedAt.UTC(), Version: r.Version}
	}
	return s
}
