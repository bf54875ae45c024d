package records

import (
	"bytes"
	"errors"
	"math"
	"strconv"
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
		}, errStockRange},
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
			if _, ok := IsReject(err); ok {
				t.Errorf("encode error is a reject: %v", err)
			}
			if string(out) != "x" {
				t.Errorf("dst = %q, want it unchanged", out)
			}
		})
	}
}
