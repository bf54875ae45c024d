package feeds

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
)

// Runaway programs are bounded twice.
//
// At Compile (checkLimits), unless the feed sets `unbounded: true`, a
// program may not nest a loop over record data inside the predicate of
// another loop over record data, build a range whose bounds are not
// integer constants or that has more than maxRangeLen elements, or build
// strings inside the predicate of reduce or map (string `+`, replace,
// join), whose cost grows with every iteration.
//
// At run time every program has a budget per evaluation (one run of a
// filter, an opaque atom or a template value): at most maxEvalSteps loop
// iterations and `let` bindings, at most maxEvalBytes of strings produced
// by them, and memoryBudget units of expr's own memory budget (ranges,
// arrays, maps, sorts). Compile injects a call of the environment's
// hidden $budget function around every loop predicate and `let` value
// (injectBudget), after type checking and optimisation, so the checked
// types and opcodes stay the same and the happy path allocates nothing.
// An evaluation over budget fails with an error wrapping ErrBudget.

const (
	maxRangeLen  = 100     // elements of a constant range, without unbounded
	maxEvalSteps = 10_000  // loop iterations and let bindings per evaluation
	maxEvalBytes = 1 << 20 // bytes of strings produced by them per evaluation
	memoryBudget = 100_000 // expr's memory units (range and array elements) per evaluation
)

// ErrBudget is wrapped by the run-time error of an evaluation that
// exceeded its budget (see Evaluator.LastError).
var ErrBudget = errors.New("evaluation budget exceeded")

// budgetName is the hidden environment field holding the budget function.
// It is not an identifier the parser accepts, so users cannot call it.
const budgetName = "$budget"

// budget counts one evaluation's work. tick is called by injected code
// with the value of every loop predicate and let binding, and returns it
// unchanged.
type budget struct {
	steps, bytes int
}

func (b *budget) tick(v any) any {
	b.steps++
	if s, ok := v.(string); ok {
		b.bytes += len(s)
	}
	if b.steps > maxEvalSteps || b.bytes > maxEvalBytes {
		// expr's VM recovers the panic of a called function and returns it
		// from Run as an error wrapping ErrBudget: this is how a function
		// without an error result fails a program. It never leaves Run.
		panic(ErrBudget)
	}
	return v
}

// isBudgetError reports whether err (from vm.Run) is a budget overrun:
// ours or expr's memory budget.
func isBudgetError(err error) bool {
	if errors.Is(err, ErrBudget) {
		return true
	}
	var fe *file.Error
	return errors.As(err, &fe) && fe.Message == "memory budget exceeded"
}

// closureBuiltins are expr's builtins that run a predicate per element.
var closureBuiltins = map[string]bool{
	"all": true, "any": true, "none": true, "one": true, "filter": true, "map": true,
	"count": true, "sum": true, "find": true, "findIndex": true, "findLast": true,
	"findLastIndex": true, "groupBy": true, "sortBy": true, "reduce": true,
}

// scanBuiltins iterate a whole collection argument (no predicate).
var scanBuiltins = map[string]bool{
	"join": true, "sort": true, "uniq": true, "concat": true, "flatten": true, "reverse": true,
	"keys": true, "values": true, "toPairs": true, "fromPairs": true,
	"sum": true, "mean": true, "median": true, "max": true, "min": true,
}

// limitError is a rule violation at a position of the source.
type limitError struct {
	loc file.Location
	msg string
}

// checkLimits applies the compile-time rules to a checked, not yet
// optimised AST (the optimiser folds constant ranges away). The error
// carries the position of the offending node; hint says how to opt out.
func checkLimits(root *ast.Node, source file.Source, hint string) error {
	c := limitChecker{dataVars: map[string]bool{}}
	// let bindings: a variable is data when its value is; repeat until
	// stable (nested lets are visited inside out).
	for {
		changed := false
		ast.Walk(root, visitFunc(func(node *ast.Node) {
			if d, ok := (*node).(*ast.VariableDeclaratorNode); ok {
				if c.isData(d.Value) && !c.dataVars[d.Name] {
					c.dataVars[d.Name] = true
					changed = true
				}
			}
		}))
		if !changed {
			break
		}
	}
	ast.Walk(root, &c)
	if c.err == nil {
		return nil
	}
	fe := &file.Error{Location: c.err.loc, Message: c.err.msg + "; " + hint}
	return fe.Bind(source)
}

type visitFunc func(*ast.Node)

func (f visitFunc) Visit(n *ast.Node) { f(n) }

type limitChecker struct {
	dataVars map[string]bool
	err      *limitError
}

func (c *limitChecker) fail(n ast.Node, format string, args ...any) {
	if c.err == nil {
		c.err = &limitError{loc: n.Location(), msg: fmt.Sprintf(format, args...)}
	}
}

// isData reports whether n's value may depend on the record (an
// environment variable, a loop element, or a let variable bound to one).
func (c *limitChecker) isData(n ast.Node) bool {
	found := false
	ast.Walk(&n, visitFunc(func(node *ast.Node) {
		switch x := (*node).(type) {
		case *ast.PointerNode:
			found = true
		case *ast.IdentifierNode:
			if isVar, data := c.letVar(x.Value); !isVar || data {
				found = true
			}
		}
	}))
	return found
}

func (c *limitChecker) letVar(name string) (isVar, data bool) {
	d, ok := c.dataVars[name]
	if ok {
		return true, d
	}
	switch name {
	case "offer", "seller", "rating", "now", "$env":
		return false, true
	}
	// A let variable bound to a constant.
	return true, false
}

func (c *limitChecker) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.BinaryNode:
		if n.Operator == ".." {
			c.checkRange(n)
		}
	case *ast.BuiltinNode:
		if !closureBuiltins[n.Name] || len(n.Arguments) < 2 {
			return
		}
		outerData := c.isData(n.Arguments[0])
		for _, arg := range n.Arguments[1:] {
			p, ok := arg.(*ast.PredicateNode)
			if !ok {
				continue
			}
			if outerData {
				c.checkNested(n, p.Node)
			}
			if n.Name == "reduce" || n.Name == "map" {
				c.checkStrings(n, p.Node)
			}
		}
	}
}

func (c *limitChecker) checkRange(n *ast.BinaryNode) {
	lo, lok := intConst(n.Left)
	hi, hok := intConst(n.Right)
	if !lok || !hok {
		c.fail(n, "range %s: bounds must be integer constants (a range is built per record)", n)
		return
	}
	if size := hi - lo + 1; size > maxRangeLen {
		c.fail(n, "range %s has %d elements, more than %d", n, size, maxRangeLen)
	}
}

func intConst(n ast.Node) (int, bool) {
	switch x := n.(type) {
	case *ast.IntegerNode:
		return x.Value, true
	case *ast.UnaryNode:
		if v, ok := intConst(x.Node); ok && x.Operator == "-" {
			return -v, true
		}
	}
	return 0, false
}

// checkNested rejects a loop over data inside the predicate of outer
// (itself a loop over data): its cost is the product of both sizes.
func (c *limitChecker) checkNested(outer *ast.BuiltinNode, pred ast.Node) {
	ast.Walk(&pred, visitFunc(func(node *ast.Node) {
		switch x := (*node).(type) {
		case *ast.BuiltinNode:
			if (closureBuiltins[x.Name] || scanBuiltins[x.Name] && iterable(x.Arguments)) &&
				len(x.Arguments) > 0 && c.isData(x.Arguments[0]) {
				c.fail(x, "nested loop over record data: %s() inside the predicate of %s() costs the product of both sizes; loop once, or over a constant list", x.Name, outer.Name)
			}
		case *ast.BinaryNode:
			if (x.Operator == "in" || x.Operator == "not in") && isSlice(x.Right) && c.isData(x.Right) {
				c.fail(x, "nested loop over record data: %q on a list inside the predicate of %s() costs the product of both sizes; loop once, or compare with a constant list", x.Operator, outer.Name)
			}
		}
	}))
}

// iterable reports whether a scan builtin's first argument is a list or
// map (max and min also take scalars).
func iterable(args []ast.Node) bool {
	return len(args) == 1 && (isSlice(args[0]) || args[0].Type().Kind() == reflect.Map)
}

func isSlice(n ast.Node) bool {
	switch n.Type().Kind() {
	case reflect.Slice, reflect.Array:
		return true
	}
	return false
}

// checkStrings rejects string building in the predicate of reduce or map:
// each iteration allocates a string that can grow with the accumulator.
func (c *limitChecker) checkStrings(outer *ast.BuiltinNode, pred ast.Node) {
	ast.Walk(&pred, visitFunc(func(node *ast.Node) {
		switch x := (*node).(type) {
		case *ast.BinaryNode:
			if x.Operator == "+" && (isString(x) || isString(x.Left) || isString(x.Right)) {
				c.fail(x, "string building inside the predicate of %s(): %s allocates a new string per iteration; build strings outside %s()", outer.Name, x, outer.Name)
			}
		case *ast.BuiltinNode:
			switch x.Name {
			case "replace", "join", "repeat":
				c.fail(x, "string building inside the predicate of %s(): %s() allocates a new string per iteration; build strings outside %s()", outer.Name, x.Name, outer.Name)
			}
		}
	}))
}

func isString(n ast.Node) bool { return n.Type().Kind() == reflect.String }

// injectBudget wraps every loop predicate and let value of a checked,
// optimised AST in a call of the $budget function, keeping its type.
func injectBudget(root *ast.Node) {
	ast.Walk(root, budgetInjector{})
}

type budgetInjector struct{}

func (v budgetInjector) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.BuiltinNode:
		if !closureBuiltins[n.Name] {
			return
		}
		for _, arg := range n.Arguments {
			if p, ok := arg.(*ast.PredicateNode); ok {
				p.Node = budgetCall(p.Node)
			}
		}
		if n.Map != nil { // filter+map fused by the optimiser; ast.Walk skips it
			ast.Walk(&n.Map, v)
			n.Map = budgetCall(n.Map)
		}
	case *ast.VariableDeclaratorNode:
		n.Value = budgetCall(n.Value)
	}
}

var budgetFuncType = reflect.TypeFor[func(any) any]()

func budgetCall(n ast.Node) ast.Node {
	callee := &ast.IdentifierNode{Value: budgetName}
	callee.SetType(budgetFuncType)
	callee.SetLocation(n.Location())
	call := &ast.CallNode{Callee: callee, Arguments: []ast.Node{n}}
	call.SetNature(*n.Nature())
	call.SetLocation(n.Location())
	return call
}
