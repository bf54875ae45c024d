package records

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
)

// testRegistry is an srfake registry with a counter of GET /schemas/ids
// requests and a Serde talking to it.
type testRegistry struct {
	reg     *srfake.Registry
	client  *sr.Client
	serde   *Serde
	fetches atomic.Int64
}

func newTestRegistry(t testing.TB) *testRegistry {
	t.Helper()
	tr := &testRegistry{reg: srfake.New()}
	t.Cleanup(tr.reg.Close)
	tr.reg.Intercept(func(_ http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/schemas/ids/") {
			tr.fetches.Add(1)
		}
		return false
	})
	cl, err := sr.NewClient(sr.URLs(tr.reg.URL()))
	if err != nil {
		t.Fatalf("new sr client: %v", err)
	}
	tr.client = cl
	tr.serde = NewSerde(cl)
	return tr
}

// registerText registers a schema text under subject directly in srfake.
func (tr *testRegistry) registerText(t testing.TB, subject, text string) int {
	t.Helper()
	id, _, err := tr.reg.RegisterSchema(subject, sr.Schema{Schema: text, Type: sr.TypeAvro})
	if err != nil {
		t.Fatalf("register %s: %v", subject, err)
	}
	return id
}

func ptr[T any](v T) *T { return &v }

func testTime() time.Time { return time.UnixMilli(1_760_000_000_123).UTC() }

func sampleOffer() Offer {
	o := Offer{
		ID:          "o-1",
		SellerID:    "s-1",
		ProductID:   ptr("p-1"),
		Title:       "Phone X",
		Description: "A phone. Żółć & <tags>",
		Category:    "Electronics/Phones/Smartphones",
		PriceMinor:  12999,
		Currency:    "PLN",
		Stock:       7,
		Condition:   "NEW",
		Status:      "ACTIVE",
		URL:         "https://example.com/o-1",
		Images:      []string{"https://img/1.jpg", "https://img/2.jpg"},
		Brand:       ptr("Acme"),
		GTIN:        nil,
		Attributes:  map[string]string{"colour": "black", "size": "M"},
		UpdatedAt:   testTime(),
		Version:     3,
	}
	DerivePrice(&o)
	return o
}

func sampleSeller() Seller {
	return Seller{ID: "s-1", Name: "Shop", Country: "PL", Status: "ACTIVE", SuperSeller: true, UpdatedAt: testTime(), Version: 2}
}

func sampleRating() Rating {
	return Rating{SellerID: "s-1", Average: 4.5, Count: 120, PositivePct: 98.5, UpdatedAt: testTime(), Version: 9}
}

func sampleEvent() FeedEvent {
	s, r := sampleSeller(), sampleRating()
	return FeedEvent{
		EventID:   "e-1",
		OfferID:   "o-1",
		Seq:       5,
		EmittedAt: testTime(),
		Cause:     CauseChange,
		Entries: []FeedEntry{
			{FeedID: "phones-gmc", Destination: "gmc-main", Action: ActionAdd},
			{FeedID: "all", Destination: "meta", Action: ActionUpdate},
		},
		ChangedFields: []string{"offer.price_minor", "seller.status"},
		Offer:         &OfferView{Offer: sampleOffer(), Seller: &s, Rating: &r},
	}
}

var bg = context.Background()
