package state

import (
	"bytes"
	"strings"
	"testing"
)

// The wrap a uint16 length allowed: a seller id of 65,537 bytes read as
// one of 1 byte, whose key then equals that of seller "a" with a long
// offer id.
func TestIndexKeyLongSellerDoesNotCollide(t *testing.T) {
	long := strings.Repeat("a", 1<<16+1)
	k1 := indexKey(nil, 3, long, "x")
	k2 := indexKey(nil, 3, "a", strings.Repeat("a", 1<<16)+"x")
	if bytes.Equal(k1, k2) {
		t.Fatal("a 65,537-byte seller id collides with seller \"a\"")
	}
	if bytes.HasPrefix(k2, indexPrefix(nil, 3, long)) || bytes.HasPrefix(k1, indexPrefix(nil, 3, "a")) {
		t.Fatal("one seller's index key lies in another seller's prefix scan")
	}
}

// No seller's index keys fall inside another seller's prefix, for ids
// around every length boundary of the encoding, including ids that are
// prefixes of each other; and short ids keep the two-byte form.
func TestIndexPrefixIsPrefixFree(t *testing.T) {
	var sellers []string
	for _, n := range []int{0, 1, 2, 255, 256, 0xfffe, 0xffff, 0x10000, 0x10001, 70_000, 0x1ffff, 0x20001} {
		sellers = append(sellers, strings.Repeat("a", n))
		if n > 0 {
			sellers = append(sellers, strings.Repeat("\xff", n))
		}
	}
	for i, a := range sellers {
		for j, b := range sellers {
			if i == j {
				continue
			}
			for _, offer := range []string{"", "a", "\xff\xff\x00\x01a", strings.Repeat("a", 0x10001)} {
				if k := indexKey(nil, 0, a, offer); bytes.HasPrefix(k, indexPrefix(nil, 0, b)) {
					t.Fatalf("key of seller len %d, offer len %d is under the prefix of seller len %d", len(a), len(offer), len(b))
				}
			}
		}
	}
	if got, want := indexPrefix(nil, 1, "s-1"), []byte{prefixIndex, 0, 0, 0, 1, 0, 3, 's', '-', '1'}; !bytes.Equal(got, want) {
		t.Fatalf("short seller prefix %x, want %x (the form existing stores hold)", got, want)
	}
}

func TestAppendLenStringLongForm(t *testing.T) {
	for _, n := range []int{0xffff, 70_000} {
		s := strings.Repeat("z", n)
		b := appendLenString(nil, s)
		if b[0] != 0xff || b[1] != 0xff || !bytes.HasSuffix(b, []byte(s)) || len(b) != 2+3+n {
			t.Fatalf("len %d: header % x, total %d", n, b[:6], len(b))
		}
	}
}
