package records

import "fmt"

// The state encoding is the bare Avro body of feedmill's own schema (no
// wire header, no schema id): the state package stores it in Pebble and
// reads it back with the same binary. It is not meant for other programs.

// MarshalOffer appends the state encoding of o to dst and returns the
// extended slice; on error (an enum field that is not a symbol of its enum,
// stock beyond the Avro int range) dst is returned unchanged. o is only
// read; the caller owns dst and the result. Safe for concurrent use. The
// encoding is deterministic (attributes in key order), so equal offers give
// equal bytes.
func (s *Serde) MarshalOffer(dst []byte, o *Offer) ([]byte, error) {
	kp := s.keysPool.Get().(*[]string)
	out, keys, err := appendOffer(dst, o, *kp)
	*kp = keys
	s.keysPool.Put(kp)
	if err != nil {
		return dst, fmt.Errorf("encode %s: %w", KindOffer, err)
	}
	return out, nil
}

// UnmarshalOffer decodes the state encoding b into o (overwriting all of
// it) and sets o.Price. o does not retain b. Errors mean corrupt state, not
// a bad record: they are not *RejectError. Safe for concurrent use with
// distinct o.
func (s *Serde) UnmarshalOffer(b []byte, o *Offer) error {
	*o = Offer{}
	if err := s.unmarshalState(KindOffer, b, o); err != nil {
		return err
	}
	DerivePrice(o)
	return nil
}

// MarshalSeller is MarshalOffer for a Seller.
func (s *Serde) MarshalSeller(dst []byte, v *Seller) ([]byte, error) {
	out, err := appendSeller(dst, v)
	if err != nil {
		return dst, fmt.Errorf("encode %s: %w", KindSeller, err)
	}
	return out, nil
}

// UnmarshalSeller is UnmarshalOffer for a Seller.
func (s *Serde) UnmarshalSeller(b []byte, v *Seller) error {
	*v = Seller{}
	return s.unmarshalState(KindSeller, b, v)
}

// MarshalRating is MarshalOffer for a Rating; it never fails.
func (s *Serde) MarshalRating(dst []byte, v *Rating) ([]byte, error) {
	return appendRating(dst, v), nil
}

// UnmarshalRating is UnmarshalOffer for a Rating.
func (s *Serde) UnmarshalRating(b []byte, v *Rating) error {
	*v = Rating{}
	return s.unmarshalState(KindRating, b, v)
}

func (s *Serde) unmarshalState(kind Kind, b []byte, dst any) error {
	if err := s.unmarshal(s.ours.parsed[kind], b, dst); err != nil {
		return fmt.Errorf("unmarshal %s state: %w", kind, plainError{err})
	}
	return nil
}

// plainError hides a *RejectError from errors.As: corrupt state must never
// be mistaken for a bad input record.
type plainError struct{ err error }

func (e plainError) Error() string { return e.err.Error() }
