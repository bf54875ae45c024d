package feedstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"go.uber.org/zap"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
)

// generated is the generation time of the test publications.
var generated = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// testFeeds: three file feeds (one never gets an item) and a feed without
// a file.
var testFeeds = []config.Feed{
	{ID: "phones", Filter: "true", Template: config.TemplateGoogleMerchant, File: true},
	{ID: "live", Filter: "true", Template: config.TemplateMetaCatalog, Destinations: []string{"meta"}},
	{ID: "shoes", Filter: "true", Template: config.TemplateCeneo, File: true},
	{ID: "empty", Filter: "true", Template: config.TemplateCeneo, File: true},
}

func testSet(t testing.TB) *feeds.Set {
	t.Helper()
	set, err := feeds.Compile(testFeeds, nil)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// backend is one kind of blob store the tests run against.
type backend struct {
	name string
	// open starts a store and returns its URL and, for S3, the fault
	// switches in front of it.
	open func(t *testing.T) (string, *faults)
}

var backends = []backend{
	{name: "file", open: func(t *testing.T) (string, *faults) {
		return "file://" + filepath.Join(t.TempDir(), "store"), nil
	}},
	{name: "s3", open: func(t *testing.T) (string, *faults) {
		srv, f := startS3(t, "feeds")
		return s3URL(srv.URL, "feeds"), f
	}},
}

// faults sits in front of the fake S3 and fails requests when asked.
type faults struct {
	h                  http.Handler
	failWrite, failGet atomic.Bool
	multipart          atomic.Int32 // multipart uploads started
}

func (f *faults) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && r.URL.Query().Has("uploads") {
		f.multipart.Add(1)
	}
	write := r.Method == http.MethodPut || r.Method == http.MethodPost || r.Method == http.MethodDelete
	if write && f.failWrite.Load() || r.Method == http.MethodGet && f.failGet.Load() {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied by the test</Message></Error>`)
		return
	}
	f.h.ServeHTTP(w, r)
}

// startS3 starts an in-process S3 (gofakes3) with bucket and sets the
// AWS environment for it (static credentials, no shared config files).
func startS3(t *testing.T, bucket string) (*httptest.Server, *faults) {
	t.Helper()
	awsEnv(t)
	be := s3mem.New()
	if err := be.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	f := &faults{h: gofakes3.New(be).Server()}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv, f
}

func awsEnv(t *testing.T) {
	t.Helper()
	none := filepath.Join(t.TempDir(), "none")
	t.Setenv("AWS_ACCESS_KEY_ID", "feedmill-test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "feedmill-test-secret")
	t.Setenv("AWS_CONFIG_FILE", none)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", none)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_PROFILE", "")
}

func s3URL(endpoint, bucket string) string {
	return "s3://" + bucket + "?region=us-east-1&use_path_style=true&endpoint=" + url.QueryEscape(endpoint)
}

func openStore(t testing.TB, storeURL string, set *feeds.Set) *Store {
	t.Helper()
	s, err := Open(context.Background(), storeURL, filepath.Join(t.TempDir(), "spool"), set, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// plan is what a test run writes: per partition, the items in order.
type plan map[int32][]planItem

type planItem struct {
	feed string
	item []byte
}

// makePlan writes items for the feeds phones, live and shoes over
// partitions, interleaved, with varying sizes and one item larger than
// a feed buffer in partition 1.
func makePlan(run string, partitions, perPartition int) plan {
	p := plan{}
	for part := range int32(partitions) {
		var items []planItem
		for i := range perPartition {
			for _, feed := range []string{"phones", "live", "shoes"} {
				if feed == "shoes" && i%3 == 1 {
					continue
				}
				body := fmt.Sprintf("<item><id>%s-%s-p%d-%d</id><title>%s</title><price>%d.%02d PLN</price></item>\n",
					run, feed, part, i, strings.Repeat("word ", i%17), 10+i*7%991, i%100)
				items = append(items, planItem{feed: feed, item: []byte(body)})
			}
			if part == 1 && i == perPartition/2 {
				big := "<item><id>big</id><description>" + strings.Repeat("0123456789abcdef", 3000) + "</description></item>\n"
				items = append(items, planItem{feed: "phones", item: []byte(big)})
			}
		}
		p[part] = items
	}
	return p
}

// write writes the plan as one run, partitions concurrently (as several
// instances or workers do), and returns the refs.
func (p plan) write(t testing.TB, s *Store, run string) []PartRef {
	t.Helper()
	var mu sync.Mutex
	var refs []PartRef
	var wg sync.WaitGroup
	errs := make(chan error, len(p))
	for part, items := range p {
		wg.Go(func() {
			m, err := writePart(s, run, part, items)
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			refs = append(refs, m.Ref())
			mu.Unlock()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return refs
}

func writePart(s *Store, run string, part int32, items []planItem) (PartManifest, error) {
	w, err := s.NewPartWriter(run, part)
	if err != nil {
		return PartManifest{}, err
	}
	for _, it := range items {
		f, _ := s.set.Load().Feed(it.feed)
		if err := w.Item(f.Index, it.item); err != nil {
			w.Abort()
			return PartManifest{}, err
		}
	}
	return w.Finish(context.Background())
}

// doc returns the document feed must serve for the plan published at
// generated.
func (p plan) doc(set *feeds.Set, feed string) []byte {
	f, _ := set.Feed(feed)
	b := f.Template.AppendHeader(nil, f, generated)
	parts := make([]int32, 0, len(p))
	for part := range p {
		parts = append(parts, part)
	}
	slices.Sort(parts)
	for _, part := range parts {
		for _, it := range p[part] {
			if it.feed == feed {
				b = append(b, it.item...)
			}
		}
	}
	return f.Template.AppendFooter(b)
}

// serveStore serves s's routes on loopback.
func serveStore(t testing.TB, s *Store) string {
	t.Helper()
	mux := http.NewServeMux()
	s.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// rawClient does not decompress: the test sees the bytes on the wire.
var rawClient = &http.Client{Transport: &http.Transport{DisableCompression: true}}

type response struct {
	status int
	header http.Header
	body   []byte
}

func get(t testing.TB, method, u string, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := rawClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, u, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

// firstDiff describes where a and b differ, for failure messages.
func firstDiff(a, b []byte) string {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return fmt.Sprintf("lengths %d and %d, first difference at byte %d: %q vs %q", len(a), len(b), i,
				a[i:min(i+40, len(a))], b[i:min(i+40, len(b))])
		}
	}
	if len(a) != len(b) {
		return fmt.Sprintf("lengths %d and %d, one a prefix of the other", len(a), len(b))
	}
	return "equal"
}

func checkBytes(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s: %s", what, firstDiff(got, want))
	}
}
