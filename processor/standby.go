package processor

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/feedmill/feedmill/state"
)

// Standby replicas (processor.standby_replicas = N > 0).
//
// For each offers partition, the N members of the group other than its
// owner ranked highest by a stable hash of (partition, member's group
// instance id) follow its changelog: each keeps, in its own state dir, the
// partition's state as a restore from the changelog would leave it, one
// whole batch at a time (state.Follower). The members and owners come from
// describing the group every standbyRefresh, and soon after this
// instance's own assignment changes; the choice changes only while the
// group is stable. A followed partition is never owned here: no task
// touches it and the relay does not send its outbox (which holds its
// unacknowledged events).
//
// When the group assigns a followed partition to this instance, the
// assignment (AdjustFetchOffsetsFn) first stops following it (release,
// waiting for the batch being applied), then restoreAssigned promotes it
// (promoteStandby): the changelog records after the last batch the standby
// applied are applied, and when the changelog ends with a whole batch the
// local state is reused as it is, with a job that re-evaluates the whole
// partition (as after a restore: its memberships reflect the previous
// owner's tables) and its unacknowledged events queued for the relay
// (consumers dedupe them by seq). When the changelog ends inside a batch
// (its writer stopped before the batch's offset record was acknowledged),
// the partition is restored as usual (the restore supersedes that batch).
//
// A partition that stops being followed keeps its local state and follow
// position: promoted later, it catches up from there (unless the position
// is older than standbyMaxAge). A partition starts being followed from its
// follow position when it has one, else from the start of the changelog
// (its local state is wiped first).

const (
	// standbyRefresh is how often the group is described.
	standbyRefresh = 5 * time.Second
	// standbySettle is how long after a change of this instance's
	// partitions the group is described again.
	standbySettle = time.Second
	// standbyPollWait bounds one poll of the changelog, so that the
	// followed partitions change between polls.
	standbyPollWait = time.Second
	// standbyMaxAge: a follow position older than this is neither
	// resumed nor promoted. Compaction may by then have dropped a
	// deletion (delete.retention.ms, one day by default) that the
	// standby never read.
	standbyMaxAge = 12 * time.Hour
	// standbyRetry is how long a partition whose follower failed waits
	// before it is followed again (from the start).
	standbyRetry = 30 * time.Second
)

// standbyMetrics are the standby replicas' metrics.
type standbyMetrics struct {
	partitions prometheus.Gauge
	lag        prometheus.Gauge
	applied    prometheus.Counter
	promoted   prometheus.Counter
}

func newStandbyMetrics(reg prometheus.Registerer) *standbyMetrics {
	m := &standbyMetrics{
		partitions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "feedmill_standby_partitions", Help: "Offers partitions whose changelog this instance follows as a standby replica.",
		}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "feedmill_standby_lag_records", Help: "Changelog records the followed partitions have not applied yet (as of the last group refresh).",
		}),
		applied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "feedmill_standby_records_applied_total", Help: "Changelog records applied to followed partitions (in whole batches), including those applied when a standby is promoted.",
		}),
		promoted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "feedmill_standby_promotions_total", Help: "Gained offers partitions whose standby state was reused instead of restored.",
		}),
	}
	reg.MustRegister(m.partitions, m.lag, m.applied, m.promoted)
	return m
}

// standby follows the changelog partitions this instance is a standby of.
type standby struct {
	p     *Pipeline
	base  []kgo.Opt
	topic string // the changelog
	n     int

	mu sync.Mutex // guards what follows; held while a follower starts
	cl *kgo.Client
	// followers are the followed partitions.
	followers map[int32]*standbyFollower
	// held are partitions being assigned here (release), with when:
	// not followed until a later look at the group shows them owned by
	// another member, or they are owned here.
	held map[int32]time.Time
	// retryAt holds partitions whose follower failed: not followed
	// again before then.
	retryAt map[int32]time.Time
	// refreshAt asks for a look at the group by then (zero: none).
	refreshAt time.Time
}

// standbyFollower is one followed partition.
type standbyFollower struct {
	mu   sync.Mutex // held while records are applied
	f    *state.Follower
	gone bool // stopped (under mu)
}

func newStandby(p *Pipeline, base []kgo.Opt) *standby {
	return &standby{p: p, base: base, topic: p.cfg.Kafka.Topics.Changelog, n: p.cfg.Processor.StandbyReplicas,
		followers: map[int32]*standbyFollower{}, held: map[int32]time.Time{}, retryAt: map[int32]time.Time{}}
}

// standbyRank ranks member as a standby of partition part: the members
// other than part's owner ranked highest follow it.
func standbyRank(part int32, member string) uint64 {
	h := fnv.New64a()
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(part))
	_, _ = h.Write(b[:])           // a hash's Write never fails
	_, _ = h.Write([]byte(member)) // likewise
	return h.Sum64()
}

// standbyChoice returns the partitions (of total) that self follows: those
// for which self is among the n members other than the owner ranked
// highest by standbyRank. owners maps a partition to its owner's id
// (absent: unassigned).
func standbyChoice(self string, total int32, members []string, owners map[int32]string, n int) []int32 {
	var out []int32
	ranked := make([]string, 0, len(members))
	for part := range total {
		ranked = ranked[:0]
		for _, m := range members {
			if m != owners[part] {
				ranked = append(ranked, m)
			}
		}
		slices.SortFunc(ranked, func(a, b string) int {
			ra, rb := standbyRank(part, a), standbyRank(part, b)
			switch {
			case ra > rb:
				return -1
			case ra < rb:
				return 1
			}
			return cmp.Compare(a, b)
		})
		if i := slices.Index(ranked, self); i >= 0 && i < n {
			out = append(out, part)
		}
	}
	return out
}

// run follows the chosen partitions until ctx ends.
func (s *standby) run(ctx context.Context) error {
	self, err := s.instanceID(ctx)
	if err != nil || ctx.Err() != nil {
		return err
	}
	cl, err := kgo.NewClient(append(slices.Clone(s.base),
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		return fmt.Errorf("standby client: %w", err)
	}
	s.mu.Lock()
	s.cl = cl
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		parts := make([]int32, 0, len(s.followers))
		for part := range s.followers {
			parts = append(parts, part)
		}
		s.mu.Unlock()
		s.stop(parts, false)
		s.mu.Lock()
		s.cl = nil
		s.mu.Unlock()
		cl.Close()
	}()
	s.p.logger.Info("standby replicas on", zap.Int("standby_replicas", s.n), zap.String("instance_id", self))
	var last time.Time
	var lastOwned []int32
	warned := time.Time{}
	for {
		if ctx.Err() != nil {
			return nil
		}
		now := time.Now()
		owned, _ := s.p.Coverage()
		s.mu.Lock()
		if !slices.Equal(owned, lastOwned) {
			lastOwned = owned
			if s.refreshAt.IsZero() || s.refreshAt.After(now.Add(standbySettle)) {
				s.refreshAt = now.Add(standbySettle)
			}
		}
		due := now.Sub(last) >= standbyRefresh || !s.refreshAt.IsZero() && !now.Before(s.refreshAt)
		s.mu.Unlock()
		if due {
			last = now
			s.mu.Lock()
			s.refreshAt = time.Time{}
			s.mu.Unlock()
			if err := s.refresh(ctx, cl, self, now); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				if serr := s.p.store.Err(); serr != nil {
					return serr
				}
				if time.Since(warned) > time.Minute {
					warned = time.Now()
					s.p.logger.Warn("standby: reading the group or the changelog failed; retrying", zap.Error(err))
				}
			}
		}
		pctx, cancel := context.WithTimeout(ctx, standbyPollWait)
		fs := cl.PollRecords(pctx, 10000)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		fs.EachError(func(topic string, part int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed) {
				return
			}
			s.p.logger.Warn("standby: fetch error", zap.String("topic", topic), zap.Int32("partition", part), zap.Error(err))
		})
		var applyErr error
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			if applyErr == nil && len(fp.Records) > 0 {
				applyErr = s.apply(fp.Partition, fp.Records)
			}
		})
		if applyErr != nil {
			return applyErr
		}
	}
}

// instanceID waits for the first assignment (the offers consumer has
// stored its instance id by then) and returns this member's id.
func (s *standby) instanceID(ctx context.Context) (string, error) {
	for !s.p.assigned.Load() {
		select {
		case <-ctx.Done():
			return "", nil
		case <-time.After(200 * time.Millisecond):
		}
	}
	if id := s.p.cfg.Kafka.InstanceID; id != "" {
		return id, nil
	}
	return s.p.store.InstanceID(newInstanceID)
}

// refresh describes the group and the changelog and changes the followed
// partitions to the chosen ones. started is when it began: a hold placed
// before then is cleared when the group shows the partition owned by
// another member.
func (s *standby) refresh(ctx context.Context, cl *kgo.Client, self string, started time.Time) error {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	group := s.p.cfg.Kafka.GroupID
	gs, err := adm.DescribeGroups(rctx, group)
	if err != nil {
		return err
	}
	g, ok := gs[group]
	if !ok {
		return fmt.Errorf("group %q not described", group)
	}
	if g.Err != nil {
		return g.Err
	}
	ends, err := adm.ListEndOffsets(rctx, s.topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return err
	}
	starts, err := adm.ListStartOffsets(rctx, s.topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return err
	}
	endOf, startOf := map[int32]int64{}, map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { endOf[o.Partition] = o.Offset })
	starts.Each(func(o kadm.ListedOffset) { startOf[o.Partition] = o.Offset })
	defer s.updateLag(endOf)
	if g.State != "Stable" {
		return nil // assignments in flux: keep following what we follow
	}
	offersTopic := s.p.cfg.Kafka.Topics.Offers
	var members []string
	owners := map[int32]string{}
	for _, m := range g.Members {
		id := "member " + m.MemberID
		if m.InstanceID != nil {
			id = *m.InstanceID
		}
		members = append(members, id)
		if ca, ok := m.Assigned.AsConsumer(); ok {
			for _, tp := range ca.Topics {
				if tp.Topic == offersTopic {
					for _, part := range tp.Partitions {
						owners[part] = id
					}
				}
			}
		}
	}
	if !slices.Contains(members, self) {
		return nil // not (yet, or no longer) a member: keep what we follow
	}
	_, total := s.p.Coverage()
	chosen := standbyChoice(self, total, members, owners, s.n)

	now := time.Now()
	s.mu.Lock()
	for part, at := range s.held {
		if s.p.owns(part) || at.Before(started) && owners[part] != self {
			delete(s.held, part)
		}
	}
	for part, at := range s.retryAt {
		if now.After(at) {
			delete(s.retryAt, part)
		}
	}
	want := map[int32]bool{}
	for _, part := range chosen {
		_, held := s.held[part]
		_, waiting := s.retryAt[part]
		// An empty changelog has nothing to follow (and the local
		// state, if any, may be what its owner copies into it).
		if !held && !waiting && !s.p.owns(part) && owners[part] != self && endOf[part] > 0 {
			want[part] = true
		}
	}
	var remove, add []int32
	for part := range s.followers {
		if !want[part] {
			remove = append(remove, part)
		}
	}
	for part := range want {
		if s.followers[part] == nil {
			add = append(add, part)
		}
	}
	s.mu.Unlock()
	slices.Sort(remove)
	slices.Sort(add)
	s.stop(remove, false)
	if len(add) > 0 && s.p.relay != nil {
		// A partition just lost may still be in a relay round.
		s.p.relay.Quiesce()
	}
	var started2 []int32
	for _, part := range add {
		ok, err := s.start(cl, part, startOf[part], endOf[part])
		if err != nil {
			return err
		}
		if ok {
			started2 = append(started2, part)
		}
	}
	if len(remove) > 0 || len(started2) > 0 {
		s.p.logger.Info("standby partitions changed", zap.Int32s("following", s.followed()),
			zap.Int32s("started", started2), zap.Int32s("stopped", remove))
	}
	return nil
}

// followed returns the followed partitions, sorted.
func (s *standby) followed() []int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]int32, 0, len(s.followers))
	for part := range s.followers {
		out = append(out, part)
	}
	slices.Sort(out)
	return out
}

// start starts following part, from its follow position when it has a
// usable one, else from the start of the changelog (start and end are the
// changelog partition's offsets). It reports false when part was held or
// owned meanwhile. s.mu is held throughout, so a release waits for it.
func (s *standby) start(cl *kgo.Client, part int32, start, end int64) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, held := s.held[part]; held || s.p.owns(part) || s.followers[part] != nil {
		return false, nil
	}
	store, offers := s.p.store, s.p.cfg.Kafka.Topics.Offers
	var f *state.Follower
	pos, ok, err := store.FollowPosition(part)
	if err == nil && ok && time.Since(pos.At) < standbyMaxAge && pos.Next >= start && pos.Next <= end {
		f, err = store.ResumeFollow(part, offers, s.p.groupTopics()...)
	}
	if err == nil && f == nil {
		// The tombstone sweep waits: it must not delete what is rewritten.
		s.p.restoreMu.RLock()
		f, err = store.FollowFromStart(part, offers, s.p.groupTopics()...)
		s.p.restoreMu.RUnlock()
	}
	if err != nil {
		if serr := store.Err(); serr != nil {
			return false, serr
		}
		s.retryAt[part] = time.Now().Add(standbyRetry)
		s.p.logger.Warn("standby: cannot follow a partition; retrying later", zap.Int32("partition", part), zap.Error(err))
		return false, nil
	}
	s.followers[part] = &standbyFollower{f: f}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{s.topic: {part: kgo.NewOffset().At(f.Next())}})
	s.p.metrics.standby.partitions.Set(float64(len(s.followers)))
	return true, nil
}

// stop stops following parts, waiting for a batch being applied; hold
// keeps them from being followed again until the group shows them owned
// by another member (or they are owned here).
func (s *standby) stop(parts []int32, hold bool) {
	if len(parts) == 0 {
		return
	}
	now := time.Now()
	var stopped []*standbyFollower
	s.mu.Lock()
	for _, part := range parts {
		if hold {
			s.held[part] = now
		}
		if fl := s.followers[part]; fl != nil {
			stopped = append(stopped, fl)
			delete(s.followers, part)
		}
	}
	if s.cl != nil {
		s.cl.RemoveConsumePartitions(map[string][]int32{s.topic: slices.Clone(parts)})
	}
	if hold {
		s.refreshAt = now.Add(2 * standbySettle)
	}
	s.p.metrics.standby.partitions.Set(float64(len(s.followers)))
	s.mu.Unlock()
	for _, fl := range stopped {
		fl.mu.Lock()
		fl.gone = true
		fl.f.Close()
		fl.mu.Unlock()
	}
}

// release stops following parts before they are owned here (the
// assignment calls it before restoreAssigned), waiting for a batch being
// applied or a follower being started. A nil standby (standby replicas
// off) has nothing to release.
func (s *standby) release(parts []int32) {
	if s == nil || len(parts) == 0 {
		return
	}
	s.stop(parts, true)
}

// apply applies the records of one followed partition, in order. It
// returns an error only for a failure of the store (which stops the
// pipeline); a follower that fails otherwise is stopped and the partition
// followed again from the start later.
func (s *standby) apply(part int32, recs []*kgo.Record) error {
	s.mu.Lock()
	fl := s.followers[part]
	s.mu.Unlock()
	if fl == nil {
		return nil // stopped since the poll
	}
	fl.mu.Lock()
	if fl.gone {
		fl.mu.Unlock()
		return nil
	}
	applied := 0
	var err error
	// The tombstone sweep waits: it must not delete what a batch rewrites.
	s.p.restoreMu.RLock()
	for _, r := range recs {
		var n int
		if n, err = fl.f.Add(r.Offset, r.Key, r.Value); err != nil {
			break
		}
		applied += n
	}
	if err == nil {
		err = fl.f.Flush()
	}
	s.p.restoreMu.RUnlock()
	if err != nil {
		fl.gone = true
		fl.f.Close()
	}
	fl.mu.Unlock()
	s.p.metrics.standby.applied.Add(float64(applied))
	if err == nil {
		return nil
	}
	if serr := s.p.store.Err(); serr != nil {
		return serr
	}
	restart := errors.Is(err, state.ErrFollowRestart)
	if restart {
		s.p.logger.Info("standby: following a partition again from the start", zap.Int32("partition", part), zap.Error(err))
	} else {
		s.p.logger.Warn("standby: applying the changelog failed; following the partition again from the start later",
			zap.Int32("partition", part), zap.Error(err))
	}
	s.mu.Lock()
	if s.followers[part] == fl {
		delete(s.followers, part)
		if s.cl != nil {
			s.cl.RemoveConsumePartitions(map[string][]int32{s.topic: {part}})
		}
	}
	if restart {
		s.refreshAt = time.Now()
	} else {
		s.retryAt[part] = time.Now().Add(standbyRetry)
	}
	s.p.metrics.standby.partitions.Set(float64(len(s.followers)))
	s.mu.Unlock()
	return s.p.store.DropFollow(part)
}

// updateLag sets the lag gauge from the changelog's end offsets.
func (s *standby) updateLag(ends map[int32]int64) {
	s.mu.Lock()
	fls := map[int32]*standbyFollower{}
	for part, fl := range s.followers {
		fls[part] = fl
	}
	s.mu.Unlock()
	var lag int64
	for part, fl := range fls {
		fl.mu.Lock()
		if !fl.gone {
			next, _ := fl.f.Position()
			lag += max(0, ends[part]-next)
		}
		fl.mu.Unlock()
	}
	s.p.metrics.standby.lag.Set(float64(lag))
}

// releaseStandby stops following the partitions being assigned (see
// standby.release).
func (p *Pipeline) releaseStandby(parts []int32) { p.standby.release(parts) }

// promoteStandby reuses the local state of gained partition part when it
// is a standby's: it applies the changelog from the standby's follow
// position to end (the changelog's end offset) and, when that ends with a
// whole batch, records that this state dir has the changelog up to end,
// queues a job that re-evaluates the whole partition and reports true.
// Otherwise (no follow position, one too old or outside the changelog, or
// a changelog ending inside a batch) it reports false and the partition
// goes through the usual checks (restoreAssigned). Either way part's
// follow position is dropped: it is about to be owned. No task of part
// runs, and the standby no longer follows it (release).
func (p *Pipeline) promoteStandby(ctx context.Context, base []kgo.Opt, part int32, end int64) (bool, error) {
	pos, ok, err := p.store.FollowPosition(part)
	if err != nil || !ok {
		return false, err
	}
	topic := p.cfg.Kafka.Topics.Changelog
	notReused := func(why string) (bool, error) {
		p.logger.Info("standby state of a gained partition not reused", zap.Int32("partition", part), zap.String("reason", why),
			zap.Int64("followed_to", pos.Next), zap.Int64("changelog_end", end))
		return false, p.store.DropFollow(part)
	}
	switch {
	case time.Since(pos.At) >= standbyMaxAge:
		return notReused("follow position too old")
	case pos.Next > end:
		return notReused("changelog shorter than followed")
	}
	start, err := changelogStart(ctx, base, topic, part)
	if err != nil {
		return false, err
	}
	if pos.Next < start {
		return notReused("changelog records after the follow position deleted")
	}
	began := time.Now()
	f, err := p.store.ResumeFollow(part, p.cfg.Kafka.Topics.Offers, p.groupTopics()...)
	if err != nil || f == nil {
		if err != nil {
			return false, err
		}
		return notReused("no follow position")
	}
	records, applied := 0, 0
	// The tombstone sweep waits: it must not delete what the catch-up writes.
	p.restoreMu.RLock()
	err = scanChangelog(ctx, base, topic, part, pos.Next, end, func(r *kgo.Record) error {
		records++
		n, err := f.Add(r.Offset, r.Key, r.Value)
		applied += n
		return err
	})
	if err == nil {
		err = f.Flush()
	}
	p.restoreMu.RUnlock()
	next, exact := f.Position()
	f.Close()
	p.metrics.standby.applied.Add(float64(applied))
	if err != nil {
		if ctx.Err() != nil || p.store.Err() != nil {
			return false, err
		}
		return notReused("catching up failed: " + err.Error())
	}
	if !exact || next != end {
		return notReused("the changelog ends inside a batch")
	}
	if err := p.store.SetChangelogWritten(part, end-1); err != nil {
		return false, err
	}
	if err := queuePartitionJob(p.store, p.cfg.Kafka.Topics, part); err != nil {
		return false, err
	}
	if err := p.store.DropFollow(part); err != nil {
		return false, err
	}
	if p.relay != nil {
		p.relay.ResetPartition(part)
	}
	p.metrics.standby.promoted.Inc()
	offset, _, err := p.storedOffset(part)
	if err != nil {
		return false, err
	}
	p.logger.Info("promoted a standby partition", zap.Int32("partition", part),
		zap.Int("records_caught_up", records), zap.Duration("took", time.Since(began)),
		zap.Int64("changelog_end", end), zap.Int64("offset", offset),
		zap.Int("events_pending", int(p.store.OutboxDepthOf(func(x int32) bool { return x == part }))))
	return true, nil
}

// storedOffset returns the stored next offset of offers partition part.
func (p *Pipeline) storedOffset(part int32) (int64, bool, error) {
	offs, err := p.store.Offsets(p.cfg.Kafka.Topics.Offers)
	if err != nil {
		return 0, false, err
	}
	off, ok := offs[part]
	return off, ok, nil
}

// changelogStart returns the start offset of changelog partition part.
func changelogStart(ctx context.Context, base []kgo.Opt, topic string, part int32) (int64, error) {
	admin, err := kgo.NewClient(base...)
	if err != nil {
		return 0, err
	}
	defer admin.Close()
	starts, err := kadm.NewClient(admin).ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return 0, fmt.Errorf("start offsets of changelog %q: %w", topic, err)
	}
	o, _ := starts.Lookup(topic, part)
	return o.Offset, nil
}
