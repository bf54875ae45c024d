package records

import (
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"time"
)

// Hand-written Avro binary encoders for feedmill's own schemas. They append
// to the caller's buffer, allocate nothing but the attribute-key scratch
// (pooled), and are deterministic: map entries are written in key order, so
// equal records always encode to equal bytes (hamba/avro writes maps in Go
// iteration order). The tests check them against hamba's decoder.

var (
	errEnumSymbol = errors.New("unknown enum symbol")
	errStockRange = errors.New("field stock: out of avro int range")
)

// enumError names the field whose value is not a symbol of its enum.
type enumError struct {
	field, value string
}

func (e *enumError) Error() string {
	return "field " + e.field + ": unknown enum symbol " + quote(e.value)
}

func (e *enumError) Unwrap() error { return errEnumSymbol }

func quote(s string) string {
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	b = append(b, s...)
	return string(append(b, '"'))
}

func appendLong(dst []byte, v int64) []byte {
	return binary.AppendUvarint(dst, uint64(v<<1)^uint64(v>>63))
}

func appendString(dst []byte, s string) []byte {
	dst = appendLong(dst, int64(len(s)))
	return append(dst, s...)
}

func appendBool(dst []byte, b bool) []byte {
	if b {
		return append(dst, 1)
	}
	return append(dst, 0)
}

func appendDouble(dst []byte, f float64) []byte {
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
}

func appendMillis(dst []byte, t time.Time) []byte {
	return appendLong(dst, t.Unix()*1e3+int64(t.Nanosecond()/1e6))
}

// appendOptString writes a ["null","string"] union.
func appendOptString(dst []byte, s *string) []byte {
	if s == nil {
		return append(dst, 0)
	}
	return appendString(append(dst, 2), *s)
}

func appendStrings(dst []byte, ss []string) []byte {
	if len(ss) > 0 {
		dst = appendLong(dst, int64(len(ss)))
		for _, s := range ss {
			dst = appendString(dst, s)
		}
	}
	return append(dst, 0)
}

func enumIndex(field, v string, symbols ...string) (int64, error) {
	for i, s := range symbols {
		if s == v {
			return int64(i), nil
		}
	}
	return 0, &enumError{field: field, value: v}
}

// appendOffer appends the Avro body of o; keys is scratch for sorting the
// attribute keys and is returned for reuse.
func appendOffer(dst []byte, o *Offer, keys []string) ([]byte, []string, error) {
	cond, err := enumIndex("condition", o.Condition, "NEW", "USED", "REFURBISHED")
	if err != nil {
		return dst, keys, err
	}
	status, err := enumIndex("status", o.Status, "ACTIVE", "INACTIVE", "ENDED")
	if err != nil {
		return dst, keys, err
	}
	dst = appendString(dst, o.ID)
	dst = appendString(dst, o.SellerID)
	dst = appendOptString(dst, o.ProductID)
	dst = appendString(dst, o.Title)
	dst = appendString(dst, o.Description)
	dst = appendString(dst, o.Category)
	dst = appendLong(dst, int64(o.PriceMinor))
	dst = appendString(dst, o.Currency)
	if o.Stock < math.MinInt32 || o.Stock > math.MaxInt32 {
		return dst, keys, errStockRange
	}
	dst = appendLong(dst, int64(o.Stock))
	dst = appendLong(dst, cond)
	dst = appendLong(dst, status)
	dst = appendString(dst, o.URL)
	dst = appendStrings(dst, o.Images)
	dst = appendOptString(dst, o.Brand)
	dst = appendOptString(dst, o.GTIN)
	if len(o.Attributes) > 0 {
		keys = keys[:0]
		for k := range o.Attributes {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = appendLong(dst, int64(len(keys)))
		for _, k := range keys {
			dst = appendString(dst, k)
			dst = appendString(dst, o.Attributes[k])
		}
		clear(keys) // drop string references held by pooled scratch
	}
	dst = append(dst, 0)
	dst = appendMillis(dst, o.UpdatedAt)
	dst = appendLong(dst, o.Version)
	return dst, keys, nil
}

func appendSeller(dst []byte, s *Seller) ([]byte, error) {
	status, err := enumIndex("status", s.Status, "ACTIVE", "SUSPENDED")
	if err != nil {
		return dst, err
	}
	dst = appendString(dst, s.ID)
	dst = appendString(dst, s.Name)
	dst = appendString(dst, s.Country)
	dst = appendLong(dst, status)
	dst = appendBool(dst, s.SuperSeller)
	dst = appendMillis(dst, s.UpdatedAt)
	return appendLong(dst, s.Version), nil
}

func appendRating(dst []byte, r *Rating) []byte {
	dst = appendString(dst, r.SellerID)
	dst = appendDouble(dst, r.Average)
	dst = appendLong(dst, r.Count)
	dst = appendDouble(dst, r.PositivePct)
	dst = appendMillis(dst, r.UpdatedAt)
	return appendLong(dst, r.Version)
}

func appendFeedEvent(dst []byte, e *FeedEvent, keys []string) ([]byte, []string, error) {
	cause, err := enumIndex("cause", e.Cause, CauseChange, CauseReconcile, CauseRefresh)
	if err != nil {
		return dst, keys, err
	}
	dst = appendString(dst, e.EventID)
	dst = appendString(dst, e.OfferID)
	dst = appendLong(dst, e.Seq)
	dst = appendMillis(dst, e.EmittedAt)
	dst = appendLong(dst, cause)
	if len(e.Entries) > 0 {
		dst = appendLong(dst, int64(len(e.Entries)))
		for i := range e.Entries {
			en := &e.Entries[i]
			action, err := enumIndex("entries.action", en.Action, ActionAdd, ActionUpdate, ActionRemove, ActionRefresh)
			if err != nil {
				return dst, keys, err
			}
			dst = appendString(dst, en.FeedID)
			dst = appendString(dst, en.Destination)
			dst = appendLong(dst, action)
		}
	}
	dst = append(dst, 0)
	dst = appendStrings(dst, e.ChangedFields)
	if e.Offer == nil {
		return append(dst, 0), keys, nil
	}
	dst = append(dst, 2)
	dst, keys, err = appendOffer(dst, &e.Offer.Offer, keys)
	if err != nil {
		return dst, keys, err
	}
	if e.Offer.Seller == nil {
		dst = append(dst, 0)
	} else if dst, err = appendSeller(append(dst, 2), e.Offer.Seller); err != nil {
		return dst, keys, err
	}
	if e.Offer.Rating == nil {
		return append(dst, 0), keys, nil
	}
	return appendRating(append(dst, 2), e.Offer.Rating), keys, nil
}
