package state

import (
	"encoding/binary"
	"encoding/json"
	"maps"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"
)

func TestJobRoundTrip(t *testing.T) {
	for _, j := range []Job{
		{SellerID: "s1", Partition: 0, Changed: 5},
		{SellerID: "s2", Partition: 3, After: "o9", SourceTimeMs: 1234, Changed: ^uint64(0)},
		{SellerID: FeedJobPrefix + "c-1", Partition: 2, After: "o3", Changed: ^uint64(0), Feeds: []string{"new-feed", "changed"}},
	} {
		got, err := decodeJob(j.Partition, j.SellerID, appendJob(nil, &j))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, j) {
			t.Errorf("round trip: got %+v, want %+v", got, j)
		}
	}
	for _, bad := range [][]byte{nil, {9}, {4, 5}, {3}, {5, 0, 0, 0, 3, 1, 'a'}} {
		if _, err := decodeJob(0, "s", bad); err == nil {
			t.Errorf("decodeJob(%v) accepted corrupt input", bad)
		}
	}
}

// A format 1 state dir (global counts and jobs) is migrated by Open:
// counts recounted per partition from the memberships, jobs split per
// partition (the oldest versions expanded to every partition holding the
// seller's offers), the legacy keys gone and the format version raised.
func TestMigrateFormat1(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	db, err := pebble.Open(dir, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	set := func(k, v []byte) {
		t.Helper()
		if err := db.Set(k, v, pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	id, _ := json.Marshal(Identity{FormatVersion: 1, ClusterID: "c", GroupID: "g"})
	set(identityKey, id)
	mem := func(feeds ...string) []byte {
		m := Membership{Seq: 1}
		for _, f := range feeds {
			m.Feeds = append(m.Feeds, FeedMembership{FeedID: f, Destinations: []string{"d"}})
		}
		return AppendMembership(nil, &m)
	}
	set(membershipKey(nil, 0, "a"), mem("f1", "f2"))
	set(membershipKey(nil, 0, "b"), mem("f1"))
	set(membershipKey(nil, 2, "c"), mem("f2"))
	set(append([]byte{prefixLegacyCount}, "f1"...), binary.BigEndian.AppendUint64(nil, 99)) // wrong on purpose
	set(indexKey(nil, 0, "s1", "a"), nil)
	set(indexKey(nil, 2, "s1", "c"), nil)
	set(indexKey(nil, 2, "s2", "z"), nil)
	// v3: explicit parts; v2: one cursor over the owned partitions.
	v3 := []byte{3}
	v3 = binary.AppendUvarint(v3, 2)
	v3 = appendString(appendPartition(v3, 0), "a")
	v3 = appendString(appendPartition(v3, 2), "")
	v3 = binary.AppendUvarint(binary.AppendVarint(v3, 7), 3)
	set(append([]byte{prefixLegacyJob}, "s2"...), v3)
	v2 := appendString(appendPartition([]byte{2}, 1), "o5")
	v2 = binary.AppendUvarint(binary.AppendVarint(v2, 77), 9)
	set(append([]byte{prefixLegacyJob}, "s1"...), v2)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(dir, nil, Options{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	if c, err := s.Counts(nil); err != nil || !maps.Equal(c, map[string]int64{"f1": 2, "f2": 2}) {
		t.Errorf("counts %v %v", c, err)
	}
	if c, err := s.PartitionCounts(2); err != nil || !maps.Equal(c, map[string]int64{"f2": 1}) {
		t.Errorf("counts of partition 2: %v %v", c, err)
	}
	if c, err := s.Counts(func(p int32) bool { return p == 0 }); err != nil || !maps.Equal(c, map[string]int64{"f1": 2, "f2": 1}) {
		t.Errorf("counts of partition 0: %v %v", c, err)
	}
	jobs, err := s.AllJobs()
	if err != nil {
		t.Fatal(err)
	}
	want := []Job{
		{SellerID: "s1", Partition: 0, SourceTimeMs: 77, Changed: 9},
		{SellerID: "s2", Partition: 0, After: "a", SourceTimeMs: 7, Changed: 3},
		{SellerID: "s1", Partition: 2, SourceTimeMs: 77, Changed: 9},
		{SellerID: "s2", Partition: 2, SourceTimeMs: 7, Changed: 3},
	}
	if !reflect.DeepEqual(jobs, want) {
		t.Errorf("jobs\n got %+v\nwant %+v", jobs, want)
	}
	if p2, err := s.Jobs(2); err != nil || len(p2) != 2 {
		t.Errorf("jobs of partition 2: %+v %v", p2, err)
	}
	for _, prefix := range []byte{prefixLegacyCount, prefixLegacyJob} {
		if found, err := s.anyKey(prefix); err != nil || found {
			t.Errorf("legacy %q keys left: %v %v", prefix, found, err)
		}
	}
	got, ok, err := s.Identity()
	if err != nil || !ok || got.FormatVersion != FormatVersion || got.ClusterID != "c" {
		t.Errorf("identity %+v %v %v", got, ok, err)
	}
}
