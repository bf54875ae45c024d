package processor

import (
	"fmt"

	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/internal/records"
)

// The size rule keeps every outgoing record within
// processor.max_event_bytes, decided before the event is built:
//
//   - a seller or rating record larger than tableRecordMax is rejected;
//   - an offer whose encoding, with its id repeated in the key, event_id
//     and offer_id, is larger than what the budget leaves for it is
//     "not renderable": it is treated as deleted with its version (its
//     members get a REMOVE, with no offer in the event; nothing of it is
//     kept, so the changelog's records stay small too), and the input
//     record goes to the rejects topic with the reason, its value left
//     out. A later, smaller version brings it back like a new offer.
//
// The budget reserves room for the rest of the largest possible event:
// every (feed, destination) entry twice over (an event also removes feeds
// no longer configured), their destination headers, the changed field
// names, the largest seller and rating, and the envelope. The full pass
// applies the same rule, so its files and reconciliation agree with the
// stream.
const (
	defaultMaxEventBytes = 1_000_000
	tableRecordMax       = 16 << 10
	envelopeReserve      = 512
	changedFieldsReserve = 4 << 10
	minOfferBudget       = 8 << 10
)

// EventBudget is the size rule for one feed set and max_event_bytes.
// It is immutable and safe for concurrent use.
type EventBudget struct {
	maxEvent int
	offerMax int // the most an offer's OfferSizeMax (+ its ids) may be
}

// NewEventBudget is the size rule for set and processor.max_event_bytes
// (0: its default). The full pass uses it too.
func NewEventBudget(maxEventBytes int, set *feeds.Set) (EventBudget, error) {
	if maxEventBytes <= 0 {
		maxEventBytes = defaultMaxEventBytes
	}
	entries, headers := 0, 0
	dests := map[string]bool{}
	for _, f := range set.Feeds() {
		for _, d := range f.Destinations {
			entries += len(f.ID) + len(d) + 3*10
			if !dests[d] {
				dests[d] = true
				headers += len("destination") + len(d) + 2*10
			}
		}
	}
	reserve := 2*entries + headers + changedFieldsReserve + 2*tableRecordMax + envelopeReserve
	b := EventBudget{maxEvent: maxEventBytes, offerMax: maxEventBytes - reserve}
	if b.offerMax < minOfferBudget {
		return b, fmt.Errorf("processor.max_event_bytes %d leaves %d bytes for an offer once the entries of %d feed destinations are reserved (%d bytes): raise it",
			maxEventBytes, b.offerMax, len(dests), reserve)
	}
	return b, nil
}

// offerBytes bounds what offer o adds to an event: its encoding plus its
// id in the record key, event_id and offer_id.
func offerBytes(o *records.Offer) int {
	return records.OfferSizeMax(o) + 3*(len(o.ID)+10) + 24
}

// Fits reports whether o is renderable under the size rule.
func (b EventBudget) Fits(o *records.Offer) bool { return offerBytes(o) <= b.offerMax }

// tooLargeReason is the reject reason of an offer that does not fit.
func (b EventBudget) tooLargeReason(o *records.Offer) string {
	return fmt.Sprintf("offer too large: its events would take %d bytes, over the %d left by processor.max_event_bytes (%d); "+
		"it is in no feed until a smaller version arrives", offerBytes(o), b.offerMax, b.maxEvent)
}
