package processor

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/state"
)

// Restoring a partition.
//
// When the group assigns an offers partition, its local state is reused
// when it is current: it has a stored offset at least the group's
// committed one (no other instance applied more of the partition since).
// Otherwise (no local state, or behind) the partition is restored from the
// changelog: its local keys are replaced by the changelog's (state
// Restore), the events the changelog holds past the acknowledged
// watermark are queued again (a consumer dedupes them by seq), input
// resumes at the changelog's offset, and a whole-partition job
// re-evaluates every offer against this instance's tables.

// needsRestore reports whether offers partition part must be restored:
// local is its stored offset (hasLocal false: none), committed the group's
// committed offset (negative: none).
func needsRestore(local int64, hasLocal bool, committed int64) bool {
	return !hasLocal || (committed >= 0 && local < committed)
}

// restoreAssigned restores, before they are owned, the gained partitions
// whose local state is not current: none stored, behind the group's
// committed offset, another instance wrote their changelog since this
// state dir did, or a restore of them did not finish.
//
// committed holds the group's committed offsets (negative: none).
func (p *Pipeline) restoreAssigned(ctx context.Context, base []kgo.Opt, parts []int32, committed map[int32]int64) error {
	if len(parts) == 0 {
		return nil
	}
	topic := p.cfg.Kafka.Topics.Offers
	stored, err := p.store.Offsets(topic)
	if err != nil {
		return err
	}
	clEnds, err := changelogEnds(ctx, base, p.cfg.Kafka.Topics.Changelog)
	if err != nil {
		return err
	}
	for _, part := range parts {
		// A standby of part (standby.go) that followed the changelog to
		// its end is reused as it is.
		promoted, err := p.promoteStandby(ctx, base, part, clEnds[part])
		if err != nil {
			return err
		}
		if promoted {
			continue
		}
		partial, err := p.store.RestoreIncomplete(part)
		if err != nil {
			return err
		}
		written, hasWritten, err := p.store.ChangelogWritten(part)
		if err != nil {
			return err
		}
		local, has := stored[part]
		othersWrote := clEnds[part] > 0 && (!hasWritten || clEnds[part] > written+1)
		c, hasCommit := committed[part]
		if !hasCommit {
			c = -1
		}
		if !partial && !othersWrote && !needsRestore(local, has, c) {
			if has && clEnds[part] == 0 {
				// Local state the changelog has never seen (a state dir
				// from before the changelog, or a changelog deleted):
				// copy it in first, or its next owner would miss it.
				if err := p.seedChangelog(ctx, base, part, local); err != nil {
					return err
				}
			}
			continue
		}
		if has && !partial && clEnds[part] > 0 {
			// A changelog with no whole batch holds only an unfinished
			// one (an interrupted copy of this state): copy again.
			lastEnd, err := lastBatchEnd(ctx, base, p.cfg.Kafka.Topics.Changelog, part, clEnds[part])
			if err != nil {
				return err
			}
			if lastEnd < 0 {
				if err := p.seedChangelog(ctx, base, part, local); err != nil {
					return err
				}
				continue
			}
		}
		if _, _, err := p.restorePartition(ctx, base, part); err != nil {
			return err
		}
	}
	return nil
}

// restorePartition restores offers partition part (not owned: no task
// of it runs) from the changelog. It returns the offset to resume input at (ok
// false: start at the beginning).
func (p *Pipeline) restorePartition(ctx context.Context, base []kgo.Opt, part int32) (offset int64, ok bool, err error) {
	topic := p.cfg.Kafka.Topics.Changelog
	began := time.Now()
	var stats state.RestoreStats
	var end int64
	var tailEvents [][]byte // keys of the unfinished batch's event records
	var tailOffers []string // offers it wrote
	var tailGroups [][]byte // group places and winners it wrote (changelog keys)
	var tailMax uint64      // highest outbox sequence its events use, plus one
	// The tombstone sweep waits: it must not delete what the restore writes.
	p.restoreMu.RLock()
	stats, err = restoreState(p.store, p.cfg.Kafka.Topics, part, func(apply func(key, value []byte) error) error {
		var err error
		end, err = readChangelog(ctx, base, topic, part, apply, func(key, value []byte) error {
			switch {
			case len(key) == 9 && key[0] == state.ChangelogKindEvent:
				tailEvents = append(tailEvents, slices.Clone(key))
				tailMax = max(tailMax, binary.BigEndian.Uint64(key[1:])+1)
			case len(key) > 0 && key[0] == state.ChangelogKindOffer:
				tailOffers = append(tailOffers, string(key[1:]))
			case len(key) > 0 && (key[0] == state.ChangelogKindPlace || key[0] == state.ChangelogKindWinner):
				tailGroups = append(tailGroups, slices.Clone(key))
			case bytes.Equal(key, state.ChangelogAckedKey) && len(value) > 0:
				// A watermark the tail carries: the sequences below it
				// were used; the next owner's must stay above them.
				if acked, err := state.DecodeChangelogAcked(value); err == nil {
					tailMax = max(tailMax, acked)
				}
			}
			return nil
		})
		return err
	})
	p.restoreMu.RUnlock()
	var written int64 = -1
	if err == nil && (len(tailEvents) > 0 || len(tailOffers) > 0 || len(tailGroups) > 0) {
		// The unfinished batch's events were never sent: delete their
		// records (a later restore must not send them) and keep their
		// outbox sequences unused; its offers get their restored values
		// back, ended by an offset record, so the batch is superseded
		// before anything else is written.
		written, err = p.supersedeTail(ctx, base, part, tailEvents, tailOffers, tailGroups, stats)
	}
	if err == nil && tailMax > 0 {
		err = p.store.SetOutboxNext(part, tailMax) // raises only
	}
	if err == nil && end > 0 {
		err = p.store.SetChangelogWritten(part, max(end-1, written)) // current with the changelog now
	}
	if err != nil {
		return 0, false, fmt.Errorf("restore offers partition %d from %q: %w", part, topic, err)
	}
	if p.relay != nil {
		p.relay.ResetPartition(part)
	}
	el := time.Since(began)
	p.metrics.restoredOffers.Add(float64(stats.Offers))
	p.logger.Info("restored a partition from the changelog", zap.Int32("partition", part),
		zap.Int64("offers", stats.Offers), zap.Int64("memberships", stats.Memberships), zap.Int64("events_requeued", stats.Events),
		zap.Int64("bytes", stats.Bytes), zap.Duration("took", el), zap.Int64("offset", stats.Offset), zap.Bool("has_offset", stats.HasOffset))
	return stats.Offset, stats.HasOffset, nil
}

// changelogEnds returns the end offset of every changelog partition.
func changelogEnds(ctx context.Context, base []kgo.Opt, topic string) (map[int32]int64, error) {
	admin, err := kgo.NewClient(base...)
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	ends, err := kadm.NewClient(admin).ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("end offsets of changelog %q: %w", topic, err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out, nil
}

// supersedeTail writes, to changelog partition part, deletions of the
// unfinished batch's event records, the restored values of its offers and
// group places and winners, and an offset record (the restored offsets)
// that ends them as a batch. It returns the offset of the last record
// written.
func (p *Pipeline) supersedeTail(ctx context.Context, base []kgo.Opt, part int32, events [][]byte, offers []string, groups [][]byte, stats state.RestoreStats) (int64, error) {
	topic := p.cfg.Kafka.Topics.Changelog
	recs := make([]*kgo.Record, 0, len(events)+len(offers)+1)
	for _, k := range events {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: part, Key: k})
	}
	b := p.store.NewBatch() // read-only
	defer b.Close()
	for _, id := range offers {
		val, ok, err := b.AppendChangelogOffer(nil, part, id, 0, nil)
		if err != nil {
			return -1, err
		}
		rec := &kgo.Record{Topic: topic, Partition: part, Key: state.ChangelogOfferKey(nil, id)}
		if ok {
			rec.Value = val
		}
		recs = append(recs, rec)
	}
	for _, k := range groups {
		feed, key, offer, err := state.ParseChangelogGroupKey(k)
		if err != nil {
			return -1, err
		}
		var val []byte
		var ok bool
		if k[0] == state.ChangelogKindPlace {
			val, ok, err = b.AppendChangelogPlace(nil, part, feed, key, offer)
		} else {
			val, ok, err = b.AppendChangelogWinner(nil, part, feed, key)
		}
		if err != nil {
			return -1, err
		}
		rec := &kgo.Record{Topic: topic, Partition: part, Key: k}
		if ok {
			rec.Value = val
		}
		recs = append(recs, rec)
	}
	if stats.HasOffset || slices.ContainsFunc(stats.ExtraOffsets, func(o int64) bool { return o >= 0 }) {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: part, Key: slices.Clone(state.ChangelogOffsetKey),
			Value: state.AppendChangelogOffset(nil, stats.Offset, stats.ExtraOffsets...)})
	}
	cl, err := kgo.NewClient(append(slices.Clone(base), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(p.changelogBatchBytes()))...)
	if err != nil {
		return -1, err
	}
	defer cl.Close()
	res := cl.ProduceSync(ctx, recs...)
	if err := res.FirstErr(); err != nil {
		return -1, fmt.Errorf("supersede the unfinished batch in the changelog: %w", err)
	}
	last := int64(-1)
	for _, r := range res {
		last = max(last, r.Record.Offset)
	}
	return last, nil
}

// seedChangelog writes every offer of partition part (its stored value
// and membership) to the changelog, then the stored offset, as one batch.
func (p *Pipeline) seedChangelog(ctx context.Context, base []kgo.Opt, part int32, offset int64) error {
	topic := p.cfg.Kafka.Topics.Changelog
	cl, err := kgo.NewClient(append(slices.Clone(base), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(p.changelogBatchBytes()))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	b := p.store.NewBatch() // read-only
	defer b.Close()
	var recs []*kgo.Record
	last := int64(-1)
	flush := func() error {
		res := cl.ProduceSync(ctx, recs...)
		if err := res.FirstErr(); err != nil {
			return fmt.Errorf("copy partition %d's state into the changelog: %w", part, err)
		}
		for _, r := range res {
			last = max(last, r.Record.Offset)
		}
		recs = recs[:0]
		return nil
	}
	after, n := "", 0
	for {
		var ids []string
		k, err := b.ScanOffers(part, after, 1000, func(id string) error { ids = append(ids, id); return nil })
		if err != nil {
			return err
		}
		for _, id := range ids {
			val, ok, err := b.AppendChangelogOffer(nil, part, id, 0, nil)
			if err != nil {
				return err
			}
			if ok {
				recs = append(recs, &kgo.Record{Topic: topic, Partition: part, Key: state.ChangelogOfferKey(nil, id), Value: val})
			}
		}
		n += len(ids)
		if k < 1000 {
			break
		}
		after = ids[len(ids)-1]
		if err := flush(); err != nil {
			return err
		}
	}
	if err := b.ScanChangelogGroups(part, func(key, value []byte) error {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: part, Key: slices.Clone(key), Value: slices.Clone(value)})
		if len(recs) < 1000 {
			return nil
		}
		return flush()
	}); err != nil {
		return err
	}
	extra := make([]int64, 0, 2)
	for _, t := range p.groupTopics() {
		next, ok, err := b.Offset(t, part)
		if err != nil {
			return err
		}
		if !ok {
			next = -1
		}
		extra = append(extra, next)
	}
	recs = append(recs, &kgo.Record{Topic: topic, Partition: part, Key: slices.Clone(state.ChangelogOffsetKey),
		Value: state.AppendChangelogOffset(nil, offset, extra...)})
	if err := flush(); err != nil {
		return err
	}
	p.logger.Info("copied a partition's state into the changelog", zap.Int32("partition", part), zap.Int("offers", n))
	return p.store.SetChangelogWritten(part, last)
}

// readChangelog reads changelog partition part from its start to its end.
// It calls apply, in order, for each record up to the last batch end (an
// offset record): the state of whole batches. The records after it are a
// batch its writer did not finish (it stopped before the batch's offset
// record was acknowledged, so none of its events were sent): they go to
// tail instead. It returns the end offset.
func readChangelog(ctx context.Context, base []kgo.Opt, topic string, part int32, apply, tail func(key, value []byte) error) (int64, error) {
	ends, err := changelogEnds(ctx, base, topic)
	if err != nil {
		return 0, err
	}
	endOff := ends[part]
	if endOff <= 0 {
		return 0, nil // empty: nothing was ever written for the partition
	}
	lastEnd, err := lastBatchEnd(ctx, base, topic, part, endOff)
	if err != nil {
		return 0, err
	}
	err = scanChangelog(ctx, base, topic, part, 0, endOff, func(r *kgo.Record) error {
		if r.Offset <= lastEnd {
			return apply(r.Key, r.Value)
		}
		return tail(r.Key, r.Value)
	})
	return endOff, err
}

// lastBatchEnd returns the offset of the last offset record of changelog
// partition part below end (-1: none), reading back from the end in
// growing windows (it is normally within the last batch).
func lastBatchEnd(ctx context.Context, base []kgo.Opt, topic string, part int32, end int64) (int64, error) {
	for window := int64(20_000); ; window *= 4 {
		from := max(0, end-window)
		last := int64(-1)
		err := scanChangelog(ctx, base, topic, part, from, end, func(r *kgo.Record) error {
			if string(r.Key) == string(state.ChangelogOffsetKey) {
				last = r.Offset
			}
			return nil
		})
		if err != nil || last >= 0 || from == 0 {
			return last, err
		}
	}
}

// scanChangelog calls fn for each record of changelog partition part with
// an offset in [from, end).
func scanChangelog(ctx context.Context, base []kgo.Opt, topic string, part int32, from, end int64, fn func(*kgo.Record) error) error {
	if from >= end {
		return nil
	}
	cl, err := kgo.NewClient(append(slices.Clone(base),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {part: kgo.NewOffset().At(from)}}),
		kgo.FetchMaxWait(100*time.Millisecond))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	for {
		fs := cl.PollRecords(ctx, 10000)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return ferr
		}
		for _, r := range fs.Records() {
			if r.Offset >= end {
				return nil
			}
			if err := fn(r); err != nil {
				return err
			}
			if r.Offset+1 >= end {
				return nil
			}
		}
	}
}

// RestorePartition replaces partition part's state with what feed gives
// (the changelog records in log order) and replaces the partition's
// pending seller jobs with one job that re-evaluates all its offers
// against this instance's tables (restoreState). An owned part is let go
// for the restore and owned again after it, with the restored counts and
// jobs.
func (a *Applier) RestorePartition(part int32, feed func(apply func(key, value []byte) error) error) (state.RestoreStats, error) {
	a.resetCaches()
	owned := slices.Clone(a.partitions)
	if a.owns(part) {
		if err := a.SetPartitions(slices.DeleteFunc(slices.Clone(owned), func(x int32) bool { return x == part })); err != nil {
			return state.RestoreStats{}, err
		}
	}
	stats, err := restoreState(a.store, a.topics, part, feed)
	if err != nil {
		return stats, err
	}
	return stats, a.SetPartitions(owned)
}

// restoreState replaces partition part's state with what feed gives (the
// changelog records in log order), then replaces the partition's pending
// seller jobs with one job that re-evaluates all its offers against this
// instance's tables: the restored memberships reflect the previous
// owner's. No task of part may run meanwhile.
func restoreState(store *state.Store, topics config.Topics, part int32, feed func(apply func(key, value []byte) error) error) (state.RestoreStats, error) {
	r, err := store.NewRestore(part, topics.Offers, topics.GroupCandidates, topics.GroupDecisions) // the order of the offset record's extra offsets (groupTopics)
	if err != nil {
		return state.RestoreStats{}, err
	}
	if err := feed(r.Apply); err != nil {
		r.Abort()
		return state.RestoreStats{}, err
	}
	stats, err := r.Finish()
	if err != nil {
		return stats, err
	}
	return stats, queuePartitionJob(store, topics, part)
}

// queuePartitionJob replaces partition part's pending seller jobs with one
// job that re-evaluates all its offers against this instance's tables
// (after a restore or a standby promotion: the memberships reflect the
// previous owner's).
func queuePartitionJob(store *state.Store, topics config.Topics, part int32) error {
	b := store.NewBatch()
	defer b.Close()
	var joined feeds.FieldMask
	for _, in := range TableInputs(topics) {
		joined |= in.Joined.Fields()
	}
	if err := b.DeleteJobs(part); err != nil {
		return err
	}
	if err := b.PutJob(&state.Job{SellerID: partitionJob, Partition: part, Changed: uint64(joined)}); err != nil {
		return err
	}
	return b.Commit(true)
}
