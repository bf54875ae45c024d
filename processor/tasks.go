package processor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/state"
)

// Partition tasks.
//
// Each owned offers partition is a task: an Applier of its own (the
// partition's key range, its outbox queue, its member counts and seller
// jobs, its evaluator and joiner cache) that applies the partition's input
// and advances its jobs, each unit of work one atomic Pebble batch of
// state, offsets and outbox records. Units of different tasks run at once
// on at most Processor.Workers goroutines (a semaphore), so an instance
// uses all its cores.
//
// The sellers and ratings tables are global to the instance. Their records
// are applied by one more Applier (the table applier, which owns no
// partition) while no task runs: units hold the barrier's read lock, and a
// table batch, a change of the owned partitions and the tombstone sweep
// hold its write lock. A table batch starts one job per partition holding
// the changed seller's offers (owned or not, each under its own key) and
// hands those of owned partitions, and the changed records, to their
// tasks before the barrier opens again. So a task never sees a table
// change without its job, whatever moved when.
type task struct {
	part int32
	mu   sync.Mutex // held while a unit of work runs
	a    *Applier
	gone bool // revoked (under mu): later units do nothing
	jobs atomic.Int32
	// sellerJobs counts the jobs that are not feed change jobs.
	sellerJobs atomic.Int32
}

// noteJobs publishes t's pending job counts (under t.mu, or with no unit
// running).
func (t *task) noteJobs() {
	n, feedJobs := t.a.PendingJobs(), t.a.pendingFeedJobs()
	t.jobs.Store(int32(n))
	t.sellerJobs.Store(int32(n - feedJobs))
}

// runTask runs fn on t's applier as one unit of work: on a worker, with
// the barrier read-locked. It reports false when t was revoked first. An
// error of fn (a state failure) also stops the pipeline.
func (p *Pipeline) runTask(ctx context.Context, t *task, fn func(a *Applier) error) (bool, error) {
	select {
	case p.workers <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer func() { <-p.workers }()
	p.barrier.RLock()
	defer p.barrier.RUnlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gone {
		return false, nil
	}
	err := fn(t.a)
	t.noteJobs()
	if err != nil && ctx.Err() == nil {
		p.fail(err)
	}
	return true, err
}

// task returns the task of offers partition part (nil: not owned).
func (p *Pipeline) task(part int32) *task {
	p.tasksMu.Lock()
	defer p.tasksMu.Unlock()
	return p.tasks[part]
}

// ownedTasks returns the tasks, by partition.
func (p *Pipeline) ownedTasks() []*task {
	p.tasksMu.Lock()
	defer p.tasksMu.Unlock()
	out := make([]*task, 0, len(p.tasks))
	for _, t := range p.tasks {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b *task) int { return int(a.part) - int(b.part) })
	return out
}

// fail records the first error that must stop the pipeline.
func (p *Pipeline) fail(err error) {
	p.failOnce.Do(func() {
		p.failErr = err
		close(p.failed)
	})
}

// applyOffers applies the records of one poll: each partition's on its
// task, the tasks in parallel on the workers.
func (p *Pipeline) applyOffers(ctx context.Context, fs kgo.Fetches) error {
	byPart := map[int32][]*kgo.Record{}
	fs.EachPartition(func(fp kgo.FetchTopicPartition) {
		byPart[fp.Partition] = append(byPart[fp.Partition], fp.Records...)
	})
	g, gctx := errgroup.WithContext(ctx)
	for part, recs := range byPart {
		if len(recs) == 0 {
			continue
		}
		// A partition lost meanwhile (the session expired) has no task,
		// or one that is gone: its records are its next owner's. Nothing
		// of them was applied here.
		t := p.task(part)
		if t == nil {
			continue
		}
		g.Go(func() error {
			_, err := p.runTask(gctx, t, func(a *Applier) error { return a.Apply(gctx, recs) })
			return err
		})
	}
	return g.Wait()
}

// applyTables applies table records on the table applier, with every task
// paused.
func (p *Pipeline) applyTables(ctx context.Context, recs []*kgo.Record) error {
	p.barrier.Lock()
	defer p.barrier.Unlock()
	return p.tableApplier.Apply(ctx, recs)
}

// handJobs gives the jobs a table batch started to the tasks of their
// partitions (the barrier is write-locked: no task runs).
func (p *Pipeline) handJobs(jobs []state.Job) {
	p.tasksMu.Lock()
	defer p.tasksMu.Unlock()
	for _, j := range jobs {
		if t := p.tasks[j.Partition]; t != nil {
			t.a.putJob(j)
			t.noteJobs()
		}
	}
	p.wakeJobs()
}

func (p *Pipeline) wakeJobs() {
	select {
	case p.jobsNotify <- struct{}{}:
	default:
	}
}

// runJobs advances the pending seller jobs of the owned partitions, one
// chunk per task at a time, on the workers, and sweeps expired tombstones
// once a minute. An instance that owns no partition (or no job) waits.
func (p *Pipeline) runJobs(ctx context.Context) error {
	sweep := time.NewTicker(time.Minute)
	defer sweep.Stop()
	pace := newBackfillPace(p.cfg.Processor.BackfillRate)
	feedTurn := 0
	for {
		var pending []*task
		n := 0
		for _, t := range p.ownedTasks() {
			if k := t.jobs.Load(); k > 0 {
				pending = append(pending, t)
				n += int(k)
			}
		}
		p.metrics.jobsPending.Set(float64(n))
		if len(pending) == 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-sweep.C:
				if err := p.sweep(); err != nil {
					return err
				}
			case <-p.jobsNotify:
			}
			continue
		}
		select {
		case <-sweep.C:
			if err := p.sweep(); err != nil {
				return err
			}
		default:
		}
		// Seller jobs of every task run at once; of the feed change jobs
		// (the backfill) one chunk per round, on one task in turn, within
		// processor.backfill_rate: the other workers stay free for live
		// changes.
		var feedTask *task
		if pace.allowed(time.Now()) {
			for range pending {
				t := pending[feedTurn%len(pending)]
				feedTurn++
				if t.sellerJobs.Load() == 0 && t.jobs.Load() > 0 {
					feedTask = t
					break
				}
			}
		}
		g, gctx := errgroup.WithContext(ctx)
		var backfilled, ran atomic.Int64
		for _, t := range pending {
			skip := t != feedTask
			if skip && t.sellerJobs.Load() == 0 {
				continue
			}
			g.Go(func() error {
				_, err := p.runTask(gctx, t, func(a *Applier) error {
					did, _, err := a.runJobChunk(skip)
					if did {
						ran.Add(1)
					}
					backfilled.Add(a.backfilled)
					a.backfilled = 0
					return err
				})
				return err
			})
		}
		if err := g.Wait(); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("seller job: %w", err)
		}
		if n := backfilled.Load(); n > 0 {
			p.backfilled.Add(n)
			p.metrics.backfilled.Add(float64(n))
			pace.spend(n)
		}
		if ran.Load() == 0 { // only paced feed change jobs: wait for the pace
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(pace.wait(time.Now())):
			case <-p.jobsNotify:
			}
		}
	}
}

// sweep forgets expired tombstones, with every task paused and no restore
// running.
func (p *Pipeline) sweep() error {
	p.restoreMu.Lock()
	defer p.restoreMu.Unlock()
	p.barrier.Lock()
	defer p.barrier.Unlock()
	n, err := p.tableApplier.SweepTombstones()
	if err != nil {
		return err
	}
	if n > 0 {
		p.logger.Info("forgot expired tombstones", zap.Int("count", n))
	}
	return nil
}

// changePartitions makes the partitions in add tasks and ends those in
// remove, with every task paused; a revoke returns once no relay round of
// ours still sends their records.
func (p *Pipeline) changePartitions(add, remove []int32) {
	if err := p.setTasks(add, remove); err != nil {
		p.fail(fmt.Errorf("change offers partitions: %w", err))
		return
	}
	if len(remove) > 0 && p.relay != nil {
		p.relay.Quiesce()
	}
	if len(add) > 0 || len(remove) > 0 {
		p.logger.Info("offers partitions changed", zap.Int32s("assigned", add), zap.Int32s("revoked", remove))
	}
	p.assigned.Store(true)
	p.metrics.ready.Set(1)
}

func (p *Pipeline) setTasks(add, remove []int32) error {
	p.barrier.Lock()
	defer p.barrier.Unlock()
	p.tasksMu.Lock()
	defer p.tasksMu.Unlock()
	var errs []error
	for _, part := range remove {
		t := p.tasks[part]
		if t == nil {
			continue
		}
		t.mu.Lock()
		t.gone = true
		errs = append(errs, t.a.SetPartitions(nil)) // takes its members off the gauge
		t.mu.Unlock()
		delete(p.tasks, part)
	}
	for _, part := range add {
		if p.tasks[part] != nil {
			continue
		}
		deps := p.applierDeps
		deps.GroupPartitions = p.offersTotal.Load()
		a, err := NewApplier(deps)
		if err != nil {
			return err
		}
		a.eventID = p.tableApplier.eventID
		if err := a.SetPartitions([]int32{part}); err != nil {
			return err
		}
		t := &task{part: part, a: a}
		t.noteJobs()
		p.tasks[part] = t
	}
	errs = append(errs, p.tableApplier.NoteKnownPartitions(add))
	owned := make([]int32, 0, len(p.tasks))
	for part := range p.tasks {
		owned = append(owned, part)
	}
	slices.Sort(owned)
	p.owned.Store(&owned)
	p.wakeJobs()
	if p.groupIn != nil {
		errs = append(errs, p.groupIn.change(add, remove))
	}
	return errors.Join(errs...)
}

// handTable gives a table record a committed table batch changed to every
// task's joiner (the barrier is write-locked: no task runs).
func (p *Pipeline) handTable(j feeds.Joined, key string, rec *feeds.View) {
	p.tasksMu.Lock()
	defer p.tasksMu.Unlock()
	for _, t := range p.tasks {
		t.a.joiner.Set(j, key, rec)
	}
}
