package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/feedmill/feedmill/processor/api"
)

// explainTimeout bounds one request to the instance.
const explainTimeout = 30 * time.Second

func cmdExplain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("explain", flag.ContinueOnError)
	fl.SetOutput(stderr)
	base := fl.String("url", "http://127.0.0.1:8080", "HTTP address of a running instance (one that owns the offer's partition)")
	offer := fl.String("offer", "", "offer id (required)")
	feed := fl.String("feed", "", "feed id: explain why the offer is or is not in it (default: the offer's stored state)")
	token := fl.String("token", "", "admin token (default: $FEEDMILL_HTTP_ADMIN_TOKEN)")
	raw := fl.Bool("json", false, "print the instance's JSON answer as it is")
	fl.Usage = func() {
		fmt.Fprint(stderr, "Usage: feedmill explain -url http://HOST:PORT -offer ID [-feed F] [-token T] [-json]\n\n"+
			"Asks a running instance for an offer's stored state (feeds, groups, next refreshes)\n"+
			"or, with -feed, why it is or is not in that feed (the filter clause by clause).\n\n")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return errUsage
	}
	if *offer == "" || fl.NArg() > 0 {
		fl.Usage()
		return errUsage
	}
	if *token == "" {
		*token = os.Getenv("FEEDMILL_HTTP_ADMIN_TOKEN")
	}
	u := strings.TrimRight(*base, "/") + "/api/offers/" + url.PathEscape(*offer)
	if *feed != "" {
		u += "/explain?feed=" + url.QueryEscape(*feed)
	}
	body, err := getAPI(ctx, u, *token)
	if err != nil {
		return err
	}
	if *raw {
		_, err := stdout.Write(body)
		return err
	}
	if *feed != "" {
		var x api.Explanation
		if err := json.Unmarshal(body, &x); err != nil {
			return fmt.Errorf("decode the answer of %s: %w", u, err)
		}
		printExplain(stdout, &x)
		return nil
	}
	var o api.OfferState // its records' numbers as written (api.Record)
	if err := json.Unmarshal(body, &o); err != nil {
		return fmt.Errorf("decode the answer of %s: %w", u, err)
	}
	printOffer(stdout, &o)
	return nil
}

// getAPI GETs u with the bearer token and returns a 200's body; other
// answers become errors saying what to do.
func getAPI(ctx context.Context, u, token string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, explainTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("-url: %w", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the instance (is it running, is -url right?): %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("read the answer of %s: %w", u, err)
	}
	if resp.StatusCode == http.StatusOK {
		return body, nil
	}
	msg := strings.TrimSpace(string(body))
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		if token == "" {
			return nil, errors.New("the instance wants the admin token (401): pass -token or set FEEDMILL_HTTP_ADMIN_TOKEN")
		}
		return nil, errors.New("the instance refused the admin token (401): check -token or FEEDMILL_HTTP_ADMIN_TOKEN")
	case http.StatusNotFound:
		return nil, fmt.Errorf("not found (404): %s", msg)
	}
	return nil, fmt.Errorf("%s: %s", resp.Status, msg)
}

func printOffer(w io.Writer, o *api.OfferState) {
	fmt.Fprintf(w, "offer %s (offers partition %d)\n", o.ID, o.Partition)
	switch {
	case o.Offer.Fields != nil:
		rec := o.Offer.Fields
		fmt.Fprintf(w, "  status %v, stock %v, price %v %v, category %v, version %v\n",
			rec["status"], rec["stock"], rec["price"], rec["currency"], rec["category"], rec["version"])
		fmt.Fprintf(w, "  seller %v: %s\n", rec["seller_id"], tableSummary(o.Seller.Fields, "status", "country", "super_seller"))
		fmt.Fprintf(w, "  rating: %s\n", tableSummary(o.Rating.Fields, "average", "count", "positive_pct"))
	case o.Deleted != nil:
		fmt.Fprintf(w, "  deleted: version %d at %s\n", o.Deleted.Version, o.Deleted.DeletedAt.Format(time.RFC3339))
	default:
		fmt.Fprintln(w, "  no offer record (a membership only)")
	}
	fmt.Fprintf(w, "last event seq %d\n", o.Seq)
	if len(o.Feeds) == 0 {
		fmt.Fprintln(w, "in no feed")
	} else {
		fmt.Fprintf(w, "in %d feed(s):\n", len(o.Feeds))
	}
	for _, f := range o.Feeds {
		dests := "no destinations"
		if len(f.Destinations) > 0 {
			dests = "to " + strings.Join(f.Destinations, ", ")
		}
		refresh := "never refreshed"
		if f.RefreshAt != nil {
			refresh = "refresh due " + f.RefreshAt.Format(time.RFC3339)
		}
		sent := "never sent"
		if f.SentAt != nil {
			sent = "last sent " + f.SentAt.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "  %s  %s; %s; %s; fingerprint %s\n", f.Feed, dests, sent, refresh, f.Fingerprint)
	}
	for _, g := range o.Groups {
		fmt.Fprintf(w, "grouped feed %s: %s\n", g.Feed, standingText(&g))
	}
	fmt.Fprintf(w, "\nWhy in a feed or not: feedmill explain -offer %s -feed FEED\n", o.ID)
}

func tableSummary(rec map[string]any, keys ...string) string {
	if rec == nil {
		return "none (nil in filters)"
	}
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %v", k, rec[k]))
	}
	return strings.Join(parts, ", ")
}

func standingText(g *api.Standing) string {
	if !g.Live {
		return fmt.Sprintf("not a candidate (filter %v at the last evaluation)", g.Filter)
	}
	won := "lost"
	if g.Won {
		won = "won"
	}
	return fmt.Sprintf("candidate in group %q, %s", g.Key, won)
}

func printExplain(w io.Writer, x *api.Explanation) {
	verdict := "IN the feed (the filter holds)"
	if !x.Match {
		verdict = "NOT in the feed (the filter does not hold)"
	}
	if x.Group != nil {
		// A grouped feed's member is its group's winner.
		verdict = "the filter holds: a candidate of its group (a member if it wins)"
		if !x.Match {
			verdict = "NOT in the feed (the filter does not hold)"
		}
	}
	fmt.Fprintf(w, "offer %s, feed %s: %s\n", x.Offer, x.Feed, verdict)
	fmt.Fprintf(w, "evaluated at %s (offers partition %d)\n", x.EvaluatedAt.Format(time.RFC3339), x.Partition)
	if x.FilterError != "" {
		fmt.Fprintf(w, "the filter failed: %s\n", x.FilterError)
	}
	fmt.Fprintf(w, "\nfilter: %s\n\n", oneLine(x.Filter))
	printClause(w, &x.Clauses, "  ", x.FirstFailing)
	if x.FirstFailing != nil {
		fmt.Fprintf(w, "\nfirst failing clause: %s  (%s)\n", oneLine(x.FirstFailing.Source), clauseValue(x.FirstFailing))
	}
	if g := x.Group; g != nil {
		if g.InGroup {
			fmt.Fprintf(w, "\ngroup key %q, value %v (pick %s)\n", g.Key, g.Value, g.Pick)
		} else {
			fmt.Fprintf(w, "\nin no group (pick %s)", g.Pick)
			if g.Error != "" {
				fmt.Fprintf(w, ": %s", g.Error)
			}
			fmt.Fprintln(w)
		}
	}
	if x.Item != nil {
		fmt.Fprintf(w, "\nitem:\n%s\n", strings.TrimRight(*x.Item, "\n"))
	}
	if x.RenderError != "" {
		fmt.Fprintf(w, "render error (element omitted): %s\n", x.RenderError)
	}
	stored := "stored: not a member"
	if x.Stored.Member {
		stored = "stored: member"
	}
	if g := x.Stored.Group; g != nil {
		stored += "; " + standingText(g)
	}
	fmt.Fprintf(w, "\n%s\n", stored)
	if x.Agrees {
		fmt.Fprintln(w, "the stored membership agrees with this evaluation")
	} else {
		fmt.Fprintf(w, "the stored membership DISAGREES: %s\n", x.Disagreement)
		fmt.Fprintln(w, "(a change not yet applied, a filter reading now or a pending group decision can explain it; the full pass corrects what stays)")
	}
}

// printClause prints c and its operands indented, one per line.
func printClause(w io.Writer, c *api.ExplainClause, indent string, failing *api.ExplainClause) {
	line := fmt.Sprintf("%s%-7s ", indent, clauseValue(c))
	if c.Op != "" {
		line += opName(c.Op)
	} else {
		line += oneLine(c.Source)
	}
	if c.Skipped {
		line += "   (not reached)"
	}
	if failing != nil && c.Op == failing.Op && c.Source == failing.Source && !c.Skipped {
		line += "   <- first failing"
	}
	fmt.Fprintln(w, line)
	if c.Error != "" && c.Op == "" {
		fmt.Fprintf(w, "%s        error: %s\n", indent, c.Error)
	}
	for i := range c.Clauses {
		printClause(w, &c.Clauses[i], indent+"  ", failing)
	}
}

func clauseValue(c *api.ExplainClause) string {
	switch {
	case c.Error != "":
		return "error"
	case c.Value == nil:
		return "nil"
	case *c.Value:
		return "true"
	}
	return "false"
}

func opName(op string) string {
	switch op {
	case "&&":
		return "all of (&&):"
	case "||":
		return "any of (||):"
	case "!":
		return "not (!):"
	}
	return op
}

// oneLine puts a multi-line expression on one line.
func oneLine(s string) string {
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\t", " ").Replace(s)
}
