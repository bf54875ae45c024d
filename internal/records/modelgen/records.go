package main

import (
	"fmt"
	"strings"
)

// genRecords writes the record types of the joined view and their size
// bounds (size.go holds the helpers).
func genRecords(m *resolved) []byte {
	var b buf
	b.WriteString(header)
	b.p("package records")
	b.p(`import "time"`)
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
	return b.Bytes()
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
