// Package grouping holds the protocol of grouped feeds
// (docs/grouped-feeds.md) as pure steps, independent of Kafka: the
// offer's task turns an offer's candidacy change into candidacy messages
// (Offer.Candidacy), the group task applies them to the ordered
// candidates in state and answers winner decisions (ApplyCandidacy), and
// the offer's task keeps the decision that makes the offer a member
// (Flag.Apply). Messages may arrive late, twice or interleaved across
// partitions; the sequences they carry make the result the same as a
// group-by over the final state.
package grouping
