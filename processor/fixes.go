package processor

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/state"
)

// FixResult counts what ApplyFixes emitted.
type FixResult struct {
	// Corrections is the number of RECONCILE events (offers corrected).
	Corrections int64
	// Refreshes is the number of REFRESH events (offers refreshed).
	Refreshes int64
}

// ApplyFixes applies the corrections and refreshes a full pass listed, in
// one committed batch. It must run on the applier's task (Pipeline.ApplyFixes). Each offer is re-read and re-evaluated against its
// CURRENT state and membership, so a live change that already repaired it
// emits nothing, and no UPDATE/REMOVE ever goes to a non-member. An offer
// whose seller re-evaluation is still pending is left to that job; an offer
// of a partition this instance does not own is skipped. With refresh,
// entries due for refresh (RefreshDue at the applier's clock) get a
// REFRESH event after any correction.
func (a *Applier) ApplyFixes(fixes []state.Fix, refreshAfter time.Duration) (FixResult, error) {
	var res FixResult
	b := a.store.NewBatch()
	defer b.Close()
	now := a.now()
	for _, fx := range fixes {
		if !a.owns(fx.Partition) {
			continue // another instance owns it, or none yet
		}
		a.offer = records.Offer{}
		pres, _, err := b.GetOffer(fx.Partition, fx.OfferID, &a.offer)
		if err != nil {
			a.resetCaches()
			return FixResult{}, err
		}
		var view *feeds.View
		if pres == state.Live {
			if a.jobPending(a.offer.SellerID, fx.Partition) {
				continue
			}
			if err := a.joiner.Join(b, &a.offer, &a.view); err != nil {
				a.resetCaches()
				return FixResult{}, err
			}
			view = &a.view
		}
		before := b.OutboxLen()
		if err := a.evaluate(b, fx.Partition, fx.OfferID, view, records.CauseReconcile, 0, now); err != nil {
			a.resetCaches()
			return FixResult{}, err
		}
		if b.OutboxLen() > before {
			res.Corrections++
		}
		if view == nil || fx.Flags&state.FixRefresh == 0 {
			continue
		}
		n, err := a.refresh(b, fx.Partition, fx.OfferID, view, refreshAfter, now)
		if err != nil {
			a.resetCaches()
			return FixResult{}, err
		}
		res.Refreshes += n
	}
	if err := a.commit(b, now); err != nil {
		a.resetCaches()
		return FixResult{}, err
	}
	return res, nil
}

// refresh emits one REFRESH event for the entries of offer id that are due
// at now and records the new send time; it returns 1 when it emitted.
func (a *Applier) refresh(b *state.Batch, p int32, id string, view *feeds.View, refreshAfter time.Duration, now time.Time) (int64, error) {
	if _, err := b.GetMembership(p, id, &a.mem, a.intern); err != nil {
		return 0, err
	}
	cycle := refreshAfter.Milliseconds()
	phase := RefreshPhaseMs(id, cycle)
	nowMs := now.UnixMilli()
	a.entries = a.entries[:0]
	a.next.Reset()
	a.next.Seq = a.mem.Seq
	for i := range a.mem.Feeds {
		fm := a.mem.Feeds[i]
		if _, ok := a.set.Feed(fm.FeedID); ok && len(fm.Destinations) > 0 && RefreshDue(phase, fm.SentAtMs, nowMs, cycle) {
			for _, d := range fm.Destinations {
				a.addEntry(fm.FeedID, d, records.ActionRefresh)
			}
			fm.SentAtMs = nowMs
		}
		a.next.Feeds = append(a.next.Feeds, fm)
	}
	if len(a.entries) == 0 {
		return 0, nil
	}
	a.next.FieldHashes = append(a.next.FieldHashes, a.mem.FieldHashes...)
	a.next.Groups = append(a.next.Groups, a.mem.Groups...)
	if err := a.emit(b, p, id, view, records.CauseRefresh, 0, now); err != nil {
		return 0, err
	}
	return 1, b.PutMembership(p, id, &a.next)
}

// ApplyFixes runs Applier.ApplyFixes on the task of each partition the
// fixes name, the tasks in parallel on the workers (the full pass's way to
// correct memberships without racing the stream). Fixes of a partition
// this instance does not own are skipped.
func (p *Pipeline) ApplyFixes(ctx context.Context, fixes []state.Fix, refreshAfter time.Duration) (FixResult, error) {
	byPart := map[int32][]state.Fix{}
	for _, fx := range fixes {
		byPart[fx.Partition] = append(byPart[fx.Partition], fx)
	}
	var mu sync.Mutex
	var res FixResult
	g, gctx := errgroup.WithContext(ctx)
	for part, fx := range byPart {
		t := p.task(part)
		if t == nil {
			continue
		}
		g.Go(func() error {
			_, err := p.runTask(gctx, t, func(a *Applier) error {
				r, err := a.ApplyFixes(fx, refreshAfter)
				mu.Lock()
				res.Corrections += r.Corrections
				res.Refreshes += r.Refreshes
				mu.Unlock()
				return err
			})
			return err
		})
	}
	err := g.Wait()
	return res, err
}
