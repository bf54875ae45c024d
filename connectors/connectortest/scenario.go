package connectortest

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/feedmill/feedmill/internal/records"
)

// Destination is the destination the connector under test serves; Other
// is one it must skip.
const (
	Destination = "d1"
	Other       = "other"
)

// scenarioFeeds are the suite's feeds and their destinations. An offer is
// in the connector's catalog when it is in feed-a, feed-b or feed-ab.
var scenarioFeeds = []struct {
	id    string
	dests []string
}{
	{"feed-a", []string{Destination}},
	{"feed-b", []string{Destination}},
	{"feed-c", []string{Other}},
	{"feed-ab", []string{Destination, Other}},
}

// Scenario is a generated event stream and what a partner must hold after
// it.
type Scenario struct {
	// Records are the records to produce, in order (re-deliveries
	// included); values are filled by the harness.
	Events []GenEvent
	// Expected maps every offer in the destination's catalog, except the
	// poison ones, to its latest state.
	Expected map[string]State
	// Poison are the offers a partner refuses that were ever upserted.
	Poison map[string]bool
	// GarbageMine / GarbageOther are keys of undecodable records with a
	// header naming the connector's destination / another one.
	GarbageMine, GarbageOther []string
	// Distinct is the number of distinct events (without re-deliveries).
	Distinct int
}

// GenEvent is one record of the scenario: an event, or garbage bytes.
type GenEvent struct {
	Event   *records.FeedEvent
	Garbage []byte
	Key     string
	Headers []kgo.RecordHeader
}

// Generate builds a scenario over offers offers and steps changes.
func Generate(seed uint64, offers, steps int) *Scenario {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	type offerGen struct {
		id     string
		title  string
		price  int
		seq    int64
		member map[string]bool
		live   bool
	}
	gens := make([]*offerGen, offers)
	for i := range gens {
		title := fmt.Sprintf("Offer %d", i)
		if i%17 == 5 {
			title = fmt.Sprintf("POISON offer %d", i)
		}
		gens[i] = &offerGen{id: fmt.Sprintf("o-%04d", i), title: title, price: 1000 + i, member: map[string]bool{}, live: true}
	}
	sc := &Scenario{Expected: map[string]State{}, Poison: map[string]bool{}}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var pendingDup []GenEvent
	nEvents := 0
	for step := range steps {
		g := gens[rng.IntN(len(gens))]
		var entries []records.FeedEntry
		add := func(feed string, action string) {
			for _, f := range scenarioFeeds {
				if f.id != feed {
					continue
				}
				for _, d := range f.dests {
					entries = append(entries, records.FeedEntry{FeedID: feed, Destination: d, Action: action})
				}
			}
		}
		cause := records.CauseChange
		switch r := rng.IntN(10); {
		case r < 5: // toggle one feed
			f := scenarioFeeds[rng.IntN(len(scenarioFeeds))].id
			g.live = true
			if g.member[f] {
				delete(g.member, f)
				add(f, records.ActionRemove)
			} else {
				g.member[f] = true
				add(f, records.ActionAdd)
			}
		case r < 8: // price change: UPDATE in every feed it is in
			g.price += 1 + rng.IntN(50)
			for _, f := range scenarioFeeds {
				if g.member[f.id] {
					add(f.id, records.ActionUpdate)
				}
			}
		case r < 9: // refresh
			cause = records.CauseRefresh
			for _, f := range scenarioFeeds {
				if g.member[f.id] {
					add(f.id, records.ActionRefresh)
				}
			}
		default: // the offer is deleted: REMOVE everywhere, no state
			for _, f := range scenarioFeeds {
				if g.member[f.id] {
					add(f.id, records.ActionRemove)
				}
			}
			clear(g.member)
			g.live = false
		}
		if len(entries) == 0 {
			continue
		}
		g.seq++
		ev := &records.FeedEvent{
			EventID:   fmt.Sprintf("ev-%s-%d", g.id, g.seq),
			OfferID:   g.id,
			Seq:       g.seq,
			EmittedAt: base.Add(time.Duration(step) * time.Second),
			Cause:     cause,
			Entries:   entries,
		}
		if g.live {
			ev.Offer = &records.OfferView{Offer: records.Offer{
				ID: g.id, SellerID: "s-1", Title: g.title, Description: "d", Category: "Electronics/Phones",
				PriceMinor: g.price, Currency: "PLN", Stock: 3, Condition: "NEW", Status: "ACTIVE",
				URL: "https://shop.example/" + g.id, Images: []string{"https://img.example/" + g.id + ".jpg"},
				Attributes: map[string]string{}, UpdatedAt: ev.EmittedAt, Version: g.seq,
			}}
		}
		ge := GenEvent{Event: ev, Key: g.id, Headers: destHeaders(entries)}
		sc.Events = append(sc.Events, ge)
		nEvents++
		if IsPoison(g.title) && inMine(g.member) {
			sc.Poison[g.id] = true
		}
		// At-least-once: some events come again a little later.
		for _, d := range pendingDup {
			sc.Events = append(sc.Events, d)
		}
		pendingDup = pendingDup[:0]
		if rng.IntN(10) == 0 {
			pendingDup = append(pendingDup, ge)
		}
		if step%97 == 13 {
			k := fmt.Sprintf("garbage-%d", step)
			sc.GarbageMine = append(sc.GarbageMine, k)
			sc.Events = append(sc.Events, GenEvent{Garbage: []byte{0, 0, 0, 0x7f, 0x7f, 1, 2, 3}, Key: k,
				Headers: []kgo.RecordHeader{{Key: "destination", Value: []byte(Destination)}}})
		}
		if step%89 == 7 {
			k := fmt.Sprintf("garbage-other-%d", step)
			sc.GarbageOther = append(sc.GarbageOther, k)
			sc.Events = append(sc.Events, GenEvent{Garbage: []byte{0xff}, Key: k,
				Headers: []kgo.RecordHeader{{Key: "destination", Value: []byte(Other)}}})
		}
	}
	sc.Events = append(sc.Events, pendingDup...)
	sc.Distinct = nEvents
	for _, g := range gens {
		if inMine(g.member) && !IsPoison(g.title) {
			sc.Expected[g.id] = State{Seq: -1, PriceMinor: g.price, Title: g.title}
		}
	}
	return sc
}

func inMine(member map[string]bool) bool {
	for _, f := range scenarioFeeds {
		if !member[f.id] {
			continue
		}
		for _, d := range f.dests {
			if d == Destination {
				return true
			}
		}
	}
	return false
}

func destHeaders(entries []records.FeedEntry) []kgo.RecordHeader {
	var hs []kgo.RecordHeader
	seen := map[string]bool{}
	for _, e := range entries {
		if !seen[e.Destination] {
			seen[e.Destination] = true
			hs = append(hs, kgo.RecordHeader{Key: "destination", Value: []byte(e.Destination)})
		}
	}
	return hs
}
