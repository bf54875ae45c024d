package feeds

import (
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/expr-lang/expr/vm"

	"github.com/feedmill/feedmill/internal/records"
)

// View is the joined state of one offer. Offer is non-nil; Seller and
// Rating are nil when unknown.
type View struct {
	Offer  *records.Offer
	Seller *records.Seller
	Rating *records.Rating
}

// Evaluator evaluates filters and renders items of one Set. It owns one
// expr VM, one environment and the render buffers, so it is NOT safe for
// concurrent use: make one per goroutine.
type Evaluator struct {
	set          *Set
	vm           vm.VM
	slots        *slots
	r            renderer
	buf          []byte
	filterErrors []uint64
	renderErrors []uint64
	plain        bool      // evaluate every filter program (NewPlainEvaluator)
	run          engineRun // the engine's per-offer state
}

// NewEvaluator returns an Evaluator for s.
func (s *Set) NewEvaluator() *Evaluator {
	e := &Evaluator{
		set:          s,
		slots:        newSlots(),
		filterErrors: make([]uint64, len(s.feeds)),
		renderErrors: make([]uint64, len(s.templates)),
		run:          newEngineRun(s.engine, len(s.feeds)),
	}
	e.r.e = e
	return e
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
	env := &e.slots.env
	for i, f := range e.set.feeds {
		if prev != nil && f.filterFields&changed == 0 {
			member[i] = prev[i]
			continue
		}
		out, err := e.vm.Run(f.filter, env)
		b, ok := out.(bool)
		if err != nil || !ok {
			e.filterErrors[i]++
			b = false
		}
		member[i] = b
	}
}

// FilterErrors returns the cumulative run-time filter failures per feed
// index. The slice is the Evaluator's own; read it from the Evaluator's
// goroutine and copy it to keep it.
func (e *Evaluator) FilterErrors() []uint64 { return e.filterErrors }

// RenderErrors returns the cumulative run-time failures of custom template
// values per template index (the element was omitted). Same ownership as
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
