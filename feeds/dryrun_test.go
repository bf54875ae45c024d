package feeds

import (
	"errors"
	"reflect"
	"testing"

	"github.com/feedmill/feedmill/config"
)

// TestCompileFeed: one feed compiles on its own against a config's
// templates, with problem paths relative to the definition; only the
// template it names is compiled.
func TestCompileFeed(t *testing.T) {
	templates := []config.Template{
		{ID: "broken", Root: "r", Item: "i", Fields: []config.TemplateField{{Name: "x", Value: "offer.nope"}}},
		{ID: "partner-x", Root: "products", Item: "product", Fields: []config.TemplateField{{Name: "id", Value: "offer.id"}, {Name: "bad", Value: "offer.price +"}}},
		{ID: "ok", Root: "products", Item: "product", Fields: []config.TemplateField{{Name: "id", Value: "offer.id"}}},
	}
	tests := []struct {
		name string
		feed config.Feed
		want []Problem // nil: compiles
	}{
		{"built-in template", config.Feed{ID: "a", Filter: "offer.stock > 0", Template: "ceneo"}, nil},
		{"custom template, another one broken", config.Feed{ID: "a", Filter: "true", Template: "ok"}, nil},
		{"grouped", config.Feed{ID: "g", Filter: "true", Template: "ceneo", Group: &config.Group{By: "offer.product_id", Pick: "min", Of: "offer.price"}}, nil},
		{"filter and group", config.Feed{ID: "a", Filter: `sellr.status == "x"`, Template: "ceneo", Group: &config.Group{By: "offer.product_id", Pick: "first", Of: "offer.price"}}, []Problem{
			{"filter", "line 1, column 1: unknown name sellr"},
			{"group.pick", `must be "min" or "max", got "first"`},
		}},
		{"empty id, unknown template", config.Feed{Filter: "true", Template: "nope"}, []Problem{
			{"id", "id is empty"},
			{"template", `unknown template "nope" (built-in: google-merchant, meta-catalog, ceneo)`},
		}},
		{"the template's problem keeps its config index", config.Feed{ID: "a", Filter: "true", Template: "partner-x"}, []Problem{
			{"templates[1] (partner-x).fields[1] (bad).value", "line 1, column 13: unexpected token EOF"},
			{"template", `unknown template "partner-x" (built-in: google-merchant, meta-catalog, ceneo)`}, // as Compile says
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set, err := CompileFeed(tc.feed, templates)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("CompileFeed: %v", err)
				}
				if n := len(set.Feeds()); n != 1 || set.Feeds()[0].ID != tc.feed.ID {
					t.Fatalf("set has %d feeds", n)
				}
				return
			}
			var ce *CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("CompileFeed: %v, want a *CompileError", err)
			}
			if !reflect.DeepEqual(ce.Problems, tc.want) {
				t.Errorf("problems:\n got %q\nwant %q", ce.Problems, tc.want)
			}
		})
	}
}
