package state

import (
	"encoding/binary"
	"fmt"
)

// Membership is what the streaming path has emitted for one offer: the feeds
// it is in (as last announced to their destinations), the per-offer event
// sequence and a hash per field of the last emitted joined view, used to
// compute changed_fields.
type Membership struct {
	// Seq is the seq of the last event emitted for the offer (0: none yet).
	Seq int64
	// Feeds holds one entry per feed the offer is a member of.
	Feeds []FeedMembership
	// FieldHashes hashes each field of the last emitted view, in the order
	// the processor defines; empty before the first event.
	FieldHashes []uint32
}

// FeedMembership is the offer's membership in one feed.
type FeedMembership struct {
	FeedID string
	// Fingerprint hashes the item the feed's template rendered when the
	// offer was last announced (ADD, UPDATE, REFRESH).
	Fingerprint uint64
	// SentAtMs is when an event for this feed was last emitted (unix ms);
	// the full pass refreshes entries older than refresh_after.
	SentAtMs int64
	// Destinations are the destinations the offer was announced to.
	Destinations []string
}

// Find returns the index of feedID in m.Feeds, or -1.
func (m *Membership) Find(feedID string) int {
	for i := range m.Feeds {
		if m.Feeds[i].FeedID == feedID {
			return i
		}
	}
	return -1
}

// Reset empties m, keeping its slices for reuse.
func (m *Membership) Reset() {
	m.Seq = 0
	for i := range m.Feeds {
		m.Feeds[i].Destinations = m.Feeds[i].Destinations[:0]
	}
	m.Feeds = m.Feeds[:0]
	m.FieldHashes = m.FieldHashes[:0]
}

// Interner returns the canonical string for b, so decoding memberships does
// not allocate a new string per feed id and destination. It may return
// string(b) for names it does not know.
type Interner func(b []byte) string

// internTable interns the feed ids and destinations of decoded
// memberships: each distinct string is allocated once.
type internTable map[string]string

func (t internTable) intern(b []byte) string {
	if n, ok := t[string(b)]; ok {
		return n
	}
	n := string(b)
	t[n] = n
	return n
}

const membershipVersion = 1

// AppendMembership appends the encoding of m to dst.
func AppendMembership(dst []byte, m *Membership) []byte {
	dst = append(dst, membershipVersion)
	dst = binary.AppendUvarint(dst, uint64(m.Seq))
	dst = binary.AppendUvarint(dst, uint64(len(m.Feeds)))
	for i := range m.Feeds {
		f := &m.Feeds[i]
		dst = appendString(dst, f.FeedID)
		dst = binary.BigEndian.AppendUint64(dst, f.Fingerprint)
		dst = binary.AppendVarint(dst, f.SentAtMs)
		dst = binary.AppendUvarint(dst, uint64(len(f.Destinations)))
		for _, d := range f.Destinations {
			dst = appendString(dst, d)
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(m.FieldHashes)))
	for _, h := range m.FieldHashes {
		dst = binary.BigEndian.AppendUint32(dst, h)
	}
	return dst
}

// DecodeMembership decodes b into m, reusing m's slices. intern may be nil.
func DecodeMembership(b []byte, m *Membership, intern Interner) error {
	m.Reset()
	if len(b) == 0 || b[0] != membershipVersion {
		return fmt.Errorf("%w: membership version", ErrCorrupt)
	}
	if intern == nil {
		intern = func(b []byte) string { return string(b) }
	}
	r := reader{b: b[1:]}
	m.Seq = int64(r.uvarint("membership seq"))
	n := r.uvarint("membership feeds")
	if n > uint64(len(r.b)) {
		return fmt.Errorf("%w: membership feed count %d", ErrCorrupt, n)
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		if len(m.Feeds) < cap(m.Feeds) {
			m.Feeds = m.Feeds[:len(m.Feeds)+1]
		} else {
			m.Feeds = append(m.Feeds, FeedMembership{})
		}
		f := &m.Feeds[len(m.Feeds)-1]
		f.FeedID = intern(r.bytes("feed id"))
		f.Fingerprint = r.u64("fingerprint")
		f.SentAtMs = r.varint("sent at")
		nd := r.uvarint("destinations")
		if nd > uint64(len(r.b)) {
			return fmt.Errorf("%w: destination count %d", ErrCorrupt, nd)
		}
		f.Destinations = f.Destinations[:0]
		for j := uint64(0); j < nd && r.err == nil; j++ {
			f.Destinations = append(f.Destinations, intern(r.bytes("destination")))
		}
	}
	nh := r.uvarint("field hashes")
	if nh > uint64(len(r.b)) {
		return fmt.Errorf("%w: field hash count %d", ErrCorrupt, nh)
	}
	for i := uint64(0); i < nh && r.err == nil; i++ {
		m.FieldHashes = append(m.FieldHashes, r.u32("field hash"))
	}
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%w: %d trailing membership bytes", ErrCorrupt, len(r.b))
	}
	return nil
}
