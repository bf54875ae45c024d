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
}

// NewEvaluator returns an Evaluator for s.
func (s *Set) NewEvaluator() *Evaluator {
	e := &Evaluator{
		set:          s,
		slots:        newSlots(),
		filterErrors: make([]uint64, len(s.feeds)),
		renderErrors: make([]uint64, len(s.templates)),
	}
	e.r.e = e
	return e
}

// Match sets member[i] to whether feed i's filter holds for v at now;
// len(member) must be len(Set.Feeds()). A filter that fails at run time
// (a nil dereference, a type mismatch on an attribute, a memory budget
// overrun) counts as false and in FilterErrors. Match does not allocate
// per feed; it boxes the View's fields that any filter reads once per call.
func (e *Evaluator) Match(v *View, now time.Time, member []bool) {
	e.slots.load(e.set.filterUse, v, now)
	env := &e.slots.env
	for i, f := range e.set.feeds {
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
