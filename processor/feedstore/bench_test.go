package feedstore

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
)

var (
	benchWords = []string{"Samsung", "Galaxy", "Apple", "iPhone", "Xiaomi", "Redmi", "Phone", "Smartphone", "Black", "White",
		"Blue", "Graphite", "128 GB", "256 GB", "512 GB", "Dual SIM", "5G", "Case", "Silicone", "Charger", "USB-C", "Fast",
		"Kitchen", "Knife", "Steel", "Chef", "Pro", "Max", "Ultra", "Lite", "Cotton", "Shirt", "Running", "Shoes", "Men",
		"Women", "Kids", "Set", "Pack", "Original", "New", "Warranty", "Edition", "2025", "Wireless", "Bluetooth", "Headphones"}
	benchCategories = []string{"Electronics &gt; Phones &gt; Smartphones", "Electronics &gt; Phones &gt; Accessories",
		"Home &gt; Kitchen &gt; Knives", "Fashion &gt; Men &gt; Shirts", "Sports &gt; Running &gt; Shoes", "Electronics &gt; Audio"}
)

// appendBenchItem appends a google-merchant-like item of about 800 bytes
// with varied ids, titles, prices and links, so that it compresses like a
// real feed.
func appendBenchItem(dst []byte, rnd *rand.Rand, i int) []byte {
	id := 1_000_000 + i*7919%9_000_000
	title := func(dst []byte, n int) []byte {
		for j := range n {
			if j > 0 {
				dst = append(dst, ' ')
			}
			dst = append(dst, benchWords[rnd.IntN(len(benchWords))]...)
		}
		return dst
	}
	dst = append(dst, "<item><g:id>offer-"...)
	dst = strconv.AppendInt(dst, int64(id), 10)
	dst = append(dst, "</g:id><title>"...)
	dst = title(dst, 5+rnd.IntN(6))
	dst = append(dst, "</title><description>"...)
	dst = title(dst, 25+rnd.IntN(30))
	dst = append(dst, ".</description><link>https://shop.example.com/o/"...)
	dst = strconv.AppendInt(dst, int64(id), 10)
	dst = append(dst, "?utm_source=feed&amp;seller="...)
	dst = strconv.AppendInt(dst, int64(rnd.IntN(50_000)), 10)
	dst = append(dst, "</link><g:image_link>https://img.example.com/"...)
	dst = strconv.AppendUint(dst, rnd.Uint64(), 36)
	dst = append(dst, ".jpg</g:image_link><g:availability>"...)
	if rnd.IntN(10) == 0 {
		dst = append(dst, "out_of_stock"...)
	} else {
		dst = append(dst, "in_stock"...)
	}
	dst = append(dst, "</g:availability><g:price>"...)
	dst = strconv.AppendInt(dst, int64(rnd.IntN(5000)), 10)
	dst = append(dst, '.')
	c := rnd.IntN(100)
	dst = append(dst, byte('0'+c/10), byte('0'+c%10))
	dst = append(dst, " PLN</g:price><g:condition>new</g:condition><g:brand>"...)
	dst = append(dst, benchWords[rnd.IntN(8)]...)
	dst = append(dst, "</g:brand><g:gtin>590"...)
	dst = strconv.AppendInt(dst, 1_000_000_000+rnd.Int64N(9_000_000_000), 10)
	dst = append(dst, "</g:gtin><g:product_type>"...)
	dst = append(dst, benchCategories[rnd.IntN(len(benchCategories))]...)
	return append(dst, "</g:product_type></item>\n"...)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchItems() int {
	if v, err := strconv.Atoi(os.Getenv("FEEDMILL_BENCH_FEED_ITEMS")); err == nil && v > 0 {
		return v
	}
	return 1_000_000
}

// discard is a ResponseWriter that drops the body: the handler's own cost.
type discard struct {
	h http.Header
	n int64
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(int)             {}
func (d *discard) Write(p []byte) (int, error) { d.n += int64(len(p)); return len(p), nil }

// BenchmarkServe serves a feed of FEEDMILL_BENCH_FEED_ITEMS (default 1M)
// items of about 800 bytes over 8 partitions from a file:// store: the
// handler alone (direct) and through a loopback server and client (http,
// whose CPU includes the client's reading). It reports CPU and wall
// seconds per download and the stored bytes per item.
//
//	go test -run '^$' -bench BenchmarkServe -benchtime 3x ./processor/feedstore/
func BenchmarkServe(b *testing.B) {
	set, err := feeds.Compile([]config.Feed{{ID: "big", Filter: "true", Template: config.TemplateGoogleMerchant, File: true}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	s, err := Open(context.Background(), "file://"+filepath.Join(dir, "store"), filepath.Join(dir, "spool"), set, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	items := benchItems()
	const partitions = 8
	var refs []PartRef
	var raw int64
	rnd := rand.New(rand.NewPCG(7, 8))
	var item []byte
	for p := range int32(partitions) {
		w, err := s.NewPartWriter("run-000001", p)
		if err != nil {
			b.Fatal(err)
		}
		for i := int(p); i < items; i += partitions {
			item = appendBenchItem(item[:0], rnd, i)
			raw += int64(len(item))
			if err := w.Item(0, item); err != nil {
				b.Fatal(err)
			}
		}
		m, err := w.Finish(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		refs = append(refs, m.Ref())
	}
	if err := s.Publish(context.Background(), "run-000001", time.Now(), refs); err != nil {
		b.Fatal(err)
	}
	m, err := s.Manifest(context.Background(), "big")
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	s.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, c := range []struct {
		name string
		ae   string
		size int64
	}{{"gzip", "gzip", m.Bytes}, {"plain", "identity", m.RawBytes}} {
		b.Run(c.name+"/direct", func(b *testing.B) {
			req := httptest.NewRequest("GET", "/feeds/big.xml", nil)
			req.Header.Set("Accept-Encoding", c.ae)
			b.SetBytes(c.size)
			cpu0 := cpuTime()
			for b.Loop() {
				d := &discard{h: http.Header{}}
				mux.ServeHTTP(d, req)
				if d.n != c.size {
					b.Fatalf("%d bytes served, want %d", d.n, c.size)
				}
			}
			report(b, cpu0, items, m)
		})
		b.Run(c.name+"/http", func(b *testing.B) {
			b.SetBytes(c.size)
			cpu0 := cpuTime()
			for b.Loop() {
				req, _ := http.NewRequest("GET", srv.URL+"/feeds/big.xml", nil)
				req.Header.Set("Accept-Encoding", c.ae)
				resp, err := rawClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || n != c.size {
					b.Fatalf("%d bytes read (%v), want %d", n, err, c.size)
				}
			}
			report(b, cpu0, items, m)
		})
	}
}

func report(b *testing.B, cpu0 time.Duration, items int, m FeedManifest) {
	b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "wall-s/op")
	b.ReportMetric(float64(m.Bytes)/float64(items), "gz-B/item")
	b.ReportMetric(float64(m.RawBytes)/float64(items), "raw-B/item")
}

// BenchmarkPartWriter writes items of about 800 bytes, each to one file
// feed chosen at random, of one partition and finishes the part into a
// file:// store: 50 feeds per compression level, and 1300 feeds at the
// chosen level per buffer budget (PartBufferBytes).
// It reports items/s, stored and raw bytes per item and CPU per item.
//
//	go test -run '^$' -bench BenchmarkPartWriter -benchtime 300000x ./processor/feedstore/
func BenchmarkPartWriter(b *testing.B) {
	sets := map[int]*feeds.Set{}
	for _, n := range []int{50, 1300} {
		var fs []config.Feed
		for i := range n {
			fs = append(fs, config.Feed{ID: fmt.Sprintf("f%04d", i), Filter: "true", Template: config.TemplateGoogleMerchant, File: true})
		}
		set, err := feeds.Compile(fs, nil)
		if err != nil {
			b.Fatal(err)
		}
		sets[n] = set
	}
	type variant struct{ feeds, level, budgetMiB int }
	var vs []variant
	for _, level := range []int{1, 3, 5, 6, 7, 9} {
		vs = append(vs, variant{50, level, DefaultPartBufferBytes >> 20})
	}
	for _, mib := range []int{8, 16, 32, 48} {
		vs = append(vs, variant{1300, DefaultCompressionLevel, mib})
	}
	for _, v := range vs {
		b.Run(fmt.Sprintf("feeds=%d/level=%d/budget=%dMiB", v.feeds, v.level, v.budgetMiB), func(b *testing.B) {
			dir := b.TempDir()
			s, err := Open(context.Background(), "file://"+filepath.Join(dir, "store"), filepath.Join(dir, "spool"), sets[v.feeds], zap.NewNop())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			s.CompressionLevel = v.level
			s.PartBufferBytes = v.budgetMiB << 20
			rnd := rand.New(rand.NewPCG(1, 2))
			var item []byte
			w, err := s.NewPartWriter("run-000001", 0)
			if err != nil {
				b.Fatal(err)
			}
			var raw int64
			cpu0 := cpuTime()
			i := 0
			for b.Loop() {
				item = appendBenchItem(item[:0], rnd, i)
				raw += int64(len(item))
				if err := w.Item(rnd.IntN(v.feeds), item); err != nil {
					b.Fatal(err)
				}
				i++
			}
			m, err := w.Finish(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			cpu := cpuTime() - cpu0
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
			b.ReportMetric(float64(m.PackBytes)/float64(b.N), "gz-B/item")
			b.ReportMetric(float64(raw)/float64(b.N), "raw-B/item")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/item")
		})
	}
}
