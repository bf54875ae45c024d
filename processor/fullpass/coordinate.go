package fullpass

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/feedmill/feedmill/processor/feedstore"
	"github.com/feedmill/feedmill/processor/runlog"
	"github.com/feedmill/feedmill/state"
)

// coordinate does what the owner of offers partition 0 does for the
// group: start runs on the interval, and at once for file feeds never
// published (firstpass.go), fail a run whose parts are late,
// switch the feed files to the last published run and remove the files
// and run log records of runs no longer needed. Two instances that both
// believe they coordinate (during a rebalance) do no harm: the log
// decides, the switch never goes back to an older run, and only files of
// runs decided as not needed are removed.
func (fp *FullPass) coordinate(ctx context.Context, runs []runlog.Run, running runlog.Run, isRunning bool,
	published runlog.Run, isPublished bool, lastStart time.Time, files map[string]time.Time) error {
	now := fp.now()
	if fp.coordSince.IsZero() {
		fp.coordSince = now
	}
	if !isRunning && fp.cfg.Interval > 0 && now.Sub(later(lastStart, fp.coordSince)) >= fp.cfg.Interval {
		if _, _, err := fp.Start(ctx); err != nil && ctx.Err() == nil {
			fp.logger.Warn("start the scheduled full pass", zap.Error(err))
		}
	} else if !isRunning {
		fp.startFirstPass(ctx, now, files, runs)
	}
	if isRunning && fp.cfg.Timeout > 0 && now.Sub(running.StartedAt) > fp.cfg.Timeout {
		fp.failRun(ctx, running.ID, fmt.Sprintf("timed out after %s (full_pass.timeout) waiting for the parts of offers partitions %s: "+
			"their owners did not scan them in time", fp.cfg.Timeout, listPartitions(running.Missing())))
	}
	if isPublished && fp.switchedTo() != published.ID && !time.Now().Before(fp.publishAt) {
		refs := make([]feedstore.PartRef, len(published.Parts))
		for i, pt := range published.Parts {
			refs[i] = feedstore.PartRef{Partition: pt.Partition, Attempt: pt.Attempt}
		}
		if err := fp.files.Publish(ctx, published.ID, time.UnixMilli(published.NowMs), refs); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			fp.metrics.pending.Set(1)
			// Retried after 1 s, 2 s, 4 s ... up to a minute.
			fp.publishTry++
			fp.publishAt = time.Now().Add(min(time.Second<<min(fp.publishTry-1, 6), time.Minute))
			if time.Since(fp.failLog) > time.Minute {
				fp.failLog = time.Now()
				msg := "switch the feed files to the published run; the previous version stays served, retrying"
				if errors.Is(err, feedstore.ErrPartMissing) {
					msg += "; every instance must write to the same full_pass.store (the default, a file:// store under state.dir, is one machine's)"
				}
				fp.logger.Error(msg, zap.String("run", published.ID), zap.Error(err))
			}
			return nil
		}
		fp.metrics.pending.Set(0)
		fp.publishTry = 0
		fp.mu.Lock()
		fp.switched = published.ID
		fp.mu.Unlock()
		fp.logger.Info("feed files switched", zap.String("run", published.ID))
	}
	if isPublished && fp.switchedTo() != published.ID {
		return nil // not switched yet: remove nothing
	}
	// The files of runs no longer needed, once per decision: runs the log
	// knows as failed or rejected, published runs older than the last
	// two (readers of the previous one finish), and leftovers older than
	// every run the log knows. A run started meanwhile is newer than any
	// run known, so it is kept.
	key := ""
	for _, r := range runs {
		key += r.ID + r.Status + ","
	}
	if key == fp.gcKey {
		return nil
	}
	removable := fp.removable()
	if err := fp.files.DeleteRuns(ctx, func(id string) bool { return !removable(id) }); err != nil {
		if ctx.Err() == nil {
			fp.logger.Warn("remove old runs' feed files", zap.Error(err))
		}
		return nil
	}
	if n, err := fp.log.Forget(ctx); err != nil {
		if ctx.Err() == nil {
			fp.logger.Warn("delete old runs from the run log", zap.Error(err))
		}
		return nil
	} else if n > 0 {
		fp.logger.Info("deleted old runs from the run log", zap.Int("records", n))
	}
	fp.gcKey = key
	return nil
}

// removable returns, by the fold as it is now, whether the stored files
// of a run may go.
func (fp *FullPass) removable() func(id string) bool {
	var runs []runlog.Run
	fp.log.View(func(f *runlog.Fold) { runs = f.Runs() })
	remove := make(map[string]bool, len(runs))
	published := 0
	for _, r := range runs { // newest first
		switch r.Status {
		case runlog.StatusFailed, runlog.StatusRejected:
			remove[r.ID] = true
		case runlog.StatusPublished:
			remove[r.ID] = published >= 2
			published++
		default:
			remove[r.ID] = false
		}
	}
	return func(id string) bool {
		if r, known := remove[id]; known {
			return r
		}
		return len(runs) > 0 && id < runs[len(runs)-1].ID // older than every known run
	}
}

// switchedTo is the run this instance last switched the files to.
func (fp *FullPass) switchedTo() string {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	return fp.switched
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func listPartitions(ps []int32) string {
	const show = 20
	var b strings.Builder
	for i, p := range ps {
		if i == show {
			fmt.Fprintf(&b, " and %d more", len(ps)-show)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprint(&b, p)
	}
	return b.String()
}

// errAppend is a run log append that failed: retried, not fatal.
type errAppend struct{ error }

// fixChunk bounds one ApplyFixes batch.
const fixChunk = 256

// keepLocal is how many settled runs' local records are kept.
const keepLocal = 20

// settleLocal finishes this instance's local share of decided runs: a
// published run's listed offers are applied through the streaming path
// (for the partitions it owns now) and recorded as applied in the log; a
// failed or rejected run's list is dropped. Local records of runs the log
// no longer has are removed.
func (fp *FullPass) settleLocal(ctx context.Context, runs []runlog.Run) error {
	byID := make(map[string]*runlog.Run, len(runs))
	for i := range runs {
		byID[runs[i].ID] = &runs[i]
	}
	var local []state.Run
	if err := fp.store.Runs(func(r *state.Run) bool { local = append(local, *r); return true }); err != nil {
		return err
	}
	settled := 0
	for i := range local {
		lr := &local[i]
		fr, known := byID[lr.ID]
		switch {
		case !known:
			if err := fp.store.DeleteRun(lr.ID); err != nil {
				return err
			}
			continue
		case lr.Applied:
			if settled++; settled > keepLocal {
				if err := fp.store.DeleteRun(lr.ID); err != nil {
					return err
				}
			}
			continue
		case fr.Status == runlog.StatusRunning || fr.Status == runlog.StatusHeld:
			continue
		case fr.Status == runlog.StatusPublished:
			var ea errAppend
			if err := fp.applyRun(ctx, lr, fr); errors.As(err, &ea) {
				if ctx.Err() == nil {
					fp.backOff("record applied fixes", ea.error)
				}
				return nil
			} else if err != nil {
				return err
			}
		}
		if err := fp.store.DeleteFixes(lr.ID); err != nil {
			return err
		}
		lr.Applied = true
		if err := fp.store.PutRun(lr); err != nil {
			return err
		}
	}
	return nil
}

// applyRun applies run fr's listed offers in chunks through the applier
// and appends what they emitted.
func (fp *FullPass) applyRun(ctx context.Context, lr *state.Run, fr *runlog.Run) error {
	chunk := make([]state.Fix, 0, fixChunk)
	first, lastP, lastID := true, int32(0), ""
	var corrections, refreshes int64
	for {
		chunk = chunk[:0]
		if _, err := fp.store.ScanFixes(lr.ID, first, lastP, lastID, fixChunk, func(f state.Fix) error {
			chunk = append(chunk, f)
			return nil
		}); err != nil {
			return err
		}
		if len(chunk) == 0 {
			break
		}
		first, lastP, lastID = false, chunk[len(chunk)-1].Partition, chunk[len(chunk)-1].OfferID
		res, err := fp.stream.ApplyFixes(ctx, chunk, fp.cfg.RefreshAfter)
		if err != nil {
			return fmt.Errorf("apply fixes of %s: %w", lr.ID, err)
		}
		corrections += res.Corrections
		refreshes += res.Refreshes
	}
	fp.metrics.corrections.Add(float64(corrections))
	fp.metrics.refreshes.Add(float64(refreshes))
	var mine []int32
	for _, pt := range fr.Parts {
		if pt.By == fp.instance {
			mine = append(mine, pt.Partition)
		}
	}
	if _, err := fp.log.Append(ctx, runlog.Command{Op: runlog.OpApplied, Run: lr.ID, By: fp.instance, At: fp.now(),
		Corrections: corrections, Refreshes: refreshes, Applied: mine}); err != nil {
		// Applied again later: the fixes re-read the current state, so
		// a second application emits nothing new.
		return errAppend{fmt.Errorf("record applied fixes of %s: %w", lr.ID, err)}
	}
	if corrections > 0 || refreshes > 0 {
		fp.logger.Info("full pass corrections applied", zap.String("run", lr.ID),
			zap.Int64("corrections", corrections), zap.Int64("refreshes", refreshes))
	}
	return nil
}
