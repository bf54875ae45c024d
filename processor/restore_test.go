package processor_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/feedmill/feedmill/state"
)

// The changelog records an applier writes rebuild, in another state dir,
// the same offers and memberships.
func TestRestoreFromAppliedChangelog(t *testing.T) {
	src := newUnit(t)
	src.a.SetPartitions([]int32{0, 1})
	src.apply(src.sellerRec(seller("ACTIVE", 1)), src.ratingRec(rating(4.8, 1)))
	var recs []*kgo.Record
	for i := range 20 {
		r := src.offerRec(offer(fmt.Sprintf("o%02d", i), 1, 3000+i*1000))
		r.Partition = int32(i % 2)
		recs = append(recs, r)
	}
	src.apply(recs...)
	src.apply(src.sellerRec(seller("SUSPENDED", 2)))
	recs = recs[:0]
	for i := range 10 {
		r := src.offerRec(offer(fmt.Sprintf("o%02d", i), 2, 4000+i*1500))
		r.Partition = int32(i % 2)
		recs = append(recs, r)
	}
	del := src.rec("offers", "o19", nil)
	del.Partition = 1
	recs = append(recs, del)
	src.apply(recs...)

	dst := newUnit(t)
	dst.a.SetPartitions([]int32{0, 1})
	dst.apply(dst.sellerRec(seller("SUSPENDED", 2)), dst.ratingRec(rating(4.8, 1)))
	for _, p := range []int32{0, 1} {
		_, err := dst.a.RestorePartition(p, func(apply func(key, value []byte) error) error {
			for _, c := range src.changelog {
				if c.p != p {
					continue
				}
				if err := apply([]byte(c.key), c.value); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		id := fmt.Sprintf("o%02d", i)
		p := int32(i % 2)
		var a, b state.Membership
		bs, bd := src.store.NewBatch(), dst.store.NewBatch()
		fa, err1 := bs.GetMembership(p, id, &a, nil)
		fb, err2 := bd.GetMembership(p, id, &b, nil)
		bs.Close()
		bd.Close()
		if err1 != nil || err2 != nil || fa != fb || a.Seq != b.Seq || !slices.EqualFunc(a.Feeds, b.Feeds, func(x, y state.FeedMembership) bool {
			return x.FeedID == y.FeedID && x.Fingerprint == y.Fingerprint && slices.Equal(x.Destinations, y.Destinations)
		}) {
			t.Errorf("offer %s: source membership %v %+v, restored %v %+v (%v %v)", id, fa, a, fb, b, err1, err2)
		}
	}
}
