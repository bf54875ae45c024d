package processor_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/internal/synth"
	"github.com/feedmill/feedmill/internal/testenv"
)

// member is one (feed, destination) an offer is announced to.
type member struct{ feed, dest string }

// eventModel is what a connector that dedupes by seq would hold, plus
// checks of every rule of docs/contract.md, Delivery semantics.
type eventModel struct {
	set        *feeds.Set
	eval       *feeds.Evaluator
	lastSeq    map[string]int64
	byID       map[string][]byte // event_id → value, to check re-sends are identical
	members    map[string]map[member]bool
	rendered   map[string]map[string][]byte // offer → feed → last rendered item
	violations []string
	events     int
	resends    int
	actions    map[string]int
}

func newEventModel(set *feeds.Set) *eventModel {
	return &eventModel{
		set: set, eval: set.NewEvaluator(),
		lastSeq: map[string]int64{}, byID: map[string][]byte{},
		members: map[string]map[member]bool{}, rendered: map[string]map[string][]byte{},
		actions: map[string]int{},
	}
}

func (m *eventModel) violate(format string, args ...any) {
	if len(m.violations) < 50 {
		m.violations = append(m.violations, fmt.Sprintf(format, args...))
	}
}

// apply consumes one feed-events record.
func (m *eventModel) apply(r *kgo.Record, ev *records.FeedEvent) {
	m.events++
	if string(r.Key) != ev.OfferID {
		m.violate("event %s: key %q != offer_id", ev.EventID, r.Key)
	}
	var hdr []string
	for _, h := range r.Headers {
		if h.Key == "destination" {
			hdr = append(hdr, string(h.Value))
		}
	}
	var want []string
	for _, e := range ev.Entries {
		if !slices.Contains(want, e.Destination) {
			want = append(want, e.Destination)
		}
	}
	sort.Strings(hdr)
	sort.Strings(want)
	if !slices.Equal(hdr, want) {
		m.violate("event %s: destination headers %v, entries name %v", ev.EventID, hdr, want)
	}
	if prev, ok := m.byID[ev.EventID]; ok {
		if !bytes.Equal(prev, r.Value) {
			m.violate("event %s re-sent with different content", ev.EventID)
		}
	} else {
		m.byID[ev.EventID] = r.Value
	}
	if ev.Seq <= m.lastSeq[ev.OfferID] {
		m.resends++
		return // a re-send: a deduping consumer ignores it
	}
	m.lastSeq[ev.OfferID] = ev.Seq
	if len(ev.Entries) == 0 {
		m.violate("event %s has no entries", ev.EventID)
	}
	mem := m.members[ev.OfferID]
	if mem == nil {
		mem = map[member]bool{}
		m.members[ev.OfferID] = mem
	}
	rend := m.rendered[ev.OfferID]
	if rend == nil {
		rend = map[string][]byte{}
		m.rendered[ev.OfferID] = rend
	}
	var view *feeds.View
	if ev.Offer != nil {
		view = &feeds.View{Offer: &ev.Offer.Offer, Seller: ev.Offer.Seller, Rating: ev.Offer.Rating}
		records.DerivePrice(view.Offer)
		if view.Offer.ID != ev.OfferID {
			m.violate("event %s: offer.id %q", ev.EventID, view.Offer.ID)
		}
	}
	before := map[string][]byte{} // rendered items as of the previous event
	for _, e := range ev.Entries {
		if _, ok := before[e.FeedID]; !ok {
			before[e.FeedID] = rend[e.FeedID]
		}
	}
	for _, e := range ev.Entries {
		m.actions[e.Action]++
		k := member{e.FeedID, e.Destination}
		switch e.Action {
		case records.ActionAdd:
			if mem[k] {
				m.violate("event %s: ADD %v for offer %s already in it", ev.EventID, k, ev.OfferID)
			}
			mem[k] = true
		case records.ActionUpdate, records.ActionRefresh:
			if !mem[k] {
				m.violate("event %s: %s %v for offer %s not in it", ev.EventID, e.Action, k, ev.OfferID)
			}
		case records.ActionRemove:
			if !mem[k] {
				m.violate("event %s: REMOVE %v for offer %s not in it", ev.EventID, k, ev.OfferID)
			}
			delete(mem, k)
		default:
			m.violate("event %s: unknown action %q", ev.EventID, e.Action)
		}
		if e.Action == records.ActionRemove {
			continue
		}
		if view == nil {
			m.violate("event %s: %s with a null offer", ev.EventID, e.Action)
			continue
		}
		f, ok := m.set.Feed(e.FeedID)
		if !ok {
			m.violate("event %s: unknown feed %q", ev.EventID, e.FeedID)
			continue
		}
		item := m.eval.AppendItem(nil, f.Template, view, ev.EmittedAt)
		if e.Action == records.ActionUpdate && bytes.Equal(item, before[e.FeedID]) {
			m.violate("event %s: UPDATE of %v for offer %s renders the same item", ev.EventID, k, ev.OfferID)
		}
		rend[e.FeedID] = item
	}
	if ev.Offer == nil && len(mem) > 0 {
		m.violate("event %s: offer deleted but still in %v", ev.EventID, mem)
	}
}

// groupRef is the plain group-by reference of grouped feeds: per (feed,
// key) the best candidate so far.
type groupRef struct {
	feed, key string
}

type groupBest struct {
	id  string
	val feeds.GroupValue
	max bool
}

// better reports whether candidate (id, v) beats b: the smaller (min) or
// larger (max) value, ties to the lower offer id.
func (b groupBest) better(id string, v feeds.GroupValue) bool {
	var c int
	if v.IsTime {
		c = v.Time.Compare(b.val.Time)
	} else {
		switch {
		case v.Num < b.val.Num:
			c = -1
		case v.Num > b.val.Num:
			c = 1
		}
	}
	if b.max {
		c = -c
	}
	return c < 0 || c == 0 && id < b.id
}

// expected evaluates the final truth independently of the stream: every
// filter from scratch, and for a grouped feed the best candidate of each
// key (a group-by over the final state).
func expectedMembers(set *feeds.Set, st synth.State, now time.Time) (map[string]map[member]bool, map[string]map[string][]byte) {
	eval := set.NewEvaluator()
	out := map[string]map[member]bool{}
	rend := map[string]map[string][]byte{}
	hit := make([]bool, len(set.Feeds()))
	best := map[groupRef]groupBest{}
	views := map[string]*feeds.View{}
	for id, o := range st.Offers {
		oc := *o
		records.DerivePrice(&oc)
		v := &feeds.View{Offer: &oc}
		if s, ok := st.Sellers[o.SellerID]; ok {
			v.Seller = s
		}
		if r, ok := st.Ratings[o.SellerID]; ok {
			v.Rating = r
		}
		eval.Match(v, now, hit)
		views[id] = v
		for i, f := range set.Feeds() {
			if !hit[i] || len(f.Destinations) == 0 {
				continue
			}
			if f.Grouped() {
				key, val, pickMax, ok := eval.Group(f, v, now, nil)
				if !ok {
					continue
				}
				g := groupRef{f.ID, string(key)}
				if b, seen := best[g]; !seen || b.better(id, val) {
					best[g] = groupBest{id: id, val: val, max: pickMax}
				}
				continue
			}
			addExpected(out, rend, eval, id, f, v, now)
		}
	}
	for g, b := range best {
		f, _ := set.Feed(g.feed)
		addExpected(out, rend, eval, b.id, f, views[b.id], now)
	}
	return out, rend
}

func addExpected(out map[string]map[member]bool, rend map[string]map[string][]byte, eval *feeds.Evaluator, id string, f *feeds.Feed, v *feeds.View, now time.Time) {
	if out[id] == nil {
		out[id] = map[member]bool{}
		rend[id] = map[string][]byte{}
	}
	for _, d := range f.Destinations {
		out[id][member{f.ID, d}] = true
	}
	rend[id][f.ID] = eval.AppendItem(nil, f.Template, v, now)
}

// checkFinal compares the model with the expected final membership and
// rendered items.
func (m *eventModel) checkFinal(t *testing.T, want map[string]map[member]bool, wantItems map[string]map[string][]byte) {
	t.Helper()
	bad := 0
	report := func(format string, args ...any) {
		bad++
		if bad <= 20 {
			t.Errorf(format, args...)
		}
	}
	for id, w := range want {
		got := m.members[id]
		for k := range w {
			if !got[k] {
				report("offer %s should be in %v, events never added it (or removed it)", id, k)
			}
		}
		for feed, item := range wantItems[id] {
			if !bytes.Equal(m.rendered[id][feed], item) {
				report("offer %s feed %s: last announced item differs from the final state's", id, feed)
			}
		}
	}
	for id, got := range m.members {
		for k := range got {
			if !want[id][k] {
				report("offer %s is announced in %v but should not be", id, k)
			}
		}
	}
	if bad > 20 {
		t.Errorf("... %d membership differences in all", bad)
	}
	for _, v := range m.violations {
		t.Error(v)
	}
}

// replayEvents feeds every record of cfg's events topic to a new
// eventModel of cfg's feeds (each, when set, sees every record too) and
// returns the model and the feed set.
func replayEvents(t *testing.T, env *testenv.Env, cfg *config.Config, serde *records.Serde, each func(r *kgo.Record, ev *records.FeedEvent)) (*eventModel, *feeds.Set) {
	t.Helper()
	set, err := feeds.Compile(cfg.Feeds, cfg.Templates)
	if err != nil {
		t.Fatal(err)
	}
	model := newEventModel(set)
	for _, r := range consumeAll(t, env, cfg.Kafka.Topics.Events) {
		var ev records.FeedEvent
		if err := serde.DecodeFeedEvent(context.Background(), r.Value, &ev); err != nil {
			t.Fatalf("decode feed event at %d/%d: %v", r.Partition, r.Offset, err)
		}
		if each != nil {
			each(r, &ev)
		}
		model.apply(r, &ev)
	}
	return model, set
}

// checkGenerated checks the final membership against an evaluation of
// gen's final state from scratch.
func (m *eventModel) checkGenerated(t *testing.T, set *feeds.Set, gen *synth.Generator) {
	t.Helper()
	want, wantItems := expectedMembers(set, gen.State(), time.Now())
	m.checkFinal(t, want, wantItems)
}
