// Package fullpass is the periodic pass over the whole joined state: from
// one Pebble snapshot it writes every file feed (processor/feedstore),
// finds offers whose announced membership drifted from a fresh evaluation
// and offers due for the 28-day refresh, guards against anomalous feed
// sizes (held runs wait for approve or reject), and applies corrections
// and refreshes through the streaming path's applier (the Stream
// interface it declares), which re-reads the current state. It never
// writes memberships itself.
package fullpass
