package feeds

import (
	"slices"
	"strconv"
	"time"

	"github.com/expr-lang/expr/vm"
)

// Template is a compiled item format: a built-in (google-merchant,
// meta-catalog, ceneo) or a custom template from config. It is data for the
// one renderer: a document shell plus a tree of nodes whose values come from
// small adapter functions over the View. Immutable; safe for concurrent use.
type Template struct {
	ID string
	// Index is the template's position in Set.Templates.
	Index int
	// Builtin is true for the built-in templates.
	Builtin bool

	shell shell
	root  string // custom templates: document element
	item  node
	use   usage // environment leaves the item's programs read
}

// shell is the document around the items.
type shell uint8

const (
	shellRSS    shell = iota + 1 // RSS 2.0 with the Google g: namespace
	shellCeneo                   // Ceneo <offers><group>
	shellCustom                  // <root> from config
)

const xmlDecl = `<?xml version="1.0" encoding="UTF-8"?>` + "\n"

// AppendHeader appends the XML declaration and everything before the first
// item of feed f's document, generated at now. It does not allocate beyond
// growing dst.
func (t *Template) AppendHeader(dst []byte, f *Feed, now time.Time) []byte {
	dst = append(dst, xmlDecl...)
	switch t.shell {
	case shellRSS:
		dst = append(dst, `<rss version="2.0" xmlns:g="http://base.google.com/ns/1.0"><channel><title>`...)
		dst = appendEscaped(dst, f.ID, 0)
		dst = append(dst, "</title><link>/feeds/"...)
		dst = appendEscaped(dst, f.ID, 0)
		dst = append(dst, ".xml</link><description>feedmill feed "...)
		dst = appendEscaped(dst, f.ID, 0)
		dst = append(dst, "</description><lastBuildDate>"...)
		dst = now.UTC().AppendFormat(dst, time.RFC1123Z)
		dst = append(dst, "</lastBuildDate>\n"...)
	case shellCeneo:
		dst = append(dst, `<offers xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" version="1"><group name="other">`+"\n"...)
	case shellCustom:
		dst = append(dst, '<')
		dst = append(dst, t.root...)
		dst = append(dst, ">\n"...)
	}
	return dst
}

// AppendFooter appends everything after the last item.
func (t *Template) AppendFooter(dst []byte) []byte {
	switch t.shell {
	case shellRSS:
		dst = append(dst, "</channel></rss>\n"...)
	case shellCeneo:
		dst = append(dst, "</group></offers>\n"...)
	case shellCustom:
		dst = append(dst, "</"...)
		dst = append(dst, t.root...)
		dst = append(dst, ">\n"...)
	}
	return dst
}

// node is one element of an item. Exactly one of value and children is set
// (or neither, for an empty element).
type node struct {
	name  string
	attrs []attr
	// value appends the element's raw text; false omits the element.
	value value
	// str, set instead of value, returns the raw text as it is in the
	// View (no copy); false omits the element.
	str strValue
	// cdata writes the text as CDATA instead of escaped text.
	cdata bool
	// maxRunes truncates the text (after removing forbidden characters).
	maxRunes int
	children []node
	// omitEmpty drops a container whose children all were omitted.
	omitEmpty bool
	// each, when set, repeats the node once per list element; value and
	// attrs receive the element index.
	each list
}

type attr struct {
	name  string
	value value
	str   strValue // set instead of value: the raw text as a string
}

// value appends the raw (unescaped) text of one value for list element i
// and reports whether there is one.
type value func(r *renderer, i int, dst []byte) ([]byte, bool)

// strValue returns the raw text of one value for list element i, without
// copying it, and reports whether there is one.
type strValue func(r *renderer, i int) (string, bool)

// list prepares and returns the number of elements of a repeated node.
type list func(r *renderer) int

// renderer is the per-Evaluator state of rendering one item.
type renderer struct {
	v    *View
	now  time.Time
	t    *Template
	e    *Evaluator
	text []byte   // raw text of the current element
	attr []byte   // raw text of the current attribute
	keys []string // sorted attribute keys of the current offer
}

func (r *renderer) render(dst []byte, n *node) []byte {
	if n.each == nil {
		return r.element(dst, n, 0)
	}
	for i, c := 0, n.each(r); i < c; i++ {
		dst = r.element(dst, n, i)
	}
	return dst
}

func (r *renderer) element(dst []byte, n *node, i int) []byte {
	var str string
	switch {
	case n.str != nil:
		var ok bool
		if str, ok = n.str(r, i); !ok {
			return dst
		}
	case n.value != nil:
		var ok bool
		r.text, ok = n.value(r, i, r.text[:0])
		if !ok {
			return dst
		}
	}
	mark := len(dst)
	dst = append(dst, '<')
	dst = append(dst, n.name...)
	wrote := false
	for _, a := range n.attrs {
		var s string
		if a.str != nil {
			var ok bool
			if s, ok = a.str(r, i); !ok {
				continue
			}
		} else {
			var ok bool
			if r.attr, ok = a.value(r, i, r.attr[:0]); !ok {
				continue
			}
		}
		wrote = true
		dst = append(dst, ' ')
		dst = append(dst, a.name...)
		dst = append(dst, `="`...)
		if a.str != nil {
			dst = appendEscaped(dst, s, 0)
		} else {
			dst = appendEscaped(dst, r.attr, 0)
		}
		dst = append(dst, '"')
	}
	switch {
	case n.str != nil:
		dst = append(dst, '>')
		if n.cdata {
			dst = appendCDATA(dst, str, n.maxRunes)
		} else {
			dst = appendEscaped(dst, str, n.maxRunes)
		}
	case n.value != nil:
		dst = append(dst, '>')
		if n.cdata {
			dst = appendCDATA(dst, r.text, n.maxRunes)
		} else {
			dst = appendEscaped(dst, r.text, n.maxRunes)
		}
	case len(n.children) > 0:
		dst = append(dst, '>')
		start := len(dst)
		for k := range n.children {
			dst = r.render(dst, &n.children[k])
		}
		if n.omitEmpty && len(dst) == start {
			return dst[:mark]
		}
	default:
		if len(n.attrs) > 0 && !wrote {
			return dst[:mark] // an attribute-only element with no attribute
		}
		return append(dst, "/>"...)
	}
	dst = append(dst, "</"...)
	dst = append(dst, n.name...)
	return append(dst, '>')
}

// sortedAttributeKeys is the list of the offer's attribute keys in byte
// order, so map order never reaches the output.
func sortedAttributeKeys(r *renderer) int {
	r.keys = r.keys[:0]
	for k := range r.v.Offer.Attributes {
		r.keys = append(r.keys, k)
	}
	slices.Sort(r.keys)
	return len(r.keys)
}

// programValue renders the result of a custom template program: nil (or a
// nil pointer) omits the element; strings, integers, floats (strconv 'f',
// -1), bools, times (RFC 3339, UTC) and durations are formatted
// deterministically. A run-time error or any other type omits the element
// and counts in Evaluator.RenderErrors.
func programValue(p *vm.Program) value {
	return func(r *renderer, _ int, dst []byte) ([]byte, bool) {
		out, err := r.e.runProgram(p)
		if err != nil {
			r.e.renderFailed(r.t.Index, r.v.Offer.ID, err)
			return dst, false
		}
		dst, ok, known := appendScalar(dst, out)
		if !known {
			r.e.renderFailed(r.t.Index, r.v.Offer.ID, errNoTextFor)
		}
		return dst, ok
	}
}

// appendScalar formats v; ok is false for nil; known is false for a type
// with no text form.
func appendScalar(dst []byte, v any) (_ []byte, ok, known bool) {
	switch x := v.(type) {
	case nil:
		return dst, false, true
	case string:
		return append(dst, x...), true, true
	case *string:
		if x == nil {
			return dst, false, true
		}
		return append(dst, *x...), true, true
	case int:
		return strconv.AppendInt(dst, int64(x), 10), true, true
	case int64:
		return strconv.AppendInt(dst, x, 10), true, true
	case int32:
		return strconv.AppendInt(dst, int64(x), 10), true, true
	case uint64:
		return strconv.AppendUint(dst, x, 10), true, true
	case uint:
		return strconv.AppendUint(dst, uint64(x), 10), true, true
	case float64:
		return strconv.AppendFloat(dst, x, 'f', -1, 64), true, true
	case float32:
		return strconv.AppendFloat(dst, float64(x), 'f', -1, 32), true, true
	case bool:
		return strconv.AppendBool(dst, x), true, true
	case time.Time:
		return x.UTC().AppendFormat(dst, time.RFC3339), true, true
	case time.Duration:
		return append(dst, x.String()...), true, true
	}
	return dst, false, false
}
