package processor

import (
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/processor/grouping"
	"github.com/feedmill/feedmill/state"
)

// The grouped feeds' two stages on a partition task (docs/grouped-feeds.md).
// Task g is also the group task of group partition g: it applies the
// candidacy records of partition g of kafka.topics.group_candidates to
// the groups kept there and stages the winner decisions they make, and
// it applies the decisions of partition g of kafka.topics.group_decisions
// to its own offers. Both in the task's batches, with their offsets and
// outbox records, like the offers.

// applyCandidacy applies one candidacy record to its group (group
// partition r.Partition) and stages the decisions a winner change makes.
func (a *Applier) applyCandidacy(b *state.Batch, r *kgo.Record) error {
	a.metrics.consumed.WithLabelValues(r.Topic).Inc()
	var m grouping.Message
	if err := grouping.DecodeMessage(r.Key, r.Value, &m); err != nil {
		a.reject(b, r.Partition, r, err.Error())
		return nil
	}
	g := r.Partition
	applied, decisions, err := grouping.ApplyCandidacy(b, g, m)
	if err != nil {
		return fmt.Errorf("group %q of feed %q: %w", m.Key, m.Feed, err)
	}
	if !applied {
		return nil // late or duplicate: nothing changed
	}
	a.touchGroup(g, m.Feed, m.Key, m.OfferID)
	if len(decisions) > 0 {
		a.touchGroup(g, m.Feed, m.Key, "") // the winner (or its counter) is written
	}
	for i := range decisions {
		d := &decisions[i]
		a.gRecKey = grouping.AppendDecisionKey(a.gRecKey[:0], d)
		a.gRecVal = grouping.AppendDecision(a.gRecVal[:0], d)
		seq, enc := b.AddOutbox(g, &state.OutboxRecord{
			Topic: a.topics.GroupDecisions, Partition: d.Partition, Key: a.gRecKey, Value: a.gRecVal,
		})
		w := a.touchGroup(g, m.Feed, m.Key, "")
		w.events = append(w.events, touchedEvent{seq: seq, enc: enc})
	}
	return nil
}

// touchGroup notes that the batch being built changes a place (offer
// != "") or a winner of group partition g.
func (a *Applier) touchGroup(g int32, feed, key, offer string) *groupTouch {
	k := groupTouchKey{g, feed, key, offer}
	if i, ok := a.groupTouchedIdx[k]; ok {
		return &a.groupTouched[i]
	}
	if a.groupTouchedIdx == nil {
		a.groupTouchedIdx = map[groupTouchKey]int{}
	}
	a.groupTouchedIdx[k] = len(a.groupTouched)
	a.groupTouched = append(a.groupTouched, groupTouch{groupTouchKey: k})
	return &a.groupTouched[len(a.groupTouched)-1]
}

// applyDecision applies one winner decision to the flag of its offer
// (of offers partition r.Partition) and, when the flag changed,
// re-evaluates the offer: a win makes it a member (ADD), a loss takes it
// out (REMOVE), in the offer's next event.
func (a *Applier) applyDecision(b *state.Batch, r *kgo.Record, now time.Time) error {
	a.metrics.consumed.WithLabelValues(r.Topic).Inc()
	var d grouping.Decision
	if err := grouping.DecodeDecision(r.Key, r.Value, r.Partition, &d); err != nil {
		a.reject(b, r.Partition, r, err.Error())
		return nil
	}
	if f, ok := a.set.Feed(d.Feed); !ok || !f.Grouped() {
		return nil // the feed is gone (or no longer grouped)
	}
	p, id := r.Partition, d.OfferID
	found, err := b.GetMembership(p, id, &a.mem, a.intern)
	if err != nil || !found {
		return err // no membership: no candidacy of this state, nothing to decide
	}
	var flag state.GroupFlag
	if j := a.mem.FindGroup(d.Feed); j >= 0 {
		flag = a.mem.Groups[j].Flag
	}
	if grouping.ApplyDecision(flag, d) == flag {
		return nil // late or duplicate
	}
	a.offer = records.Offer{}
	pres, _, err := b.GetOffer(p, id, &a.offer)
	if err != nil {
		return err
	}
	var view *feeds.View
	if pres == state.Live {
		if err := a.joiner.Join(b, &a.offer, &a.view); err != nil {
			return err
		}
		view = &a.view
	}
	a.decision, a.memLoaded = &d, true
	defer func() { a.decision, a.memLoaded = nil, false }()
	return a.evaluateChanged(b, p, id, view, 0, records.CauseChange, r.Timestamp.UnixMilli(), now)
}

// stageGroupChangelog adds the changelog records of the group state the
// batch changed: per changed winner its decision records first (like
// events), then each changed place and winner as the batch leaves it.
func (a *Applier) stageGroupChangelog(b *state.Batch) error {
	for i := range a.groupTouched {
		t := &a.groupTouched[i]
		for _, e := range t.events {
			a.clKey = state.ChangelogEventKey(a.clKey[:0], e.seq)
			b.AddOutbox(t.g, &state.OutboxRecord{Topic: a.changelog, Partition: t.g, Key: a.clKey, Value: e.enc})
		}
	}
	for i := range a.groupTouched {
		t := &a.groupTouched[i]
		var (
			val []byte
			ok  bool
			err error
		)
		if t.offer != "" {
			val, ok, err = b.AppendChangelogPlace(a.clBuf[:0], t.g, t.feed, t.key, t.offer)
			a.clKey = state.ChangelogPlaceKey(a.clKey[:0], t.feed, t.key, t.offer)
		} else {
			val, ok, err = b.AppendChangelogWinner(a.clBuf[:0], t.g, t.feed, t.key)
			a.clKey = state.ChangelogWinnerKey(a.clKey[:0], t.feed, t.key)
		}
		if err != nil {
			return fmt.Errorf("changelog record of group %q of feed %q: %w", t.key, t.feed, err)
		}
		a.clBuf = val
		rec := state.OutboxRecord{Topic: a.changelog, Partition: t.g, Key: a.clKey}
		if ok {
			rec.Value = val
		}
		b.AddOutbox(t.g, &rec)
	}
	return nil
}
