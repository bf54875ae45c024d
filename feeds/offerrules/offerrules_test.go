package offerrules_test

import (
	"testing"

	"github.com/feedmill/feedmill/feeds/offerrules"
	"github.com/feedmill/feedmill/internal/records"
)

func TestInStock(t *testing.T) {
	tests := []struct {
		status string
		stock  int
		want   bool
	}{
		{"ACTIVE", 5, true}, {"ACTIVE", 1, true}, {"ACTIVE", 0, false}, {"ACTIVE", -1, false},
		{"INACTIVE", 5, false}, {"ENDED", 5, false}, {"", 5, false},
	}
	for _, tc := range tests {
		if got := offerrules.InStock(&records.Offer{Status: tc.status, Stock: tc.stock}); got != tc.want {
			t.Errorf("InStock(status %q, stock %d) = %v, want %v", tc.status, tc.stock, got, tc.want)
		}
	}
}

func TestAppendPrice(t *testing.T) {
	tests := []struct {
		minor    int
		currency string
		want     string // the amount; AppendPrice adds " " + currency
	}{
		{12999, "PLN", "129.99"}, {5, "PLN", "0.05"}, {100, "EUR", "1.00"}, {0, "PLN", "0.00"},
		{12999, "JPY", "12999"}, {0, "JPY", "0"}, {5, "KWD", "0.005"}, {12345, "KWD", "12.345"},
		{1, "CLF", "0.0001"}, {-250, "PLN", "-2.50"}, {-5, "PLN", "-0.05"}, {12999, "XXQ", "129.99"},
	}
	for _, tc := range tests {
		if got := string(offerrules.AppendAmount(nil, tc.minor, tc.currency)); got != tc.want {
			t.Errorf("AppendAmount(%d, %s) = %q, want %q", tc.minor, tc.currency, got, tc.want)
		}
		if got, want := string(offerrules.AppendPrice([]byte("x"), tc.minor, tc.currency)), "x"+tc.want+" "+tc.currency; got != want {
			t.Errorf("AppendPrice(%d, %s) = %q, want %q", tc.minor, tc.currency, got, want)
		}
	}
}

func TestAppendProductType(t *testing.T) {
	tests := []struct {
		category string
		want     string
		ok       bool
	}{
		{"Electronics/Phones/Smartphones", "Electronics > Phones > Smartphones", true},
		{" Electronics / Phones /\tSmartphones ", "Electronics > Phones > Smartphones", true},
		{"Electronics//Phones/", "Electronics > Phones", true},
		{"/Home & Garden/", "Home & Garden", true},
		{"Books", "Books", true},
		{"", "", false},
		{" / /", "", false},
	}
	for _, tc := range tests {
		got, ok := offerrules.AppendProductType([]byte("x"), tc.category)
		if string(got) != "x"+tc.want || ok != tc.ok {
			t.Errorf("AppendProductType(%q) = %q, %v; want %q, %v", tc.category, got[1:], ok, tc.want, tc.ok)
		}
	}
}

func TestAppendNoAllocs(t *testing.T) {
	o := &records.Offer{Category: " Electronics / Phones / Smartphones ", PriceMinor: 12999, Currency: "PLN", Status: "ACTIVE", Stock: 1}
	buf := make([]byte, 0, 128)
	allocs := testing.AllocsPerRun(100, func() {
		b := offerrules.AppendPrice(buf[:0], o.PriceMinor, o.Currency)
		b, _ = offerrules.AppendProductType(b, o.Category)
		_ = offerrules.InStock(o)
		_ = b
	})
	if allocs != 0 {
		t.Errorf("%v allocs per run, want 0", allocs)
	}
}
