package processor_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/feedmill/feedmill/processor"
)

// Every partition gets min(n, members-1) standbys, never its owner, and
// the choice of a partition does not depend on members that rank below.
func TestStandbyChoice(t *testing.T) {
	for _, tc := range []struct {
		members, n int
		total      int32
	}{
		{1, 1, 4}, {2, 1, 4}, {3, 1, 12}, {3, 2, 12}, {5, 2, 32}, {4, 8, 8},
	} {
		t.Run(fmt.Sprintf("members=%d/n=%d", tc.members, tc.n), func(t *testing.T) {
			var members []string
			for i := range tc.members {
				members = append(members, fmt.Sprintf("host-%d", i))
			}
			owners := map[int32]string{}
			for p := range tc.total {
				owners[p] = members[int(p)%len(members)]
			}
			standbys := map[int32][]string{}
			for _, m := range members {
				for _, p := range processor.StandbyChoice(m, tc.total, members, owners, tc.n) {
					standbys[p] = append(standbys[p], m)
				}
			}
			want := min(tc.n, tc.members-1)
			for p := range tc.total {
				if len(standbys[p]) != want {
					t.Errorf("partition %d: standbys %v, want %d", p, standbys[p], want)
				}
				if slices.Contains(standbys[p], owners[p]) {
					t.Errorf("partition %d: its owner %s is a standby", p, owners[p])
				}
			}
			// The order members are listed in does not matter.
			reversed := slices.Clone(members)
			slices.Reverse(reversed)
			for _, m := range members {
				a := processor.StandbyChoice(m, tc.total, members, owners, tc.n)
				b := processor.StandbyChoice(m, tc.total, reversed, owners, tc.n)
				if !slices.Equal(a, b) {
					t.Errorf("%s: %v with the members reversed, %v before", m, b, a)
				}
			}
		})
	}
}
