package processor

import (
	"slices"
	"testing"
	"time"

	"github.com/feedmill/feedmill/internal/records"
)

// TestViewFieldsLayout pins the order of the stored per-field hashes
// (state.Membership.FieldHashes). It is append only: a model or generator
// change that reorders makes every stored hash compare as changed, and
// fails here.
func TestViewFieldsLayout(t *testing.T) {
	want := []string{
		"offer.id", "offer.seller_id", "offer.product_id", "offer.title", "offer.description",
		"offer.category", "offer.price_minor", "offer.currency", "offer.stock", "offer.condition",
		"offer.status", "offer.url", "offer.images", "offer.brand", "offer.gtin",
		"offer.attributes", "offer.updated_at", "offer.version",
		"seller.id", "seller.name", "seller.country", "seller.status", "seller.super_seller",
		"seller.updated_at", "seller.version",
		"rating.seller_id", "rating.average", "rating.count", "rating.positive_pct",
		"rating.updated_at", "rating.version",
	}
	if numViewFields < len(want) || !slices.Equal(viewFields[:len(want)], want) {
		t.Fatalf("viewFields changed (append only):\n got %q\nwant %q", viewFields, want)
	}
}

// TestViewFieldsHashes pins the hash of every field of fixed views: a
// changed hash of a kind of value would report every stored offer as
// changed once.
func TestViewFieldsHashes(t *testing.T) {
	str := func(s string) *string { return &s }
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	o := &records.Offer{ID: "o-1", SellerID: "s-1", ProductID: str("p-1"), Title: "Phone", Description: "A phone.",
		Category: "Phones", PriceMinor: 12999, Currency: "PLN", Stock: 5, Condition: "NEW", Status: "ACTIVE",
		URL: "https://shop.example/o/1", Images: []string{"a.jpg", "b.jpg"}, GTIN: str("0194253000000"),
		Attributes: map[string]string{"colour": "black", "size": "6.1"}, UpdatedAt: at, Version: 7}
	s := &records.Seller{ID: "s-1", Name: "Good Shop", Country: "PL", Status: "ACTIVE", SuperSeller: true, UpdatedAt: at, Version: 3}
	r := &records.Rating{SellerID: "s-1", Average: 4.6, Count: 120, PositivePct: 98.5, UpdatedAt: at, Version: 2}
	offer := []uint32{0xc27e1c34, 0x979a0bf7, 0x84e28ed3, 0xe3b4b0cc, 0x49e1feb, 0xd497c57b, 0x8f21916c, 0x2b69ae44,
		0x4f53b37c, 0x8fb66cb, 0xb720b7a1, 0x9cc44068, 0x15cc49e7, 0x0, 0x8f5fb55b, 0x6f2a5904, 0x3390d7e0, 0x7370a5cf}
	tests := []struct {
		name string
		s    *records.Seller
		r    *records.Rating
		want []uint32
	}{
		{"joined", s, r, append(slices.Clone(offer),
			0x979a0bf7, 0xb3962ac1, 0xd41dc261, 0xb720b7a1, 0x3b8a47db, 0x3390d7e1, 0x722e75cb,
			0x979a0bf7, 0x359e82ad, 0xc1721183, 0xf5b249a7, 0x3390d7e1, 0xedc60961)},
		{"alone", nil, nil, append(slices.Clone(offer), make([]uint32, 13)...)},
		{"zero seller", &records.Seller{ID: "s-1", Version: 1}, nil, append(slices.Clone(offer),
			0x979a0bf7, 0x51d8e999, 0x51d8e999, 0x51d8e999, 0xcadb1bbb, 0xda7637a7, 0x3b8a47db,
			0, 0, 0, 0, 0, 0)},
	}
	h := newFieldHasher()
	for _, tc := range tests {
		// Fields appended later hash after the pinned ones.
		got := h.hashView(nil, o, tc.s, tc.r)
		if len(got) != numViewFields || !slices.Equal(got[:len(tc.want)], tc.want) {
			t.Errorf("%s: hashes\n got %#v\nwant %#v", tc.name, got, tc.want)
		}
	}
	dst := make([]uint32, 0, numViewFields)
	if n := testing.AllocsPerRun(100, func() { dst = h.hashView(dst[:0], o, s, r) }); n != 0 {
		t.Errorf("hashView allocates %v", n)
	}
}

func TestAppendChangedFields(t *testing.T) {
	prev := make([]uint32, numViewFields)
	cur := slices.Clone(prev)
	cur[0], cur[30] = 1, 2 // offer.id, rating.version
	if got := appendChangedFields(nil, prev, cur); !slices.Equal(got, []string{"offer.id", "rating.version"}) {
		t.Errorf("changed %v", got)
	}
	if got := appendChangedFields(nil, nil, cur); !slices.Equal(got, []string{"offer.id", "rating.version"}) {
		t.Errorf("changed without previous hashes %v", got)
	}
}
