package processor

import (
	"encoding/binary"
	"math"

	"github.com/cespare/xxhash/v2"

	"github.com/feedmill/feedmill/internal/records"
)

// viewFields are the dotted names of the joined view's fields, in the order
// their hashes are stored in state.Membership.FieldHashes. Append only:
// reordering would make every stored hash compare as changed.
var viewFields = [...]string{
	"offer.id", "offer.seller_id", "offer.product_id", "offer.title", "offer.description",
	"offer.category", "offer.price_minor", "offer.currency", "offer.stock", "offer.condition",
	"offer.status", "offer.url", "offer.images", "offer.brand", "offer.gtin",
	"offer.attributes", "offer.updated_at", "offer.version",
	"seller.id", "seller.name", "seller.country", "seller.status", "seller.super_seller",
	"seller.updated_at", "seller.version",
	"rating.seller_id", "rating.average", "rating.count", "rating.positive_pct",
	"rating.updated_at", "rating.version",
}

const numViewFields = len(viewFields)

// fieldHasher hashes each field of a joined view without allocating.
type fieldHasher struct {
	d   *xxhash.Digest
	buf []byte
}

func newFieldHasher() *fieldHasher { return &fieldHasher{d: xxhash.New()} }

func (h *fieldHasher) str(s string) uint32 { return uint32(xxhash.Sum64String(s)) }

func (h *fieldHasher) optStr(s *string) uint32 {
	if s == nil {
		return 0
	}
	return uint32(xxhash.Sum64String(*s)) | 1
}

func (h *fieldHasher) i64(v int64) uint32 {
	h.buf = binary.BigEndian.AppendUint64(h.buf[:0], uint64(v))
	return uint32(xxhash.Sum64(h.buf))
}

func (h *fieldHasher) f64(v float64) uint32 { return h.i64(int64(math.Float64bits(v))) }

func (h *fieldHasher) list(l []string) uint32 {
	h.d.Reset()
	for _, s := range l {
		h.buf = binary.AppendUvarint(h.buf[:0], uint64(len(s)))
		_, _ = h.d.Write(h.buf) // xxhash.Digest.Write never fails
		_, _ = h.d.WriteString(s)
	}
	return uint32(h.d.Sum64())
}

// attrs hashes a map independently of iteration order (sum of entry hashes).
func (h *fieldHasher) attrs(m map[string]string) uint32 {
	var sum uint64
	for k, v := range m {
		h.d.Reset()
		_, _ = h.d.WriteString(k)
		_, _ = h.d.Write([]byte{0})
		_, _ = h.d.WriteString(v)
		sum += h.d.Sum64()
	}
	return uint32(sum ^ uint64(len(m)))
}

// hashView appends the hash of every view field to dst. A nil seller or
// rating hashes its fields as 0, distinct from any present value.
func (h *fieldHasher) hashView(dst []uint32, o *records.Offer, s *records.Seller, r *records.Rating) []uint32 {
	dst = append(dst,
		h.str(o.ID), h.str(o.SellerID), h.optStr(o.ProductID), h.str(o.Title), h.str(o.Description),
		h.str(o.Category), h.i64(int64(o.PriceMinor)), h.str(o.Currency), h.i64(int64(o.Stock)), h.str(o.Condition),
		h.str(o.Status), h.str(o.URL), h.list(o.Images), h.optStr(o.Brand), h.optStr(o.GTIN),
		h.attrs(o.Attributes), h.i64(o.UpdatedAt.UnixMilli()), h.i64(o.Version),
	)
	if s == nil {
		dst = append(dst, 0, 0, 0, 0, 0, 0, 0)
	} else {
		b := int64(0)
		if s.SuperSeller {
			b = 1
		}
		dst = append(dst, h.str(s.ID)|1, h.str(s.Name)|1, h.str(s.Country)|1, h.str(s.Status)|1,
			h.i64(b)|1, h.i64(s.UpdatedAt.UnixMilli())|1, h.i64(s.Version)|1)
	}
	if r == nil {
		dst = append(dst, 0, 0, 0, 0, 0, 0)
	} else {
		dst = append(dst, h.str(r.SellerID)|1, h.f64(r.Average)|1, h.i64(r.Count)|1, h.f64(r.PositivePct)|1,
			h.i64(r.UpdatedAt.UnixMilli())|1, h.i64(r.Version)|1)
	}
	return dst
}

// appendChangedFields appends the names of fields whose hash differs between
// prev and cur. With no previous hashes every field of cur that is present
// (non-zero hash) counts as changed.
func appendChangedFields(dst []string, prev, cur []uint32) []string {
	for i, h := range cur {
		if len(prev) != len(cur) {
			if h != 0 {
				dst = append(dst, viewFields[i])
			}
			continue
		}
		if prev[i] != h {
			dst = append(dst, viewFields[i])
		}
	}
	return dst
}
