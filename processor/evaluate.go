package processor

import (
	"slices"
	"strconv"
	"time"

	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/processor/grouping"
	"github.com/feedmill/feedmill/state"
)

// evaluate recomputes the feed memberships of one offer and stages the
// resulting event (if any (feed, destination) changed) and membership in b.
// view == nil means the offer no longer exists.
func (a *Applier) evaluate(b *state.Batch, p int32, id string, view *feeds.View, cause string, srcMs int64, now time.Time) error {
	return a.evaluateChanged(b, p, id, view, feeds.FieldsAll, cause, srcMs, now)
}

// evaluateChanged is evaluate for a change that touched only the fields in
// changed: feeds whose filter reads none of them keep their stored
// membership, and members whose template renders none of them keep their
// stored fingerprint. FieldsAll re-evaluates everything.
func (a *Applier) evaluateChanged(b *state.Batch, p int32, id string, view *feeds.View, changed feeds.FieldMask, cause string, srcMs int64, now time.Time) error {
	if view != nil && !a.budget.Fits(view.Offer) {
		view = nil // the size rule: in no feed, and no offer in the event
	}
	if err := a.usePartition(p); err != nil {
		return err
	}
	if a.memLoaded { // by applyDecision, for this offer
		a.memLoaded = false
	} else if _, err := b.GetMembership(p, id, &a.mem, a.intern); err != nil {
		return err
	}
	list := a.set.Feeds()
	stale := false // a stored feed no longer configured
	for i := range a.mem.Feeds {
		if f, ok := a.set.Feed(a.mem.Feeds[i].FeedID); ok {
			a.oldIdx[f.Index] = int32(i)
		} else {
			stale = true
		}
	}
	a.next.Reset()
	a.next.Seq = a.mem.Seq
	switch {
	case view == nil:
		clear(a.member)
	case changed == feeds.FieldsAll:
		a.eval.Match(view, now, a.member)
	default:
		for i := range a.prevMember {
			a.prevMember[i] = a.oldIdx[i] >= 0
		}
		// A grouped feed's member is a winner; its filter is the
		// standing's (a candidate that lost passes it too).
		for _, i := range a.grouped {
			a.prevMember[i] = false
		}
		for j := range a.mem.Groups {
			if f, ok := a.set.Feed(a.mem.Groups[j].FeedID); ok && f.Grouped() {
				a.prevMember[f.Index] = a.mem.Groups[j].Filter
			}
		}
		a.eval.MatchChanged(view, now, changed, a.prevMember, a.member)
		a.eval.MatchOnly(view, now, a.forceIdx, a.member) // a feed change job's feeds
	}
	groupsChanged := false
	if len(a.grouped) > 0 || len(a.mem.Groups) > 0 {
		groupsChanged = a.groupStage(b, p, id, view, changed, now)
	}
	clear(a.fpValid)
	a.entries = a.entries[:0]
	nowMs := now.UnixMilli()
	dirty := groupsChanged
	for i, f := range list {
		oi := a.oldIdx[i]
		if oi >= 0 {
			a.oldIdx[i] = -1
		}
		if !a.member[i] {
			if oi >= 0 {
				dirty = true
				a.delta[i]--
				for _, d := range a.mem.Feeds[oi].Destinations {
					a.addEntry(f.ID, d, records.ActionRemove)
				}
			}
			continue
		}
		var fp uint64
		if oi >= 0 && changed&f.Template.RenderFields() == 0 && !a.force[i] {
			fp = a.mem.Feeds[oi].Fingerprint // nothing it renders changed
		} else {
			fp = a.fingerprint(f.Template, view, now)
		}
		fm := state.FeedMembership{FeedID: f.ID, Fingerprint: fp, Destinations: f.Destinations}
		before := len(a.entries)
		if oi < 0 {
			dirty = true
			a.delta[i]++
			for _, d := range f.Destinations {
				a.addEntry(f.ID, d, records.ActionAdd)
			}
		} else {
			old := &a.mem.Feeds[oi]
			fm.SentAtMs = old.SentAtMs
			if old.Fingerprint != fp || !slices.Equal(old.Destinations, f.Destinations) {
				dirty = true
			}
			for _, d := range f.Destinations {
				switch {
				case !slices.Contains(old.Destinations, d):
					a.addEntry(f.ID, d, records.ActionAdd)
				case old.Fingerprint != fp:
					a.addEntry(f.ID, d, records.ActionUpdate)
				}
			}
			for _, d := range old.Destinations {
				if !slices.Contains(f.Destinations, d) {
					a.addEntry(f.ID, d, records.ActionRemove)
				}
			}
		}
		if len(a.entries) > before {
			fm.SentAtMs = nowMs
		}
		a.next.Feeds = append(a.next.Feeds, fm)
	}
	if stale {
		dirty = true
		for i := range a.mem.Feeds {
			old := &a.mem.Feeds[i]
			if _, ok := a.set.Feed(old.FeedID); !ok {
				for _, d := range old.Destinations {
					a.addEntry(old.FeedID, d, records.ActionRemove)
				}
			}
		}
	}
	a.next.FieldHashes = append(a.next.FieldHashes, a.mem.FieldHashes...)
	if len(a.entries) > 0 {
		if err := a.emit(b, p, id, view, cause, srcMs, now); err != nil {
			return err
		}
		dirty = true
	}
	if !dirty {
		return nil
	}
	a.touch(p, id) // its changelog record
	return b.PutMembership(p, id, &a.next)
}

func (a *Applier) addEntry(feedID, dest, action string) {
	a.entries = append(a.entries, records.FeedEntry{FeedID: feedID, Destination: dest, Action: action})
}

// fingerprint is computed at most once per template per evaluation.
func (a *Applier) fingerprint(t *feeds.Template, v *feeds.View, now time.Time) uint64 {
	if !a.fpValid[t.Index] {
		a.fp[t.Index] = a.eval.Fingerprint(t, v, now)
		a.fpValid[t.Index] = true
	}
	return a.fp[t.Index]
}

// nextSeq returns a seq greater than prev that also stays greater than any
// seq used before the offer's state was forgotten (tombstone retention), by
// never going below the current time in microseconds.
func nextSeq(prev int64, now time.Time) int64 {
	return max(prev+1, now.UnixMicro())
}

// emit encodes the event for a.entries and stages it in the outbox.
func (a *Applier) emit(b *state.Batch, p int32, id string, view *feeds.View, cause string, srcMs int64, now time.Time) error {
	seq := nextSeq(a.mem.Seq, now)
	a.next.Seq = seq
	a.changed = a.changed[:0]
	if view != nil {
		a.hashes = a.hasher.hashView(a.hashes[:0], view.Offer, view.Seller, view.Rating)
		a.changed = appendChangedFields(a.changed, a.mem.FieldHashes, a.hashes)
		a.next.FieldHashes = append(a.next.FieldHashes[:0], a.hashes...)
	}
	ev := &a.event
	*ev = records.FeedEvent{
		EventID:       id + "@" + strconv.FormatInt(seq, 10),
		OfferID:       id,
		Seq:           seq,
		EmittedAt:     now,
		Cause:         cause,
		Entries:       a.entries,
		ChangedFields: a.changed,
	}
	if ev.ChangedFields == nil {
		ev.ChangedFields = []string{}
	}
	var ov records.OfferView
	if view != nil {
		ov = records.OfferView{Offer: *view.Offer, Seller: view.Seller, Rating: view.Rating}
		ev.Offer = &ov
	}
	var err error
	a.enc, err = a.serde.AppendFeedEvent(a.enc[:0], a.eventID, ev)
	if err != nil {
		return err
	}
	a.headers = a.headers[:0]
	for _, e := range a.entries {
		if !slices.ContainsFunc(a.headers, func(h state.Header) bool { return string(h.Value) == e.Destination }) {
			a.headers = append(a.headers, state.Header{Key: "destination", Value: []byte(e.Destination)})
		}
		a.pendingActions[actionIndex(e.Action)]++
	}
	outSeq, enc := b.AddOutbox(p, &state.OutboxRecord{
		Topic: a.topicsEvents(), Partition: -1, Key: []byte(id), Value: a.enc, Headers: a.headers, SourceTimeMs: srcMs,
	})
	t := a.touch(p, id)
	t.events = append(t.events, touchedEvent{seq: outSeq, enc: enc})
	return nil
}

func (a *Applier) topicsEvents() string { return a.topics.Events }

// partitionJob is the seller id of a job that re-evaluates every offer of
// its partitions (after a restore: the restored memberships reflect the
// previous owner's tables, not this instance's).
const partitionJob = ""

// RunJobChunk advances one pending seller job of an owned partition
// (round robin) by up to Processor.SellerChunk offers, in one committed
// batch. Jobs of partitions this applier does not own wait until they are
// owned. It reports whether a job is still pending afterwards.
func (a *Applier) RunJobChunk() (bool, error) {
	_, more, err := a.runJobChunk(false)
	return more, err
}

// runJobChunk is RunJobChunk for the pipeline: seller jobs (live table
// changes) go before feed change jobs (the backfill), which run only when
// no seller job waits and, with skipFeedJobs (the backfill's pace is
// spent), not at all; ran is false when nothing ran.
func (a *Applier) runJobChunk(skipFeedJobs bool) (ran, more bool, err error) {
	k := 0
	for k < len(a.jobOrder) && isFeedJob(a.jobOrder[k].seller) {
		k++
	}
	if k == len(a.jobOrder) { // only feed change jobs
		if skipFeedJobs || k == 0 {
			return false, k > 0, nil
		}
		k = 0
	}
	if k > 0 { // the first job not paced goes first
		id := a.jobOrder[k]
		copy(a.jobOrder[1:k+1], a.jobOrder[:k])
		a.jobOrder[0] = id
	}
	more, err = a.runFirstJob()
	return true, more, err
}

// runFirstJob advances the first job of the round robin.
func (a *Applier) runFirstJob() (bool, error) {
	id := a.jobOrder[0]
	j := *a.jobs[id]
	budget := a.proc.SellerChunk
	if budget <= 0 {
		budget = 500
	}
	if isFeedJob(j.SellerID) {
		budget = min(budget, feedJobChunk)
	}
	b := a.store.NewBatch()
	defer b.Close()
	now := a.now()
	var last string
	scan := func(fn func(string) error) (int, error) {
		return b.ScanSellerOffers(j.Partition, j.SellerID, j.After, budget, fn)
	}
	cause := records.CauseChange
	if j.SellerID == partitionJob || isFeedJob(j.SellerID) {
		scan = func(fn func(string) error) (int, error) { return b.ScanOffers(j.Partition, j.After, budget, fn) }
	}
	if isFeedJob(j.SellerID) {
		// Only the feeds the change named are evaluated (MatchOnly); the
		// others keep their stored membership.
		cause = records.CauseFeedChange
		for _, fid := range j.Feeds {
			if f, ok := a.set.Feed(fid); ok {
				a.force[f.Index] = true
				a.forceIdx = append(a.forceIdx, f.Index)
			}
		}
		defer func() {
			for _, i := range a.forceIdx {
				a.force[i] = false
			}
			a.forceIdx = a.forceIdx[:0]
		}()
	}
	n, err := scan(func(offerID string) error {
		last = offerID
		var o records.Offer
		pres, _, err := b.GetOffer(j.Partition, offerID, &o)
		if err != nil || pres != state.Live {
			return err
		}
		var v feeds.View
		if err := a.joiner.Join(b, &o, &v); err != nil {
			return err
		}
		if cause == records.CauseFeedChange {
			a.backfilled++
		}
		return a.evaluateChanged(b, j.Partition, offerID, &v, feeds.FieldMask(j.Changed), cause, j.SourceTimeMs, now)
	})
	if err != nil {
		a.resetCaches()
		return true, err
	}
	if n > 0 {
		j.After = last
	}
	done := n < budget // the partition is exhausted
	if done {
		err = b.DeleteJob(j.Partition, j.SellerID)
	} else {
		err = b.PutJob(&j)
	}
	if err != nil {
		a.resetCaches()
		return true, err
	}
	if err := a.commit(b, now); err != nil {
		a.resetCaches()
		return true, err
	}
	if done {
		a.dropJob(id)
	} else {
		*a.jobs[id] = j
		// round robin between jobs
		a.jobOrder = append(a.jobOrder[1:], id)
	}
	return len(a.jobOrder) > 0, nil
}

// groupStage turns the filter results of the grouped feeds (in a.member)
// into their members (docs/grouped-feeds.md): per grouped feed it updates
// the offer's candidacy (the filter, group.by and group.of), stages the
// candidacy records a change sends to the groups, folds a.decision (the
// winner decision being applied, if any) into the flag, and sets
// a.member to whether the offer is its group's winner. It puts the
// standings in a.next and reports whether any changed.
func (a *Applier) groupStage(b *state.Batch, p int32, id string, view *feeds.View, changed feeds.FieldMask, now time.Time) bool {
	list := a.set.Feeds()
	floor := uint64(now.UnixMicro())
	dirty := false
	// The stored standings by feed index (1 + their position; 0: none).
	for j := range a.mem.Groups {
		if f, ok := a.set.Feed(a.mem.Groups[j].FeedID); ok && f.Grouped() {
			a.standingOf[f.Index] = int32(j + 1)
		} else if st := &a.mem.Groups[j]; st.Cand.Live {
			// A feed removed, or no longer grouped: the offer leaves
			// its group, so the group decides without it.
			_, msgs := grouping.Next(st.Cand, st.FeedID, id, p, false, "", 0, floor)
			for k := range msgs {
				a.sendCandidacy(b, p, &msgs[k])
			}
			dirty = true
		} else {
			dirty = true // dropped
		}
	}
	for _, i := range a.grouped {
		f := list[i]
		st := state.GroupStanding{FeedID: f.ID}
		if j := a.standingOf[i]; j > 0 {
			st = a.mem.Groups[j-1]
			a.standingOf[i] = 0
		}
		old := st
		if d := a.decision; d != nil && d.Feed == f.ID {
			st.Flag = grouping.ApplyDecision(st.Flag, *d)
		}
		filter := a.member[i]
		live, key, order := st.Cand.Live && filter, st.Cand.Key, st.Cand.Order
		// group.by and group.of never read now (Compile refuses it).
		if filter && (!st.Filter || changed == feeds.FieldsAll || changed&f.GroupFields() != 0 || a.force[i]) {
			var k []byte
			k, order, live = grouping.Evaluate(a.eval, f, view, now, a.gkey[:0])
			a.gkey = k
			if live && string(k) != key {
				key = string(k)
			}
		}
		next, msgs := grouping.Next(st.Cand, f.ID, id, p, live, key, order, floor)
		for k := range msgs {
			a.sendCandidacy(b, p, &msgs[k])
		}
		st.Cand, st.Filter = next, filter
		a.member[i] = grouping.Member(st.Cand, st.Flag)
		if st != old {
			dirty = true
		}
		// Kept once the offer was a candidate: the sequence and the flag
		// only grow, so a late decision cannot count again.
		if st.Filter || st.Cand.Seq != 0 || st.Flag != (state.GroupFlag{}) {
			a.next.Groups = append(a.next.Groups, st)
		}
	}
	return dirty
}

// sendCandidacy stages candidacy m for the group partition of its key,
// in offers partition p's outbox (and changelog, like an event).
func (a *Applier) sendCandidacy(b *state.Batch, p int32, m *grouping.Message) {
	a.gRecKey = grouping.AppendMessageKey(a.gRecKey[:0], m)
	a.gRecVal = grouping.AppendMessage(a.gRecVal[:0], m)
	seq, enc := b.AddOutbox(p, &state.OutboxRecord{
		Topic: a.topics.GroupCandidates, Partition: grouping.GroupPartition(m.Feed, m.Key, a.groupParts),
		Key: a.gRecKey, Value: a.gRecVal,
	})
	t := a.touch(p, m.OfferID)
	t.events = append(t.events, touchedEvent{seq: seq, enc: enc})
}
