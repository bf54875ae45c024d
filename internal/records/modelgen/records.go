package main

import (
	"fmt"
	"strings"
)

// genRecords writes the record types of the joined view, their size
// bounds (size.go holds the helpers) and their Avro body encoders
// (encode.go holds the helpers).
func genRecords(m *resolved) []byte {
	var b buf
	b.WriteString(header)
	b.p("package records")
	imports := []string{`"time"`}
	for _, t := range m.tables() {
		for _, f := range t.fields {
			if f.rangeChecked() {
				imports = []string{`"math"`, `"time"`}
			}
		}
	}
	b.p("import (\n%s\n)", strings.Join(imports, "\n"))
	for _, t := range m.tables() {
		b.p("")
		b.comment("", t.doc)
		b.p("type %s struct {", t.goName)
		for _, f := range t.fields {
			avro, expr := f.name, f.name
			if f.derived {
				avro = "-"
			}
			if f.hidden {
				expr = "-"
			}
			decl := fmt.Sprintf("\t%s %s `avro:%q expr:%q`", f.goName, f.goType, avro, expr)
			switch doc := strings.TrimSpace(f.doc); {
			case doc == "":
				b.p("%s", decl)
			case !strings.Contains(doc, "\n"):
				b.p("%s // %s", decl, doc)
			default:
				b.p("")
				b.comment("\t", doc)
				b.p("%s", decl)
			}
		}
		b.p("}")
	}
	for _, t := range m.tables() {
		genSizeMax(&b, t)
	}
	for _, t := range m.tables() {
		genEncoder(&b, t)
	}
	return b.Bytes()
}

// rangeChecked says the field is an Avro int held in a Go type wider than
// 32 bits: its encoder checks the range.
func (f *field) rangeChecked() bool {
	return !f.derived && f.kind == kInt && f.goType != "int32"
}

// genEncoder writes appendX, the Avro binary body of one record in schema
// order (derived fields are not encoded). Its signature follows the
// schema, so that a record that cannot fail does not return an error:
//
//   - a record with a map field takes and returns keys, the caller's
//     scratch for sorting map keys (written in key order, so equal records
//     encode to equal bytes);
//   - a record with an enum field, or an Avro int held in a Go int or
//     int64, returns an error: every check runs before the first byte is
//     written, so on error dst is returned unchanged.
//
// Adding the first map or checked field to a record changes its signature,
// and its callers (state.go, serde.go, appendFeedEvent) with it.
func genEncoder(b *buf, t *rtable) {
	hasMap, canFail := false, false
	for _, f := range t.fields {
		switch {
		case f.derived:
		case f.kind == kStringMap:
			hasMap = true
		case f.kind == kEnum, f.rangeChecked():
			canFail = true
		}
	}
	fail, ok := "return dst, err", "return dst"
	params, results := "dst []byte, v *"+t.goName, "[]byte"
	if hasMap {
		params += ", keys []string"
		results = "[]byte, []string"
		fail, ok = "return dst, keys, err", "return dst, keys"
	}
	if canFail {
		results += ", error"
		ok += ", nil"
	}
	if strings.Contains(results, ",") {
		results = "(" + results + ")"
	}
	b.p("")
	b.p("// append%s appends the Avro body of v (%s) to dst.", t.goName, t.schema)
	switch {
	case hasMap && canFail:
		b.p("// keys is scratch for sorting map keys and is returned for reuse. On")
		b.p("// error (an enum value that is not a symbol, an int out of range) dst is")
		b.p("// returned unchanged.")
	case hasMap:
		b.p("// keys is scratch for sorting map keys and is returned for reuse.")
	case canFail:
		b.p("// On error (an enum value that is not a symbol, an int out of range) dst")
		b.p("// is returned unchanged.")
	}
	b.p("func append%s(%s) %s {", t.goName, params, results)
	for _, f := range t.fields {
		switch {
		case f.derived:
		case f.kind == kEnum:
			syms := make([]string, len(f.symbols))
			for i, s := range f.symbols {
				syms[i] = fmt.Sprintf("%q", s)
			}
			b.p("\t%sIdx, err := enumIndex(%q, v.%s, %s)", lower(f.goName), f.name, f.goName, strings.Join(syms, ", "))
			b.p("\tif err != nil {\n\t\t%s\n\t}", fail)
		case f.rangeChecked():
			b.p("\tif v.%s < math.MinInt32 || v.%s > math.MaxInt32 {", f.goName, f.goName)
			b.p("\t\t%s", strings.Replace(fail, "err", fmt.Sprintf("&intRangeError{field: %q}", f.name), 1))
			b.p("\t}")
		}
	}
	for _, f := range t.fields {
		if f.derived {
			continue
		}
		x := "v." + f.goName
		switch f.kind {
		case kString:
			b.p("\tdst = appendString(dst, %s)", x)
		case kOptString:
			b.p("\tdst = appendOptString(dst, %s)", x)
		case kEnum:
			b.p("\tdst = appendLong(dst, %sIdx)", lower(f.goName))
		case kInt, kLong:
			if f.goType != "int64" {
				x = "int64(" + x + ")"
			}
			b.p("\tdst = appendLong(dst, %s)", x)
		case kDouble:
			b.p("\tdst = appendDouble(dst, %s)", x)
		case kBool:
			b.p("\tdst = appendBool(dst, %s)", x)
		case kTime:
			b.p("\tdst = appendMillis(dst, %s)", x)
		case kStrings:
			b.p("\tdst = appendStrings(dst, %s)", x)
		case kStringMap:
			b.p("\tdst, keys = appendStringMap(dst, %s, keys)", x)
		}
	}
	b.p("\t%s", ok)
	b.p("}")
}

// genSizeMax writes XSizeMax: the fixed part as one sum, then a loop per
// list and map.
func genSizeMax(b *buf, t *rtable) {
	var terms, loops []string
	varints, doubles := 0, 0
	for _, f := range t.fields {
		if f.derived {
			continue
		}
		x := "v." + f.goName
		switch f.kind {
		case kString:
			terms = append(terms, "strMax("+x+")")
		case kOptString:
			terms = append(terms, "optStrMax("+x+")")
		case kEnum, kInt, kLong, kBool, kTime:
			varints++
		case kDouble:
			doubles++
		case kStrings:
			loops = append(loops, fmt.Sprintf("n += blockFrame\n\tfor _, s := range %s {\n\t\tn += strMax(s)\n\t}", x))
		case kStringMap:
			loops = append(loops, fmt.Sprintf("n += blockFrame\n\tfor k, s := range %s {\n\t\tn += strMax(k) + strMax(s)\n\t}", x))
		}
	}
	if varints > 0 {
		terms = append(terms, fmt.Sprintf("%d*varintMax", varints))
	}
	if doubles > 0 {
		terms = append(terms, fmt.Sprintf("%d*8", doubles))
	}
	if len(terms) == 0 {
		terms = []string{"0"}
	}
	b.p("")
	b.p("// %sSizeMax bounds the Avro encoding of v (see size.go).", t.goName)
	b.p("func %sSizeMax(v *%s) int {", t.goName, t.goName)
	if len(loops) == 0 {
		b.p("\treturn %s", strings.Join(terms, " +\n\t\t"))
		b.p("}")
		return
	}
	b.p("\tn := %s", strings.Join(terms, " +\n\t\t"))
	for _, l := range loops {
		b.p("\t%s", l)
	}
	b.p("\treturn n")
	b.p("}")
}
