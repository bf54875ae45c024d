package processor

import (
	"github.com/cespare/xxhash/v2"
)

// Refresh spreading.
//
// A partner drops an item it has not been sent for about 30 days, so every
// (offer, feed) entry whose last event is older than refresh_after (R,
// default 28 days) must be sent again (action REFRESH). Refreshing exactly
// at age R would repeat the catalog's history: the initial load sends every
// offer on day 0, so every offer would be refreshed on day 28, again on day
// 56, and so on, one spike per cycle.
//
// Instead each offer gets a phase φ in [0, R), a hash of its id, and its
// refresh slots are the instants t with t ≡ φ (mod R) counted from the unix
// epoch: one slot per cycle, at a point of the cycle that is uniform over
// offers and the same for every feed of the offer. An entry last sent at S
// is due at now when
//
//	now − S ≥ R/28   (the minimum age: nothing sent within the last day is refreshed)
//	and a slot lies in (S, now]
//
// Consequences, for stable offers (live changes reset S and simply push
// the refresh later):
//   - an entry is never older than R when a pass runs: slots are R apart,
//     so one lies in every interval of length R;
//   - after its first refresh an offer sits on its slot, and is refreshed
//     once per cycle, exactly R apart, so each day refreshes about 1/28 of
//     the stable catalog whatever happened on day 0; an offer last sent
//     just before its slot (within R/28) is refreshed once early, at age
//     R/28, and is on its slot from then on;
//   - two refreshes of one entry are at least R − R/28 apart.
//
// Passes run at full_pass.interval, so a refresh happens at the first pass
// at or after the instant it becomes due.
const RefreshMinAgeDivisor = 28

// RefreshPhaseMs is the offer's slot offset in [0, cycleMs).
func RefreshPhaseMs(offerID string, cycleMs int64) int64 {
	if cycleMs <= 0 {
		return 0
	}
	return int64(xxhash.Sum64String(offerID) % uint64(cycleMs))
}

// RefreshDue reports whether an entry of the offer with phase phaseMs,
// last sent at sentAtMs, is due at nowMs for refresh_after cycleMs (see the
// comment above). cycleMs <= 0 disables refreshing.
func RefreshDue(phaseMs, sentAtMs, nowMs, cycleMs int64) bool {
	if cycleMs <= 0 {
		return false
	}
	if nowMs-sentAtMs < cycleMs/RefreshMinAgeDivisor {
		return false
	}
	// The latest slot at or before now.
	d := (nowMs - phaseMs) % cycleMs
	if d < 0 {
		d += cycleMs
	}
	return nowMs-d > sentAtMs
}
