package connectors

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/feedmill/feedmill/internal/records"
)

// Op is what the partner must do with an item.
type Op uint8

const (
	// OpUpsert creates or replaces the offer in the partner's catalog.
	OpUpsert Op = iota + 1
	// OpDelete removes the offer from the partner's catalog. Deleting an
	// offer the partner does not hold must succeed.
	OpDelete
)

// String returns "upsert" or "delete".
func (o Op) String() string {
	switch o {
	case OpUpsert:
		return "upsert"
	case OpDelete:
		return "delete"
	}
	return "unknown"
}

// Item is the collapsed state of one offer that a batch sends to the partner.
// Items are owned by the Runtime; a Partner may read them during Send only.
type Item struct {
	// OfferID is the offer's id (the partner's item id).
	OfferID string
	// Op says whether to upsert or delete.
	Op Op
	// Action is the event action this item stands for, for metrics and
	// payloads: ADD (the offer enters the connector's catalog), UPDATE,
	// REFRESH, or REMOVE (it leaves it).
	Action string
	// Seq is the seq of the last event collapsed into this item.
	Seq int64
	// EventIDs are the ids of the events collapsed into this item, oldest
	// first; the last one is the state sent.
	EventIDs []string
	// EmittedAt is the emission time of the last event.
	EmittedAt time.Time
	// Cause is the cause of the last event.
	Cause string
	// Entries are the entries of the collapsed events that name one of the
	// connector's destinations, oldest first.
	Entries []records.FeedEntry
	// Feeds are the (feed, destination) pairs the offer is in after this
	// item, sorted; empty for OpDelete.
	Feeds []records.FeedEntry
	// Offer is the joined state to upsert; nil for OpDelete.
	Offer *records.OfferView
}

// Outcome classifies the partner's answer for one item.
type Outcome uint8

const (
	// Acked: the partner applied the item.
	Acked Outcome = iota
	// Retryable: a transient failure (429, 5xx, timeout, network); the
	// Runtime retries the item with backoff.
	Retryable
	// Permanent: the partner refused the item for good (a validation
	// error); the Runtime dead-letters its records and goes on.
	Permanent
)

// String names the outcome.
func (o Outcome) String() string {
	switch o {
	case Acked:
		return "acked"
	case Retryable:
		return "retryable"
	case Permanent:
		return "permanent"
	}
	return "unknown"
}

// Result is the partner's answer for one item.
type Result struct {
	Outcome Outcome
	// Status is the HTTP status code behind the outcome, 0 when there was
	// no response (network error, timeout).
	Status int
	// RetryAfter is the delay the partner asked for (Retry-After); the
	// Runtime waits at least this long before retrying.
	RetryAfter time.Duration
	// Message is the partner's error message; it becomes the dead letter's
	// error header. It must not contain secrets.
	Message string
}

// Partner delivers items to one partner API. It is the interface a
// connector team implements (see docs/connectors.md).
//
// Send must return exactly one Result per item, in order. It is called
// from up to Concurrency goroutines at once, so it must be safe for
// concurrent use. ctx carries the per-call timeout (retry.timeout) and
// must bound every request Send makes, token fetches and status polls
// included; a call that runs out of time reports Retryable for the items
// it could not confirm. A Send still running well after its deadline is
// abandoned by the Runtime (its items are retried). Send never retries by
// itself: the Runtime owns retries, backoff and the rate limit.
type Partner interface {
	Send(ctx context.Context, items []Item) []Result
}

// BatchLimiter is an optional interface a Partner implements when one Send
// call must not carry more than MaxItems items (Meta allows 3000 per
// request, for example). Without it the Runtime sends at most
// batch.max_items items per call.
type BatchLimiter interface {
	MaxItems() int
}

// All returns n copies of r; a helper for partners whose whole request
// failed or succeeded.
func All(n int, r Result) []Result {
	out := make([]Result, n)
	for i := range out {
		out[i] = r
	}
	return out
}

// ErrorResult is the Result for a request that got no HTTP response
// (network error, timeout): always Retryable.
func ErrorResult(err error) Result {
	return Result{Outcome: Retryable, Message: err.Error()}
}

// StatusResult classifies an HTTP response status: 2xx Acked; 401, 403
// (credentials, which an operator fixes), 408, 425, 429 and 5xx Retryable
// with the Retry-After header honoured; any other status Permanent with
// msg as the message.
func StatusResult(status int, h http.Header, msg string, now time.Time) Result {
	switch {
	case status >= 200 && status < 300:
		return Result{Outcome: Acked, Status: status}
	case status == http.StatusUnauthorized, status == http.StatusForbidden,
		status == http.StatusRequestTimeout, status == http.StatusTooEarly,
		status == http.StatusTooManyRequests, status >= 500:
		return Result{Outcome: Retryable, Status: status, RetryAfter: RetryAfter(h, now), Message: msg}
	default:
		return Result{Outcome: Permanent, Status: status, Message: msg}
	}
}

// RetryAfter parses a Retry-After header (delay-seconds or HTTP-date)
// relative to now; 0 when absent or unparsable.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
