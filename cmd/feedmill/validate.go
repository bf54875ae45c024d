package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
)

// cmdValidate checks a config file: every config, filter and template
// problem on stderr (exit 1), or "ok" on stdout followed by the warnings
// of feeds.Lint, one a line as "path:line:column: warning: message"
// (exit 0, or 1 with -strict when there is any).
func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("validate", flag.ContinueOnError)
	fl.SetOutput(stderr)
	path := fl.String("config", "feedmill.yaml", "config file to check")
	strict := fl.Bool("strict", false, "exit 1 when there are warnings (expressions likely to fail at run time)")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	// Config problems and filter/template problems, every one once.
	var lines []string
	add := func(err error) {
		for _, l := range strings.Split(err.Error(), "\n") {
			if l = strings.TrimSpace(l); l != "" && !slices.Contains(lines, l) {
				lines = append(lines, l)
			}
		}
	}
	cfg, err := config.Load(*path, os.Environ())
	if err != nil {
		add(err)
		if cfg == nil {
			fmt.Fprintln(stderr, strings.Join(lines, "\n"))
			return 1
		}
	}
	if _, err := feeds.Compile(cfg.Feeds, cfg.Templates); err != nil {
		add(err)
	}
	if len(lines) > 0 {
		fmt.Fprintln(stderr, strings.Join(lines, "\n"))
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok (%d feeds, %d custom templates)\n", *path, len(cfg.Feeds), len(cfg.Templates))
	warnings := feeds.Lint(cfg.Feeds, cfg.Templates)
	for _, w := range warnings {
		fmt.Fprintf(stdout, "%s:%d:%d: warning: %s\n", w.Path, w.Line, w.Column, w.Message)
	}
	if *strict && len(warnings) > 0 {
		return 1
	}
	return 0
}
