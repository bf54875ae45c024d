package processor

import (
	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/state"
)

// TableInput is one joined table input of the data model (feeds.Joined):
// the topic it is read from, whole, by every instance, and the state
// table it is kept in. The processor handles every table through this
// list: one code path applies their records (Applier.applyTable), one
// joins them to offers (Joiner).
type TableInput struct {
	Joined feeds.Joined
	State  state.Table
	Topic  string
}

// The data model and state number the joined tables alike.
var (
	_ [state.NumTables - feeds.NumJoined]struct{}
	_ [feeds.NumJoined - state.NumTables]struct{}
)

// TableInputs lists the joined table inputs with their topics. Adding a
// joined input adds its line here (its topic name is configuration).
func TableInputs(t config.Topics) [feeds.NumJoined]TableInput {
	return [feeds.NumJoined]TableInput{
		{Joined: feeds.JoinedSeller, State: state.TableSellers, Topic: t.Sellers},
		{Joined: feeds.JoinedRating, State: state.TableRatings, Topic: t.Ratings},
	}
}

// joinKey returns the key of the j record offer o is joined to: the value
// of j's join field in o.
func joinKey(j feeds.Joined, o *records.Offer) string {
	switch j.JoinField() {
	case feeds.FieldOfferSellerID:
		return o.SellerID
	}
	panic("processor: no join key reader for " + j.String()) // a data-model change without its reader: a programming error caught by any test
}

// TableReader reads joined table records: a state.Batch (the applier's
// view, with its uncommitted writes) or a state.Snapshot (the full pass).
type TableReader interface {
	GetTable(t state.Table, key string, unmarshal func([]byte) error) (state.Presence, state.Tombstone, error)
}

// Joiner joins offers with the records of every joined table, caching
// them by key. Not safe for concurrent use. Cached records are shared by
// the views it fills: they must not be modified.
type Joiner struct {
	serde *records.Serde
	cache [feeds.NumJoined]map[string]feeds.View // each holds only its table's slot; nil slot: absent
	max   int
}

// NewJoiner returns a joiner decoding with serde that keeps at most max
// records per table (0: no bound); past it the cache starts over.
func NewJoiner(serde *records.Serde, max int) *Joiner {
	jn := &Joiner{serde: serde, max: max}
	for i := range jn.cache {
		jn.cache[i] = map[string]feeds.View{}
	}
	return jn
}

// Join sets v to offer o joined with its table records, read through rd
// on a cache miss.
func (jn *Joiner) Join(rd TableReader, o *records.Offer, v *feeds.View) error {
	*v = feeds.View{Offer: o}
	for j := range feeds.Joined(feeds.NumJoined) {
		key := joinKey(j, o)
		rec, ok := jn.cache[j][key]
		if !ok {
			var err error
			if rec, err = jn.load(rd, j, key); err != nil {
				return err
			}
		}
		j.Copy(v, &rec)
	}
	return nil
}

// load reads and caches the j record of key (a cache miss; kept out of
// Join so that its closure does not make Join allocate on hits).
func (jn *Joiner) load(rd TableReader, j feeds.Joined, key string) (feeds.View, error) {
	if jn.max > 0 && len(jn.cache[j]) >= jn.max {
		clear(jn.cache[j])
	}
	var rec feeds.View
	pres, _, err := rd.GetTable(state.Table(j), key, func(b []byte) error { return j.Unmarshal(jn.serde, b, &rec) })
	if err != nil {
		return rec, err
	}
	if pres != state.Live {
		j.Clear(&rec)
	}
	jn.cache[j][key] = rec
	return rec, nil
}

// Set caches rec's j record (nil slot: deleted) under key, after a change.
func (jn *Joiner) Set(j feeds.Joined, key string, rec *feeds.View) { jn.cache[j][key] = *rec }

// Reset forgets every cached record (after a batch was discarded).
func (jn *Joiner) Reset() {
	for i := range jn.cache {
		clear(jn.cache[i])
	}
}
