package feeds

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/expr-lang/expr/ast"
	exprcompiler "github.com/expr-lang/expr/compiler"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
)

// The matching engine (see doc.go for the model). Compile decomposes each
// filter into a tree of and/or/not nodes over atoms; equal atoms are shared
// across feeds. A feed whose filter has a "required" set of indexable atoms
// (one of which must hold for the filter to be anything but false) is a
// candidate for an offer only when the indexes report one of them; every
// other feed is always a candidate. Candidates are evaluated from atom
// results computed at most once per offer.

type bop uint8

const (
	bAtom bop = iota
	bAnd
	bOr
	bNot
)

// bnode is one node of a filter's boolean structure; for bAtom, a is the
// atom id, otherwise a and b are node ids (b unused for bNot).
type bnode struct {
	op   bop
	a, b int32
}

// enode is one node of a filter's flattened boolean structure: bNot over
// a, or bAnd/bOr over kids[lo:hi] (nested nodes of the same operator are
// merged). Operands are enodes, or atoms when negative (^atom).
type enode struct {
	op     bop
	a      int32
	lo, hi int32
}

// engine is the Set's immutable matching structure.
type engine struct {
	atoms []atom
	nodes []bnode // while building; finish flattens them into enodes
	// roots holds per feed its filter's root: a bnode while building,
	// then (after finish) an enode, or an atom when negative (^atom).
	roots    []int32
	enodes   []enode
	kids     []int32   // operands of the and/or enodes (enode or ^atom)
	always   []int32   // feeds evaluated for every offer
	reqFeeds [][]int32 // per atom: feeds that have it in their required set (building)

	eqStr  []eqStrIndex
	eqNum  []eqNumIndex
	eqBool []eqBoolIndex
	prefix []prefixIndex
	upper  []rangeIndex // < and <= atoms: may hold when bound >= scalar
	lower  []rangeIndex // > and >= atoms: may hold when bound <= scalar

	opaqueUse usage // leaves the opaque atoms read

	// eqStr split by operand: field operands are read one by one; the
	// offer's attributes are iterated once and looked up by key, so the
	// cost follows the offer's attributes, not the filters' keys.
	strFields   []int32            // eqStr positions of field operands
	strAttrs    map[string][]int32 // attribute key → eqStr positions
	attrMissing []int32            // attribute operands whose ?? default is indexed
}

// The indexes map what they match to atoms while Compile builds them;
// finish then replaces each atom list by the feeds that require one of
// its atoms (deduplicated), and drops the entries, nodes and whole indexes
// no feed requires: at run time an index hit is one list of feeds.

type eqStrIndex struct {
	op operand
	m  map[string][]int32 // value → atoms (building)
	// feeds: value → its atoms that feeds require, and those feeds
	// (after finish).
	feeds strTable
}

type eqNumIndex struct {
	op operand
	m  map[float64][]int32 // value → atoms, then feeds (after finish)
}

type eqBoolIndex struct {
	op   operand
	t, f []int32 // atoms, then feeds (after finish)
}

type prefixIndex struct {
	op   operand
	root *rnode
}

type rangeIndex struct {
	op     operand
	bounds []float64 // ascending
	atoms  []int32   // atoms[i] has bound bounds[i] (building)
	feeds  [][]int32 // feeds[i]: feeds requiring atoms[i] (after finish)
}

// ixHit is what an index entry reports: atoms that hold (true) for the
// View, and the feeds requiring one of them.
type ixHit struct {
	atoms, feeds []int32
}

// strTable maps strings to index hits: a linear scan over a few keys, a
// map over more.
type strTable struct {
	keys []string
	vals []*ixHit
	m    map[string]*ixHit // nil when keys is used
}

// strTableLinear is the most keys a strTable scans linearly.
const strTableLinear = 8

func newStrTable(m map[string]*ixHit) strTable {
	if len(m) > strTableLinear {
		return strTable{m: m}
	}
	var t strTable
	for _, k := range sortedKeys(m) {
		t.keys = append(t.keys, k)
		t.vals = append(t.vals, m[k])
	}
	return t
}

func (t *strTable) get(s string) *ixHit {
	if t.m != nil {
		return t.m[s]
	}
	for i, k := range t.keys {
		if len(k) == len(s) && k == s {
			return t.vals[i]
		}
	}
	return nil
}

func (t *strTable) len() int {
	if t.m != nil {
		return len(t.m)
	}
	return len(t.keys)
}

// EngineStats describes the compiled engine; for tests, benchmarks and
// the operator's curiosity.
type EngineStats struct {
	Feeds  int // feeds in the Set
	Atoms  int // distinct atoms
	Opaque int // of which run by expr
	Always int // feeds without a required atom, evaluated for every offer
}

// EngineStats reports how the Set's filters were decomposed.
func (s *Set) EngineStats() EngineStats {
	st := EngineStats{Feeds: len(s.feeds), Atoms: len(s.engine.atoms), Always: len(s.engine.always)}
	for i := range s.engine.atoms {
		if s.engine.atoms[i].kind == aOpaque {
			st.Opaque++
		}
	}
	return st
}

// engineBuilder builds an engine during Compile.
type engineBuilder struct {
	e      *engine
	bits   fieldBits
	cfg    *conf.Config // for opaque sub-programs (no bool cast)
	byKey  map[string]int32
	idx    map[string]int // index kind + operand key → position in its slice
	feedNo int32
}

func newEngineBuilder(bits fieldBits) *engineBuilder {
	return &engineBuilder{
		e:     &engine{},
		bits:  bits,
		cfg:   newConfig(exprOptions(false)),
		byKey: make(map[string]int32),
		idx:   make(map[string]int),
	}
}

// add decomposes one feed's compiled filter (its checked, optimised AST)
// and returns an error only when an opaque part cannot be compiled alone.
func (b *engineBuilder) add(root ast.Node, src string) error {
	var err error
	r := b.node(root, src, &err)
	if err != nil {
		return err
	}
	b.e.roots = append(b.e.roots, r)
	feed := b.feedNo
	b.feedNo++
	if req, _, ok := b.required(r); ok {
		for _, a := range req {
			for int(a) >= len(b.e.reqFeeds) {
				b.e.reqFeeds = append(b.e.reqFeeds, nil)
			}
			if !slices.Contains(b.e.reqFeeds[a], feed) {
				b.e.reqFeeds[a] = append(b.e.reqFeeds[a], feed)
			}
		}
	} else {
		b.e.always = append(b.e.always, feed)
	}
	return nil
}

// skip records a feed without a filter (Compile reports the problem).
func (b *engineBuilder) skip() {
	b.e.roots = append(b.e.roots, -1)
	b.feedNo++
}

func (b *engineBuilder) finish() *engine {
	e := b.e
	for len(e.reqFeeds) < len(e.atoms) {
		e.reqFeeds = append(e.reqFeeds, nil)
	}
	// feedsOf is the union of the feeds requiring atoms, in first-seen
	// order; nil when no feed requires any of them.
	feedsOf := func(atoms []int32) []int32 {
		if len(atoms) == 1 {
			return slices.Clone(e.reqFeeds[atoms[0]])
		}
		var out []int32
		for _, a := range atoms {
			for _, f := range e.reqFeeds[a] {
				if !slices.Contains(out, f) {
					out = append(out, f)
				}
			}
		}
		return out
	}
	// required is the subset of atoms some feed requires.
	required := func(atoms []int32) []int32 {
		var out []int32
		for _, a := range atoms {
			if len(e.reqFeeds[a]) > 0 {
				out = append(out, a)
			}
		}
		return out
	}
	eqStr := e.eqStr[:0]
	for _, ix := range e.eqStr {
		m := make(map[string]*ixHit)
		for k, atoms := range ix.m {
			if fs := feedsOf(atoms); fs != nil {
				m[k] = &ixHit{atoms: required(atoms), feeds: fs}
			}
		}
		if len(m) == 0 {
			continue
		}
		ix.m, ix.feeds = nil, newStrTable(m)
		eqStr = append(eqStr, ix)
	}
	e.eqStr = eqStr
	eqNum := e.eqNum[:0]
	for _, ix := range e.eqNum {
		m := make(map[float64][]int32)
		for k, atoms := range ix.m {
			if fs := feedsOf(atoms); fs != nil {
				m[k] = fs
			}
		}
		if len(m) > 0 {
			ix.m = m
			eqNum = append(eqNum, ix)
		}
	}
	e.eqNum = eqNum
	eqBool := e.eqBool[:0]
	for _, ix := range e.eqBool {
		ix.t, ix.f = feedsOf(ix.t), feedsOf(ix.f)
		if ix.t != nil || ix.f != nil {
			eqBool = append(eqBool, ix)
		}
	}
	e.eqBool = eqBool
	prefix := e.prefix[:0]
	for _, ix := range e.prefix {
		if ix.root.prune(required, feedsOf) {
			prefix = append(prefix, ix)
		}
	}
	e.prefix = prefix
	pruneRanges := func(list []rangeIndex) []rangeIndex {
		out := list[:0]
		for _, ix := range list {
			sortRange(&ix)
			var bounds []float64
			var feeds [][]int32
			for i, a := range ix.atoms {
				if fs := feedsOf([]int32{a}); fs != nil {
					bounds = append(bounds, ix.bounds[i])
					feeds = append(feeds, fs)
				}
			}
			if len(bounds) > 0 {
				ix.bounds, ix.atoms, ix.feeds = bounds, nil, feeds
				out = append(out, ix)
			}
		}
		return out
	}
	e.upper = pruneRanges(e.upper)
	e.lower = pruneRanges(e.lower)

	e.strAttrs = make(map[string][]int32)
	for i := range e.eqStr {
		ix := &e.eqStr[i]
		if ix.op.f != fieldAttr {
			e.strFields = append(e.strFields, int32(i))
			continue
		}
		e.strAttrs[ix.op.attr] = append(e.strAttrs[ix.op.attr], int32(i))
		if ix.op.hasDef && ix.op.def.k == kString && ix.feeds.get(ix.op.def.s) != nil {
			e.attrMissing = append(e.attrMissing, int32(i))
		}
	}
	e.reqFeeds = nil // now in the indexes
	b.flatten()
	return e
}

// flatten turns each feed's bnode tree into enodes (see enode) and drops
// the bnodes.
func (b *engineBuilder) flatten() {
	e := b.e
	var kid func(i int32) int32
	var collect func(op bop, i int32, out []int32) []int32
	collect = func(op bop, i int32, out []int32) []int32 {
		if n := e.nodes[i]; n.op == op {
			return collect(op, n.b, collect(op, n.a, out))
		}
		return append(out, kid(i))
	}
	kid = func(i int32) int32 {
		n := e.nodes[i]
		switch n.op {
		case bAtom:
			return ^n.a
		case bNot:
			c := kid(n.a)
			e.enodes = append(e.enodes, enode{op: bNot, a: c})
			return int32(len(e.enodes) - 1)
		}
		ks := collect(n.op, n.b, collect(n.op, n.a, nil))
		lo := int32(len(e.kids))
		e.kids = append(e.kids, ks...)
		e.enodes = append(e.enodes, enode{op: n.op, lo: lo, hi: int32(len(e.kids))})
		return int32(len(e.enodes) - 1)
	}
	for f, r := range e.roots {
		if r >= 0 {
			e.roots[f] = kid(r)
		} else {
			e.roots[f] = math.MaxInt32 // a feed Compile refused: never evaluated
		}
	}
	e.nodes = nil
}

func sortRange(r *rangeIndex) {
	idx := make([]int, len(r.bounds))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(i, j int) bool { return r.bounds[idx[i]] < r.bounds[idx[j]] })
	bounds := make([]float64, len(idx))
	atoms := make([]int32, len(idx))
	for i, j := range idx {
		bounds[i], atoms[i] = r.bounds[j], r.atoms[j]
	}
	r.bounds, r.atoms = bounds, atoms
}

func (b *engineBuilder) push(n bnode) int32 {
	b.e.nodes = append(b.e.nodes, n)
	return int32(len(b.e.nodes) - 1)
}

func (b *engineBuilder) node(n ast.Node, src string, err *error) int32 {
	switch x := n.(type) {
	case *ast.BinaryNode:
		switch x.Operator {
		case "&&", "and":
			l := b.node(x.Left, src, err)
			r := b.node(x.Right, src, err)
			return b.push(bnode{op: bAnd, a: l, b: r})
		case "||", "or":
			l := b.node(x.Left, src, err)
			r := b.node(x.Right, src, err)
			return b.push(bnode{op: bOr, a: l, b: r})
		}
	case *ast.UnaryNode:
		if x.Operator == "!" || x.Operator == "not" {
			c := b.node(x.Node, src, err)
			return b.push(bnode{op: bNot, a: c})
		}
	}
	a, ok := parseAtom(n, b.bits)
	if ok {
		a.fields = a.op.fields()
	} else {
		a = atom{kind: aOpaque}
	}
	var key string
	if ok {
		key = a.key()
	} else {
		key = "opaque " + ast.Dump(n)
	}
	id, seen := b.byKey[key]
	if !seen {
		if a.kind == aOpaque {
			prog, cerr := exprcompiler.Compile(&parser.Tree{Node: n, Source: file.NewSource(src)}, b.cfg)
			if cerr != nil {
				*err = fmt.Errorf("compile sub-expression %s: %w", n, cerr)
				return -1
			}
			a.prog = prog
			u := b.bits.usage(&n)
			a.fields = u.mask()
			b.e.opaqueUse.add(u)
		}
		id = int32(len(b.e.atoms))
		b.e.atoms = append(b.e.atoms, a)
		b.byKey[key] = id
		b.index(id)
	}
	return b.push(bnode{op: bAtom, a: id})
}

// pure reports whether node i is always false or true (never nil, never
// an error).
func (b *engineBuilder) pure(i int32) bool {
	n := b.e.nodes[i]
	switch n.op {
	case bAtom:
		return b.e.atoms[n.a].pure()
	case bNot:
		return b.pure(n.a)
	}
	return b.pure(n.a) && b.pure(n.b)
}

// required returns a set of indexable atoms such that, when none of them
// holds, node i is false without a run-time error, and an estimate of how
// often one of them holds. A conjunction uses its most selective conjunct
// among those preceded only by pure conjuncts (so skipping the feed skips
// no error plain evaluation would count); a disjunction needs a set for
// each side and uses their union.
func (b *engineBuilder) required(i int32) ([]int32, float64, bool) {
	n := b.e.nodes[i]
	switch n.op {
	case bAtom:
		if score, ok := b.indexed(n.a); ok {
			return []int32{n.a}, score, true
		}
	case bOr:
		l, ls, lok := b.required(n.a)
		r, rs, rok := b.required(n.b)
		if lok && rok {
			return append(l, r...), ls + rs, true
		}
	case bAnd:
		var conj []int32
		var flatten func(i int32)
		flatten = func(i int32) {
			if b.e.nodes[i].op == bAnd {
				flatten(b.e.nodes[i].a)
				flatten(b.e.nodes[i].b)
				return
			}
			conj = append(conj, i)
		}
		flatten(i)
		var best []int32
		bestScore, found := 0.0, false
		for _, c := range conj {
			if req, s, ok := b.required(c); ok && (!found || s < bestScore) {
				best, bestScore, found = req, s, true
			}
			if !b.pure(c) {
				break
			}
		}
		return best, bestScore, found
	}
	return nil, 0, false
}

// indexes maps an atom kind to whether and how it is indexed.
type indexKind uint8

const (
	ixNone indexKind = iota
	ixEq             // string, number and bool keys
	ixPrefix
	ixRange
)

// indexKindOf decides whether atom a can be indexed: when the index does
// not report it, it is false (never true, nil or an error).
func indexKindOf(a *atom) indexKind {
	k := a.op.kinds()
	if k&(1<<kErr) != 0 {
		return ixNone
	}
	strOrNil := uint8(1<<kString | 1<<kNil)
	switch a.kind {
	case aEq:
		if !a.neg && a.c.k != kNil {
			return ixEq
		}
	case aInSet:
		if _, empty := a.set[""]; k&^strOrNil == 0 && !(empty && k&(1<<kNil) != 0) {
			return ixEq
		}
	case aInIntSet:
		if k == 1<<kInt {
			return ixEq
		}
	case aInList:
		for _, c := range a.list {
			if c.k == kNil {
				return ixNone
			}
		}
		return ixEq
	case aTruth:
		if k == 1<<kBool {
			return ixEq
		}
	case aPrefix:
		if k&^strOrNil == 0 {
			return ixPrefix
		}
	case aCmp:
		if (a.c.k == kInt || a.c.k == kFloat) && k&^uint8(1<<kInt|1<<kFloat) == 0 {
			return ixRange
		}
	}
	return ixNone
}

// indexed reports whether atom id is indexed and estimates how often it
// holds (lower is more selective).
func (b *engineBuilder) indexed(id int32) (float64, bool) {
	a := &b.e.atoms[id]
	switch indexKindOf(a) {
	case ixEq:
		switch a.kind {
		case aInSet:
			return min(1, float64(len(a.set))*eqScore(a.op)), true
		case aInIntSet:
			return min(1, float64(len(a.ints))*eqScore(a.op)), true
		case aInList:
			return min(1, float64(len(a.list))*eqScore(a.op)), true
		case aTruth:
			return 0.5, true
		}
		if a.c.k == kBool {
			return 0.5, true
		}
		return eqScore(a.op), true
	case ixPrefix:
		if a.c.s == "" {
			return 1, true
		}
		return 0.3 / float64(1+strings.Count(a.c.s, "/")), true
	case ixRange:
		return 0.5, true
	}
	return 0, false
}

// eqScore guesses how often op equals a given constant: low-cardinality
// fields match often.
func eqScore(op operand) float64 {
	if op.f == fieldAttr {
		return 0.05
	}
	switch FieldMask(1) << op.f {
	case FieldOfferStatus, FieldOfferCondition, FieldSellerStatus:
		return 0.6
	case FieldOfferCurrency, FieldSellerCountry:
		return 0.3
	}
	return 0.05
}

// index registers a new atom in the index its kind allows.
func (b *engineBuilder) index(id int32) {
	a := &b.e.atoms[id]
	opKey := a.op.key()
	switch indexKindOf(a) {
	case ixEq:
		switch a.kind {
		case aEq:
			b.eqKey(a.op, opKey, a.c, id)
		case aTruth:
			b.eqKey(a.op, opKey, scalar{k: kBool, b: true}, id)
		case aInSet:
			for _, s := range sortedKeys(a.set) {
				b.eqKey(a.op, opKey, scalar{k: kString, s: s}, id)
			}
		case aInIntSet:
			for _, i := range sortedIntKeys(a.ints) {
				b.eqKey(a.op, opKey, scalar{k: kInt, i: int64(i)}, id)
			}
		case aInList:
			for _, c := range a.list {
				b.eqKey(a.op, opKey, c, id)
			}
		}
	case ixPrefix:
		i, ok := b.idx["prefix "+opKey]
		if !ok {
			i = len(b.e.prefix)
			b.idx["prefix "+opKey] = i
			b.e.prefix = append(b.e.prefix, prefixIndex{op: a.op, root: &rnode{}})
		}
		b.e.prefix[i].root.insert(a.c.s, id)
	case ixRange:
		list := &b.e.upper
		name := "upper "
		if a.cmp == opGt || a.cmp == opGe {
			list, name = &b.e.lower, "lower "
		}
		i, ok := b.idx[name+opKey]
		if !ok {
			i = len(*list)
			b.idx[name+opKey] = i
			*list = append(*list, rangeIndex{op: a.op})
		}
		r := &(*list)[i]
		r.bounds = append(r.bounds, a.c.num())
		r.atoms = append(r.atoms, id)
	}
}

func (b *engineBuilder) eqKey(op operand, opKey string, c scalar, id int32) {
	add := func(list []int32) []int32 {
		if slices.Contains(list, id) {
			return list
		}
		return append(list, id)
	}
	switch c.k {
	case kString:
		i, ok := b.idx["str "+opKey]
		if !ok {
			i = len(b.e.eqStr)
			b.idx["str "+opKey] = i
			b.e.eqStr = append(b.e.eqStr, eqStrIndex{op: op, m: make(map[string][]int32)})
		}
		b.e.eqStr[i].m[c.s] = add(b.e.eqStr[i].m[c.s])
	case kInt, kFloat:
		i, ok := b.idx["num "+opKey]
		if !ok {
			i = len(b.e.eqNum)
			b.idx["num "+opKey] = i
			b.e.eqNum = append(b.e.eqNum, eqNumIndex{op: op, m: make(map[float64][]int32)})
		}
		b.e.eqNum[i].m[c.num()] = add(b.e.eqNum[i].m[c.num()])
	case kBool:
		i, ok := b.idx["bool "+opKey]
		if !ok {
			i = len(b.e.eqBool)
			b.idx["bool "+opKey] = i
			b.e.eqBool = append(b.e.eqBool, eqBoolIndex{op: op})
		}
		if c.b {
			b.e.eqBool[i].t = add(b.e.eqBool[i].t)
		} else {
			b.e.eqBool[i].f = add(b.e.eqBool[i].f)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedIntKeys(m map[int]struct{}) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

// rnode is a radix tree node over prefixes: atoms hold for every string
// that starts with the path to this node. Children have distinct first
// bytes.
type rnode struct {
	atoms    []int32 // after finish: only those some feed requires
	feeds    []int32 // after finish: feeds requiring one of atoms
	labels   []string
	children []*rnode
}

// prune replaces atoms by feeds (feedsOf) in n's subtree and drops the
// children whose subtree no feed requires; it reports whether any node of
// n's subtree has feeds.
func (n *rnode) prune(required, feedsOf func([]int32) []int32) bool {
	n.feeds, n.atoms = feedsOf(n.atoms), required(n.atoms)
	labels, children := n.labels[:0], n.children[:0]
	for i, c := range n.children {
		if c.prune(required, feedsOf) {
			labels, children = append(labels, n.labels[i]), append(children, c)
		}
	}
	n.labels, n.children = labels, children
	return n.feeds != nil || len(children) > 0
}

func (n *rnode) insert(p string, id int32) {
	for {
		if p == "" {
			if !slices.Contains(n.atoms, id) {
				n.atoms = append(n.atoms, id)
			}
			return
		}
		i := slices.IndexFunc(n.labels, func(l string) bool { return l[0] == p[0] })
		if i < 0 {
			n.labels = append(n.labels, p)
			n.children = append(n.children, &rnode{atoms: []int32{id}})
			return
		}
		l := n.labels[i]
		c := commonPrefix(l, p)
		if c < len(l) {
			// split the edge at c
			mid := &rnode{labels: []string{l[c:]}, children: []*rnode{n.children[i]}}
			n.labels[i], n.children[i] = l[:c], mid
		}
		n, p = n.children[i], p[c:]
	}
}

func commonPrefix(a, b string) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}

// engineRun is an Evaluator's per-offer engine state.
type engineRun struct {
	gen uint32 // < 1<<29
	// atoms holds gen<<3 | tri per atom: the atom's outcome when its
	// generation is gen (one word, so a memoised atom costs one load).
	atoms   []uint32
	atomErr []error // the error of an atom that is tE this offer
	feedGen []uint32
	cand    []int32
	cause   int32 // atom whose tE the last eval returned; -1: a boolean node's
	loaded  bool  // slots hold the opaque atoms' leaves for this offer
	v       *View
	now     time.Time
}

// maxGen bounds engineRun.gen so gen<<3 fits in a uint32.
const maxGen = 1<<29 - 1

func newEngineRun(e *engine, feeds int) engineRun {
	return engineRun{
		atoms:   make([]uint32, len(e.atoms)),
		atomErr: make([]error, len(e.atoms)),
		feedGen: make([]uint32, feeds),
		cand:    make([]int32, 0, feeds),
	}
}

// begin starts a new offer.
func (r *engineRun) begin(v *View, now time.Time) {
	r.gen++
	if r.gen > maxGen {
		clear(r.atoms)
		clear(r.feedGen)
		r.gen = 1
	}
	r.cand = r.cand[:0]
	r.loaded = false
	r.v, r.now = v, now
}

// addHit seeds h's atoms as true and adds its feeds.
func (r *engineRun) addHit(h *ixHit) {
	if h == nil {
		return
	}
	for _, a := range h.atoms {
		r.atoms[a] = r.gen<<3 | uint32(tT)
	}
	r.addFeeds(h.feeds)
}

func (r *engineRun) addFeeds(feeds []int32) {
	for _, f := range feeds {
		if r.feedGen[f] != r.gen {
			r.feedGen[f] = r.gen
			r.cand = append(r.cand, f)
		}
	}
}

// candidates collects the feeds whose required atoms the indexes report
// for the current View, plus the feeds without one.
func (e *Evaluator) candidates() {
	eng, r := e.set.engine, &e.run
	v := r.v
	for _, i := range eng.strFields {
		ix := &eng.eqStr[i]
		if x := ix.op.read(v); x.k == kString {
			r.addHit(ix.feeds.get(x.s))
		}
	}
	if len(eng.strAttrs) > 0 {
		for k, val := range v.Offer.Attributes {
			for _, i := range eng.strAttrs[k] {
				r.addHit(eng.eqStr[i].feeds.get(val))
			}
		}
		for _, i := range eng.attrMissing {
			ix := &eng.eqStr[i]
			if _, ok := v.Offer.Attributes[ix.op.attr]; !ok {
				r.addHit(ix.feeds.get(ix.op.def.s))
			}
		}
	}
	for i := range eng.eqNum {
		ix := &eng.eqNum[i]
		if x := ix.op.read(v); x.k == kInt || x.k == kFloat {
			r.addFeeds(ix.m[x.num()])
		}
	}
	for i := range eng.eqBool {
		ix := &eng.eqBool[i]
		if x := ix.op.read(v); x.k == kBool {
			if x.b {
				r.addFeeds(ix.t)
			} else {
				r.addFeeds(ix.f)
			}
		}
	}
	for i := range eng.prefix {
		ix := &eng.prefix[i]
		x := ix.op.read(v)
		if x.k != kString {
			continue
		}
		n, s := ix.root, x.s
		for n != nil {
			for _, a := range n.atoms {
				r.atoms[a] = r.gen<<3 | uint32(tT)
			}
			r.addFeeds(n.feeds)
			var next *rnode
			if len(s) > 0 {
				for j, l := range n.labels {
					if l[0] == s[0] {
						if strings.HasPrefix(s, l) {
							next, s = n.children[j], s[len(l):]
						}
						break
					}
				}
			}
			n = next
		}
	}
	for i := range eng.upper {
		ix := &eng.upper[i]
		if x := ix.op.read(v); x.k == kInt || x.k == kFloat {
			f := x.num()
			j := sort.SearchFloat64s(ix.bounds, f) // first bound >= f
			for _, fs := range ix.feeds[j:] {
				r.addFeeds(fs)
			}
		}
	}
	for i := range eng.lower {
		ix := &eng.lower[i]
		if x := ix.op.read(v); x.k == kInt || x.k == kFloat {
			f := x.num()
			j := sort.Search(len(ix.bounds), func(k int) bool { return ix.bounds[k] > f })
			for _, fs := range ix.feeds[:j] {
				r.addFeeds(fs)
			}
		}
	}
	r.addFeeds(eng.always)
}

// atomValue returns atom id's outcome for the current View, computing it
// at most once per offer.
func (e *Evaluator) atomValue(id int32) tri {
	r := &e.run
	if w := r.atoms[id]; w>>3 == r.gen {
		t := tri(w & 7)
		if t == tE {
			r.cause = id
		}
		return t
	}
	return e.computeAtom(id)
}

// computeAtom computes atom id for the current View and memoises it.
func (e *Evaluator) computeAtom(id int32) tri {
	r := &e.run
	a := &e.set.engine.atoms[id]
	var t tri
	if a.kind == aOpaque {
		if !r.loaded {
			e.slots.load(e.set.engine.opaqueUse, r.v, r.now)
			r.loaded = true
		}
		out, err := e.runProgram(a.prog)
		switch b, ok := out.(bool); {
		case err != nil:
			t = tE
			r.atomErr[id] = err
		case ok:
			t = triOf(b)
		case out == nil:
			t = tN
		default:
			t = tE
			r.atomErr[id] = errNotBool
		}
	} else {
		t = a.eval(r.v)
		if t == tE {
			r.atomErr[id] = errOperandType
		}
	}
	if t == tE {
		r.cause = id
	}
	r.atoms[id] = r.gen<<3 | uint32(t)
	return t
}

// eval evaluates k, a node of the flattened structure (an atom when
// negative: ^k). It follows expr's VM: && and || need a bool on their
// left (nil or another value is an error) and yield their right side as
// is; ! needs a bool. A chain of && (or of ||) is one node: its operands
// but the last must be true (false) to go on.
func (e *Evaluator) eval(k int32) tri {
	if k < 0 {
		return e.atomValue(^k)
	}
	eng := e.set.engine
	n := &eng.enodes[k]
	switch n.op {
	case bAnd:
		kids := eng.kids[n.lo:n.hi]
		last := len(kids) - 1
		for _, c := range kids[:last] {
			var t tri
			if c >= 0 {
				t = e.eval(c)
			} else if w := e.run.atoms[^c]; w>>3 == e.run.gen { // atomValue, inlined
				if t = tri(w & 7); t == tE {
					e.run.cause = ^c
				}
			} else {
				t = e.computeAtom(^c)
			}
			switch t {
			case tT:
				continue
			case tF:
				return tF
			case tN:
				e.run.cause = -1
			}
			return tE
		}
		return e.eval(kids[last])
	case bOr:
		kids := eng.kids[n.lo:n.hi]
		last := len(kids) - 1
		for _, c := range kids[:last] {
			var t tri
			if c >= 0 {
				t = e.eval(c)
			} else if w := e.run.atoms[^c]; w>>3 == e.run.gen { // atomValue, inlined
				if t = tri(w & 7); t == tE {
					e.run.cause = ^c
				}
			} else {
				t = e.computeAtom(^c)
			}
			switch t {
			case tF:
				continue
			case tT:
				return tT
			case tN:
				e.run.cause = -1
			}
			return tE
		}
		return e.eval(kids[last])
	default: // bNot
		switch e.eval(n.a) {
		case tT:
			return tF
		case tF:
			return tT
		case tN:
			e.run.cause = -1
		}
		return tE
	}
}

// evalFeed evaluates feed f's filter as a whole: nil is false (expr's
// bool cast), an error is false and counted with its cause (an atom's
// error, or a nil operand of a boolean node).
func (e *Evaluator) evalFeed(f int32) bool {
	switch e.eval(e.set.engine.roots[f]) {
	case tT:
		return true
	case tE:
		err := errNotBool
		if c := e.run.cause; c >= 0 {
			err = e.run.atomErr[c]
		}
		e.filterFailed(int(f), e.run.v.Offer.ID, err)
	}
	return false
}
