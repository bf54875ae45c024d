package feeds

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker"
	exprcompiler "github.com/expr-lang/expr/compiler"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/optimizer"
	"github.com/expr-lang/expr/vm"

	"github.com/feedmill/feedmill/config"
)

// Problem is one thing wrong with the feeds or templates given to Compile.
// Path names the config element, e.g. `feeds[2] (phones-gmc).filter`.
type Problem struct {
	Path    string
	Message string
}

// CompileError lists every problem Compile found, in config order.
type CompileError struct {
	Problems []Problem
}

// Error prints one problem per line as "path: message".
func (e *CompileError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.Path)
		b.WriteString(": ")
		b.WriteString(p.Message)
	}
	return b.String()
}

// Set is a compiled feed set. It is immutable after Compile and safe for
// concurrent use; evaluation state lives in Evaluators (NewEvaluator).
type Set struct {
	feeds     []*Feed
	byID      map[string]*Feed
	templates []*Template
	filterUse usage   // environment leaves read by any filter
	engine    *engine // shared-atom matching structure (engine.go)
}

// Feed is one compiled feed. Index is its position in Set.Feeds and in the
// member slice of Evaluator.Match.
type Feed struct {
	ID           string
	Index        int
	Template     *Template
	Destinations []string
	File         bool

	filter       *vm.Program
	filterFields FieldMask
	group        *grouping
}

// grouping is a grouped feed's second stage (config.Group): the key and
// the value picked per key, compiled.
type grouping struct {
	by, of *vm.Program
	max    bool
	use    usage // what by and of read
}

// Grouped reports whether the feed keeps one offer per key.
func (f *Feed) Grouped() bool { return f.group != nil }

// GroupFields returns the fields a grouped feed's group.by and group.of
// read (FieldNow when they read the time); 0 for a feed without a group.
func (f *Feed) GroupFields() FieldMask {
	if f.group == nil {
		return 0
	}
	return f.group.use.mask()
}

// Feeds returns the feeds in config order; Feed.Index == position. The
// slice is shared: callers must not modify it.
func (s *Set) Feeds() []*Feed { return s.feeds }

// Feed returns the feed with the given id.
func (s *Set) Feed(id string) (*Feed, bool) {
	f, ok := s.byID[id]
	return f, ok
}

// Templates returns the distinct templates used by the feeds, in order of
// first use; Template.Index == position. The slice is shared: callers must
// not modify it.
func (s *Set) Templates() []*Template { return s.templates }

// BuiltinTemplates returns the names of the built-in templates
// (config.BuiltinTemplates, the one list of them).
func BuiltinTemplates() []string {
	return config.BuiltinTemplates()
}

// Compile checks and compiles feeds and templates once. It returns a
// *CompileError listing every problem found (bad ids, unknown templates,
// filters that do not parse, type-check or yield a boolean, bad custom
// template names or values).
func Compile(feeds []config.Feed, templates []config.Template) (*Set, error) {
	c := compiler{bits: newFieldBits()}
	eb := newEngineBuilder(c.bits)
	// A custom template is exempt from the limits (limits.go) when every
	// feed using it sets unbounded.
	unbounded := make(map[string]bool, len(feeds))
	for i := range feeds {
		u, seen := unbounded[feeds[i].Template]
		unbounded[feeds[i].Template] = feeds[i].Unbounded && (u || !seen)
	}
	custom := make(map[string]*Template, len(templates))
	for i := range templates {
		t := c.customTemplate(i, &templates[i], unbounded[templates[i].ID])
		if t == nil {
			continue
		}
		if _, dup := custom[t.ID]; dup {
			c.add(fmt.Sprintf("templates[%d] (%s).id", i, t.ID), fmt.Sprintf("duplicate id %q", t.ID))
			continue
		}
		custom[t.ID] = t
	}

	s := &Set{byID: make(map[string]*Feed, len(feeds))}
	used := make(map[*Template]bool)
	for i := range feeds {
		fc := &feeds[i]
		path := fmt.Sprintf("feeds[%d] (%s)", i, fc.ID)
		f := &Feed{
			ID:           fc.ID,
			Index:        i,
			Destinations: append([]string(nil), fc.Destinations...),
			File:         fc.File,
		}
		switch {
		case fc.ID == "":
			c.add(path+".id", "id is empty")
		case !validFeedID(fc.ID):
			c.add(path+".id", fmt.Sprintf("id %q must match [a-z0-9][a-z0-9-]*", fc.ID))
		case s.byID[fc.ID] != nil:
			c.add(path+".id", fmt.Sprintf("duplicate id %q (also feeds[%d])", fc.ID, s.byID[fc.ID].Index))
		default:
			s.byID[fc.ID] = f
		}

		if t, ok := custom[fc.Template]; ok {
			f.Template = t
		} else if t := c.builtin(fc.Template); t != nil {
			f.Template = t
		} else if fc.Template == "" {
			c.add(path+".template", "template is empty")
		} else {
			c.add(path+".template", fmt.Sprintf("unknown template %q (built-in: %s)", fc.Template, strings.Join(BuiltinTemplates(), ", ")))
		}
		if f.Template != nil && !used[f.Template] {
			used[f.Template] = true
			f.Template.Index = len(s.templates)
			s.templates = append(s.templates, f.Template)
		}

		if strings.TrimSpace(fc.Filter) == "" {
			c.add(path+".filter", "filter is empty")
		} else {
			lim := limits{enforce: !fc.Unbounded, hint: fmt.Sprintf("or set unbounded: true on feed %q", fc.ID)}
			prog, u, err := c.program(fc.Filter, true, lim)
			if err != nil {
				c.add(path+".filter", err.Error())
			} else {
				f.filter = prog
				f.filterFields = u.mask()
				s.filterUse.add(u)
			}
		}
		if f.filter == nil {
			eb.skip()
		} else if err := eb.add(f.filter.Node(), fc.Filter); err != nil {
			c.add(path+".filter", err.Error())
		}
		if fc.Group != nil {
			lim := limits{enforce: !fc.Unbounded, hint: fmt.Sprintf("or set unbounded: true on feed %q", fc.ID)}
			f.group = c.grouping(path+".group", fc.Group, lim)
		}
		s.feeds = append(s.feeds, f)
	}
	if len(c.problems) > 0 {
		return nil, &CompileError{Problems: c.problems}
	}
	s.engine = eb.finish()
	return s, nil
}

// grouping compiles a feed's group; nil after adding its problems.
func (c *compiler) grouping(path string, g *config.Group, lim limits) *grouping {
	out := &grouping{max: g.Pick == config.PickMax}
	ok := true
	if g.Pick != config.PickMin && g.Pick != config.PickMax {
		c.add(path+".pick", fmt.Sprintf("must be %q or %q, got %q", config.PickMin, config.PickMax, g.Pick))
		ok = false
	}
	for _, e := range []struct {
		name, src string
		dst       **vm.Program
		check     func(reflect.Type) string
	}{
		{"by", g.By, &out.by, groupKeyType},
		{"of", g.Of, &out.of, groupValueType},
	} {
		if strings.TrimSpace(e.src) == "" {
			c.add(path+"."+e.name, e.name+" is empty")
			ok = false
			continue
		}
		prog, u, err := c.program(e.src, false, lim)
		if err != nil {
			c.add(path+"."+e.name, err.Error())
			ok = false
			continue
		}
		if u.now {
			// Offers are evaluated at different times: values read
			// against the clock would not compare, and would move at
			// every evaluation.
			c.add(path+"."+e.name, e.name+" must not read now: a group's keys and values are compared across offers evaluated at different times")
			ok = false
			continue
		}
		if t := prog.Node().Type(); t != nil {
			if msg := e.check(t); msg != "" {
				c.add(path+"."+e.name, msg)
				ok = false
				continue
			}
		}
		*e.dst = prog
		out.use.add(u)
	}
	if !ok {
		return nil
	}
	return out
}

// groupKeyType says what is wrong with a group.by of type t ("" if
// nothing): a key is a string, number or bool (nil: no group).
func groupKeyType(t reflect.Type) string {
	switch kindOf(t) {
	case kindAny, kindString, kindBool, kindNumber:
		return ""
	}
	return "a group key must be a string, number or bool, got " + t.String()
}

// groupValueType says what is wrong with a group.of of type t ("" if
// nothing): the picked value is a number or a time.
func groupValueType(t reflect.Type) string {
	switch kindOf(t) {
	case kindAny, kindNumber, kindTime:
		return ""
	}
	return "group.of must give a number or a time, got " + t.String()
}

type compiler struct {
	problems []Problem
	bits     fieldBits
	builtins map[string]*Template
}

func (c *compiler) add(path, msg string) {
	c.problems = append(c.problems, Problem{Path: path, Message: msg})
}

func (c *compiler) builtin(name string) *Template {
	if t, ok := c.builtins[name]; ok {
		return t
	}
	t := newBuiltin(name)
	if t == nil {
		return nil
	}
	if c.builtins == nil {
		c.builtins = make(map[string]*Template)
	}
	c.builtins[name] = t
	return t
}

func (c *compiler) customTemplate(i int, tc *config.Template, unbounded bool) *Template {
	path := fmt.Sprintf("templates[%d] (%s)", i, tc.ID)
	n := len(c.problems)
	switch {
	case tc.ID == "":
		c.add(path+".id", "id is empty")
	case newBuiltin(tc.ID) != nil:
		c.add(path+".id", fmt.Sprintf("id %q is a built-in template name", tc.ID))
	}
	if err := checkXMLName(tc.Root); err != nil {
		c.add(path+".root", err.Error())
	}
	if err := checkXMLName(tc.Item); err != nil {
		c.add(path+".item", err.Error())
	}
	if len(tc.Fields) == 0 {
		c.add(path+".fields", "no fields")
	}
	t := &Template{ID: tc.ID, shell: shellCustom, root: tc.Root}
	t.item = node{name: tc.Item}
	for j, fc := range tc.Fields {
		fpath := fmt.Sprintf("%s.fields[%d] (%s)", path, j, fc.Name)
		if err := checkXMLName(fc.Name); err != nil {
			c.add(fpath+".name", err.Error())
		}
		if strings.TrimSpace(fc.Value) == "" {
			c.add(fpath+".value", "value is empty")
			continue
		}
		lim := limits{enforce: !unbounded, hint: fmt.Sprintf("or set unbounded: true on every feed using template %q", tc.ID)}
		prog, u, err := c.program(fc.Value, false, lim)
		if err != nil {
			c.add(fpath+".value", err.Error())
			continue
		}
		t.use.add(u)
		t.item.children = append(t.item.children, node{name: fc.Name, value: programValue(prog)})
	}
	if len(c.problems) > n {
		return nil
	}
	return t
}

// exprOptions configures every program. Builtins that read the wall clock
// (now(): filters get the evaluation time as `now`) or build unbounded or
// costly values per record (repeat, JSON and base64 codecs) are disabled;
// programs are capped at maxNodes AST nodes; `matches` must have a constant
// pattern (compiled once), see checkProgram. The VM's memory budget
// (expr's default) bounds what ranges and maps may allocate per run.
func exprOptions(boolean bool) []expr.Option {
	opts := []expr.Option{
		expr.Env(checkEnv{}),
		expr.DisableBuiltin("now"),
		expr.DisableBuiltin("repeat"),
		expr.DisableBuiltin("toJSON"),
		expr.DisableBuiltin("fromJSON"),
		expr.DisableBuiltin("toBase64"),
		expr.DisableBuiltin("fromBase64"),
		expr.MaxNodes(maxNodes),
		expr.Patch(nilCheckRewriter{}),
	}
	if boolean {
		opts = append(opts, expr.AsBool())
	}
	return opts
}

const maxNodes = 2000

// program compiles one filter (boolean) or template value and returns the
// environment leaves it reads.
func (c *compiler) program(src string, boolean bool, lim limits) (*vm.Program, usage, error) {
	prog, err := compileExpr(src, exprOptions(boolean), lim)
	if err != nil {
		return nil, usage{}, describeExprError(err)
	}
	root := prog.Node()
	if err := checkProgram(&root, boolean); err != nil {
		return nil, usage{}, err
	}
	return prog, c.bits.usage(&root), nil
}

// limits says whether the compile-time rules of limits.go apply to a
// program and how its author can opt out (appended to the message).
type limits struct {
	enforce bool
	hint    string
}

// compileExpr is expr.Compile with steps added between type checking and
// code generation: an optional chain (`seller?.status`) that may yield
// nil is retyped from its field's type to any (otherwise expr emits a
// string- or int-specialised comparison for `seller?.status == "ACTIVE"`
// that fails at run time when seller is nil, instead of being false);
// the compile-time limits are checked (when lim.enforce); and after
// optimisation the budget calls are injected (limits.go).
func compileExpr(src string, opts []expr.Option, lim limits) (*vm.Program, error) {
	cfg := newConfig(opts)
	tree, err := checker.ParseCheck(src, cfg)
	if err != nil {
		return nil, err
	}
	ast.Walk(&tree.Node, chainRetyper{})
	if lim.enforce {
		if err := checkLimits(&tree.Node, tree.Source, lim.hint); err != nil {
			return nil, err
		}
	}
	if cfg.Optimize {
		if err := optimizer.Optimize(&tree.Node, cfg); err != nil {
			var fe *file.Error
			if errors.As(err, &fe) {
				return nil, fe.Bind(tree.Source)
			}
			return nil, err
		}
	}
	injectBudget(&tree.Node)
	return exprcompiler.Compile(tree, cfg)
}

// newConfig is what expr.Compile makes of opts.
func newConfig(opts []expr.Option) *conf.Config {
	cfg := conf.CreateNew()
	for _, op := range opts {
		op(cfg)
	}
	for name := range cfg.Disabled {
		delete(cfg.Builtins, name)
	}
	cfg.Check()
	return cfg
}

// nilCheckRewriter rewrites `seller == nil` to `seller?.id == nil` (and
// likewise for rating and !=), which means the same: compared directly, expr
// dereferences the pointer and copies the whole struct per run.
type nilCheckRewriter struct{}

func (nilCheckRewriter) Visit(n *ast.Node) {
	b, ok := (*n).(*ast.BinaryNode)
	if !ok || (b.Operator != "==" && b.Operator != "!=") {
		return
	}
	rewrite := func(side *ast.Node, other ast.Node) {
		if _, ok := other.(*ast.NilNode); !ok {
			return
		}
		id, ok := (*side).(*ast.IdentifierNode)
		if !ok {
			return
		}
		var key string
		switch id.Value {
		case "seller":
			key = "id"
		case "rating":
			key = "seller_id"
		default:
			return
		}
		member := &ast.MemberNode{Node: id, Property: &ast.StringNode{Value: key}, Optional: true}
		member.SetLocation(id.Location())
		member.Property.SetLocation(id.Location())
		chain := &ast.ChainNode{Node: member}
		chain.SetLocation(id.Location())
		ast.Patch(side, chain)
	}
	rewrite(&b.Left, b.Right)
	rewrite(&b.Right, b.Left)
}

type chainRetyper struct{}

func (chainRetyper) Visit(n *ast.Node) {
	ch, ok := (*n).(*ast.ChainNode)
	if !ok {
		return
	}
	if t := ch.Type(); t != nil {
		switch t.Kind() {
		case reflect.Pointer, reflect.Interface:
		default:
			ch.SetType(reflect.TypeFor[any]())
		}
	}
}

func describeExprError(err error) error {
	var fe *file.Error
	if errors.As(err, &fe) {
		return fmt.Errorf("line %d, column %d: %s", fe.Line, fe.Column+1, fe.Message)
	}
	if got, ok := strings.CutPrefix(err.Error(), "expected bool, but got "); ok {
		return fmt.Errorf("filter must be boolean, got %s", got)
	}
	return err
}

// checkProgram rejects what the type checker allows but the hot path must
// not do: regular expressions built per record, and template values whose
// type cannot be rendered as text.
func checkProgram(root *ast.Node, boolean bool) error {
	var v programChecker
	ast.Walk(root, &v)
	if v.err != nil {
		return v.err
	}
	if !boolean {
		if t := (*root).Type(); t != nil && !renderableType(t) {
			return fmt.Errorf("value must be a string, number, bool or time, got %s", t)
		}
	}
	return nil
}

type programChecker struct{ err error }

func (p *programChecker) Visit(n *ast.Node) {
	if b, ok := (*n).(*ast.BuiltinNode); ok && b.Map != nil {
		ast.Walk(&b.Map, p) // fused by the optimiser; ast.Walk skips it
	}
	if b, ok := (*n).(*ast.BinaryNode); ok && b.Operator == "matches" && p.err == nil {
		if _, ok := b.Right.(*ast.StringNode); !ok {
			loc := b.Location()
			p.err = fmt.Errorf("column %d: matches needs a constant string pattern", loc.From+1)
		}
	}
}

// valueKind is what an expression's static type says its values are.
type valueKind int

const (
	kindOther valueKind = iota // lists, maps, records: no text form
	kindAny                    // known only at run time
	kindString
	kindBool
	kindNumber
	kindTime
)

// kindOf classifies t (a pointer as what it points to).
func kindOf(t reflect.Type) valueKind {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Interface:
		return kindAny
	case reflect.String:
		return kindString
	case reflect.Bool:
		return kindBool
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return kindNumber
	case reflect.Struct:
		if t == reflect.TypeFor[time.Time]() {
			return kindTime
		}
	}
	return kindOther
}

func renderableType(t reflect.Type) bool { return kindOf(t) != kindOther }

// fieldBits maps expr names to usage bits (the field's index in its slots
// struct).
type fieldBits struct {
	offer, seller, rating map[string]uint32
}

func newFieldBits() fieldBits {
	return fieldBits{
		offer:  tagBits(reflect.TypeFor[offerSlots]()),
		seller: tagBits(reflect.TypeFor[sellerSlots]()),
		rating: tagBits(reflect.TypeFor[ratingSlots]()),
	}
}

func tagBits(t reflect.Type) map[string]uint32 {
	m := make(map[string]uint32, t.NumField())
	for i := range t.NumField() {
		m[t.Field(i).Tag.Get("expr")] = 1 << i
	}
	return m
}

// usage walks a checked AST. `x.field` (x one of offer, seller, rating)
// marks one leaf; `x == nil` / `x != nil` marks none; any other use of x
// (or of $env) marks all of x's leaves.
func (b fieldBits) usage(root *ast.Node) usage {
	w := usageWalker{bits: b, covered: make(map[ast.Node]bool)}
	ast.Walk(root, &w)
	w.second = true
	ast.Walk(root, &w)
	return w.u
}

type usageWalker struct {
	bits    fieldBits
	covered map[ast.Node]bool
	second  bool
	u       usage
}

func (w *usageWalker) slot(name string) (*uint32, map[string]uint32) {
	switch name {
	case "offer":
		return &w.u.offer, w.bits.offer
	case "seller":
		return &w.u.seller, w.bits.seller
	case "rating":
		return &w.u.rating, w.bits.rating
	}
	return nil, nil
}

func (w *usageWalker) Visit(n *ast.Node) {
	if b, ok := (*n).(*ast.BuiltinNode); ok && b.Map != nil {
		ast.Walk(&b.Map, w) // fused by the optimiser; ast.Walk skips it
	}
	if w.second {
		id, ok := (*n).(*ast.IdentifierNode)
		if !ok || w.covered[id] {
			return
		}
		switch id.Value {
		case "now":
			w.u.now = true
		case "$env":
			w.u = usage{offer: allFields, seller: allFields, rating: allFields, now: true}
		default:
			if p, _ := w.slot(id.Value); p != nil {
				*p = allFields
			}
		}
		return
	}
	switch x := (*n).(type) {
	case *ast.MemberNode:
		id, ok := x.Node.(*ast.IdentifierNode)
		if !ok {
			return
		}
		p, bits := w.slot(id.Value)
		prop, ok := x.Property.(*ast.StringNode)
		if p == nil || !ok || x.Method {
			return
		}
		if bit, ok := bits[prop.Value]; ok {
			*p |= bit
			w.covered[id] = true
		}
	case *ast.BinaryNode:
		if x.Operator != "==" && x.Operator != "!=" {
			return
		}
		if _, ok := x.Right.(*ast.NilNode); ok {
			if id, ok := x.Left.(*ast.IdentifierNode); ok {
				w.covered[id] = true
			}
		}
		if _, ok := x.Left.(*ast.NilNode); ok {
			if id, ok := x.Right.(*ast.IdentifierNode); ok {
				w.covered[id] = true
			}
		}
	}
}

func validFeedID(id string) bool {
	for i := 0; i < len(id); i++ {
		ch := id[i]
		switch {
		case ch >= 'a' && ch <= 'z', ch >= '0' && ch <= '9':
		case ch == '-' && i > 0:
		default:
			return false
		}
	}
	return id != ""
}

// checkXMLName accepts a namespace-free XML 1.0 name that does not start
// with the reserved "xml".
func checkXMLName(name string) error {
	if name == "" {
		return errors.New("element name is empty")
	}
	if len(name) >= 3 && strings.EqualFold(name[:3], "xml") {
		return fmt.Errorf("element name %q: names starting with xml are reserved", name)
	}
	for i, r := range name {
		ok := r == '_' || unicode.IsLetter(r)
		if i > 0 {
			ok = ok || r == '-' || r == '.' || unicode.IsDigit(r)
		}
		if !ok || r == utf8.RuneError {
			return fmt.Errorf("element name %q is not a valid XML name (no prefixes)", name)
		}
	}
	return nil
}
