package processor

import (
	"encoding/binary"
	"math"

	"github.com/cespare/xxhash/v2"
)

// The names of the stored per-field hashes (viewFields) and hashView are
// generated into fields_gen.go from the data model
// (internal/records/modelgen); this file holds the hash of each kind of
// value. A kind's hash must never change: stored hashes would all compare
// as changed.

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

// boolean hashes false as 0 and true as 1.
func (h *fieldHasher) boolean(v bool) uint32 {
	if v {
		return h.i64(1)
	}
	return h.i64(0)
}

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
