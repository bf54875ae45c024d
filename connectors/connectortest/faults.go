package connectortest

import (
	"context"
	"strings"
	"sync"
	"time"
)

// StallLimit bounds how long Stall holds a request whose client does not
// give up. The suite's clients give up after retry.timeout (300ms); a
// request still open after StallLimit means a partner call without a
// deadline, which the suite reports (Faults.Overdue) instead of hanging.
const StallLimit = 15 * time.Second

// Fault is what a fake partner does with one request.
type Fault uint8

const (
	// FaultNone answers normally.
	FaultNone Fault = iota
	// Fault429 answers 429 with Retry-After: 1.
	Fault429
	// Fault500 answers 500.
	Fault500
	// FaultTimeout does not answer until the client gives up.
	FaultTimeout
	// FaultPartial answers normally but asks for some items to be retried.
	FaultPartial
)

// schedule is the fault pattern requests go through, in order.
var schedule = [...]Fault{
	FaultNone, Fault429, FaultNone, FaultPartial, Fault500, FaultNone,
	FaultTimeout, FaultNone, FaultPartial, FaultNone, Fault500, FaultNone,
}

// Faults hands out faults on a fixed schedule and counts them. The zero
// value injects; Off disables. Safe for concurrent use.
type Faults struct {
	Off bool

	mu       sync.Mutex
	n        int
	injected map[Fault]int
	items    int
	overdue  int
	released chan struct{} // closed by Release; made lazily under mu
}

// Stall is what a fake does for FaultTimeout: it answers nothing until
// the client gives up (ctx, the request's context, ends), Release is
// called (the test server is closing), or StallLimit has passed. In the
// last case the call counts as overdue and Stall returns false.
func (f *Faults) Stall(ctx context.Context) bool {
	t := time.NewTimer(StallLimit)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return true
	case <-f.releasedCh():
		return true
	case <-t.C:
		f.mu.Lock()
		f.overdue++
		f.mu.Unlock()
		return false
	}
}

// Release makes every Stall in progress and to come return at once. Call
// it before closing the fake's server: httptest.Server.Close waits for
// handlers, and a stalled handler must not wait for a client that is
// gone. Safe to call more than once.
func (f *Faults) Release() {
	ch := f.releasedCh()
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-ch:
	default:
		close(ch)
	}
}

func (f *Faults) releasedCh() chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.released == nil {
		f.released = make(chan struct{})
	}
	return f.released
}

// Overdue returns how many stalled requests outlived StallLimit: partner
// calls whose client never gave up.
func (f *Faults) Overdue() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.overdue
}

// Next returns the fault for the next request.
func (f *Faults) Next() Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Off {
		return FaultNone
	}
	ft := schedule[f.n%len(schedule)]
	f.n++
	if f.injected == nil {
		f.injected = make(map[Fault]int)
	}
	if ft != FaultNone {
		f.injected[ft]++
	}
	return ft
}

// RetryItem reports whether a fake answering a FaultPartial request asks
// for this item to be retried: every third item it sees.
func (f *Faults) RetryItem() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.items++
	return f.items%3 == 0
}

// Injected returns how many faults of each kind were injected.
func (f *Faults) Injected() map[Fault]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[Fault]int, len(f.injected))
	for k, v := range f.injected {
		out[k] = v
	}
	return out
}

// IsPoison reports whether a fake partner must refuse an offer for good:
// the suite marks such offers with a title starting with "POISON".
func IsPoison(title string) bool { return strings.HasPrefix(title, "POISON") }

// Applied tracks what a fake partner holds and how often each state was
// applied. Safe for concurrent use.
type Applied struct {
	mu          sync.Mutex
	catalog     map[string]State
	seen        map[stateKey]int
	unconfirmed map[stateKey]int
	dups        int
	back        int
	excused     int
	applied     int
}

// State is what a fake partner holds for one offer.
type State struct {
	Seq        int64
	PriceMinor int
	Title      string
}

type stateKey struct {
	offer string
	seq   int64
	del   bool
}

// Upsert records an applied upsert of offer at seq.
func (a *Applied) Upsert(offer string, s State) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.count(offer, s.Seq, false)
	if a.catalog == nil {
		a.catalog = make(map[string]State)
	}
	a.catalog[offer] = s
}

// Delete records an applied delete of offer at seq (0 when the partner's
// protocol does not carry it).
func (a *Applied) Delete(offer string, seq int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.count(offer, seq, true)
	delete(a.catalog, offer)
}

// Unconfirmed records that a call carrying offer's state at seq ended
// without an answer (a timeout or a network error: the client cannot know
// whether the partner applied it), so the state may be applied once more
// without counting as a duplicate. The suite calls it; fakes need not.
func (a *Applied) Unconfirmed(offer string, seq int64, del bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.unconfirmed == nil {
		a.unconfirmed = make(map[stateKey]int)
	}
	a.unconfirmed[stateKey{offer, seq, del}]++
}

func (a *Applied) count(offer string, seq int64, del bool) {
	if a.seen == nil {
		a.seen = make(map[stateKey]int)
	}
	a.applied++
	k := stateKey{offer, seq, del}
	a.seen[k]++
	if seq != 0 && a.seen[k] > 1 {
		if a.unconfirmed[k] > 0 {
			a.unconfirmed[k]--
			a.excused++
		} else {
			a.dups++
		}
	}
	if cur, ok := a.catalog[offer]; ok && seq != 0 && seq < cur.Seq {
		a.back++
	}
}

// Catalog returns a copy of what the partner holds.
func (a *Applied) Catalog() map[string]State {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]State, len(a.catalog))
	for k, v := range a.catalog {
		out[k] = v
	}
	return out
}

// Counts returns the states applied, the duplicates (a state applied more
// than once, except re-sends of a call that got no answer) and the
// out-of-order applications (an older seq after a newer one).
func (a *Applied) Counts() (applied, duplicates, outOfOrder int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.applied, a.dups, a.back
}

// Excused returns how many repeated applications followed a call that got
// no answer (see Unconfirmed) and were not counted as duplicates.
func (a *Applied) Excused() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.excused
}
