package feeds

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/parser/lexer"
)

// Explanation says why an offer is or is not in a feed (Evaluator.Explain).
// Its errors are the expr run-time errors of the offer's evaluation.
type Explanation struct {
	// FeedID is the feed explained.
	FeedID string
	// Filter is the feed's filter as written in the config.
	Filter string
	// Match is what Evaluator.Match decides for the feed: whether its
	// filter holds. A filter failing at run time is false.
	Match bool
	// Err is the filter's run-time failure (Match is then false).
	Err error
	// Root is the filter broken into clauses: a group for a top-level
	// &&, || or !, else the whole filter as one leaf. Root.Holds()
	// equals Match.
	Root Clause
	// FirstFailing, when Match is false, is the clause that made the
	// filter false or fail: the first false (or failing) clause of a
	// top-level && chain, or the filter itself when it is one leaf. Nil
	// when Match is true or the filter's top is || or ! (Root then shows
	// every alternative). It points into Root.
	FirstFailing *Clause
	// Item is the feed's item rendered for the offer (AppendItem) when
	// Match is true.
	Item []byte
	// RenderErr is the last failure of a custom template value while
	// rendering Item (that element was omitted).
	RenderErr error
	// Group is the offer's key and value in a grouped feed
	// (Evaluator.Group), computed whether or not the filter holds; nil
	// for a feed without a group.
	Group *GroupExplanation
}

// GroupExplanation is an offer's place in a grouped feed, as
// Evaluator.Group computes it.
type GroupExplanation struct {
	// InGroup is false when the offer is in no group: group.by or
	// group.of gave nil, or failed (Err).
	InGroup bool
	Key     string
	Value   GroupValue
	PickMax bool
	Err     error
}

// Clause is one part of a filter: a leaf, an expression evaluated on its
// own, or a group of clauses joined by one operator.
type Clause struct {
	// Op is "&&", "||" or "!" for a group ("and", "or" and "not" are
	// written as their symbols); "" for a leaf.
	Op string
	// Source is the clause's text as written in the filter, without the
	// parentheses around it.
	Source string
	// Value is the clause's value for the offer; false when Err is set
	// or Nil.
	Value bool
	// Nil says the clause gave nil (a leaf such as offer.attributes["x"],
	// or a chain whose last operand did): false at the top of the filter,
	// a failure as the operand of ! or before another operand of && or
	// ||.
	Nil bool
	// Err is the clause's run-time failure: a leaf's own (a value that
	// is not a boolean included), or for a group the first failure its
	// evaluation reaches.
	Err error
	// Skipped says the filter does not reach the clause for this offer:
	// an earlier clause of its && chain was false (or of its || chain
	// true), or failed. Value and Err are still the clause's own,
	// evaluated alone.
	Skipped bool
	// Clauses are a group's operands in order (one for !). A chain
	// such as a && b && c is one group of three.
	Clauses []Clause
}

// Holds reports whether the clause is true: Value, neither Nil nor Err.
func (c *Clause) Holds() bool { return c.Err == nil && !c.Nil && c.Value }

// ErrForeignFeed is returned by Explain for a feed that is not of the
// Evaluator's Set.
var ErrForeignFeed = errors.New("feed is not of the evaluator's feed set")

// Explain evaluates feed f's filter for v at now clause by clause and says
// why the offer is or is not in the feed (see Explanation). Match is what
// Evaluator.Match decides; the clauses are parsed from the filter's text
// (expr's parser), each leaf compiled and run on its own with the same
// options as the filter, and combined as expr's VM does (&& and || stop
// at the first false, true or failing operand; an operand that is not a
// boolean fails). When the clauses would not give Match (a budget only
// the whole filter overruns), Root is the whole filter as one leaf.
//
// Explain is not the hot path: it compiles the clauses on every call and
// allocates. Failures are counted as Match, Group and AppendItem count
// them (once each). It returns ErrForeignFeed for a feed of another Set.
// Same concurrency rules as Match.
func (e *Evaluator) Explain(f *Feed, v *View, now time.Time) (Explanation, error) {
	if f == nil || f.Index < 0 || f.Index >= len(e.set.feeds) || e.set.feeds[f.Index] != f {
		return Explanation{}, ErrForeignFeed
	}
	src := f.filter.Source().String()
	x := Explanation{FeedID: f.ID, Filter: src}

	member := make([]bool, len(e.set.feeds))
	e.Match(v, now, member)
	x.Match = member[f.Index]
	// The whole filter's own error (Match keeps only the last one per
	// feed, and only for the feeds it evaluates).
	e.slots.load(e.set.filterUse, v, now)
	out, err := e.runProgram(f.filter)
	if _, ok := out.(bool); err == nil && !ok {
		err = notBool(out) // cannot happen: a filter ends with a cast to bool
	}
	x.Err = err

	x.Root = e.explainClauses(src, v, now)
	if x.Root.Holds() != x.Match {
		// The clauses run alone disagree with the filter (a budget
		// only the whole filter overruns): the filter is one leaf.
		x.Root = Clause{Source: strings.TrimSpace(src), Value: x.Match, Err: x.Err}
	}
	if !x.Match {
		x.FirstFailing = firstFailing(&x.Root)
	}

	if x.Match {
		before := e.errTotal
		x.Item = e.AppendItem(nil, f.Template, v, now)
		if e.errTotal != before {
			x.RenderErr = e.lastRender[f.Template.Index].Err
		}
	}
	if f.Grouped() {
		before := e.errTotal
		key, val, pickMax, ok := e.Group(f, v, now, nil)
		g := &GroupExplanation{InGroup: ok, Key: string(key), Value: val, PickMax: pickMax}
		if e.errTotal != before {
			g.Err = e.lastFilter[f.Index].Err
		}
		x.Group = g
	}
	return x, nil
}

// explainClauses parses src into clauses and evaluates them. When a part
// cannot be split or compiled alone the whole filter is one leaf.
func (e *Evaluator) explainClauses(src string, v *View, now time.Time) Clause {
	runes := []rune(src)
	tree, err := parser.ParseWithConfig(src, newConfig(exprOptions(true)))
	var root Clause
	if err == nil {
		root = splitClauses(tree.Node, runes, span{0, len(runes)})
	} else {
		root = Clause{Source: strings.TrimSpace(src)}
	}
	if !e.evalClause(&root, v, now) {
		root = Clause{Source: strings.TrimSpace(src)}
		e.evalClause(&root, v, now)
	}
	return root
}

// span is a range of runes of the filter's source: [from, to).
type span struct{ from, to int }

// splitClauses breaks node, whose text is s of src, into clauses along
// &&, || and !. Operator nodes are recognised by the token at their
// location (expr locates a binary or unary node at its operator): a node
// expr synthesised (a chained comparison's &&, a `not in`) has another
// token there and stays inside a leaf.
func splitClauses(node ast.Node, src []rune, s span) Clause {
	s = trimSpan(src, s)
	text := string(src[s.from:s.to])
	switch n := node.(type) {
	case *ast.BinaryNode:
		op := symbol(n.Operator)
		if op != "&&" && op != "||" {
			break
		}
		loc := n.Location()
		if !tokenAt(src, s, loc, n.Operator) {
			break
		}
		left := splitClauses(n.Left, src, span{s.from, loc.From})
		right := splitClauses(n.Right, src, span{loc.To, s.to})
		c := Clause{Op: op, Source: text}
		for _, side := range []Clause{left, right} {
			// a && b && c parses as (a && b) && c: one chain. A
			// parenthesised (a && b) && c is the same chain too.
			if side.Op == op {
				c.Clauses = append(c.Clauses, side.Clauses...)
			} else {
				c.Clauses = append(c.Clauses, side)
			}
		}
		return c
	case *ast.UnaryNode:
		op := symbol(n.Operator)
		if op != "!" {
			break
		}
		loc := n.Location()
		if loc.From != s.from || !tokenAt(src, s, loc, n.Operator) {
			break
		}
		return Clause{Op: op, Source: text, Clauses: []Clause{splitClauses(n.Node, src, span{loc.To, s.to})}}
	}
	return Clause{Source: text}
}

// symbol returns the symbol of a boolean operator written as a word.
func symbol(op string) string {
	switch op {
	case "and":
		return "&&"
	case "or":
		return "||"
	case "not":
		return "!"
	}
	return op
}

// tokenAt reports whether loc, inside s, holds the text op.
func tokenAt(src []rune, s span, loc file.Location, op string) bool {
	return loc.From >= s.from && loc.To <= s.to && loc.From < loc.To && string(src[loc.From:loc.To]) == op
}

// trimSpan removes the spaces around s and the parentheses that enclose
// all of it, as often as they do.
func trimSpan(src []rune, s span) span {
	for {
		for s.from < s.to && unicode.IsSpace(src[s.from]) {
			s.from++
		}
		for s.to > s.from && unicode.IsSpace(src[s.to-1]) {
			s.to--
		}
		inner, ok := unwrapParens(src, s)
		if !ok {
			return s
		}
		s = inner
	}
}

// unwrapParens returns what is inside the parentheses around s, when s
// is one parenthesised expression.
func unwrapParens(src []rune, s span) (span, bool) {
	if s.to-s.from < 2 || src[s.from] != '(' || src[s.to-1] != ')' {
		return s, false
	}
	toks, err := lexer.Lex(file.NewSource(string(src[s.from:s.to])))
	if err != nil {
		return s, false
	}
	depth := 0
	for i, t := range toks {
		if t.Kind != lexer.Bracket {
			continue
		}
		switch t.Value {
		case "(":
			depth++
		case ")":
			depth--
			if depth == 0 {
				// The first parenthesis closes here: it encloses all of
				// s when nothing but the end follows.
				if rest := toks[i+1:]; len(rest) == 0 || len(rest) == 1 && rest[0].Kind == lexer.EOF {
					return span{s.from + 1, s.to - 1}, true
				}
				return s, false
			}
		}
	}
	return s, false
}

// evalClause evaluates c and its operands for v at now, marks what expr
// would not reach as Skipped, and reports false when a leaf does not
// compile alone.
func (e *Evaluator) evalClause(c *Clause, v *View, now time.Time) bool {
	if c.Op == "" {
		prog, u, err := (&compiler{bits: newFieldBits()}).program(c.Source, false, limits{})
		if err != nil {
			return false
		}
		e.slots.load(u, v, now)
		out, err := e.runProgram(prog)
		switch b, ok := out.(bool); {
		case err != nil:
		case ok:
			c.Value = b
		case out == nil:
			c.Nil = true
		default:
			err = notBool(out)
		}
		c.Err = err
		return true
	}
	for i := range c.Clauses {
		if !e.evalClause(&c.Clauses[i], v, now) {
			return false
		}
	}
	c.Value, c.Nil, c.Err = false, false, nil
	switch c.Op {
	case "!":
		switch k := &c.Clauses[0]; {
		case k.Err != nil:
			c.Err = k.Err
		case k.Nil:
			c.Err = notBool(nil)
		default:
			c.Value = !k.Value
		}
	default:
		// As expr's VM: && stops at the first false operand, || at the
		// first true one, both at the first failure; an operand before
		// the last must be a boolean, the last one's value is the
		// chain's as it is (nil included).
		stopOn := c.Op == "||"
		stopped := false
		for i := range c.Clauses {
			k := &c.Clauses[i]
			switch {
			case stopped:
				skip(k)
			case k.Err != nil:
				c.Err, stopped = k.Err, true
			case k.Nil && i < len(c.Clauses)-1:
				c.Err, stopped = notBool(nil), true
			case k.Nil:
				c.Value, c.Nil = false, true
			default:
				c.Value = k.Value
				stopped = k.Value == stopOn
			}
		}
	}
	return true
}

// skip marks c and its operands as not reached.
func skip(c *Clause) {
	c.Skipped = true
	for i := range c.Clauses {
		skip(&c.Clauses[i])
	}
}

// firstFailing returns the clause that made root false or fail: the
// first such operand of a top-level && chain, root itself when it is a
// leaf, nil otherwise.
func firstFailing(root *Clause) *Clause {
	switch root.Op {
	case "":
		if !root.Holds() {
			return root
		}
	case "&&":
		for i := range root.Clauses {
			if k := &root.Clauses[i]; !k.Skipped && !k.Holds() {
				return k
			}
		}
	}
	return nil
}

// notBool is the failure of a filter or clause whose value is not a
// boolean.
func notBool(v any) error {
	if v == nil {
		return fmt.Errorf("%w: got nil", errNotBool)
	}
	return fmt.Errorf("%w: got %T", errNotBool, v)
}
