package fullpass

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"go.uber.org/zap"

	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/processor"
	"github.com/feedmill/feedmill/processor/feedstore"
	"github.com/feedmill/feedmill/processor/grouping"
	"github.com/feedmill/feedmill/processor/runlog"
	"github.com/feedmill/feedmill/state"
)

// joinCacheMax bounds the records per joined table a scan caches, so
// memory does not grow with the number of sellers.
const joinCacheMax = 1 << 16

// startScans starts scans of the owned partitions of running run r that
// have no part yet, up to the workers reading at once.
func (fp *FullPass) startScans(ctx context.Context, r runlog.Run, owned []int32, wg *sync.WaitGroup, errc chan<- error) {
	if r.FeedSet != fp.view.Load().fingerprint {
		fp.failRun(ctx, r.ID, fmt.Sprintf("instance %s runs other feed definitions than the run's (started by %s): "+
			"every instance of the group must run the same feeds and templates", fp.instance, r.StartedBy))
		return
	}
	fp.mu.Lock()
	defer fp.mu.Unlock()
	if fp.scanRun != r.ID {
		fp.stopScansLocked()
		sctx, cancel := context.WithCancel(ctx)
		fp.scanRun, fp.scanning, fp.scanCtx, fp.scanCancel = r.ID, map[int32]bool{}, sctx, cancel
	}
	if time.Now().Before(fp.retryAt) {
		return
	}
	// A scan belongs to its run: its context ends when the run is no
	// longer running here, and it clears its own run's entry.
	ctx, scanning := fp.scanCtx, fp.scanning
	for _, p := range owned {
		if fp.active >= fp.workers {
			return
		}
		if r.Done(p) || scanning[p] {
			continue
		}
		scanning[p] = true
		fp.active++
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The worker is free for the next partition once this one is
			// read: storing its parts is mostly waiting on the store.
			var once sync.Once
			release := func() {
				once.Do(func() {
					fp.mu.Lock()
					fp.active--
					fp.mu.Unlock()
					fp.wake()
				})
			}
			defer release()
			err := fp.scanPartition(ctx, r, p, release)
			fp.mu.Lock()
			delete(scanning, p)
			fp.mu.Unlock()
			fp.wake()
			if err != nil && ctx.Err() == nil {
				select {
				case errc <- fmt.Errorf("full pass %s, partition %d: %w", r.ID, p, err):
				default:
				}
			}
		}()
	}
}

// stopScans ends the scans of a run that is no longer running.
func (fp *FullPass) stopScans() {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	fp.stopScansLocked()
}

func (fp *FullPass) stopScansLocked() {
	if fp.scanCancel != nil {
		fp.scanCancel()
	}
	fp.scanRun, fp.scanning, fp.scanCtx, fp.scanCancel = "", nil, nil, nil
}

// backOff delays the next scans and settling after a failed append to
// the run log: the work is redone then.
func (fp *FullPass) backOff(what string, err error) {
	fp.mu.Lock()
	fp.retryAt = time.Now().Add(appendRetry)
	quiet := time.Since(fp.appendLog) < time.Minute
	if !quiet {
		fp.appendLog = time.Now()
	}
	fp.mu.Unlock()
	if !quiet { // one line a minute while the run log refuses
		fp.logger.Warn(what+"; retrying", zap.Duration("in", appendRetry), zap.Error(err))
	}
}

// appendRetry is how long scans and settling wait after the run log
// refused an append.
const appendRetry = 5 * time.Second

// failRun appends the failure of run id (a store error, a timeout): the
// previous feeds stay served.
func (fp *FullPass) failRun(ctx context.Context, id, reason string) {
	if _, err := fp.log.Append(ctx, runlog.Command{Op: runlog.OpFail, Run: id, By: fp.instance, At: fp.now(), Reason: reason}); err != nil && ctx.Err() == nil {
		fp.logger.Error("record a failed full pass", zap.String("run", id), zap.String("reason", reason), zap.Error(err))
	}
}

// outputError is a failure to write the feed files: the run fails (the
// previous feeds stay served). Other scan errors are the state store's and
// stop Run.
type outputError struct{ err error }

func (e *outputError) Error() string { return "write feed files: " + e.err.Error() }
func (e *outputError) Unwrap() error { return e.err }

// scanPartition scans partition p for run r from a fresh snapshot, stores
// its parts and fix list and appends its part command. A store failure
// fails the run (nil error); a state failure is returned.
func (fp *FullPass) scanPartition(ctx context.Context, r runlog.Run, p int32, read func()) error {
	begin := time.Now()
	// The local record of a running run: a settled one with the same id
	// is a leftover (a run log started over) and starts over too.
	if lr, err := fp.store.GetRun(r.ID); errors.Is(err, state.ErrRunNotFound) || (err == nil && lr.Applied) {
		if err := fp.store.DeleteFixes(r.ID); err != nil {
			return err
		}
		if err := fp.store.PutRun(&state.Run{ID: r.ID, StartedAt: r.StartedAt}); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	if err := fp.store.DeleteFixesOf(r.ID, p); err != nil {
		return err
	}
	v := fp.view.Load() // this scan's feed set
	if r.FeedSet != v.fingerprint {
		fp.failRun(ctx, r.ID, fmt.Sprintf("instance %s: the feed set changed during the run", fp.instance))
		return nil
	}
	pw, err := fp.files.NewPartWriterSet(r.ID, p, v.set)
	if err != nil {
		fp.failRun(ctx, r.ID, fmt.Sprintf("partition %d: write feed files: %v", p, err))
		return nil
	}
	fixes := fp.store.NewFixWriter(r.ID)
	defer fixes.Close()
	counts := make([]int64, len(v.defs))
	scanned, err := fp.scanInto(ctx, v, p, time.UnixMilli(r.NowMs), pw, fixes, counts)
	read()
	if err == nil && fp.onPartition != nil {
		fp.onPartition(ctx, p)
		err = ctx.Err()
	}
	if err == nil {
		_, err = pw.Finish(ctx)
		if err != nil && ctx.Err() == nil {
			err = &outputError{err}
		}
	} else {
		pw.Abort()
	}
	var out *outputError
	switch {
	case ctx.Err() != nil:
		return nil
	case errors.As(err, &out):
		fp.failRun(ctx, r.ID, fmt.Sprintf("partition %d: %v", p, err))
		return nil
	case err != nil:
		return err
	}
	if err := fixes.Flush(); err != nil {
		return err
	}
	if _, err := fp.log.Append(ctx, runlog.Command{
		Op: runlog.OpPart, Run: r.ID, By: fp.instance, At: fp.now(), Partition: p, Attempt: pw.Attempt(),
		FeedSet: v.fingerprint, Counts: counts, Scanned: scanned, Listed: int64(fixes.Len()),
	}); err != nil {
		if ctx.Err() == nil {
			// The partition has no part: it is scanned again.
			fp.backOff(fmt.Sprintf("record the part of partition %d of %s", p, r.ID), err)
		}
		return nil
	}
	fp.metrics.partition.Observe(time.Since(begin).Seconds())
	return nil
}

// scanInto reads partition p from a snapshot, evaluating every feed at
// now: file feeds' items go to pw, sizes to counts, drifted or due offers
// to fixes. It returns the offer keys read.
func (fp *FullPass) scanInto(ctx context.Context, v *feedView, p int32, now time.Time, pw *feedstore.PartWriter, fixes *state.FixWriter, counts []int64) (int64, error) {
	snap := fp.store.NewSnapshot()
	defer snap.Close()
	ev := v.set.NewEvaluator()
	evalSrc := processor.NewEvalErrorSource(ev, v.set)
	defer fp.stream.ReportEvalErrors(ctx, evalSrc)
	list := v.set.Feeds()
	tmpls := v.set.Templates()
	var matched []int
	items := make([][]byte, len(tmpls))
	fps := make([]uint64, len(tmpls))
	done := make([]bool, len(tmpls))
	joiner := processor.NewJoiner(fp.serde, joinCacheMax)
	cycle := fp.cfg.RefreshAfter.Milliseconds()
	nowMs := now.UnixMilli()
	var scanned int64
	var view feeds.View
	isMatched := make([]bool, len(list))
	var gkey []byte
	err := snap.ScanPartition(ctx, p, v.intern, func(it *state.ScanItem) error {
		scanned++
		if scanned&4095 == 0 {
			fp.metrics.scanned.Add(4096)
		}
		matched = matched[:0]
		if it.Offer != nil && v.budget.Fits(it.Offer) {
			if err := joiner.Join(snap, it.Offer, &view); err != nil {
				return err
			}
			matched = ev.MatchList(&view, now, nil, matched)
		}
		clear(done)
		mem := it.Membership
		nMem := 0
		if mem != nil {
			nMem = len(mem.Feeds)
		}
		// Members are visited in feed order, the order the streaming path
		// stores them in, so FindFrom compares each stored id about once.
		drift, found, at := false, 0, 0
		for _, i := range matched {
			f := list[i]
			isMatched[i] = true
			if f.Grouped() {
				// A grouped feed holds its groups' winners: the offer
				// is one when its stored standing, still the one a fresh
				// evaluation gives, won its key. A standing that differs
				// is drift (the fix sends the fresh candidacy).
				var win, stale bool
				win, stale, gkey = groupWinner(ev, f, &view, now, mem, gkey)
				drift = drift || stale
				if !win {
					continue
				}
			}
			counts[i]++
			t := f.Template
			// The item is needed for a file or, until drift is found,
			// for its fingerprint.
			if !done[t.Index] && (f.File || !drift) {
				items[t.Index] = ev.AppendItem(items[t.Index][:0], t, &view, now)
				fps[t.Index] = xxhash.Sum64(items[t.Index])
				done[t.Index] = true
			}
			if f.File {
				if err := pw.Item(i, items[t.Index]); err != nil {
					return &outputError{err}
				}
			}
			if drift {
				continue
			}
			j := -1
			if mem != nil {
				j = mem.FindFrom(f.ID, at)
			}
			if j < 0 {
				drift = true
				continue
			}
			found, at = found+1, j+1
			if e := &mem.Feeds[j]; e.Fingerprint != fps[t.Index] || !slices.Equal(e.Destinations, f.Destinations) {
				drift = true
			}
		}
		if mem != nil {
			for k := range mem.Groups {
				// A candidate whose filter no longer holds.
				if st := &mem.Groups[k]; st.Filter || st.Cand.Live {
					if f, ok := v.set.Feed(st.FeedID); !ok || !isMatched[f.Index] {
						drift = true
					}
				}
			}
		}
		for _, i := range matched {
			isMatched[i] = false
		}
		var flags byte
		if drift || found != nMem {
			flags |= state.FixReconcile
		}
		if mem != nil && it.Offer != nil && cycle > 0 {
			phase := processor.RefreshPhaseMs(it.OfferID, cycle)
			for k := range mem.Feeds {
				if e := &mem.Feeds[k]; len(e.Destinations) > 0 && processor.RefreshDue(phase, e.SentAtMs, nowMs, cycle) {
					flags |= state.FixRefresh
					break
				}
			}
		}
		if flags != 0 {
			return fixes.Add(it.Partition, it.OfferID, flags)
		}
		return nil
	})
	fp.metrics.scanned.Add(float64(scanned & 4095))
	return scanned, err
}

// groupWinner reports whether an offer that passes grouped feed f's
// filter is its group's winner as the streaming path decided it (win: the
// file agrees with the events), and whether its stored standing differs
// from a fresh evaluation of its candidacy (stale: the fix re-sends it,
// and the group decides again). key is scratch, returned for reuse.
func groupWinner(ev *feeds.Evaluator, f *feeds.Feed, view *feeds.View, now time.Time, mem *state.Membership, key []byte) (win, stale bool, _ []byte) {
	var st state.GroupStanding
	if mem != nil {
		if j := mem.FindGroup(f.ID); j >= 0 {
			st = mem.Groups[j]
		}
	}
	key, order, ok := grouping.Evaluate(ev, f, view, now, key[:0])
	stale = !st.Filter || st.Cand.Live != ok || ok && (st.Cand.Key != string(key) || st.Cand.Order != order)
	return grouping.Member(st.Cand, st.Flag), stale, key
}
