package state

import (
	"encoding/binary"
	"reflect"
	"testing"
)

func TestJobRoundTrip(t *testing.T) {
	for _, j := range []Job{
		{SellerID: "s1", Changed: 5},
		{SellerID: "s2", Parts: []JobPart{{Partition: 0, After: "o9"}, {Partition: 3}}, SourceTimeMs: 1234, Changed: ^uint64(0)},
	} {
		got, err := decodeJob(j.SellerID, appendJob(nil, &j))
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Parts) == 0 {
			got.Parts = nil
		}
		if !reflect.DeepEqual(got, j) {
			t.Errorf("round trip: got %+v, want %+v", got, j)
		}
	}
}

// A job stored by an older version (one cursor over the owned
// partitions) decodes as a job over every partition (All), keeping its
// fields and time.
func TestJobLegacyVersions(t *testing.T) {
	v2 := []byte{2}
	v2 = binary.BigEndian.AppendUint32(v2, 1)
	v2 = appendString(v2, "o5")
	v2 = binary.AppendVarint(v2, 77)
	v2 = binary.AppendUvarint(v2, 9)
	j, err := decodeJob("s", v2)
	if err != nil || !j.All || j.Changed != 9 || j.SourceTimeMs != 77 || len(j.Parts) != 0 {
		t.Fatalf("v2: %+v %v", j, err)
	}
	v1 := append([]byte{1}, v2[1:len(v2)-1]...)
	j, err = decodeJob("s", v1)
	if err != nil || !j.All || j.Changed != ^uint64(0) {
		t.Fatalf("v1: %+v %v", j, err)
	}
	for _, bad := range [][]byte{nil, {9}, {3, 5}, {1, 0}} {
		if _, err := decodeJob("s", bad); err == nil {
			t.Errorf("decodeJob(%v) accepted corrupt input", bad)
		}
	}
}
