package feeds

import (
	"testing"
	"time"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/internal/records"
)

func strp(s string) *string { return &s }

var testNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// testOffer is a complete, ordinary offer.
func testOffer() *records.Offer {
	o := &records.Offer{
		ID:          "offer-1",
		SellerID:    "seller-1",
		Title:       "Phone X 128 GB",
		Description: "A phone.",
		Category:    "Electronics/Phones/Smartphones",
		PriceMinor:  12999,
		Currency:    "PLN",
		Stock:       5,
		Condition:   "NEW",
		Status:      "ACTIVE",
		URL:         "https://shop.example/o/1",
		Images:      []string{"https://img.example/1.jpg", "https://img.example/2.jpg"},
		Brand:       strp("Apple"),
		GTIN:        strp("0194253000000"),
		Attributes:  map[string]string{"colour": "black", "size": "6.1"},
		UpdatedAt:   testNow.Add(-time.Hour),
		Version:     7,
	}
	records.DerivePrice(o)
	return o
}

func testSeller() *records.Seller {
	return &records.Seller{ID: "seller-1", Name: "Good Shop", Country: "PL", Status: "ACTIVE", UpdatedAt: testNow, Version: 3}
}

func testRating() *records.Rating {
	return &records.Rating{SellerID: "seller-1", Average: 4.6, Count: 120, PositivePct: 98.5, UpdatedAt: testNow, Version: 2}
}

func mustCompile(t testing.TB, feeds []config.Feed, templates []config.Template) *Set {
	t.Helper()
	s, err := Compile(feeds, templates)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return s
}
