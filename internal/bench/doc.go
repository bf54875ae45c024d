// Package bench is feedmill's performance harness (`feedmill bench`). In one
// run on one machine it measures the per-change matching cost of the
// shared-atom engine and of plain evaluation at several feed counts, the
// end-to-end drain rate through an in-process kfake broker (and the raw
// limit: consume + decode + Pebble read-modify-write with no feeds), the
// change→event latency at a fixed input rate, the full-pass rate against
// the raw scan + decode rate, and the peak RSS. It prints a table; ratios
// are only meaningful within one run.
package bench
