package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/state"
)

// OffersAPI serves GET /api/offers/{id} (an offer's stored state) and GET
// /api/offers/{id}/explain?feed=F (why it is or is not in feed F). It
// reads the offers partitions this instance owns; an offer of another
// instance's partition is answered with 404 naming them. Its fields are
// set once before Register; it is safe for concurrent requests.
type OffersAPI struct {
	Store *state.Store
	// Feeds returns the feed set in force (it changes with live feed
	// changes: read it per request).
	Feeds func() *feeds.Set
	// Coverage returns the offers partitions this instance owns, sorted,
	// and the offers topic's partition count (0 while unknown).
	Coverage func() (owned []int32, total int32)
	// Join sets v to offer o joined with its table records (seller,
	// rating), read through b (processor.Joiner).
	Join func(b *state.Batch, o *records.Offer, v *feeds.View) error
	// RefreshAfter is full_pass.refresh_after (0: no refreshes).
	RefreshAfter time.Duration
	// RefreshPhaseMs and RefreshDue are the refresh schedule
	// (processor.RefreshPhaseMs, processor.RefreshDue).
	RefreshPhaseMs func(offerID string, cycleMs int64) int64
	RefreshDue     func(phaseMs, sentAtMs, nowMs, cycleMs int64) bool
	// Now is the clock filters are evaluated at (default time.Now).
	Now    func() time.Time
	Logger *zap.Logger
}

// Register adds GET /api/offers/{id} and GET /api/offers/{id}/explain
// to mux.
func (a *OffersAPI) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/offers/{id}", a.offer)
	mux.HandleFunc("GET /api/offers/{id}/explain", a.explain)
}

func (a *OffersAPI) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// stored is what the state holds about one offer.
type stored struct {
	partition int32
	presence  state.Presence
	offer     records.Offer
	tomb      state.Tombstone
	mem       state.Membership
	hasMem    bool
	view      feeds.View // joined, when presence is Live
}

// notFoundJSON is the 404 of an offer this instance does not hold.
type notFoundJSON struct {
	Error           string  `json:"error"`
	PartitionsOwned []int32 `json:"partitions_owned"`
	PartitionsTotal int32   `json:"partitions_total"`
}

// lookup finds offer id in the owned partitions. It answers the request
// and returns false when it is not there or cannot be read.
func (a *OffersAPI) lookup(w http.ResponseWriter, id string) (*stored, bool) {
	owned, total := a.Coverage()
	if total == 0 {
		WriteError(w, http.StatusServiceUnavailable, "the offers topic's partitions are not known yet (the instance is starting)")
		return nil, false
	}
	b := a.Store.NewBatch()
	defer func() { _ = b.Close() }() // read only: nothing to lose
	s := &stored{}
	for _, p := range owned {
		pres, tomb, err := b.GetOffer(p, id, &s.offer)
		if err != nil {
			a.fail(w, fmt.Errorf("read offer %q in partition %d: %w", id, p, err))
			return nil, false
		}
		hasMem, err := b.GetMembership(p, id, &s.mem, nil)
		if err != nil {
			a.fail(w, fmt.Errorf("read membership of offer %q in partition %d: %w", id, p, err))
			return nil, false
		}
		if pres == state.Absent && !hasMem {
			continue
		}
		s.partition, s.presence, s.tomb, s.hasMem = p, pres, tomb, hasMem
		if pres == state.Live {
			if err := a.Join(b, &s.offer, &s.view); err != nil {
				a.fail(w, fmt.Errorf("join offer %q: %w", id, err))
				return nil, false
			}
		}
		return s, true
	}
	msg := fmt.Sprintf("offer %q is not in the offers partitions this instance owns (%d of %d: %s); ask the instance that owns its partition",
		id, len(owned), total, PartitionList(owned))
	if int32(len(owned)) == total {
		msg = fmt.Sprintf("offer %q is not stored in any offers partition (this instance owns all %d): unknown, or its tombstone expired", id, total)
	}
	WriteJSON(w, http.StatusNotFound, notFoundJSON{
		Error:           msg,
		PartitionsOwned: nonNil(owned),
		PartitionsTotal: total,
	})
	return nil, false
}

func (a *OffersAPI) fail(w http.ResponseWriter, err error) {
	a.Logger.Error("read offer state", zap.Error(err))
	WriteError(w, http.StatusInternalServerError, err.Error())
}

// PartitionList formats offers partitions for people: "0, 2, 3", or
// "none".
func PartitionList(ps []int32) string {
	if len(ps) == 0 {
		return "none"
	}
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(int(p)))
	}
	return b.String()
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// OfferState is the answer of GET /api/offers/{id}: the offer's stored
// state. The feedmill explain command decodes it too.
type OfferState struct {
	ID        string        `json:"id"`
	Partition int32         `json:"partition"`
	Offer     Record        `json:"offer"`
	Deleted   *OfferDeleted `json:"deleted,omitempty"`
	Seller    Record        `json:"seller"`
	Rating    Record        `json:"rating"`
	Seq       int64         `json:"seq"`
	Feeds     []FeedEntry   `json:"feeds"`
	Groups    []Standing    `json:"groups"`
}

// OfferDeleted is the tombstone of a deleted offer.
type OfferDeleted struct {
	Version   int64     `json:"version"`
	DeletedAt time.Time `json:"deleted_at"`
}

// FeedEntry is the offer's membership of one feed.
type FeedEntry struct {
	Feed         string   `json:"feed"`
	Destinations []string `json:"destinations"`
	Fingerprint  string   `json:"fingerprint"`
	// SentAt is when the entry's last event was sent; nil when none was
	// (a feed without destinations).
	SentAt *time.Time `json:"sent_at"`
	// RefreshAt is when the entry becomes due for a refresh (the first
	// full pass at or after it sends one); nil when it never does.
	RefreshAt *time.Time `json:"refresh_at"`
}

// Standing is the offer's standing in one grouped feed.
type Standing struct {
	Feed   string `json:"feed"`
	Filter bool   `json:"filter"`
	Key    string `json:"key"`
	Live   bool   `json:"live"`
	Won    bool   `json:"won"`
}

func (a *OffersAPI) offer(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s, ok := a.lookup(w, id)
	if !ok {
		return
	}
	set := a.Feeds()
	out := OfferState{ID: id, Partition: s.partition, Seq: s.mem.Seq, Feeds: []FeedEntry{}, Groups: []Standing{}}
	switch s.presence {
	case state.Live:
		out.Offer = Record{v: &s.offer}
		out.Seller, out.Rating = Record{v: s.view.Seller}, Record{v: s.view.Rating}
	case state.Deleted:
		out.Deleted = &OfferDeleted{Version: s.tomb.Version, DeletedAt: s.tomb.DeletedAt.UTC()}
	}
	nowMs := a.now().UnixMilli()
	for _, e := range s.mem.Feeds {
		ej := FeedEntry{
			Feed:         e.FeedID,
			Destinations: nonNil(e.Destinations),
			Fingerprint:  fmt.Sprintf("%016x", e.Fingerprint),
		}
		if e.SentAtMs != 0 {
			t := time.UnixMilli(e.SentAtMs).UTC()
			ej.SentAt = &t
		}
		// The full pass refreshes entries with destinations of feeds in
		// force (processor/fixes.go).
		if _, inSet := set.Feed(e.FeedID); inSet && len(e.Destinations) > 0 {
			if at, ok := a.refreshAt(id, e.SentAtMs, nowMs); ok {
				t := time.UnixMilli(at).UTC()
				ej.RefreshAt = &t
			}
		}
		out.Feeds = append(out.Feeds, ej)
	}
	for _, g := range s.mem.Groups {
		out.Groups = append(out.Groups, standing(&g))
	}
	writeJSON(w, http.StatusOK, out)
}

// writeJSON is WriteJSON without HTML escaping: the answers carry
// filters and XML items, which read better as they are.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // a failed write means the client went away
}

// marshal is json.Marshal without HTML escaping.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func standing(g *state.GroupStanding) Standing {
	return Standing{
		Feed:   g.FeedID,
		Filter: g.Filter,
		Key:    g.Cand.Key,
		Live:   g.Cand.Live,
		Won:    g.Flag.Won && g.Flag.Key == g.Cand.Key,
	}
}

// refreshAt returns when an entry of offer id last sent at sentAtMs is
// first due for a refresh: the earliest instant RefreshDue holds, found
// by bisection (due stays true once it holds). False when refreshes are
// off.
func (a *OffersAPI) refreshAt(id string, sentAtMs, nowMs int64) (int64, bool) {
	cycle := a.RefreshAfter.Milliseconds()
	if cycle <= 0 || a.RefreshPhaseMs == nil || a.RefreshDue == nil {
		return 0, false
	}
	phase := a.RefreshPhaseMs(id, cycle)
	// A slot lies in every cycle, and the minimum age is below one.
	lo, hi := sentAtMs, sentAtMs+2*cycle
	if !a.RefreshDue(phase, sentAtMs, hi, cycle) {
		return 0, false
	}
	for hi-lo > 1 { // due at hi, not at lo
		mid := lo + (hi-lo)/2
		if a.RefreshDue(phase, sentAtMs, mid, cycle) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi, true
}

// Explanation is the answer of GET /api/offers/{id}/explain: why the
// offer is or is not in a feed. The feedmill explain command and the
// admin page's explain view decode it too.
type Explanation struct {
	Offer        string         `json:"offer"`
	Partition    int32          `json:"partition"`
	Feed         string         `json:"feed"`
	Filter       string         `json:"filter"`
	EvaluatedAt  time.Time      `json:"evaluated_at"`
	Match        bool           `json:"match"`
	FilterError  string         `json:"filter_error,omitempty"`
	Clauses      ExplainClause  `json:"clauses"`
	FirstFailing *ExplainClause `json:"first_failing"`
	Item         *string        `json:"item"`
	RenderError  string         `json:"render_error,omitempty"`
	Group        *ExplainGroup  `json:"group,omitempty"`
	Stored       ExplainStored  `json:"stored"`
	Agrees       bool           `json:"agrees"`
	Disagreement string         `json:"disagreement,omitempty"`
}

// ExplainClause is a feeds.Clause: value null when the clause gave nil.
type ExplainClause struct {
	Op      string          `json:"op,omitempty"`
	Source  string          `json:"source"`
	Value   *bool           `json:"value"`
	Error   string          `json:"error,omitempty"`
	Skipped bool            `json:"skipped,omitempty"`
	Clauses []ExplainClause `json:"clauses,omitempty"`
}

// ExplainGroup is a feeds.GroupExplanation.
type ExplainGroup struct {
	InGroup bool   `json:"in_group"`
	Key     string `json:"key"`
	Value   any    `json:"value"` // a number or a time; null when not in a group
	Pick    string `json:"pick"`
	Error   string `json:"error,omitempty"`
}

// ExplainStored is what the state says of the offer and the feed.
type ExplainStored struct {
	Member bool      `json:"member"`
	Group  *Standing `json:"group,omitempty"`
}

func (a *OffersAPI) explain(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	feedID := r.URL.Query().Get("feed")
	if feedID == "" {
		WriteError(w, http.StatusBadRequest, "missing query parameter feed: GET /api/offers/{id}/explain?feed=F")
		return
	}
	set := a.Feeds()
	f, ok := set.Feed(feedID)
	if !ok {
		WriteError(w, http.StatusNotFound, fmt.Sprintf("unknown feed %q", feedID))
		return
	}
	s, ok := a.lookup(w, id)
	if !ok {
		return
	}
	if s.presence != state.Live {
		msg := fmt.Sprintf("offer %q has no live record in partition %d (a membership only): it is in no feed", id, s.partition)
		if s.presence == state.Deleted {
			msg = fmt.Sprintf("offer %q is deleted (version %d at %s): it is in no feed", id, s.tomb.Version, s.tomb.DeletedAt.UTC().Format(time.RFC3339))
		}
		WriteError(w, http.StatusNotFound, msg)
		return
	}
	now := a.now()
	x, err := set.NewEvaluator().Explain(f, &s.view, now)
	if err != nil {
		a.fail(w, fmt.Errorf("explain offer %q in feed %q: %w", id, feedID, err))
		return
	}
	out := Explanation{
		Offer:       id,
		Partition:   s.partition,
		Feed:        f.ID,
		Filter:      x.Filter,
		EvaluatedAt: now.UTC(),
		Match:       x.Match,
		FilterError: errText(x.Err),
		Clauses:     clause(&x.Root),
		RenderError: errText(x.RenderErr),
	}
	if x.FirstFailing != nil {
		c := clause(x.FirstFailing)
		c.Clauses = nil
		out.FirstFailing = &c
	}
	if x.Match {
		item := string(x.Item)
		out.Item = &item
	}
	if g := x.Group; g != nil {
		p := &ExplainGroup{InGroup: g.InGroup, Key: g.Key, Pick: "min", Error: errText(g.Err)}
		if g.PickMax {
			p.Pick = "max"
		}
		switch {
		case !g.InGroup:
		case g.Value.IsTime:
			p.Value = g.Value.Time.UTC()
		default:
			p.Value = g.Value.Num
		}
		out.Group = p
	}
	out.Stored.Member = s.mem.Find(f.ID) >= 0
	var st *state.GroupStanding
	if i := s.mem.FindGroup(f.ID); i >= 0 {
		st = &s.mem.Groups[i]
		gj := standing(st)
		out.Stored.Group = &gj
	}
	out.Disagreement = disagreement(&x, out.Stored.Member, st)
	out.Agrees = out.Disagreement == ""
	writeJSON(w, http.StatusOK, out)
}

// disagreement says how the stored membership differs from the
// evaluation now ("" when it agrees). A change not yet applied, a filter
// reading now, a seller job in progress or a group decision on its way
// can explain one; the full pass corrects what stays.
func disagreement(x *feeds.Explanation, member bool, st *state.GroupStanding) string {
	if x.Group == nil {
		if member != x.Match {
			return fmt.Sprintf("stored: member %v; the filter now: %v", member, x.Match)
		}
		return ""
	}
	if !x.Match && member {
		return "stored: member; the filter now: false"
	}
	var filter, live bool
	var key string
	if st != nil {
		filter, live, key = st.Filter, st.Cand.Live, st.Cand.Key
	}
	if filter != x.Match {
		return fmt.Sprintf("stored: filter %v at the last evaluation; the filter now: %v", filter, x.Match)
	}
	candidate := x.Match && x.Group.InGroup
	switch {
	case live != candidate:
		return fmt.Sprintf("stored: candidate %v; now: %v", live, candidate)
	case candidate && key != x.Group.Key:
		return fmt.Sprintf("stored: candidate in group %q; now: in group %q", key, x.Group.Key)
	}
	if want := st != nil && st.Filter && st.Cand.Live && st.Flag.Won && st.Flag.Key == st.Cand.Key; member != want {
		return fmt.Sprintf("stored: member %v, but the stored standing says %v", member, want)
	}
	return ""
}

func clause(c *feeds.Clause) ExplainClause {
	out := ExplainClause{Op: c.Op, Source: c.Source, Error: errText(c.Err), Skipped: c.Skipped}
	if !c.Nil && c.Err == nil {
		v := c.Value
		out.Value = &v
	}
	for i := range c.Clauses {
		out.Clauses = append(out.Clauses, clause(&c.Clauses[i]))
	}
	return out
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Record is a stored record in an OfferState: null, or a JSON object of
// the record's fields by their expr names, the names filters use, in
// declaration order. The API writes it from a records struct; a client
// decoding an answer reads it as Fields.
type Record struct {
	v any // the API's side: a pointer to a records struct (nil: null)
	// Fields is the client's side: the decoded object, its numbers as
	// written (json.Number); nil for null. A decoded Record writes it
	// back (keys sorted).
	Fields map[string]any
}

// MarshalJSON implements json.Marshaler.
func (r Record) MarshalJSON() ([]byte, error) {
	rv := reflect.ValueOf(r.v)
	if !rv.IsValid() || rv.Kind() != reflect.Pointer || rv.IsNil() {
		if r.v == nil && r.Fields != nil {
			return marshal(r.Fields)
		}
		return []byte("null"), nil
	}
	rv = rv.Elem()
	rt := rv.Type()
	var b bytes.Buffer
	b.WriteByte('{')
	n := 0
	for i := range rt.NumField() {
		sf := rt.Field(i)
		name := sf.Tag.Get("expr")
		if !sf.IsExported() || name == "" || name == "-" {
			continue
		}
		val, err := marshal(rv.Field(i).Interface())
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %w", rt.Name(), sf.Name, err)
		}
		key, _ := marshal(name) // a string always marshals
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		b.Write(key)
		b.WriteByte(':')
		b.Write(val)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON implements json.Unmarshaler: it sets Fields.
func (r *Record) UnmarshalJSON(b []byte) error {
	*r = Record{}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(&r.Fields)
}
