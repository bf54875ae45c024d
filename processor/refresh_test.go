package processor

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// TestRefreshSpreading simulates 56 days of daily passes over a catalog
// that was entirely sent on day 0, with a share of offers changed live at
// random instants, and checks the refresh rule: each day refreshes about
// 1/28 of the catalog (no day-28 spike), no entry is older than
// refresh_after after a pass, nothing is refreshed twice within
// refresh_after − refresh_after/28, nothing sent within the last
// refresh_after/28 is refreshed.
func TestRefreshSpreading(t *testing.T) {
	const (
		n    = 28000
		days = 56
	)
	day := 24 * time.Hour
	cycle := (28 * day).Milliseconds()
	minAge := cycle / RefreshMinAgeDivisor
	t0 := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC).UnixMilli()

	type entry struct {
		phase, sent, lastRefresh int64
	}
	cat := make([]entry, n)
	for i := range cat {
		cat[i] = entry{phase: RefreshPhaseMs("offer-"+strconv.Itoa(i), cycle), sent: t0, lastRefresh: -1}
	}
	// Live changes: 10% of offers are changed once, at a random instant.
	rng := rand.New(rand.NewPCG(1, 2))
	type change struct {
		at    int64
		offer int
	}
	var changes []change
	for i := 0; i < n/10; i++ {
		changes = append(changes, change{at: t0 + rng.Int64N(days*day.Milliseconds()), offer: rng.IntN(n)})
	}

	for d := 1; d <= days; d++ {
		now := t0 + int64(d)*day.Milliseconds()
		for _, c := range changes {
			if c.at > now-day.Milliseconds() && c.at <= now {
				cat[c.offer].sent = c.at
				cat[c.offer].lastRefresh = -1
			}
		}
		refreshed := 0
		for i := range cat {
			e := &cat[i]
			if !RefreshDue(e.phase, e.sent, now, cycle) {
				continue
			}
			if now-e.sent < minAge {
				t.Fatalf("day %d: offer %d refreshed %v after its last send", d, i, time.Duration(now-e.sent)*time.Millisecond)
			}
			if e.lastRefresh >= 0 && now-e.lastRefresh < cycle-minAge {
				t.Fatalf("day %d: offer %d refreshed twice within %v", d, i, time.Duration(now-e.lastRefresh)*time.Millisecond)
			}
			e.sent, e.lastRefresh = now, now
			refreshed++
		}
		for i := range cat {
			if age := now - cat[i].sent; age >= cycle {
				t.Fatalf("day %d: offer %d is %v old after the pass", d, i, time.Duration(age)*time.Millisecond)
			}
		}
		want := float64(n) / 28
		if f := float64(refreshed); f < 0.8*want || f > 1.25*want {
			t.Errorf("day %d: %d refreshed, want about %.0f (catalog/28)", d, refreshed, want)
		}
		if d%7 == 0 || d == 28 || d == 29 {
			t.Logf("day %2d: %d refreshed (catalog/28 = %.0f)", d, refreshed, want)
		}
	}
}

func TestRefreshDue(t *testing.T) {
	day := (24 * time.Hour).Milliseconds()
	cycle := 28 * day
	tests := []struct {
		name                  string
		phase, sent, now, cyc int64
		want                  bool
	}{
		{"disabled", 0, 0, 100 * day, 0, false},
		{"sent recently, slot passed", 5 * day, 5*day - 1000, 5*day + 1000, cycle, false},
		{"slot passed after min age", 5 * day, 3 * day, 5 * day, cycle, true},
		{"no slot since send", 10 * day, 3 * day, 9 * day, cycle, false},
		{"exactly refresh_after old", 10 * day, 10 * day, 38 * day, cycle, true},
		{"slot not reached yet", 10 * day, 10*day + 1, 38*day - 1, cycle, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := RefreshDue(tc.phase, tc.sent, tc.now, tc.cyc); got != tc.want {
				t.Errorf("RefreshDue(%d, %d, %d, %d) = %v, want %v", tc.phase, tc.sent, tc.now, tc.cyc, got, tc.want)
			}
		})
	}
}
