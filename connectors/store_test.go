package connectors

import (
	"slices"
	"testing"

	"github.com/feedmill/feedmill/internal/records"
)

func TestStateEncoding(t *testing.T) {
	for _, st := range []offerState{
		{seq: 1},
		{seq: 42, feeds: []records.FeedEntry{{FeedID: "a", Destination: "d1"}, {FeedID: "b", Destination: "d1"}}},
		{seq: -1, feeds: []records.FeedEntry{{FeedID: "", Destination: ""}}},
	} {
		var got offerState
		if err := decodeState(appendState(nil, &st), &got); err != nil {
			t.Fatalf("%+v: %v", st, err)
		}
		if !got.known || got.seq != st.seq || !slices.Equal(got.feeds, st.feeds) {
			t.Errorf("round trip %+v = %+v", st, got)
		}
	}
	for _, bad := range [][]byte{nil, {2}, {2, 5}, {2, 1, 3, 'a'}, append(appendState(nil, &offerState{seq: 1}), 0)} {
		var got offerState
		if err := decodeState(bad, &got); err == nil {
			t.Errorf("decode %v: no error", bad)
		}
	}
}

func FuzzStateDecode(f *testing.F) {
	f.Add(appendState(nil, &offerState{seq: 3, feeds: []records.FeedEntry{{FeedID: "a", Destination: "d"}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var st offerState
		if decodeState(b, &st) == nil {
			var again offerState
			if err := decodeState(appendState(nil, &st), &again); err != nil || again.seq != st.seq || !slices.Equal(again.feeds, st.feeds) {
				t.Fatalf("re-encode of %v differs", b)
			}
		}
	})
}

func TestApplyMembership(t *testing.T) {
	var st offerState
	st.apply(records.FeedEntry{FeedID: "b", Destination: "d", Action: records.ActionAdd})
	st.apply(records.FeedEntry{FeedID: "a", Destination: "d", Action: records.ActionUpdate})
	st.apply(records.FeedEntry{FeedID: "a", Destination: "d", Action: records.ActionAdd})
	if len(st.feeds) != 2 || st.feeds[0].FeedID != "a" {
		t.Fatalf("feeds %v", st.feeds)
	}
	st.apply(records.FeedEntry{FeedID: "b", Destination: "d", Action: records.ActionRemove})
	st.apply(records.FeedEntry{FeedID: "x", Destination: "d", Action: records.ActionRemove})
	if !st.member() || len(st.feeds) != 1 {
		t.Fatalf("feeds %v", st.feeds)
	}
	st.apply(records.FeedEntry{FeedID: "a", Destination: "d", Action: records.ActionRemove})
	if st.member() {
		t.Fatal("still a member")
	}
}
