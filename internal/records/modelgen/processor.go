package main

import "strings"

// genProcessor writes the names and the hash function of the stored
// per-field hashes, in model.go's order (derived fields and now left out).
func genProcessor(m *resolved) []byte {
	var b buf
	b.WriteString(header)
	b.p("package processor")
	b.p(`import "github.com/feedmill/feedmill/internal/records"`)
	b.p("")
	b.p("// viewFields are the dotted names of the joined view's hashed fields, in")
	b.p("// the order their hashes are stored in state.Membership.FieldHashes")
	b.p("// (modelgen's order: append only, reordering would make every stored")
	b.p("// hash compare as changed).")
	b.p("var viewFields = [...]string{")
	for _, h := range m.hashes {
		b.p("\t%q,", h.t.name+"."+h.f.name)
	}
	b.p("}")
	b.p("")
	b.p("const numViewFields = len(viewFields)")
	b.p("")
	var params []string
	for _, t := range m.tables() {
		params = append(params, t.name+" *records."+t.goName)
	}
	b.p("// hashView appends the hash of every view field to dst, in viewFields")
	b.p("// order. An absent joined record hashes its fields as 0, distinct from any")
	b.p("// present value (those have the low bit set).")
	b.p("func (h *fieldHasher) hashView(dst []uint32, %s) []uint32 {", strings.Join(params, ", "))
	for i := 0; i < len(m.hashes); {
		t := m.hashes[i].t
		j := i
		for j < len(m.hashes) && m.hashes[j].t == t {
			j++
		}
		run := m.hashes[i:j]
		var vals, zeros []string
		for _, h := range run {
			v := hashExpr(t.name+"."+h.f.goName, h.f)
			if t != m.root {
				v += "|1"
			}
			vals = append(vals, v)
			zeros = append(zeros, "0")
		}
		if t == m.root {
			b.p("\tdst = append(dst,\n\t\t%s,\n\t)", strings.Join(vals, ",\n\t\t"))
		} else {
			b.p("\tif %s == nil {", t.name)
			b.p("\t\tdst = append(dst, %s)", strings.Join(zeros, ", "))
			b.p("\t} else {")
			b.p("\t\tdst = append(dst,\n\t\t\t%s,\n\t\t)", strings.Join(vals, ",\n\t\t\t"))
			b.p("\t}")
		}
		i = j
	}
	b.p("\treturn dst")
	b.p("}")
	return b.Bytes()
}

func hashExpr(x string, f *field) string {
	switch f.kind {
	case kString, kEnum:
		return "h.str(" + x + ")"
	case kOptString:
		return "h.optStr(" + x + ")"
	case kInt, kLong:
		if f.goType == "int64" {
			return "h.i64(" + x + ")"
		}
		return "h.i64(int64(" + x + "))"
	case kDouble:
		return "h.f64(" + x + ")"
	case kBool:
		return "h.boolean(" + x + ")"
	case kTime:
		return "h.i64(" + x + ".UnixMilli())"
	case kStrings:
		return "h.list(" + x + ")"
	case kStringMap:
		return "h.attrs(" + x + ")"
	}
	panic("modelgen: no hash for kind") // unreachable: kindOf returns only the kinds above
}
