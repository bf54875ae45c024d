package state

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// benchNames are the feed ids and destinations of a 1300-feed set.
func benchNames() []string {
	names := []string{"all-gmc", "gmc-main", "meta-main", "ceneo", "webhook-demo"}
	for i := 1; i < 1300; i++ {
		names = append(names, fmt.Sprintf("feed-%04d", i))
	}
	return names
}

// benchMemberships encodes n memberships of about 15 feeds each (in feed
// order, one or two destinations; nine in ten start with all-gmc) with 30
// field hashes.
func benchMemberships(n int) [][]byte {
	names := benchNames()
	dests := names[1:5]
	r := rand.New(rand.NewPCG(1, 1))
	out := make([][]byte, n)
	for i := range out {
		m := Membership{Seq: int64(1e15 + i)}
		if r.IntN(10) > 0 { // all-gmc: every active offer
			m.Feeds = append(m.Feeds, FeedMembership{FeedID: names[0], Fingerprint: r.Uint64(), SentAtMs: 1.7e12, Destinations: dests[:1]})
		}
		for f := 5; f < len(names); f++ {
			if r.IntN(1300) < 15 {
				d := []string{dests[r.IntN(3)]}
				if r.IntN(4) == 0 {
					d = append(d, dests[3])
				}
				m.Feeds = append(m.Feeds, FeedMembership{FeedID: names[f], Fingerprint: r.Uint64(), SentAtMs: 1.7e12 + int64(r.IntN(1e9)), Destinations: d})
			}
		}
		for range 30 {
			m.FieldHashes = append(m.FieldHashes, r.Uint32())
		}
		out[i] = AppendMembership(nil, &m)
	}
	return out
}

func BenchmarkDecodeMembership(b *testing.B) {
	vals := benchMemberships(4096)
	names := benchNames()
	known := make(map[string]string, len(names))
	for _, s := range names {
		known[s] = s
	}
	interners := []struct {
		name   string
		intern Interner
	}{
		{"nil", nil},
		{"map", func(b []byte) string {
			if s, ok := known[string(b)]; ok {
				return s
			}
			return string(b)
		}},
		{"table", internTable{}.intern},
		{"names", NewNames(names...).Intern},
		{"const", func([]byte) string { return "x" }},
	}
	for _, in := range interners {
		b.Run("intern="+in.name, func(b *testing.B) {
			var m Membership
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := DecodeMembership(vals[i%len(vals)], &m, in.intern); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// randomMembership draws a membership over names (feed ids and
// destinations from the same pool, some unknown to a Names of names[:k]).
func randomMembership(r *rand.Rand, names []string) *Membership {
	m := &Membership{Seq: r.Int64N(1 << 60)}
	for range r.IntN(6) {
		f := FeedMembership{FeedID: names[r.IntN(len(names))], Fingerprint: r.Uint64(), SentAtMs: r.Int64N(1<<50) - 1<<40}
		for range r.IntN(7) {
			f.Destinations = append(f.Destinations, names[r.IntN(len(names))])
		}
		m.Feeds = append(m.Feeds, f)
	}
	for range r.IntN(5) {
		m.FieldHashes = append(m.FieldHashes, r.Uint32())
	}
	return m
}

// equalMembership compares two memberships, nil and empty slices alike.
func equalMembership(a, b *Membership) bool {
	if a.Seq != b.Seq || len(a.Feeds) != len(b.Feeds) || !slices.Equal(a.FieldHashes, b.FieldHashes) {
		return false
	}
	for i := range a.Feeds {
		x, y := &a.Feeds[i], &b.Feeds[i]
		if x.FeedID != y.FeedID || x.Fingerprint != y.Fingerprint || x.SentAtMs != y.SentAtMs || !slices.Equal(x.Destinations, y.Destinations) {
			return false
		}
	}
	return true
}

// TestDecodeMembershipFastEqualsChecked: on valid encodings, their
// truncations and random byte changes, DecodeMembership into a reused
// Membership (its slots hold the strings of earlier decodes) gives what
// the checked decoder gives into a fresh one, error or value.
func TestDecodeMembershipFastEqualsChecked(t *testing.T) {
	names := []string{"", "a", "gmc", "meta-main", "feed-0001", "feed-0002", "feed-0100", "webhook-demo",
		"a-name-longer-than-sixteen-bytes-1", "a-name-longer-than-sixteen-bytes-2", "ż-unicode"}
	r := rand.New(rand.NewPCG(5, 5))
	interners := []Interner{nil, NewNames(names[:7]...).Intern, internTable{}.intern}
	var reused Membership
	check := func(b []byte, intern Interner) {
		t.Helper()
		var want Membership
		ci := intern
		if ci == nil {
			ci = func(b []byte) string { return string(b) }
		}
		werr := decodeMembershipChecked(b, &want, ci)
		gerr := DecodeMembership(b, &reused, intern)
		if (gerr == nil) != (werr == nil) || (gerr != nil && gerr.Error() != werr.Error()) {
			t.Fatalf("decode %x: error %v, checked decoder %v", b, gerr, werr)
		}
		if gerr == nil && !equalMembership(&reused, &want) {
			t.Fatalf("decode %x: %+v, checked decoder %+v", b, reused, want)
		}
	}
	// A field hash count whose byte length overflows.
	b := binary.AppendUvarint([]byte{membershipVersion, 0, 0}, 1<<62+1)
	check(append(b, 1, 2, 3, 4), nil)
	for i := range 3000 {
		m := randomMembership(r, names)
		b := AppendMembership(nil, m)
		intern := interners[i%len(interners)]
		check(b, intern)
		if !equalMembership(&reused, m) {
			t.Fatalf("round trip: %+v, want %+v", reused, m)
		}
		if i%10 == 0 {
			for n := range len(b) {
				check(b[:n], intern)
			}
		}
		c := slices.Clone(b)
		for range 1 + r.IntN(3) {
			c[r.IntN(len(c))] = byte(r.UintN(256))
		}
		check(c, intern)
		check(append(slices.Clone(b), byte(r.UintN(256))), intern)
	}
}

// FuzzDecodeMembershipFast compares the fast path with the checked decoder.
func FuzzDecodeMembershipFast(f *testing.F) {
	r := rand.New(rand.NewPCG(1, 1))
	names := []string{"a", "feed-0001", "gmc-main", "a-name-longer-than-sixteen-bytes"}
	for range 10 {
		f.Add(AppendMembership(nil, randomMembership(r, names)))
	}
	intern := NewNames(names...).Intern
	f.Fuzz(func(t *testing.T, b []byte) {
		var got, want Membership
		ok := decodeMembershipFast(b, &got, intern)
		err := decodeMembershipChecked(b, &want, intern)
		if ok && err != nil {
			t.Fatalf("fast path accepted what the checked decoder refuses: %v", err)
		}
		if err == nil && !ok {
			t.Fatalf("fast path refused a valid membership")
		}
		if ok && !equalMembership(&got, &want) {
			t.Fatalf("fast %+v, checked %+v", got, want)
		}
	})
}

func TestNames(t *testing.T) {
	long := strings.Repeat("x", 40)
	in := []string{"", "a", "gmc-main", "feed-0001", "feed-0002", long + "1", long + "2", "a"}
	n := NewNames(in...)
	if n.Len() != 7 {
		t.Errorf("Len %d, want 7 (duplicates once)", n.Len())
	}
	for _, s := range in {
		b := []byte(s)
		got := n.Intern(b)
		if got != s {
			t.Fatalf("Intern(%q) = %q", s, got)
		}
		// The canonical string, not a copy: the same bytes in memory.
		if len(s) > 0 && unsafe.StringData(got) != unsafe.StringData(n.names[n.find(b)]) {
			t.Errorf("Intern(%q) is a copy", s)
		}
		if a := testing.AllocsPerRun(10, func() { n.Intern(b) }); a != 0 {
			t.Errorf("Intern(%q): %v allocs", s, a)
		}
	}
	for _, s := range []string{"b", "feed-0003", long, long + "3", "gmc-mai", "gmc-main2"} {
		if got := n.Intern([]byte(s)); got != s {
			t.Errorf("Intern(%q) = %q", s, got)
		}
		if n.find([]byte(s)) >= 0 {
			t.Errorf("%q found", s)
		}
	}
	// Many names: the table grows and every one is found.
	var many []string
	for i := range 5000 {
		many = append(many, fmt.Sprintf("feed-%04d", i))
	}
	nm := NewNames(many...)
	for i, s := range many {
		if nm.find([]byte(s)) != i {
			t.Fatalf("%q not at %d", s, i)
		}
	}
}

func TestFindFrom(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	for range 500 {
		var m Membership
		for _, i := range r.Perm(10)[:r.IntN(8)] {
			m.Feeds = append(m.Feeds, FeedMembership{FeedID: fmt.Sprintf("f%d", i)})
		}
		for id := range 10 {
			feedID := fmt.Sprintf("f%d", id)
			want := m.Find(feedID)
			for from := -2; from <= len(m.Feeds)+2; from++ {
				if got := m.FindFrom(feedID, from); got != want {
					t.Fatalf("%+v FindFrom(%s, %d) = %d, want %d", m.Feeds, feedID, from, got, want)
				}
			}
		}
	}
}

func TestMembershipGroupStandings(t *testing.T) {
	cases := []struct {
		name string
		m    Membership
	}{
		{"none", Membership{Seq: 7, Feeds: []FeedMembership{{FeedID: "a", Fingerprint: 1, SentAtMs: 2, Destinations: []string{"d"}}}, FieldHashes: []uint32{1, 2}}},
		{"one live winner", Membership{Seq: 9, Feeds: []FeedMembership{{FeedID: "cheap", Fingerprint: 3, Destinations: []string{"gmc"}}},
			Groups: []GroupStanding{{FeedID: "cheap", Filter: true, Cand: Candidacy{Key: "p1", Order: OrderFloat(9.5, false), Live: true, Seq: 4},
				Flag: GroupFlag{Key: "p1", Won: true, Seq: 4, GSeq: 12}}}}},
		{"left, no feeds", Membership{Groups: []GroupStanding{
			{FeedID: "cheap", Cand: Candidacy{Seq: 1 << 60}, Flag: GroupFlag{Key: "p\x00é", Seq: 3, GSeq: 1}},
			{FeedID: "best", Filter: true, Cand: Candidacy{Key: "", Live: true, Seq: 1}}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := AppendMembership(nil, &c.m)
			if want := byte(membershipVersion); len(c.m.Groups) == 0 && b[0] != want {
				t.Fatalf("version %d without groups, want %d", b[0], want)
			}
			var got Membership
			got.Groups = []GroupStanding{{FeedID: "stale"}}
			if err := DecodeMembership(b, &got, nil); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.m) && !(len(got.Groups) == 0 && len(c.m.Groups) == 0) {
				t.Fatalf("decoded %+v, want %+v", got, c.m)
			}
			if len(got.Groups) != len(c.m.Groups) {
				t.Fatalf("groups %+v, want %+v", got.Groups, c.m.Groups)
			}
			for i := range got.Groups {
				if got.Groups[i] != c.m.Groups[i] {
					t.Fatalf("group %d: %+v, want %+v", i, got.Groups[i], c.m.Groups[i])
				}
			}
			for n := 1; n < len(b); n++ { // every truncation is an error
				if err := DecodeMembership(b[:n], &got, nil); err == nil && len(c.m.Groups) > 0 {
					t.Fatalf("truncated to %d bytes: no error", n)
				}
			}
		})
	}
}
