package state

import (
	"encoding/binary"
)

// Key prefixes. One byte each; see docs/ARCHITECTURE.md.
const (
	prefixOffer      = 'o'
	prefixSeller     = 's'
	prefixRating     = 'r'
	prefixIndex      = 'x'
	prefixMembership = 'm'
	prefixOffset     = 'c'
	prefixOutbox     = 'q'
	prefixJob        = 'k' // seller jobs: 'k' p sellerID
	prefixCount      = 'l' // live member counts: 'l' p feedID
	// Before format 2 jobs ('j' sellerID) and counts ('n' feedID) were
	// global; Open migrates them (migrate.go).
	prefixLegacyJob   = 'j'
	prefixLegacyCount = 'n'
	prefixRun         = 'u' // full-pass runs (owned by the full pass)
	prefixMeta        = 'z' // small singletons
	prefixTombIndex   = 't' // tombstones by deletion time
	prefixCandidate   = 'g' // grouped feeds' candidates in winner order (groups.go)
	prefixPlace       = 'h' // where an offer stands in a group
	prefixWinner      = 'w' // a group's decided winner
)

// TablePartition is the outbox partition used for records that do not belong
// to an offers partition (rejects of the sellers and ratings topics).
const TablePartition int32 = -1

func appendPartition(dst []byte, p int32) []byte {
	return binary.BigEndian.AppendUint32(dst, uint32(p))
}

// longLen marks the long form of appendLenString's length.
const longLen = 0xffff

// appendLenString appends s with its length in front, so that what
// follows s in a key can never be mistaken for part of it: the encoding
// of a string is never a prefix of another string's. A length below
// 0xffff is two bytes big-endian (the form every key written so far
// uses); a longer string gets 0xffff followed by its length as a uvarint.
// The length never wraps, so two distinct strings never encode alike,
// whatever their length (the records validators bound ids to
// records.MaxIDBytes long before this matters).
func appendLenString(dst []byte, s string) []byte {
	if len(s) < longLen {
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	} else {
		dst = binary.BigEndian.AppendUint16(dst, longLen)
		dst = binary.AppendUvarint(dst, uint64(len(s)))
	}
	return append(dst, s...)
}

// offerKey: 'o' p id
func offerKey(dst []byte, p int32, id string) []byte {
	dst = append(dst, prefixOffer)
	dst = appendPartition(dst, p)
	return append(dst, id...)
}

func membershipKey(dst []byte, p int32, id string) []byte {
	dst = append(dst, prefixMembership)
	dst = appendPartition(dst, p)
	return append(dst, id...)
}

// indexPrefix: 'x' p len(seller) seller (see appendLenString)
func indexPrefix(dst []byte, p int32, sellerID string) []byte {
	dst = append(dst, prefixIndex)
	dst = appendPartition(dst, p)
	return appendLenString(dst, sellerID)
}

func indexKey(dst []byte, p int32, sellerID, offerID string) []byte {
	dst = indexPrefix(dst, p, sellerID)
	return append(dst, offerID...)
}

func offsetKey(dst []byte, topic string, p int32) []byte {
	dst = append(dst, prefixOffset)
	dst = appendLenString(dst, topic)
	return appendPartition(dst, p)
}

func outboxPrefix(dst []byte, p int32) []byte {
	dst = append(dst, prefixOutbox)
	return appendPartition(dst, p)
}

func outboxKey(dst []byte, p int32, seq uint64) []byte {
	dst = outboxPrefix(dst, p)
	return binary.BigEndian.AppendUint64(dst, seq)
}

// jobKey: 'k' p sellerID — the job of one seller in offers partition p.
func jobKey(dst []byte, p int32, sellerID string) []byte {
	dst = append(dst, prefixJob)
	dst = appendPartition(dst, p)
	return append(dst, sellerID...)
}

// countKey: 'l' p feedID — the live members of feedID in partition p.
func countKey(dst []byte, p int32, feedID string) []byte {
	dst = append(dst, prefixCount)
	dst = appendPartition(dst, p)
	return append(dst, feedID...)
}

// partitionPrefix: prefix p — every key of kind prefix in partition p.
func partitionPrefix(prefix byte, p int32) []byte {
	return appendPartition([]byte{prefix}, p)
}

// prefixEnd returns the smallest key greater than every key with prefix.
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil // prefix is all 0xff: no upper bound
}

// tombstoneIndexKey: 't' deletedAtMs(8) key — deleted keys in the order
// their retention ends, so the sweep reads only expired ones.
func tombstoneIndexKey(dst []byte, deletedAtMs int64, key []byte) []byte {
	dst = append(dst, prefixTombIndex)
	dst = binary.BigEndian.AppendUint64(dst, uint64(deletedAtMs))
	return append(dst, key...)
}

// Meta keys of one partition: 'z' kind p.
const (
	metaOutboxNext = 'q' // next outbox sequence of p
	metaRestoring  = 'r' // a restore of p has started and not finished
)

func metaPartitionKey(dst []byte, kind byte, p int32) []byte {
	dst = append(dst, prefixMeta, kind)
	return appendPartition(dst, p)
}
