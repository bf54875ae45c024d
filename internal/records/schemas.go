package records

import (
	"embed"
	"encoding/json"
	"fmt"

	"github.com/hamba/avro/v2"
)

//go:embed schemas/*.avsc
var schemaFiles embed.FS

// Kind names one of the four record types of docs/contract.md, Records.
type Kind uint8

// The record kinds, in the order of docs/contract.md, Records.
const (
	KindOffer Kind = iota
	KindSeller
	KindRating
	KindFeedEvent

	numKinds
)

// String returns the Avro full name of the kind's record, or "unknown".
func (k Kind) String() string {
	switch k {
	case KindOffer:
		return "feedmill.v1.Offer"
	case KindSeller:
		return "feedmill.v1.Seller"
	case KindRating:
		return "feedmill.v1.Rating"
	case KindFeedEvent:
		return "feedmill.v1.FeedEvent"
	}
	return "unknown"
}

func (k Kind) file() string {
	switch k {
	case KindOffer:
		return "schemas/offer.avsc"
	case KindSeller:
		return "schemas/seller.avsc"
	case KindRating:
		return "schemas/rating.avsc"
	case KindFeedEvent:
		return "schemas/feed_event.avsc"
	}
	return ""
}

// ourSchemas holds feedmill's own (reader) schemas, parsed once.
type ourSchemas struct {
	parsed [numKinds]avro.Schema
	// text is the self-contained JSON registered with the schema registry:
	// named types that feed_event.avsc refers to are inlined.
	text [numKinds]string
}

// parseSchemas parses the embedded .avsc files in dependency order with a
// private schema cache (never hamba's package-level DefaultSchemaCache).
func parseSchemas() (*ourSchemas, error) {
	cache := &avro.SchemaCache{}
	out := &ourSchemas{}
	for k := KindOffer; k < numKinds; k++ {
		raw, err := schemaFiles.ReadFile(k.file())
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", k.file(), err)
		}
		s, err := avro.ParseBytesWithCache(raw, "", cache)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", k.file(), err)
		}
		text, err := json.Marshal(s)
		if err != nil {
			return nil, fmt.Errorf("marshal %s: %w", k.file(), err)
		}
		out.parsed[k] = s
		out.text[k] = string(text)
	}
	return out, nil
}

// SchemaText returns the self-contained Avro schema JSON feedmill registers
// for kind (named types inlined), or "" for an unknown kind. Safe for
// concurrent use.
func (s *Serde) SchemaText(kind Kind) string {
	if kind >= numKinds {
		return ""
	}
	return s.ours.text[kind]
}
