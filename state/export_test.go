package state

// AppendChangelogOfferValue builds an "o" changelog value from its parts,
// for tests that need values no store holds.
var AppendChangelogOfferValue = appendChangelogOffer

// AppendTombstoneValue is the stored value of a tombstone.
var AppendTombstoneValue = appendTombstone
