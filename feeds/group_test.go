package feeds

import (
	"errors"
	"strings"
	"testing"

	"github.com/feedmill/feedmill/config"
)

// TestCompileGroup: group.by and group.of are compiled and type-checked
// like filters (unknown fields, types, line and column); a valid grouped
// feed is refused with the one problem that grouping is not built yet.
func TestCompileGroup(t *testing.T) {
	const notYet = "grouped feeds are not supported by this version yet"
	for _, tc := range []struct {
		name  string
		group config.Group
		path  string // of the one problem
		want  string // in its message
	}{
		{"valid min by product of price", config.Group{By: "offer.product_id", Pick: "min", Of: "offer.price"}, "feeds[0] (g).group", notYet},
		{"valid max of a time", config.Group{By: "offer.seller_id + '/' + offer.category", Pick: "max", Of: "offer.updated_at"}, "feeds[0] (g).group", notYet},
		{"valid rating of the seller", config.Group{By: "offer.product_id", Pick: "max", Of: "rating?.average ?? 0"}, "feeds[0] (g).group", notYet},
		{"bad pick", config.Group{By: "offer.product_id", Pick: "first", Of: "offer.price"}, "feeds[0] (g).group.pick", `must be "min" or "max", got "first"`},
		{"empty by", config.Group{By: " ", Pick: "min", Of: "offer.price"}, "feeds[0] (g).group.by", "by is empty"},
		{"unknown field", config.Group{By: "offer.product", Pick: "min", Of: "offer.price"}, "feeds[0] (g).group.by", "line 1, column"},
		{"key of a list", config.Group{By: "offer.images", Pick: "min", Of: "offer.price"}, "feeds[0] (g).group.by", "got []string"},
		{"key of a time", config.Group{By: "offer.updated_at", Pick: "min", Of: "offer.price"}, "feeds[0] (g).group.by", "a group key must be a string, number or bool, got time.Time"},
		{"value of a string", config.Group{By: "offer.product_id", Pick: "min", Of: "offer.title"}, "feeds[0] (g).group.of", "group.of must give a number or a time, got string"},
		{"syntax", config.Group{By: "offer.product_id", Pick: "min", Of: "offer.price +"}, "feeds[0] (g).group.of", "line 1, column"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := tc.group
			_, err := Compile([]config.Feed{{ID: "g", Filter: "offer.stock > 0", Template: "google-merchant", Group: &g}}, nil)
			var ce *CompileError
			if !errors.As(err, &ce) || len(ce.Problems) != 1 {
				t.Fatalf("Compile: %v, want one problem", err)
			}
			p := ce.Problems[0]
			if p.Path != tc.path || !strings.Contains(p.Message, tc.want) {
				t.Errorf("problem %s: %s, want %s: ...%s...", p.Path, p.Message, tc.path, tc.want)
			}
		})
	}
}
