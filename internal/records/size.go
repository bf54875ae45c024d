package records

// Upper bounds of Avro binary encodings, computed without encoding: the
// processor uses them to keep every event within processor.max_event_bytes
// before it is built. The per-record bounds (OfferSizeMax, SellerSizeMax,
// RatingSizeMax) are generated into model_gen.go from the schemas; this
// file holds their parts. Each bound is at least the real encoded size (a
// varint takes at most 10 bytes; strings, arrays and maps add a length or
// block framing of at most 10 bytes each, plus 10 for the end of a block).
const (
	varintMax  = 10
	blockFrame = 2 * varintMax
)

func strMax(s string) int { return len(s) + varintMax }

func optStrMax(s *string) int {
	if s == nil {
		return 1
	}
	return 1 + strMax(*s)
}
