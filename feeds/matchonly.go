package feeds

import "time"

// MatchOnly evaluates the filters of the feeds listed (indexes into
// Set.Feeds) for v at now and sets member[i] for each; other entries of
// member are left as they are. A run-time failure counts as the feed's
// filter error and as no match, as in Match. It runs the feeds' filter
// programs one by one: for a few feeds (a backfill after a feed change),
// not for the whole set.
func (e *Evaluator) MatchOnly(v *View, now time.Time, idx []int, member []bool) {
	if len(idx) == 0 {
		return
	}
	e.slots.load(e.set.filterUse, v, now)
	for _, i := range idx {
		member[i] = e.runFilter(i, v)
	}
}
