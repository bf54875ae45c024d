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
// constant pattern (compiled once). Filters must be boolean. Unless its
// feed sets `unbounded: true` (for a custom template: every feed using
// it), a program may not nest a loop over record data in another's
// predicate, build a range that is not constant or has over 100 elements,
// or build strings in the predicate of reduce or map (limits.go).
// Every evaluation has a budget whatever the opt-in: loop iterations and
// let bindings, the bytes of strings they yield, and expr's memory budget;
// an evaluation over it fails with an error wrapping ErrBudget.
//
// An Evaluator (one per goroutine) owns one expr VM and one environment.
// A filter that fails at run time is false and counted (FilterErrors,
// FeedErrors by kind: filter, template, budget); the last failure per
// feed is kept with its offer id (LastError).
//
// # Matching engine
//
// Match's cost follows the offer, not the number of feeds. Compile walks
// each filter's checked, optimised expr AST into a tree of and/or/not over
// atoms: a field of offer, seller or rating (plain, `?.`, or with a
// `?? constant` default) or one attributes key compared with a constant
// (==, !=, <, <=, >, >=), startsWith/endsWith/contains a constant, `in`
// a constant list, or a bare boolean operand. Anything else (len, now
// arithmetic, matches, function calls, arithmetic on fields) becomes an
// opaque atom: the sub-expression compiled alone and run by expr. Equal
// atoms (canonical key) are shared by all feeds.
//
// Atoms that can be indexed are: equality and `in` by value (per operand
// a short list of values, or a hash map over more than 8; the offer's
// attributes are iterated once), startsWith by a radix tree per operand
// (the offer's category is walked once), and numeric comparisons by
// sorted bounds (binary search). An atom is indexed only when "not
// reported by its index" implies false. Each feed gets a required set:
// for a conjunction, its most selective indexed conjunct among those
// preceded only by conjuncts that cannot be nil or fail; for a
// disjunction, the union of both sides. Compile keeps in the indexes only
// the atoms some feed requires and stores with each entry the feeds that
// require it, so an index hit is one list of candidates (and the equality
// and startsWith atoms it reports are known true without evaluating
// them). Match asks the indexes once per View, evaluates only the feeds
// they report plus those without a required set, and computes each atom
// at most once per View (memoised by a generation counter; nothing is
// cleared per call). Chains of && (or ||) are evaluated as one n-ary
// node. MatchList returns the matched feeds as a sorted list of indexes,
// so a caller visits them without scanning every feed. The
// result equals running every program, error counts included: the
// boolean nodes follow expr's VM (&& and || need a bool on the left and
// yield their right side as is, nil is false only at the top), and the
// atoms follow runtime.Equal/Less, nil handling and the optimiser's
// constant `in` maps (where nil looks up ""). TestEngineEqualsPlain and
// FuzzMatch check this against NewPlainEvaluator, which runs every
// program and stays available as the reference.
//
// FieldMask names the joined view's fields (offer.*, seller.*, rating.*,
// now). Feed.FilterFields and Template.RenderFields say what a feed
// reads and renders; DiffFields gives the fields a change touched;
// Set.Affected lists the feeds such a change can alter, and
// Evaluator.MatchChanged keeps the previous membership of every feed
// whose filter reads none of them. A filter that reads now is always
// affected.
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
