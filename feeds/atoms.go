package feeds

import (
	"math"
	"strconv"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"
)

// This file holds the atoms of the matching engine: the leaf predicates a
// filter is decomposed into, how they read the View without expr, and
// their exact expr semantics. engine.go holds the boolean structure, the
// indexes and evaluation.

// vkind is the dynamic kind of a value as expr would see it.
type vkind uint8

const (
	kNil vkind = iota
	kString
	kInt
	kFloat
	kBool
	kErr // reading the operand fails (member of a nil seller or rating)
)

// value is one operand value, unboxed: reading it allocates nothing.
type scalar struct {
	k vkind
	b bool
	i int64
	f float64
	s string
}

func (v scalar) key() string {
	switch v.k {
	case kNil:
		return "nil"
	case kString:
		return "s" + strconv.Quote(v.s)
	case kInt:
		return "i" + strconv.FormatInt(v.i, 10)
	case kFloat:
		return "f" + strconv.FormatFloat(v.f, 'g', -1, 64)
	case kBool:
		return "b" + strconv.FormatBool(v.b)
	}
	return "err"
}

// num returns v as float64 for indexing.
func (v scalar) num() float64 {
	if v.k == kInt {
		return float64(v.i)
	}
	return v.f
}

// equal is expr's runtime.Equal over the kinds an operand or constant can
// have: numbers compare numerically (int with int as ints, otherwise as
// float64), nil equals only nil, different kinds are unequal.
func equal(a, b scalar) bool {
	switch {
	case a.k == kInt && b.k == kInt:
		return a.i == b.i
	case (a.k == kInt || a.k == kFloat) && (b.k == kInt || b.k == kFloat):
		return a.num() == b.num()
	case a.k != b.k:
		return false
	}
	switch a.k {
	case kString:
		return a.s == b.s
	case kBool:
		return a.b == b.b
	case kNil:
		return true
	}
	return false
}

// compare is expr's runtime.Less/LessOrEqual/More/MoreOrEqual: numbers
// numerically, strings by bytes; any other pair is a run-time error.
func compare(op cmpOp, a, b scalar) tri {
	var c int
	switch {
	case a.k == kInt && b.k == kInt:
		c = cmpOrdered(a.i, b.i)
	case (a.k == kInt || a.k == kFloat) && (b.k == kInt || b.k == kFloat):
		x, y := a.num(), b.num()
		switch {
		case x < y:
			c = -1
		case x > y:
			c = 1
		case x == y:
			c = 0
		default: // NaN: every ordering is false
			return tF
		}
	case a.k == kString && b.k == kString:
		c = strings.Compare(a.s, b.s)
	default:
		return tE
	}
	var r bool
	switch op {
	case opLt:
		r = c < 0
	case opLe:
		r = c <= 0
	case opGt:
		r = c > 0
	case opGe:
		r = c >= 0
	}
	return triOf(r)
}

func cmpOrdered(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// tri is the outcome of an atom or a boolean node, with the distinctions
// expr's VM makes: false, true, nil (a nil value where a bool was
// expected: false at the top of a filter, an error inside &&, || and !)
// and error (a run-time failure, or a value that is not a bool).
type tri uint8

const (
	tF tri = iota + 1
	tT
	tN
	tE
)

func triOf(b bool) tri {
	if b {
		return tT
	}
	return tF
}

type cmpOp uint8

const (
	opLt cmpOp = iota
	opLe
	opGt
	opGe
)

// field names one scalar leaf of the View an operand reads; the values
// are the FieldMask bit numbers, plus fieldAttr for one attributes key.
// The per-field parts (fieldKind, readOffer, readJoined, ...) are generated
// into model_gen.go.
type field uint8

const fieldAttr field = 255

// operand reads one scalar from the View: a field of offer, seller or
// rating, or one attributes key, optionally with a `?? constant` default.
type operand struct {
	f        field
	attr     string // fieldAttr: the key
	optional bool   // seller?.x / rating?.x: nil when the record is unknown; otherwise an error
	hasDef   bool
	def      scalar
}

func (o *operand) key() string {
	var b strings.Builder
	if o.f == fieldAttr {
		b.WriteString("offer.attributes[" + strconv.Quote(o.attr) + "]")
	} else {
		b.WriteString(fieldName(int(o.f)))
	}
	if o.optional {
		b.WriteString("?")
	}
	if o.hasDef {
		b.WriteString("??" + o.def.key())
	}
	return b.String()
}

// kinds returns the set of kinds (bit per vkind) the operand can yield.
func (o *operand) kinds() uint8 {
	var k uint8
	switch {
	case o.f == fieldAttr:
		k = 1<<kString | 1<<kNil
	default:
		k = 1 << fieldKind(o.f)
		if FieldMask(1)<<o.f&nullableFields != 0 {
			k |= 1 << kNil
		}
		if FieldMask(1)<<o.f&fieldsJoined != 0 {
			if o.optional {
				k |= 1 << kNil
			} else {
				k |= 1 << kErr
			}
		}
	}
	if o.hasDef && k&(1<<kNil) != 0 {
		k = k&^(1<<kNil) | 1<<o.def.k
	}
	return k
}

func optString(p *string) scalar {
	if p == nil {
		return scalar{}
	}
	return scalar{k: kString, s: *p}
}

// read returns the operand's value for v, as expr would compute it.
func (o *operand) read(v *View) scalar {
	r := o.readRaw(v)
	if r.k == kNil && o.hasDef {
		return o.def
	}
	return r
}

func (o *operand) readRaw(v *View) scalar {
	if o.f == fieldAttr {
		s, ok := v.Offer.Attributes[o.attr]
		if !ok {
			return scalar{}
		}
		return scalar{k: kString, s: s}
	}
	m := FieldMask(1) << o.f
	if m&FieldsOffer != 0 {
		return readOffer(m, v.Offer)
	}
	return readJoined(m, v, o.optional)
}

// absent is the value of a field of a joined record the view lacks: nil
// through an optional chain (seller?.x), otherwise an error.
func absent(optional bool) scalar {
	if optional {
		return scalar{}
	}
	return scalar{k: kErr}
}

// atomKind says what an atom computes.
type atomKind uint8

const (
	aEq       atomKind = iota // operand == c (neg: !=)
	aCmp                      // operand <,<=,>,>= c
	aPrefix                   // operand startsWith c
	aSuffix                   // operand endsWith c
	aContains                 // operand contains c
	aInSet                    // operand in {strings} (expr's optimised map: nil looks up "")
	aInIntSet                 // int operand in {ints} (expr's optimised map)
	aInList                   // operand in [constants] (runtime.Equal per element)
	aTruth                    // the operand itself in boolean position
	aOpaque                   // any other sub-expression, run by expr
)

// atom is one distinct leaf predicate of the Set's filters.
type atom struct {
	kind   atomKind
	op     operand
	neg    bool
	cmp    cmpOp
	c      scalar
	set    map[string]struct{}
	ints   map[int]struct{}
	list   []scalar
	prog   *vm.Program // aOpaque
	fields FieldMask   // what it reads (aOpaque: from usage)
}

// eval computes the atom for v. Opaque atoms are run by the engine.
func (a *atom) eval(v *View) tri {
	return a.evalOn(a.op.read(v))
}

// evalOn computes the atom from x, its operand's value.
func (a *atom) evalOn(x scalar) tri {
	if x.k == kErr {
		return tE
	}
	switch a.kind {
	case aEq:
		return triOf(equal(x, a.c) != a.neg)
	case aCmp:
		return compare(a.cmp, x, a.c)
	case aPrefix, aSuffix, aContains:
		switch x.k {
		case kNil:
			return tF
		case kString:
		default:
			return tE
		}
		switch a.kind {
		case aPrefix:
			return triOf(strings.HasPrefix(x.s, a.c.s))
		case aSuffix:
			return triOf(strings.HasSuffix(x.s, a.c.s))
		}
		return triOf(strings.Contains(x.s, a.c.s))
	case aInSet:
		switch x.k {
		case kNil:
			_, ok := a.set[""]
			return triOf(ok)
		case kString:
			_, ok := a.set[x.s]
			return triOf(ok)
		}
		return tE
	case aInIntSet:
		if x.k != kInt {
			return tE
		}
		_, ok := a.ints[int(x.i)]
		return triOf(ok)
	case aInList:
		for _, c := range a.list {
			if equal(x, c) {
				return tT
			}
		}
		return tF
	case aTruth:
		switch x.k {
		case kBool:
			return triOf(x.b)
		case kNil:
			return tN
		}
		return tE
	}
	return tE
}

// pure reports whether the atom is always false or true: pure atoms (never nil, never an error) may come before a filter's
// required atom (see engine.go).
func (a *atom) pure() bool {
	k := a.op.kinds()
	if k&(1<<kErr) != 0 {
		return false
	}
	switch a.kind {
	case aEq, aInList:
		return true
	case aCmp:
		num := uint8(1<<kInt | 1<<kFloat)
		if a.c.k == kString {
			return k == 1<<kString
		}
		return k&^num == 0
	case aPrefix, aSuffix, aContains:
		return k&^(1<<kString|1<<kNil) == 0
	case aInSet:
		return k&^(1<<kString|1<<kNil) == 0
	case aInIntSet:
		return k == 1<<kInt
	case aTruth:
		return k == 1<<kBool
	}
	return false
}

func (a *atom) key() string {
	var b strings.Builder
	b.WriteString(a.op.key())
	switch a.kind {
	case aEq:
		if a.neg {
			b.WriteString(" != ")
		} else {
			b.WriteString(" == ")
		}
		b.WriteString(a.c.key())
	case aCmp:
		b.WriteString([...]string{" < ", " <= ", " > ", " >= "}[a.cmp])
		b.WriteString(a.c.key())
	case aPrefix:
		b.WriteString(" startsWith " + a.c.key())
	case aSuffix:
		b.WriteString(" endsWith " + a.c.key())
	case aContains:
		b.WriteString(" contains " + a.c.key())
	case aInSet:
		b.WriteString(" inset ")
		for _, s := range sortedKeys(a.set) {
			b.WriteString(strconv.Quote(s) + ",")
		}
	case aInIntSet:
		b.WriteString(" inints ")
		for _, s := range sortedIntKeys(a.ints) {
			b.WriteString(strconv.Itoa(s) + ",")
		}
	case aInList:
		b.WriteString(" inlist ")
		for _, c := range a.list {
			b.WriteString(c.key() + ",")
		}
	case aTruth:
		b.WriteString(" truth")
	}
	return b.String()
}

// constant returns the value of a literal node.
func constant(n ast.Node) (scalar, bool) {
	switch x := n.(type) {
	case *ast.StringNode:
		return scalar{k: kString, s: x.Value}, true
	case *ast.IntegerNode:
		return scalar{k: kInt, i: int64(x.Value)}, true
	case *ast.FloatNode:
		if math.IsNaN(x.Value) {
			return scalar{}, false
		}
		return scalar{k: kFloat, f: x.Value}, true
	case *ast.BoolNode:
		return scalar{k: kBool, b: x.Value}, true
	case *ast.NilNode:
		return scalar{}, true
	case *ast.ConstantNode:
		return constantOf(x.Value)
	}
	return scalar{}, false
}

func constantOf(v any) (scalar, bool) {
	switch c := v.(type) {
	case nil:
		return scalar{}, true
	case string:
		return scalar{k: kString, s: c}, true
	case int:
		return scalar{k: kInt, i: int64(c)}, true
	case int64:
		return scalar{k: kInt, i: c}, true
	case float64:
		if math.IsNaN(c) {
			return scalar{}, false
		}
		return scalar{k: kFloat, f: c}, true
	case bool:
		return scalar{k: kBool, b: c}, true
	}
	return scalar{}, false
}

// parseOperand recognises offer.x, seller.x, seller?.x, rating?.x,
// offer.attributes["k"] and `<one of those> ?? constant`.
func parseOperand(n ast.Node, bits fieldBits) (operand, bool) {
	if b, ok := n.(*ast.BinaryNode); ok && b.Operator == "??" {
		op, ok := parseOperand(b.Left, bits)
		if !ok || op.hasDef {
			return operand{}, false
		}
		c, ok := constant(b.Right)
		if !ok || c.k == kNil {
			return operand{}, false
		}
		op.hasDef, op.def = true, c
		return op, true
	}
	chain := false
	if ch, ok := n.(*ast.ChainNode); ok {
		chain, n = true, ch.Node
	}
	m, ok := n.(*ast.MemberNode)
	if !ok || m.Method {
		return operand{}, false
	}
	prop, ok := m.Property.(*ast.StringNode)
	if !ok {
		return operand{}, false
	}
	if inner, ok := m.Node.(*ast.MemberNode); ok {
		// offer.attributes["k"]: offer is never nil and the map is
		// always present, so optional steps change nothing.
		id, ok := inner.Node.(*ast.IdentifierNode)
		ip, ok2 := inner.Property.(*ast.StringNode)
		if !ok || !ok2 || inner.Method || id.Value != "offer" || ip.Value != "attributes" {
			return operand{}, false
		}
		return operand{f: fieldAttr, attr: prop.Value}, true
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok {
		return operand{}, false
	}
	// Parsing runs once per Compile: the name lookup may allocate.
	bit, ok := FieldByName(id.Value + "." + prop.Value)
	if !ok {
		return operand{}, false
	}
	var f field
	for b := bit; b > 1; b >>= 1 {
		f++
	}
	if fieldKind(f) == kErr {
		return operand{}, false
	}
	if m.Optional && !chain {
		return operand{}, false
	}
	return operand{f: f, optional: m.Optional && chain}, true
}

// parseAtom recognises a leaf predicate; ok is false for anything that
// must run as an opaque program.
func parseAtom(n ast.Node, bits fieldBits) (atom, bool) {
	if op, ok := parseOperand(n, bits); ok {
		return atom{kind: aTruth, op: op}, true
	}
	b, ok := n.(*ast.BinaryNode)
	if !ok {
		return atom{}, false
	}
	switch b.Operator {
	case "==", "!=":
		op, c, _, ok := operandAndConstant(b, bits)
		if !ok {
			return atom{}, false
		}
		return atom{kind: aEq, op: op, c: c, neg: b.Operator == "!="}, true
	case "<", "<=", ">", ">=":
		op, c, flipped, ok := operandAndConstant(b, bits)
		if !ok || (c.k != kInt && c.k != kFloat && c.k != kString) {
			return atom{}, false
		}
		cmp := map[string]cmpOp{"<": opLt, "<=": opLe, ">": opGt, ">=": opGe}[b.Operator]
		if flipped {
			cmp = [...]cmpOp{opGt, opGe, opLt, opLe}[cmp]
		}
		return atom{kind: aCmp, op: op, c: c, cmp: cmp}, true
	case "startsWith", "endsWith", "contains":
		op, ok := parseOperand(b.Left, bits)
		if !ok {
			return atom{}, false
		}
		c, ok := constant(b.Right)
		if !ok || c.k != kString {
			return atom{}, false
		}
		kind := map[string]atomKind{"startsWith": aPrefix, "endsWith": aSuffix, "contains": aContains}[b.Operator]
		return atom{kind: kind, op: op, c: c}, true
	case "in":
		op, ok := parseOperand(b.Left, bits)
		if !ok {
			return atom{}, false
		}
		switch r := b.Right.(type) {
		case *ast.ConstantNode:
			switch set := r.Value.(type) {
			case map[string]struct{}:
				return atom{kind: aInSet, op: op, set: set}, true
			case map[int]struct{}:
				// expr looks the needle up as is: only a Go int field
				// without a default matches the map's key type.
				if op.hasDef || op.f == fieldAttr ||
					(FieldMask(1)<<op.f&goIntFields == 0) {
					return atom{}, false
				}
				return atom{kind: aInIntSet, op: op, ints: set}, true
			case []any:
				list := make([]scalar, 0, len(set))
				for _, e := range set {
					c, ok := constantOf(e)
					if !ok {
						return atom{}, false
					}
					list = append(list, c)
				}
				return atom{kind: aInList, op: op, list: list}, true
			}
		case *ast.ArrayNode:
			list := make([]scalar, 0, len(r.Nodes))
			for _, e := range r.Nodes {
				c, ok := constant(e)
				if !ok {
					return atom{}, false
				}
				list = append(list, c)
			}
			return atom{kind: aInList, op: op, list: list}, true
		}
	}
	return atom{}, false
}

// operandAndConstant splits a binary node into an operand and a constant;
// flipped is true when the constant is on the left.
func operandAndConstant(b *ast.BinaryNode, bits fieldBits) (operand, scalar, bool, bool) {
	if op, ok := parseOperand(b.Left, bits); ok {
		if c, ok := constant(b.Right); ok {
			return op, c, false, true
		}
	}
	if op, ok := parseOperand(b.Right, bits); ok {
		if c, ok := constant(b.Left); ok {
			return op, c, true, true
		}
	}
	return operand{}, scalar{}, false, false
}

func (o *operand) fields() FieldMask {
	if o.f == fieldAttr {
		return FieldOfferAttributes
	}
	return FieldMask(1) << o.f
}
