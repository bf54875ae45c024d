// Package feedchange puts changes of the feed set in force while the
// processor runs (docs/contract.md, Live feed changes): it proposes the
// config file's feeds at start and on reload, takes PUT and DELETE of
// single feeds, applies additions and changes at once through the feed
// log (processor/feedlog) and holds removals, and changes beyond the
// guard, until approved. Every instance follows the log: a new set in
// force is compiled, handed to the stream (which re-evaluates its
// partitions' offers: the backfill) and to the readers of the set.
package feedchange
