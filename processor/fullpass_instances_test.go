package processor_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/internal/apptest"
	"github.com/feedmill/feedmill/internal/synth"
	"github.com/feedmill/feedmill/internal/testenv"
	"github.com/feedmill/feedmill/processor/runlog"
)

// TestFullPassAcrossInstances runs feedmill binaries in one group over one
// kfake cluster and one S3 fake: a pass by one instance owning every
// partition is the reference; passes by three instances, with an instance
// joining (a rebalance) or SIGKILLed as the pass starts, must publish the
// same items byte for byte, served the same by every instance. Then the
// guard holds a run that every instance shows, and another instance
// approves it; a store that fails writes fails the run with the reason
// while the previous version stays served.
func TestFullPassAcrossInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	bin := buildFeedmill(t)
	ctx := context.Background()
	env := testenv.New(t, allTopics...)
	s3 := apptest.StartS3(t, "feeds")

	example, templates := synth.ExampleFeeds()
	base := testConfig(t, env, append(example, synth.FeedSet(12, 3)...), templates)
	base.FullPass.Interval = 0
	base.FullPass.Store = s3.URL
	base.FullPass.Guard = config.Guard{MaxDrop: 0.2, MaxGrowth: 1.0, MinSize: 20}
	base.Kafka.SessionTimeout = kfakeMinSessionTimeout
	gen, prod, _ := apptest.ProduceCatalog(t, env, base.Kafka.Topics, 5, synth.Options{Offers: 4000, Sellers: 30})

	fl := &fleet{t: t, bin: bin, env: env, base: base}
	a, b, c, d := fl.add("inst-a"), fl.add("inst-b"), fl.add("inst-c"), fl.add("inst-d")
	var files []config.Feed
	for _, f := range base.Feeds {
		if f.File {
			files = append(files, f)
		}
	}

	// The reference: A alone owns every partition.
	a.start()
	fl.waitIdle([]*instance{a}, 2*time.Minute)
	ref := passOn(t, a, []*instance{a})
	refDocs := map[string]feedDoc{}
	for _, f := range files {
		refDocs[f.ID] = fetchDoc(t, a, f.ID, ref.ID)
		if len(refDocs[f.ID].items) == 0 && f.ID != "bargains-webhook" {
			t.Errorf("feed %s is empty: the catalog should fill it", f.ID)
		}
	}
	check := func(name string, r runlog.Run, on []*instance) {
		t.Helper()
		byInst := map[string]bool{}
		for _, p := range r.Parts {
			byInst[p.By] = true
		}
		t.Logf("%s: run %s parts by %v", name, r.ID, byInst)
		for _, f := range files {
			var first []byte
			for _, in := range on {
				doc := fetchDoc(t, in, f.ID, r.ID)
				if first == nil {
					first = doc.raw
				} else if !bytes.Equal(first, doc.raw) {
					t.Errorf("%s: feed %s differs between instances", name, f.ID)
				}
				if !slices.Equal(doc.items, refDocs[f.ID].items) {
					t.Errorf("%s: feed %s served by %s has %d items, the one-instance pass %d, or they differ",
						name, f.ID, in.id, len(doc.items), len(refDocs[f.ID].items))
				}
			}
		}
	}

	// Three instances.
	b.start()
	c.start()
	fl.waitIdle([]*instance{a, b, c}, 2*time.Minute)
	r := passOn(t, b, []*instance{a, b, c})
	if len(partsBy(r)) < 2 {
		t.Errorf("three instances: parts by %v", partsBy(r))
	}
	check("three instances", r, []*instance{a, b, c})

	// A rebalance during the pass: D has joined the group (its
	// partitions are moving) as the pass starts.
	d.start()
	fl.waitMember(d, time.Minute)
	id := startRun(t, c)
	r = waitRunOn(t, []*instance{a, b, c}, id)
	check("rebalance during the pass", r, []*instance{a, b, c})
	fl.waitIdle([]*instance{a, b, c, d}, 2*time.Minute)

	// An instance killed as the pass starts: its partitions move after
	// the session timeout and their new owners scan them.
	id = startRun(t, a)
	c.kill()
	r = waitRunOn(t, []*instance{a, b, d}, id)
	check("instance killed during the pass", r, []*instance{a, b, d})
	fl.waitIdle([]*instance{a, b, d}, 2*time.Minute)

	// The guard holds a drop; every instance shows it; another approves.
	st := gen.State()
	dropped := 0
	for _, o := range st.Offers {
		if strings.HasPrefix(o.Category, "Books") && o.Status == "ACTIVE" {
			o2 := *o
			o2.Status, o2.Version = "INACTIVE", o.Version+100
			if err := prod.Produce(ctx, synth.Change{Topic: synth.KindOffers, Key: o2.ID, Offer: &o2}); err != nil {
				t.Fatal(err)
			}
			dropped++
		}
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	fl.waitIdle([]*instance{a, b, d}, 2*time.Minute)
	held := waitRunOn(t, []*instance{a, b, d}, startRun(t, d))
	if held.Status != runlog.StatusHeld || !strings.Contains(held.Reason, "books-file") {
		t.Fatalf("run %s after %d books went inactive: %s %q, want held for books-file", held.ID, dropped, held.Status, held.Reason)
	}
	for _, in := range []*instance{a, b, d} {
		if got := getRunOn(t, in, held.ID); got.Status != runlog.StatusHeld || got.Reason != held.Reason {
			t.Errorf("%s shows run %s as %s %q", in.id, held.ID, got.Status, got.Reason)
		}
	}
	if doc := fetchDoc(t, b, "books-file", ""); doc.run != r.ID {
		t.Errorf("a held run is served: books-file from run %s", doc.run)
	}
	if resp, body := adminPost(t, a, "/api/runs/"+held.ID+"/approve"); resp.StatusCode != http.StatusOK {
		t.Fatalf("approve on %s: %d %s", a.id, resp.StatusCode, body)
	}
	if resp, _ := adminPost(t, b, "/api/runs/"+held.ID+"/approve"); resp.StatusCode != http.StatusConflict {
		t.Errorf("second approve on %s: %d, want 409", b.id, resp.StatusCode)
	}
	approved := waitRunOn(t, []*instance{a, b, d}, held.ID)
	if approved.Status != runlog.StatusPublished {
		t.Fatalf("approved run: %s", approved.Status)
	}
	if doc := fetchDoc(t, d, "books-file", approved.ID); len(doc.items) != 0 {
		t.Errorf("approved run serves %d books", len(doc.items))
	}

	// A store that fails writes: the run fails with the reason, every
	// instance shows it, and the previous version stays served.
	before := fetchDoc(t, b, "phones-gmc", approved.ID)
	s3.FailWrites(true)
	failed := waitRunOn(t, []*instance{a, b, d}, startRun(t, b))
	s3.FailWrites(false)
	if failed.Status != runlog.StatusFailed || !strings.Contains(failed.Reason, "write feed files") {
		t.Fatalf("run against a failing store: %s %q, want failed with the store's error", failed.Status, failed.Reason)
	}
	t.Logf("failed run's reason: %s", failed.Reason)
	if after := fetchDoc(t, d, "phones-gmc", approved.ID); !bytes.Equal(after.raw, before.raw) {
		t.Errorf("the feed served after a failed run differs from the one before")
	}
	// The next run publishes again.
	if r := passOn(t, a, []*instance{a, b, d}); r.Status != runlog.StatusPublished {
		t.Errorf("run after the store recovered: %s %q", r.Status, r.Reason)
	}
}

// waitMember waits until in is a member of the fleet's group.
func (f *fleet) waitMember(in *instance, timeout time.Duration) {
	f.t.Helper()
	adm := kadm.NewClient(f.env.Client(f.t))
	deadline := time.Now().Add(timeout)
	for {
		if _, owners, err := f.groupOwners(adm); err == nil {
			if _, ok := owners[in.id]; ok {
				return
			}
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s did not join the group within %s", in.id, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func partsBy(r runlog.Run) []string {
	var out []string
	for _, p := range r.Parts {
		if !slices.Contains(out, p.By) {
			out = append(out, p.By)
		}
	}
	return out
}

func adminPost(t *testing.T, in *instance, path string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post("http://"+in.cfg.HTTP.Listen+path, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// startRun starts a pass through in's API and returns its id.
func startRun(t *testing.T, in *instance) string {
	t.Helper()
	resp, body := adminPost(t, in, "/api/runs")
	var out struct{ ID string }
	if err := json.Unmarshal(body, &out); err != nil || resp.StatusCode != http.StatusAccepted || out.ID == "" {
		t.Fatalf("POST /api/runs on %s: %d %s", in.id, resp.StatusCode, body)
	}
	return out.ID
}

func getRunOn(t *testing.T, in *instance, id string) runlog.Run {
	t.Helper()
	resp, err := http.Get("http://" + in.cfg.HTTP.Listen + "/api/runs/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r runlog.Run
	if resp.StatusCode == http.StatusNotFound {
		return r
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET run %s on %s: %d %v", id, in.id, resp.StatusCode, err)
	}
	return r
}

// waitRunOn waits until run id is decided (and, when published, applied
// by every instance that stored a part) as seen by on[0], then checks
// every instance answers the same.
func waitRunOn(t *testing.T, on []*instance, id string) runlog.Run {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	var r runlog.Run
	for {
		r = getRunOn(t, on[0], id)
		if r.Status != "" && r.Status != runlog.StatusRunning && (r.Status != runlog.StatusPublished || r.Applied) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s not decided: %+v", id, r)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, in := range on[1:] {
		for {
			o := getRunOn(t, in, id)
			if o.Status == r.Status && o.Applied == r.Applied && slices.Equal(o.Parts, r.Parts) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s shows run %s as %+v, %s as %+v", in.id, id, o, on[0].id, r)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return r
}

// passOn runs a pass started on in and checks it is published.
func passOn(t *testing.T, in *instance, on []*instance) runlog.Run {
	t.Helper()
	r := waitRunOn(t, on, startRun(t, in))
	if r.Status != runlog.StatusPublished || int32(len(r.Parts)) != r.PartitionsTotal {
		t.Fatalf("run %s: %s %q, parts %v", r.ID, r.Status, r.Reason, r.Parts)
	}
	return r
}

// feedDoc is a served feed: its bytes, the run it comes from and its
// items (the raw bytes of each item element), sorted.
type feedDoc struct {
	raw   []byte
	run   string
	items []string
}

// fetchDoc GETs feed id from in until it serves run (any run when ""),
// gzip and plain: the two must agree and parse strictly.
func fetchDoc(t *testing.T, in *instance, id, run string) feedDoc {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		doc, err := tryFetch(in, id)
		if err == nil && (run == "" || doc.run == run) {
			return doc
		}
		if time.Now().After(deadline) {
			t.Fatalf("feed %s on %s: want run %s, got %q (%v)", id, in.id, run, doc.run, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tryFetch(in *instance, id string) (feedDoc, error) {
	get := func(enc string) ([]byte, http.Header, error) {
		req, err := http.NewRequest("GET", "http://"+in.cfg.HTTP.Listen+"/feeds/"+id+".xml", nil)
		if err != nil {
			return nil, nil, err
		}
		req.Header.Set("Accept-Encoding", enc)
		resp, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}}).Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != 200 {
			err = fmt.Errorf("GET %s: %d %s", id, resp.StatusCode, body)
		}
		return body, resp.Header, err
	}
	plain, h, err := get("identity")
	if err != nil {
		return feedDoc{}, err
	}
	gz, gh, err := get("gzip")
	if err != nil {
		return feedDoc{}, err
	}
	if gh.Get("Content-Encoding") != "gzip" {
		return feedDoc{}, errors.New("gzip not served gzipped")
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return feedDoc{}, err
	}
	unz, err := io.ReadAll(zr)
	if err != nil {
		return feedDoc{}, err
	}
	if !bytes.Equal(unz, plain) {
		return feedDoc{}, errors.New("gzip and plain documents differ (a publish in between?)")
	}
	doc := feedDoc{raw: plain, run: etagRun(h.Get("ETag"))}
	items, err := apptest.FeedItems(plain)
	if err != nil {
		return doc, err
	}
	doc.items = items
	return doc, nil
}

// etagRun is the run id in a feed's ETag ("run-....").
func etagRun(etag string) string {
	i := strings.Index(etag, "run-")
	if i < 0 {
		return ""
	}
	j := i + len("run-yyyymmdd-hhmmss")
	if j > len(etag) {
		return ""
	}
	return etag[i:j]
}
