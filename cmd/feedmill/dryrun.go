package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/feedmill/feedmill/processor/api"
	"github.com/feedmill/feedmill/processor/dryrun"
)

// cmdDryRun posts a feed definition to a running instance's
// POST /api/feeds/dry-run and prints what the feed would hold.
func cmdDryRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("dry-run", flag.ContinueOnError)
	fl.SetOutput(stderr)
	path := fl.String("feed", "", "the feed definition: one entry of the config's feeds (YAML, or JSON when the file ends in .json)")
	base := fl.String("url", "http://127.0.0.1:8080", "a running instance's HTTP address (http.listen)")
	token := fl.String("token", os.Getenv("FEEDMILL_HTTP_ADMIN_TOKEN"), "the instance's http.admin_token (default $FEEDMILL_HTTP_ADMIN_TOKEN)")
	asJSON := fl.Bool("json", false, "print the instance's JSON answer as it is")
	timeout := fl.Duration("timeout", 0, "lower the dry run's time budget (the instance's default and most: "+dryrun.DefaultTimeout.String()+")")
	samples := fl.Int("samples", -1, "members to show with their items (default "+strconv.Itoa(dryrun.DefaultSamples)+", at most "+strconv.Itoa(dryrun.MaxSamples)+")")
	if err := fl.Parse(args); err != nil {
		return errUsage
	}
	if *path == "" || fl.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: feedmill dry-run -feed FILE [-url http://HOST:PORT] [-token T] [-json] [-timeout D] [-samples N]")
		return errUsage
	}
	body, err := os.ReadFile(*path)
	if err != nil {
		return fmt.Errorf("read feed definition: %w", err)
	}
	u, err := url.Parse(strings.TrimRight(*base, "/") + "/api/feeds/dry-run")
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("-url %q: want http://HOST:PORT", *base)
	}
	q := u.Query()
	if *timeout > 0 {
		q.Set("timeout", timeout.String())
	}
	if *samples >= 0 {
		q.Set("samples", strconv.Itoa(*samples))
	}
	u.RawQuery = q.Encode()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	ct := "application/yaml"
	if strings.EqualFold(filepath.Ext(*path), ".json") {
		ct = "application/json"
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Accept", "application/json")
	if *token != "" {
		req.Header.Set("Authorization", "Bearer "+*token)
	}
	// The instance answers within its time budget; the margin covers the
	// request and the answer.
	client := &http.Client{Timeout: dryrun.DefaultTimeout + 30*time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach feedmill at %s: %w", *base, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read the answer of %s: %w", *base, err)
	}
	if resp.StatusCode != http.StatusOK {
		return dryRunFailure(resp, answer, *path)
	}
	if *asJSON {
		_, err := stdout.Write(answer)
		return err
	}
	var res dryrun.Result
	if err := json.Unmarshal(answer, &res); err != nil {
		return fmt.Errorf("decode the answer of %s: %w", *base, err)
	}
	printDryRun(stdout, &res)
	return nil
}

// dryRunFailure says why the instance refused: what to fix for 401, the
// problems of a definition that does not compile, the error otherwise.
func dryRunFailure(resp *http.Response, body []byte, path string) error {
	var e api.DryRunError
	if json.Unmarshal(body, &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(string(body))
		if len(e.Error) > 512 {
			e.Error = e.Error[:512] + "..."
		}
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return errors.New("unauthorized (401): pass the instance's http.admin_token with -token or FEEDMILL_HTTP_ADMIN_TOKEN")
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return fmt.Errorf("%s: the instance has no dry-run endpoint (%s); is it a feedmill of this version?", resp.Request.URL.Redacted(), resp.Status)
	case http.StatusTooManyRequests:
		return fmt.Errorf("busy (429): %s", e.Error)
	case http.StatusBadRequest:
		var b strings.Builder
		fmt.Fprintf(&b, "%s: %s", path, e.Error)
		for _, p := range e.Problems {
			fmt.Fprintf(&b, "\n  %s: %s", p.Path, p.Message)
		}
		return errors.New(b.String())
	}
	return fmt.Errorf("the instance answered %s: %s", resp.Status, e.Error)
}

// printDryRun writes the report a person reads.
func printDryRun(w io.Writer, res *dryrun.Result) {
	kind := "feed"
	if res.Grouped {
		kind = "grouped feed (one winner per key)"
	}
	fmt.Fprintf(w, "dry run of %s %s: %d offers scanned in %s, partitions [%s] of %d\n",
		kind, res.Feed, res.Scanned, (time.Duration(res.TookMs) * time.Millisecond).String(), partitionList(res.Partitions), res.PartitionsTotal)
	if !res.Complete {
		fmt.Fprintln(w, "INCOMPLETE: stopped at the time budget; the numbers cover what was scanned")
	}
	if res.Grouped {
		fmt.Fprintf(w, "members:    %d (keys; %d candidates passed the filter with a key)\n", res.Members, res.Candidates)
	} else {
		fmt.Fprintf(w, "members:    %d\n", res.Members)
	}
	if c := res.Current; c != nil {
		fmt.Fprintf(w, "vs in force: %d now; +%d added, -%d removed, %d unchanged\n", c.Members, c.Adds, c.Removes, c.Unchanged)
		if len(c.SampleAdds) > 0 {
			fmt.Fprintf(w, "  added:    %s\n", strings.Join(c.SampleAdds, ", "))
		}
		if len(c.SampleRemoves) > 0 {
			fmt.Fprintf(w, "  removed:  %s\n", strings.Join(c.SampleRemoves, ", "))
		}
	} else {
		fmt.Fprintf(w, "vs in force: no feed %s in force\n", res.Feed)
	}
	e := res.Errors
	fmt.Fprintf(w, "errors:     %d (filter %d, template %d, budget %d)\n", e.Total, e.Filter, e.Template, e.Budget)
	if e.First != "" {
		fmt.Fprintf(w, "  first:    %s\n", e.First)
	}
	for _, n := range res.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if len(res.Samples) > 0 {
		fmt.Fprintf(w, "\nsamples (%d):\n", len(res.Samples))
	}
	for _, s := range res.Samples {
		if s.GroupKey != "" {
			fmt.Fprintf(w, "- %s (key %q)\n", s.OfferID, s.GroupKey)
		} else {
			fmt.Fprintf(w, "- %s\n", s.OfferID)
		}
		for _, l := range strings.Split(s.Item, "\n") {
			fmt.Fprintf(w, "    %s\n", l)
		}
	}
}

func partitionList(ps []int32) string {
	if len(ps) == 0 {
		return "none"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ",")
}
