package records

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

func attrs(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m["k"+strconv.Itoa(i)] = "v"
	}
	return m
}

// The reasons name the bounds they enforce.
func TestBoundReasons(t *testing.T) {
	for reason, bound := range map[string]int{
		ReasonIDTooLong: MaxIDBytes, ReasonSellerIDTooLong: MaxIDBytes, ReasonProductIDTooLong: MaxIDBytes,
		ReasonTooManyImages: MaxImages, ReasonTooManyAttributes: MaxAttributes,
	} {
		if !strings.Contains(reason, " "+strconv.Itoa(bound)+" ") {
			t.Errorf("reason %q does not name its bound %d", reason, bound)
		}
	}
}

// Oversized records decode (the Avro decoder's own limits are far
// looser) and are then rejected by the validators, so they reach the
// rejects topic like any invalid record.
func TestBoundsAfterDecode(t *testing.T) {
	tr := newTestRegistry(t)
	id := tr.registerText(t, "offers-value", tr.serde.SchemaText(KindOffer))
	tests := []struct {
		name   string
		edit   func(o *Offer)
		reason string
	}{
		{"70,000-byte seller id", func(o *Offer) { o.SellerID = strings.Repeat("s", 70_000) }, ReasonSellerIDTooLong},
		{"70,000-byte offer id", func(o *Offer) { o.ID = strings.Repeat("o", 70_000) }, ReasonIDTooLong},
		{"too many images", func(o *Offer) { o.Images = make([]string, MaxImages+1) }, ReasonTooManyImages},
		{"too many attributes", func(o *Offer) { o.Attributes = attrs(MaxAttributes + 1) }, ReasonTooManyAttributes},
		{"long description", func(o *Offer) { o.Description = strings.Repeat("d", MaxDescriptionBytes+1) }, "description over 65536 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := sampleOffer()
			tt.edit(&o)
			b, err := tr.serde.AppendOffer(nil, id, &o)
			if err != nil {
				t.Fatal(err)
			}
			var got Offer
			if err := tr.serde.DecodeOffer(bg, b, &got); err != nil {
				t.Fatalf("decode: %v", err)
			}
			checkReason(t, ValidateOffer([]byte(got.ID), &got), tt.reason)
		})
	}
}

func TestValidateOffer(t *testing.T) {
	tests := []struct {
		name   string
		key    string
		edit   func(o *Offer)
		reason string // "" = valid
	}{
		{"valid", "o-1", func(*Offer) {}, ""},
		{"zero price and stock are valid", "o-1", func(o *Offer) { o.PriceMinor, o.Stock = 0, 0 }, ""},
		{"missing id", "", func(o *Offer) { o.ID = "" }, ReasonMissingID},
		{"key differs", "o-2", func(*Offer) {}, ReasonKeyMismatch},
		{"missing seller", "o-1", func(o *Offer) { o.SellerID = "" }, ReasonMissingSellerID},
		{"negative price", "o-1", func(o *Offer) { o.PriceMinor = -1 }, ReasonNegativePrice},
		{"negative stock", "o-1", func(o *Offer) { o.Stock = -1 }, ReasonNegativeStock},
		{"stock beyond avro int", "o-1", func(o *Offer) { o.Stock = math.MaxInt32 + 1 }, ReasonStockRange},
		{"lower-case currency", "o-1", func(o *Offer) { o.Currency = "pln" }, ReasonBadCurrency},
		{"short currency", "o-1", func(o *Offer) { o.Currency = "PL" }, ReasonBadCurrency},
		{"empty currency", "o-1", func(o *Offer) { o.Currency = "" }, ReasonBadCurrency},
		{"zero version", "o-1", func(o *Offer) { o.Version = 0 }, ReasonBadVersion},
		{"negative version", "o-1", func(o *Offer) { o.Version = -4 }, ReasonBadVersion},
		{"id at bound", strings.Repeat("i", MaxIDBytes), func(o *Offer) { o.ID = strings.Repeat("i", MaxIDBytes) }, ""},
		{"id over bound", strings.Repeat("i", MaxIDBytes+1), func(o *Offer) { o.ID = strings.Repeat("i", MaxIDBytes+1) }, ReasonIDTooLong},
		{"seller id over bound", "o-1", func(o *Offer) { o.SellerID = strings.Repeat("s", 70_000) }, ReasonSellerIDTooLong},
		{"product id over bound", "o-1", func(o *Offer) { o.ProductID = ptr(strings.Repeat("p", MaxIDBytes+1)) }, ReasonProductIDTooLong},
		{"images at bound", "o-1", func(o *Offer) { o.Images = make([]string, MaxImages) }, ""},
		{"too many images", "o-1", func(o *Offer) { o.Images = make([]string, MaxImages+1) }, ReasonTooManyImages},
		{"attributes at bound", "o-1", func(o *Offer) { o.Attributes = attrs(MaxAttributes) }, ""},
		{"too many attributes", "o-1", func(o *Offer) { o.Attributes = attrs(MaxAttributes + 1) }, ReasonTooManyAttributes},
		{"description at bound", "o-1", func(o *Offer) { o.Description = strings.Repeat("d", MaxDescriptionBytes) }, ""},
		{"description over bound", "o-1", func(o *Offer) { o.Description = strings.Repeat("d", MaxDescriptionBytes+1) }, "description over 65536 bytes"},
		{"title over bound", "o-1", func(o *Offer) { o.Title = strings.Repeat("t", MaxTextBytes+1) }, "title over 8192 bytes"},
		{"category over bound", "o-1", func(o *Offer) { o.Category = strings.Repeat("c", MaxTextBytes+1) }, "category over 8192 bytes"},
		{"url over bound", "o-1", func(o *Offer) { o.URL = strings.Repeat("u", MaxTextBytes+1) }, "url over 8192 bytes"},
		{"brand over bound", "o-1", func(o *Offer) { o.Brand = ptr(strings.Repeat("b", MaxTextBytes+1)) }, "brand over 8192 bytes"},
		{"gtin over bound", "o-1", func(o *Offer) { o.GTIN = ptr(strings.Repeat("g", MaxTextBytes+1)) }, "gtin over 8192 bytes"},
		{"image url over bound", "o-1", func(o *Offer) { o.Images = []string{"a", strings.Repeat("i", MaxTextBytes+1)} }, "images[] over 8192 bytes"},
		{"attribute key over bound", "o-1", func(o *Offer) { o.Attributes = map[string]string{strings.Repeat("k", MaxTextBytes+1): "v"} }, "attributes over 8192 bytes"},
		{"attribute value over bound", "o-1", func(o *Offer) { o.Attributes = map[string]string{"k": strings.Repeat("v", MaxTextBytes+1)} }, "attributes over 8192 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := sampleOffer()
			tt.edit(&o)
			checkReason(t, ValidateOffer([]byte(tt.key), &o), tt.reason)
		})
	}
}

func TestValidateSeller(t *testing.T) {
	tests := []struct {
		name   string
		key    string
		edit   func(s *Seller)
		reason string
	}{
		{"valid", "s-1", func(*Seller) {}, ""},
		{"missing id", "", func(s *Seller) { s.ID = "" }, ReasonMissingID},
		{"key differs", "s-9", func(*Seller) {}, ReasonKeyMismatch},
		{"zero version", "s-1", func(s *Seller) { s.Version = 0 }, ReasonBadVersion},
		{"id over bound", strings.Repeat("s", 70_000), func(s *Seller) { s.ID = strings.Repeat("s", 70_000) }, ReasonIDTooLong},
		{"name over bound", "s-1", func(s *Seller) { s.Name = strings.Repeat("n", MaxTextBytes+1) }, "name over 8192 bytes"},
		{"country over bound", "s-1", func(s *Seller) { s.Country = strings.Repeat("c", MaxTextBytes+1) }, "country over 8192 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := sampleSeller()
			tt.edit(&s)
			checkReason(t, ValidateSeller([]byte(tt.key), &s), tt.reason)
		})
	}
}

func TestValidateRating(t *testing.T) {
	tests := []struct {
		name   string
		key    string
		edit   func(r *Rating)
		reason string
	}{
		{"valid", "s-1", func(*Rating) {}, ""},
		{"bounds are valid", "s-1", func(r *Rating) { r.Average, r.PositivePct, r.Count = 5, 100, 0 }, ""},
		{"zero bounds are valid", "s-1", func(r *Rating) { r.Average, r.PositivePct = 0, 0 }, ""},
		{"missing seller", "", func(r *Rating) { r.SellerID = "" }, ReasonMissingSellerID},
		{"key differs", "s-9", func(*Rating) {}, ReasonKeyMismatchSeller},
		{"average above 5", "s-1", func(r *Rating) { r.Average = 5.01 }, ReasonAverageRange},
		{"average negative", "s-1", func(r *Rating) { r.Average = -0.1 }, ReasonAverageRange},
		{"average NaN", "s-1", func(r *Rating) { r.Average = math.NaN() }, ReasonAverageRange},
		{"pct above 100", "s-1", func(r *Rating) { r.PositivePct = 100.5 }, ReasonPositivePctRange},
		{"pct NaN", "s-1", func(r *Rating) { r.PositivePct = math.NaN() }, ReasonPositivePctRange},
		{"negative count", "s-1", func(r *Rating) { r.Count = -1 }, ReasonNegativeCount},
		{"zero version", "s-1", func(r *Rating) { r.Version = 0 }, ReasonBadVersion},
		{"seller id over bound", strings.Repeat("s", 70_000), func(r *Rating) { r.SellerID = strings.Repeat("s", 70_000) }, ReasonSellerIDTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sampleRating()
			tt.edit(&r)
			checkReason(t, ValidateRating([]byte(tt.key), &r), tt.reason)
		})
	}
}

func checkReason(t *testing.T, err error, reason string) {
	t.Helper()
	if reason == "" {
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		return
	}
	re, ok := IsReject(err)
	if !ok {
		t.Fatalf("err = %v, want a reject %q", err, reason)
	}
	if re.Reason != reason || re.Error() != reason {
		t.Errorf("reason = %q (Error %q), want %q", re.Reason, re.Error(), reason)
	}
}

func TestMinorUnitsAndPrice(t *testing.T) {
	tests := []struct {
		currency   string
		units      int
		priceMinor int
		price      float64
	}{
		{"PLN", 2, 12999, 129.99},
		{"EUR", 2, 100, 1},
		{"JPY", 0, 12999, 12999},
		{"KRW", 0, 5, 5},
		{"CLP", 0, 1, 1},
		{"ISK", 0, 1, 1},
		{"VND", 0, 1, 1},
		{"BHD", 3, 12999, 12.999},
		{"KWD", 3, 1000, 1},
		{"OMR", 3, 1, 0.001},
		{"JOD", 3, 1, 0.001},
		{"TND", 3, 1, 0.001},
		{"IQD", 3, 1, 0.001},
		{"LYD", 3, 1, 0.001},
		{"CLF", 4, 10000, 1},
		{"XYZ", 2, 250, 2.5},
		{"", 2, 250, 2.5},
	}
	for _, tt := range tests {
		t.Run(tt.currency, func(t *testing.T) {
			if got := MinorUnits(tt.currency); got != tt.units {
				t.Errorf("MinorUnits(%q) = %d, want %d", tt.currency, got, tt.units)
			}
			o := Offer{Currency: tt.currency, PriceMinor: tt.priceMinor}
			DerivePrice(&o)
			if o.Price != tt.price {
				t.Errorf("Price = %v, want %v", o.Price, tt.price)
			}
		})
	}
}
