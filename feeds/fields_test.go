package feeds

import (
	"slices"
	"testing"

	"github.com/feedmill/feedmill/internal/records"
)

// TestFieldLayout pins the FieldMask layout: names and bits. Pending seller
// jobs store a FieldMask (state.Job.Changed), so a bit must never move; a
// generator or model change that reorders fails here. New fields go after
// now.
func TestFieldLayout(t *testing.T) {
	want := []string{
		"offer.id", "offer.seller_id", "offer.product_id", "offer.title", "offer.description",
		"offer.category", "offer.price_minor", "offer.currency", "offer.stock", "offer.condition",
		"offer.status", "offer.url", "offer.images", "offer.brand", "offer.gtin",
		"offer.attributes", "offer.updated_at", "offer.version", "offer.price",
		"seller.id", "seller.name", "seller.country", "seller.status", "seller.super_seller",
		"seller.updated_at", "seller.version",
		"rating.seller_id", "rating.average", "rating.count", "rating.positive_pct",
		"rating.updated_at", "rating.version",
		"now",
	}
	all := FieldsAll.AppendNames(nil)
	if len(all) < len(want) || !slices.Equal(all[:len(want)], want) {
		t.Fatalf("field names in bit order changed (append only):\n got %q\nwant %q", all, want)
	}
	for i, n := range all {
		if m, ok := FieldByName(n); !ok || m != 1<<i {
			t.Errorf("FieldByName(%q) = %#x, %v; want bit %d", n, m, ok, i)
		}
	}
	for _, c := range []struct {
		m    FieldMask
		want FieldMask
	}{
		{FieldOfferID, 1 << 0}, {FieldOfferPriceMinor, 1 << 6}, {FieldOfferAttributes, 1 << 15},
		{FieldOfferPrice, 1 << 18}, {FieldSellerID, 1 << 19}, {FieldSellerSuperSeller, 1 << 23},
		{FieldRatingSellerID, 1 << 26}, {FieldRatingPositivePct, 1 << 29}, {FieldRatingVersion, 1 << 31},
		{FieldNow, 1 << 32},
		{FieldsOffer, 0x7ffff}, {FieldsSeller, 0x7f << 19}, {FieldsRating, 0x3f << 26},
	} {
		// Fields appended later may add bits above now to a record's mask.
		if c.m&pinnedBits != c.want {
			t.Errorf("mask %v = %#x, want %#x", c.m.AppendNames(nil), uint64(c.m), uint64(c.want))
		}
	}
	if FieldsOffer|FieldsSeller|FieldsRating|FieldNow != FieldsAll {
		t.Errorf("record masks and now do not cover FieldsAll")
	}
	// usage bits map onto the same fields.
	u := usage{offer: uOfferPrice | uOfferID, seller: uSellerVersion, rating: uRatingPositivePct, now: true}
	if got := u.mask(); got != FieldOfferPrice|FieldOfferID|FieldSellerVersion|FieldRatingPositivePct|FieldNow {
		t.Errorf("usage mask %v", got.AppendNames(nil))
	}
	if got := (usage{offer: allFields, seller: allFields, rating: allFields, now: true}).mask(); got != FieldsAll {
		t.Errorf("all usage mask %#x", uint64(got))
	}
}

// pinnedBits are the bits TestFieldLayout pins (through now).
const pinnedBits FieldMask = 1<<33 - 1

// TestFieldKinds pins what the matching engine may read of each field.
func TestFieldKinds(t *testing.T) {
	want := map[vkind][]string{
		kInt:   {"offer.price_minor", "offer.stock", "offer.version", "seller.version", "rating.count", "rating.version"},
		kFloat: {"offer.price", "rating.average", "rating.positive_pct"},
		kBool:  {"seller.super_seller"},
		kErr:   {"offer.images", "offer.attributes", "offer.updated_at", "seller.updated_at", "rating.updated_at", "now"},
	}
	got := map[vkind][]string{}
	for i := range 33 { // the pinned fields
		if k := fieldKind(field(i)); k != kString {
			got[k] = append(got[k], fieldName(i))
		}
	}
	for k, names := range want {
		if !slices.Equal(got[k], names) {
			t.Errorf("kind %d: %v, want %v", k, got[k], names)
		}
	}
	if nullableFields&pinnedBits != FieldOfferProductID|FieldOfferBrand|FieldOfferGTIN {
		t.Errorf("nullable %v", nullableFields.AppendNames(nil))
	}
	if goIntFields&pinnedBits != FieldOfferPriceMinor|FieldOfferStock {
		t.Errorf("go int %v", goIntFields.AppendNames(nil))
	}
}

func TestJoined(t *testing.T) {
	if NumJoined < 2 || JoinedSeller.String() != "seller" || JoinedRating.String() != "rating" {
		t.Fatalf("joined tables %d %s %s", NumJoined, JoinedSeller, JoinedRating)
	}
	serde := records.NewSerde(nil)
	full := &View{Offer: testOffer(), Seller: testSeller(), Rating: testRating()}
	var fields FieldMask
	for j := range Joined(NumJoined) {
		if j.Fields()&fields != 0 {
			t.Errorf("%s: fields overlap", j)
		}
		fields |= j.Fields()
		if j.JoinField() != FieldOfferSellerID {
			t.Errorf("%s: join field %v", j, j.JoinField().AppendNames(nil))
		}
		if !j.Present(full) || j.Key(full) != "seller-1" || j.Validate([]byte("seller-1"), full) != nil {
			t.Errorf("%s: present, key or validate", j)
		}
		if j.Version(full) <= 0 || j.SizeMax(full) <= 0 {
			t.Errorf("%s: version %d, size %d", j, j.Version(full), j.SizeMax(full))
		}
		b, err := j.Marshal(serde, nil, full)
		if err != nil {
			t.Fatal(err)
		}
		var back View
		if err := j.Unmarshal(serde, b, &back); err != nil {
			t.Fatal(err)
		}
		if d := j.Diff(full, &back); d != 0 {
			t.Errorf("%s: round trip differs in %v", j, d.AppendNames(nil))
		}
		if d := j.Diff(&View{}, full); d != j.Fields() {
			t.Errorf("%s: appearing record changes %v", j, d.AppendNames(nil))
		}
		if d := j.Diff(nil, nil); d != 0 {
			t.Errorf("%s: nil views differ in %v", j, d.AppendNames(nil))
		}
		var cp View
		j.Copy(&cp, full)
		if !j.Present(&cp) || DiffFields(&View{Offer: full.Offer}, &View{Offer: full.Offer}) != 0 {
			t.Errorf("%s: copy", j)
		}
		j.Clear(&cp)
		if j.Present(&cp) {
			t.Errorf("%s: clear", j)
		}
		if j.Kind() == records.KindOffer || j.Kind() == records.KindFeedEvent {
			t.Errorf("%s: kind %s", j, j.Kind())
		}
	}
	if fields != fieldsJoined {
		t.Errorf("joined fields %v", fields.AppendNames(nil))
	}
	if Joined(NumJoined).String() != "unknown" || Joined(NumJoined).Validate(nil, full) == nil {
		t.Errorf("unknown table accepted")
	}
}

func TestDiffFieldsAllocs(t *testing.T) {
	a := &View{Offer: testOffer(), Seller: testSeller(), Rating: testRating()}
	b := &View{Offer: testOffer(), Seller: testSeller()}
	b.Offer.Attributes["colour"] = "red"
	var m FieldMask
	if n := testing.AllocsPerRun(100, func() { m = DiffFields(a, b) | JoinedRating.Diff(a, b) }); n != 0 {
		t.Errorf("DiffFields allocates %v", n)
	}
	if m != FieldOfferAttributes|FieldsRating {
		t.Errorf("diff %v", m.AppendNames(nil))
	}
}
