package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/feedmill/feedmill/internal/bench"
)

func intList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("bad number %q in %q", f, s)
		}
		out = append(out, n)
	}
	return out, nil
}

func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("bench", flag.ContinueOnError)
	fl.SetOutput(stderr)
	offers := fl.Int("offers", 100000, "catalog size of the end-to-end phases")
	changes := fl.Int("changes", 100000, "stream changes drained after the catalog")
	match := fl.String("match-feeds", "10,100,1300,5000", "feed counts of the matching phase")
	drain := fl.String("drain-feeds", "0,10,1300", "feed counts of the drain phase (0 = raw limit); the last one also runs latency and full pass")
	workers := fl.String("workers", "", "processor.workers of each drain with feeds, e.g. 1,2 (default GOMAXPROCS)")
	rateFlag := fl.Float64("rate", 1000, "input changes per second of the latency phase")
	latency := fl.Duration("latency-duration", 0, "length of the latency phase (default 20s)")
	dir := fl.String("dir", "", "scratch directory (default: a temp dir, removed after)")
	if err := fl.Parse(args); err != nil {
		return errUsage
	}
	o := bench.Options{Offers: *offers, Changes: *changes, Rate: *rateFlag, LatencyDuration: *latency, Dir: *dir}
	var err error
	if o.MatchFeeds, err = intList(*match); err != nil {
		return err
	}
	if o.DrainFeeds, err = intList(*drain); err != nil {
		return err
	}
	if *workers != "" {
		if o.Workers, err = intList(*workers); err != nil {
			return err
		}
		for _, n := range o.Workers {
			if n < 1 {
				return fmt.Errorf("bench: -workers: %d is not a worker count (1 or more)", n)
			}
		}
	}
	return bench.Run(ctx, o, stdout)
}
