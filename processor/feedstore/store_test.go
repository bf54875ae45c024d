package feedstore

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

func gunzip(t testing.TB, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("gzip header: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	return out
}

// TestPublishServe writes a run over three partitions concurrently, with a
// feed buffer budget so small that buffers are evicted, publishes it and
// checks every representation of every feed against the expected document.
func TestPublishServe(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			set := testSet(t)
			u, _ := be.open(t)
			s := openStore(t, u, set)
			s.PartBufferBytes = 2 * chunkBytes
			p := makePlan("run-000001", 3, 400)
			refs := p.write(t, s, "run-000001")
			if err := s.Publish(context.Background(), "run-000001", generated, refs); err != nil {
				t.Fatal(err)
			}
			base := serveStore(t, s)
			for _, feed := range []string{"phones", "shoes", "empty"} {
				want := p.doc(set, feed)
				u := base + "/feeds/" + feed + ".xml"
				tag := `"run-000001.` + feed
				cases := []struct {
					name     string
					method   string
					header   []string
					status   int
					gz       bool
					etag     string
					noBody   bool
					checkLen bool
				}{
					{name: "plain", method: "GET", status: 200, etag: tag + `"`, checkLen: true},
					{name: "gzip", method: "GET", header: []string{"Accept-Encoding", "gzip"}, status: 200, gz: true, etag: tag + `.gz"`, checkLen: true},
					{name: "gzip among others", method: "GET", header: []string{"Accept-Encoding", "br;q=1.0, gzip;q=0.5, deflate"}, status: 200, gz: true, etag: tag + `.gz"`},
					{name: "gzip refused", method: "GET", header: []string{"Accept-Encoding", "gzip;q=0, deflate"}, status: 200, etag: tag + `"`},
					{name: "head plain", method: "HEAD", status: 200, etag: tag + `"`, noBody: true},
					{name: "head gzip", method: "HEAD", header: []string{"Accept-Encoding", "gzip"}, status: 200, gz: true, etag: tag + `.gz"`, noBody: true},
					{name: "if-none-match", method: "GET", header: []string{"If-None-Match", tag + `"`}, status: 304, etag: tag + `"`, noBody: true},
					{name: "if-none-match gzip", method: "GET", header: []string{"Accept-Encoding", "gzip", "If-None-Match", `"x", ` + tag + `.gz"`}, status: 304, gz: true, etag: tag + `.gz"`, noBody: true},
					{name: "if-none-match other representation", method: "GET", header: []string{"If-None-Match", tag + `.gz"`}, status: 200, etag: tag + `"`},
					{name: "if-modified-since", method: "GET", header: []string{"If-Modified-Since", generated.Format(http.TimeFormat)}, status: 304, etag: tag + `"`, noBody: true},
					{name: "if-modified-since earlier", method: "GET", header: []string{"If-Modified-Since", generated.Add(-time.Second).Format(http.TimeFormat)}, status: 200, etag: tag + `"`},
				}
				for _, c := range cases {
					t.Run(feed+"/"+c.name, func(t *testing.T) {
						r := get(t, c.method, u, c.header...)
						if r.status != c.status {
							t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
						}
						if got := r.header.Get("ETag"); got != c.etag {
							t.Errorf("ETag %s, want %s", got, c.etag)
						}
						if got := r.header.Get("Vary"); got != "Accept-Encoding" {
							t.Errorf("Vary %q", got)
						}
						if got := r.header.Get("Cache-Control"); got != "no-cache" {
							t.Errorf("Cache-Control %q", got)
						}
						if c.status == 304 {
							if len(r.body) != 0 {
								t.Errorf("304 with a body of %d bytes", len(r.body))
							}
							return
						}
						if got := r.header.Get("Content-Type"); got != "application/xml; charset=utf-8" {
							t.Errorf("Content-Type %q", got)
						}
						if got := r.header.Get("Accept-Ranges"); got != "bytes" {
							t.Errorf("Accept-Ranges %q", got)
						}
						if got := r.header.Get("Content-Encoding") == "gzip"; got != c.gz {
							t.Errorf("Content-Encoding %q, gzip wanted: %v", r.header.Get("Content-Encoding"), c.gz)
						}
						cl, err := strconv.Atoi(r.header.Get("Content-Length"))
						if err != nil {
							t.Fatalf("Content-Length %q", r.header.Get("Content-Length"))
						}
						if c.noBody {
							if len(r.body) != 0 {
								t.Errorf("HEAD with a body of %d bytes", len(r.body))
							}
							full := get(t, "GET", u, c.header...)
							if cl != len(full.body) {
								t.Errorf("HEAD Content-Length %d, GET body %d bytes", cl, len(full.body))
							}
							return
						}
						if cl != len(r.body) {
							t.Errorf("Content-Length %d, body %d bytes", cl, len(r.body))
						}
						body := r.body
						if c.gz {
							body = gunzip(t, r.body)
						}
						checkBytes(t, "document", body, want)
					})
				}
				t.Run(feed+"/go client", func(t *testing.T) {
					// The default transport asks for gzip and decompresses.
					resp, err := http.Get(u)
					if err != nil {
						t.Fatal(err)
					}
					defer resp.Body.Close()
					body, err := io.ReadAll(resp.Body)
					if err != nil {
						t.Fatal(err)
					}
					if !resp.Uncompressed {
						t.Error("the transport did not get gzip")
					}
					checkBytes(t, "document", body, want)
				})
			}
			for _, c := range []struct{ path, want string }{
				{"/feeds/live.xml", `no file feed \"live\"`},
				{"/feeds/nope.xml", `no file feed \"nope\"`},
				{"/feeds/phones", `no file feed \"phones\"`},
				{"/feeds/phones.json", `no file feed \"phones.json\"`},
			} {
				r := get(t, "GET", base+c.path)
				if r.status != 404 || !strings.Contains(string(r.body), c.want) || r.header.Get("Content-Type") != "application/json" {
					t.Errorf("GET %s: %d %s %s, want 404 with %s", c.path, r.status, r.header.Get("Content-Type"), r.body, c.want)
				}
			}
			for _, feed := range []string{"phones", "shoes", "empty"} {
				if run, err := s.PublishedRun(context.Background(), feed); err != nil || run != "run-000001" {
					t.Errorf("PublishedRun(%s) = %q, %v", feed, run, err)
				}
			}
			if run, err := s.PublishedRun(context.Background(), "live"); err != nil || run != "" {
				t.Errorf("PublishedRun(live) = %q, %v", run, err)
			}
			m, err := s.Manifest(context.Background(), "phones")
			if err != nil {
				t.Fatal(err)
			}
			var items int64
			for _, it := range p[0] {
				if it.feed == "phones" {
					items++
				}
			}
			if m.Items != items*3+1 || len(m.Pieces) != 3 {
				t.Errorf("phones manifest: %d items in %d pieces, want %d in 3", m.Items, len(m.Pieces), items*3+1)
			}
			if !slices.IsSortedFunc(m.Pieces, func(a, b Piece) int { return int(a.Partition - b.Partition) }) {
				t.Errorf("pieces not in partition order: %+v", m.Pieces)
			}
		})
	}
}

func TestRange(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			set := testSet(t)
			u, _ := be.open(t)
			s := openStore(t, u, set)
			p := makePlan("run-000001", 3, 200)
			if err := s.Publish(context.Background(), "run-000001", generated, p.write(t, s, "run-000001")); err != nil {
				t.Fatal(err)
			}
			m, err := s.Manifest(context.Background(), "phones")
			if err != nil {
				t.Fatal(err)
			}
			u = serveStore(t, s) + "/feeds/phones.xml"
			for _, rep := range []struct {
				name string
				ae   string
				etag string
			}{{"plain", "identity", `"run-000001.phones"`}, {"gzip", "gzip", `"run-000001.phones.gz"`}} {
				t.Run(rep.name, func(t *testing.T) {
					full := get(t, "GET", u, "Accept-Encoding", rep.ae).body
					size := int64(len(full))
					// Around every piece boundary, and the usual forms.
					var bounds []int64
					at := int64(0)
					for _, pc := range parts(&m, rep.name == "gzip") {
						at += pc.n
						bounds = append(bounds, at)
					}
					if at != size {
						t.Fatalf("manifest size %d, body %d", at, size)
					}
					type rc struct {
						spec       string
						start, end int64 // [start, end)
					}
					cases := []rc{
						{"bytes=0-0", 0, 1},
						{"bytes=0-99", 0, 100},
						{"bytes=100-", 100, size},
						{"bytes=-50", size - 50, size},
						{"bytes=-" + strconv.FormatInt(size+10, 10), 0, size},
						{"bytes=5-" + strconv.FormatInt(size+1000, 10), 5, size},
						{"bytes=" + strconv.FormatInt(size-1, 10) + "-", size - 1, size},
						{"bytes= 10 - 20", 10, 21},
					}
					for _, b := range bounds[:len(bounds)-1] {
						for _, d := range []int64{-1, 0, 1} {
							st := b + d
							cases = append(cases,
								rc{"bytes=" + strconv.FormatInt(st, 10) + "-" + strconv.FormatInt(st+3000, 10), st, min(size, st+3001)},
								rc{"bytes=" + strconv.FormatInt(st, 10) + "-", st, size})
						}
					}
					for _, c := range cases {
						r := get(t, "GET", u, "Accept-Encoding", rep.ae, "Range", c.spec)
						if r.status != 206 {
							t.Errorf("%s: status %d: %s", c.spec, r.status, r.body)
							continue
						}
						want := "bytes " + strconv.FormatInt(c.start, 10) + "-" + strconv.FormatInt(c.end-1, 10) + "/" + strconv.FormatInt(size, 10)
						if got := r.header.Get("Content-Range"); got != want {
							t.Errorf("%s: Content-Range %q, want %q", c.spec, got, want)
						}
						if got := r.header.Get("Content-Length"); got != strconv.FormatInt(c.end-c.start, 10) {
							t.Errorf("%s: Content-Length %s, want %d", c.spec, got, c.end-c.start)
						}
						checkBytes(t, c.spec, r.body, full[c.start:c.end])
					}
					for _, c := range []struct {
						name   string
						header []string
						status int
					}{
						{"past the end", []string{"Range", "bytes=" + strconv.FormatInt(size, 10) + "-"}, 416},
						{"reversed", []string{"Range", "bytes=20-10"}, 416},
						{"garbage", []string{"Range", "bytes=x-y"}, 416},
						{"empty suffix", []string{"Range", "bytes=-0"}, 416},
						{"several ranges: whole", []string{"Range", "bytes=0-1,5-6"}, 200},
						{"other unit: whole", []string{"Range", "items=0-1"}, 200},
						{"if-range matches", []string{"Range", "bytes=10-19", "If-Range", rep.etag}, 206},
						{"if-range other etag: whole", []string{"Range", "bytes=10-19", "If-Range", `"run-000000.phones"`}, 200},
						{"if-range weak: whole", []string{"Range", "bytes=10-19", "If-Range", "W/" + rep.etag}, 200},
						{"if-range date matches", []string{"Range", "bytes=10-19", "If-Range", generated.Format(http.TimeFormat)}, 206},
						{"if-range older date: whole", []string{"Range", "bytes=10-19", "If-Range", generated.Add(-time.Hour).Format(http.TimeFormat)}, 200},
					} {
						r := get(t, "GET", u, append([]string{"Accept-Encoding", rep.ae}, c.header...)...)
						if r.status != c.status {
							t.Errorf("%s: status %d, want %d", c.name, r.status, c.status)
							continue
						}
						switch c.status {
						case 416:
							if got := r.header.Get("Content-Range"); got != "bytes */"+strconv.FormatInt(size, 10) {
								t.Errorf("%s: Content-Range %q", c.name, got)
							}
						case 200:
							checkBytes(t, c.name, r.body, full)
						case 206:
							checkBytes(t, c.name, r.body, full[10:20])
						}
					}
				})
			}
		})
	}
}

func TestNotPublished(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			u, _ := be.open(t)
			s := openStore(t, u, testSet(t))
			r := get(t, "GET", serveStore(t, s)+"/feeds/phones.xml")
			if r.status != 503 || r.header.Get("Retry-After") == "" || !strings.Contains(string(r.body), "not been published") {
				t.Errorf("status %d Retry-After %q body %s, want 503", r.status, r.header.Get("Retry-After"), r.body)
			}
			if run, err := s.PublishedRun(context.Background(), "phones"); run != "" || err != nil {
				t.Errorf("PublishedRun = %q, %v", run, err)
			}
			if _, err := s.Manifest(context.Background(), "phones"); !errors.Is(err, ErrNotPublished) {
				t.Errorf("Manifest: %v, want ErrNotPublished", err)
			}
		})
	}
}

// TestPublishOrder: publishing twice is a no-op, an older run never
// replaces a newer one, and a newer one does.
func TestPublishOrder(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			set := testSet(t)
			u, _ := be.open(t)
			s := openStore(t, u, set)
			base := serveStore(t, s)
			ctx := context.Background()
			plans := map[string]plan{}
			refs := map[string][]PartRef{}
			for _, run := range []string{"run-000001", "run-000002", "run-000003"} {
				plans[run] = makePlan(run, 2, 20)
				refs[run] = plans[run].write(t, s, run)
			}
			steps := []struct {
				publish string
				serves  string
			}{
				{"run-000002", "run-000002"},
				{"run-000002", "run-000002"}, // again
				{"run-000001", "run-000002"}, // older
				{"run-000003", "run-000003"},
				{"run-000002", "run-000003"},
			}
			for i, st := range steps {
				if err := s.Publish(ctx, st.publish, generated.Add(time.Duration(i)*time.Hour), refs[st.publish]); err != nil {
					t.Fatalf("step %d: publish %s: %v", i, st.publish, err)
				}
				if run, err := s.PublishedRun(ctx, "phones"); run != st.serves || err != nil {
					t.Fatalf("step %d: PublishedRun = %q, %v; want %s", i, run, err, st.serves)
				}
				r := get(t, "GET", base+"/feeds/phones.xml")
				if !strings.Contains(string(r.body), "<id>"+st.serves+"-phones-p0-0</id>") || strings.Count(string(r.body), "<item>") != 41 {
					t.Errorf("step %d: body is not %s's", i, st.serves)
				}
			}
		})
	}
}

func TestDeleteRuns(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			set := testSet(t)
			u, _ := be.open(t)
			s := openStore(t, u, set)
			ctx := context.Background()
			runs := []string{"run-000001", "run-000002", "run-000003", "run-000004", "run-000005"}
			refs := map[string][]PartRef{}
			for _, run := range runs {
				refs[run] = makePlan(run, 2, 10).write(t, s, run)
			}
			for _, run := range []string{"run-000003", "run-000004"} {
				if err := s.Publish(ctx, run, generated, refs[run]); err != nil {
					t.Fatal(err)
				}
			}
			// A writer that failed before its manifest left a pack only.
			w, err := s.NewPartWriter("run-000006", 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Item(0, []byte("<item/>")); err != nil {
				t.Fatal(err)
			}
			w.Abort()
			got, err := s.Runs(ctx)
			if err != nil || !slices.Equal(got, runs) {
				t.Fatalf("Runs = %v, %v; want %v", got, err, runs)
			}
			// keep says no to everything but run-000002: the published run
			// stays anyway.
			if err := s.DeleteRuns(ctx, func(run string) bool { return run == "run-000002" }); err != nil {
				t.Fatal(err)
			}
			got, err = s.Runs(ctx)
			if want := []string{"run-000002", "run-000004"}; err != nil || !slices.Equal(got, want) {
				t.Fatalf("Runs after DeleteRuns = %v, %v; want %v", got, err, want)
			}
			r := get(t, "GET", serveStore(t, s)+"/feeds/phones.xml")
			if r.status != 200 || !strings.Contains(string(r.body), "run-000004-phones") {
				t.Errorf("after DeleteRuns: %d %.200s", r.status, r.body)
			}
			if _, err := s.readPart(ctx, "run-000003", refs["run-000003"][0]); !errors.Is(err, ErrPartMissing) {
				t.Errorf("part of a deleted run: %v", err)
			}
			if be.name == "file" {
				entries, err := os.ReadDir(filepath.Join(s.fileDir, "runs"))
				if err != nil || len(entries) != 2 {
					t.Errorf("runs dir holds %d entries (%v), want 2", len(entries), err)
				}
			}
		})
	}
}

// TestAttempts: two writers of the same (run, partition), as two
// instances or a restart, keep their own objects; the one published is
// served.
func TestAttempts(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			set := testSet(t)
			u, _ := be.open(t)
			s := openStore(t, u, set)
			ctx := context.Background()
			a := makePlan("run-a", 1, 30)
			b := makePlan("run-b", 1, 50)
			ma, err := writePart(s, "run-000001", 0, a[0])
			if err != nil {
				t.Fatal(err)
			}
			mb, err := writePart(s, "run-000001", 0, b[0])
			if err != nil {
				t.Fatal(err)
			}
			if ma.Attempt == mb.Attempt {
				t.Fatalf("two writers got attempt %s", ma.Attempt)
			}
			for _, c := range []struct {
				m    PartManifest
				want plan
			}{{ma, a}, {mb, b}} {
				got, err := s.readPart(ctx, "run-000001", c.m.Ref())
				if err != nil || got.PackBytes != c.m.PackBytes || got.Items("phones") != c.m.Items("phones") {
					t.Errorf("part %s: %+v, %v", c.m.Attempt, got, err)
				}
			}
			if err := s.Publish(ctx, "run-000001", generated, []PartRef{mb.Ref()}); err != nil {
				t.Fatal(err)
			}
			r := get(t, "GET", serveStore(t, s)+"/feeds/shoes.xml")
			checkBytes(t, "published attempt", r.body, b.doc(set, "shoes"))
		})
	}
}

func TestPublishErrors(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			set := testSet(t)
			u, _ := be.open(t)
			s := openStore(t, u, set)
			ctx := context.Background()
			refs := makePlan("run-000001", 2, 10).write(t, s, "run-000001")
			cases := []struct {
				name  string
				run   string
				parts []PartRef
				want  string
				is    error
			}{
				{"no parts", "run-000001", nil, "no parts", nil},
				{"unknown attempt", "run-000001", []PartRef{refs[0], {Partition: 7, Attempt: "0123"}}, "run run-000001 partition 7 attempt 0123: no runs/run-000001/p-000007/0123/manifest.json", ErrPartMissing},
				{"other run", "run-000002", refs, "no runs/run-000002/", ErrPartMissing},
				{"partition twice", "run-000001", []PartRef{refs[0], refs[0]}, "given twice", nil},
				{"bad run id", "../x", refs, "invalid run id", nil},
			}
			for _, c := range cases {
				err := s.Publish(ctx, c.run, generated, c.parts)
				if err == nil || !strings.Contains(err.Error(), c.want) || c.is != nil && !errors.Is(err, c.is) {
					t.Errorf("%s: %v, want %q", c.name, err, c.want)
				}
			}
			if run, _ := s.PublishedRun(ctx, "phones"); run != "" {
				t.Errorf("a failed publish published %s", run)
			}
		})
	}
}

// TestStoreFailing: with the S3 store refusing writes, Finish and Publish
// fail with the object and the store's answer, and every instance still
// serves the version published before; with reads refused, GET is a 502.
func TestStoreFailing(t *testing.T) {
	set := testSet(t)
	srv, f := startS3(t, "feeds")
	s := openStore(t, s3URL(srv.URL, "feeds"), set)
	ctx := context.Background()
	p1 := makePlan("run-000001", 2, 20)
	if err := s.Publish(ctx, "run-000001", generated, p1.write(t, s, "run-000001")); err != nil {
		t.Fatal(err)
	}
	refs2 := makePlan("run-000002", 2, 20).write(t, s, "run-000002")
	base := serveStore(t, s)
	want := p1.doc(set, "phones")

	f.failWrite.Store(true)
	_, err := writePart(s, "run-000003", 0, makePlan("run-000003", 1, 5)[0])
	if err == nil || !strings.Contains(err.Error(), "part of run run-000003 partition 0: upload runs/run-000003/p-000000/") ||
		!strings.Contains(err.Error(), "AccessDenied") {
		t.Errorf("Finish with writes refused: %v", err)
	}
	err = s.Publish(ctx, "run-000002", generated, refs2)
	if err == nil || !strings.Contains(err.Error(), "publish run run-000002: write feeds/") || !strings.Contains(err.Error(), ".json to s3://feeds?") ||
		!strings.Contains(err.Error(), "AccessDenied") {
		t.Errorf("Publish with writes refused: %v", err)
	}
	for _, ae := range []string{"gzip", "identity"} {
		r := get(t, "GET", base+"/feeds/phones.xml", "Accept-Encoding", ae)
		body := r.body
		if ae == "gzip" {
			body = gunzip(t, body)
		}
		if r.status != 200 {
			t.Fatalf("GET while writes fail: %d", r.status)
		}
		checkBytes(t, "served while writes fail", body, want)
	}
	f.failWrite.Store(false)

	f.failGet.Store(true)
	r := get(t, "GET", base+"/feeds/phones.xml")
	if r.status != http.StatusBadGateway || !strings.Contains(string(r.body), "feed store is unavailable") {
		t.Errorf("GET while reads fail: %d %s", r.status, r.body)
	}
	f.failGet.Store(false)
	if r := get(t, "GET", base+"/feeds/phones.xml"); r.status != 200 {
		t.Errorf("GET after reads recovered: %d", r.status)
	}
}

func TestOpenErrors(t *testing.T) {
	awsEnv(t)
	srv, _ := startS3(t, "feeds")
	for _, c := range []struct {
		name, url string
		want      []string
	}{
		{"empty", "", []string{"want file:///abs/dir"}},
		{"relative file", "file://./feeds", []string{"absolute path"}},
		{"scheme", "ftp://x/y", []string{`unsupported scheme "ftp"`}},
		{"missing bucket", s3URL(srv.URL, "nope"), []string{"s3://nope", "NoSuchBucket", "check the bucket name"}},
		{"bad parameter", "s3://feeds?colour=blue", []string{"colour", "s3://feeds"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Open(context.Background(), c.url, t.TempDir(), testSet(t), zap.NewNop())
			for _, w := range c.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("Open(%q) = %v, want it to say %q", c.url, err, w)
				}
			}
		})
	}
	t.Run("closed port", func(t *testing.T) {
		// A port nothing listens on: a listener closed at once.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		endpoint := "http://" + ln.Addr().String()
		_ = ln.Close()
		_, err = Open(context.Background(), s3URL(endpoint, "feeds"), t.TempDir(), testSet(t), zap.NewNop())
		if err == nil || !strings.Contains(err.Error(), "list objects") || !strings.Contains(err.Error(), "endpoint") {
			t.Errorf("Open against a closed port: %v", err)
		}
	})
}

func TestSpoolFiles(t *testing.T) {
	set := testSet(t)
	spool := filepath.Join(t.TempDir(), "spool")
	if err := os.MkdirAll(spool, 0o755); err != nil {
		t.Fatal(err)
	}
	left := filepath.Join(spool, "part-123.spool")
	other := filepath.Join(spool, "keep.txt")
	for _, f := range []string{left, other} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(context.Background(), "file://"+filepath.Join(t.TempDir(), "store"), spool, set, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(left); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leftover spool file not removed: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("other file removed: %v", err)
	}
	spools := func() int {
		n, _ := filepath.Glob(filepath.Join(spool, spoolPattern))
		return len(n)
	}
	w, _ := s.NewPartWriter("run-000001", 0)
	for i := range 80000 { // more than a fragment per feed: compressed to the spool
		_ = w.Item(i%4, []byte("<item>"+strconv.Itoa(i)+"</item>"))
	}
	if spools() != 1 {
		t.Errorf("%d spool files while writing, want 1", spools())
	}
	w.Abort()
	w.Abort()
	if spools() != 0 {
		t.Errorf("%d spool files after Abort", spools())
	}
	if err := w.Item(0, []byte("x")); err == nil {
		t.Error("Item after Abort succeeded")
	}
	if _, err := w.Finish(context.Background()); err == nil {
		t.Error("Finish after Abort succeeded")
	}
	w, _ = s.NewPartWriter("run-000001", 1)
	_ = w.Item(0, []byte("<item/>"))
	if _, err := w.Finish(context.Background()); err != nil {
		t.Fatal(err)
	}
	if spools() != 0 {
		t.Errorf("%d spool files after Finish", spools())
	}
	if err := w.Item(-1, nil); err == nil {
		t.Error("Item with a bad index succeeded")
	}
}

// TestPartWriterBudget: feeds at once stay within the page budget, from
// one page to more than the feeds need; every item still arrives, in
// order.
func TestPartWriterBudget(t *testing.T) {
	for _, budget := range []int{1, 2 * pageBytes, 5 * pageBytes, 3 * chunkBytes, DefaultPartBufferBytes} {
		t.Run(strconv.Itoa(budget), func(t *testing.T) {
			testPartWriterBudget(t, budget)
		})
	}
}

func testPartWriterBudget(t *testing.T, budget int) {
	set := testSet(t)
	s := openStore(t, "file://"+filepath.Join(t.TempDir(), "store"), set)
	s.PartBufferBytes = budget
	p := makePlan("run-000001", 2, 3000)
	w, err := s.NewPartWriter("run-000001", 1) // holds the item larger than a chunk
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range p[1] {
		f, _ := set.Feed(it.feed)
		if err := w.Item(f.Index, it.item); err != nil {
			t.Fatal(err)
		}
		if w.npages > max(1, budget/pageBytes) {
			t.Fatalf("%d pages, budget %d", w.npages, budget)
		}
	}
	p = plan{1: p[1]}
	m, err := w.Finish(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(context.Background(), "run-000001", generated, []PartRef{m.Ref()}); err != nil {
		t.Fatal(err)
	}
	base := serveStore(t, s)
	for _, feed := range []string{"phones", "shoes"} {
		checkBytes(t, feed, gunzip(t, get(t, "GET", base+"/feeds/"+feed+".xml", "Accept-Encoding", "gzip").body), p.doc(set, feed))
	}
}

// TestLargePack: a pack larger than S3's multipart threshold (16 MiB), so
// S3 takes it as a multipart upload of 8 MiB parts.
func TestLargePack(t *testing.T) {
	if raceEnabled {
		t.Skip("slow under the race detector; runs in the plain test run")
	}
	srv, f := startS3(t, "feeds")
	set := testSet(t)
	s := openStore(t, s3URL(srv.URL, "feeds"), set)
	// Base64 of a PRNG compresses to about 3/4: 24 MiB of items makes a
	// pack of about 18 MiB.
	rnd := rand.New(rand.NewPCG(1, 2))
	var items []planItem
	raw := make([]byte, 384)
	for range 64 << 10 {
		for j := 0; j < len(raw); j += 8 {
			binary.LittleEndian.PutUint64(raw[j:], rnd.Uint64())
		}
		items = append(items, planItem{feed: "phones", item: []byte("<item>" + base64.StdEncoding.EncodeToString(raw) + "</item>\n")})
	}
	p := plan{0: items}
	refs := p.write(t, s, "run-000001")
	if err := s.Publish(context.Background(), "run-000001", generated, refs); err != nil {
		t.Fatal(err)
	}
	m, _ := s.Manifest(context.Background(), "phones")
	if m.Bytes < 17<<20 || f.multipart.Load() == 0 {
		t.Fatalf("pack of %d bytes, %d multipart uploads: not past the 16 MiB threshold", m.Bytes, f.multipart.Load())
	}
	base := serveStore(t, s)
	checkBytes(t, "gzip", gunzip(t, get(t, "GET", base+"/feeds/phones.xml", "Accept-Encoding", "gzip").body), p.doc(set, "phones"))
	checkBytes(t, "plain", get(t, "GET", base+"/feeds/phones.xml").body, p.doc(set, "phones"))
}

func TestCRC32Combine(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 2, 3, 7, 100, 4096, 65537, 1 << 20} {
		a := make([]byte, rnd.IntN(5000))
		b := make([]byte, n)
		for i := range a {
			a[i] = byte(rnd.Uint32())
		}
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		want := crc32.ChecksumIEEE(append(slices.Clone(a), b...))
		if got := crc32Combine(crc32.ChecksumIEEE(a), crc32.ChecksumIEEE(b), int64(n)); got != want {
			t.Errorf("len %d+%d: %08x, want %08x", len(a), n, got, want)
		}
	}
}

// TestOneMember: the gzip representation is one gzip member (clients
// that refuse concatenated members, like curl, decode it), with the CRC
// and length of the whole document.
func TestOneMember(t *testing.T) {
	set := testSet(t)
	s := openStore(t, "file://"+t.TempDir()+"/store", set)
	p := makePlan("run-000001", 3, 500)
	if err := s.Publish(context.Background(), "run-000001", generated, p.write(t, s, "run-000001")); err != nil {
		t.Fatal(err)
	}
	base := serveStore(t, s)
	for _, feed := range []string{"phones", "shoes", "empty"} {
		body := get(t, "GET", base+"/feeds/"+feed+".xml", "Accept-Encoding", "gzip").body
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		zr.Multistream(false)
		got, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("%s: first member: %v", feed, err)
		}
		checkBytes(t, feed+": first member", got, p.doc(set, feed))
		if err := zr.Reset(bytes.NewReader(nil)); !errors.Is(err, io.EOF) {
			t.Errorf("%s: %v after the first member, want nothing", feed, err)
		}
		rest, _ := io.ReadAll(zr)
		if len(rest) != 0 {
			t.Errorf("%s: %d bytes after the first member", feed, len(rest))
		}
		m, _ := s.Manifest(context.Background(), feed)
		if m.RawCRC32 != crc32.ChecksumIEEE(got) || m.RawBytes != int64(len(got)) {
			t.Errorf("%s: manifest CRC %08x length %d, document %08x %d", feed, m.RawCRC32, m.RawBytes, crc32.ChecksumIEEE(got), len(got))
		}
	}
}

// TestCorruptPiece: stored bytes that do not match the manifest cut the
// response (Content-Length is not reached) instead of serving them.
func TestCorruptPiece(t *testing.T) {
	set := testSet(t)
	dir := t.TempDir() + "/store"
	s := openStore(t, "file://"+dir, set)
	p := makePlan("run-000001", 1, 300)
	if err := s.Publish(context.Background(), "run-000001", generated, p.write(t, s, "run-000001")); err != nil {
		t.Fatal(err)
	}
	m, _ := s.Manifest(context.Background(), "phones")
	pc := m.Pieces[0]
	path := filepath.Join(dir, filepath.FromSlash(pc.Object))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// A flipped byte: the deflate stream fails to decode, or decodes to
	// other bytes; either way neither CRC matches.
	b[pc.Offset+pc.Bytes/2] ^= 0x55
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	u := serveStore(t, s) + "/feeds/phones.xml"
	for _, ae := range []string{"gzip", "identity"} {
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("Accept-Encoding", ae)
		resp, err := rawClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Errorf("%s: a corrupt piece served whole (%d bytes)", ae, len(body))
		}
	}
}
