package fullpass_test

import (
	"bufio"
	"context"
	"errors"
	"hash/fnv"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/internal/synth"
	"github.com/feedmill/feedmill/processor"
	"github.com/feedmill/feedmill/processor/feedstore"
	"github.com/feedmill/feedmill/processor/fullpass"
	"github.com/feedmill/feedmill/processor/runlog"
	"github.com/feedmill/feedmill/state"
)

// benchFeeds returns n feeds plus "all-gmc", a google-merchant file feed of
// every active offer (the large document the serve figure uses).
func benchFeeds(n int) []config.Feed {
	fs := []config.Feed{{ID: "all-gmc", Filter: `offer.status == "ACTIVE"`, Template: synth.TemplateGoogle, Destinations: []string{synth.DestinationGMC}, File: true}}
	return append(fs, synth.FeedSet(n-1, 5)...)
}

const benchPartitions = 16

// benchState builds (once, cached in dir) a state of offers offers as the
// streaming path would have left it: offers, sellers, ratings and
// drift-free memberships with fingerprints, written straight to Pebble.
func benchState(b *testing.B, dir string, offers int, set *feeds.Set, now time.Time) {
	done := filepath.Join(dir, "complete")
	if _, err := os.Stat(done); err == nil {
		return
	}
	if err := os.RemoveAll(dir); err != nil {
		b.Fatal(err)
	}
	store, err := state.Open(filepath.Join(dir, "state"), records.NewSerde(nil), state.Options{}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	ev := set.NewEvaluator()
	member := make([]bool, len(set.Feeds()))
	const chunk = 100_000
	var buf []byte
	// Every chunk generates its own sellers with the same ids; the first
	// chunk's are the ones stored and joined.
	var sellers map[string]*records.Seller
	var ratings map[string]*records.Rating
	for c := 0; c*chunk < offers; c++ {
		gen, err := synth.New(int64(100+c), synth.Options{Offers: min(chunk, offers-c*chunk), Sellers: 2000, Now: func() time.Time { return now }})
		if err != nil {
			b.Fatal(err)
		}
		st := gen.State()
		bt := store.NewBatch()
		n := 0
		if c == 0 {
			sellers, ratings = st.Sellers, st.Ratings
			serde := records.NewSerde(nil)
			for _, s := range st.Sellers {
				if err := bt.PutTable(state.TableSellers, s.ID, func(dst []byte) ([]byte, error) { return serde.MarshalSeller(dst, s) }); err != nil {
					b.Fatal(err)
				}
			}
			for _, r := range st.Ratings {
				if err := bt.PutTable(state.TableRatings, r.SellerID, func(dst []byte) ([]byte, error) { return serde.MarshalRating(dst, r) }); err != nil {
					b.Fatal(err)
				}
			}
		}
		for _, o := range st.Offers {
			oc := *o
			oc.ID = "c" + strconv.Itoa(c) + "-" + o.ID
			h := fnv.New32a()
			h.Write([]byte(oc.ID))
			p := int32(h.Sum32() % benchPartitions)
			if err := bt.PutOffer(p, &oc); err != nil {
				b.Fatal(err)
			}
			v := feeds.View{Offer: &oc, Seller: sellers[oc.SellerID], Rating: ratings[oc.SellerID]}
			ev.Match(&v, now, member)
			var m state.Membership
			for i, f := range set.Feeds() {
				if member[i] {
					buf = ev.AppendItem(buf[:0], f.Template, &v, now)
					m.Feeds = append(m.Feeds, state.FeedMembership{FeedID: f.ID, Fingerprint: xxhash.Sum64(buf), SentAtMs: now.UnixMilli(), Destinations: f.Destinations})
				}
			}
			if len(m.Feeds) > 0 {
				m.Seq = 1
				if err := bt.PutMembership(p, oc.ID, &m); err != nil {
					b.Fatal(err)
				}
			}
			if n++; n%10_000 == 0 {
				if err := bt.Commit(false); err != nil {
					b.Fatal(err)
				}
				bt.Close()
				bt = store.NewBatch()
			}
		}
		if err := bt.Commit(false); err != nil {
			b.Fatal(err)
		}
		bt.Close()
	}
	if err := store.Close(); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(done, nil, 0o644); err != nil {
		b.Fatal(err)
	}
}

// peakRSSMiB reads VmHWM of this process.
func peakRSSMiB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

// BenchmarkFullPass runs full passes over a state of FEEDMILL_BENCH_OFFERS
// offers (default 1M) with 10 and 1300 feeds. The state is built once per
// size under FEEDMILL_BENCH_DIR (default the temp dir) and reused, so run
// it twice: the second run's peak_rss_MiB is the pass alone. It reports
// offers/s, the peak RSS, the time to serve the 1M-item all-gmc feed
// gzipped and bytes per item of the documents.
//
//	go test ./processor/fullpass -run '^$' -bench BenchmarkFullPass -benchtime 1x -timeout 60m
func BenchmarkFullPass(b *testing.B) {
	offers := 1_000_000
	if s := os.Getenv("FEEDMILL_BENCH_OFFERS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatal(err)
		}
		offers = n
	}
	root := os.Getenv("FEEDMILL_BENCH_DIR")
	if root == "" {
		root = os.TempDir()
	}
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for _, nf := range []int{10, 1300} {
		b.Run("feeds="+strconv.Itoa(nf)+"/offers="+strconv.Itoa(offers), func(b *testing.B) {
			set, err := feeds.Compile(benchFeeds(nf), nil)
			if err != nil {
				b.Fatal(err)
			}
			dir := filepath.Join(root, "feedmill-fullpass-"+strconv.Itoa(nf)+"-"+strconv.Itoa(offers))
			benchState(b, dir, offers, set, now)
			store, err := state.Open(filepath.Join(dir, "state"), records.NewSerde(nil), state.Options{}, zap.NewNop())
			if err != nil {
				b.Fatal(err)
			}
			defer store.Close()
			ctx := context.Background()
			// A fresh store: run ids come from the (fixed) clock.
			if err := os.RemoveAll(filepath.Join(dir, "feeds")); err != nil {
				b.Fatal(err)
			}
			files, err := feedstore.Open(ctx, "file://"+filepath.Join(dir, "feeds"), filepath.Join(dir, "spool"), set, zap.NewNop())
			if err != nil {
				b.Fatal(err)
			}
			defer files.Close()
			cfg := config.Default().FullPass
			cfg.Guard.MinSize = 1 << 30
			workers := runtime.GOMAXPROCS(0)
			if s := os.Getenv("FEEDMILL_BENCH_WORKERS"); s != "" {
				if workers, err = strconv.Atoi(s); err != nil {
					b.Fatal(err)
				}
			}
			fp, err := fullpass.New(fullpass.Deps{
				Config: cfg, Store: store, Feeds: set, Files: files, Serde: records.NewSerde(nil), Stream: noStream{},
				Log: runlog.NewMemory(), Instance: "bench", Workers: workers, FeedSet: "bench",
				Registry: prometheus.NewRegistry(), Logger: benchLogger(b), Now: func() time.Time { return now },
			})
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			var r runlog.Run
			began := time.Now()
			decided := make(chan time.Duration, 1)
			go func() {
				for {
					if rs := fp.Runs(1); len(rs) > 0 && rs[0].Status != runlog.StatusRunning {
						decided <- time.Since(began)
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()
			for range b.N {
				r, err = fp.RunOnce(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if r.Status != runlog.StatusPublished || r.Listed != 0 {
					b.Fatalf("run %+v", r)
				}
			}
			b.StopTimer()
			b.ReportMetric((<-decided).Seconds(), "scan_s")
			if got, err := files.PublishedRun(ctx, "all-gmc"); err != nil || got != r.ID {
				b.Fatalf("published run of all-gmc: %q (%v), want %s", got, err, r.ID)
			}
			var items int64
			for _, f := range r.Feeds {
				if f.File {
					items += f.Members
				}
			}
			b.ReportMetric(float64(r.Scanned)*float64(b.N)/b.Elapsed().Seconds(), "offers/s")
			b.ReportMetric(float64(items)*float64(b.N)/b.Elapsed().Seconds(), "file_items/s")
			b.ReportMetric(peakRSSMiB(), "peak_rss_MiB")

			// Serve the big feed, gzipped (the stored members as they
			// are) and plain (decompressed on the fly): wall and CPU time.
			mux := http.NewServeMux()
			files.Register(mux)
			srv := httptest.NewServer(mux)
			defer srv.Close()
			var allItems int64
			for _, f := range r.Feeds {
				if f.ID == "all-gmc" {
					allItems = f.Members
				}
			}
			for _, enc := range []string{"gzip", "identity"} {
				req, _ := http.NewRequest("GET", srv.URL+"/feeds/all-gmc.xml", nil)
				req.Header.Set("Accept-Encoding", enc)
				cpu0, start := cpuSeconds(), time.Now()
				resp, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}}).Do(req)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					b.Fatal(resp.Status, err)
				}
				b.ReportMetric(time.Since(start).Seconds(), "serve_"+enc+"_s")
				b.ReportMetric(cpuSeconds()-cpu0, "serve_"+enc+"_cpu_s")
				if allItems > 0 {
					b.ReportMetric(float64(n)/float64(allItems), enc+"_bytes/item")
				}
			}
			b.ReportMetric(float64(allItems), "all_gmc_items")
			// Bytes per item stored: the run's part objects over every
			// file feed's items.
			var stored int64
			_ = filepath.WalkDir(filepath.Join(dir, "feeds", "runs", r.ID), func(_ string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() && d.Name() != "manifest.json" {
					if fi, err := d.Info(); err == nil {
						stored += fi.Size()
					}
				}
				return nil
			})
			if items > 0 {
				b.ReportMetric(float64(stored)/float64(items), "stored_bytes/item")
			}
		})
	}
}

// benchLogger logs warnings and errors (a failed publication) to b.
func benchLogger(b *testing.B) *zap.Logger { return zaptest.NewLogger(b, zaptest.Level(zap.WarnLevel)) }

// cpuSeconds is the process's user + system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// noStream is the streaming path of a benchmark over a drift-free state:
// a pass over it must not need corrections.
type noStream struct{}

func (noStream) ApplyFixes(context.Context, []state.Fix, time.Duration) (processor.FixResult, error) {
	return processor.FixResult{}, errors.New("a drift-free state needs no corrections")
}

func (noStream) ReportEvalErrors(context.Context, *processor.EvalErrorSource) {}

func (noStream) Coverage() ([]int32, int32) {
	owned := make([]int32, benchPartitions)
	for i := range owned {
		owned[i] = int32(i)
	}
	return owned, benchPartitions
}
