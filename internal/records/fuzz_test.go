package records

import (
	"testing"
)

func FuzzDecodeOffer(f *testing.F) {
	tr := newTestRegistry(f)
	s := tr.serde
	id, err := s.Register(bg, "offers-value", KindOffer)
	if err != nil {
		f.Fatal(err)
	}
	o := sampleOffer()
	good, err := s.AppendOffer(nil, id, &o)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good[5:])
	f.Add([]byte{})
	f.Add(good[5:20])
	f.Add(append(append([]byte{}, good[5:]...), 0))
	header := good[:5:5]
	var dst Offer
	f.Fuzz(func(t *testing.T, body []byte) {
		err := s.DecodeOffer(bg, append(header, body...), &dst)
		if err == nil {
			if _, rerr := s.AppendOffer(nil, id, &dst); rerr != nil {
				t.Fatalf("decoded offer does not re-encode: %v", rerr)
			}
			return
		}
		if _, ok := IsReject(err); !ok {
			t.Fatalf("non-reject error for a known schema id: %v", err)
		}
	})
}

func FuzzUnmarshalOffer(f *testing.F) {
	s := NewSerde(nil)
	o := sampleOffer()
	good, err := s.MarshalOffer(nil, &o)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{})
	f.Add(good[:len(good)/2])
	var dst Offer
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := s.UnmarshalOffer(b, &dst); err != nil {
			if _, ok := IsReject(err); ok {
				t.Fatalf("state error is a reject: %v", err)
			}
			return
		}
		again, err := s.MarshalOffer(nil, &dst)
		if err != nil {
			t.Fatalf("decoded offer does not re-encode: %v", err)
		}
		var dst2 Offer
		if err := s.UnmarshalOffer(again, &dst2); err != nil {
			t.Fatalf("re-encoded offer does not decode: %v", err)
		}
	})
}
