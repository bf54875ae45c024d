package records

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
)

// TestEncodersMatchHamba checks the hand-written encoders byte for byte
// against hamba/avro's reflection encoder on the same schemas.
func TestEncodersMatchHamba(t *testing.T) {
	s := NewSerde(nil)
	// Our encoders write array/map blocks as a count only, the form
	// DisableBlockSizeHeader selects (both forms are valid Avro).
	api := avro.Config{TagKey: "avro", DisableBlockSizeHeader: true}.Freeze()
	one := sampleOffer()
	one.Attributes = map[string]string{"colour": "black"} // one entry: order-free
	empty := sampleOffer()
	empty.Images, empty.Attributes, empty.ProductID, empty.Brand = nil, nil, nil, nil
	empty.UpdatedAt = time.Time{}
	neg := sampleOffer()
	neg.PriceMinor, neg.Stock, neg.Version = -5, math.MinInt32, math.MinInt64
	neg.UpdatedAt = time.UnixMilli(-1_234_567).UTC()
	neg.Attributes = nil
	ev := sampleEvent()
	ev.Offer.Offer = one
	evEmpty := FeedEvent{Cause: CauseRefresh}
	sel, rat := sampleSeller(), sampleRating()

	tests := []struct {
		name string
		kind Kind
		v    any
		ours func() ([]byte, error)
	}{
		{"offer", KindOffer, &one, func() ([]byte, error) { return s.MarshalOffer(nil, &one) }},
		{"offer empty collections", KindOffer, &empty, func() ([]byte, error) { return s.MarshalOffer(nil, &empty) }},
		{"offer negative numbers", KindOffer, &neg, func() ([]byte, error) { return s.MarshalOffer(nil, &neg) }},
		{"seller", KindSeller, &sel, func() ([]byte, error) { return s.MarshalSeller(nil, &sel) }},
		{"rating", KindRating, &rat, func() ([]byte, error) { return s.MarshalRating(nil, &rat) }},
		{"feed event", KindFeedEvent, &ev, func() ([]byte, error) {
			b, err := s.AppendFeedEvent(nil, 0, &ev)
			return b[5:], err
		}},
		{"feed event empty", KindFeedEvent, &evEmpty, func() ([]byte, error) {
			b, err := s.AppendFeedEvent(nil, 0, &evEmpty)
			return b[5:], err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := api.Marshal(s.ours.parsed[tt.kind], tt.v)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tt.ours()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("encoding differs from hamba:\n got % x\nwant % x", got, want)
			}
		})
	}
}

func TestOfferEncodingDeterministic(t *testing.T) {
	s := NewSerde(nil)
	o := sampleOffer()
	o.Attributes = map[string]string{}
	for i := 0; i < 40; i++ {
		o.Attributes["k"+strconv.Itoa(i)] = strconv.Itoa(i)
	}
	first, err := s.MarshalOffer(nil, &o)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		b, err := s.MarshalOffer(nil, &o)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, first) {
			t.Fatal("two encodings of one offer differ")
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	s := NewSerde(nil)
	tests := []struct {
		name string
		run  func() ([]byte, error)
		is   error
	}{
		{"offer condition", func() ([]byte, error) {
			o := sampleOffer()
			o.Condition = "MINT"
			return s.MarshalOffer([]byte("x"), &o)
		}, errEnumSymbol},
		{"offer status", func() ([]byte, error) {
			o := sampleOffer()
			o.Status = ""
			return s.AppendOffer([]byte("x"), 1, &o)
		}, errEnumSymbol},
		{"offer stock", func() ([]byte, error) {
			o := sampleOffer()
			o.Stock = math.MaxInt32 + 1
			return s.MarshalOffer([]byte("x"), &o)
		}, errIntRange},
		{"seller status", func() ([]byte, error) {
			v := sampleSeller()
			v.Status = "BANNED"
			return s.AppendSeller([]byte("x"), 1, &v)
		}, errEnumSymbol},
		{"event action", func() ([]byte, error) {
			e := sampleEvent()
			e.Entries[1].Action = "DELETE"
			return s.AppendFeedEvent([]byte("x"), 1, &e)
		}, errEnumSymbol},
		{"event nested seller", func() ([]byte, error) {
			e := sampleEvent()
			e.Offer.Seller.Status = "?"
			return s.AppendFeedEvent([]byte("x"), 1, &e)
		}, errEnumSymbol},
		{"schema id", func() ([]byte, error) {
			r := sampleRating()
			return s.AppendRating([]byte("x"), -1, &r)
		}, errSchemaIDRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := tt.run()
			if !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want %v", err, tt.is)
			}
			if tt.is == errIntRange && !strings.HasSuffix(err.Error(), ": field stock: out of avro int range") {
				t.Errorf("err = %q, want it to name the field", err)
			}
			if _, ok := IsReject(err); ok {
				t.Errorf("encode error is a reject: %v", err)
			}
			if string(out) != "x" {
				t.Errorf("dst = %q, want it unchanged", out)
			}
		})
	}
}

// TestEncodersMatchHambaRandom checks the generated body encoders
// (appendOffer, appendSeller, appendRating in model_gen.go) byte for byte
// against hamba/avro over random records of each kind. The records are
// filled from the parsed schema, so a new field is covered without editing
// the test; edge values (nil optionals, empty and large arrays and maps,
// extreme and negative numbers, unicode, the zero time) come up often.
//
// hamba writes a Go map in iteration order, ours in key order, so the
// reference encodes each map as what its bytes are: a block of key/value
// pairs, i.e. an array of {key, value} records in key order, on a copy of
// the schema and of the record type where maps are such arrays.
func TestEncodersMatchHambaRandom(t *testing.T) {
	s := NewSerde(nil)
	// One block per array or map, as ours writes them.
	api := avro.Config{TagKey: "avro", DisableBlockSizeHeader: true, BlockLength: math.MaxInt32}.Freeze()
	kinds := []struct {
		kind   Kind
		typ    reflect.Type
		encode func(v any) ([]byte, error)
	}{
		{KindOffer, reflect.TypeFor[Offer](), func(v any) ([]byte, error) { return s.MarshalOffer(nil, v.(*Offer)) }},
		{KindSeller, reflect.TypeFor[Seller](), func(v any) ([]byte, error) { return s.MarshalSeller(nil, v.(*Seller)) }},
		{KindRating, reflect.TypeFor[Rating](), func(v any) ([]byte, error) { return s.MarshalRating(nil, v.(*Rating)) }},
	}
	for _, k := range kinds {
		t.Run(k.kind.String(), func(t *testing.T) {
			rec := s.ours.parsed[k.kind].(*avro.RecordSchema)
			refSchema := mapsAsEntryArrays(t, s.SchemaText(k.kind))
			refType := entryArrayType(k.typ)
			r := rand.New(rand.NewPCG(uint64(k.kind), 42))
			for i := range 500 {
				v := reflect.New(k.typ)
				fillRandom(t, r, rec, v.Elem())
				got, err := k.encode(v.Interface())
				if err != nil {
					t.Fatalf("record %d: %v\n%+v", i, err, v.Elem())
				}
				want, err := api.Marshal(refSchema, toEntryArrays(v.Elem(), refType).Addr().Interface())
				if err != nil {
					t.Fatalf("record %d: reference: %v", i, err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("record %d: encoding differs from hamba\n got % x\nwant % x\n%+v", i, got, want, v.Elem())
				}
			}
		})
	}
}

// fillRandom sets every Avro field of v (a record struct) to a random value
// of its schema type.
func fillRandom(t *testing.T, r *rand.Rand, rec *avro.RecordSchema, v reflect.Value) {
	t.Helper()
	for _, f := range rec.Fields() {
		fv := fieldByTag(v, f.Name())
		if !fv.IsValid() {
			t.Fatalf("%s: no Go field for %s", rec.Name(), f.Name())
		}
		switch ft := f.Type().(type) {
		case *avro.PrimitiveSchema:
			switch {
			case ft.Type() == avro.String:
				fv.SetString(randString(r))
			case ft.Type() == avro.Boolean:
				fv.SetBool(r.IntN(2) == 1)
			case ft.Type() == avro.Double:
				fv.SetFloat(randFloat(r))
			case ft.Type() == avro.Int:
				fv.SetInt(randInt(r, math.MinInt32, math.MaxInt32))
			case ft.Type() == avro.Long && ft.Logical() != nil && ft.Logical().Type() == avro.TimestampMillis:
				if r.IntN(8) == 0 {
					fv.Set(reflect.ValueOf(time.Time{}))
				} else {
					ms := randInt(r, -1<<48, 1<<48)
					fv.Set(reflect.ValueOf(time.UnixMilli(ms).UTC()))
				}
			case ft.Type() == avro.Long:
				fv.SetInt(randInt(r, math.MinInt64, math.MaxInt64))
			default:
				t.Fatalf("%s.%s: no random %s", rec.Name(), f.Name(), ft.Type())
			}
		case *avro.EnumSchema:
			fv.SetString(ft.Symbols()[r.IntN(len(ft.Symbols()))])
		case *avro.UnionSchema: // ["null","string"]
			if r.IntN(3) > 0 {
				s := randString(r)
				fv.Set(reflect.ValueOf(&s))
			} else {
				fv.SetZero()
			}
		case *avro.ArraySchema: // of string
			var ss []string
			if n := randLen(r); n > 0 || r.IntN(2) == 0 {
				ss = make([]string, n)
				for i := range ss {
					ss[i] = randString(r)
				}
			}
			fv.Set(reflect.ValueOf(ss))
		case *avro.MapSchema: // of string
			var m map[string]string
			if n := randLen(r); n > 0 || r.IntN(2) == 0 {
				m = make(map[string]string, n)
				for range n {
					m[randString(r)] = randString(r)
				}
			}
			fv.Set(reflect.ValueOf(m))
		default:
			t.Fatalf("%s.%s: no random %s", rec.Name(), f.Name(), f.Type().Type())
		}
	}
}

func fieldByTag(v reflect.Value, name string) reflect.Value {
	for i := range v.NumField() {
		if v.Type().Field(i).Tag.Get("avro") == name {
			return v.Field(i)
		}
	}
	return reflect.Value{}
}

// randInt is min, max, 0, -1 or a value of any magnitude in [min, max].
func randInt(r *rand.Rand, lo, hi int64) int64 {
	switch r.IntN(6) {
	case 0:
		return lo
	case 1:
		return hi
	case 2:
		return 0
	case 3:
		return -1
	}
	x := int64(r.Uint64() >> r.IntN(64))
	if r.IntN(2) == 0 {
		x = -x
	}
	return min(max(x, lo), hi)
}

func randFloat(r *rand.Rand) float64 {
	edges := []float64{0, math.Copysign(0, -1), -1.5, math.MaxFloat64, -math.SmallestNonzeroFloat64, math.Inf(-1), math.NaN()}
	if r.IntN(3) == 0 {
		return edges[r.IntN(len(edges))]
	}
	return (r.Float64() - 0.5) * math.Pow(10, float64(r.IntN(40)-20))
}

// randLen is 0, small, or large (more than hamba's default block length).
func randLen(r *rand.Rand) int {
	switch r.IntN(4) {
	case 0:
		return 0
	case 1:
		return 200 + r.IntN(300)
	}
	return 1 + r.IntN(5)
}

var randRunes = []rune("aZ09 /-_.\"<>&\x00\u00e9\u017c\u00f3\u0142\u0107\u65e5\u672c\U0001F600\u200d\ufffd")

// randString is empty, ASCII or unicode (multi-byte, NUL, emoji), now and
// then longer than 127 bytes (a two-byte length).
func randString(r *rand.Rand) string {
	n := r.IntN(12)
	switch r.IntN(8) {
	case 0:
		return ""
	case 1:
		n = 100 + r.IntN(400)
	}
	b := make([]rune, n)
	for i := range b {
		b[i] = randRunes[r.IntN(len(randRunes))]
	}
	return string(b)
}

// mapsAsEntryArrays parses schema text with every map of string replaced by
// an array of {key, value} records (the same bytes in one block).
func mapsAsEntryArrays(t *testing.T, text string) avro.Schema {
	t.Helper()
	var root any
	if err := json.Unmarshal([]byte(text), &root); err != nil {
		t.Fatal(err)
	}
	n := 0
	var walk func(any) any
	walk = func(x any) any {
		switch x := x.(type) {
		case map[string]any:
			if x["type"] == "map" && x["values"] == "string" {
				n++
				return map[string]any{"type": "array", "items": map[string]any{
					"type": "record", "name": fmt.Sprintf("MapEntry%d", n),
					"fields": []any{
						map[string]any{"name": "key", "type": "string"},
						map[string]any{"name": "value", "type": "string"},
					},
				}}
			}
			for k, v := range x {
				x[k] = walk(v)
			}
		case []any:
			for i, v := range x {
				x[i] = walk(v)
			}
		}
		return x
	}
	b, err := json.Marshal(walk(root))
	if err != nil {
		t.Fatal(err)
	}
	sch, err := avro.ParseBytesWithCache(b, "", &avro.SchemaCache{})
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

type mapEntry struct {
	Key   string `avro:"key"`
	Value string `avro:"value"`
}

// entryArrayType is typ's Avro fields with map[string]string fields as
// []mapEntry.
func entryArrayType(typ reflect.Type) reflect.Type {
	var fields []reflect.StructField
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.Tag.Get("avro") == "-" {
			continue
		}
		if f.Type == reflect.TypeFor[map[string]string]() {
			f.Type = reflect.TypeFor[[]mapEntry]()
		}
		f.Index, f.Offset = nil, 0
		fields = append(fields, f)
	}
	return reflect.StructOf(fields)
}

// toEntryArrays copies v into a new ref (of entryArrayType), maps as
// entries in key order.
func toEntryArrays(v reflect.Value, ref reflect.Type) reflect.Value {
	out := reflect.New(ref).Elem()
	for i := range ref.NumField() {
		f := ref.Field(i)
		src := v.FieldByName(f.Name)
		if m, ok := src.Interface().(map[string]string); ok {
			var es []mapEntry
			for _, k := range slices.Sorted(maps.Keys(m)) {
				es = append(es, mapEntry{k, m[k]})
			}
			out.Field(i).Set(reflect.ValueOf(es))
			continue
		}
		out.Field(i).Set(src)
	}
	return out
}
