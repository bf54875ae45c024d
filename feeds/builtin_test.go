package feeds

import (
	"testing"

	"github.com/feedmill/feedmill/config"
)

// Every name in config's one list of built-in templates has a format, and
// a name outside it has none.
func TestEveryBuiltinNameHasAFormat(t *testing.T) {
	for _, name := range config.BuiltinTemplates() {
		tmpl := newBuiltin(name)
		if tmpl == nil {
			t.Errorf("built-in template %q has no format in builtin.go", name)
			continue
		}
		if tmpl.ID != name || !tmpl.Builtin {
			t.Errorf("newBuiltin(%q) = ID %q, Builtin %v", name, tmpl.ID, tmpl.Builtin)
		}
	}
	if newBuiltin("partner-x") != nil {
		t.Error("newBuiltin(partner-x) is not nil")
	}
}
