// Package feeds is the compiled feed set: filters, templates, item rendering,
// item fingerprints and whole XML documents.
//
// # Model
//
// Compile turns config.Feeds and config.Templates into an immutable Set.
// Every filter and every custom template value is an expr-lang program,
// type-checked and compiled once against a typed environment: offer,
// seller (nil when unknown), rating (nil when unknown) and now. Field names
// are the records' expr tags (the Avro names); attributes is a map whose
// missing keys read as nil, and pointer fields (brand, gtin, product_id)
// compare as their string or as nil. Compile reports every problem at once
// in a *CompileError, each with its config path and, for programs, the
// line and column.
//
// Programs are restricted: the wall-clock now() builtin and the costly or
// unbounded builtins repeat, toJSON, fromJSON, toBase64 and fromBase64 are
// disabled, a program has at most 2000 AST nodes, `matches` needs a
// constant pattern (compiled once) and expr's per-run memory budget bounds
// ranges. Filters must be boolean.
//
// An Evaluator (one per goroutine) owns one expr VM and one environment.
// Match boxes the View's fields that some filter reads once per call, then
// runs every filter without allocating per feed (see env.go for how).
// A filter that fails at run time is false and counted (FilterErrors).
// The evaluation strategy is internal: callers depend only on Match.
//
// A Template is data for one renderer: a document shell (RSS 2.0 with the
// Google g: namespace, Ceneo offers, or a custom root element) and a tree
// of item nodes whose values come from small adapters over the View (the
// built-ins google-merchant, meta-catalog and ceneo) or from compiled
// programs (custom templates). The renderer sanitises every value (drops
// invalid UTF-8 and characters XML 1.0 forbids), truncates by runes where a
// format has a limit, and escapes it as encoding/xml does (or writes CDATA,
// splitting "]]>"). Attribute maps are rendered in sorted key order, and no
// template renders updated_at or version.
//
// A custom template value that fails at run time, or yields a type with no
// text form, omits its element and counts in Evaluator.RenderErrors. A
// custom value that reads `now` renders differently as time passes, and so
// changes the item's fingerprint: that is the template author's choice.
//
// Fingerprint hashes (xxhash64) exactly the bytes AppendItem writes, so the
// streaming processor emits UPDATE only when the rendered item changed, and
// the full pass streams documents (AppendHeader, AppendItem per member,
// AppendFooter) from the same code.
//
// The package must not import processor or state, log, or hold package
// level mutable state.
package feeds
