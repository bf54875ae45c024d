// Package dryrun evaluates a feed definition that is not in force over
// this instance's local state: what the feed would hold (POST
// /api/feeds/dry-run, `feedmill dry-run`; docs/contract.md, Explain and
// dry-run).
//
// Compile checks one feed definition as the config and feeds.CompileFeed
// do, against the config's custom templates. Runner.Run scans each offers
// partition this instance owns from its own Pebble snapshot, joins every
// offer with its seller and rating (processor.Joiner) and evaluates the
// feed as the full pass does (the event size rule included): the member
// count, a few members with their rendered items, for a grouped feed the
// winner of each key among the partitions scanned, and, when a feed of
// the same id is in force, the adds, removes and unchanged members
// against the memberships the streaming path stored. Evaluation errors
// are counted, with the first one's message.
//
// A dry run is CPU bound and must not starve the stream: a Runner runs
// one at a time (a second gets ErrBusy), on the caller's goroutine alone,
// yielding the processor every few hundred offers, and stops at its time
// budget (60 s at most) with what it counted and Complete false.
//
// The package owns nothing durable: it reads snapshots, writes no state,
// emits no events and reports no metrics (the feed is not in force).
package dryrun
