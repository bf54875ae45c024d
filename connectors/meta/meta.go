package meta

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/connectors"
	"github.com/feedmill/feedmill/feeds/offerrules"
)

// MaxBatch is the Graph API's limit of requests per items_batch call.
const MaxBatch = 3000

// SeqLabelPrefix prefixes the internal_label that carries the feedmill
// seq of the state sent.
const SeqLabelPrefix = "feedmill_seq:"

// Request is one entry of the items_batch requests array.
type Request struct {
	Method string   `json:"method"` // UPDATE or DELETE
	Data   ItemData `json:"data"`
}

// ItemData is a PRODUCT_ITEM's fields; a DELETE carries the id only.
type ItemData struct {
	ID                  string   `json:"id"`
	Title               string   `json:"title,omitempty"`
	Description         string   `json:"description,omitempty"`
	Availability        string   `json:"availability,omitempty"`
	Condition           string   `json:"condition,omitempty"`
	Price               string   `json:"price,omitempty"` // "129.99 PLN"
	Link                string   `json:"link,omitempty"`
	ImageLink           string   `json:"image_link,omitempty"`
	AdditionalImageLink []string `json:"additional_image_link,omitempty"`
	Brand               string   `json:"brand,omitempty"`
	GTIN                string   `json:"gtin,omitempty"`
	InternalLabel       []string `json:"internal_label,omitempty"`
}

// BatchAnswer is the answer of items_batch.
type BatchAnswer struct {
	Handles []string `json:"handles"`
}

// StatusAnswer is the answer of check_batch_request_status.
type StatusAnswer struct {
	Data []BatchStatus `json:"data"`
}

// BatchStatus is one handle's status.
type BatchStatus struct {
	Status string      `json:"status"` // started, in_progress, finished
	Errors []ItemError `json:"errors"`
}

// ItemError is a per-item error of a finished batch.
type ItemError struct {
	ID      string `json:"id"`
	Message string `json:"message"`
}

// graphError is the Graph API's error body.
type graphError struct {
	Error struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    int    `json:"code"`
	} `json:"error"`
}

// Partner calls the Graph API catalog batch endpoints. Safe for concurrent
// use.
type Partner struct {
	base    string
	catalog string
	token   string
	poll    time.Duration
	client  *http.Client
	now     func() time.Time
}

// New builds the partner from cfg; hc nil means a default client.
func New(cfg config.Connector, hc *http.Client) (*Partner, error) {
	if err := cfg.ValidatePartner(config.PartnerMeta); err != nil {
		return nil, fmt.Errorf("meta: %w", err)
	}
	token, err := cfg.Meta.ResolveAccessToken()
	if err != nil {
		return nil, fmt.Errorf("meta: %w", err)
	}
	if hc == nil {
		hc = &http.Client{}
	}
	return &Partner{
		base:    strings.TrimSuffix(cfg.Meta.BaseURL, "/"),
		catalog: cfg.Meta.CatalogID,
		token:   token,
		poll:    cfg.Meta.PollInterval,
		client:  hc,
		now:     time.Now,
	}, nil
}

// MaxItems is MaxBatch.
func (p *Partner) MaxItems() int { return MaxBatch }

// Send posts one items_batch and waits for its status.
func (p *Partner) Send(ctx context.Context, items []connectors.Item) []connectors.Result {
	reqs := make([]Request, len(items))
	for i := range items {
		reqs[i] = ToRequest(&items[i])
	}
	rb, err := json.Marshal(reqs)
	if err != nil {
		return connectors.All(len(items), connectors.Result{Outcome: connectors.Permanent, Message: "encode requests: " + err.Error()})
	}
	form := url.Values{
		"item_type":    {"PRODUCT_ITEM"},
		"allow_upsert": {"true"},
		"requests":     {string(rb)},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+"/"+url.PathEscape(p.catalog)+"/items_batch",
		strings.NewReader(form.Encode()))
	if err != nil {
		return connectors.All(len(items), connectors.ErrorResult(fmt.Errorf("build request: %w", err)))
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var ba BatchAnswer
	if res, ok := p.do(req, &ba); !ok {
		return connectors.All(len(items), res)
	}
	if len(ba.Handles) == 0 {
		return connectors.All(len(items), connectors.Result{Outcome: connectors.Retryable, Status: http.StatusOK, Message: "items_batch answered no handle"})
	}
	itemErrs := make(map[string]string)
	for _, h := range ba.Handles {
		if res, ok := p.wait(ctx, h, itemErrs); !ok {
			return connectors.All(len(items), res)
		}
	}
	out := make([]connectors.Result, len(items))
	for i := range items {
		if msg, bad := itemErrs[items[i].OfferID]; bad {
			out[i] = connectors.Result{Outcome: connectors.Permanent, Status: http.StatusOK, Message: msg}
		} else {
			out[i] = connectors.Result{Outcome: connectors.Acked, Status: http.StatusOK}
		}
	}
	return out
}

// wait polls one handle until it is finished and collects its item errors.
// A failed poll is retried until ctx ends; then the items are Retryable.
func (p *Partner) wait(ctx context.Context, handle string, itemErrs map[string]string) (connectors.Result, bool) {
	u := p.base + "/" + url.PathEscape(p.catalog) + "/check_batch_request_status?" + url.Values{"handle": {handle}}.Encode()
	last := connectors.Result{Outcome: connectors.Retryable, Message: "batch " + handle + " not finished"}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return connectors.ErrorResult(fmt.Errorf("build request: %w", err)), false
		}
		var sa StatusAnswer
		res, ok := p.do(req, &sa)
		switch {
		case ok && len(sa.Data) > 0 && sa.Data[0].Status == "finished":
			for _, d := range sa.Data {
				for _, e := range d.Errors {
					itemErrs[e.ID] = e.Message
				}
			}
			return connectors.Result{}, true
		case !ok && res.Outcome == connectors.Permanent:
			return res, false
		case !ok:
			last = res
		}
		t := time.NewTimer(p.poll)
		select {
		case <-ctx.Done():
			t.Stop()
			last.Outcome = connectors.Retryable
			last.Message = "batch " + handle + " status unknown: " + ctx.Err().Error() + "; last: " + last.Message
			return last, false
		case <-t.C:
		}
	}
}

// retryableCodes are Graph API error codes for throttling and transient
// errors (sent with HTTP 400 or 5xx).
func retryableCode(code int) bool {
	switch code {
	case 1, 2, 4, 17, 32, 341, 613, 80004, 80014:
		return true
	}
	return false
}

// do sends req with the token and decodes a 2xx JSON answer into dst.
func (p *Partner) do(req *http.Request, dst any) (connectors.Result, bool) {
	req.Header.Set("Authorization", "Bearer "+p.token)
	resp, err := p.client.Do(req)
	if err != nil {
		return connectors.ErrorResult(fmt.Errorf("graph api: %w", err)), false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return connectors.ErrorResult(fmt.Errorf("read graph answer: %w", err)), false
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if err := json.Unmarshal(body, dst); err != nil {
			return connectors.Result{Outcome: connectors.Retryable, Status: resp.StatusCode, Message: "decode graph answer: " + err.Error()}, false
		}
		return connectors.Result{}, true
	}
	var ge graphError
	msg := resp.Status
	if json.Unmarshal(body, &ge) == nil && ge.Error.Message != "" {
		msg = ge.Error.Type + " (" + strconv.Itoa(ge.Error.Code) + "): " + ge.Error.Message
	}
	res := connectors.StatusResult(resp.StatusCode, resp.Header, msg, p.now())
	if retryableCode(ge.Error.Code) {
		res.Outcome = connectors.Retryable
	}
	return res, false
}

// ToRequest maps an item to its items_batch request. Availability and
// price follow offerrules, as the meta-catalog template does, so an offer
// reads the same in the XML feed and through the API.
func ToRequest(it *connectors.Item) Request {
	if it.Op != connectors.OpUpsert || it.Offer == nil {
		return Request{Method: "DELETE", Data: ItemData{ID: it.OfferID}}
	}
	o := &it.Offer.Offer
	d := ItemData{
		ID:            it.OfferID,
		Title:         o.Title,
		Description:   o.Description,
		Availability:  "out of stock",
		Condition:     strings.ToLower(o.Condition),
		Price:         string(offerrules.AppendPrice(nil, o.PriceMinor, o.Currency)),
		Link:          o.URL,
		InternalLabel: []string{SeqLabelPrefix + strconv.FormatInt(it.Seq, 10)},
	}
	if offerrules.InStock(o) {
		d.Availability = "in stock"
	}
	if len(o.Images) > 0 {
		d.ImageLink = o.Images[0]
		d.AdditionalImageLink = o.Images[1:]
	}
	if o.Brand != nil {
		d.Brand = *o.Brand
	}
	if o.GTIN != nil {
		d.GTIN = *o.GTIN
	}
	return Request{Method: "UPDATE", Data: d}
}
