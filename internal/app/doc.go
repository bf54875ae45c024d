// Package app wires the processor's parts (state, pipeline, HTTP server)
// from a validated config, for `feedmill run`, `feedmill dev` and the
// integration tests. It owns their lifetimes: Run starts them in one
// errgroup and closes them in reverse order when its context ends.
package app
