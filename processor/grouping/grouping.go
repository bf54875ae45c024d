package grouping

import (
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/state"
)

// Candidacy is an offer's standing for one grouped feed (kept in its
// membership).
type Candidacy = state.Candidacy

// Flag is what an offer's task keeps per grouped feed from the
// decisions (kept in its membership).
type Flag = state.GroupFlag

// Message is a candidacy sent to the group task of Key's partition: the
// offer stands in (Feed, Key) at Order, or (not Live) left it.
type Message struct {
	Feed, Key, OfferID string
	Partition          int32 // the offer's offers partition
	Seq                uint64
	Order              state.Order
	Live               bool
}

// GroupPartition is the group partition of (feed, key) among n.
func GroupPartition(feed, key string, n int32) int32 {
	h := xxhash.New()
	_, _ = h.WriteString(feed) // an xxhash Digest never fails
	_, _ = h.Write([]byte{0})
	_, _ = h.WriteString(key)
	return int32(h.Sum64() % uint64(n))
}

// Next returns the offer's new candidacy for a feed and the messages
// that announce it, given the previous one (zero when none): live with
// key and order when the offer passes the filter and has a key and a
// value, else not live. No change, no messages. A move to another key
// sends the leave to the old key and the join to the new one, with one
// sequence: the larger of prev.Seq+1 and floor (a clock in microseconds,
// so an offer forgotten and created again never reuses a sequence its
// groups still remember; 0 for none).
func Next(prev Candidacy, feed, offerID string, partition int32, live bool, key string, order state.Order, floor uint64) (Candidacy, []Message) {
	if !live {
		key, order = "", 0
	}
	if prev.Live == live && prev.Key == key && prev.Order == order {
		return prev, nil
	}
	next := Candidacy{Key: key, Order: order, Live: live, Seq: max(prev.Seq+1, floor)}
	var out []Message
	if prev.Live && (!live || prev.Key != key) {
		out = append(out, Message{Feed: feed, Key: prev.Key, OfferID: offerID, Partition: partition, Seq: next.Seq})
	}
	if live {
		out = append(out, Message{Feed: feed, Key: key, OfferID: offerID, Partition: partition, Seq: next.Seq, Order: order, Live: true})
	}
	return next, out
}

// Decision tells an offer's task that the offer won or lost (Feed, Key),
// as of the offer's candidacy Seq there and the group's GSeq-th winner
// change.
type Decision struct {
	Feed, Key, OfferID string
	Partition          int32 // the offer's offers partition: where it goes
	Won                bool
	Seq, GSeq          uint64
}

// ApplyCandidacy applies m in group partition g and returns whether it
// applied and the decisions it makes: a winner change tells the old
// winner it lost and the new one it won; a new candidacy of the winner
// that stays the winner tells it again that it won (so an offer whose
// flag was lost, or never arrived, learns it with its next change). A
// message not newer than the offer's standing changes nothing.
func ApplyCandidacy(b *state.Batch, g int32, m Message) (bool, []Decision, error) {
	ch, err := b.SetCandidacy(g, m.Feed, m.Key, m.OfferID, m.Partition, m.Seq, m.Order, m.Live)
	if err != nil || !ch.Applied {
		return false, nil, err
	}
	if ch.Before == ch.After {
		if m.Live && ch.After.OfferID == m.OfferID {
			return true, []Decision{{Feed: m.Feed, Key: m.Key, OfferID: m.OfferID, Partition: m.Partition, Won: true, Seq: m.Seq, GSeq: ch.Decision}}, nil
		}
		return true, nil, nil
	}
	var out []Decision
	if w := ch.Before; w.OfferID != "" {
		seq := m.Seq
		if w.OfferID != m.OfferID {
			pl, _, err := b.GroupPlace(g, m.Feed, m.Key, w.OfferID)
			if err != nil {
				return false, nil, err
			}
			seq = pl.Seq
		}
		out = append(out, Decision{Feed: m.Feed, Key: m.Key, OfferID: w.OfferID, Partition: w.Partition, Seq: seq, GSeq: ch.Decision})
	}
	if w := ch.After; w.OfferID != "" {
		pl, _, err := b.GroupPlace(g, m.Feed, m.Key, w.OfferID)
		if err != nil {
			return false, nil, err
		}
		out = append(out, Decision{Feed: m.Feed, Key: m.Key, OfferID: w.OfferID, Partition: w.Partition, Won: true, Seq: pl.Seq, GSeq: ch.Decision})
	}
	return true, out, nil
}

// ApplyDecision folds decision d into f. Decisions of one group about the offer
// arrive in order, but those of two groups (after a move) interleave, so
// only a decision newer than the flag counts: a win of a later
// candidacy, or of the same one in another group (a move's join wins
// over its leave, which only loses) or later in the same group; a loss
// of the key the flag holds, later than the flag.
func ApplyDecision(f Flag, d Decision) Flag {
	switch {
	case d.Won && (d.Seq > f.Seq || d.Seq == f.Seq && (d.Key != f.Key || d.GSeq > f.GSeq)):
		return Flag{Key: d.Key, Won: true, Seq: d.Seq, GSeq: d.GSeq}
	case !d.Won && d.Key == f.Key && (d.Seq > f.Seq || d.Seq == f.Seq && d.GSeq > f.GSeq):
		return Flag{Key: d.Key, Seq: d.Seq, GSeq: d.GSeq}
	}
	return f
}

// Member reports whether an offer with candidacy c and flag f is its
// group's member.
func Member(c Candidacy, f Flag) bool { return c.Live && f.Won && f.Key == c.Key }

// Evaluate evaluates grouped feed f's group.by and group.of for view at
// now (feeds.Evaluator.Group): the key's text appended to key, and the
// value's order; ok is false when the offer is in no group.
func Evaluate(ev *feeds.Evaluator, f *feeds.Feed, view *feeds.View, now time.Time, key []byte) ([]byte, state.Order, bool) {
	key, val, pickMax, ok := ev.Group(f, view, now, key)
	if !ok {
		return key, 0, false
	}
	if val.IsTime {
		return key, state.OrderTime(val.Time, pickMax), true
	}
	return key, state.OrderFloat(val.Num, pickMax), true
}
