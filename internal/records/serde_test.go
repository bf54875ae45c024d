package records

import (
	"context"
	"errors"
	"math"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"
)

func TestEmbeddedSchemas(t *testing.T) {
	ours, err := parseSchemas()
	if err != nil {
		t.Fatal(err)
	}
	for k := KindOffer; k < numKinds; k++ {
		if got := ours.parsed[k].(avro.NamedSchema).FullName(); got != k.String() {
			t.Errorf("kind %d: schema name %q, want %q", k, got, k.String())
		}
		// The registered text must be self-contained and keep defaults and
		// logical types.
		re, err := avro.ParseWithCache(ours.text[k], "", &avro.SchemaCache{})
		if err != nil {
			t.Fatalf("%s: registered text does not parse alone: %v", k, err)
		}
		if re.Fingerprint() != ours.parsed[k].Fingerprint() {
			t.Errorf("%s: registered text differs from the embedded schema", k)
		}
		if !strings.Contains(ours.text[k], "timestamp-millis") {
			t.Errorf("%s: registered text lost logicalType", k)
		}
	}
	if !strings.Contains(ours.text[KindOffer], `"default":null`) {
		t.Errorf("offer text lost defaults: %s", ours.text[KindOffer])
	}
}

func TestWireRoundTrip(t *testing.T) {
	tr := newTestRegistry(t)
	s := tr.serde
	o, se, ra, ev := sampleOffer(), sampleSeller(), sampleRating(), sampleEvent()
	evNoOffer := sampleEvent()
	evNoOffer.Offer = nil
	evNoOffer.Cause = CauseReconcile
	evBare := sampleEvent()
	evBare.Offer.Seller, evBare.Offer.Rating = nil, nil

	tests := []struct {
		name   string
		kind   Kind
		encode func(dst []byte, id int) ([]byte, error)
		decode func(b []byte) (any, error)
		want   any
	}{
		{"offer", KindOffer,
			func(dst []byte, id int) ([]byte, error) { return s.AppendOffer(dst, id, &o) },
			func(b []byte) (any, error) { var v Offer; err := s.DecodeOffer(bg, b, &v); return v, err },
			o},
		{"seller", KindSeller,
			func(dst []byte, id int) ([]byte, error) { return s.AppendSeller(dst, id, &se) },
			func(b []byte) (any, error) { var v Seller; err := s.DecodeSeller(bg, b, &v); return v, err },
			se},
		{"rating", KindRating,
			func(dst []byte, id int) ([]byte, error) { return s.AppendRating(dst, id, &ra) },
			func(b []byte) (any, error) { var v Rating; err := s.DecodeRating(bg, b, &v); return v, err },
			ra},
		{"feed event", KindFeedEvent,
			func(dst []byte, id int) ([]byte, error) { return s.AppendFeedEvent(dst, id, &ev) },
			func(b []byte) (any, error) { var v FeedEvent; err := s.DecodeFeedEvent(bg, b, &v); return v, err },
			ev},
		{"feed event without offer", KindFeedEvent,
			func(dst []byte, id int) ([]byte, error) { return s.AppendFeedEvent(dst, id, &evNoOffer) },
			func(b []byte) (any, error) { var v FeedEvent; err := s.DecodeFeedEvent(bg, b, &v); return v, err },
			evNoOffer},
		{"feed event without seller and rating", KindFeedEvent,
			func(dst []byte, id int) ([]byte, error) { return s.AppendFeedEvent(dst, id, &evBare) },
			func(b []byte) (any, error) { var v FeedEvent; err := s.DecodeFeedEvent(bg, b, &v); return v, err },
			evBare},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := s.Register(bg, "t-"+tt.kind.String()+"-value", tt.kind)
			if err != nil {
				t.Fatal(err)
			}
			id2, err := s.Register(bg, "t-"+tt.kind.String()+"-value", tt.kind)
			if err != nil || id2 != id {
				t.Fatalf("second Register = %d, %v; want %d", id2, err, id)
			}
			prefix := []byte("keep")
			b, err := tt.encode(prefix, id)
			if err != nil {
				t.Fatal(err)
			}
			if string(b[:4]) != "keep" || b[4] != 0 || int(b[5])<<24|int(b[6])<<16|int(b[7])<<8|int(b[8]) != id {
				t.Fatalf("bad header: % x", b[:9])
			}
			got, err := tt.decode(b[4:])
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	tr := newTestRegistry(t)
	s := tr.serde
	o := sampleOffer()
	offerID, err := s.Register(bg, "offers-value", KindOffer)
	if err != nil {
		t.Fatal(err)
	}
	good, err := s.AppendOffer(nil, offerID, &o)
	if err != nil {
		t.Fatal(err)
	}
	// Writer whose Condition enum has a symbol we do not have.
	extraEnum := strings.Replace(s.SchemaText(KindOffer), `"REFURBISHED"`, `"REFURBISHED","BROKEN"`, 1)
	extraEnumID := tr.registerText(t, "other-offers-value", extraEnum)
	// Writer with another record name.
	otherName := strings.Replace(s.SchemaText(KindOffer), `"feedmill.v1.Offer"`, `"acme.Product"`, 1)
	otherNameID := tr.registerText(t, "products-value", otherName)
	// Writer that is not a record at all.
	stringID := tr.registerText(t, "strings-value", `"string"`)
	// Writer that drops a field without default (title).
	sellerID, err := s.Register(bg, "sellers-value", KindSeller)
	if err != nil {
		t.Fatal(err)
	}
	jsonID, _, err := tr.reg.RegisterSchema("json-value", sr.Schema{Schema: `{"type":"object"}`, Type: sr.TypeJSON})
	if err != nil {
		t.Fatal(err)
	}

	withID := func(id int, body []byte) []byte {
		return append([]byte{0, byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}, body...)
	}
	tests := []struct {
		name   string
		value  []byte
		reason string
	}{
		{"empty", nil, ReasonEmptyValue},
		{"short", []byte{0, 0, 0}, ReasonShortValue},
		{"bad magic", append([]byte{7}, good[1:]...), "bad magic byte 7"},
		{"unknown id", withID(4242, good[5:]), "unknown schema id 4242"},
		{"json schema", withID(jsonID, good[5:]), "not an avro schema: id " + itoa(jsonID)},
		{"unknown enum symbol in writer", withID(extraEnumID, good[5:]), "incompatible writer schema id " + itoa(extraEnumID) + " for feedmill.v1.Offer"},
		{"other record name", withID(otherNameID, good[5:]), "incompatible writer schema id " + itoa(otherNameID) + " for feedmill.v1.Offer"},
		{"writer is a string", withID(stringID, good[5:]), "incompatible writer schema id " + itoa(stringID) + " for feedmill.v1.Offer"},
		{"seller schema for offer", withID(sellerID, good[5:]), "incompatible writer schema id " + itoa(sellerID) + " for feedmill.v1.Offer"},
		{"truncated body", good[:len(good)-3], ReasonUndecodable},
		{"header only", good[:5], ReasonUndecodable},
		{"enum index out of range", withID(offerID, corruptEnum(t, s, o)), ReasonUndecodable},
		{"trailing garbage", append(append([]byte{}, good...), 1, 2, 3), ReasonTrailingBytes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var dst Offer
			err := s.DecodeOffer(bg, tt.value, &dst)
			re, ok := IsReject(err)
			if !ok {
				t.Fatalf("err = %v, want a reject", err)
			}
			if re.Reason != tt.reason {
				t.Errorf("reason = %q, want %q (err %v)", re.Reason, tt.reason, err)
			}
			if !strings.HasPrefix(re.Error(), tt.reason) {
				t.Errorf("Error() = %q, want prefix %q", re.Error(), tt.reason)
			}
		})
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// corruptEnum returns an Offer body whose condition index is out of range.
func corruptEnum(t *testing.T, s *Serde, o Offer) []byte {
	t.Helper()
	// Encode the fields before condition with a writer that stops there,
	// then append a bogus enum index (zig-zag 50) and the rest.
	head := o
	body, err := s.MarshalOffer(nil, &head)
	if err != nil {
		t.Fatal(err)
	}
	// Build: prefix up to and including stock, then bad index, then the rest
	// after the original condition byte. Condition NEW is index 0 -> byte 0.
	prefixSchema := avro.MustParse(`{"type":"record","name":"P","fields":[
		{"name":"id","type":"string"},{"name":"seller_id","type":"string"},
		{"name":"product_id","type":["null","string"]},{"name":"title","type":"string"},
		{"name":"description","type":"string"},{"name":"category","type":"string"},
		{"name":"price_minor","type":"long"},{"name":"currency","type":"string"},
		{"name":"stock","type":"int"}]}`)
	prefix, err := avro.Marshal(prefixSchema, &o)
	if err != nil {
		t.Fatal(err)
	}
	if body[len(prefix)] != 0 {
		t.Fatalf("expected NEW (0) at %d", len(prefix))
	}
	out := append([]byte{}, prefix...)
	out = append(out, 100) // zig-zag 50
	return append(out, body[len(prefix)+1:]...)
}

// newerOffer is our Offer schema plus an optional field with a default,
// as an upstream producer one version ahead would write it.
func newerOfferSchema(s *Serde) string {
	return strings.Replace(s.SchemaText(KindOffer),
		`{"name":"version",`,
		`{"name":"warranty_months","type":["null","int"],"default":null},{"name":"version",`, 1)
}

// newerOfferBody encodes o with the newer writer schema, warranty 24.
func newerOfferBody(s *Serde, o *Offer) ([]byte, error) {
	sch, err := avro.ParseWithCache(newerOfferSchema(s), "", &avro.SchemaCache{})
	if err != nil {
		return nil, err
	}
	return avro.Marshal(sch, &newerOffer{Offer: *o, WarrantyMonths: ptr(24)})
}

type newerOffer struct {
	Offer
	WarrantyMonths *int `avro:"warranty_months"`
}

func TestDecodeEvolvedWriters(t *testing.T) {
	tr := newTestRegistry(t)
	s := tr.serde
	if _, err := s.Register(bg, "offers-value", KindOffer); err != nil {
		t.Fatal(err)
	}
	o := sampleOffer()

	newer := newerOfferSchema(s)
	if !strings.Contains(newer, "warranty_months") {
		t.Fatal("schema edit did not apply")
	}
	newerID := tr.registerText(t, "offers-value", newer) // BACKWARD compatible in srfake
	newerBody, err := newerOfferBody(s, &o)
	if err != nil {
		t.Fatal(err)
	}

	// A writer without brand (which has a default in ours).
	older := dropField(t, s.SchemaText(KindOffer), "brand")
	olderID := tr.registerText(t, "offers-value", older)
	olderBody, err := avro.Marshal(avro.MustParse(older), &o)
	if err != nil {
		t.Fatal(err)
	}
	wantOlder := o
	wantOlder.Brand = nil

	tests := []struct {
		name string
		id   int
		body []byte
		want Offer
	}{
		{"newer writer adds optional field", newerID, newerBody, o},
		{"older writer lacks defaulted field", olderID, olderBody, wantOlder},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := append([]byte{0, byte(tt.id >> 24), byte(tt.id >> 16), byte(tt.id >> 8), byte(tt.id)}, tt.body...)
			var got Offer
			if err := s.DecodeOffer(bg, v, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func dropField(t *testing.T, text, field string) string {
	t.Helper()
	start := strings.Index(text, `{"name":"`+field+`"`)
	if start < 0 {
		t.Fatalf("field %s not in %s", field, text)
	}
	depth := 0
	for i := start; i < len(text); i++ {
		switch text[i] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				end := i + 1
				if text[end] == ',' {
					end++
				}
				return text[:start] + text[end:]
			}
		}
	}
	t.Fatalf("unbalanced schema text")
	return ""
}

func TestRegistryDown(t *testing.T) {
	tr := newTestRegistry(t)
	s := tr.serde
	o := sampleOffer()
	b, err := s.AppendOffer(nil, 1, &o)
	if err != nil {
		t.Fatal(err)
	}
	tr.reg.Close()
	var got Offer
	err = s.DecodeOffer(bg, b, &got)
	if err == nil {
		t.Fatal("decode with registry down succeeded")
	}
	if _, ok := IsReject(err); ok {
		t.Fatalf("registry down gave a reject: %v", err)
	}
	// Nothing was cached: once a registry answers, the same bytes decode.
	// (A cancelled context is not a reject either.)
	ctx, cancel := context.WithCancel(bg)
	cancel()
	err = s.DecodeOffer(ctx, b, &got)
	if _, ok := IsReject(err); ok || err == nil {
		t.Fatalf("cancelled ctx: err = %v, want a non-reject error", err)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: err = %v, want context.Canceled", err)
	}
}

func TestRegistryServerError(t *testing.T) {
	tr := newTestRegistry(t)
	s := tr.serde
	id, err := s.Register(bg, "offers-value", KindOffer)
	if err != nil {
		t.Fatal(err)
	}
	o := sampleOffer()
	b, err := s.AppendOffer(nil, id+1000, &o)
	if err != nil {
		t.Fatal(err)
	}
	var status atomic.Int32
	tr.reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if code := int(status.Load()); code != 0 {
			w.WriteHeader(code)
			return true
		}
		return false
	})
	// A 5xx, or a 404 without the registry's "schema not found" error code
	// (a wrong URL, a proxy), is a broken dependency, not a bad record, and
	// is not cached.
	for _, code := range []int{http.StatusServiceUnavailable, http.StatusInternalServerError, http.StatusNotFound} {
		status.Store(int32(code))
		var got Offer
		err = s.DecodeOffer(bg, b, &got)
		if _, ok := IsReject(err); ok || err == nil {
			t.Fatalf("HTTP %d: err = %v, want a non-reject error", code, err)
		}
	}
	status.Store(0)
	var got Offer
	err = s.DecodeOffer(bg, b, &got)
	if re, ok := IsReject(err); !ok || re.Reason != "unknown schema id "+itoa(id+1000) {
		t.Fatalf("after recovery: err = %v, want unknown schema id reject", err)
	}
}

func TestSchemaFetchedOnce(t *testing.T) {
	tr := newTestRegistry(t)
	id := tr.registerText(t, "offers-value", tr.serde.SchemaText(KindOffer))
	s := NewSerde(tr.client) // fresh: Register's pre-seeding not involved
	o := sampleOffer()
	b, err := s.AppendOffer(nil, id, &o)
	if err != nil {
		t.Fatal(err)
	}
	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var got Offer
			errs <- s.DecodeOffer(bg, b, &got)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		var got Offer
		if err := s.DecodeOffer(bg, b, &got); err != nil {
			t.Fatal(err)
		}
	}
	// The same id decoded as another kind is resolved, not fetched, again.
	var se Seller
	if _, ok := IsReject(s.DecodeSeller(bg, b, &se)); !ok {
		t.Error("offer bytes decoded as a seller should be rejected")
	}
	// Unknown ids are fetched once too.
	bad := append([]byte{0, 0, 0, 0x10, 0}, b[5:]...)
	for i := 0; i < 3; i++ {
		var got Offer
		if _, ok := IsReject(s.DecodeOffer(bg, bad, &got)); !ok {
			t.Fatal("unknown id should be rejected")
		}
	}
	if got := tr.fetches.Load(); got != 2 {
		t.Errorf("registry fetches = %d, want 2 (one per id)", got)
	}
}

func TestStateRoundTrip(t *testing.T) {
	s := NewSerde(nil)
	o, se, ra := sampleOffer(), sampleSeller(), sampleRating()
	o2 := sampleOffer()
	o2.ProductID, o2.Brand, o2.GTIN = nil, nil, ptr("5901234123457")
	o2.Currency, o2.PriceMinor = "JPY", 12999
	DerivePrice(&o2)

	var buf []byte
	for _, want := range []Offer{o, o2} {
		var err error
		buf, err = s.MarshalOffer(buf[:0], &want)
		if err != nil {
			t.Fatal(err)
		}
		got := Offer{Attributes: map[string]string{"stale": "x"}, Title: "stale"}
		if err := s.UnmarshalOffer(buf, &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("offer:\n got %+v\nwant %+v", got, want)
		}
	}
	b, err := s.MarshalSeller(nil, &se)
	if err != nil {
		t.Fatal(err)
	}
	var gse Seller
	if err := s.UnmarshalSeller(b, &gse); err != nil || gse != se {
		t.Errorf("seller: %+v, %v", gse, err)
	}
	b, err = s.MarshalRating(nil, &ra)
	if err != nil {
		t.Fatal(err)
	}
	var gra Rating
	if err := s.UnmarshalRating(b, &gra); err != nil || gra != ra {
		t.Errorf("rating: %+v, %v", gra, err)
	}
	// Corrupt state is an error, never a reject.
	err = s.UnmarshalRating(b[:len(b)-2], &gra)
	if _, ok := IsReject(err); ok || err == nil {
		t.Errorf("corrupt state: err = %v, want a non-reject error", err)
	}
	// Encoding errors leave dst as it was.
	bad := sampleOffer()
	bad.Condition = "MINT"
	out, err := s.MarshalOffer([]byte("x"), &bad)
	if err == nil || string(out) != "x" {
		t.Errorf("bad enum: out %q, err %v", out, err)
	}
	out, err = s.AppendOffer([]byte("x"), 1, &bad)
	if err == nil || string(out) != "x" {
		t.Errorf("bad enum wire: out %q, err %v", out, err)
	}
}

func TestPriceIgnoredByAvro(t *testing.T) {
	s := NewSerde(nil)
	o := sampleOffer()
	a, err := s.MarshalOffer(nil, &o)
	if err != nil {
		t.Fatal(err)
	}
	o.Price = math.Pi
	b, err := s.MarshalOffer(nil, &o)
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Error("Price changed the Avro encoding")
	}
	big := sampleOffer()
	big.PriceMinor = math.MaxInt64
	b, err = s.MarshalOffer(nil, &big)
	if err != nil {
		t.Fatal(err)
	}
	var got Offer
	if err := s.UnmarshalOffer(b, &got); err != nil || got.PriceMinor != math.MaxInt64 {
		t.Errorf("int64 price_minor into Go int: %d, %v", got.PriceMinor, err)
	}
}

// fakeClock is a settable clock for SerdeOptions.Now.
type fakeClock struct{ t atomic.Pointer[time.Time] }

func (c *fakeClock) now() time.Time      { return *c.t.Load() }
func (c *fakeClock) set(t time.Time)     { c.t.Store(&t) }
func (c *fakeClock) add(d time.Duration) { c.set(c.now().Add(d)) }

// A schema registered after a miss is found once the miss has expired;
// within the TTL the miss is answered from the cache.
func TestUnknownSchemaExpires(t *testing.T) {
	tr := newTestRegistry(t)
	clock := &fakeClock{}
	clock.set(testTime())
	s := NewSerdeWith(tr.client, SerdeOptions{UnknownSchemaTTL: 30 * time.Second, Now: clock.now})
	const id = 77
	o := sampleOffer()
	b, err := s.AppendOffer(nil, id, &o)
	if err != nil {
		t.Fatal(err)
	}
	decode := func() error {
		var got Offer
		return s.DecodeOffer(bg, b, &got)
	}
	if re, ok := IsReject(decode()); !ok || re.Reason != "unknown schema id 77" {
		t.Fatalf("before registration: %v, want unknown schema id reject", decode())
	}
	tr.reg.SeedSchema("offers-value", 1, id, sr.Schema{Schema: s.SchemaText(KindOffer), Type: sr.TypeAvro})

	clock.add(29 * time.Second)
	if _, ok := IsReject(decode()); !ok {
		t.Fatal("within the TTL the miss should still be cached")
	}
	if got := tr.fetches.Load(); got != 1 {
		t.Fatalf("registry fetches within the TTL = %d, want 1", got)
	}
	clock.add(time.Second)
	if err := decode(); err != nil {
		t.Fatalf("after the TTL: %v, want the registered schema found", err)
	}
	if got := tr.fetches.Load(); got != 2 {
		t.Fatalf("registry fetches = %d, want 2", got)
	}
	// A found schema is kept for good.
	clock.add(time.Hour)
	if err := decode(); err != nil || tr.fetches.Load() != 2 {
		t.Fatalf("found schema: %v, fetches %d", err, tr.fetches.Load())
	}
}

func TestUnknownSchemaNotCached(t *testing.T) {
	tr := newTestRegistry(t)
	s := NewSerdeWith(tr.client, SerdeOptions{UnknownSchemaTTL: -1})
	o := sampleOffer()
	b, err := s.AppendOffer(nil, 91, &o)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		var got Offer
		if _, ok := IsReject(s.DecodeOffer(bg, b, &got)); !ok {
			t.Fatal("unknown id should be rejected")
		}
	}
	if got := tr.fetches.Load(); got != 3 {
		t.Fatalf("fetches = %d, want 3 (no negative cache)", got)
	}
}

// Registering our schema replaces a cached miss for its id at once.
func TestRegisterReplacesUnknown(t *testing.T) {
	tr := newTestRegistry(t)
	s := NewSerde(tr.client)
	o := sampleOffer()
	b, err := s.AppendOffer(nil, 1, &o) // srfake gives the first schema id 1
	if err != nil {
		t.Fatal(err)
	}
	var got Offer
	if _, ok := IsReject(s.DecodeOffer(bg, b, &got)); !ok {
		t.Fatal("unknown id should be rejected")
	}
	id, err := s.Register(bg, "offers-value", KindOffer)
	if err != nil {
		t.Fatal(err)
	}
	if id != 1 {
		t.Skipf("srfake gave id %d, not 1", id)
	}
	if err := s.DecodeOffer(bg, b, &got); err != nil {
		t.Fatalf("after Register: %v", err)
	}
}
