package processor_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/feedmill/feedmill/internal/apptest"
)

// BenchmarkLiveFeedChange: one `feedmill run` over the scale catalog
// (FEEDMILL_SCALE_OFFERS, default 200,000) with 1299 feeds, live changes
// flowing at 1,000/s; then a dry run of a 1300th feed (its time), a PUT
// of it, and the time until its backfill is done (no partition pending
// in /api/feeds/backfill). It reports the dry run's time, the backfill's
// time and the p99 of feedmill_change_to_event_seconds (live changes
// only) before and during the backfill.
//
//	FEEDMILL_SCALE_OFFERS=1000000 go test ./processor -run '^$' -v -benchtime 1x -timeout 60m -bench BenchmarkLiveFeedChange
func BenchmarkLiveFeedChange(b *testing.B) {
	scaleSkip(b)
	s := newScaleSetup(b, scalePartitions)
	fs := scaleFeeds(1300)
	added := fs[1299]
	added.ID = "live-added" // a broad feed: many members to add
	added.Filter = `offer.status == "ACTIVE" && offer.stock > 0 && offer.price < 50`
	cfg := apptest.ScaleConfig(b, s.env, fs[:1299])
	p := apptest.StartProc(b, s.bin, "live", cfg)
	apptest.WaitProcsIdle(b, s.env, time.Hour, p)
	base := "http://" + cfg.HTTP.Listen

	// Live traffic at 1,000 changes/s until the end.
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			for range 10 {
				if err := s.cat.Producer.Produce(ctx, s.cat.Gen.Next()); err != nil && ctx.Err() == nil {
					b.Error(err)
					return
				}
			}
			_ = s.cat.Producer.Flush(ctx)
		}
	}()
	defer func() { stop(); wg.Wait() }()
	time.Sleep(10 * time.Second) // traffic settles (not an assert)
	before := latencyBuckets(b, base)
	time.Sleep(10 * time.Second)
	steady := latencyBuckets(b, base)

	def, _ := json.Marshal(map[string]any{"id": added.ID, "filter": added.Filter, "template": added.Template,
		"destinations": added.Destinations, "file": added.File})
	began := time.Now()
	resp, err := http.Post(base+"/api/feeds/dry-run", "application/json", bytes.NewReader(def))
	if err != nil {
		b.Fatal(err)
	}
	var dry struct {
		Complete bool  `json:"complete"`
		Members  int64 `json:"members"`
		TookMs   int64 `json:"took_ms"`
		Scanned  int64 `json:"scanned"`
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := json.Unmarshal(body, &dry); err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("dry run: %d %s", resp.StatusCode, body)
	}
	dryTook := time.Since(began)

	b.ResetTimer()
	began = time.Now()
	req, _ := http.NewRequest("PUT", base+"/api/feeds/"+added.ID, bytes.NewReader(def))
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("PUT: %d %s", resp.StatusCode, body)
	}
	// The backfill has started once a partition is pending; it is done
	// when none is.
	started := false
	for {
		var bf struct {
			Partitions map[string]int `json:"partitions"`
			Offers     int64          `json:"offers"`
		}
		r, err := http.Get(base + "/api/feeds/backfill")
		if err != nil {
			b.Fatal(err)
		}
		err = json.NewDecoder(r.Body).Decode(&bf)
		r.Body.Close()
		if err != nil {
			b.Fatal(err)
		}
		if bf.Partitions[added.ID] > 0 {
			started = true
		} else if started || bf.Offers > 0 {
			break
		}
		if time.Since(began) > 30*time.Minute {
			b.Fatal("backfill not done after 30 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(began)
	b.StopTimer()
	during := latencyBuckets(b, base)
	p99Steady := bucketQuantile(steady, before, 0.99)
	p99During := bucketQuantile(during, steady, 0.99)
	members, _ := p.Metric(fmt.Sprintf("feedmill_feed_members{feed=%q}", added.ID))
	b.Logf("%d offers: dry run of the new feed %s (server %d ms, %d offers scanned, %d members, complete %v); "+
		"PUT to backfill done %s (%d members); live p99 %.0f ms before, %.0f ms during",
		s.cat.Offers, dryTook.Round(time.Millisecond), dry.TookMs, dry.Scanned, dry.Members, dry.Complete,
		took.Round(time.Millisecond), int64(members), p99Steady*1000, p99During*1000)
	b.ReportMetric(float64(dry.TookMs)/1000, "dry_run_s")
	b.ReportMetric(took.Seconds(), "backfill_s")
	b.ReportMetric(p99Steady*1000, "p99_before_ms")
	b.ReportMetric(p99During*1000, "p99_during_ms")
}

// latencyBuckets reads the cumulative buckets of
// feedmill_change_to_event_seconds from a process's /metrics.
func latencyBuckets(tb testing.TB, base string) map[float64]float64 {
	tb.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[float64]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, `feedmill_change_to_event_seconds_bucket{le="`)
		if !ok {
			continue
		}
		le, val, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		bound := math.Inf(1)
		if le != "+Inf" {
			bound, _ = strconv.ParseFloat(le, 64)
		}
		n, _ := strconv.ParseFloat(val, 64)
		out[bound] = n
	}
	return out
}

// bucketQuantile is the upper bound of the bucket holding quantile q of
// the observations between two scrapes (after minus before).
func bucketQuantile(after, before map[float64]float64, q float64) float64 {
	var bounds []float64
	for k := range after {
		bounds = append(bounds, k)
	}
	sortFloats(bounds)
	total := after[math.Inf(1)] - before[math.Inf(1)]
	if total <= 0 {
		return math.NaN()
	}
	for _, k := range bounds {
		if after[k]-before[k] >= q*total {
			return k
		}
	}
	return math.Inf(1)
}

func sortFloats(s []float64) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j-1] > s[j]; j-- {
			s[j-1], s[j] = s[j], s[j-1]
		}
	}
}
