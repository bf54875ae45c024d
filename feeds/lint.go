package feeds

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker"
	"github.com/expr-lang/expr/file"

	"github.com/feedmill/feedmill/config"
)

// Lint finds expressions that compile but are likely to fail, or to give
// a wrong value without failing, for some offers at run time. A filter
// that fails is false for the offer, a group.by or group.of that fails
// puts it in no group, and a custom template value that fails omits its
// element; each failure counts in feedmill_feed_errors_total
// (docs/contract.md, Runaway filters and templates). Lint reports:
//
//   - a field of seller or rating read without `?.` where nothing
//     guarantees the record exists (`seller.status`: seller is nil when
//     the offer's seller is unknown);
//   - int(), float(), duration(), date() and timezone() of a string from
//     the record (an attribute, a title) that may not be a number, a
//     duration, ...;
//   - a constant index into a list (`offer.images[0]`) not guarded by a
//     check of its length;
//   - a value that may be nil (`seller?.status`, `rating?.average`,
//     `offer.brand`, `offer.attributes["size"]`, first(...)) given to an
//     operator or builtin that fails on nil (`<`, `+`, `&&`, `!`, lower,
//     len, abs, ...), or to string(), which makes it "<nil>";
//   - an attribute (always a string) compared with or computed with a
//     number, which fails for every offer;
//   - an integer `%` by a value that may be 0.
//
// A read is guarded by what must be true for it to run: the left side of
// && (or the negation of the left side of ||), the condition of a ternary
// or if/else: `seller != nil && seller.status == "ACTIVE"`,
// `rating?.average > 4` after `rating != nil &&`, `len(offer.images) > 2 &&
// offer.images[2] != ""`, `offer.attributes.size matches "^[0-9]+$" &&
// int(offer.attributes.size) > 3` (a value matched, compared with or listed
// among string constants counts as checked for the conversions).
//
// Lint checks the filters, group.by and group.of of feeds and the values
// of custom templates; an empty expression or one that does not compile is
// skipped (Compile reports it). Warnings come in config order, then by
// position. Lint is a pure function, safe for concurrent use.
func Lint(fs []config.Feed, templates []config.Template) []Warning {
	var out []Warning
	for i := range fs {
		f := &fs[i]
		path := fmt.Sprintf("feeds[%d] (%s)", i, f.ID)
		out = lintProgram(out, f.Filter, lintTarget{path: path + ".filter", feed: f.ID, role: roleFilter})
		if f.Group != nil {
			out = lintProgram(out, f.Group.By, lintTarget{path: path + ".group.by", feed: f.ID, role: roleGroup})
			out = lintProgram(out, f.Group.Of, lintTarget{path: path + ".group.of", feed: f.ID, role: roleGroup})
		}
	}
	for j := range templates {
		t := &templates[j]
		for k, fc := range t.Fields {
			path := fmt.Sprintf("templates[%d] (%s).fields[%d] (%s).value", j, t.ID, k, fc.Name)
			out = lintProgram(out, fc.Value, lintTarget{path: path, template: t.ID, role: roleValue})
		}
	}
	return out
}

// Warning is one risky expression found by Lint.
type Warning struct {
	// Path names the config element like Problem.Path:
	// `feeds[3] (phones).filter`, `feeds[0] (x).group.by`,
	// `templates[1] (partner-x).fields[6] (image).value`.
	Path string
	// Feed is the id of the feed whose expression it is; "" for a custom
	// template's value.
	Feed string
	// Template is the id of the custom template whose value it is; "" for
	// a feed's expression. The warning concerns every feed using it.
	Template string
	// Line and Column locate it in the expression (1-based; columns count
	// characters), as in the compile problems.
	Line, Column int
	Message      string
}

// String formats w as "path:line:column: message".
func (w Warning) String() string {
	return w.Path + ":" + strconv.Itoa(w.Line) + ":" + strconv.Itoa(w.Column) + ": " + w.Message
}

// role is what a failure of the expression does to the offer.
type role int

const (
	roleFilter role = iota
	roleGroup
	roleValue
)

// consequence says what a failure of an expression of role r does.
func (r role) consequence() string {
	switch r {
	case roleGroup:
		return "then the offer is in no group, counted as a filter error"
	case roleValue:
		return "then the element is left out, counted as a template error"
	}
	return "then the filter fails: not a member, counted as a filter error"
}

type lintTarget struct {
	path, feed, template string
	role                 role
}

// lintProgram type-checks src the way Compile does, without Compile's
// rewrites, and appends its warnings to out.
func lintProgram(out []Warning, src string, t lintTarget) []Warning {
	if strings.TrimSpace(src) == "" {
		return out
	}
	cfg := newConfig(exprOptions(t.role == roleFilter))
	// Compile's patch (nilCheckRewriter) turns `seller == nil` into an
	// optional chain that means the same; lint the expression as written.
	cfg.Visitors = nil
	tree, err := checker.ParseCheck(src, cfg)
	if err != nil {
		return out // Compile reports it
	}
	l := linter{target: t, source: tree.Source, aliases: map[string]ast.Node{}, seen: map[string]bool{}, out: out}
	l.walk(tree.Node, guards{})
	return l.out
}

// guards is what is known to hold where an expression runs.
type guards struct {
	nonNil  map[string]bool // values (by key) that are not nil
	minLen  map[string]int  // lists (by key) with at least this many elements
	checked map[string]bool // strings (by key) checked against a pattern or constants
}

func (g guards) empty() bool { return len(g.nonNil) == 0 && len(g.minLen) == 0 && len(g.checked) == 0 }

// with returns g and h together (g is not modified).
func (g guards) with(h guards) guards {
	if h.empty() {
		return g
	}
	if g.empty() {
		return h
	}
	out := guards{nonNil: map[string]bool{}, minLen: map[string]int{}, checked: map[string]bool{}}
	for _, x := range []guards{g, h} {
		for k := range x.nonNil {
			out.nonNil[k] = true
		}
		for k := range x.checked {
			out.checked[k] = true
		}
		for k, n := range x.minLen {
			out.minLen[k] = max(out.minLen[k], n)
		}
	}
	return out
}

// common returns what both g and h guarantee.
func (g guards) common(h guards) guards {
	var out guards
	for k := range g.nonNil {
		if h.nonNil[k] {
			out.addNonNil(k)
		}
	}
	for k := range g.checked {
		if h.checked[k] {
			out.addChecked(k)
		}
	}
	for k, n := range g.minLen {
		if m, ok := h.minLen[k]; ok {
			out.addMinLen(k, min(n, m))
		}
	}
	return out
}

func (g *guards) addNonNil(k string) {
	if g.nonNil == nil {
		g.nonNil = map[string]bool{}
	}
	g.nonNil[k] = true
}

func (g *guards) addChecked(k string) {
	if g.checked == nil {
		g.checked = map[string]bool{}
	}
	g.checked[k] = true
}

func (g *guards) addMinLen(k string, n int) {
	if n <= 0 {
		return
	}
	if g.minLen == nil {
		g.minLen = map[string]int{}
	}
	g.minLen[k] = max(g.minLen[k], n)
}

// linter walks one checked expression. Unlike the visitors of limits.go,
// it descends itself (children), so that each node is checked with the
// guards of its position.
type linter struct {
	target  lintTarget
	source  file.Source
	aliases map[string]ast.Node // let variables in scope: their values
	seen    map[string]bool     // warnings already added (position and message)
	out     []Warning
}

func (l *linter) warn(n ast.Node, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	fe := (&file.Error{Location: n.Location()}).Bind(l.source)
	dedup := strconv.Itoa(fe.Line) + ":" + strconv.Itoa(fe.Column) + ":" + msg
	if l.seen[dedup] {
		return
	}
	l.seen[dedup] = true
	l.out = append(l.out, Warning{
		Path: l.target.path, Feed: l.target.feed, Template: l.target.template,
		Line: fe.Line, Column: fe.Column + 1, Message: msg,
	})
}

// walk checks n and its descendants under g.
func (l *linter) walk(n ast.Node, g guards) {
	if n == nil {
		return
	}
	switch x := n.(type) {
	case *ast.BinaryNode:
		switch x.Operator {
		case "&&", "and":
			l.check(x, g)
			l.walk(x.Left, g)
			l.walk(x.Right, g.with(l.facts(x.Left, true)))
			return
		case "||", "or":
			l.check(x, g)
			l.walk(x.Left, g)
			l.walk(x.Right, g.with(l.facts(x.Left, false)))
			return
		}
	case *ast.ConditionalNode:
		l.check(x, g)
		l.walk(x.Cond, g)
		l.walk(x.Exp1, g.with(l.facts(x.Cond, true)))
		l.walk(x.Exp2, g.with(l.facts(x.Cond, false)))
		return
	case *ast.VariableDeclaratorNode:
		l.walk(x.Value, g)
		prev, had := l.aliases[x.Name]
		l.aliases[x.Name] = x.Value
		l.walk(x.Expr, g)
		if had {
			l.aliases[x.Name] = prev
		} else {
			delete(l.aliases, x.Name)
		}
		return
	}
	l.check(n, g)
	for _, c := range children(n) {
		l.walk(c, g)
	}
}

// children returns n's direct children (ast.Walk's order, which has them
// all; the linter needs them one level at a time).
func children(n ast.Node) []ast.Node {
	var out []ast.Node
	switch x := n.(type) {
	case *ast.UnaryNode:
		out = []ast.Node{x.Node}
	case *ast.BinaryNode:
		out = []ast.Node{x.Left, x.Right}
	case *ast.ChainNode:
		out = []ast.Node{x.Node}
	case *ast.MemberNode:
		out = []ast.Node{x.Node, x.Property}
	case *ast.SliceNode:
		out = []ast.Node{x.Node, x.From, x.To}
	case *ast.CallNode:
		out = append([]ast.Node{x.Callee}, x.Arguments...)
	case *ast.BuiltinNode:
		out = append(out, x.Arguments...)
		out = append(out, x.Map)
	case *ast.PredicateNode:
		out = []ast.Node{x.Node}
	case *ast.VariableDeclaratorNode:
		out = []ast.Node{x.Value, x.Expr}
	case *ast.SequenceNode:
		out = x.Nodes
	case *ast.ConditionalNode:
		out = []ast.Node{x.Cond, x.Exp1, x.Exp2}
	case *ast.ArrayNode:
		out = x.Nodes
	case *ast.MapNode:
		out = x.Pairs
	case *ast.PairNode:
		out = []ast.Node{x.Key, x.Value}
	}
	return out
}

// key names the value of n for guards: `seller?.status` and
// `seller.status` are the same value; "" when n has no stable name.
func (l *linter) key(n ast.Node) string {
	switch x := n.(type) {
	case *ast.IdentifierNode:
		return x.Value
	case *ast.ChainNode:
		return l.key(x.Node)
	case *ast.MemberNode:
		base := l.key(x.Node)
		if base == "" {
			return ""
		}
		switch p := x.Property.(type) {
		case *ast.StringNode:
			return base + "." + strconv.Quote(p.Value)
		case *ast.IntegerNode:
			return base + "[" + strconv.Itoa(p.Value) + "]"
		}
		return ""
	case *ast.PointerNode:
		return "" // a different element at each iteration
	}
	return n.String()
}

// facts returns what holds when n (a condition) evaluates to truth.
func (l *linter) facts(n ast.Node, truth bool) guards {
	var g guards
	switch x := n.(type) {
	case *ast.UnaryNode:
		if x.Operator == "!" || x.Operator == "not" {
			return l.facts(x.Node, !truth)
		}
	case *ast.BinaryNode:
		switch x.Operator {
		case "&&", "and":
			if truth {
				return l.facts(x.Left, true).with(l.facts(x.Right, true))
			}
			return l.facts(x.Left, false).common(l.facts(x.Right, false))
		case "||", "or":
			if !truth {
				return l.facts(x.Left, false).with(l.facts(x.Right, false))
			}
			return l.facts(x.Left, true).common(l.facts(x.Right, true))
		case "==", "!=":
			equal := (x.Operator == "==") == truth
			for _, s := range [2][2]ast.Node{{x.Left, x.Right}, {x.Right, x.Left}} {
				v, other := s[0], s[1]
				switch other.(type) {
				case *ast.NilNode:
					if !equal {
						l.nonNil(&g, v)
						if b, ok := v.(*ast.BuiltinNode); ok && (b.Name == "first" || b.Name == "last") && len(b.Arguments) == 1 {
							g.addMinLen(l.key(b.Arguments[0]), 1)
						}
					}
				case *ast.StringNode, *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
					if equal {
						l.nonNil(&g, v)
						g.addChecked(l.key(v))
					}
				}
			}
			l.lenFact(&g, x, truth)
		case "<", ">", "<=", ">=":
			if truth {
				l.nonNil(&g, x.Left)
				l.nonNil(&g, x.Right)
			}
			l.lenFact(&g, x, truth)
		case "matches":
			if truth {
				l.nonNil(&g, x.Left)
				g.addChecked(l.key(x.Left))
			}
		case "startsWith", "endsWith", "contains":
			if truth {
				l.nonNil(&g, x.Left)
				l.nonNil(&g, x.Right)
			}
		case "in":
			if arr, ok := x.Right.(*ast.ArrayNode); ok && truth && constantList(arr) {
				l.nonNil(&g, x.Left)
				g.addChecked(l.key(x.Left))
			}
		}
	case *ast.BuiltinNode:
		if (x.Name == "hasPrefix" || x.Name == "hasSuffix") && truth && len(x.Arguments) == 2 {
			l.nonNil(&g, x.Arguments[0])
			l.nonNil(&g, x.Arguments[1])
		}
	case *ast.IdentifierNode, *ast.MemberNode, *ast.ChainNode:
		if truth { // a bool value that is true is not nil
			l.nonNil(&g, x)
		}
	}
	return g
}

// nonNil records that n, and so every value it is read from, is not nil.
func (l *linter) nonNil(g *guards, n ast.Node) {
	for n != nil {
		if k := l.key(n); k != "" {
			g.addNonNil(k)
		}
		switch x := n.(type) {
		case *ast.ChainNode:
			n = x.Node
		case *ast.MemberNode:
			n = x.Node
		default:
			return
		}
	}
}

// lenFact records the least length of X that a comparison of len(X) with
// an integer constant guarantees when it is truth.
func (l *linter) lenFact(g *guards, b *ast.BinaryNode, truth bool) {
	op := b.Operator
	lenCall, other := b.Left, b.Right
	if !isLen(lenCall) {
		lenCall, other = b.Right, b.Left
		op = map[string]string{"<": ">", ">": "<", "<=": ">=", ">=": "<=", "==": "==", "!=": "!="}[op]
	}
	n, ok := intConst(other)
	if !isLen(lenCall) || !ok {
		return
	}
	if !truth {
		op = map[string]string{"<": ">=", ">": "<=", "<=": ">", ">=": "<", "==": "!=", "!=": "=="}[op]
	}
	var least int
	switch op {
	case ">":
		least = n + 1
	case ">=", "==":
		least = n
	case "!=":
		if n == 0 {
			least = 1
		}
	}
	if least > 0 {
		arg := lenCall.(*ast.BuiltinNode).Arguments[0]
		g.addMinLen(l.key(arg), least)
		l.nonNil(g, arg)
	}
}

func isLen(n ast.Node) bool {
	b, ok := n.(*ast.BuiltinNode)
	return ok && b.Name == "len" && len(b.Arguments) == 1
}

func constantList(a *ast.ArrayNode) bool {
	for _, e := range a.Nodes {
		switch e.(type) {
		case *ast.StringNode, *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
		default:
			return false
		}
	}
	return true
}

// resolve follows let variables to the value they are bound to.
func (l *linter) resolve(n ast.Node) ast.Node {
	for range 100 { // let chains are short; the bound stops a cycle
		id, ok := n.(*ast.IdentifierNode)
		if !ok {
			return n
		}
		v, ok := l.aliases[id.Value]
		if !ok {
			return n
		}
		n = v
	}
	return n
}

// nilable reports whether n may be nil at run time under g, and when.
func (l *linter) nilable(n ast.Node, g guards) (bool, string) {
	if k := l.key(n); k != "" && g.nonNil[k] {
		return false, ""
	}
	switch x := n.(type) {
	case *ast.IdentifierNode:
		if r := l.resolve(x); r != ast.Node(x) {
			return l.nilable(r, g)
		}
		switch x.Value {
		case "seller":
			return true, "the offer's seller is unknown"
		case "rating":
			return true, "the offer's seller has no rating"
		}
	case *ast.ChainNode:
		return l.nilableChain(x.Node, g)
	case *ast.MemberNode:
		return l.nilableMember(x)
	case *ast.BuiltinNode:
		switch x.Name {
		case "first", "last":
			if len(x.Arguments) == 1 && g.minLen[l.key(x.Arguments[0])] > 0 {
				return false, ""
			}
			return true, "the list is empty"
		case "find", "findLast":
			return true, "no element matches"
		}
	case *ast.BinaryNode:
		if x.Operator == "??" {
			return l.nilable(x.Right, g)
		}
	case *ast.ConditionalNode:
		if ok, why := l.nilable(x.Exp1, g.with(l.facts(x.Cond, true))); ok {
			return ok, why
		}
		return l.nilable(x.Exp2, g.with(l.facts(x.Cond, false)))
	}
	return false, ""
}

// nilableChain: in an optional chain, a nil before any `?.` makes the
// whole chain nil.
func (l *linter) nilableChain(n ast.Node, g guards) (bool, string) {
	if k := l.key(n); k != "" && g.nonNil[k] {
		return false, ""
	}
	m, ok := n.(*ast.MemberNode)
	if !ok {
		return l.nilable(n, g)
	}
	if ok, why := l.nilableMember(m); ok {
		return ok, why
	}
	return l.nilableChain(m.Node, g)
}

// nilableMember reports whether a field or element read may be nil
// because of its type: an optional field (a pointer) or an attribute.
func (l *linter) nilableMember(m *ast.MemberNode) (bool, string) {
	if l.isAttribute(m) {
		return true, "the offer has no such attribute"
	}
	if t := m.Type(); t != nil && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Interface) {
		return true, "it is not set"
	}
	return false, ""
}

// isAttribute reports whether n reads one of offer.attributes (a string,
// or nil when the offer lacks the key).
func (l *linter) isAttribute(n ast.Node) bool {
	if c, ok := n.(*ast.ChainNode); ok {
		n = c.Node
	}
	m, ok := l.resolve(n).(*ast.MemberNode)
	if !ok || m.Method {
		return false
	}
	base, ok := l.resolve(m.Node).(*ast.MemberNode)
	if !ok {
		if c, isChain := m.Node.(*ast.ChainNode); isChain {
			base, ok = c.Node.(*ast.MemberNode)
		}
	}
	if !ok {
		return false
	}
	id, ok := l.resolve(base.Node).(*ast.IdentifierNode)
	prop, isStr := base.Property.(*ast.StringNode)
	return ok && id.Value == "offer" && isStr && prop.Value == "attributes"
}

// nilFails are the builtins that fail on a nil argument.
var nilFails = map[string]bool{
	"trim": true, "trimPrefix": true, "trimSuffix": true, "upper": true, "lower": true,
	"split": true, "splitAfter": true, "replace": true, "indexOf": true, "lastIndexOf": true,
	"hasPrefix": true, "hasSuffix": true, "len": true, "abs": true, "ceil": true, "floor": true,
	"round": true, "max": true, "min": true, "int": true, "float": true, "duration": true,
	"date": true, "timezone": true,
}

// parses are the builtins that parse a string: what they need it to be,
// and a check that makes sure it is.
var parses = map[string]struct{ need, check string }{
	"int":      {`a whole number ("6.1" and "M" are not)`, `matches "^-?[0-9]+$"`},
	"float":    {"a number", `matches "^-?[0-9]+([.][0-9]+)?$"`},
	"duration": {`a duration like "24h"`, `matches "^[0-9]+(h|m|s)$"`},
	"date":     {"a date", `in ["2025-01-01", ...]`},
	"timezone": {"a time zone name", `in ["Europe/Warsaw", ...]`},
}

var arithmetic = map[string]bool{"+": true, "-": true, "*": true, "/": true, "%": true, "**": true, "^": true}

var ordering = map[string]bool{"<": true, ">": true, "<=": true, ">=": true}

func (l *linter) check(n ast.Node, g guards) {
	switch x := n.(type) {
	case *ast.MemberNode:
		l.checkMember(x, g)
	case *ast.BuiltinNode:
		l.checkBuiltin(x, g)
	case *ast.BinaryNode:
		l.checkBinary(x, g)
	case *ast.UnaryNode:
		switch x.Operator {
		case "!", "not":
			l.boolOperand(x.Node, "!", g)
		case "-", "+":
			l.nilOperand(x.Node, x, "unary "+x.Operator, g)
		}
	case *ast.ConditionalNode:
		l.boolOperand(x.Cond, "a condition", g)
	case *ast.CallNode:
		for _, a := range x.Arguments {
			l.nilOperand(a, x, "the call of "+x.Callee.String(), g)
		}
	}
}

// checkMember: a field of seller or rating read without `?.`, and a
// constant index into a list.
func (l *linter) checkMember(m *ast.MemberNode, g guards) {
	if !m.Optional && !m.Method {
		if id, ok := l.resolve(m.Node).(*ast.IdentifierNode); ok && (id.Value == "seller" || id.Value == "rating") && !g.nonNil[l.key(m.Node)] {
			opt := *m
			opt.Optional = true
			fix := "write " + opt.String()
			if t := m.Type(); t != nil && kindOf(t) == kindNumber {
				fix += " (with ?? 0 where a number is needed)"
			}
			l.warn(m.Node, "%s fails when %s is nil (%s); %s; %s, or check %s != nil first",
				m, id.Value, whyNil(id.Value), l.target.role.consequence(), fix, m.Node)
		}
	}
	idx, ok := intConst(m.Property)
	if !ok || m.Method {
		return
	}
	if t := m.Node.Type(); t == nil || (t.Kind() != reflect.Slice && t.Kind() != reflect.Array) {
		return
	}
	need := idx + 1
	if idx < 0 {
		need = -idx
	}
	list := m.Node.String()
	if g.minLen[l.key(m.Node)] >= need {
		return
	}
	fix := fmt.Sprintf("check len(%s) >= %d first", list, need)
	switch idx {
	case 0:
		fix = fmt.Sprintf("use first(%s) (nil when empty), or %s", list, fix)
	case -1:
		fix = fmt.Sprintf("use last(%s) (nil when empty), or %s", list, fix)
	}
	when := fmt.Sprintf("has fewer than %d elements", need)
	if need == 1 {
		when = "is empty"
	}
	l.warn(m, "%s fails when %s %s; %s; %s", m, list, when, l.target.role.consequence(), fix)
}

func whyNil(v string) string {
	if v == "rating" {
		return "the offer's seller has no rating"
	}
	return "the offer's seller is unknown"
}

func (l *linter) checkBuiltin(b *ast.BuiltinNode, g guards) {
	if len(b.Arguments) == 0 {
		return
	}
	arg := b.Arguments[0]
	if p, ok := parses[b.Name]; ok && isText(arg) && !g.checked[l.key(arg)] {
		missing := ""
		if ok, _ := l.nilable(arg, g); ok {
			missing = "missing or "
		}
		l.warn(b, "%s fails when %s is %snot %s; %s; check it first, e.g. %s %s && %s",
			b, arg, missing, p.need, l.target.role.consequence(), arg, p.check, b)
		return
	}
	if b.Name == "string" {
		if ok, why := l.nilable(arg, g); ok {
			l.warn(b, "%s is \"<nil>\" when %s is nil (%s); write %s ?? \"\"", b, arg, why, arg)
		}
		return
	}
	if !nilFails[b.Name] {
		return
	}
	for _, a := range b.Arguments {
		l.nilOperand(a, b, b.Name+"()", g)
	}
}

// isText reports whether n is a string from the record (not a constant)
// or a value of unknown type: what a conversion may fail to parse.
func isText(n ast.Node) bool {
	if _, ok := n.(*ast.StringNode); ok {
		return false
	}
	t := n.Type()
	if t == nil {
		return false
	}
	switch kindOf(t) {
	case kindString, kindAny:
		return true
	}
	return false
}

func (l *linter) checkBinary(b *ast.BinaryNode, g guards) {
	switch {
	case b.Operator == "&&" || b.Operator == "and" || b.Operator == "||" || b.Operator == "or":
		l.boolOperand(b.Left, b.Operator, g)
		right := g
		if b.Operator == "&&" || b.Operator == "and" {
			right = g.with(l.facts(b.Left, true))
		} else {
			right = g.with(l.facts(b.Left, false))
		}
		l.boolOperand(b.Right, b.Operator, right)
	case arithmetic[b.Operator] || ordering[b.Operator] || b.Operator == "..":
		for _, s := range [2][2]ast.Node{{b.Left, b.Right}, {b.Right, b.Left}} {
			side, other := s[0], s[1]
			if l.isAttribute(side) && (isNumber(other) || arithmetic[b.Operator] && b.Operator != "+") {
				l.warn(b, "%s always fails: attribute values are strings; %s; convert a checked value, e.g. %s matches \"^[0-9]+([.][0-9]+)?$\" && float(%s) %s ...",
					b, l.target.role.consequence(), side, side, b.Operator)
				continue
			}
			l.nilOperand(side, b, b.Operator, g)
		}
		if b.Operator == "%" {
			if n, ok := intConst(b.Right); !ok || n == 0 {
				if isInt(b.Left) && isInt(b.Right) {
					l.warn(b, "%s fails when %s is 0; %s", b, b.Right, l.target.role.consequence())
				}
			}
		}
	}
}

func isNumber(n ast.Node) bool {
	t := n.Type()
	return t != nil && kindOf(t) == kindNumber
}

func isInt(n ast.Node) bool {
	t := n.Type()
	if t == nil {
		return false
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

// nilOperand warns when operand may be nil and op (of node at) fails on
// nil.
func (l *linter) nilOperand(operand, at ast.Node, op string, g guards) {
	ok, why := l.nilable(operand, g)
	if !ok {
		return
	}
	fix := fmt.Sprintf("check %s != nil first", operand)
	if d := defaultFor(operand); d != "" {
		fix = fmt.Sprintf("write (%s ?? %s), or %s", operand, d, fix)
	}
	l.warn(at, "%s is nil when %s, and %s fails on nil; %s; %s", operand, why, op, l.target.role.consequence(), fix)
}

// boolOperand warns when a value that may be nil is used as a bool.
func (l *linter) boolOperand(operand ast.Node, op string, g guards) {
	ok, why := l.nilable(operand, g)
	if !ok {
		return
	}
	if op != "a condition" {
		op = "the operator " + op
	}
	l.warn(operand, "%s is nil when %s, and %s fails on nil; %s; write %s == true",
		operand, why, op, l.target.role.consequence(), operand)
}

// defaultFor suggests a default of n's type for `??` ("" when there is
// no obvious one).
func defaultFor(n ast.Node) string {
	if t := n.Type(); t != nil {
		switch kindOf(t) {
		case kindNumber:
			return "0"
		case kindBool:
			return "false"
		case kindString, kindAny:
			return `""`
		}
	}
	return ""
}
