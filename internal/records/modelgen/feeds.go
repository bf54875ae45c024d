package main

import (
	"fmt"
	"strings"
)

// genFeeds writes the feeds package's view of the model: the expression
// environments (env.go explains the two forms), usage and FieldMask bits
// (fields.go), DiffFields, the engine's field readers (atoms.go) and the
// joined-table list.
func genFeeds(m *resolved) []byte {
	var b buf
	b.WriteString(header)
	b.p("package feeds")
	b.p("import (")
	b.p(`"context"`)
	b.p(`"maps"`)
	b.p(`"slices"`)
	b.p(`"time"`)
	b.p("")
	b.p(`"github.com/feedmill/feedmill/internal/records"`)
	b.p(")")
	tables := m.tables()

	b.p("")
	b.p("// View is the joined state of one %s. %s is non-nil; the joined records", m.root.name, m.root.goName)
	b.p("// (%s) are nil when unknown.", strings.Join(goNames(m.joined), ", "))
	b.p("type View struct {")
	for _, t := range tables {
		b.p("\t%s *records.%s", t.goName, t.goName)
	}
	b.p("}")

	// Environments.
	b.p("")
	b.p("// checkEnv is the environment programs are type-checked against (env.go).")
	b.p("type checkEnv struct {")
	for _, t := range tables {
		b.p("\t%s *%sVars `expr:%q`", t.goName, t.name, t.name)
	}
	b.p("\tNow time.Time `expr:\"now\"`")
	b.p("\t// Budget is called by code Compile injects (limits.go); its name is")
	b.p("\t// not an identifier, so programs cannot name it.")
	b.p("\tBudget func(any) any `expr:\"$budget\"`")
	b.p("}")
	for _, t := range tables {
		b.p("")
		b.p("type %sVars struct {", t.name)
		for _, f := range t.slots {
			typ := f.goType
			if f.kind == kStringMap {
				typ = "map[string]any" // a missing key reads as nil (docs/contract.md, Filters)
			}
			b.p("\t%s %s `expr:%q`", f.goName, typ, f.name)
		}
		b.p("}")
	}
	b.p("")
	b.p("// slotEnv is the environment programs run against (env.go).")
	b.p("type slotEnv struct {")
	for _, t := range tables {
		b.p("\t%s *%sSlots `expr:%q`", t.goName, t.name, t.name)
	}
	b.p("\tNow any `expr:\"now\"`")
	b.p("\tBudget func(any) any `expr:\"$budget\"` // the Evaluator's budget.tick")
	b.p("}")
	for _, t := range tables {
		b.p("")
		b.p("type %sSlots struct {", t.name)
		for _, f := range t.slots {
			b.p("\t%s any `expr:%q`", f.goName, f.name)
		}
		b.p("}")
	}

	// Usage bits.
	for _, t := range tables {
		b.p("")
		b.p("// %s field bits of usage.%s, in %sSlots order.", t.goName, t.name, t.name)
		b.p("const (")
		for i, f := range t.slots {
			if i == 0 {
				b.p("\tu%s%s uint32 = 1 << iota", t.goName, f.goName)
			} else {
				b.p("\tu%s%s", t.goName, f.goName)
			}
		}
		b.p(")")
	}
	b.p("")
	b.p("// usage says which leaves of the environment some program reads; only those")
	b.p("// are boxed per View.")
	b.p("type usage struct {")
	for _, t := range tables {
		b.p("\t%s uint32", t.name)
	}
	b.p("\tnow bool")
	b.p("}")
	b.p("")
	b.p("func (u *usage) add(o usage) {")
	for _, t := range tables {
		b.p("\tu.%s |= o.%s", t.name, t.name)
	}
	b.p("\tu.now = u.now || o.now")
	b.p("}")
	b.p("")
	b.p("func (u usage) empty() bool {")
	var empty []string
	for _, t := range tables {
		empty = append(empty, "u."+t.name+" == 0")
	}
	b.p("\treturn %s && !u.now", strings.Join(empty, " && "))
	b.p("}")
	b.p("")
	b.p("// mask converts a usage to a FieldMask.")
	b.p("func (u usage) mask() FieldMask {")
	var mask []string
	for _, t := range tables {
		for _, r := range runs(t) {
			mask = append(mask, fmt.Sprintf("FieldMask(u.%s>>%d&(1<<%d-1))<<%d", t.name, r.slot, r.n, r.bit))
		}
	}
	b.p("\tm := %s", strings.Join(mask, " |\n\t\t"))
	b.p("\tif u.now {")
	b.p("\t\tm |= FieldNow")
	b.p("\t}")
	b.p("\treturn m")
	b.p("}")

	// Slots.
	b.p("")
	b.p("// slots owns one slotEnv and the storage it points to; load refills it from")
	b.p("// a View. Not safe for concurrent use.")
	b.p("type slots struct {")
	b.p("\tenv slotEnv")
	for _, t := range tables {
		b.p("\t%s %sSlots", t.name, t.name)
	}
	for _, t := range tables {
		for _, f := range t.slots {
			if f.kind == kStringMap {
				b.p("\t%s%s map[string]any // scratch of %s.%s", t.name, f.goName, t.name, f.name)
			}
		}
	}
	b.p("}")
	b.p("")
	b.p("func newSlots() *slots {")
	b.p("\ts := &slots{}")
	for _, t := range tables {
		for _, f := range t.slots {
			if f.kind == kStringMap {
				b.p("\ts.%s%s = make(map[string]any)", t.name, f.goName)
			}
		}
	}
	b.p("\ts.env.%s = &s.%s", m.root.goName, m.root.name)
	b.p("\treturn s")
	b.p("}")
	b.p("")
	b.p("// load boxes the leaves named by u. Leaves not named keep stale values,")
	b.p("// which no program reads.")
	b.p("func (s *slots) load(u usage, v *View, now time.Time) {")
	b.p("\tif u.now {")
	b.p("\t\ts.env.Now = now")
	b.p("\t}")
	b.p("\ts.load%s(u.%s, v.%s)", m.root.goName, m.root.name, m.root.goName)
	for _, t := range m.joined {
		b.p("\tif v.%s == nil {", t.goName)
		b.p("\t\ts.env.%s = nil", t.goName)
		b.p("\t} else {")
		b.p("\t\ts.env.%s = &s.%s", t.goName, t.name)
		b.p("\t\ts.load%s(u.%s, v.%s)", t.goName, t.name, t.goName)
		b.p("\t}")
	}
	b.p("}")
	for _, t := range tables {
		b.p("")
		b.p("func (s *slots) load%s(u uint32, r *records.%s) {", t.goName, t.goName)
		b.p("\tif u == 0 {")
		b.p("\t\treturn")
		b.p("\t}")
		b.p("\td := &s.%s", t.name)
		for _, f := range t.slots {
			b.p("\tif u&u%s%s != 0 {", t.goName, f.goName)
			switch f.kind {
			case kOptString:
				b.p("\t\td.%s = optionalString(r.%s)", f.goName, f.goName)
			case kStringMap:
				sc := "s." + t.name + f.goName
				b.p("\t\tclear(%s)", sc)
				b.p("\t\tfor k, v := range r.%s {", f.goName)
				b.p("\t\t\t%s[k] = v", sc)
				b.p("\t\t}")
				b.p("\t\td.%s = %s", f.goName, sc)
			default:
				b.p("\t\td.%s = r.%s", f.goName, f.goName)
			}
			b.p("\t}")
		}
		b.p("}")
	}

	// FieldMask.
	b.p("")
	b.p("// The FieldMask bits, in modelgen's append-only order.")
	b.p("const (")
	for bit, e := range m.bits {
		name := "FieldNow"
		if e.t != nil {
			name = "Field" + e.t.goName + e.f.goName
		} else {
			b.p("\t// FieldNow is the evaluation time. A filter that reads now is time")
			b.p("\t// dependent: it is affected by every change.")
		}
		if bit == 0 {
			b.p("\t%s FieldMask = 1 << iota", name)
		} else {
			b.p("\t%s", name)
		}
	}
	b.p(")")
	b.p("")
	b.p("const (")
	b.p("\tnumFields = %d", len(m.bits))
	b.p("")
	b.comment("\t", fmt.Sprintf("Fields%s are all leaves of one record;\nFieldsAll is every field.", strings.Join(goNames(tables), ", Fields")))
	for _, t := range tables {
		var rs []string
		for _, r := range runs(t) {
			rs = append(rs, fmt.Sprintf("(1<<%d-1)<<%d", r.n, r.bit))
		}
		b.p("\tFields%s FieldMask = %s", t.goName, strings.Join(rs, " | "))
	}
	b.p("\tFieldsAll FieldMask = 1<<numFields - 1")
	b.p("")
	b.p("\t// fieldsJoined are the leaves of the joined records.")
	var joinedMasks []string
	for _, t := range m.joined {
		joinedMasks = append(joinedMasks, "Fields"+t.goName)
	}
	if len(joinedMasks) == 0 {
		joinedMasks = []string{"0"}
	}
	b.p("\tfieldsJoined = %s", strings.Join(joinedMasks, " | "))
	b.p("")
	b.p("\t// nullableFields read as nil when unset (optional strings).")
	b.p("\tnullableFields = %s", maskOf(tables, func(f *field) bool { return f.kind == kOptString }))
	b.p("\t// goIntFields have Go type int: expr's int-set lookup matches them as is.")
	b.p("\tgoIntFields = %s", maskOf(tables, func(f *field) bool { return f.goType == "int" }))
	b.p(")")
	b.p("")
	b.p("// fieldName returns the dotted name of a bit.")
	b.p("func fieldName(bit int) string {")
	b.p("\tnames := [numFields]string{")
	for _, e := range m.bits {
		if e.t == nil {
			b.p("\t\t\"now\",")
		} else {
			b.p("\t\t%q,", e.t.name+"."+e.f.name)
		}
	}
	b.p("\t}")
	b.p("\treturn names[bit]")
	b.p("}")

	// DiffFields.
	b.p("")
	b.p("// DiffFields returns the fields whose values differ between old and new")
	b.p("// (both may be nil: a missing view has no records). A record that appears")
	b.p("// or disappears changes all its fields. FieldNow is never set. It")
	b.p("// allocates nothing.")
	b.p("func DiffFields(old, new *View) FieldMask {")
	var olds, news, diffs []string
	for _, t := range tables {
		b.p("\tvar o%s, n%s *records.%s", t.goName, t.goName, t.goName)
		olds = append(olds, "o"+t.goName)
		news = append(news, "n"+t.goName)
		diffs = append(diffs, fmt.Sprintf("diff%s(o%s, n%s)", t.goName, t.goName, t.goName))
	}
	b.p("\tif old != nil {")
	b.p("\t\t%s = %s", strings.Join(olds, ", "), viewFieldsOf("old", tables))
	b.p("\t}")
	b.p("\tif new != nil {")
	b.p("\t\t%s = %s", strings.Join(news, ", "), viewFieldsOf("new", tables))
	b.p("\t}")
	b.p("\treturn %s", strings.Join(diffs, " | "))
	b.p("}")
	for _, t := range tables {
		b.p("")
		b.p("func diff%s(a, b *records.%s) FieldMask {", t.goName, t.goName)
		b.p("\tif a == nil || b == nil {")
		b.p("\t\tif a == b {")
		b.p("\t\t\treturn 0")
		b.p("\t\t}")
		b.p("\t\treturn Fields%s", t.goName)
		b.p("\t}")
		b.p("\tvar m FieldMask")
		for _, f := range t.slots {
			x, y := "a."+f.goName, "b."+f.goName
			var differs string
			switch f.kind {
			case kOptString:
				differs = "!equalOptional(" + x + ", " + y + ")"
			case kTime:
				differs = "!" + x + ".Equal(" + y + ")"
			case kStrings:
				differs = "!slices.Equal(" + x + ", " + y + ")"
			case kStringMap:
				differs = "!maps.Equal(" + x + ", " + y + ")"
			default:
				differs = x + " != " + y
			}
			b.p("\tif %s {", differs)
			b.p("\t\tm |= Field%s%s", t.goName, f.goName)
			b.p("\t}")
		}
		b.p("\treturn m")
		b.p("}")
	}

	// Readers of the matching engine.
	b.p("")
	b.p("// fieldKind is the kind of a scalar field; kErr for the non-scalar ones")
	b.p("// (lists, maps, timestamps) and now, which operands never read.")
	b.p("func fieldKind(f field) vkind {")
	b.p("\tswitch FieldMask(1) << f {")
	for _, c := range []struct {
		kind string
		is   func(*field) bool
	}{
		{"kInt", func(f *field) bool { return f.kind == kInt || f.kind == kLong }},
		{"kFloat", func(f *field) bool { return f.kind == kDouble }},
		{"kBool", func(f *field) bool { return f.kind == kBool }},
		{"kErr", func(f *field) bool { return f.kind == kTime || f.kind == kStrings || f.kind == kStringMap }},
	} {
		var names []string
		for _, t := range tables {
			for _, f := range t.slots {
				if c.is(f) {
					names = append(names, "Field"+t.goName+f.goName)
				}
			}
		}
		if c.kind == "kErr" {
			names = append(names, "FieldNow")
		}
		if len(names) == 0 {
			continue
		}
		b.p("\tcase %s:", strings.Join(names, ",\n\t\t"))
		b.p("\t\treturn %s", c.kind)
	}
	b.p("\t}")
	b.p("\treturn kString")
	b.p("}")
	b.p("")
	b.p("// readJoined reads the joined field m of v: an error, or nil when optional,")
	b.p("// if its record is absent.")
	b.p("func readJoined(m FieldMask, v *View, optional bool) scalar {")
	b.p("\tswitch {")
	for _, t := range m.joined {
		b.p("\tcase m&Fields%s != 0:", t.goName)
		b.p("\t\tif v.%s == nil {", t.goName)
		b.p("\t\t\treturn absent(optional)")
		b.p("\t\t}")
		b.p("\t\treturn read%s(m, v.%s)", t.goName, t.goName)
	}
	b.p("\t}")
	b.p("\treturn scalar{k: kErr}")
	b.p("}")
	for _, t := range tables {
		b.p("")
		b.p("func read%s(m FieldMask, r *records.%s) scalar {", t.goName, t.goName)
		b.p("\tswitch m {")
		for _, f := range t.slots {
			x := "r." + f.goName
			var v string
			switch f.kind {
			case kString, kEnum:
				v = "scalar{k: kString, s: " + x + "}"
			case kOptString:
				v = "optString(" + x + ")"
			case kInt, kLong:
				if f.goType != "int64" {
					x = "int64(" + x + ")"
				}
				v = "scalar{k: kInt, i: " + x + "}"
			case kDouble:
				v = "scalar{k: kFloat, f: " + x + "}"
			case kBool:
				v = "scalar{k: kBool, b: " + x + "}"
			default:
				continue
			}
			b.p("\tcase Field%s%s:", t.goName, f.goName)
			b.p("\t\treturn %s", v)
		}
		b.p("\t}")
		b.p("\treturn scalar{k: kErr}")
		b.p("}")
	}

	genJoined(&b, m)
	return b.Bytes()
}

func genJoined(b *buf, m *resolved) {
	b.p("")
	b.p("// Joined is one joined table input of the view: a table of records, each")
	b.p("// keyed by its own key field, joined to the %s whose join field holds that", m.root.name)
	b.p("// key. The joined tables are Joined(0) to Joined(NumJoined-1), in View and")
	b.p("// FieldMask order:")
	b.p("//")
	for _, t := range m.joined {
		b.p("//   - %s: records.%s keyed by %s.%s, joined by %s.%s", t.name, t.goName, t.name, t.key.name, m.root.name, t.joinOn.name)
	}
	b.p("//")
	b.p("// Its methods act on j's slot of a View (View.%s, ...), so one code path", m.joined[0].goName)
	b.p("// can apply any table. They are safe for concurrent use on distinct Views;")
	b.p("// the ones that read a record need it present (Present).")
	b.p("type Joined uint8")
	b.p("")
	b.p("const (")
	for i, t := range m.joined {
		b.p("\t// Joined%s is the %s table: records.%s keyed by %s.%s.", t.goName, t.name, t.goName, t.name, t.key.name)
		if i == 0 {
			b.p("\tJoined%s Joined = iota", t.goName)
		} else {
			b.p("\tJoined%s", t.goName)
		}
	}
	b.p(")")
	b.p("")
	b.p("// NumJoined is the number of joined tables.")
	b.p("const NumJoined = %d", len(m.joined))
	sw := func(sig, doc string, body func(t *rtable), fallback string) {
		b.p("")
		b.comment("", doc)
		b.p("func (j Joined) %s {", sig)
		b.p("\tswitch j {")
		for _, t := range m.joined {
			b.p("\tcase Joined%s:", t.goName)
			body(t)
		}
		b.p("\t}")
		if fallback != "" {
			b.p("\t%s", fallback)
		}
		b.p("}")
	}
	sw("String() string", "String returns the table's expr name (the prefix of its dotted field\nnames).",
		func(t *rtable) { b.p("\t\treturn %q", t.name) }, `return "unknown"`)
	sw("Kind() records.Kind", "Kind returns the record kind of the table's values.",
		func(t *rtable) { b.p("\t\treturn records.Kind%s", t.goName) }, "return records.Kind(255)")
	sw("Fields() FieldMask", "Fields returns every field bit of the table.",
		func(t *rtable) { b.p("\t\treturn Fields%s", t.goName) }, "return 0")
	sw("JoinField() FieldMask", "JoinField returns the "+m.root.name+" field that holds the key of the\ntable's record the "+m.root.name+" is joined to.",
		func(t *rtable) { b.p("\t\treturn Field%s%s", m.root.goName, t.joinOn.goName) }, "return 0")
	sw("Present(v *View) bool", "Present reports whether v holds a record of the table.",
		func(t *rtable) { b.p("\t\treturn v.%s != nil", t.goName) }, "return false")
	sw("Copy(dst, src *View)", "Copy sets dst's record of the table to src's (the same pointer, or nil).",
		func(t *rtable) { b.p("\t\tdst.%s = src.%s", t.goName, t.goName) }, "")
	sw("Clear(v *View)", "Clear removes v's record of the table.",
		func(t *rtable) { b.p("\t\tv.%s = nil", t.goName) }, "")
	sw("Decode(ctx context.Context, s *records.Serde, value []byte, v *View) error",
		`Decode decodes a wire-format value into a new record and sets it as v's
record of the table; on error v is unchanged. Errors are those of
records.Serde's DecodeX: a *records.RejectError is the record's fault.`,
		func(t *rtable) {
			b.p("\t\tr := new(records.%s)", t.goName)
			b.p("\t\tif err := s.Decode%s(ctx, value, r); err != nil {", t.goName)
			b.p("\t\t\treturn err")
			b.p("\t\t}")
			b.p("\t\tv.%s = r", t.goName)
			b.p("\t\treturn nil")
		}, `return errUnknownJoined`)
	sw("Unmarshal(s *records.Serde, b []byte, v *View) error",
		`Unmarshal decodes the state encoding b into a new record and sets it as
v's record of the table; on error v is unchanged.`,
		func(t *rtable) {
			b.p("\t\tr := new(records.%s)", t.goName)
			b.p("\t\tif err := s.Unmarshal%s(b, r); err != nil {", t.goName)
			b.p("\t\t\treturn err")
			b.p("\t\t}")
			b.p("\t\tv.%s = r", t.goName)
			b.p("\t\treturn nil")
		}, `return errUnknownJoined`)
	sw("Marshal(s *records.Serde, dst []byte, v *View) ([]byte, error)",
		"Marshal appends the state encoding of v's record of the table to dst.",
		func(t *rtable) { b.p("\t\treturn s.Marshal%s(dst, v.%s)", t.goName, t.goName) }, `return dst, errUnknownJoined`)
	sw("Validate(key []byte, v *View) error",
		"Validate checks v's record of the table against its Kafka key\n(records.ValidateX): nil or a *records.RejectError.",
		func(t *rtable) { b.p("\t\treturn records.Validate%s(key, v.%s)", t.goName, t.goName) }, `return errUnknownJoined`)
	sw("SizeMax(v *View) int", "SizeMax bounds the Avro encoding of v's record of the table.",
		func(t *rtable) { b.p("\t\treturn records.%sSizeMax(v.%s)", t.goName, t.goName) }, "return 0")
	sw("Key(v *View) string", "Key returns the key of v's record of the table.",
		func(t *rtable) { b.p("\t\treturn v.%s.%s", t.goName, t.key.goName) }, `return ""`)
	sw("Version(v *View) int64", "Version returns the source version of v's record of the table.",
		func(t *rtable) { b.p("\t\treturn v.%s.Version", t.goName) }, "return 0")
	sw("Diff(old, new *View) FieldMask",
		`Diff is DiffFields restricted to the table: the fields of its record that
differ between old and new (either may be nil, or lack the record).`,
		func(t *rtable) {
			b.p("\t\tvar a, b *records.%s", t.goName)
			b.p("\t\tif old != nil {")
			b.p("\t\t\ta = old.%s", t.goName)
			b.p("\t\t}")
			b.p("\t\tif new != nil {")
			b.p("\t\t\tb = new.%s", t.goName)
			b.p("\t\t}")
			b.p("\t\treturn diff%s(a, b)", t.goName)
		}, "return 0")
}

func quoteNames(ts []*rtable) string {
	var out []string
	for _, t := range ts {
		out = append(out, t.name)
	}
	return strings.Join(out, ", ")
}

func goNames(ts []*rtable) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.goName)
	}
	return out
}

func viewFieldsOf(v string, ts []*rtable) string {
	var out []string
	for _, t := range ts {
		out = append(out, v+"."+t.goName)
	}
	return strings.Join(out, ", ")
}

func maskOf(ts []*rtable, is func(*field) bool) string {
	var out []string
	for _, t := range ts {
		for _, f := range t.slots {
			if is(f) {
				out = append(out, "Field"+t.goName+f.goName)
			}
		}
	}
	if len(out) == 0 {
		return "FieldMask(0)"
	}
	return strings.Join(out, " | ")
}

// bitRun is a stretch of a table's usage bits that maps to consecutive
// FieldMask bits.
type bitRun struct{ slot, bit, n int }

func runs(t *rtable) []bitRun {
	var out []bitRun
	for i, f := range t.slots {
		if n := len(out); n > 0 && out[n-1].bit+out[n-1].n == f.bit {
			out[n-1].n++
			continue
		}
		out = append(out, bitRun{slot: i, bit: f.bit})
		out[len(out)-1].n = 1
	}
	return out
}
