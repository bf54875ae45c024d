package feeds

import (
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/expr-lang/expr/vm"
)

// Evaluator evaluates filters and renders items of one Set. It owns one
// expr VM, one environment and the render buffers, so it is NOT safe for
// concurrent use: make one per goroutine.
type Evaluator struct {
	set          *Set
	vm           vm.VM
	slots        *slots
	r            renderer
	buf          []byte
	budget       budget // of the program running (limits.go)
	filterErrors []uint64
	filterBudget []uint64 // of filterErrors, budget overruns
	renderErrors []uint64
	renderBudget []uint64    // of renderErrors, budget overruns
	lastFilter   []EvalError // per feed
	lastRender   []EvalError // per template
	errTotal     uint64      // failures of any kind so far
	plain        bool        // evaluate every filter program (NewPlainEvaluator)
	plainMember  []bool      // MatchList's buffer when plain and member is nil
	run          engineRun   // the engine's per-offer state
}

// NewEvaluator returns an Evaluator for s.
func (s *Set) NewEvaluator() *Evaluator {
	e := &Evaluator{
		set:          s,
		slots:        newSlots(),
		filterErrors: make([]uint64, len(s.feeds)),
		filterBudget: make([]uint64, len(s.feeds)),
		renderErrors: make([]uint64, len(s.templates)),
		renderBudget: make([]uint64, len(s.templates)),
		lastFilter:   make([]EvalError, len(s.feeds)),
		lastRender:   make([]EvalError, len(s.templates)),
		run:          newEngineRun(s.engine, len(s.feeds)),
	}
	e.vm.MemoryBudget = memoryBudget
	e.slots.env.Budget = e.budget.tick
	e.r.e = e
	return e
}

// runProgram runs p on the loaded slots with a fresh budget.
func (e *Evaluator) runProgram(p *vm.Program) (any, error) {
	e.budget = budget{}
	return e.vm.Run(p, &e.slots.env)
}

// ErrorKind classifies a run-time evaluation failure.
type ErrorKind int

const (
	// KindFilter is a filter that failed at run time (a nil dereference, a
	// type mismatch on an attribute).
	KindFilter ErrorKind = iota
	// KindTemplate is a custom template value that failed at run time or
	// yielded a type with no text form.
	KindTemplate
	// KindBudget is a filter or template value that exceeded the
	// evaluation budget (the error wraps ErrBudget).
	KindBudget
	// NumErrorKinds is the number of kinds.
	NumErrorKinds = 3
)

// String is the kind's metric label: filter, template or budget.
func (k ErrorKind) String() string {
	switch k {
	case KindFilter:
		return "filter"
	case KindTemplate:
		return "template"
	case KindBudget:
		return "budget"
	}
	return "unknown"
}

// EvalError is a run-time failure of a filter or custom template value
// for one offer. The zero value (Err nil) means none.
type EvalError struct {
	Kind    ErrorKind
	OfferID string
	Err     error
	seq     uint64 // Evaluator.errTotal when it happened
}

// Error describes the failure with the offer id.
func (e *EvalError) Error() string {
	return e.Kind.String() + " error on offer " + e.OfferID + ": " + e.Err.Error()
}

// Unwrap returns the expr error (which wraps ErrBudget for KindBudget).
func (e *EvalError) Unwrap() error { return e.Err }

var (
	errNotBool     = errors.New("filter operand is not a boolean")
	errOperandType = errors.New("operand has a type the comparison does not accept")
	errNoTextFor   = errors.New("value has no text form (want a string, number, bool or time)")
)

func (e *Evaluator) filterFailed(f int, offerID string, err error) {
	e.filterErrors[f]++
	e.errTotal++
	k := KindFilter
	if isBudgetError(err) {
		e.filterBudget[f]++
		k = KindBudget
	}
	e.lastFilter[f] = EvalError{Kind: k, OfferID: offerID, Err: err, seq: e.errTotal}
}

func (e *Evaluator) renderFailed(t int, offerID string, err error) {
	e.renderErrors[t]++
	e.errTotal++
	k := KindTemplate
	if isBudgetError(err) {
		e.renderBudget[t]++
		k = KindBudget
	}
	e.lastRender[t] = EvalError{Kind: k, OfferID: offerID, Err: err, seq: e.errTotal}
}

// ErrorTotal returns the number of run-time failures of any kind so far:
// a cheap test of whether FeedErrors changed.
func (e *Evaluator) ErrorTotal() uint64 { return e.errTotal }

// FeedErrors returns feed i's cumulative run-time failures by ErrorKind.
// Template failures are counted per template, so they count for every
// feed using the template. Same ownership as FilterErrors.
func (e *Evaluator) FeedErrors(i int) [NumErrorKinds]uint64 {
	t := e.set.feeds[i].Template.Index
	var c [NumErrorKinds]uint64
	c[KindFilter] = e.filterErrors[i] - e.filterBudget[i]
	c[KindTemplate] = e.renderErrors[t] - e.renderBudget[t]
	c[KindBudget] = e.filterBudget[i] + e.renderBudget[t]
	return c
}

// LastError returns the most recent failure counted in FeedErrors(i),
// with the offer id and the expr error; Err is nil when there was none.
func (e *Evaluator) LastError(i int) EvalError {
	f, r := e.lastFilter[i], e.lastRender[e.set.feeds[i].Template.Index]
	if r.seq > f.seq {
		return r
	}
	return f
}

// NewPlainEvaluator returns an Evaluator whose Match runs every feed's
// whole filter program for every View, without the shared-atom engine:
// the reference the engine is tested and benchmarked against. Same
// results, same concurrency rules.
func (s *Set) NewPlainEvaluator() *Evaluator {
	e := s.NewEvaluator()
	e.plain = true
	return e
}

// Match sets member[i] to whether feed i's filter holds for v at now;
// len(member) must be len(Set.Feeds()). A filter that fails at run time
// (a nil dereference, a type mismatch on an attribute, a memory budget
// overrun) counts as false and in FilterErrors. Match evaluates only the
// feeds the engine's indexes make candidates, from atoms computed at most
// once per call (see doc.go); the result and the error counts equal
// running every filter program. It allocates nothing per feed; opaque
// atoms box the View's fields they read once per call.
func (e *Evaluator) Match(v *View, now time.Time, member []bool) {
	if e.plain {
		e.matchPlain(v, now, member, nil, 0)
		return
	}
	clear(member[:len(e.set.feeds)])
	e.run.begin(v, now)
	e.candidates()
	for _, f := range e.run.cand {
		member[f] = e.evalFeed(f)
	}
	e.run.v = nil
}

// MatchList is Match that also appends the indexes of the feeds whose
// filter holds to matched, in increasing order, and returns the extended
// slice: a caller can visit the matched feeds without scanning all of
// them. member may be nil; otherwise it has len(Set.Feeds()) and is set
// as Match sets it. Same results, error counts and allocations as Match
// (none per feed; matched grows only past its capacity).
func (e *Evaluator) MatchList(v *View, now time.Time, member []bool, matched []int) []int {
	feeds := e.set.feeds
	if member != nil {
		member = member[:len(feeds)]
	}
	if e.plain {
		if member == nil {
			if e.plainMember == nil {
				e.plainMember = make([]bool, len(feeds))
			}
			member = e.plainMember
		}
		e.matchPlain(v, now, member, nil, 0)
		for i, m := range member {
			if m {
				matched = append(matched, i)
			}
		}
		return matched
	}
	if member != nil {
		clear(member)
	}
	e.run.begin(v, now)
	e.candidates()
	start := len(matched)
	for _, f := range e.run.cand {
		if e.evalFeed(f) {
			matched = append(matched, int(f))
			if member != nil {
				member[f] = true
			}
		}
	}
	e.run.v = nil
	sortInts(matched[start:])
	return matched
}

// sortInts sorts a short list in place (insertion sort: matched lists are
// tens of feeds); longer lists go to slices.Sort.
func sortInts(s []int) {
	if len(s) > 32 {
		slices.Sort(s)
		return
	}
	for i := 1; i < len(s); i++ {
		x := s[i]
		j := i
		for j > 0 && s[j-1] > x {
			s[j] = s[j-1]
			j--
		}
		s[j] = x
	}
}

// MatchChanged is Match for a change of the fields in changed (see
// DiffFields): a feed whose filter reads none of them, and not now, keeps
// prev[i] and is not evaluated; the others are evaluated as Match does.
// prev and member have len(Set.Feeds()) and may be the same slice.
func (e *Evaluator) MatchChanged(v *View, now time.Time, changed FieldMask, prev, member []bool) {
	changed |= FieldNow
	if e.plain {
		e.matchPlain(v, now, member, prev, changed)
		return
	}
	feeds := e.set.feeds
	copy(member[:len(feeds)], prev[:len(feeds)])
	for i, f := range feeds {
		if f.filterFields&changed != 0 {
			member[i] = false
		}
	}
	e.run.begin(v, now)
	e.candidates()
	for _, f := range e.run.cand {
		if feeds[f].filterFields&changed != 0 {
			member[f] = e.evalFeed(f)
		}
	}
	e.run.v = nil
}

// matchPlain runs every filter program; with prev != nil only those whose
// filter reads a field in changed.
func (e *Evaluator) matchPlain(v *View, now time.Time, member, prev []bool, changed FieldMask) {
	e.slots.load(e.set.filterUse, v, now)
	for i, f := range e.set.feeds {
		if prev != nil && f.filterFields&changed == 0 {
			member[i] = prev[i]
			continue
		}
		member[i] = e.runFilter(i, v)
	}
}

// runFilter runs feed i's filter program (the slots loaded for v): a
// failure, or a value that is not a bool, counts as the feed's filter
// error and as no match.
func (e *Evaluator) runFilter(i int, v *View) bool {
	out, err := e.runProgram(e.set.feeds[i].filter)
	b, ok := out.(bool)
	if err != nil || !ok {
		if err == nil {
			err = errNotBool
		}
		e.filterFailed(i, v.Offer.ID, err)
		return false
	}
	return b
}

// FilterErrors returns the cumulative run-time filter failures per feed
// index (budget overruns included). The slice is the Evaluator's own; read it from the Evaluator's
// goroutine and copy it to keep it.
func (e *Evaluator) FilterErrors() []uint64 { return e.filterErrors }

// RenderErrors returns the cumulative run-time failures of custom template
// values per template index (the element was omitted; budget overruns
// included). Same ownership as
// FilterErrors.
func (e *Evaluator) RenderErrors() []uint64 { return e.renderErrors }

// AppendItem appends t's item element for v at now to dst. The bytes depend
// only on what t renders (never on updated_at or version, nor on map
// order); every value is sanitised and escaped.
func (e *Evaluator) AppendItem(dst []byte, t *Template, v *View, now time.Time) []byte {
	if !t.use.empty() {
		e.slots.load(t.use, v, now)
	}
	r := &e.r
	r.v, r.now, r.t = v, now, t
	dst = r.render(dst, &t.item)
	dst = append(dst, '\n')
	r.v = nil
	return dst
}

// Fingerprint is the xxhash64 of exactly the bytes AppendItem renders for
// v: stable across processes and restarts, and equal for two views that
// render the same item.
func (e *Evaluator) Fingerprint(t *Template, v *View, now time.Time) uint64 {
	e.buf = e.AppendItem(e.buf[:0], t, v, now)
	return xxhash.Sum64(e.buf)
}

// GroupValue is the value a grouped feed picks by (group.of) for one
// offer: a number, or a time when IsTime.
type GroupValue struct {
	Num    float64
	Time   time.Time
	IsTime bool
}

var (
	errGroupKey   = errors.New("group.by gave a value that is not a string, number or bool")
	errGroupValue = errors.New("group.of gave a value that is not a number or a time")
)

// Group evaluates grouped feed f's group.by and group.of for v at now.
// It appends the key's text to key (strings as they are, numbers in
// their shortest form, bools as true/false) and returns it with the
// value and whether the pick is max. ok is false when the offer is in no
// group: a nil key or value, or a failure (counted as f's filter error).
// Call it for an offer whose filter holds; f must be grouped.
func (e *Evaluator) Group(f *Feed, v *View, now time.Time, key []byte) (k []byte, val GroupValue, pickMax, ok bool) {
	g := f.group
	e.slots.load(g.use, v, now)
	out, err := e.runProgram(g.by)
	if err != nil {
		e.filterFailed(f.Index, v.Offer.ID, err)
		return key, val, g.max, false
	}
	switch x := deref(out).(type) {
	case nil:
		return key, val, g.max, false
	case string:
		key = append(key, x...)
	case bool:
		key = strconv.AppendBool(key, x)
	default:
		n, isNum := number(out)
		if !isNum {
			e.filterFailed(f.Index, v.Offer.ID, errGroupKey)
			return key, val, g.max, false
		}
		key = strconv.AppendFloat(key, n, 'g', -1, 64)
	}
	out, err = e.runProgram(g.of)
	if err != nil {
		e.filterFailed(f.Index, v.Offer.ID, err)
		return key, val, g.max, false
	}
	switch x := deref(out).(type) {
	case nil:
		return key, val, g.max, false
	case time.Time:
		val = GroupValue{Time: x, IsTime: true}
	default:
		n, isNum := number(out)
		if !isNum {
			e.filterFailed(f.Index, v.Offer.ID, errGroupValue)
			return key, val, g.max, false
		}
		val = GroupValue{Num: n}
	}
	return key, val, g.max, true
}

// deref turns the optional fields' pointers into their values (nil for
// a nil pointer), without reflection.
func deref(v any) any {
	switch x := v.(type) {
	case *string:
		if x != nil {
			return *x
		}
	case *int64:
		if x != nil {
			return *x
		}
	case *int32:
		if x != nil {
			return *x
		}
	case *int:
		if x != nil {
			return *x
		}
	case *float64:
		if x != nil {
			return *x
		}
	case *bool:
		if x != nil {
			return *x
		}
	case *time.Time:
		if x != nil {
			return *x
		}
	default:
		return v
	}
	return nil
}

// number converts expr's numeric results to float64.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int8:
		return float64(x), true
	case int16:
		return float64(x), true
	case int32:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint:
		return float64(x), true
	case uint8:
		return float64(x), true
	case uint16:
		return float64(x), true
	case uint32:
		return float64(x), true
	case uint64:
		return float64(x), true
	case float32:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}
