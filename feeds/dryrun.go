package feeds

import (
	"fmt"
	"strings"

	"github.com/feedmill/feedmill/config"
)

// CompileFeed compiles one feed definition on its own against a config's
// custom templates: what a dry run evaluates (processor/dryrun). The feed
// is not added to any Set, so its id may be that of a feed in force. Only
// the custom template the feed names is compiled, under the feed's
// unbounded flag, as Compile would for a config where this feed is the
// only one using it; the other templates are not checked.
//
// It returns the one-feed Set, or a *CompileError whose problem paths
// are relative to the feed definition (`filter`, `group.by`, `template`,
// `id`); a problem of the custom template keeps its config path with the
// template's index in templates (`templates[2] (partner-x).fields[0]
// (id).value`).
func CompileFeed(f config.Feed, templates []config.Template) (*Set, error) {
	var used []config.Template
	at := -1
	for i := range templates {
		if templates[i].ID == f.Template {
			used, at = templates[i:i+1], i
			break
		}
	}
	set, err := Compile([]config.Feed{f}, used)
	if err == nil {
		return set, nil
	}
	ce, ok := err.(*CompileError)
	if !ok {
		return nil, err
	}
	feedPrefix := fmt.Sprintf("feeds[0] (%s)", f.ID)
	out := &CompileError{Problems: make([]Problem, 0, len(ce.Problems))}
	for _, p := range ce.Problems {
		switch {
		case strings.HasPrefix(p.Path, feedPrefix+"."):
			p.Path = p.Path[len(feedPrefix)+1:]
		case at >= 0 && strings.HasPrefix(p.Path, "templates[0]"):
			p.Path = fmt.Sprintf("templates[%d]", at) + p.Path[len("templates[0]"):]
		}
		out.Problems = append(out.Problems, p)
	}
	return nil, out
}
