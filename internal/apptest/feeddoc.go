package apptest

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
)

// FeedItems returns the raw bytes of each item element of a feed document
// of the example templates (item, o or product, the first such element
// and its siblings at the same depth), sorted: two documents hold the
// same items when their FeedItems are equal. It fails on XML that is not
// well-formed.
func FeedItems(doc []byte) ([]string, error) {
	dec := xml.NewDecoder(bytes.NewReader(doc))
	dec.Strict = true
	var out []string
	depth, itemDepth, start := 0, 0, int64(-1)
	for {
		off := dec.InputOffset()
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("feed is not well-formed XML: %w", err)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			depth++
			if start < 0 && (e.Name.Local == "item" || e.Name.Local == "o" || e.Name.Local == "product") && (itemDepth == 0 || depth == itemDepth) {
				itemDepth, start = depth, off
			}
		case xml.EndElement:
			if depth == itemDepth && start >= 0 {
				out = append(out, string(doc[start:dec.InputOffset()]))
				start = -1
			}
			depth--
		}
	}
	slices.Sort(out)
	return out, nil
}
