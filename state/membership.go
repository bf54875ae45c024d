package state

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"slices"
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
	// Groups holds the offer's standing in each grouped feed it was ever
	// a candidate of (docs/grouped-feeds.md), in the feed set's order.
	Groups []GroupStanding
}

// GroupStanding is an offer's standing in one grouped feed: what its
// task last announced to the feed's groups (Cand) and what their tasks
// last decided (Flag). The offer is the feed's member when its filter
// holds and it won the key it stands in (processor/grouping.Member).
type GroupStanding struct {
	FeedID string
	// Filter is whether the feed's filter held at the last evaluation.
	Filter bool
	Cand   Candidacy
	Flag   GroupFlag
}

// Candidacy is an offer's standing for one grouped feed: in the group
// Key with value Order (when Live), as of sequence Seq. Seq grows with
// every change of the offer's candidacy for the feed.
type Candidacy struct {
	Key   string
	Order Order
	Live  bool
	Seq   uint64
}

// GroupFlag is what an offer's task keeps per grouped feed from the
// winner decisions: the key of the newest decision applied, whether the
// offer won it, and that decision's order (the offer's candidacy Seq,
// then the group's decision counter GSeq).
type GroupFlag struct {
	Key       string
	Won       bool
	Seq, GSeq uint64
}

// FindGroup returns the index of feedID in m.Groups, or -1.
func (m *Membership) FindGroup(feedID string) int {
	for i := range m.Groups {
		if m.Groups[i].FeedID == feedID {
			return i
		}
	}
	return -1
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

// FindFrom is Find starting at position from and wrapping around: it
// returns the index of feedID in m.Feeds, or -1 (feed ids are unique in a
// membership). The streaming path writes entries in the feed set's order,
// so a caller visiting feeds in that order (Evaluator.MatchList's) and
// passing the last index found plus one compares each id once. from may
// be out of range.
func (m *Membership) FindFrom(feedID string, from int) int {
	from = min(max(from, 0), len(m.Feeds))
	for i := from; i < len(m.Feeds); i++ {
		if m.Feeds[i].FeedID == feedID {
			return i
		}
	}
	for i := range from {
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
	clear(m.Groups)
	m.Groups = m.Groups[:0]
}

// Interner returns the canonical string for b, so decoding memberships does
// not allocate a new string per feed id and destination. It must return a
// string equal to b, and may return string(b) for names it does not know.
// (*Names).Intern is a cheap one over a fixed set of names.
type Interner func(b []byte) string

// Names is a fixed set of canonical strings, typically the feed ids and
// destinations of a feeds.Set, for decoding memberships: Intern returns
// the set's string equal to b without allocating (a string of the
// stored value that is not in the set is allocated). It is cheaper than a
// Go map lookup: an open-addressing table probed with a hash of at most
// the first and last 8 bytes (longer names hash with hash/maphash).
// Immutable after NewNames; safe for concurrent use.
type Names struct {
	names []string
	slots []nameSlot // len a power of two, at most half full
	seed  maphash.Seed
}

type nameSlot struct {
	tag uint32 // upper half of the name's hash; 0 for an empty slot
	idx uint32 // into names
}

// NewNames returns the set of names (duplicates are kept once).
func NewNames(names ...string) *Names {
	n := &Names{seed: maphash.MakeSeed()}
	size := 16
	for size < 2*len(names) {
		size *= 2
	}
	n.slots = make([]nameSlot, size)
	for _, s := range names {
		if n.find([]byte(s)) >= 0 {
			continue
		}
		h := n.hash([]byte(s))
		for i := h & uint64(len(n.slots)-1); ; i = (i + 1) & uint64(len(n.slots)-1) {
			if n.slots[i].tag == 0 {
				n.slots[i] = nameSlot{tag: tagOf(h), idx: uint32(len(n.names))}
				n.names = append(n.names, s)
				break
			}
		}
	}
	return n
}

// Len returns the number of distinct names.
func (n *Names) Len() int { return len(n.names) }

// Intern returns the set's string equal to b, or string(b) (allocated)
// when b is not in the set. It is an Interner.
func (n *Names) Intern(b []byte) string {
	if i := n.find(b); i >= 0 {
		return n.names[i]
	}
	return string(b)
}

// find returns the index of b in names, or -1.
func (n *Names) find(b []byte) int {
	h := n.hash(b)
	tag := tagOf(h)
	mask := uint64(len(n.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		sl := n.slots[i]
		if sl.tag == 0 {
			return -1
		}
		if sl.tag == tag && n.names[sl.idx] == string(b) {
			return int(sl.idx)
		}
	}
}

func tagOf(h uint64) uint32 { return uint32(h>>32) | 1 }

// hash mixes the length and the first and last 8 bytes of b (all of it up
// to 16 bytes); longer names use maphash.
func (n *Names) hash(b []byte) uint64 {
	var x, y uint64
	switch l := len(b); {
	case l > 16:
		return maphash.Bytes(n.seed, b)
	case l >= 8:
		x, y = binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[l-8:])
	case l >= 4:
		x, y = uint64(binary.LittleEndian.Uint32(b)), uint64(binary.LittleEndian.Uint32(b[l-4:]))
	default:
		for i, c := range b {
			x |= uint64(c) << (8 * i)
		}
	}
	h := (x^uint64(len(b))<<56)*0x9E3779B97F4A7C15 ^ y*0xC2B2AE3D27D4EB4F
	h ^= h >> 29
	h *= 0x94D049BB133111EB
	return h ^ h>>32
}

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

// Membership encodings: version 1 has no group standings; version 2
// appends them. A membership without any is written as version 1.
const (
	membershipVersion       = 1
	membershipVersionGroups = 2
)

// Group standing flag bits.
const (
	standingFilter = 1 << iota
	standingLive
	standingWon
)

// AppendMembership appends the encoding of m to dst.
func AppendMembership(dst []byte, m *Membership) []byte {
	if len(m.Groups) == 0 {
		dst = append(dst, membershipVersion)
	} else {
		dst = append(dst, membershipVersionGroups)
	}
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
	if len(m.Groups) == 0 {
		return dst
	}
	dst = binary.AppendUvarint(dst, uint64(len(m.Groups)))
	for i := range m.Groups {
		g := &m.Groups[i]
		var bits byte
		if g.Filter {
			bits |= standingFilter
		}
		if g.Cand.Live {
			bits |= standingLive
		}
		if g.Flag.Won {
			bits |= standingWon
		}
		dst = appendString(dst, g.FeedID)
		dst = append(dst, bits)
		dst = appendString(dst, g.Cand.Key)
		dst = binary.BigEndian.AppendUint64(dst, uint64(g.Cand.Order))
		dst = binary.AppendUvarint(dst, g.Cand.Seq)
		dst = appendString(dst, g.Flag.Key)
		dst = binary.AppendUvarint(dst, g.Flag.Seq)
		dst = binary.AppendUvarint(dst, g.Flag.GSeq)
	}
	return dst
}

// DecodeMembership decodes b into m, reusing m's slices. intern may be
// nil (each string is then allocated); otherwise it must return a string
// equal to its argument. A feed id equal to the one m held at the same
// position, and a destination equal to one of the last few decoded in the
// same membership, reuse that string without calling intern. It returns an error wrapping ErrCorrupt when b is not a whole
// membership.
func DecodeMembership(b []byte, m *Membership, intern Interner) error {
	if intern == nil {
		intern = func(b []byte) string { return string(b) }
	}
	if decodeMembershipFast(b, m, intern) {
		return nil
	}
	return decodeMembershipChecked(b, m, intern)
}

// uvarintAt decodes the uvarint at b[p:] and returns it with the position
// after it; the position is -1 when there is none.
func uvarintAt(b []byte, p int) (uint64, int) {
	if p < len(b) && b[p] < 0x80 {
		return uint64(b[p]), p + 1
	}
	v, n := binary.Uvarint(b[p:])
	if n <= 0 {
		return 0, -1
	}
	return v, p + n
}

// bytesAt returns the length-prefixed bytes at b[p:] (capacity capped)
// and the position after them; -1 when they are truncated.
func bytesAt(b []byte, p int) ([]byte, int) {
	l, p := uvarintAt(b, p)
	if p < 0 || l > uint64(len(b)-p) {
		return nil, -1
	}
	e := p + int(l)
	return b[p:e:e], e
}

// decodeMembershipFast is DecodeMembership for a well-formed b, with the
// checks folded into positions; it returns false at the first problem and
// leaves the precise error to decodeMembershipChecked.
func decodeMembershipFast(b []byte, m *Membership, intern Interner) bool {
	m.Reset()
	if len(b) == 0 || (b[0] != membershipVersion && b[0] != membershipVersionGroups) {
		return false
	}
	seq, p := uvarintAt(b, 1)
	if p < 0 {
		return false
	}
	m.Seq = int64(seq)
	var n uint64
	if n, p = uvarintAt(b, p); p < 0 || n > uint64(len(b)-p) {
		return false
	}
	// The destinations of one membership come from a handful of names:
	// the last distinct ones decoded are reused without interning.
	var dests [4]string
	nd, next := 0, 0
	for range n {
		if len(m.Feeds) < cap(m.Feeds) {
			m.Feeds = m.Feeds[:len(m.Feeds)+1]
		} else {
			m.Feeds = append(m.Feeds, FeedMembership{})
		}
		f := &m.Feeds[len(m.Feeds)-1]
		var id []byte
		if id, p = bytesAt(b, p); p < 0 || len(b)-p < 8 {
			return false
		}
		if f.FeedID != string(id) { // else the slot's last id is this one
			f.FeedID = intern(id)
		}
		f.Fingerprint = binary.BigEndian.Uint64(b[p:])
		p += 8
		sent, k := binary.Varint(b[p:])
		if k <= 0 {
			return false
		}
		f.SentAtMs, p = sent, p+k
		var ndst uint64
		if ndst, p = uvarintAt(b, p); p < 0 || ndst > uint64(len(b)-p) {
			return false
		}
		f.Destinations = f.Destinations[:0]
		for range ndst {
			var d []byte
			if d, p = bytesAt(b, p); p < 0 {
				return false
			}
			k := 0
			for k < nd && dests[k] != string(d) {
				k++
			}
			if k == nd {
				if nd < len(dests) {
					nd++
				} else {
					k, next = next, (next+1)%len(dests)
				}
				dests[k] = intern(d)
			}
			f.Destinations = append(f.Destinations, dests[k])
		}
	}
	var nh uint64
	if b[0] == membershipVersion {
		if nh, p = uvarintAt(b, p); p < 0 || (len(b)-p)%4 != 0 || nh != uint64((len(b)-p)/4) {
			return false
		}
		m.FieldHashes = slices.Grow(m.FieldHashes, int(nh))
		for ; p < len(b); p += 4 {
			m.FieldHashes = append(m.FieldHashes, binary.BigEndian.Uint32(b[p:]))
		}
		return true
	}
	// Version 2: the group standings follow the field hashes; the
	// checked decoder reads them.
	return false
}

// decodeMembershipChecked decodes b with a check and a precise error at
// every step.
func decodeMembershipChecked(b []byte, m *Membership, intern Interner) error {
	m.Reset()
	if len(b) == 0 || (b[0] != membershipVersion && b[0] != membershipVersionGroups) {
		return fmt.Errorf("%w: membership version", ErrCorrupt)
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
	if b[0] == membershipVersionGroups {
		ng := r.uvarint("group standings")
		if ng == 0 || ng > uint64(len(r.b)) {
			return fmt.Errorf("%w: group standing count %d", ErrCorrupt, ng)
		}
		for i := uint64(0); i < ng && r.err == nil; i++ {
			var g GroupStanding
			g.FeedID = intern(r.bytes("group feed id"))
			bits := r.bytes1("group standing bits")
			g.Filter, g.Cand.Live, g.Flag.Won = bits&standingFilter != 0, bits&standingLive != 0, bits&standingWon != 0
			g.Cand.Key = string(r.bytes("group key"))
			g.Cand.Order = Order(r.u64("group order"))
			g.Cand.Seq = r.uvarint("candidacy seq")
			g.Flag.Key = string(r.bytes("decided key"))
			g.Flag.Seq = r.uvarint("decision seq")
			g.Flag.GSeq = r.uvarint("group decision seq")
			m.Groups = append(m.Groups, g)
		}
	}
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%w: %d trailing membership bytes", ErrCorrupt, len(r.b))
	}
	return nil
}
